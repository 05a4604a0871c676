"""EpiGRAF's training losses (the official ``StyleGAN2Loss`` of universome/epigraf, written for our trainer).

Three phases, StyleGAN2's non-saturating logistic loss with lazy R1 (no path-length or density regulariser):

* ``G_main`` (every step): ``softplus(-D(G(z, c)))`` on rendered patches.
* ``D_main`` (every step): ``softplus(D(G(z, c))) + softplus(-D(x_real))``.
* ``D_reg`` (every ``r1_interval`` steps, scaled by it): R1 ``r1_gamma / 2 * E||grad D(x_real)||^2`` w.r.t.
  the real patch.

Patches (:meth:`EpiGRAFLoss.prepare`): every chunk draws one patch (scale, offset) per minibatch-std group from
the preset's :class:`~aware3d.rendering.patches.PatchSamplerConfig` at ``kimg = images_seen / 1000``; fakes are
rendered over those windows and the real patches are cut from the full real images at the same windows, so D
compares like with like. The scale draws use a ``numpy.random.RandomState`` seeded from the chunk's generator and
the offsets the generator itself, so a resumed run draws the same patches (no global RNG is touched).

Around them, the official schedules of the number of real images shown: generator pose conditioning spoofing
(the conditioning cameras of a random subset of rows, ``rand < p`` with p fading from 1 to ``gpc_reg_prob`` over
``gpc_reg_fade_kimg``, are rolled by one among themselves) and the Gaussian blur of both real and fake patches
before D (sigma ``blur_init_sigma`` fading to 0 over ``blur_fade_kimg``). ADA augmentation is not part of it.

Generated images are rendered from the cameras of random dataset items (``camera_source = "dataset"``); a
camera-conditioned D sees the real images' dataset cameras for reals and the rendering cameras for fakes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from ...cameras import Cameras, from_eg3d_label
from ...losses.base import Chunk, Phase, RecipeBase, StageState, checked_real_classes, resample_real_extra
from ...losses.gan import gaussian_blur, logistic_d, nonsaturating_g
from ...rendering.patches import PatchSamplerConfig
from ...training.schedule import NamedSchedule, Schedule
from ..base import Condition
from .cameras import PatchParams, epigraf_angles_from_cameras
from .discriminator import PatchDiscriminator
from .generator import EpiGRAFGenerator, class_one_hot
from .patches import real_patches, sample_patches


@dataclass(frozen=True)
class EpiGRAFLossConfig:
    """Weights, patch sampling and schedules of EpiGRAF's losses (the official hydra option in brackets)."""

    r1_gamma: float = 0.1
    """R1 weight on real patches [training.gamma]; the penalty is gamma / 2 * E||grad D(x)||^2."""
    r1_interval: int = 16
    """Lazy R1: evaluated every this many steps and scaled by it (StyleGAN2's D_reg_interval)."""
    patch: PatchSamplerConfig = field(default_factory=PatchSamplerConfig)
    """How patch scales and offsets are drawn and annealed [training.patch]."""
    gpc_reg_prob: float = 0.5
    """GPC spoofing: final probability that a row's conditioning camera is rolled with the other spoofed rows
    (used only by a camera-conditioned generator)."""
    gpc_reg_fade_kimg: float = 1000.0
    """The spoofing probability fades from 1 to gpc_reg_prob over this many thousand images."""
    blur_init_sigma: float = 10.0
    """Initial sigma (pixels) of the blur of the patches the discriminator sees ..."""
    blur_fade_kimg: float = 200.0
    """... fading to 0 over this many thousand images; 0 = never blur."""
    grad_clip: float | None = None
    """Max gradient norm of G and D updates; None = no clipping (official)."""

    def __post_init__(self) -> None:
        if self.r1_interval < 1:
            raise ValueError(f"r1_interval must be >= 1 (1 = every step), got {self.r1_interval}")
        if not 0 <= self.gpc_reg_prob <= 1:
            raise ValueError(f"gpc_reg_prob must be in [0, 1], got {self.gpc_reg_prob}")

    # -- schedules (of the number of real images shown) -----------------------------------------------
    def spoofing_prob_schedule(self) -> Schedule:
        """GPC's spoofing probability by images shown: 1 fading to gpc_reg_prob over gpc_reg_fade_kimg."""
        if self.gpc_reg_fade_kimg <= 0:
            return Schedule.constant(self.gpc_reg_prob, "image")
        return Schedule.ramp(1.0, self.gpc_reg_prob, self.gpc_reg_fade_kimg * 1e3, "image")

    def blur_sigma_schedule(self) -> Schedule:
        """The blur sigma (pixels) by images shown: blur_init_sigma fading to 0 over blur_fade_kimg."""
        if self.blur_fade_kimg <= 0:
            return Schedule.constant(0.0, "image")
        return Schedule.ramp(self.blur_init_sigma, 0.0, self.blur_fade_kimg * 1e3, "image")

    def patch_beta_schedule(self) -> Schedule:
        """The second Beta parameter of the patch scales by images shown (the sampler's linear annealing)."""
        p = self.patch
        if p.anneal_kimg <= 0:
            return Schedule.constant(p.beta_end, "image")
        return Schedule.ramp(p.beta_start, p.beta_end, p.anneal_kimg * 1e3, "image")

    def schedules(self) -> tuple[NamedSchedule, ...]:
        """Every schedule of the recipe, named as the methods that evaluate them."""
        return (NamedSchedule("spoofing_prob", self.spoofing_prob_schedule(),
                              "probability of spoofing G's conditioning camera (camera-conditioned G only)"),
                NamedSchedule("blur_sigma", self.blur_sigma_schedule(), "sigma (pixels) of the blur of D's patches"),
                NamedSchedule("patch_beta", self.patch_beta_schedule(),
                              f"second Beta parameter of the patch scales ({self.patch.distribution} sampler)"))

    def spoofing_prob(self, images_seen: int) -> float:
        """Probability that a row's conditioning camera is spoofed."""
        return self.spoofing_prob_schedule().value_at(images_seen)

    def blur_sigma(self, images_seen: int) -> float:
        """Sigma in pixels of the blur of the patches the discriminator sees."""
        return self.blur_sigma_schedule().value_at(images_seen)


