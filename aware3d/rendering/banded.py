"""The fast mode's render: probe, bands, and the rays that need more (see :mod:`.bands` for the pure parts).

:func:`render_banded` is what :func:`~aware3d.rendering.render_rays` runs when ``cfg.bands`` is set:

1. the probe pixels are rendered with the exact sampling (no gradient);
2. every other ray samples only its band, except the rays whose surrounding probe rays are all empty, which
   take two samples (their background);
3. a ray that missed its surface is rendered again with the exact sampling: its band let through more light
   than its probe ray did (a silhouette between probe pixels with the background behind it), or its first
   band interval already holds half its weight (the band began inside matter).

Each step renders subsets of rays; every batch row is reordered so that a subset comes first, and both parts
stay (B, R_i) rectangles for the field (a row with fewer rays in the subset renders a few more that way).
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Callable

import torch
from torch import Tensor

from .bands import band_last_delta, band_limits, empty_pixels, probe_pixels, spread_bands
from .renderer import CameraFrameRays, FieldFn, RayOutput, RenderConfig, _PerRay, render_rays


def _take(x: Tensor, index: Tensor) -> Tensor:
    """Rays ``index`` (B, K) of a per-ray tensor (B, R, ...)."""
    return x.gather(1, index.reshape(*index.shape, *([1] * (x.dim() - 2))).expand(*index.shape, *x.shape[2:]))


def _pad_samples(x: Tensor | None, size: int, dim: int, fill: float | None) -> Tensor | None:
    """``x`` padded along ``dim`` to ``size`` with ``fill`` (None: repeating its last entry)."""
    if x is None or x.shape[dim] >= size:
        return x
    last = x.narrow(dim, x.shape[dim] - 1, 1)
    pad = last if fill is None else torch.full_like(last, fill)
    shape = list(x.shape)
    shape[dim] = size - x.shape[dim]
    return torch.cat([x, pad.expand(*shape)], dim)


def _scatter_rays(parts: list[RayOutput], order: Tensor) -> RayOutput:
    """Renders of the rays ``order[:, :R_0]`` and ``order[:, R_0:]`` back in ray order; the per-sample fields of
    the one with fewer samples padded (weights and densities with zeros, distances and transmittance repeated)."""
    samples = max(p.t.shape[-1] for p in parts)
    intervals = samples - (parts[0].t.shape[-1] - parts[0].weights.shape[-1])  # S or S - 1 (midpoints)
    # per-sample field: (padded size, sample dim, fill value or None to repeat the last entry)
    per_sample = {"t": (samples, -1, None), "weights": (intervals, -1, 0.0), "transmittance": (intervals, -1, None),
                  "sample_features": (samples, -2, None), "sample_density": (samples, -1, 0.0)}
    joined = {}
    for f in fields(RayOutput):
        values = [getattr(p, f.name) for p in parts]
        if any(v is None for v in values):
            joined[f.name] = None
            continue
        if f.name in per_sample:
            size, dim, fill = per_sample[f.name]
            values = [_pad_samples(v, size, dim, fill) for v in values]
        cat = torch.cat(values, 1)
        index = order.reshape(*order.shape, *([1] * (cat.dim() - 2))).expand_as(cat)
        joined[f.name] = torch.empty_like(cat).scatter_(1, index, cat)
    return RayOutput(**joined)


def _split(mask: Tensor, first: Callable[[Tensor], RayOutput], rest: Callable[[Tensor], RayOutput]) -> RayOutput:
    """``first(index)`` for the rays where ``mask`` (B, R) holds, ``rest(index)`` for the others, joined."""
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
    split = int(mask.sum(1).max())
    if split == mask.shape[1]:  # some row is all in the subset: the others render with it (no empty render)
        return _scatter_rays([first(order)], order)
    return _scatter_rays([first(order[:, :split]), rest(order[:, split:])], order)


def _take_output(out: RayOutput, index: Tensor) -> RayOutput:
    return RayOutput(**{f.name: None if getattr(out, f.name) is None else _take(getattr(out, f.name), index)
                        for f in fields(RayOutput)})


class _Rays:
    """The image rays and their per-ray inputs, rendered in subsets."""

    def __init__(self, field: FieldFn, rays_o: Tensor, rays_d: Tensor, rays: _PerRay,
                 generator: torch.Generator | None, return_samples: bool):
        self.field, self.rays_o, self.rays_d, self.rays = field, rays_o, rays_d, rays
        self.generator, self.return_samples = generator, return_samples

    def render(self, index: Tensor | None, cfg: RenderConfig, near: Tensor | float, far: Tensor | float,
               frame: CameraFrameRays | None = None, last_delta: Tensor | None = None) -> RayOutput:
        """Rays ``index`` (B, K) (None: all) with ``cfg`` between ``near`` and ``far`` (per-ray (B, R) or floats),
        the last intervals ``last_delta`` (B, R) (None: the rays' own)."""
        background = self.rays.background if isinstance(self.rays.background, Tensor) else None
        if last_delta is None and isinstance(self.rays.last_delta, Tensor):
            last_delta = self.rays.last_delta
        pick = (lambda v: v) if index is None else (lambda v: _take(v, index))
        near, far = (pick(v.expand(self.rays_o.shape[:2])) if isinstance(v, Tensor) else v for v in (near, far))
        return render_rays(self.field, pick(self.rays_o), pick(self.rays_d), cfg, generator=self.generator,
                           camera_frame=frame, near=near, far=far,
                           background=None if background is None else pick(background),
                           return_samples=self.return_samples,
                           last_delta=None if last_delta is None else pick(last_delta))


def _missed(out: RayOutput, probe_light: Tensor, near: Tensor, ray_near: Tensor | float, tolerance: float) -> Tensor:
    """(B, R) bool: the rays whose band missed their surface (see the module docstring)."""
    escaped = out.transmittance[..., -1] > probe_light + tolerance
    started_inside = (out.weights[..., 0] > 0.5) & (near > ray_near + 1e-6)
    return escaped | started_inside


def render_banded(field: FieldFn, rays_o: Tensor, rays_d: Tensor, cfg: RenderConfig, image_hw: tuple[int, int],
                  generator: torch.Generator | None, frame: CameraFrameRays | None, rays: _PerRay,
                  return_samples: bool) -> RayOutput:
    """``cfg.bands``' fast sampling of rays (B, height * width, 3) forming a row-major ``image_hw`` image."""
    bands, exact = cfg.bands, replace(cfg, bands=None)
    image = _Rays(field, rays_o, rays_d, rays, generator, return_samples)
    index, hp, wp = probe_pixels(*image_hw, bands.probe_stride, device=rays_o.device)
    probe_index = index.expand(rays_o.shape[0], -1)
    probe_frame = None if frame is None else CameraFrameRays(frame.cam2world, frame.dirs_cam[:, index])
    with torch.no_grad():  # the probe only decides where to look, like the coarse pass
        probe = image.render(probe_index, exact, rays.near, rays.far, probe_frame)
        near, far = band_limits(bands, probe.t, probe.weights, cfg.num_samples, (hp, wp), image_hw,
                                rays.near, rays.far)
        empty = empty_pixels(bands, probe.opacity, (hp, wp), image_hw)
        light = probe.transmittance[..., -1]
        probe_light, _ = spread_bands(light, light, (hp, wp), image_hw, bands.probe_stride, 0.0)
    band = replace(exact, num_samples=bands.samples, num_importance=bands.importance, perturb=False,
                   importance_det=True)
    last = band_last_delta(near, far, rays.far, rays.last_delta, bands.samples)
    if bool(empty.any()):
        background_only = replace(band, num_samples=2, num_importance=0)
        out = _split(~empty, lambda i: image.render(i, band, near, far, last_delta=last),
                     lambda i: image.render(i, background_only, rays.near, rays.far))
    else:
        out = image.render(None, band, near, far, last_delta=last)
    if 0 < bands.fallback < 1:
        with torch.no_grad():
            missed = _missed(out, probe_light, near, rays.near, bands.fallback) & ~empty
        if bool(missed.any()):
            out = _split(missed, lambda i: image.render(i, exact, rays.near, rays.far),
                         lambda i: _take_output(out, i))
    return out


__all__ = ["render_banded"]
