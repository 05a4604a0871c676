"""Where to put samples along rays: stratified (coarse) and importance (fine) sampling.

All distances ``t`` are Euclidean distances along unit-length rays from the ray origin, in world units
(not z-depth). Shapes use ``...`` for any leading batch dims (usually (B, R)) and S for samples per ray.
Bounds ``near`` / ``far`` are floats (the same for every ray) or tensors broadcastable to the batch dims
(per-ray bounds, e.g. (B, R) from a ray-box intersection). Random numbers are never drawn implicitly from
the global RNG: pass ``u`` (the uniform draws) or a ``torch.Generator``, so renders are reproducible, and
``u=None, generator=None`` with ``perturb=False`` / ``det=True`` is fully deterministic.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError

Jitter = Literal["centered", "forward", "bins"]
Spacing = Literal["linear", "disparity"]
Bound = float | Tensor


def _uniform(shape, like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype)


def _column(bound: Bound, device, dtype) -> Tensor:
    """A bound as a tensor with a trailing sample dim: (..., 1), broadcastable against (..., S)."""
    return torch.as_tensor(bound, device=device, dtype=dtype).unsqueeze(-1)


def _from_unit(s: Tensor, near: Bound, far: Bound, spacing: Spacing, device, dtype) -> Tensor:
    """Distances at positions ``s`` in [0, 1] of the sampling parameter: linear in t, or in 1/t (disparity)."""
    n, f = _column(near, device, dtype), _column(far, device, dtype)
    if spacing == "linear":
        return n + (f - n) * s
    if spacing == "disparity":
        if bool((n <= 0).any()):
            raise ValueError("disparity spacing needs near > 0 (it samples 1/t); raise near or use spacing='linear'")
        return 1 / (1 / n * (1 - s) + 1 / f * s)
    raise ValueError(f"unknown spacing {spacing!r}; valid: linear, disparity")


def _jitter_offsets(u: Tensor, step: Tensor | float, jitter: Jitter) -> Tensor:
    if jitter == "centered":
        return (u - 0.5) * step
    if jitter == "forward":
        return u * step
    raise ValueError(f"unknown jitter {jitter!r}; valid: centered, forward, bins")


def jitter_in_bins(t: Tensor, u: Tensor) -> Tensor:
    """Each value of ``t`` (..., S) drawn uniformly in its bin between the midpoints to its neighbours (the first
    and last bins are half wide, so samples stay in [t_0, t_S-1]), with uniforms ``u`` (..., S):
    ``lower + (upper - lower) * u``, NeRF's stratified sampling and EpiGRAF's ``perturb_points`` /
    ``add_noise_to_interval``, in their arithmetic."""
    mids = 0.5 * (t[..., 1:] + t[..., :-1])
    upper = torch.cat([mids, t[..., -1:]], -1)
    lower = torch.cat([t[..., :1], mids], -1)
    return lower + (upper - lower) * u


def _lattice(near: Bound, far: Bound, num_samples: int, batch_shape: tuple[int, ...], spacing: Spacing,
             device, dtype) -> Tensor:
    """The unjittered distances (*batch_shape, S) (an expanded view)."""
    if spacing == "linear" and not isinstance(near, Tensor) and not isinstance(far, Tensor):
        # torch.linspace itself: the official renders' arithmetic, bit for bit.
        t = torch.linspace(near, far, num_samples, device=device, dtype=dtype)
    else:
        t = _from_unit(torch.linspace(0, 1, num_samples, device=device, dtype=dtype), near, far, spacing, device, dtype)
    return t.expand(*batch_shape, num_samples)


def stratified_parts(near: Bound, far: Bound, num_samples: int, batch_shape: tuple[int, ...], *,
                     perturb: bool = True, jitter: Jitter = "centered", u: Tensor | None = None,
                     generator: torch.Generator | None = None, device=None, dtype=torch.float32,
                     spacing: Spacing = "linear") -> tuple[Tensor, Tensor | None]:
    """The lattice (*batch_shape, S) and the jitter offsets (same shape, or None) of :func:`sample_stratified`.

    With float bounds and linear spacing the lattice is ``torch.linspace(near, far, S)`` exactly (the
    official renders' arithmetic). With disparity spacing the jitter moves each sample in 1/t (as EG3D's
    ``disparity_space_sampling``) and the offset is the resulting change of t. ``jitter="bins"`` returns the
    jittered distances themselves and None (they are not lattice + offset in floating point; see
    :func:`sample_stratified`).
    """
    t = _lattice(near, far, num_samples, batch_shape, spacing, device, dtype)
    if not perturb or num_samples < 2:
        return t.contiguous(), None
    if u is None:
        u = _uniform((*batch_shape, num_samples), t, generator)
    if jitter == "bins":
        return jitter_in_bins(t, u), None
    if spacing == "disparity":
        s = torch.linspace(0, 1, num_samples, device=t.device, dtype=t.dtype)
        moved = _from_unit(s + _jitter_offsets(u, 1 / (num_samples - 1), jitter), near, far, spacing, t.device, t.dtype)
        return t, moved - t
    return t, _jitter_offsets(u, t[..., 1:2] - t[..., 0:1], jitter)


def sample_stratified(near: Bound, far: Bound, num_samples: int, batch_shape: tuple[int, ...], *,
                      perturb: bool = True, jitter: Jitter = "centered", u: Tensor | None = None,
                      generator: torch.Generator | None = None, device=None, dtype=torch.float32,
                      spacing: Spacing = "linear") -> Tensor:
    """Distances in [near, far] spaced evenly in t or in 1/t, with optional per-sample jitter.

    Args:
        near, far: first and last lattice distance (world units): floats, or tensors broadcastable to
            ``batch_shape`` (per-ray bounds).
        num_samples: S.
        batch_shape: leading dims of the result, e.g. (B, R).
        perturb: jitter samples (training); False gives the plain lattice.
        jitter: ``"centered"`` moves each sample by ``(u - 0.5) * step`` (pi-GAN: samples may leave
            [near, far] by half a step); ``"forward"`` moves it by ``u * step`` (EG3D: up to one step past far).
            The step is in t (linear) or in 1/t (disparity). ``"bins"`` draws each sample uniformly between the
            midpoints to its neighbours (NeRF, EpiGRAF: samples stay in [near, far]).
        u: optional uniform draws in [0, 1) of shape (*batch_shape, S); drawn from ``generator`` if None.
        spacing: ``"linear"`` (even in t) or ``"disparity"`` (even in 1/t between 1/near and 1/far, NeRF's
            ``lindisp``, EG3D's ``disparity_space_sampling``: denser near the camera; needs near > 0).
    Returns:
        t: (*batch_shape, S), sorted along the last dim.
    """
    t, offset = stratified_parts(near, far, num_samples, batch_shape, perturb=perturb, jitter=jitter, u=u,
                                 generator=generator, device=device, dtype=dtype, spacing=spacing)
    return t if offset is None else t + offset


def sample_pdf(bins: Tensor, weights: Tensor, num_samples: int, *, u: Tensor | None = None, det: bool = False,
               right: bool = False, eps: float = 1e-5, generator: torch.Generator | None = None) -> Tensor:
    """Inverse-transform sampling of a piecewise-constant pdf (NeRF's hierarchical sampling).

    Args:
        bins: (..., M) bin edges (sorted distances).
        weights: (..., M-1) unnormalised mass of each bin; ``eps`` is added so empty rays sample uniformly.
        num_samples: N draws per ray.
        u: optional (..., N) uniforms in [0, 1); ``det=True`` uses ``linspace(0, 1, N)`` instead.
        right: searchsorted side (pi-GAN: left, EG3D: right).
    Returns:
        (..., N) distances, unsorted, without gradient to ``weights`` (callers detach).
    """
    weights = weights + eps
    pdf = weights / weights.sum(-1, keepdim=True)
    cdf = torch.cumsum(pdf, -1)
    cdf = torch.cat([torch.zeros_like(cdf[..., :1]), cdf], -1)
    lead = cdf.shape[:-1]
    if u is None:
        if det:
            u = torch.linspace(0, 1, num_samples, device=cdf.device, dtype=cdf.dtype).expand(*lead, num_samples)
        else:
            u = _uniform((*lead, num_samples), cdf, generator)
    u = u.contiguous()
    idx = torch.searchsorted(cdf.contiguous(), u, right=right)
    below = (idx - 1).clamp_min(0)
    above = idx.clamp_max(weights.shape[-1])
    cdf_below, cdf_above = cdf.gather(-1, below), cdf.gather(-1, above)
    bins_below, bins_above = bins.gather(-1, below), bins.gather(-1, above)
    denom = cdf_above - cdf_below
    denom = torch.where(denom < eps, torch.ones_like(denom), denom)
    return bins_below + (u - cdf_below) / denom * (bins_above - bins_below)


def sample_importance(t: Tensor, weights: Tensor, num_samples: int, *, smoothing: Literal["none", "maxblur"] = "none",
                      weight_eps: float = 1e-5, right: bool = False, u: Tensor | None = None, det: bool = False,
                      generator: torch.Generator | None = None) -> Tensor:
    """Fine distances drawn from the coarse compositing weights.

    Args:
        t: (..., S) coarse distances (sorted).
        weights: (..., S') coarse weights; S' = S (pi-GAN) or S-1 (midpoint compositing, EG3D).
        num_samples: N fine samples per ray.
        smoothing: ``"none"`` adds ``weight_eps`` (pi-GAN uses 1e-5); ``"maxblur"`` is EG3D's
            max-pool(2) then avg-pool(2) filter plus ``weight_eps`` (EG3D uses 0.01).
        right, u, det, generator: see :func:`sample_pdf`.
    Returns:
        (..., N) fine distances (unsorted, detached). The pdf lives on the midpoints of ``t``; the first
        and last weights are dropped because their bins are half open.
    """
    if weights.shape[-1] < 3:  # the interior bins the pdf lives on would be empty
        raise ConfigError(f"importance sampling needs at least 3 coarse weights per ray, got {weights.shape[-1]} from "
                          f"{t.shape[-1]} coarse samples: use num_samples >= 3 (>= 4 with midpoint compositing) or "
                          "num_importance=0")
    with torch.no_grad():
        if smoothing == "maxblur":
            lead = weights.shape[:-1]
            w = weights.reshape(-1, 1, weights.shape[-1])
            w = F.max_pool1d(w, 2, 1, padding=1)
            w = F.avg_pool1d(w, 2, 1).reshape(*lead, -1)
            weights = w + weight_eps
        elif smoothing == "none":
            weights = weights + weight_eps
        else:
            raise ValueError(f"unknown importance smoothing {smoothing!r}; valid: none, maxblur")
        mids = 0.5 * (t[..., :-1] + t[..., 1:])
        fine = sample_pdf(mids, weights[..., 1:-1], num_samples, u=u, det=det, right=right, generator=generator)
    return fine.detach()


def blend_toward_band(t: Tensor, guide_depth: Tensor, guide_mask: Tensor, band_width: Bound,
                      ratio: float | Tensor) -> Tensor:
    """Move the samples of guided rays toward evenly spaced samples in a thin band around a guide depth
    (CGOF's sample-near-mesh rendering: the guide is the rasterised mesh depth, the band its thickness).

    On rays where ``guide_mask`` is true, sample k becomes ``(1 - ratio) * t_k + ratio * b_k`` with
    ``b_k = guide - w/2 + w * k / (S - 1)`` (``b_0 = guide`` when S = 1): the band's k-th sample, paired by
    index, so an unsorted ``t`` stays paired as given (sort afterwards, as the renderer does when it merges
    passes). Other rays are returned unchanged. Differentiable w.r.t. every tensor input.

    Args:
        t: (B, R, S) sample distances along unit rays (world units).
        guide_depth: (B, R) distance along the ray of the band's centre (world units, the rasteriser's
            depth convention); values on unguided rays are ignored.
        guide_mask: (B, R) bool, the rays to move.
        band_width: w, the band's full width (world units): a float or a tensor broadcastable to (B, R).
        ratio: blend factor in [0, 1] (0: ``t`` itself, 1: exactly the band), a float or broadcastable to (B, R).
    Returns:
        (B, R, S) distances.
    """
    if guide_depth.shape != t.shape[:-1] or guide_mask.shape != t.shape[:-1]:
        raise ValueError(f"blend_toward_band: guide_depth {tuple(guide_depth.shape)} and guide_mask "
                         f"{tuple(guide_mask.shape)} must be one value per ray of t, {tuple(t.shape[:-1])}")
    S = t.shape[-1]
    steps = torch.linspace(-0.5, 0.5, S, device=t.device, dtype=t.dtype) if S > 1 else t.new_zeros(1)
    band = _column(guide_depth, t.device, t.dtype) + _column(band_width, t.device, t.dtype) * steps
    r = _column(ratio, t.device, t.dtype)
    blended = (1 - r) * t + r * band  # this form: ratio 0 gives t and ratio 1 the band, both bit-exactly
    return torch.where(guide_mask.unsqueeze(-1), blended, t)
