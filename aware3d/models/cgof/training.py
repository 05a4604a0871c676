"""CGOF's training recipe and presets: pi-GAN's GAN / R1 / pose terms plus every cGOF v1 term (the official
curriculum ``pigan_recon4_snm_depr10000_norm1000_lm3d10_warp3d10_bgdepr10000_georeg500_lastback``), each a named
term of G's loss with its weight from ``loss.weights`` (:class:`~aware3d.models.cgof.losses.CGOFLossWeights`),
logged unweighted as ``G/<name>``:

* ``recon`` (4): the frozen face regressor reads the coefficients back from the generated image; L1 to the
  code in whitened units (the regressor's coefficients are whitened with the generator's own statistics);
* ``lm3d`` (10): the regressor's 68 landmarks vs the mesh's projected ones (``G/lm3d_2d``, in a 256-px frame)
  plus those landmarks lifted with the generated depth vs the mesh's 3-D landmarks 17-67 (``G/lm3d_3d``);
* ``warp3d`` (10): ``warp3d_pairs`` codes per chunk re-drawn with another expression; render 1's samples moved
  by the rasterised mesh flow are queried with the other code (:func:`~aware3d.models.cgof.losses.warp3d_loss`);
* ``depth_prior`` (1e4, times the near-mesh ratio), ``bg_prior`` (1e4), ``normal`` (1000), ``geo`` (500).

The near-mesh ratio ramps 0 -> 1 over ``shrink_steps`` (it blends the fine2 samples toward the mesh band and
scales the depth prior); the depth prior's band shrinks from ``thick_start`` to ``thick_end`` alike
(``G/near_mesh_ratio``, ``G/band_thickness``). The pose target of the identity term is the official normalised
angles (:func:`~aware3d.models.cgof.generator.normalised_pose`). Full precision (the official run disables
autocast and the gradient scaler).

The regressor is a user checkpoint (:func:`aware3d.faces.load_regressor`; for ``cgof-tiny`` one trained by
``aware3d face-regressor train``), given as ``loss.regressor``. Without one the recon and lm3d terms are off
and the recipe says so in one line (``missing_regressor="disable"``, cgof-tiny) or refuses to start
(``"error"``, cgof-celeba); nothing stands in for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from torch import Tensor

from ...checks import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, UNIT_INTERVAL, check_config
from ...errors import ConfigError
from ...faces import CoefficientStatistics, FaceCoefficientRegressor, load_regressor
from ...losses.base import Chunk, StageState
from ...losses.gan import nonsaturating_g, top_k_logits
from ...losses.pigan import PiGANLoss, PiGANLossConfig
from ...losses.silhouette import fake_silhouette
from ...nn.progressive_discriminator import ProgressiveDiscriminatorConfig
from ...rendering import RenderConfig
from ...training.curriculum import Curriculum, Stage
from ...training.presets import TrainPreset
from ...training.schedule import NamedSchedule, Schedule
from .generator import CGOFGenerator, CGOFRender, normalised_pose
from .layout import whitened_coefficients
from .losses import (CGOFLossWeights, background_prior, background_prior_bounds, band_thickness, coefficient_loss,
                     depth_prior, depth_smoothness, landmark_loss, lift_landmarks, near_mesh_ramp,
                     normal_smoothness, warp3d_loss)
from .render import SamplePass, merge_passes, query


@dataclass(frozen=True)
class CGOFLossConfig:
    """Weights, schedules and inputs of CGOF's recipe (official curriculum keys in brackets)."""

    weights: CGOFLossWeights = field(default_factory=CGOFLossWeights)
    """Every term's weight, pi-GAN's R1 and pose included (0 switches a term off)."""
    r1_interval: int = 1
    """Evaluate R1 every this many steps (1: every step, as pi-GAN)."""
    z_lambda: float = 0.0
    """Weight of the latent identity loss (the official 0: the discriminator's latent head is unused)."""
    topk_v: float = 0.6
    """Smallest fraction of fakes kept for G's adversarial loss [topk_v]."""
    topk_interval: int = 2000
    """The kept fraction decays as 0.99 ** (step / topk_interval) [topk_interval]."""
    grad_clip: float | None = 10.0
    """Max gradient norm of G and D updates [grad_clip]."""
    identity_loss: Literal["smooth_l1", "mse"] = "mse"
    """Distance of the pose identity term (the official MSELoss)."""
    shrink_steps: int = 200
    """Steps of the near-mesh ramp and of the depth prior's band annealing [shrink_step_num]."""
    thick_start: float = 1.0
    """The depth prior's band width at step 0, as a fraction of far - near."""
    thick_end: float = 0.005
    """The depth prior's band width after ``shrink_steps`` [thick_ratio]."""
    regressor: str | None = None
    """Face-regressor checkpoint folder (``aware3d face-regressor train``) for the recon and lm3d terms."""
    missing_regressor: Literal["disable", "error"] = "disable"
    """Without ``regressor``: "disable" turns recon and lm3d off (saying so), "error" refuses to train."""
    statistics: str | None = None
    """Coefficient statistics file (``CoefficientStatistics.save``) the generator's face code is whitened with;
    None keeps the model's own."""
    warp3d_pairs: int = 1
    """Codes per chunk of the warp3d term (the official batch 1)."""
    normal_offset: float = 1e-3
    """Distance of the normal term's random neighbour from the surface point (world units) [h_sample]."""
    landmark_frame: float = 256.0
    """Image width the 2-D landmark distance is measured in (the official 256-px frame)."""
    silhouette: bool = False
    """Give D the real masks and the generated opacity as a 4th channel (:mod:`aware3d.losses.silhouette`; not in
    the official code; needs a dataset with masks and ``discriminator.in_channels=4``)."""

    def __post_init__(self) -> None:
        check_config(self, {"r1_interval": AT_LEAST_ONE, "z_lambda": NON_NEGATIVE, "topk_v": UNIT_INTERVAL,
                            "grad_clip": POSITIVE, "shrink_steps": NON_NEGATIVE, "thick_start": POSITIVE,
                            "thick_end": POSITIVE, "warp3d_pairs": NON_NEGATIVE, "normal_offset": POSITIVE,
                            "landmark_frame": POSITIVE})

    def pigan(self) -> PiGANLossConfig:
        """The pi-GAN part of the recipe (R1 and pose weights from :attr:`weights`)."""
        return PiGANLossConfig(r1_gamma=self.weights.r1, r1_interval=self.r1_interval, pos_lambda=self.weights.pos,
                               z_lambda=self.z_lambda, topk_v=self.topk_v, topk_interval=self.topk_interval,
                               grad_clip=self.grad_clip, identity_loss=self.identity_loss,
                               silhouette=self.silhouette)

    def ratio_schedule(self) -> Schedule:
        """The near-mesh ratio by step (:func:`~aware3d.models.cgof.losses.near_mesh_ramp`)."""
        return Schedule.ramp(0.0, 1.0, self.shrink_steps, "step") if self.shrink_steps > 0 else Schedule.constant(1.0)

    def thickness_schedule(self) -> Schedule:
        """The depth prior's band width by step (:func:`~aware3d.models.cgof.losses.band_thickness`)."""
        if self.shrink_steps <= 0:
            return Schedule.constant(self.thick_end)
        return Schedule.ramp(self.thick_start, self.thick_end, self.shrink_steps, "step")

    def schedules(self) -> tuple[NamedSchedule, ...]:
        return (*self.pigan().schedules(),
                NamedSchedule("near_mesh_ratio", self.ratio_schedule(),
                              "blend of the fine2 samples toward the mesh band; factor on the depth prior"),
                NamedSchedule("band_thickness", self.thickness_schedule(),
                              "depth prior's band width, fraction of far - near"))


