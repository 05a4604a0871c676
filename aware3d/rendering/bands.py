"""Fast sampling: a sparse probe finds where each ray's weight lies, the full image samples only that band.

The probe renders every ``probe_stride``-th pixel of the image with the full sampling (coarse + importance).
Each probe ray's compositing weights give the interval of distances that holds ``mass`` of its weight; each
interval (optionally reaching part of the way toward its neighbours') is widened by ``margin`` coarse steps
and handed to the image pixels nearest that probe pixel (or merged over the 2 x 2 probe pixels around each)
as their per-ray ``near`` / ``far``; an interval that reaches its probe ray's end stays open there, so each
pixel's band ends at its own bound (a backdrop at ``far``, a tracked band, a ray-box exit). The full
image then takes ``samples`` (+ ``importance``) samples per ray inside its band: empty space in front of
the surface and the occluded space behind it are never evaluated (empty-space skipping and early ray
termination, decided once per frame instead of per sample). It is an approximation: a structure thinner
than the probe spacing, seen by no probe ray, can be missed. :func:`~aware3d.rendering.render_rays` runs it
when ``RenderConfig.bands`` is set (the tools' ``--fast``), through :mod:`.banded`, which also re-renders with
the exact sampling the rays whose band turns out to have missed their surface.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import AT_LEAST_ONE, NON_NEGATIVE, Range, check_config
from ..errors import ConfigError


Footprint = Literal["nearest", "bracket"]


@dataclass(frozen=True)
class SurfaceBands:
    """Settings of the probe-and-band fast sampling (see the module docstring)."""

    probe_stride: int = 4
    """The probe renders every probe_stride-th pixel of each row and column (its cost: 1 / stride^2 of a
    full render)."""
    samples: int = 12
    """Stratified samples per ray inside the band (evenly spaced, no jitter)."""
    importance: int = 4
    """Importance samples per ray inside the band, drawn from the band samples' weights (0: none)."""
    mass: float = 0.995
    """Fraction of each probe ray's compositing weight that its band holds (the rest is cut evenly from the
    front and the back)."""
    margin: float = 0.5
    """Widening of each band at both ends, in the probe's coarse sample steps ((far - near) / num_samples)."""
    footprint: Footprint = "nearest"
    """Which probe bands a pixel takes: its nearest probe pixel's, or the union over the 2 x 2 probe pixels around
    it (bracket: safer at silhouettes between probe pixels, thinner sampling where the depth varies; measured
    worse on the trained eg3d demo model at 64 px: 3.1e-2 vs 1.8e-2 mean absolute from a converged render)."""
    reach: float = 0.0
    """How far each probe band first extends toward its 8 neighbours' (0: not at all; 1: to the whole union).
    Wider bands sample more thinly: on the trained demo models 0 measured closest to converged renders, and
    the rays a narrow band misses are caught by ``fallback``."""
    fallback: float = 0.05
    """A ray whose band let through this much more light than its probe ray (transmittance in front of its last
    sample), or whose first band interval holds half its weight, missed its surface and is rendered again with
    the exact sampling (0: never)."""
    empty_opacity: float = 1e-3
    """Probe rays less opaque than this are empty; a pixel whose whole probe neighbourhood is empty takes two
    samples (its background) instead of a band (0: never skip)."""

    def __post_init__(self) -> None:
        check_config(self, {"probe_stride": AT_LEAST_ONE, "samples": AT_LEAST_ONE, "importance": NON_NEGATIVE,
                            "margin": NON_NEGATIVE, "reach": Range(0.0, 1.0), "fallback": Range(0.0, 1.0),
                            "empty_opacity": NON_NEGATIVE})
        if not 0.0 < self.mass <= 1.0:
            raise ConfigError(f"bands.mass must be in (0, 1] (the fraction of weight a band holds), got {self.mass}")
        if self.samples < 2:
            raise ConfigError(f"bands.samples must be >= 2 (a band has two ends), got {self.samples}")


