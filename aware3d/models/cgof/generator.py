"""The CGOF generator: pi-GAN's mapping network and FiLM-SIREN driven by a morphable-face-model latent, rendered
with sample-near-mesh three-pass sampling around the latent's own mesh.

Latent (:mod:`.layout`): z (B, 411) goes whole through the mapping network to the FiLM code; the synthesis latent
is ``w = [FiLM code (w_film) | face code (251)]``, so synthesis rebuilds the conditioning mesh from w alone
(truncation moves the FiLM code toward ``w_avg`` and never the face code: the mesh follows the code exactly).
A ``Condition(face=...)`` (B or 1, 251) replaces the face slices of z in :meth:`mapping` and the face code of w
in :meth:`synthesis` (the mesh then follows it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ...cameras import Cameras, PoseDistribution, generate_rays
from ...faces import CoefficientStatistics, FaceCoefficients, MorphableFaceModel
from ...inversion.space import LatentSpace, SynthesisLatent, film_groups, film_w
from ...nn.siren import FiLMSiren, MappingNetwork, refresh_w_avg
from ...rendering import RandomDraws, RenderConfig, density_normals
from ..base import (Capabilities, Condition, FaceCodeLayout, FaceRenders, Generator3D, GeneratorOutput,
                    expand_latent)
from .conditioning import MeshConditioning, build_conditioning
from .config import CGOFConfig
from .layout import (FACE_CODE_DIM, FACE_GROUPS, FaceWhitening, LatentLayout, face_model_data, face_model_on, face_model_source,
                     synthetic_faces_statistics)
from .render import NearMeshGuide, PassDraws, ThreePassRays, render_banded, render_chunked


def normalised_pose(angles: Tensor, pose: PoseDistribution) -> Tensor:
    """(B, 2) ``((pitch - pitch_mean) / pitch_std, (yaw - yaw_mean) / yaw_std)`` from (B, 2) (yaw, pitch) radians:
    the pose the official ``PoseImplicitGenerator3d`` returns (and its discriminator regresses); a zero std
    leaves that angle's offset unscaled."""
    yaw, pitch = angles.unbind(-1)
    yaw_n = (yaw - pose.yaw_mean) / (pose.yaw_std or 1.0)
    pitch_n = (pitch - pose.pitch_mean) / (pose.pitch_std or 1.0)
    return torch.stack([pitch_n, yaw_n], -1)


def surface_normals(sigma_fn: Callable[[Tensor], Tensor], points: Tensor) -> Tensor:
    """(B, N, 3) unit normals ``-grad sigma / |grad sigma|`` at (B, N, 3) points, differentiable w.r.t. the field
    (a double-backward graph: for regularisers on the normals; the points themselves get no gradient)."""
    p = points.detach().requires_grad_(True)
    with torch.enable_grad():
        sigma = sigma_fn(p)
        (grad,) = torch.autograd.grad(sigma.sum(), p, create_graph=True)
    return -F.normalize(grad, dim=-1)


@dataclass
class CGOFRender:
    """One render with what the recipe needs beyond the images: the rays, their samples and the conditioning."""

    rays: ThreePassRays
    """The composited rays (R = H * W, row-major) and the passes' samples."""
    conditioning: MeshConditioning
    """The latents' mesh maps from the same cameras."""
    rays_o: Tensor
    """(B, R, 3) ray origins, world units."""
    rays_d: Tensor
    """(B, R, 3) unit ray directions."""
    resolution: int
    """Side of the render in pixels."""

    def to_image(self, x: Tensor) -> Tensor:
        """Per-ray values (B, R, C) -> (B, C, H, W)."""
        res = self.resolution
        return x.reshape(x.shape[0], res, res, -1).permute(0, 3, 1, 2)

    def points(self, t: Tensor) -> Tensor:
        """(B, R, S, 3) world points at distances t (B, R, S) along the rays."""
        return self.rays_o.unsqueeze(2) + self.rays_d.unsqueeze(2) * t.unsqueeze(-1)