def _frozen_regressor(config: CGOFLossConfig, device: torch.device) -> FaceCoefficientRegressor | None:
    """The frozen regressor of ``config.regressor`` on ``device``, or None (saying why) when none is given."""
    if config.regressor is not None:
        regressor = load_regressor(config.regressor, device)
        regressor.requires_grad_(False)
        return regressor
    if config.weights.recon == 0 and config.weights.lm3d == 0:
        return None
    how = ("train one with `aware3d face-regressor train --out DIR` (on synthetic-faces) and pass --override "
           "loss.regressor=DIR")
    if config.missing_regressor == "error":
        raise ConfigError(f"CGOF's recon and lm3d terms need the frozen face regressor and loss.regressor is unset: "
                          f"{how}, or switch them off with loss.weights.recon=0 loss.weights.lm3d=0")
    print(f"aware3d train: cgof: no face regressor (loss.regressor), so the recon and lm3d terms are OFF; {how}",
          flush=True)
    return None


class CGOFLoss(PiGANLoss):
    """The recipe; see the module docstring."""

    autocast = False
    """The official cGOF v1 trains in float32 (no autocast, no gradient scaler)."""
    G: CGOFGenerator

    def __init__(self, G: CGOFGenerator | None, D: torch.nn.Module | None, config: CGOFLossConfig = CGOFLossConfig()):
        super().__init__(G, D, config.pigan())
        self.cgof = config
        self.regressor = None
        if G is not None:  # a recipe without networks only answers schedule questions
            if config.statistics is not None:
                G.set_coefficient_statistics(CoefficientStatistics.load(config.statistics))
            self.regressor = _frozen_regressor(config, G.w_avg.device)

    # ---------------------------------------------------------------------------------- schedules
    def near_mesh_ratio(self, step: int) -> float:
        return near_mesh_ramp(step, self.cgof.shrink_steps)

    def band_thickness(self, step: int) -> float:
        cfg = self.cgof
        return band_thickness(step, cfg.thick_start, cfg.thick_end, cfg.shrink_steps)

    # ---------------------------------------------------------------------------------- rendering
    def _identity_terms(self, pred, chunk: Chunk) -> tuple[Tensor, dict[str, Tensor]]:
        """pi-GAN's pose term with the official normalised (pitch, yaw) target."""
        target = normalised_pose(chunk.angles, self.G.config.pose)  # (pitch, yaw), as pitch_yaw() gives
        return super()._identity_terms(pred, replace(chunk, angles=target.flip(-1)))

    def _render(self, chunk: Chunk, stage: StageState, w: Tensor) -> CGOFRender:
        return self.G.render_details(w, chunk.cameras, resolution=stage.resolution, render=stage.render,
                                     generator=chunk.generator, draws=chunk.draws,
                                     near_mesh_ratio=self.near_mesh_ratio(stage.step))

    def _seen_by_d(self, out) -> Tensor:
        """A render as D sees it: the image, with the opacity as a 4th channel under ``silhouette``."""
        return fake_silhouette(out.image, out.opacity) if self.cgof.silhouette else out.image

    def _generate(self, chunk: Chunk, stage: StageState) -> Tensor:
        w = self.G.mapping(chunk.z)
        return self._seen_by_d(self.G.output(self._render(chunk, stage, w), w, render=stage.render))

    # ---------------------------------------------------------------------------------- the CGOF terms
    def _regressor_terms(self, chunk: Chunk, w: Tensor, details: CGOFRender, image: Tensor,
                         depth: Tensor) -> dict[str, Tensor]:
        """recon, and lm3d with its two parts, from the regressor's reading of the generated images."""
        recon = self.regressor(image)
        predicted = whitened_coefficients(self.G.whitening.whiten(recon.coefficients))
        terms = {"recon": coefficient_loss(predicted, whitened_coefficients(self.G.split_latent(w)[1]))}
        res = details.resolution
        lifted = lift_landmarks(recon.landmarks, depth, chunk.cameras, res, res, grid=self.G.config.pixel_grid)
        cond = details.conditioning
        lm_2d, lm_3d = landmark_loss(recon.landmarks, cond.landmarks_2d, lifted, cond.landmarks_3d,
                                     scale_2d=self.cgof.landmark_frame / res)
        terms.update(lm3d=lm_2d + lm_3d, lm3d_2d=lm_2d, lm3d_3d=lm_3d)
        return terms

    def _prior_terms(self, stage: StageState, details: CGOFRender) -> dict[str, Tensor]:
        """depth_prior and bg_prior on the final samples."""
        rays, render = details.rays, stage.render
        mesh_depth, face_mask = details.conditioning.rays()
        weights = rays.composited.weights
        z_world = details.points(rays.t)[..., 2]
        nearest, face_max_z = background_prior_bounds(mesh_depth, face_mask, z_world, render.near)
        return {"depth_prior": depth_prior(rays.t, weights, mesh_depth, face_mask, self.band_thickness(stage.step),
                                           render.near, render.far),
                "bg_prior": background_prior(rays.t, weights, z_world, face_mask, render.near, nearest, face_max_z)}

    def _normal_term(self, chunk: Chunk, w: Tensor, details: CGOFRender) -> Tensor:
        """normal: surface normals at the expected surface point vs at a random point ``normal_offset`` away."""
        surface = (details.rays_o + details.rays_d * details.rays.composited.depth[..., None]).detach()
        gen = chunk.generator
        direction = torch.rand(surface.shape, generator=gen, device=gen.device, dtype=surface.dtype).to(surface) - 0.5
        neighbour = surface + direction / direction.norm(dim=-1, keepdim=True) * self.cgof.normal_offset
        R = surface.shape[1]
        normals = self.G.normals_at(w, torch.cat([surface, neighbour], 1))
        return normal_smoothness(normals[:, :R], normals[:, R:])

    @staticmethod
    def _warped_passes(field0, rays_o: Tensor, rays_d: Tensor, passes: list[SamplePass], flow: Tensor,
                       render: RenderConfig) -> list[SamplePass]:
        """Code 0's field (``field0``) at each pass's samples moved by the per-ray flow (n, R, 1, 3)."""
        return [query(field0, rays_o, rays_d, p.t, p.name, render, offset=flow) for p in passes]

    def _warp_term(self, chunk: Chunk, stage: StageState, w: Tensor, details: CGOFRender,
                   image: Tensor) -> Tensor:
        """warp3d on the first ``warp3d_pairs`` codes of the chunk (code 1), each re-drawn with a new expression
        (code 0): render 1's samples moved by the mesh flow 1 -> 0 are queried with code 0."""
        n = min(self.cgof.warp3d_pairs, len(chunk.z))
        G, gen, res = self.G, chunk.generator, details.resolution
        parts = G.layout.split(chunk.z[:n])
        parts["expression"] = torch.randn(parts["expression"].shape, generator=gen, device=gen.device).to(chunk.z)
        w0 = G.mapping(G.layout.join(parts))
        (film0, code0), code1 = G.split_latent(w0), G.split_latent(w[:n])[1]
        cams = chunk.cameras[:n]
        flow = G.conditioning(code1, cams, res, reference_code=code0).flow.reshape(n, -1, 1, 3)
        passes_1 = [SamplePass(p.name, p.t[:n], p.rgb[:n], p.sigma[:n]) for p in details.rays.passes]
        passes_0 = self._warped_passes(G.field_fn(film0), details.rays_o[:n], details.rays_d[:n], passes_1, flow,
                                      stage.render)
        image_0 = details.to_image(merge_passes(passes_0, stage.render, gen)[0].color[..., :3]) * 2 - 1
        outs_1, outs_0 = [p.outputs() for p in passes_1], [p.outputs() for p in passes_0]
        if len({o.shape[2] for o in outs_1}) > 1:  # passes of different sizes share one mask only when joined
            outs_1, outs_0 = [torch.cat(outs_1, 2)], [torch.cat(outs_0, 2)]
        mask_1 = details.conditioning.face_mask[:n]
        mask_0 = G.conditioning(code0, cams, res).face_mask
        volume = mask_1.reshape(n, -1, 1).expand(-1, -1, outs_1[0].shape[2]).reshape(n, -1)
        return warp3d_loss([o.reshape(n, -1, 4) for o in outs_1], [o.reshape(n, -1, 4) for o in outs_0], volume,
                           image[:n], image_0, mask_0.int() <= mask_1.int())

    def _cgof_terms(self, chunk: Chunk, stage: StageState, w: Tensor, details: CGOFRender, image: Tensor,
                    depth: Tensor) -> dict[str, Tensor]:
        """Every CGOF term whose weight is non-zero (and whose inputs exist), unweighted, by name."""
        weights, terms = self.cgof.weights, {}
        if self.regressor is not None and (weights.recon or weights.lm3d):
            terms.update(self._regressor_terms(chunk, w, details, image, depth))
        if weights.depth_prior or weights.bg_prior:
            terms.update(self._prior_terms(stage, details))
        if weights.normal:
            terms["normal"] = self._normal_term(chunk, w, details)
        if weights.geo:
            background = ~details.conditioning.face_mask
            terms["geo"] = depth_smoothness(depth, background)
        if weights.warp3d and self.cgof.warp3d_pairs:
            terms["warp3d"] = self._warp_term(chunk, stage, w, details, image)
        return terms

    def term_weight(self, name: str, step: int) -> float:
        """The factor of term ``name`` in G's loss at ``step`` (the depth prior's includes the near-mesh ratio;
        parts logged beside their term, e.g. ``lm3d_2d``, weigh 0)."""
        weights = self.cgof.weights
        if name == "depth_prior":
            return weights.depth_prior * self.near_mesh_ratio(step)
        weighted = {"recon", "lm3d", "warp3d", "bg_prior", "normal", "geo"}
        return float(getattr(weights, name)) if name in weighted else 0.0

    def loss(self, phase, chunk: Chunk, stage: StageState) -> tuple[Tensor, dict[str, Tensor]]:
        if phase.module != "G":
            return super().loss(phase, chunk, stage)
        w = self.G.mapping(chunk.z)
        details = self._render(chunk, stage, w)
        out = self.G.output(details, w, render=stage.render)
        fake = self.D(chunk.augment(self._seen_by_d(out), self._masks), stage.alpha)
        adv = nonsaturating_g(top_k_logits(fake.logits, self.config.topk_fraction(stage.step)))
        ident, stats = self._identity_terms(fake, chunk)
        terms = self._cgof_terms(chunk, stage, w, details, out.image, out.depth[:, 0])
        loss = adv + ident + sum(self.term_weight(k, stage.step) * v for k, v in terms.items())
        logs = {"G/adv": adv.detach(), **{f"G/{k}": v for k, v in stats.items()},
                **{f"G/{k}": v.detach() for k, v in terms.items()},
                "G/near_mesh_ratio": torch.tensor(self.near_mesh_ratio(stage.step)),
                "G/band_thickness": torch.tensor(self.band_thickness(stage.step))}
        return loss, logs


