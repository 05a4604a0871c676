"""The pi-GAN generator: mapping network + FiLM-SIREN field, rendered by the shared renderer."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ...cameras import Cameras, generate_rays
from ...rendering import CameraFrameRays, RandomDraws, RenderConfig, density_normals, render_rays
from ..base import Condition, Generator3D, GeneratorOutput, expand_latent
from ...inversion.space import LatentSpace, SynthesisLatent, film_groups, film_w
from .config import PiGANConfig
from ...nn.siren import FiLMSiren, MappingNetwork, refresh_w_avg


class PiGANGenerator(Generator3D):
    """z -> w (FiLM frequencies and phases) -> radiance field -> volume-rendered image.

    ``w_avg`` (1, w_dim) is a buffer: the mean w over ``config.w_avg_samples`` latents drawn with a fixed
    seed, used as the truncation centre. (The official code re-draws it at every render; a stored one
    makes renders reproducible.)
    """

    family = "pigan"

    def __init__(self, config: PiGANConfig = PiGANConfig()):
        super().__init__()
        self.config = config
        self.z_dim = config.z_dim
        self.field = FiLMSiren(config.hidden_dim, config.num_film_layers, config.box_warp)
        self.mapping_network = MappingNetwork(config.z_dim, config.mapping_hidden_dim, self.field.w_dim, config.mapping_layers)
        self.register_buffer("w_avg", torch.zeros(1, self.field.w_dim))

    @torch.no_grad()
    def update_w_avg(self, num_samples: int | None = None, seed: int = 0, batch: int = 2500) -> Tensor:
        """Recompute ``w_avg`` from ``num_samples`` z drawn from a generator seeded with ``seed``."""
        return refresh_w_avg(self.w_avg, self.mapping_network, self.z_dim, num_samples or self.config.w_avg_samples,
                             seed, batch)

    def mapping(self, z: Tensor, truncation_psi: float = 1.0, cameras: Cameras | None = None,
                condition: Condition | None = None) -> Tensor:
        """z (B, z_dim) -> w (B, w_dim); psi < 1 pulls w toward ``w_avg`` (pi-GAN truncation). pi-GAN takes no
        condition (see :class:`~aware3d.models.base.Condition`)."""
        self.check_condition(condition)
        w = self.mapping_network(z)
        if truncation_psi != 1:
            w = self.w_avg + truncation_psi * (w - self.w_avg)
        return w

    @torch.no_grad()
    def inversion_space(self, num_samples: int = 1000, seed: int = 0) -> LatentSpace:
        """The FiLM frequencies and phases (the halves of w, as pi-GAN's inverse_render.py optimises them), from
        ``w_avg`` with the spread of ``num_samples`` mapped z (seeded); no condition."""
        z = torch.randn(num_samples, self.z_dim, generator=torch.Generator().manual_seed(seed)).to(self.w_avg.device)
        return LatentSpace(film_groups(self.w_avg, self.mapping_network(z)), lambda v: SynthesisLatent(film_w(v)))

    def field_fn(self, w: Tensor, lock_view_dependence: bool = False, fast: bool = False):
        """The renderer's field callback for latents w (B, w_dim); ``fast`` uses the folded SIREN (no gradients)."""
        net = self.field.fold(w) if fast else (lambda p, d: self.field(p, d, w))

        lock = lock_view_dependence or not self.config.view_dependent

        def field(points: Tensor, view_dirs: Tensor):
            if lock:
                # The official renders then feed the world direction (0, 0, -1) to every sample.
                view_dirs = torch.zeros_like(view_dirs)
                view_dirs[..., 2] = -1
            return net(points, view_dirs)
        return field

    def density(self, w: Tensor) -> Callable[[Tensor], Tensor]:
        return lambda points: self.field.density(points, expand_latent(w, points.shape[0]))

    def color(self, w: Tensor) -> Callable[[Tensor], Tensor]:
        def fn(points: Tensor) -> Tensor:
            dirs = torch.zeros_like(points)
            dirs[..., 2] = -1
            return self.field(points, dirs, expand_latent(w, points.shape[0]))[0]
        return fn

    def _plain_background(self, field, batch: int, like: Tensor) -> Tensor | None:
        """(B, 1, C) the field's colour at ``config.background_point`` for each latent (None without one)."""
        if self.config.background_point is None:
            return None
        point = torch.tensor(self.config.background_point, dtype=like.dtype, device=like.device).expand(batch, 1, 3)
        view_dirs = torch.zeros_like(point)
        view_dirs[..., 2] = -1
        return field(point, view_dirs)[0]

    def synthesis(self, w: Tensor, cameras: Cameras, *, resolution: int | None = None, render: RenderConfig | None = None,
                  lock_view_dependence: bool = False, normals: bool = False, generator: torch.Generator | None = None,
                  draws: RandomDraws | None = None, fast: bool = False,
                  condition: Condition | None = None) -> GeneratorOutput:
        """Render latents w (B or 1, w_dim) from B cameras.

        Args:
            resolution: output size in pixels (default ``config.resolution``).
            render: sampling settings (default ``config.render``, the training ones; tools pass ``eval_render``).
            lock_view_dependence: ignore the view direction in the colour branch (consistent videos).
            normals: also return normals (gradient of density at the expected surface point).
            generator, draws: randomness of the renderer (see :func:`~aware3d.rendering.render_rays`).
            fast: inference only: fold the FiLM parameters into the weights (faster; rounding differs from
                the exact, official-parity path by about 1e-6 relative).
            condition: must be None or empty (pi-GAN takes no condition).
        """
        self.check_condition(condition)
        res = resolution or self.config.resolution
        cfg = render or self.config.render
        B = len(cameras)
        w = expand_latent(w, B)
        rays_o, rays_d, dirs_cam = generate_rays(cameras, res, res, grid=self.config.pixel_grid, return_camera_dirs=True)
        # Coarse points formed in the camera frame, as the official code does (bitwise-equal renders).
        frame = CameraFrameRays(cameras.cam2world, dirs_cam)
        field = self.field_fn(w, lock_view_dependence, fast)
        out = render_rays(field, rays_o, rays_d, cfg, generator=generator, draws=draws, camera_frame=frame,
                          background=self._plain_background(field, B, rays_o), grid=(res, res))

        def to_image(x: Tensor) -> Tensor:
            return x.reshape(B, res, res, -1).permute(0, 3, 1, 2)

        normal_map = None
        if normals:
            # pi-GAN's depth is unnormalised (and mixes in any last-sample fill): use the surface depth.
            points = rays_o + rays_d * out.surface_depth[..., None]
            n = density_normals(self.density(w), points, chunk=cfg.max_points or points.shape[1])
            normal_map = to_image(n * (out.opacity[..., None] > 1e-3))
        return GeneratorOutput(
            image=to_image(out.features[..., :3]) * 2 - 1,
            depth=to_image(out.depth[..., None]),
            opacity=to_image(out.opacity[..., None]),
            normals=normal_map,
            surface_depth=to_image(out.surface_depth[..., None]),
        )

