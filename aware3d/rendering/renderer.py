"""One volume renderer for every family.

The renderer never owns a network. It takes a *field callback*::

    field(points: (B, N, 3) world coords, view_dirs: (B, N, 3) unit vectors) -> (features (B, N, C), sigma (B, N))

which the family builds around its latent code (a closure over w / tri-planes / conditioning). The
renderer places samples along the rays (between the config's or per-ray bounds, spaced in t or in 1/t),
queries the field, optionally resamples by importance, and composites over a background (a config mode
or a per-ray tensor). Evaluation is chunked over rays so memory is bounded for any resolution, and random
draws come from an explicit generator or injected tensors, so renders are reproducible.

A family adds a per-pixel output without a new renderer: extra feature channels of the field are
composited like colour (``RayOutput.features``), and :class:`RayOutput` names everything else a family
may need (transmittance, surface depth, and with ``return_samples=True`` the per-sample values).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Callable, Literal

import torch
from torch import Tensor

from ..checks import AT_LEAST_ONE, FINITE, NON_NEGATIVE, POSITIVE, check_config
from ..errors import ConfigError
from .bands import SurfaceBands
from .compositing import Background, DensityActivation, DepthMode, activate_density, composite
from .sampling import Jitter, Spacing, sample_importance, stratified_parts

FieldFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class RenderConfig:
    """How rays are sampled and composited (per family preset; every field has the seeds' meaning)."""

    near: float = 0.88
    """Distance of the first coarse sample from the camera, world units."""
    far: float = 1.12
    """Distance of the last coarse sample from the camera, world units."""
    num_samples: int = 12
    """Coarse (stratified) samples per ray."""
    spacing: Spacing = "linear"
    """Coarse lattice even in t (linear) or in 1/t (disparity: NeRF's lindisp, EG3D's disparity_space_sampling)."""
    num_importance: int = 12
    """Fine (importance) samples per ray; 0 disables hierarchical sampling."""
    perturb: bool = True
    """Jitter the coarse samples (training and the official pi-GAN renders); False is deterministic."""
    jitter: Jitter = "centered"
    """centered: +-half a step (pi-GAN); forward: up to one step (EG3D); bins: uniform between the midpoints to the
    neighbouring samples (NeRF, EpiGRAF)."""
    importance_smoothing: Literal["none", "maxblur"] = "none"
    """Filter on the coarse weights before importance sampling (EG3D: maxblur)."""
    importance_weight_eps: float = 1e-5
    """Added to the coarse weights before importance sampling (pi-GAN 1e-5, EG3D 0.01)."""
    importance_det: bool = False
    """Deterministic importance sampling (u = linspace(0, 1, N)) instead of random u."""
    searchsorted_right: bool = False
    """Side of searchsorted in the inverse CDF (pi-GAN: left, EG3D: right)."""
    density_activation: DensityActivation = "relu"
    """relu (pi-GAN) or softplus (EG3D, pi-GAN softplus mode)."""
    density_bias: float = 0.0
    """Added to raw density before the activation (EG3D: -1)."""
    midpoint: bool = False
    """Composite at interval midpoints (EG3D) instead of at the samples (pi-GAN)."""
    last_delta: float = 1e10
    """Length of the last interval without midpoint compositing: 1e10 makes the farthest sample an opaque backdrop
    (pi-GAN); EpiGRAF uses 1e-3 when a background model is composited behind the rays."""
    background: Background = "black"
    """black, white (CARLA), last_sample (pi-GAN's last_back) or last_sample+white (both, as pi-GAN's renderer
    composites them: the leftover weight goes to the farthest sample and white is added with it too)."""
    depth_mode: DepthMode = "expected"
    """expected = sum w t (pi-GAN); normalized = divided by the opacity (EG3D)."""
    noise_std: float = 0.0
    """Std of the Gaussian noise on raw density (training regulariser)."""
    density_scale: float = 1.0
    """Multiplier on the field's raw density before the prior, the noise and the activation (1 = the seeds): a
    small network's raw density is of order 1, too thin for a surface to be opaque over the sample spacing of
    a short ray range; a larger scale lets it grow opaque surfaces within a CPU budget."""
    density_prior: float = 0.0
    """Strength of a ball-shaped prior added to raw density (training: a shape to start from, faded out by
    ``curriculum.density_prior_steps``): +strength at the origin, 0 on the ball's surface, down to -strength
    outside (:func:`ball_density_prior`); 0 = none."""
    density_prior_radius: float = 0.1
    """Radius of that ball around the world origin, world units."""
    max_points: int | None = 16384
    """Field evaluations per chunk (points = rays x samples); None renders all rays at once (training)."""
    bands: SurfaceBands | None = None
    """Fast sampling (the tools' --fast): a sparse probe, then samples only in a band around each ray's
    surface (:mod:`~aware3d.rendering.bands`); needs the rays' image grid. None: the exact sampling above."""

    def __post_init__(self) -> None:
        check_config(self, _RENDER_RANGES)
        if self.far <= self.near:
            raise ConfigError(f"far must be > near (rays run from near to far), got near={self.near}, far={self.far}")
        if self.spacing == "disparity" and self.near <= 0:
            raise ConfigError(f"disparity spacing needs near > 0 (samples are even in 1/t), got near={self.near}")


_RENDER_RANGES = {"near": NON_NEGATIVE, "far": POSITIVE, "num_samples": AT_LEAST_ONE, "num_importance": NON_NEGATIVE,
                  "importance_weight_eps": NON_NEGATIVE, "density_bias": FINITE, "last_delta": POSITIVE,
                  "noise_std": NON_NEGATIVE, "max_points": AT_LEAST_ONE, "density_prior": NON_NEGATIVE, "density_scale": POSITIVE,
                  "density_prior_radius": POSITIVE}


@dataclass
class RayOutput:
    """What :func:`render_rays` returns. B batch, R rays, C field features, S = all samples per ray."""

    features: Tensor
    """(B, R, C) composited field features (colour in the first 3 channels)."""
    depth: Tensor
    """(B, R) distance along the ray, world units."""
    opacity: Tensor
    """(B, R) accumulated alpha."""
    weights: Tensor
    """(B, R, S') compositing weights (S' = S, or S-1 with midpoint compositing)."""
    t: Tensor
    """(B, R, S) sorted sample distances."""
    transmittance: Tensor
    """(B, R, S') transmittance in front of each sample (interval), before its own alpha."""
    surface_depth: Tensor
    """(B, R) distance to the surface (:func:`~aware3d.rendering.surface_depth`: unfilled weights
    normalised by their sum; the last sample distance on empty rays), world units."""
    sample_features: Tensor | None = None
    """(B, R, S, C) field features at the samples of ``t`` (only with ``return_samples=True``)."""
    sample_density: Tensor | None = None
    """(B, R, S) activated density at the samples of ``t``, without the training noise
    (only with ``return_samples=True``)."""


@dataclass
class RandomDraws:
    """Injected uniform draws, for exact reproduction of another implementation's random stream."""

    stratified: Tensor | None = None
    """(B, R, S) uniforms for the coarse jitter."""
    importance: Tensor | None = None
    """(B, R, N) uniforms for the inverse CDF."""
    coarse_noise: Tensor | None = None
    """(B, R, S) standard normals of the coarse pass's density noise (scaled by ``cfg.noise_std``)."""
    final_noise: Tensor | None = None
    """(B, R, S + N) standard normals of the final pass's density noise, in sorted sample order."""

    def slice(self, sl: slice) -> "RandomDraws":
        return RandomDraws(*(None if d is None else d[:, sl] for d in
                             (self.stratified, self.importance, self.coarse_noise, self.final_noise)))


@dataclass
class CameraFrameRays:
    """Optional camera-frame description of the rays, to form coarse points as ``cam2world @ (d_cam t)``.

    Mathematically the same points as ``o + d t``; pi-GAN computes its coarse samples this way, and doing
    the same arithmetic reproduces its renders bit for bit.
    """

    cam2world: Tensor
    """(B, 4, 4) camera-to-world matrices."""
    dirs_cam: Tensor
    """(B, R, 3) unit ray directions in the camera frame."""


def ball_density_prior(points: Tensor, strength: float, radius: float) -> Tensor:
    """A raw-density prior shaped like a ball at the world origin: ``strength * tanh(4 (1 - |x| / radius))``.

    Args:
        points: (..., 3) world points, world units.
        strength: the prior's magnitude (raw density units): about +strength near the centre, 0 on the
            surface ``|x| = radius``, tending to -strength far outside (so empty space starts empty).
        radius: the ball's radius, world units.
    Returns:
        (...) values to add to the field's raw density (before the activation).
    """
    return strength * torch.tanh(4.0 * (1.0 - points.norm(dim=-1) / radius))


def _query(field: FieldFn, rays_o: Tensor, rays_d: Tensor, t: Tensor, points: Tensor | None = None,
           cfg: RenderConfig | None = None) -> tuple[Tensor, Tensor]:
    """Evaluate the field at ``o + d t`` (or at given ``points``): features (B, R, S, C), raw sigma (B, R, S)
    (times ``cfg``'s density scale, with its density prior added, when it has them)."""
    B, R, S = t.shape
    if points is None:
        points = rays_o.unsqueeze(2) + rays_d.unsqueeze(2) * t.unsqueeze(-1)
    dirs = rays_d.unsqueeze(2).expand(B, R, S, 3)
    feats, sigma = field(points.reshape(B, R * S, 3), dirs.reshape(B, R * S, 3))
    sigma = sigma.reshape(B, R, S)
    if cfg is not None:
        sigma = shaped_density(sigma, points, cfg)
    return feats.reshape(B, R, S, -1), sigma


def shaped_density(sigma: Tensor, points: Tensor, cfg: RenderConfig) -> Tensor:
    """The field's raw density (...) at world points (..., 3) as ``cfg`` composites it: times its
    ``density_scale``, plus its ``density_prior`` ball (:func:`ball_density_prior`) while that is on. Every
    renderer that queries a field applies it, so the two settings mean the same in every family."""
    if cfg.density_scale != 1.0:
        sigma = sigma * cfg.density_scale
    if cfg.density_prior > 0:
        sigma = sigma + ball_density_prior(points, cfg.density_prior, cfg.density_prior_radius).to(sigma.dtype)
    return sigma


def _camera_frame_points(frame: CameraFrameRays, lattice: Tensor, offset: Tensor | None) -> Tensor:
    """Coarse points (B, R, S, 3) as pi-GAN forms them: ``d_cam * t0 + offset * d_cam``, then ``cam2world``."""
    B, R, S = lattice.shape
    pts = frame.dirs_cam.unsqueeze(2) * lattice.unsqueeze(-1)
    if offset is not None:
        pts = pts + offset.unsqueeze(-1) * frame.dirs_cam.unsqueeze(2)
    homo = torch.cat([pts, torch.ones_like(pts[..., :1])], -1).reshape(B, R * S, 4)
    world = torch.bmm(frame.cam2world, homo.permute(0, 2, 1)).permute(0, 2, 1)
    return world[..., :3].reshape(B, R, S, 3)


@dataclass
class _PerRay:
    """The per-ray inputs of :func:`render_rays`: bounds (B, R) tensors or floats, background (B, R, C) or a mode."""

    near: Tensor | float
    far: Tensor | float
    background: Tensor | Background
    last_delta: Tensor | float

    def slice(self, sl: slice | Tensor) -> _PerRay:
        """The rays ``sl`` (a slice or an index tensor over R) of every per-ray tensor."""
        return _PerRay(*(v[:, sl] if isinstance(v, Tensor) else v
                         for v in (self.near, self.far, self.background, self.last_delta)))


def _expand(x: Tensor, shape: tuple[int, ...], name: str, like: Tensor) -> Tensor:
    """``x`` broadcast (a view) to ``shape``, on the rays' device and dtype, or a clear error."""
    try:
        return x.to(device=like.device, dtype=like.dtype).expand(*shape)
    except RuntimeError as err:
        raise ValueError(f"render_rays: {name} has shape {tuple(x.shape)}, which does not broadcast to "
                         f"{shape}; pass per-ray values of that shape (or one for all rays)") from err


def _per_ray(cfg: RenderConfig, rays_o: Tensor, near, far, background, last_delta=None) -> _PerRay:
    B, R, _ = rays_o.shape
    near = cfg.near if near is None else near
    far = cfg.far if far is None else far
    near, far = ((_expand(v, (B, R), n, rays_o) if isinstance(v, Tensor) else float(v))
                 for v, n in ((near, "near"), (far, "far")))
    last = cfg.last_delta if last_delta is None else _expand(last_delta, (B, R), "last_delta", rays_o)
    if background is None:
        return _PerRay(near, far, cfg.background, last)
    if background.dim() == 0:
        raise ValueError("render_rays: background must have a channel dim: (C,), (B, 1, C) or (B, R, C)")
    return _PerRay(near, far, _expand(background, (B, R, background.shape[-1]), "background", rays_o), last)


def _composite(cfg: RenderConfig, feats: Tensor, sigma: Tensor, t: Tensor, generator, background,
               noise: Tensor | None = None, feats_order: Tensor | None = None, last_delta: Tensor | float | None = None):
    return composite(
        feats, sigma, t, density_activation=cfg.density_activation, density_bias=cfg.density_bias,
        midpoint=cfg.midpoint, last_delta=cfg.last_delta if last_delta is None else last_delta,
        background=background, depth_mode=cfg.depth_mode,
        noise_std=cfg.noise_std, noise=noise, generator=generator, color_order=feats_order,
    )


def _render_chunk(field: FieldFn, rays_o: Tensor, rays_d: Tensor, cfg: RenderConfig, draws: RandomDraws,
                  generator: torch.Generator | None, frame: CameraFrameRays | None, rays: _PerRay,
                  return_samples: bool) -> RayOutput:
    B, R, _ = rays_o.shape
    lattice, offset = stratified_parts(
        rays.near, rays.far, cfg.num_samples, (B, R), perturb=cfg.perturb, jitter=cfg.jitter,
        u=draws.stratified, generator=generator, device=rays_o.device, dtype=rays_o.dtype, spacing=cfg.spacing,
    )
    t = lattice if offset is None else lattice + offset
    points = None if frame is None else _camera_frame_points(frame, lattice, offset)
    feats, sigma = _query(field, rays_o, rays_d, t, points, cfg)
    if cfg.num_importance > 0:
        # The coarse pass only decides where to look: no gradient, no background.
        with torch.no_grad():
            coarse = _composite(cfg, feats.detach(), sigma.detach(), t, generator, background="black",
                                noise=draws.coarse_noise, last_delta=rays.last_delta)
        t_fine = sample_importance(
            t, coarse.weights, cfg.num_importance, smoothing=cfg.importance_smoothing,
            weight_eps=cfg.importance_weight_eps, right=cfg.searchsorted_right, u=draws.importance,
            det=cfg.importance_det, generator=generator,
        )
        feats_fine, sigma_fine = _query(field, rays_o, rays_d, t_fine, cfg=cfg)
        # Fine first, then coarse, then a stable sort: equal distances keep that order (as in pi-GAN).
        t_all = torch.cat([t_fine, t], -1)
        t, order = torch.sort(t_all, -1)
        feats = torch.cat([feats_fine, feats], -2)  # sorted by the compositing, which reads ``order``
        sigma = torch.cat([sigma_fine, sigma], -1).gather(-1, order)
    else:
        order = None
    out = _composite(cfg, feats, sigma, t, generator, rays.background,
                     noise=draws.coarse_noise if cfg.num_importance == 0 else draws.final_noise, feats_order=order,
                     last_delta=rays.last_delta)
    if return_samples and order is not None:
        feats = feats.gather(-2, order[..., None].expand(-1, -1, -1, feats.shape[-1]))
    density = activate_density(sigma, cfg.density_activation, cfg.density_bias) if return_samples else None
    return RayOutput(out.color, out.depth, out.opacity, out.weights, t, out.transmittance, out.surface_depth,
                     feats if return_samples else None, density)


def _draws_up_front(cfg: RenderConfig, draws: RandomDraws | None, rays_o: Tensor,
                    generator: torch.Generator | None) -> RandomDraws:
    """``draws`` with every missing uniform drawn now for the full batch (so chunking changes nothing)."""
    B, R, _ = rays_o.shape
    draws = draws or RandomDraws()
    if cfg.perturb and draws.stratified is None and cfg.num_samples > 1:
        draws = replace(draws, stratified=torch.rand((B, R, cfg.num_samples), generator=generator,
                                                     device=rays_o.device, dtype=rays_o.dtype))
    if cfg.num_importance > 0 and not cfg.importance_det and draws.importance is None:
        draws = replace(draws, importance=torch.rand((B, R, cfg.num_importance), generator=generator,
                                                     device=rays_o.device, dtype=rays_o.dtype))
    return draws


def _concat(outs: list[RayOutput]) -> RayOutput:
    """Chunks (B, R_i, ...) joined along the rays; fields a chunk left None stay None."""
    return RayOutput(**{f.name: None if getattr(outs[0], f.name) is None
                        else torch.cat([getattr(o, f.name) for o in outs], 1) for f in fields(RayOutput)})


def render_rays(field: FieldFn, rays_o: Tensor, rays_d: Tensor, cfg: RenderConfig, *,
                generator: torch.Generator | None = None, draws: RandomDraws | None = None,
                camera_frame: CameraFrameRays | None = None, near: Tensor | float | None = None,
                far: Tensor | float | None = None, background: Tensor | None = None,
                return_samples: bool = False, grid: tuple[int, int] | None = None,
                last_delta: Tensor | None = None) -> RayOutput:
    """Volume-render a batch of rays through ``field``.

    Args:
        field: the field callback (see module docstring).
        rays_o: (B, R, 3) ray origins, world units.
        rays_d: (B, R, 3) unit ray directions.
        cfg: sampling and compositing settings.
        generator: source of the jitter / importance / noise draws (``None``: the global RNG).
        draws: injected uniforms (override the generator for those draws).
        camera_frame: form coarse points in the camera frame (see :class:`CameraFrameRays`).
        near, far: per-ray bounds of the coarse lattice, (B, R) or broadcastable to it (e.g. from a
            ray-box intersection); None: ``cfg.near`` / ``cfg.far``.
        background: colour / features behind each ray, (B, R, C) or broadcastable ((C,), (B, 1, C)),
            added with weight ``1 - opacity`` in place of ``cfg.background`` (no last-sample fill then);
            None: ``cfg.background``.
        return_samples: also return the per-sample features and activated densities (memory: S times
            the features; off by default).
        grid: (height, width) of the image the rays form, row-major (R = height * width); needed by the
            fast sampling of ``cfg.bands`` (its probe takes every stride-th pixel), ignored without it.
        last_delta: (B, R) length of each ray's last interval in place of ``cfg.last_delta`` (without midpoint
            compositing; the fast mode's bands that end before their ray's far end are no backdrop).
    Returns:
        :class:`RayOutput`. Chunks of rays are rendered independently (``cfg.max_points`` field
        evaluations each); all random draws are made up front for the full batch, so the result does not
        depend on the chunk size.
    """
    B, R, _ = rays_o.shape
    rays = _per_ray(cfg, rays_o, near, far, background, last_delta)
    if cfg.bands is not None:
        if draws is not None:
            raise ValueError("render_rays: injected draws reproduce the exact sampling; the fast sampling of "
                             "cfg.bands places its own samples (render with bands=None to use draws)")
        from .banded import render_banded  # banded.py renders through this function: imported here, not above

        return render_banded(field, rays_o, rays_d, cfg, _image_grid(grid, R), generator, camera_frame, rays,
                             return_samples)
    draws = _draws_up_front(cfg, draws, rays_o, generator)
    samples_per_ray = cfg.num_samples + cfg.num_importance
    if cfg.max_points is None or B * R * samples_per_ray <= cfg.max_points:
        return _render_chunk(field, rays_o, rays_d, cfg, draws, generator, camera_frame, rays, return_samples)
    rays_per_chunk = max(1, cfg.max_points // (B * samples_per_ray))
    outs = []
    for s in range(0, R, rays_per_chunk):
        sl = slice(s, s + rays_per_chunk)
        frame = None if camera_frame is None else CameraFrameRays(camera_frame.cam2world, camera_frame.dirs_cam[:, sl])
        outs.append(_render_chunk(field, rays_o[:, sl], rays_d[:, sl], cfg, draws.slice(sl), generator, frame,
                                  rays.slice(sl), return_samples))
    return _concat(outs)


def _image_grid(grid: tuple[int, int] | None, num_rays: int) -> tuple[int, int]:
    if grid is None or len(grid) != 2 or grid[0] * grid[1] != num_rays:
        raise ValueError(f"render_rays: fast sampling (cfg.bands) needs grid=(height, width) with height * width "
                         f"= the {num_rays} rays (got grid={grid}); pass the rays' image size")
    return int(grid[0]), int(grid[1])


def density_normals(sigma_fn: Callable[[Tensor], Tensor], points: Tensor, chunk: int = 65536) -> Tensor:
    """Unit surface normals as the negative, normalised gradient of density.

    Args:
        sigma_fn: maps (B, N, 3) world points to (B, N) raw density (differentiable).
        points: (B, N, 3) where to evaluate, e.g. ``rays_o + rays_d * depth``.
    Returns:
        (B, N, 3) unit normals pointing out of the surface (toward lower density), world frame.
    """
    out = []
    for s in range(0, points.shape[1], chunk):
        p = points[:, s:s + chunk].detach().requires_grad_(True)
        with torch.enable_grad():
            sigma = sigma_fn(p)
            (grad,) = torch.autograd.grad(sigma.sum(), p)
        out.append(-torch.nn.functional.normalize(grad, dim=-1))
    return torch.cat(out, 1)