@dataclass
class PatchChunk(Chunk):
    """A chunk with the patch windows its fakes are rendered over and its real patches are cut from."""

    patch: PatchParams | None = None
    """(B, 2) scales and offsets, one draw per minibatch-std group (set by :meth:`EpiGRAFLoss.prepare`)."""


def spoof_cameras(angles: Tensor, prob: float, generator: torch.Generator) -> Tensor:
    """(B, 3) conditioning camera angles where the rows with ``rand < prob`` are rolled by one position among
    themselves (EpiGRAF's GPC spoofing); the other rows keep their own camera."""
    chosen = torch.rand(angles.shape[0], generator=generator, device=generator.device).to(angles.device) < prob
    out = angles.clone()
    out[chosen] = torch.roll(angles[chosen], 1, 0)
    return out


def scale_source_from(generator: torch.Generator) -> np.random.RandomState:
    """A numpy legacy RNG seeded by one draw of ``generator`` (the patch scales' source, reproducible on resume)."""
    seed = torch.randint(0, 2 ** 31 - 1, (1,), generator=generator, device=generator.device)
    return np.random.RandomState(int(seed.item()))


class EpiGRAFLoss(RecipeBase):
    """The recipe over an :class:`EpiGRAFGenerator` and a :class:`PatchDiscriminator`."""

    autocast: bool = False
    """No autocast: D's num_fp16_res blocks run in float16 on a GPU by themselves, with their conv clamps."""
    camera_source: Literal["dataset", "pose"] = "dataset"
    """Generated images use the cameras of random dataset items (the pose distribution without labels)."""

    def __init__(self, G: EpiGRAFGenerator, D: PatchDiscriminator, config: EpiGRAFLossConfig = EpiGRAFLossConfig()):
        if D.config.patch_resolution != G.config.patch_resolution or D.config.image_resolution != G.config.img_resolution:
            raise ValueError(f"the discriminator judges {D.config.patch_resolution} px patches of "
                             f"{D.config.image_resolution} px images but the generator renders "
                             f"{G.config.patch_resolution} px patches of {G.config.img_resolution} px images; set "
                             "the discriminator's patch_resolution / image_resolution to the generator's")
        if D.config.c_dim != G.config.c_dim:
            raise ValueError(f"the discriminator has c_dim {D.config.c_dim} but the generator {G.config.c_dim}; "
                             "set the discriminator's c_dim to the generator's")
        self.G, self.D, self.config = G, D, config

    def phases(self) -> list[Phase]:
        phases = [Phase("G_main", "G"), Phase("D_main", "D")]
        if self.config.r1_gamma > 0:
            phases.append(Phase("D_reg", "D", self.config.r1_interval))
        return phases

    def grad_clip(self, module: Literal["G", "D"]) -> float | None:
        return self.config.grad_clip

    def render_resolution(self, stage: StageState) -> int:
        """The full-image size the patches are windows of (sample grids render whole images at it)."""
        return stage.resolution

    # -- draws -----------------------------------------------------------------------------------------
    def prepare(self, chunk: Chunk, stage: StageState) -> PatchChunk:
        """The chunk with its patch windows (one per minibatch-std group) and, for a class-conditional model,
        its fakes' classes: the classes of real images of the chunk drawn with replacement (the dataset's class
        distribution, as the official loop's labels of random dataset items), all drawn from ``chunk.generator``."""
        cfg, batch = self.config, chunk.z.shape[0]
        gen = chunk.generator
        scales_source = scale_source_from(gen)
        patch = sample_patches(batch, cfg.patch, stage.images_seen / 1000, scales_source, gen, gen.device)
        patch = PatchParams(patch.scales.to(chunk.z.device), patch.offsets.to(chunk.z.device))
        condition = chunk.condition
        self.real_class_labels(chunk)  # a dataset without fitting classes fails here, before anything is rendered
        if self.G.config.c_dim > 0:
            condition = Condition(class_label=resample_real_extra(chunk, "class_label"))
        fields = {f: getattr(chunk, f) for f in Chunk.__dataclass_fields__}
        return PatchChunk(**{**fields, "condition": condition}, patch=patch)

    # -- pieces ----------------------------------------------------------------------------------------
    def _fake_patches(self, chunk: PatchChunk, stage: StageState, update_emas: bool) -> tuple[Tensor, Tensor]:
        """(rendered patches (B, 3, R, R), the rendering cameras as EpiGRAF angles (B, 3))."""
        angles = epigraf_angles_from_cameras(chunk.cameras)
        cond = angles
        if self.G.config.camera_cond:
            cond = spoof_cameras(angles, self.config.spoofing_prob(stage.images_seen), chunk.generator)
        ws = self.G.mapping(chunk.z, cameras=cond, condition=chunk.condition, update_emas=update_emas)
        out = self.G.synthesis(ws, chunk.cameras, resolution=self.G.config.patch_resolution, render=stage.render,
                               patch=chunk.patch, noise_mode="random", generator=chunk.generator,
                               condition=chunk.condition)
        return out.image, angles

    def _class_one_hot(self, label: Tensor | None, batch: int) -> Tensor | None:
        if self.D.config.c_dim == 0:
            return None
        return class_one_hot(label, self.D.config.c_dim, batch).to(self.G.device)

    def _discriminate(self, patches: Tensor, chunk: PatchChunk, angles: Tensor | None, label: Tensor | None,
                      stage: StageState) -> Tensor:
        patches = chunk.augment(gaussian_blur(patches, self.config.blur_sigma(stage.images_seen)))
        return self.D(patches, chunk.patch.scales, chunk.patch.offsets, angles if self.D.config.camera_cond else None,
                      self._class_one_hot(label, len(patches)), generator=chunk.generator)

    def real_camera_angles(self, chunk: Chunk) -> Tensor | None:
        """(B, 3) EpiGRAF angles of the real images' dataset cameras (None for a D without camera conditioning)."""
        if not self.D.config.camera_cond:
            return None
        if not bool(chunk.real_labels.abs().sum(1).gt(0).all()):
            raise ValueError("EpiGRAF's discriminator is conditioned on the real images' cameras, but the dataset "
                             "has images without a camera label; use a zip with EpiGRAF 'camera_angles' (or EG3D "
                             "'labels') in dataset.json (aware3d dataset builds one), a synthetic dataset, or a "
                             "discriminator with camera_cond=False")
        return epigraf_angles_from_cameras(Cameras(*from_eg3d_label(chunk.real_labels)))

    def real_class_labels(self, chunk: Chunk) -> Tensor | None:
        """(B,) the real images' classes for a class-conditional model (None otherwise)."""
        return checked_real_classes(chunk, self.D.config.c_dim, "this EpiGRAF model",
                                    ("model.c_dim", "discriminator.c_dim"))

    def _check_real(self, chunk: Chunk) -> None:
        size = chunk.real_images.shape[-1]
        if size != self.G.config.img_resolution:
            raise ValueError(f"real images are {size} px but EpiGRAF's patches are windows of "
                             f"{self.G.config.img_resolution} px images; set the curriculum stages' resolution to "
                             f"{self.G.config.img_resolution}")

    # -- the recipe ------------------------------------------------------------------------------------
    def loss(self, phase: Phase, chunk: Chunk, stage: StageState) -> tuple[Tensor, dict[str, Tensor]]:
        if not isinstance(chunk, PatchChunk) or chunk.patch is None:
            raise ValueError("EpiGRAF's loss needs the chunk from its prepare() (the patch windows)")
        fake_label = None if chunk.condition is None else chunk.condition.class_label
        if phase.name == "G_main":
            fake, angles = self._fake_patches(chunk, stage, update_emas=False)
            logits = self._discriminate(fake, chunk, angles, fake_label, stage)
            adv = nonsaturating_g(logits)
            return adv, {"G/adv": adv.detach(), "G/fake": logits.detach().mean(),
                         "patch/scale": chunk.patch.scales[:, 0].mean()}
        if phase.name not in ("D_main", "D_reg"):
            raise ValueError(f"EpiGRAF's recipe has no phase {phase.name!r}")
        self._check_real(chunk)
        with_r1 = phase.name == "D_reg"
        real = real_patches(chunk.real_images, chunk.patch, self.D.config.patch_resolution)
        real = real.detach().requires_grad_(with_r1)
        real_logits = self._discriminate(real, chunk, self.real_camera_angles(chunk), self.real_class_labels(chunk),
                                         stage)
        chunk.augment.observe_real(real_logits)
        if phase.name == "D_main":
            with torch.no_grad():
                fake, angles = self._fake_patches(chunk, stage, update_emas=True)
            fake_logits = self._discriminate(fake, chunk, angles, fake_label, stage)
            adv = logistic_d(real_logits, fake_logits)
            return adv, {"D/adv": adv.detach(), "D/real": real_logits.detach().mean(),
                         "D/fake": fake_logits.detach().mean()}
        (grad,) = torch.autograd.grad(real_logits.sum(), [real], create_graph=True)
        r1 = grad.square().flatten(1).sum(1).mean()
        return r1 * (self.config.r1_gamma / 2) * phase.interval, {"D/r1": r1.detach()}


__all__ = ["EpiGRAFLoss", "EpiGRAFLossConfig", "PatchChunk", "scale_source_from", "spoof_cameras"]
