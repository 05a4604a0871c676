"""Where to put samples along rays: stratified (coarse) and importance (fine) sampling.

All distances ``t`` are Euclidean distances along unit-length rays from the ray origin, in world units
(not z-depth). Shapes use ``...`` for any leading batch dims (usually (B, R)) and S for samples per ray.
Random numbers are never drawn implicitly from the global RNG: pass ``u`` (the uniform draws) or a
``torch.Generator``, so renders are reproducible, and ``u=None, generator=None`` with ``perturb=False`` /
``det=True`` is fully deterministic.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Jitter = Literal["centered", "forward"]


def _uniform(shape, like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype)


def stratified_parts(near: float, far: float, num_samples: int, batch_shape: tuple[int, ...], *,
                     perturb: bool = True, jitter: Jitter = "centered", u: Tensor | None = None,
                     generator: torch.Generator | None = None, device=None,
                     dtype=torch.float32) -> tuple[Tensor, Tensor | None]:
    """The lattice (*batch_shape, S) and the jitter offsets (same shape, or None) of :func:`sample_stratified`."""
    t = torch.linspace(near, far, num_samples, device=device, dtype=dtype).expand(*batch_shape, num_samples)
    if not perturb or num_samples < 2:
        return t.contiguous(), None
    if u is None:
        u = _uniform((*batch_shape, num_samples), t, generator)
    step = t[..., 1:2] - t[..., 0:1]
    if jitter == "centered":
        return t, (u - 0.5) * step
    if jitter == "forward":
        return t, u * step
    raise ValueError(f"unknown jitter {jitter!r}; valid: centered, forward")


def sample_stratified(near: float, far: float, num_samples: int, batch_shape: tuple[int, ...], *,
                      perturb: bool = True, jitter: Jitter = "centered", u: Tensor | None = None,
                      generator: torch.Generator | None = None, device=None, dtype=torch.float32) -> Tensor:
    """Evenly spaced distances in [near, far] with optional per-sample jitter.

    Args:
        near, far: first and last lattice distance (world units).
        num_samples: S.
        batch_shape: leading dims of the result, e.g. (B, R).
        perturb: jitter samples (training); False gives the plain lattice.
        jitter: ``"centered"`` moves each sample by ``(u - 0.5) * step`` (pi-GAN: samples may leave
            [near, far] by half a step); ``"forward"`` moves it by ``u * step`` (EG3D: up to one step past far).
        u: optional uniform draws in [0, 1) of shape (*batch_shape, S); drawn from ``generator`` if None.
    Returns:
        t: (*batch_shape, S), sorted along the last dim.
    """
    t, offset = stratified_parts(near, far, num_samples, batch_shape, perturb=perturb, jitter=jitter, u=u,
                                 generator=generator, device=device, dtype=dtype)
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