def probe_pixels(height: int, width: int, stride: int, device=None) -> tuple[Tensor, int, int]:
    """The probe's pixels: flat indices (hp * wp,) into a row-major (height, width) image, and hp, wp.

    Probe pixel (a, b) is image pixel (a * stride + stride // 2, b * stride + stride // 2), clamped to the image
    (so the last probe row / column sits on the image's last row / column when the size is not a multiple).
    """
    rows = (torch.arange(0, height, stride, device=device) + stride // 2).clamp(max=height - 1)
    cols = (torch.arange(0, width, stride, device=device) + stride // 2).clamp(max=width - 1)
    return (rows[:, None] * width + cols[None, :]).reshape(-1), len(rows), len(cols)


def weight_interval(t: Tensor, weights: Tensor, mass: float, min_opacity: float = 1e-4,
                    open_ends: bool = False) -> tuple[Tensor, Tensor]:
    """Per ray, the interval of distances holding ``mass`` of the compositing weight.

    Args:
        t: (..., S) sorted sample distances, world units.
        weights: (..., S') compositing weights; S' = S - 1 (weight i on the interval [t_i, t_i+1], midpoint
            compositing) or S (weight i at sample i, which stands for [t_i, t_i+1]; the last for itself).
        mass: in (0, 1]; (1 - mass) / 2 of the weight is left out at each end.
        min_opacity: rays whose weights sum to less are empty: their interval is the whole [t_0, t_S-1].
        open_ends: an interval that reaches the ray's first (last) interval starts at -inf (ends at +inf): the
            weight there belongs to the ray's own end (a last-sample fill, a backdrop at ``far``), which a
            neighbouring ray with other bounds has elsewhere; the caller clamps to each ray's bounds.
    Returns:
        (start, end), each (...), world units, start <= end.
    """
    n = weights.shape[-1]
    starts = t[..., :n]
    ends = t[..., 1:] if n == t.shape[-1] - 1 else torch.cat([t[..., 1:], t[..., -1:]], -1)
    total = weights.sum(-1, keepdim=True)
    cdf = weights.cumsum(-1) / total.clamp_min(1e-12)
    cut = (1.0 - mass) / 2
    first = (cdf <= cut).sum(-1, keepdim=True).clamp(max=n - 1)
    last = (cdf < 1.0 - cut).sum(-1, keepdim=True).clamp(max=n - 1)
    start = starts.gather(-1, first)
    start, end = start[..., 0], torch.maximum(start, ends.gather(-1, last))[..., 0]
    empty = total[..., 0] < min_opacity
    lo, hi = t[..., 0], t[..., -1]
    if open_ends:
        lo, hi = torch.full_like(lo, -torch.inf), torch.full_like(hi, torch.inf)
        start = torch.where(first[..., 0] == 0, lo, start)
        end = torch.where(last[..., 0] == n - 1, hi, end)
    return torch.where(empty, lo, start), torch.where(empty, hi, end)


def _bracket(size: int, stride: int, count: int, device) -> tuple[Tensor, Tensor]:
    """For each of ``size`` pixels along one axis, the probe indices just before and after it (clamped)."""
    before = torch.div(torch.arange(size, device=device) - stride // 2, stride, rounding_mode="floor")
    return before.clamp(0, count - 1), (before + 1).clamp(0, count - 1)


def spread_bands(start: Tensor, end: Tensor, probe_hw: tuple[int, int], image_hw: tuple[int, int], stride: int,
                 reach: float, footprint: Footprint = "nearest") -> tuple[Tensor, Tensor]:
    """Probe bands (B, hp * wp) given to every image pixel: (near, far), each (B, height * width), world units.

    Each probe band first extends ``reach`` of the way toward the smallest start and the largest end of its
    3 x 3 probe neighbourhood (0: stays; 1: becomes their union); then pixel (i, j) takes the band of its
    nearest probe pixel (``footprint="nearest"``) or merges those of the 2 x 2 probe pixels around it (``"bracket"``: the probe centres before and after it
    along each axis, the ones bilinear interpolation would read), which holds both sides of a silhouette that
    runs between probe pixels at the price of wider bands (thinner sampling) wherever the depth varies.
    """
    (hp, wp), (height, width) = probe_hw, image_hw
    B = start.shape[0]
    lo, hi = start.reshape(B, 1, hp, wp), end.reshape(B, 1, hp, wp)
    if reach > 0:
        lo = lo + reach * (-F.max_pool2d(-lo, 3, stride=1, padding=1) - lo)
        hi = hi + reach * (F.max_pool2d(hi, 3, stride=1, padding=1) - hi)
    lo, hi = lo.reshape(B, hp, wp), hi.reshape(B, hp, wp)
    if footprint == "nearest":
        rows = ((torch.arange(height, device=start.device) // stride).clamp(max=hp - 1),)
        cols = ((torch.arange(width, device=start.device) // stride).clamp(max=wp - 1),)
    elif footprint == "bracket":
        rows, cols = _bracket(height, stride, hp, start.device), _bracket(width, stride, wp, start.device)
    else:
        raise ValueError(f"unknown footprint {footprint!r}; valid: nearest, bracket")
    near = torch.stack([lo[:, r][:, :, c] for r in rows for c in cols]).amin(0)
    far = torch.stack([hi[:, r][:, :, c] for r in rows for c in cols]).amax(0)
    return near.reshape(B, -1), far.reshape(B, -1)


def band_limits(bands: SurfaceBands, probe_t: Tensor, probe_weights: Tensor, num_samples: int,
                probe_hw: tuple[int, int], image_hw: tuple[int, int], near: float | Tensor,
                far: float | Tensor) -> tuple[Tensor, Tensor]:
    """Per-ray (near, far) of the band pass, each (B, height * width), world units, from the probe's render.

    Args:
        bands: the settings.
        probe_t, probe_weights: (B, hp * wp, S) and (B, hp * wp, S') the probe rays' sorted distances and
            compositing weights (see :func:`weight_interval`).
        num_samples: the probe's coarse samples per ray (the margin's unit is its step).
        probe_hw, image_hw: the probe's and the image's (height, width).
        near, far: the image rays' own bounds (floats or (B, height * width)); the bands stay inside them.
    """
    start, end = weight_interval(probe_t, probe_weights, bands.mass, open_ends=True)
    # Open ends (weight at the probe ray's own bound) are blended as that bound, then reopened for the pixels
    # that take them, whose own bounds may lie elsewhere (ShadeGAN's tracked bands, per-ray boxes).
    open_start, open_end = start.isinf(), end.isinf()
    start = torch.where(open_start, probe_t[..., 0], start)
    end = torch.where(open_end, probe_t[..., -1], end)
    step = (probe_t[..., -1] - probe_t[..., 0]) / num_samples
    start, end = start - bands.margin * step, end + bands.margin * step
    lo, hi = spread_bands(start, end, probe_hw, image_hw, bands.probe_stride, bands.reach, bands.footprint)
    opens = [spread_bands(o.float(), o.float(), probe_hw, image_hw, bands.probe_stride, 0.0, bands.footprint)[1] > 0
             for o in (open_start, open_end)]
    lo, hi = lo.masked_fill(opens[0], -torch.inf), hi.masked_fill(opens[1], torch.inf)
    near, far = (torch.as_tensor(v, dtype=lo.dtype, device=lo.device).expand_as(lo) for v in (near, far))
    # A probe band outside this pixel's own bounds (they differ per ray: tracked bands, ray-box exits) says
    # nothing about it: the whole ray then.
    outside = (lo >= far) | (hi <= near)
    lo = torch.where(outside, near, torch.maximum(lo, near))
    hi = torch.where(outside, far, torch.minimum(hi, far))
    return lo, torch.maximum(hi, lo)


def empty_pixels(bands: SurfaceBands, probe_opacity: Tensor, probe_hw: tuple[int, int],
                 image_hw: tuple[int, int]) -> Tensor:
    """(B, height * width) bool: the image pixels whose whole probe neighbourhood is empty (every probe ray
    there less opaque than ``bands.empty_opacity``), from the probe's opacity (B, hp * wp)."""
    opaque = probe_opacity.to(torch.float32)
    # empty only if every probe pixel around is: the bracket footprint whatever the bands' own
    most, _ = spread_bands(-opaque, -opaque, probe_hw, image_hw, bands.probe_stride, 0.0, "bracket")
    return -most < bands.empty_opacity


def band_last_delta(near: Tensor, far: Tensor, ray_far: Tensor | float, last_delta: Tensor | float,
                    samples: int) -> Tensor:
    """(B, R) the band pass's last intervals (without midpoint compositing): the rays' own ``last_delta`` where
    the band reaches their far end ``ray_far`` (a backdrop there stays one), one band step where it ends
    before (the rest of the ray holds no weight to speak of; an infinite last interval inside a surface would
    turn the band's end into a backdrop)."""
    own = last_delta if isinstance(last_delta, Tensor) else torch.full_like(far, last_delta)
    step = (far - near) / max(samples - 1, 1)
    return torch.where(far >= torch.as_tensor(ray_far, dtype=far.dtype, device=far.device) - 1e-6, own,
                       torch.minimum(own, step))


__all__ = ["SurfaceBands", "band_last_delta", "band_limits", "empty_pixels", "probe_pixels", "spread_bands", "weight_interval"]