class CGOFGenerator(Generator3D):
    """z (411-d face-model code) -> w = [FiLM code | face code] -> radiance field rendered around the code's mesh.

    Buffers: ``w_avg`` (1, w_film), the truncation centre of the FiLM code; ``whitening.*`` the coefficient
    statistics the face code is whitened with (persistent: checkpoints carry them). The face model (read from
    ``config.face_model`` at construction, :attr:`face_model`) is never stored (the BFM's licence).
    """

    family = "cgof"
    capabilities = Capabilities(normals=True, conditions=("face",))

    def __init__(self, config: CGOFConfig = CGOFConfig()):
        super().__init__()
        self.config = config
        self.z_dim = config.z_dim
        self.layout = LatentLayout(config.background_geometry_dim, config.background_texture_dim)
        self.field = FiLMSiren(config.hidden_dim, config.num_film_layers, config.box_warp)
        self.mapping_network = MappingNetwork(config.z_dim, config.mapping_hidden_dim, self.field.w_dim,
                                              config.mapping_layers)
        self.face_source = face_model_source(config.face_model)
        face_model_data(self.face_source)  # read now: a missing or broken file fails here, with its fix
        statistics = (CoefficientStatistics.standard() if config.statistics == "standard"
                      else synthetic_faces_statistics(config.face_model, config.statistics_samples))
        self.whitening = FaceWhitening(statistics)
        self.register_buffer("w_avg", torch.zeros(1, self.field.w_dim))

    # ---------------------------------------------------------------------------------- latents
    @property
    def w_dim(self) -> int:
        """Size of w: the FiLM code plus the 251-d face code."""
        return self.field.w_dim + FACE_CODE_DIM

    def split_latent(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """w (B, w_dim) -> (FiLM code (B, w_film), face code (B, 251))."""
        if w.shape[-1] != self.w_dim:
            raise ValueError(f"a CGOF synthesis latent is (B, {self.w_dim}) = FiLM code {self.field.w_dim} + face code "
                             f"{FACE_CODE_DIM}, got {tuple(w.shape)}")
        return w[..., :self.field.w_dim], w[..., self.field.w_dim:]

    def _face_condition(self, condition: Condition | None, batch: int) -> Tensor | None:
        self.check_condition(condition)
        if condition is None or condition.face is None:
            return None
        face = condition.face
        if face.ndim != 2 or face.shape[-1] != FACE_CODE_DIM:
            raise ValueError(f"a CGOF face condition is (B, {FACE_CODE_DIM}): identity 80 | expression 64 | texture 80 "
                             f"| lighting 27, whitened; got {tuple(face.shape)}")
        return expand_latent(face.to(self.w_avg), batch)

    @torch.no_grad()
    def update_w_avg(self, num_samples: int | None = None, seed: int = 0, batch: int = 2500) -> Tensor:
        """Recompute ``w_avg`` from ``num_samples`` z drawn from a generator seeded with ``seed``."""
        return refresh_w_avg(self.w_avg, self.mapping_network, self.z_dim, num_samples or self.config.w_avg_samples,
                             seed, batch)

    def mapping(self, z: Tensor, truncation_psi: float = 1.0, cameras: Cameras | None = None,
                condition: Condition | None = None) -> Tensor:
        """z (B, 411) -> w (B, w_dim); ``condition.face`` replaces z's face slices first; psi < 1 pulls the FiLM
        code toward ``w_avg``."""
        face = self._face_condition(condition, z.shape[0])
        if face is not None:
            z = self.layout.with_face_code(z, face)
        film = self.mapping_network(z)
        if truncation_psi != 1:
            film = self.w_avg + truncation_psi * (film - self.w_avg)
        return torch.cat([film, self.layout.face_code(z)], -1)

    @torch.no_grad()
    def inversion_space(self, num_samples: int = 1000, seed: int = 0) -> LatentSpace:
        """The FiLM frequencies and phases (from ``w_avg``, with the spread of ``num_samples`` mapped z, seeded), the
        face code held at the mean code (zeros): the conditioning mesh takes no gradient, so a face code to invert
        with comes from elsewhere (a regressor's reading of the image, ``Condition(face=...)``)."""
        z = torch.randn(num_samples, self.z_dim, generator=torch.Generator().manual_seed(seed)).to(self.w_avg.device)
        mean_code = self.w_avg.new_zeros(1, FACE_CODE_DIM)

        def compose(values) -> SynthesisLatent:
            film = film_w(values)
            return SynthesisLatent(torch.cat([film, mean_code.expand(film.shape[0], -1)], -1))
        return LatentSpace(film_groups(self.w_avg, self.mapping_network(z)), compose)

    def face_code_of(self, coefficients: FaceCoefficients) -> Tensor:
        """(B, 251) the face code of coefficients in the face model's units (whitened with the model's statistics;
        the pose is not part of the code)."""
        return self.whitening.whiten(coefficients).to(self.w_avg.dtype)

    @property
    def coefficient_statistics(self) -> CoefficientStatistics:
        """The statistics the face code is whitened with (views of the buffers)."""
        return self.whitening.statistics()

    def set_coefficient_statistics(self, statistics: CoefficientStatistics) -> None:
        """Whiten the face code with ``statistics`` from now on (e.g. fitted to a dataset's reconstructions)."""
        self.whitening.set_statistics(statistics)

    # ---------------------------------------------------------------------------------- fields
    def field_fn(self, film: Tensor, lock_view_dependence: bool = False, fast: bool = False):
        """The renderer's field callback for FiLM codes (B, w_film); ``fast`` folds the SIREN (no gradients)."""
        net = self.field.fold(film) if fast else (lambda p, d: self.field(p, d, film))
        lock = lock_view_dependence or not self.config.view_dependent

        def field(points: Tensor, view_dirs: Tensor):
            if lock:
                view_dirs = torch.zeros_like(view_dirs)
                view_dirs[..., 2] = -1  # the official locked direction (0, 0, -1)
            return net(points, view_dirs)
        return field

    def density(self, w: Tensor) -> Callable[[Tensor], Tensor]:
        film, _ = self.split_latent(w)
        return lambda points: self.field.density(points, expand_latent(film, points.shape[0]))

    def color(self, w: Tensor) -> Callable[[Tensor], Tensor]:
        film, _ = self.split_latent(w)

        def fn(points: Tensor) -> Tensor:
            dirs = torch.zeros_like(points)
            dirs[..., 2] = -1
            return self.field(points, dirs, expand_latent(film, points.shape[0]))[0]
        return fn

    # ---------------------------------------------------------------------------------- conditioning
    @property
    def face_model(self) -> MorphableFaceModel:
        """The face model on the generator's device (shared by every generator of the process, outside the module
        tree: never in checkpoints, never counted as the model's own tensors)."""
        return face_model_on(self.face_source, self.w_avg.device)

    def conditioning(self, code: Tensor, cameras: Cameras, resolution: int,
                     reference_code: Tensor | None = None) -> MeshConditioning:
        """The mesh maps of face codes (B, 251) from B cameras (``reference_code``: the flow toward it)."""
        coefficients = self.whitening.unwhiten(code.detach())
        reference = None if reference_code is None else self.whitening.unwhiten(reference_code.detach())
        return build_conditioning(self.face_model, coefficients, cameras, resolution, self.config.pixel_grid,
                                  reference, self.config.mouth_hole_fraction)

    def face_code_layout(self) -> FaceCodeLayout:
        """The face code's slices: identity 0:80 | expression 80:144 | texture 144:224 | lighting 224:251."""
        bounds, start = {}, 0
        for name, size in FACE_GROUPS:
            bounds[name], start = slice(start, start + size), start + size
        return FaceCodeLayout(**bounds, dim=FACE_CODE_DIM)

    def face_code(self, z: Tensor) -> Tensor:
        """(B, 251) the whitened face slices of z (B, 411)."""
        return self.layout.face_code(z)

    @torch.no_grad()
    def face_renders(self, code: Tensor, cameras: Cameras, resolution: int) -> FaceRenders:
        """The mesh depth, mask, shaded mesh and landmarks of face codes (B, 251) from B cameras."""
        cond = self.conditioning(code.to(self.w_avg), cameras, resolution)
        return FaceRenders(cond.mesh_depth[:, None], cond.face_mask[:, None].float(), cond.shaded, cond.landmarks_2d)

    def near_mesh_guide(self, conditioning: MeshConditioning, render: RenderConfig, ratio: float) -> NearMeshGuide:
        """The fine2 band of a render: the mesh depth and mask per ray, width ``(far - near) * thick_ratio``."""
        depth, mask = conditioning.rays()
        return NearMeshGuide(depth, mask, (render.far - render.near) * self.config.thick_ratio, ratio)

    # ---------------------------------------------------------------------------------- rendering
    def render_details(self, w: Tensor, cameras: Cameras, *, condition: Condition | None = None,
                       resolution: int | None = None, render: RenderConfig | None = None,
                       lock_view_dependence: bool = False, generator: torch.Generator | None = None,
                       draws: RandomDraws | None = None, fast: bool = False, near_mesh_ratio: float | None = None,
                       reference_code: Tensor | None = None) -> CGOFRender:
        """Render latents w (B or 1, w_dim) from B cameras, keeping rays, samples and conditioning (see
        :meth:`synthesis` for the arguments; ``reference_code`` (B, 251) adds the mesh flow toward it)."""
        res = resolution or self.config.resolution
        cfg = render or self.config.render
        B = len(cameras)
        film, code = self.split_latent(expand_latent(w, B))
        face = self._face_condition(condition, B)
        code = code if face is None else face
        cond = self.conditioning(code, cameras, res, reference_code)
        rays_o, rays_d = generate_rays(cameras, res, res, grid=self.config.pixel_grid)
        fine2 = self.config.fine2_count(cfg)
        ratio = self.config.near_mesh_ratio if near_mesh_ratio is None else near_mesh_ratio
        guide = self.near_mesh_guide(cond, cfg, ratio) if self.config.near_mesh and fine2 > 0 else None
        field = self.field_fn(film, lock_view_dependence, fast)
        if cfg.bands is not None:
            if draws is not None:
                raise ValueError("injected draws reproduce the exact sampling; the fast sampling of render.bands "
                                 "places its own samples (render with bands=None to use draws)")
            rays = render_banded(field, rays_o, rays_d, cfg, fine2, guide, (res, res), generator)
        else:
            pass_draws = None if draws is None else PassDraws(draws.stratified, draws.importance)
            rays = render_chunked(field, rays_o, rays_d, cfg, fine2, guide, generator, pass_draws)
        return CGOFRender(rays, cond, rays_o, rays_d, res)

    def output(self, details: CGOFRender, w: Tensor, normals: bool = False,
               render: RenderConfig | None = None) -> GeneratorOutput:
        """The :class:`GeneratorOutput` of a render, with the conditioning maps ``mesh_depth`` (B, 1, H, W),
        ``mesh_mask`` (B, 1, H, W) in {0, 1} and ``mesh_shaded`` (B, 3, H, W) in [-1, 1] in ``maps``."""
        out, cond, cfg = details.rays.composited, details.conditioning, render or self.config.render
        normal_map = None
        if normals:
            points = details.rays_o + details.rays_d * out.surface_depth[..., None]
            n = density_normals(self.density(expand_latent(w, len(points))), points,
                                chunk=cfg.max_points or points.shape[1])
            normal_map = details.to_image(n * (out.opacity[..., None] > 1e-3))
        maps = {"mesh_depth": cond.mesh_depth[:, None], "mesh_mask": cond.face_mask[:, None].float(),
                "mesh_shaded": cond.shaded}
        return GeneratorOutput(image=details.to_image(out.color[..., :3]) * 2 - 1,
                               depth=details.to_image(out.depth[..., None]),
                               opacity=details.to_image(out.opacity[..., None]), normals=normal_map,
                               surface_depth=details.to_image(out.surface_depth[..., None]), maps=maps)

    def synthesis(self, w: Tensor, cameras: Cameras, *, condition: Condition | None = None,
                  resolution: int | None = None, render: RenderConfig | None = None,
                  lock_view_dependence: bool = False, normals: bool = False, generator: torch.Generator | None = None,
                  draws: RandomDraws | None = None, fast: bool = False,
                  near_mesh_ratio: float | None = None) -> GeneratorOutput:
        """Render latents w (B or 1, w_dim) from B cameras around their meshes.

        Args:
            condition: ``face`` (B or 1, 251) replaces w's face code (the mesh follows it).
            resolution: output size in pixels (default ``config.resolution``).
            render: sampling settings (default ``config.render``; tools pass ``eval_render``); the third pass
                has ``config.fine2_samples`` samples (None: as many as the fine pass).
            lock_view_dependence: feed the view direction (0, 0, -1) to the colour branch.
            normals: also return normals (gradient of density at the surface point).
            generator, draws: randomness (``draws.stratified`` / ``draws.importance`` feed the coarse and fine
                passes; the fine2 draws come from ``generator``).
            fast: inference only: the folded SIREN (rounding differs by about 1e-6 relative).
            near_mesh_ratio: blend of the fine2 samples toward the mesh band (default ``config.near_mesh_ratio``).
        Returns:
            image in [-1, 1], depth (sum w t, last-sample filled), opacity, surface depth, normals on request,
            and the conditioning maps (see :meth:`output`).
        """
        details = self.render_details(w, cameras, condition=condition, resolution=resolution, render=render,
                                      lock_view_dependence=lock_view_dependence, generator=generator, draws=draws,
                                      fast=fast, near_mesh_ratio=near_mesh_ratio)
        return self.output(details, w, normals, render)

    def normals_at(self, w: Tensor, points: Tensor) -> Tensor:
        """(B, N, 3) differentiable unit normals of w's density at points (B, N, 3) (:func:`surface_normals`)."""
        return surface_normals(self.density(w), points)


__all__ = ["CGOFGenerator", "CGOFRender", "normalised_pose", "surface_normals"]
