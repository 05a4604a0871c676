"""The EpiGRAF generator: mapping (class + camera conditioning) -> StyleGAN2 tri-planes -> averaged plane features
-> a 2-layer decoder -> the shared volume renderer (full images or patches) -> optional background.

Two ways to give cameras, everywhere a camera is taken:

* ours, :class:`~aware3d.cameras.Cameras` (OpenCV, our world: frontal camera on +z), what the shared tools pass;
* EpiGRAF's ``camera_angles`` (B, 3) tensor [yaw, pitch, roll] (frontal [0, pi/2, 0]; see :mod:`.cameras`).

Both end up as the official OpenGL cam2world in EpiGRAF's own world (our cameras are moved there exactly), and the
model renders there with the official arithmetic; depths are frame-free, normals are returned in our world and
``density(w)`` / ``color(w)`` take our-world points.

Tri-planes can be cached while only the camera changes: ``planes = G.planes(ws)`` then
``G.render_planes(planes, ws, cameras)``. Nothing is stored on the module as a side effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...cameras import Cameras, rotate_to_world
from ...nn.stylegan2.layers import FullyConnectedLayer
from ...nn.stylegan2.networks import MappingNetwork, SynthesisNetwork
from ...nn.triplane import project_onto_planes
from ...rendering import CameraFrameRays, RandomDraws, RenderConfig, density_normals, render_rays
from ..base import Capabilities, Condition, Generator3D, GeneratorOutput, expand_latent
from ...inversion.space import LatentSpace, SynthesisLatent, style_groups, style_ws
from .background import SphereINR, plane_background, render_sphere_background
from .cameras import (
    PatchParams,
    camera_directions,
    cameras_from_epigraf_angles,
    clamp_pitch,
    epigraf_angles_from_cameras,
    epigraf_cam2world,
    epigraf_points_to_ours,
    fov_of_cameras,
    ndc_coordinates,
    our_c2w_to_epigraf,
    our_points_to_epigraf,
)
from .config import EpiGRAFConfig, NoiseMode

CameraInput = Cameras | Tensor
"""Our Cameras, or EpiGRAF camera_angles (B, 3)."""


@dataclass
class EpiGRAFOutput(GeneratorOutput):
    """One batch of EpiGRAF renders (B, C, R, R). ``image`` holds the decoder's linear colours composited (the
    official output: not clamped; a trained model gives about [-1, 1]); ``depth`` is the official expected depth
    ``sum w t`` (not divided by the opacity; the background adds none)."""

    final_transmittance: Tensor | None = None
    """(B, 1, R, R) the foreground's transmittance in front of its last sample (the background's weight)."""
    background: Tensor | None = None
    """(B, 3, R, R) the background colour behind each ray (None without a background model or with ignore_bg)."""


class TriPlaneDecoder(nn.Module):
    """EpiGRAF's ``TriPlaneMLP``: mean of the 3 plane features -> FC + lrelu (gain sqrt 2) -> FC -> [r, g, b, sigma].

    Colours are linear (no sigmoid); the raw density is the *last* channel. View directions are not used.
    """

    def __init__(self, in_features: int = 32, hidden: int = 64, out_dim: int = 4):
        super().__init__()
        self.hidden = FullyConnectedLayer(in_features, hidden, activation="lrelu")
        self.output = FullyConnectedLayer(hidden, out_dim)

    def forward(self, plane_features: Tensor) -> Tensor:
        """(B, 3, N, C) sampled plane features -> (B, N, out_dim)."""
        B, _, N, C = plane_features.shape
        x = plane_features.mean(dim=1).reshape(B * N, C)
        return self.output(self.hidden(x)).view(B, N, -1)


def sample_triplanes(planes: Tensor, points: Tensor, cube_scale: float) -> Tensor:
    """Bilinear features (B, 3, N, C) of EpiGRAF-world ``points`` (B, N, 3) on ``planes`` (B, 3, C, H, W).

    Points are divided by ``cube_scale`` and projected to the (x, y), (x, z), (y, z) planes; ``align_corners=True``
    puts the texel centres on the cube faces; outside the cube the features fade to 0 within one texel.
    """
    B, _, C, H, W = planes.shape
    N = points.shape[1]
    grid = project_onto_planes(points / cube_scale, "corrected").view(B * 3, 1, N, 2)
    x = F.grid_sample(planes.reshape(B * 3, C, H, W), grid, mode="bilinear", align_corners=True)
    return x.view(B, 3, C, N).permute(0, 1, 3, 2)


def class_one_hot(label: Tensor, c_dim: int, batch: int) -> Tensor:
    """(B, c_dim) float32 one-hot rows of class indices ``label`` ((B,) or (1,) int64, each in [0, c_dim))."""
    label = label.reshape(-1).to(torch.int64)
    if label.numel() == 1 and batch > 1:
        label = label.expand(batch)
    if label.numel() != batch:
        raise ValueError(f"{label.numel()} class labels for {batch} latents; pass one or {batch}")
    if bool(((label < 0) | (label >= c_dim)).any()):
        raise ValueError(f"class labels must be in [0, {c_dim}), got {label.tolist()}")
    return F.one_hot(label, c_dim).to(torch.float32)


def wrapped_camera_label(camera_angles: Tensor) -> Tensor:
    """(B, 2) EpiGRAF's GPC label: yaw and pitch mapped to ``sign(a) * (|a| mod 2 pi) / (2 pi)``."""
    a = camera_angles[:, [0, 1]]
    return a.sign() * ((a.abs() % (2.0 * torch.pi)) / (2.0 * torch.pi))