# ------------------------------------------------------------------------------------------ presets

CELEBA_DATA_HELP = ("cgof-celeba trains on face crops aligned as Deep3DFaceRecon aligns them (the official CropCelebA: "
                    "scale 0.8976 around (128.04, 89.96) in a 256 frame), e.g. a folder or zip of such CelebA crops; "
                    "with $AWARE3D_FACE_MODEL set, synthetic-faces renders BFM faces with the same cameras")


def cgof_train_presets() -> dict[str, TrainPreset]:
    """The official cGOF v1 curriculum and the CPU-sized ``cgof-tiny``."""
    return {
        # Single stage: 64 px, 12 steps, batch 8 in 4 chunks, lr 6e-5 / 2e-4, 80k steps, fade 5000, float32.
        "cgof-celeba": TrainPreset(
            "cgof", "cgof-celeba", ProgressiveDiscriminatorConfig(coord_conv=True, latent_dim=411),
            CGOFLossConfig(missing_regressor="error"),
            Curriculum((Stage(0, 64, 8, 4, 12, 12, g_lr=6e-5, d_lr=2e-4),), fade_steps=5000),
            data="synthetic-faces", data_help=CELEBA_DATA_HELP, total_steps=80_000,
        ),
        # CPU-sized: the tiny model on synthetic-faces, a small D, the near-mesh ramp and band as officially.
        "cgof-tiny": TrainPreset(
            "cgof", "cgof-tiny",
            ProgressiveDiscriminatorConfig(max_resolution=64, channel_base=1024, channel_max=128, latent_dim=0),
            CGOFLossConfig(topk_interval=200),
            Curriculum((Stage(0, 32, 8, 1, 6, 6, g_lr=2e-4, d_lr=4e-4),), fade_steps=200, density_noise=0.5,
                       density_noise_steps=300),
            data="synthetic-faces", total_steps=2000,
        ),
    }


__all__ = ["CELEBA_DATA_HELP", "CGOFLoss", "CGOFLossConfig", "cgof_train_presets"]
