"""Fast sampling: a sparse probe finds where each ray's weight lies, the full image samples only that band.

The probe renders every ``probe_stride``-th pixel of the image with the full sampling (coarse + importance).
Each probe ray's compositing weights give the interval of distances that holds ``mass`` of its weight; the
intervals of a probe pixel's neighbours are merged (min of the starts, max of the ends, so a silhouette
edge between two probe pixels gets a band that covers both sides), widened by ``margin`` coarse steps and
handed to every full-resolution pixel near that probe pixel as its per-ray ``near`` / ``far``. The full
image then takes ``samples`` (+ ``importance``) samples per ray inside its band: empty space in front of
the surface and the occluded space behind it are never evaluated (empty-space skipping and early ray
termination, decided once per frame instead of per sample). It is an approximation: a structure thinner
than the probe spacing, seen by no probe ray, can be missed. :func:`~aware3d.rendering.render_rays` runs it
when ``RenderConfig.bands`` is set (the tools' ``--fast``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import AT_LEAST_ONE, NON_NEGATIVE, check_config
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
    worse on the trained demo models, see benchmarks/compare.py)."""
    neighbourhood: int = 0
    """Radius, in probe pixels, over which each probe band is first widened (0: none; 1: 3 x 3)."""
    empty_opacity: float = 1e-3
    """Probe rays less opaque than this are empty; a pixel whose whole probe neighbourhood is empty takes two
    samples (its background) instead of a band (0: never skip)."""

    def __post_init__(self) -> None:
        check_config(self, {"probe_stride": AT_LEAST_ONE, "samples": AT_LEAST_ONE, "importance": NON_NEGATIVE,
                            "margin": NON_NEGATIVE, "neighbourhood": NON_NEGATIVE, "empty_opacity": NON_NEGATIVE})
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


def weight_interval(t: Tensor, weights: Tensor, mass: float, min_opacity: float = 1e-4) -> tuple[Tensor, Tensor]:
    """Per ray, the interval of distances holding ``mass`` of the compositing weight.

    Args:
        t: (..., S) sorted sample distances, world units.
        weights: (..., S') compositing weights; S' = S - 1 (weight i on the interval [t_i, t_i+1], midpoint
            compositing) or S (weight i at sample i, which stands for [t_i, t_i+1]; the last for itself).
        mass: in (0, 1]; (1 - mass) / 2 of the weight is left out at each end.
        min_opacity: rays whose weights sum to less are empty: their interval is the whole [t_0, t_S-1].
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
    start, end = starts.gather(-1, first)[..., 0], ends.gather(-1, last)[..., 0]
    empty = total[..., 0] < min_opacity
    return torch.where(empty, t[..., 0], start), torch.where(empty, t[..., -1], torch.maximum(start, end))


def _bracket(size: int, stride: int, count: int, device) -> tuple[Tensor, Tensor]:
    """For each of ``size`` pixels along one axis, the probe indices just before and after it (clamped)."""
    before = torch.div(torch.arange(size, device=device) - stride // 2, stride, rounding_mode="floor")
    return before.clamp(0, count - 1), (before + 1).clamp(0, count - 1)


def spread_bands(start: Tensor, end: Tensor, probe_hw: tuple[int, int], image_hw: tuple[int, int], stride: int,
                 radius: int, footprint: Footprint = "nearest") -> tuple[Tensor, Tensor]:
    """Probe bands (B, hp * wp) given to every image pixel: (near, far), each (B, height * width), world units.

    Each probe band is first merged over its (2 radius + 1)^2 probe neighbourhood (the smallest start, the
    largest end); then pixel (i, j) takes the band of its nearest probe pixel (``footprint="nearest"``) or
    merges those of the 2 x 2 probe pixels around it (``"bracket"``: the probe centres before and after it
    along each axis, the ones bilinear interpolation would read), which holds both sides of a silhouette that
    runs between probe pixels at the price of wider bands (thinner sampling) wherever the depth varies.
    """
    (hp, wp), (height, width) = probe_hw, image_hw
    B = start.shape[0]
    lo, hi = start.reshape(B, 1, hp, wp), end.reshape(B, 1, hp, wp)
    if radius > 0:
        k = 2 * radius + 1
        lo = -F.max_pool2d(-lo, k, stride=1, padding=radius)
        hi = F.max_pool2d(hi, k, stride=1, padding=radius)
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
    start, end = weight_interval(probe_t, probe_weights, bands.mass)
    step = (probe_t[..., -1] - probe_t[..., 0]) / num_samples
    start, end = start - bands.margin * step, end + bands.margin * step
    lo, hi = spread_bands(start, end, probe_hw, image_hw, bands.probe_stride, bands.neighbourhood, bands.footprint)
    lo = torch.maximum(lo, near) if isinstance(near, Tensor) else lo.clamp_min(near)
    hi = torch.minimum(hi, far) if isinstance(far, Tensor) else hi.clamp_max(far)
    return lo, torch.maximum(hi, lo)


def empty_pixels(bands: SurfaceBands, probe_opacity: Tensor, probe_hw: tuple[int, int],
                 image_hw: tuple[int, int]) -> Tensor:
    """(B, height * width) bool: the image pixels whose whole probe neighbourhood is empty (every probe ray
    there less opaque than ``bands.empty_opacity``), from the probe's opacity (B, hp * wp)."""
    opaque = probe_opacity.to(torch.float32)
    # empty only if every probe pixel around is: the bracket footprint whatever the bands' own
    most, _ = spread_bands(-opaque, -opaque, probe_hw, image_hw, bands.probe_stride, bands.neighbourhood, "bracket")
    return -most < bands.empty_opacity


__all__ = ["SurfaceBands", "band_limits", "empty_pixels", "probe_pixels", "spread_bands", "weight_interval"]
