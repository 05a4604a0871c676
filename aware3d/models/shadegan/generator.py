"""The ShadeGAN generator: pi-GAN's mapping network and FiLM-SIREN with an albedo branch, normals from the
density, Lambertian shading after integration, and the surface tracker that narrows each ray's samples."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ...cameras import Cameras, generate_rays
from ...cameras.poses import angles_from_cam2world
from ...nn.siren import MappingNetwork, refresh_w_avg
from ...rendering import CameraFrameRays, RandomDraws, RenderConfig, render_rays
from ..base import Capabilities, Condition, Generator3D, GeneratorOutput, expand_latent
from ...inversion.space import LatentGroup, LatentSpace, SynthesisLatent, film_groups, film_w
from .config import LIGHT_PATH_DX, RELIGHT_DX, RELIGHT_FRONTAL, ShadeGANConfig
from .light import LightPrior, lambertian_shading, light_coefficients
from .networks import ShadingSiren, SurfaceTracker


def resize_depth(depth: Tensor, size: int) -> Tensor:
    """(B, S, S) depth map -> (B, size, size): area when shrinking, bilinear (align_corners=False) when
    enlarging, untouched when equal (the official ``resize``)."""
    if depth.shape[-1] == size:
        return depth
    mode = {"mode": "area"} if size < depth.shape[-1] else {"mode": "bilinear", "align_corners": False}
    return F.interpolate(depth[:, None], size=(size, size), **mode)[:, 0]


def surface_band(depth: Tensor, resolution: int, near: float, far: float, delta: float) -> tuple[Tensor, Tensor]:
    """Per-ray sample bounds (B, R) of a band of width ``delta`` around the tracked depth (B, S, S).

    The depth is resized to the render resolution and clamped to ``[near + delta/2, far - delta/2]`` so the
    band stays inside [near, far]; the band is ``depth -+ delta/2`` (rays in row-major pixel order)."""
    d = resize_depth(depth, resolution).clamp(near + delta / 2, far - delta / 2).reshape(depth.shape[0], -1)
    return d - delta / 2, d + delta / 2


class ShadeGANGenerator(Generator3D):
    """z -> w (FiLM frequencies and phases) -> albedo + density field -> albedo, normal and depth maps
    -> image = clamp(albedo * shading(normal, light), 0, 1).

    ``w_avg`` (1, w_dim) is the truncation centre (the official code re-draws it at every render; a stored one
    makes renders reproducible). ``light_mean`` (4,) / ``light_cov`` (4, 4) are the light prior (from the
    config until a prior file is loaded); renders without a light condition use ``light_mean``.
    """

    family = "shadegan"
    capabilities = Capabilities(normals=True, conditions=("light",), surface_band=True)

    def __init__(self, config: ShadeGANConfig = ShadeGANConfig()):
        super().__init__()
        self.config = config
        self.z_dim = config.z_dim
        self.field = ShadingSiren(config.hidden_dim, config.num_film_layers, config.box_warp,
                                  config.view_condition, config.light_condition)
        self.mapping_network = MappingNetwork(config.z_dim, config.mapping_hidden_dim, self.field.w_dim,
                                              config.mapping_layers)
        self.tracker = (SurfaceTracker(self.field.w_dim, config.tracker_size, config.tracker_channels)
                        if config.surface_tracker else None)
        self.register_buffer("w_avg", torch.zeros(1, self.field.w_dim))
        self.register_buffer("light_mean", torch.tensor(config.light_mean, dtype=torch.float32))
        self.register_buffer("light_cov", torch.diag(torch.tensor(config.light_std, dtype=torch.float32) ** 2))

    # ---------------------------------------------------------------------------------- latents and light
    @torch.no_grad()
    def update_w_avg(self, num_samples: int | None = None, seed: int = 0, batch: int = 2500) -> Tensor:
        """Recompute ``w_avg`` from ``num_samples`` z drawn from a generator seeded with ``seed``."""
        return refresh_w_avg(self.w_avg, self.mapping_network, self.z_dim, num_samples or self.config.w_avg_samples,
                             seed, batch)

    def mapping(self, z: Tensor, truncation_psi: float = 1.0, cameras: Cameras | None = None,
                condition: Condition | None = None) -> Tensor:
        """z (B, z_dim) -> w (B, w_dim): raw frequencies then phases; psi < 1 pulls w toward ``w_avg``."""
        self.check_condition(condition)
        w = self.mapping_network(z)
        if truncation_psi != 1:
            w = self.w_avg + truncation_psi * (w - self.w_avg)
        return w

    @torch.no_grad()
    def inversion_space(self, num_samples: int = 1000, seed: int = 0) -> LatentSpace:
        """The FiLM frequencies and phases (the halves of w) from ``w_avg`` with the spread of ``num_samples``
        mapped z (seeded), and the light code (the condition) from the prior's mean with its per-entry std, freed
        in the refinement only: a light's direction can fake a turn of the camera, so the camera settles first."""
        z = torch.randn(num_samples, self.z_dim, generator=torch.Generator().manual_seed(seed)).to(self.w_avg.device)
        light = LatentGroup("light", self.light_mean[None].clone(),
                            torch.diagonal(self.light_cov).clamp_min(1e-6).sqrt()[None], stage=1)

        def compose(values) -> SynthesisLatent:
            return SynthesisLatent(film_w(values), Condition(light=values["light"]))
        return LatentSpace((*film_groups(self.w_avg, self.mapping_network(z)), light), compose)

    @property
    def light_prior(self) -> LightPrior:
        """The model's light prior (its buffers)."""
        return LightPrior(self.light_mean.detach().cpu(), self.light_cov.detach().cpu())

    def set_light_prior(self, prior: LightPrior) -> None:
        """Replace the light prior (e.g. the official ``celeba_light_mvn.pth``)."""
        with torch.no_grad():
            self.light_mean.copy_(prior.mean)
            self.light_cov.copy_(prior.cov)

    def sample_light(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, 4) light codes from the prior, on the model's device."""
        return self.light_prior.sample(n, generator).to(self.light_mean.device)

    def light_code(self, condition: Condition | None, batch: int) -> Tensor:
        """The (batch, 4) light of a render: ``condition.light`` (one row or one per latent), else the prior's mean."""
        light = None if condition is None else condition.light
        if light is None:
            light = self.light_mean[None]
        if light.dim() != 2 or light.shape[-1] != 4:
            raise ValueError(f"a ShadeGAN light condition is (B, 4) (ambient, diffuse, dx, dy), got {tuple(light.shape)}")
        return expand_latent(light.to(self.light_mean), batch)

    # ---------------------------------------------------------------------------------- fields
    def field_fn(self, w: Tensor, light: Tensor, lock_view_dependence: bool = False):
        """The renderer's field callback: features ``[albedo (3), unnormalised normal (3)]`` and raw sigma."""
        lock = lock_view_dependence or not self.config.view_condition

        def field(points: Tensor, view_dirs: Tensor):
            if lock:
                # The official renders then feed the world direction (0, 0, -1) to every sample.
                view_dirs = torch.zeros_like(view_dirs)
                view_dirs[..., 2] = -1
            albedo, sigma, normal = self.field.shade_forward(points, view_dirs, light, w)
            return torch.cat([albedo, normal.to(albedo.dtype)], -1), sigma
        return field

    def density(self, w: Tensor) -> Callable[[Tensor], Tensor]:
        return lambda points: self.field.density(points, expand_latent(w, points.shape[0]))

    def color(self, w: Tensor) -> Callable[[Tensor], Tensor]:
        """Albedo in [0, 1] under the prior's mean light, view direction (0, 0, -1)."""
        def fn(points: Tensor) -> Tensor:
            B = points.shape[0]
            dirs = torch.zeros_like(points)
            dirs[..., 2] = -1
            freq, phase = self.field.split_w(expand_latent(w, B))
            h = self.field.trunk(points, freq, phase)
            return self.field.albedo(h, dirs, self.light_code(None, B), freq, phase)
        return fn

    def tracker_depth(self, w: Tensor, cameras: Cameras, render: RenderConfig | None = None) -> Tensor | None:
        """(B, size, size) depth predicted by the surface tracker from w (B, w_dim) and the camera angles:
        ``near + pred * (far - near)`` with ``render``'s bounds (default ``config.render``); None without a tracker."""
        if self.tracker is None:
            return None
        cfg = render or self.config.render
        yaw, pitch, _ = angles_from_cam2world(cameras.cam2world)
        pred = self.tracker(expand_latent(w, len(cameras)), pitch, yaw)[:, 0]
        return cfg.near + pred * (cfg.far - cfg.near)

    # ---------------------------------------------------------------------------------- rendering
    def synthesis(self, w: Tensor, cameras: Cameras, *, condition: Condition | None = None,
                  resolution: int | None = None, render: RenderConfig | None = None,
                  lock_view_dependence: bool = False, normals: bool = True, generator: torch.Generator | None = None,
                  draws: RandomDraws | None = None, fast: bool = False, delta: float | None = None,
                  light_ratio: float | None = None) -> GeneratorOutput:
        """Render latents w (B or 1, w_dim) from B cameras under ``condition.light`` (default: the prior's mean).

        Args:
            resolution, render, generator, draws: as pi-GAN (``render`` defaults to ``config.render``).
            lock_view_dependence: feed (0, 0, -1) as view direction (no-view models always do).
            normals: ignored: the shading needs the normals, so they are always returned.
            fast: ignored (the normals need the exact, differentiable SIREN).
            delta: band width around the tracked depth (default ``config.delta``); <= 0 samples [near, far].
            light_ratio: shading phase-in ratio (default ``config.light_ratio``).
        Returns:
            image in [-1, 1]; depth ``sum w t / (sum w + 1e-5)`` clamped to [near, far] (empty rays: near);
            normals (unit, 0 on empty rays); maps ``albedo`` (B, 3, H, W) in [-1, 1], ``shading`` (B, 1, H, W)
            and, with a tracker, ``tracker_depth`` (B, 1, H, W) (resized, unclamped), ``tracker_depth_full``
            (B, 1, T, T) (the tracker's own size, as the official ``depth_pred``) and ``depth_unclamped``
            (B, 1, H, W) (the depth before the clamp: the official training path resizes it to the tracker's
            size, then clamps, for the tracker's loss).
        """
        self.check_condition(condition)
        res = resolution or self.config.resolution
        cfg = render or self.config.render
        B = len(cameras)
        w = expand_latent(w, B)
        light = self.light_code(condition, B)
        delta = self.config.delta if delta is None else delta
        ratio = self.config.light_ratio if light_ratio is None else light_ratio
        rays_o, rays_d, dirs_cam = generate_rays(cameras, res, res, grid=self.config.pixel_grid, return_camera_dirs=True)
        # The tracker reads a detached w (as officially): its loss trains the tracker, never the mapping network.
        tracked = self.tracker_depth(w.detach(), cameras, cfg)
        near = far = None
        if tracked is not None and delta > 0:
            # Samples are placed around the prediction; the tracker learns from its own loss, not through them.
            near, far = surface_band(tracked.detach(), res, cfg.near, cfg.far, delta)
        out = render_rays(self.field_fn(w, light, lock_view_dependence), rays_o, rays_d, cfg, generator=generator,
                          draws=draws, camera_frame=CameraFrameRays(cameras.cam2world, dirs_cam), near=near, far=far,
                          grid=(res, res))
        albedo = out.features[..., :3].clamp(0, 1)
        normal = out.features[..., 3:6]
        normal = normal / (normal.norm(dim=-1, keepdim=True) + 1e-7)
        shading = lambertian_shading(normal, light, ratio)
        rgb = (albedo * shading).clamp(0, 1)
        depth_unclamped = out.depth / (out.opacity + 1e-5)
        depth = depth_unclamped.clamp(cfg.near, cfg.far)

        def to_image(x: Tensor) -> Tensor:
            return x.reshape(B, res, res, -1).permute(0, 3, 1, 2)

        maps = {"albedo": to_image(albedo) * 2 - 1, "shading": to_image(shading)}
        if tracked is not None:
            maps["tracker_depth"] = resize_depth(tracked, res)[:, None]
            maps["tracker_depth_full"] = tracked[:, None]
            maps["depth_unclamped"] = to_image(depth_unclamped[..., None])
        return GeneratorOutput(image=to_image(rgb) * 2 - 1, depth=to_image(depth[..., None]),
                               opacity=to_image(out.opacity[..., None]), normals=to_image(normal),
                               surface_depth=to_image(out.surface_depth[..., None]), maps=maps)


    # ---------------------------------------------------------------------------------- the tools' hooks
    def relight_codes(self) -> Tensor:
        """(5, 4) ``render.py --relight``'s codes: ambient 0.17, diffuse 0.42, dy 0.3 and dx -1.5, -1, 0, 1, 1.5."""
        a, d, _, dy = RELIGHT_FRONTAL
        return torch.tensor([[a, d, dx, dy] for dx in RELIGHT_DX], dtype=torch.float32, device=self.light_mean.device)

    def light_path(self, frames: int) -> Tensor:
        """(frames, 4) a looping sweep from the left to the right and back: dx = -1.5 cos(2 pi i / frames), with
        the ambient, diffuse and dy of ``RELIGHT_FRONTAL`` (0.17, 0.42, 0.3)."""
        if frames < 1:
            raise ValueError(f"a light path needs at least 1 frame, got {frames}")
        a, d, _, dy = RELIGHT_FRONTAL
        dx = -LIGHT_PATH_DX * torch.cos(2 * math.pi * torch.arange(frames, dtype=torch.float64) / frames)
        codes = torch.stack([torch.full_like(dx, a), torch.full_like(dx, d), dx, torch.full_like(dx, dy)], -1)
        return codes.to(torch.float32).to(self.light_mean.device)

    def relight_maps(self, out: GeneratorOutput, condition: Condition | None, render: RenderConfig) -> dict[str, Tensor]:
        """``render.py``'s lighting maps, each (B, C, H, W) in [0, 1]: ``albedo`` / 2 + 0.5; ``shading`` over
        its maximum per image; ``diffuse``, the Lambertian term ``(shading - k_a) / k_d`` (render.py's, with the
        phase-in ratio undone; absent at ratio 0); ``tracker_depth`` from ``render``'s near (0) to far (1)."""
        k_a, k_d = (k[:, :, None, None] for k in light_coefficients(self.light_code(condition, len(out.image))))
        shading = out.maps["shading"]
        peak = shading.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
        maps = {"albedo": out.maps["albedo"] / 2 + 0.5, "shading": shading / peak}
        ratio = self.config.light_ratio
        if ratio > 0:
            maps["diffuse"] = (((shading - (1 - ratio)) / ratio - k_a) / k_d.clamp_min(1e-6)).clamp(0, 1)
        if "tracker_depth" in out.maps:
            maps["tracker_depth"] = ((out.maps["tracker_depth"] - render.near) / (render.far - render.near)).clamp(0, 1)
        return maps

    def shape_level(self) -> float:
        """The shapes tool's default iso level: ``config.shape_level`` (``extract_shapes.py --sigma_threshold 35``)."""
        return self.config.shape_level