class EpiGRAFGenerator(Generator3D):
    """z (B, z_dim) -> ws (B, num_ws, w_dim) -> tri-planes -> volume-rendered images or patches."""

    family = "epigraf"
    # The mapping network tracks its mean w in training (update_emas); class labels condition the class-conditional
    # models (c_dim > 0; an unconditional model refuses them with its c_dim). ignore_bg drops the plane or sphere
    # background model (inference.py's bg_nobg).
    capabilities = Capabilities(plane_cache=True, tracks_w_avg=True, conditions=("class_label",),
                                separate_background=True)

    def __init__(self, config: EpiGRAFConfig = EpiGRAFConfig()):
        super().__init__()
        self.config = config
        self.z_dim = config.z_dim
        extra = 3 if config.background == "plane" else 0
        self.backbone = SynthesisNetwork(config.w_dim, config.plane_resolution, 3 * config.plane_channels + extra,
                                         config.channel_base, config.channel_max, 0, config.conv_clamp,
                                         config.fused_modconv)
        self.background_inr = None
        num_ws = self.backbone.num_ws
        if config.background == "sphere":
            self.background_inr = SphereINR(config.w_dim, config.bg_num_blocks, config.bg_channel_base,
                                            config.bg_channel_max, posenc_period=config.bg_posenc_period)
            num_ws += self.background_inr.num_ws
        label_dim = config.c_dim + (2 if config.camera_cond else 0)
        self.mapping_network = MappingNetwork(config.z_dim, label_dim, config.w_dim, num_ws, config.mapping_layers,
                                              config.mapping_lr_mul, config.w_avg_beta)
        self.decoder = TriPlaneDecoder(config.plane_channels, config.decoder_hidden)
        self.register_buffer("mean_camera_pose", torch.tensor(config.mean_camera_pose, dtype=torch.float32))

    @property
    def num_ws(self) -> int:
        return self.mapping_network.num_ws

    @property
    def num_classes(self) -> int:
        return self.config.c_dim

    @property
    def w_avg(self) -> Tensor:
        """(w_dim,) the truncation centre."""
        return self.mapping_network.w_avg

    # -- cameras --------------------------------------------------------------------------------------
    def cameras_from_angles(self, camera_angles: Tensor, fov_deg: float | None = None) -> Cameras:
        """Our Cameras for EpiGRAF camera_angles (B, 3) at the model's radius (exact conversion)."""
        return cameras_from_epigraf_angles(camera_angles.to(self.device), self.config.camera_radius,
                                           fov_deg or self.config.fov_deg)

    def epigraf_camera(self, cameras: CameraInput, fov: float | Tensor | None = None) -> tuple[Tensor, float | Tensor]:
        """(EpiGRAF OpenGL cam2world (B, 4, 4) in its world, fov in degrees: a float or (B,)) for ``cameras``."""
        if isinstance(cameras, Cameras):
            c2w = our_c2w_to_epigraf(cameras.cam2world.to(self.device, torch.float32))
            return c2w, fov_of_cameras(cameras, self.config.fov_deg) if fov is None else fov
        if isinstance(cameras, Tensor) and cameras.ndim == 2 and cameras.shape[1] == 3:
            angles = clamp_pitch(cameras.to(self.device, torch.float32))
            return epigraf_cam2world(angles, self.config.camera_radius), self.config.fov_deg if fov is None else fov
        raise ValueError("cameras must be Cameras or EpiGRAF camera_angles (B, 3) [yaw, pitch, roll], got "
                         f"{type(cameras).__name__}{tuple(cameras.shape) if isinstance(cameras, Tensor) else ''}")

    # -- mapping ----------------------------------------------------------------------------------------
    def _conditioning_angles(self, cameras: CameraInput | None, batch: int) -> Tensor:
        if cameras is None:
            if self.training:
                raise ValueError("a camera-conditioned EpiGRAF generator in training mode needs the conditioning "
                                 "cameras (pass cameras=); only eval mode falls back to the dataset-mean pose")
            return self.mean_camera_pose.unsqueeze(0).repeat(batch, 1)
        angles = epigraf_angles_from_cameras(cameras) if isinstance(cameras, Cameras) else cameras
        if angles.ndim != 2 or angles.shape[1] != 3:
            raise ValueError(f"conditioning camera_angles must be (B, 3), got {tuple(angles.shape)}")
        angles = angles.to(self.device, torch.float32)
        if angles.shape[0] == 1 and batch > 1:
            angles = angles.expand(batch, 3)
        if angles.shape[0] != batch:
            raise ValueError(f"{angles.shape[0]} conditioning cameras for {batch} latents; pass one or {batch}")
        return angles

    def _camera_label(self, cameras: CameraInput | None, batch: int) -> Tensor:
        """(B, 2) the GPC part of the mapping label, with the training-mode noise and dropout."""
        cfg = self.config
        angles = self._conditioning_angles(cameras, batch)[:, [0, 1]]
        if self.training and cfg.camera_cond_noise_std > 0:
            angles = angles + cfg.camera_cond_noise_std * torch.randn_like(angles) * angles.std(dim=0, keepdim=True)
        label = wrapped_camera_label(angles)
        return F.dropout(label, p=cfg.camera_cond_drop_p, training=self.training)

    def conditioning_label(self, cameras: CameraInput | None, condition: Condition | None, batch: int) -> Tensor | None:
        """(B, c_dim [+ 2]) the mapping network's label: the class one-hot, then the camera (GPC); None if neither."""
        cfg = self.config
        label = condition.class_label if condition is not None else None
        if label is not None and cfg.c_dim == 0:
            raise ValueError("this EpiGRAF model is not class-conditional (c_dim 0): drop the class label (--class)")
        if label is None and cfg.c_dim > 0:
            raise ValueError(f"this EpiGRAF model is class-conditional ({cfg.c_dim} classes): pass a class label "
                             f"(--class N, or condition=Condition(class_label=...)) in [0, {cfg.c_dim})")
        parts = [class_one_hot(label.to(self.device), cfg.c_dim, batch)] if label is not None else []
        if cfg.camera_cond:
            parts.append(self._camera_label(cameras, batch))
        return torch.cat(parts, dim=1) if parts else None

    def mapping(self, z: Tensor, truncation_psi: float | None = None, cameras: CameraInput | None = None,
                condition: Condition | None = None, *, truncation_cutoff: int | None = None,
                update_emas: bool = False) -> Tensor:
        """z (B, z_dim) -> ws (B, num_ws, w_dim).

        ``cameras``: the conditioning camera of a GPC model (Cameras or EpiGRAF camera_angles (B, 3)); without one,
        eval mode uses the dataset-mean pose (``mean_camera_pose``), as the official code. ``truncation_cutoff``
        truncates only the first ws (default ``config.truncation_cutoff``, None = all). ``condition``: the class
        label of a class-conditional model (see :class:`~aware3d.models.base.Condition`).
        """
        self.check_condition(condition)
        psi = 1.0 if truncation_psi is None else float(truncation_psi)
        cutoff = self.config.truncation_cutoff if truncation_cutoff is None else truncation_cutoff
        label = self.conditioning_label(cameras, condition, z.shape[0])
        return self.mapping_network(z, label, truncation_psi=psi, truncation_cutoff=cutoff, update_emas=update_emas)

    @torch.no_grad()
    def update_w_avg(self, num_samples: int | None = None, seed: int = 0, batch: int = 1000) -> Tensor:
        """Set ``w_avg`` to the mean w of ``num_samples`` z (fixed ``seed``; random classes, the mean pose) for a
        fresh model; imported ones keep the average tracked in training."""
        n = num_samples or self.config.w_avg_samples
        g = torch.Generator().manual_seed(seed)
        total = torch.zeros(self.config.w_dim, dtype=torch.float64)
        was_training = self.training
        self.eval()
        try:
            for s in range(0, n, batch):
                m = min(batch, n - s)
                z = torch.randn(m, self.z_dim, generator=g).to(self.device)
                cond = None
                if self.config.c_dim > 0:
                    cond = Condition(class_label=torch.randint(0, self.config.c_dim, (m,), generator=g))
                total += self.mapping(z, condition=cond)[:, 0].double().sum(0).cpu()
        finally:
            self.train(was_training)
        self.w_avg.copy_((total / n).to(self.w_avg))
        return self.w_avg

    @torch.no_grad()
    def inversion_space(self, num_samples: int = 1000, seed: int = 0) -> LatentSpace:
        """W then W+ (the background's ws included): one w shared by every layer from ``w_avg``, then per-layer
        offsets, with the spread of ``num_samples`` mapped z (seeded; eval mode's mean pose, uniform classes for
        a class-conditional model). The class acts through ws, so the composed latent carries no condition."""
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(num_samples, self.z_dim, generator=g).to(self.device)
        condition = None
        if self.config.c_dim > 0:
            condition = Condition(class_label=torch.randint(0, self.config.c_dim, (num_samples,), generator=g))
        was_training = self.training
        self.eval()
        try:
            ws = self.mapping(z, condition=condition)
        finally:
            self.train(was_training)
        return LatentSpace(style_groups(self.w_avg, ws[:, 0], self.num_ws), lambda v: SynthesisLatent(style_ws(v)))

    # -- tri-planes -------------------------------------------------------------------------------------
    def _noise_mode(self, noise_mode: NoiseMode | None) -> NoiseMode:
        if noise_mode is not None:
            return noise_mode
        return "random" if self.training else self.config.eval_noise_mode

    def planes(self, ws: Tensor, noise_mode: NoiseMode | None = None, generator: torch.Generator | None = None) -> Tensor:
        """ws (B, num_ws, w_dim) -> the backbone image (B, 3 * plane_channels [+ 3 plane background], R, R)."""
        ws = ws[:, :self.backbone.num_ws]
        return self.backbone(ws, noise_mode=self._noise_mode(noise_mode), generator=generator)

    def triplanes(self, planes: Tensor) -> Tensor:
        """The tri-planes (B, 3, C, R, R) of a backbone image (a view)."""
        C = self.config.plane_channels
        return planes[:, :3 * C].reshape(planes.shape[0], 3, C, planes.shape[-2], planes.shape[-1])

    def sample_planes(self, planes: Tensor, points: Tensor) -> Tensor:
        """Decoder outputs (B, N, 4) = [r, g, b, raw sigma] at EpiGRAF-world points (B, N, 3)."""
        return self.decoder(sample_triplanes(self.triplanes(planes), points, self.config.cube_scale))

    def field_fn(self, planes: Tensor):
        """The shared renderer's field callback over ``planes`` (EpiGRAF-world points).

        Always ``grid_sample`` (not the shared one-gather tri-plane kernel): EpiGRAF's importance sampler
        turns float32 rounding of the coarse densities into moved fine samples (its README allows a few such
        pixels up to 0.05), and the gather's other summation order moved one official parity pixel past that."""
        def field(points: Tensor, view_dirs: Tensor) -> tuple[Tensor, Tensor]:
            out = self.sample_planes(planes, points)
            return out[..., :-1], out[..., -1]
        return field

    @torch.no_grad()
    def compute_densities(self, ws: Tensor, points: Tensor, chunk: int = 32 ** 3, planes: Tensor | None = None) -> Tensor:
        """Raw sigma (B, N, 1) at EpiGRAF-world points (B, N, 3) (the official ``compute_densities``)."""
        planes = self.planes(ws) if planes is None else planes
        return torch.cat([self.sample_planes(planes, points[:, s:s + chunk])[..., -1:]
                          for s in range(0, points.shape[1], chunk)], 1)

    def density(self, w: Tensor) -> Callable[[Tensor], Tensor]:
        planes = self.planes(w)
        return lambda p: self.sample_planes(expand_latent(planes, p.shape[0]), our_points_to_epigraf(p))[..., -1]

    def shape_level(self) -> float | str:
        """The shapes tool's default iso level: ``config.shape_level`` (extract_geometry.py's 97.5th percentile)."""
        return self.config.shape_level

    def color(self, w: Tensor) -> Callable[[Tensor], Tensor]:
        planes = self.planes(w)

        def rgb(p: Tensor) -> Tensor:
            out = self.sample_planes(expand_latent(planes, p.shape[0]), our_points_to_epigraf(p))[..., :3]
            return ((out + 1) / 2).clamp(0, 1)
        return rgb

    # -- rendering --------------------------------------------------------------------------------------
    def _background(self, planes: Tensor, ws: Tensor, rays: tuple[Tensor, Tensor], ndc: tuple[Tensor, Tensor],
                    cfg: RenderConfig, bg_num_steps: int | None, generator: torch.Generator | None) -> Tensor:
        """(B, R, 3) the background model's colour behind each ray."""
        c = self.config
        if c.background == "plane":
            return plane_background(planes[:, 3 * c.plane_channels:], ndc, c.img_resolution)
        steps = bg_num_steps or (c.bg_num_steps if self.training else c.bg_num_steps * c.eval_ray_step_multiplier)
        rays_o, rays_d = rays
        B, R = rays_d.shape[:2]
        u = torch.rand((B, R, steps), generator=generator, device=rays_d.device) if self.training else None
        chunk = None if cfg.max_points is None else max(1, cfg.max_points // (B * steps))
        ws_bg = ws[:, self.backbone.num_ws:]
        return render_sphere_background(self.background_inr, ws_bg, rays_o, rays_d, steps, c.bg_start, u, chunk,
                                        white_back=cfg.background == "white")

    def rays(self, cameras: CameraInput, resolution: int, patch: PatchParams | None = None,
             fov: float | Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(EpiGRAF cam2world (B, 4, 4), camera-frame directions, world origins, world directions (B, R*R, 3)) of
        the R x R rays of ``cameras`` (over the ``patch`` window), in EpiGRAF's world and arithmetic."""
        c2w, fov = self.epigraf_camera(cameras, fov)
        dirs_cam = camera_directions(c2w.shape[0], resolution, fov, patch, device=c2w.device)
        rays_d = rotate_to_world(c2w, dirs_cam)
        return c2w, dirs_cam, c2w[:, None, :3, 3].expand_as(rays_d), rays_d

    def render_planes(self, planes: Tensor, ws: Tensor, cameras: CameraInput, *, resolution: int | None = None,
                      render: RenderConfig | None = None, patch: PatchParams | None = None,
                      fov: float | Tensor | None = None, generator: torch.Generator | None = None,
                      draws: RandomDraws | None = None, normals: bool = False, condition: Condition | None = None,
                      ignore_bg: bool = False, bg_only: bool = False, bg_num_steps: int | None = None) -> EpiGRAFOutput:
        """Render cached ``planes`` (B or 1, ...) of latents ``ws`` from B cameras.

        Args:
            resolution: R (rays per side); default the patch resolution in training, img_resolution in eval.
            render: sampling settings (default ``config.render`` in training, ``config.eval_render`` in eval).
            patch: the image window the R x R rays cover (default: the whole image).
            fov: full fov in degrees (float or (B,)); default the cameras' (``config.fov_deg`` for camera_angles).
            generator, draws: randomness of the renderer (jitter and importance uniforms, (B, R*R, S) each).
            normals: also return normals (our world; negative density gradient at the surface point).
            ignore_bg / bg_only: the foreground alone (keeping its short last interval) / the background alone.
            bg_num_steps: background samples per ray (default: bg_num_steps, times eval_ray_step_multiplier in eval).
        """
        self.check_condition(condition)
        if bg_only and (self.config.background == "none" or ignore_bg):
            raise ValueError("bg_only needs a background model and ignore_bg=False")
        R = resolution or (self.config.patch_resolution if self.training else self.config.img_resolution)
        cfg = render or (self.config.render if self.training else self.config.eval_render)
        c2w, dirs_cam, rays_o, rays_d = self.rays(cameras, R, patch, fov)
        B = c2w.shape[0]
        planes, ws = expand_latent(planes, B), expand_latent(ws, B)
        out = render_rays(self.field_fn(planes), rays_o, rays_d, cfg, generator=generator, draws=draws,
                          camera_frame=CameraFrameRays(c2w, dirs_cam), grid=(R, R))
        color, final_t, bg = out.features, out.transmittance[..., -1:], None
        if self.config.background != "none" and not ignore_bg:
            x, y = ndc_coordinates(B, R, patch, c2w.device)
            bg = self._background(planes, ws, (rays_o, rays_d), (x.expand(B, -1), y.expand(B, -1)), cfg,
                                  bg_num_steps, generator)
            color = bg if bg_only else color + bg * final_t

        def to_image(x: Tensor) -> Tensor:
            return x.reshape(B, R, R, -1).permute(0, 3, 1, 2).contiguous()

        normal_map = None
        if normals:
            points = rays_o + rays_d * out.surface_depth[..., None]
            n = density_normals(lambda p: self.sample_planes(planes, p)[..., -1], points,
                                chunk=cfg.max_points or points.shape[1])
            normal_map = to_image(epigraf_points_to_ours(n) * (out.opacity[..., None] > 1e-3))
        return EpiGRAFOutput(image=to_image(color), depth=to_image(out.depth[..., None]),
                             opacity=to_image(out.opacity[..., None]), normals=normal_map,
                             surface_depth=to_image(out.surface_depth[..., None]),
                             final_transmittance=to_image(final_t), background=None if bg is None else to_image(bg))

    def synthesis(self, ws: Tensor, cameras: CameraInput, *, resolution: int | None = None,
                  render: RenderConfig | None = None, patch: PatchParams | None = None, fov: float | Tensor | None = None,
                  noise_mode: NoiseMode | None = None, lock_view_dependence: bool = False, normals: bool = False,
                  generator: torch.Generator | None = None, draws: RandomDraws | None = None, fast: bool = False,
                  condition: Condition | None = None, ignore_bg: bool = False, bg_only: bool = False,
                  bg_num_steps: int | None = None) -> EpiGRAFOutput:
        """Render ws (B or 1, num_ws, w_dim) from B cameras (Cameras or EpiGRAF camera_angles (B, 3)).

        ``noise_mode`` is the backbone noise (default: random in training, ``config.eval_noise_mode`` in eval);
        the other options are those of :meth:`render_planes`. ``lock_view_dependence`` and ``fast`` are accepted
        for the shared tools and change nothing (the decoder ignores view directions; there is one path).
        """
        ws = expand_latent(ws, len(cameras))
        return self.render_planes(self.planes(ws, noise_mode, generator), ws, cameras, resolution=resolution,
                                  render=render, patch=patch, fov=fov, generator=generator, draws=draws,
                                  normals=normals, condition=condition, ignore_bg=ignore_bg, bg_only=bg_only,
                                  bg_num_steps=bg_num_steps)

    def forward(self, z: Tensor, cameras: CameraInput, *, truncation_psi: float = 1.0,
                condition: Condition | None = None, **kwargs) -> EpiGRAFOutput:
        """Condition on the rendering cameras (GPC), then render from them."""
        return self.synthesis(self.mapping(z, truncation_psi, cameras, condition=condition), cameras,
                              condition=condition, **kwargs)



__all__ = ["EpiGRAFGenerator", "EpiGRAFOutput", "PatchParams", "TriPlaneDecoder", "class_one_hot",
           "sample_triplanes", "wrapped_camera_label"]
