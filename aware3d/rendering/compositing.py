"""Alpha compositing of samples along rays (the volume rendering integral, discretised).

For samples at distances t_i with densities sigma_i (after the activation) and spacing delta_i:
``alpha_i = 1 - exp(-sigma_i * delta_i)``, transmittance ``T_i = prod_{j<i} (1 - alpha_j + 1e-10)`` and
weights ``w_i = alpha_i * T_i``. Colour is ``sum w_i c_i``; the two seeds' variants are both here:

* pi-GAN (``midpoint=False``): values at the samples, the last delta is ``last_delta`` (1e10, so the
  farthest sample is opaque wherever its density is positive), depth ``sum w_i t_i`` (not normalised).
* EG3D (``midpoint=True``): values averaged between neighbouring samples, S-1 intervals, depth
  normalised by the total weight and clamped to the sampled range.

Whatever a family's ``depth`` convention, :func:`surface_depth` is the one definition of the distance to
the surface (normals, reprojection, depth maps use it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..nn.kernels import use_optimized_kernels

DensityActivation = Literal["relu", "softplus"]
Background = Literal["black", "white", "last_sample", "last_sample+white"]
LAST_SAMPLE_FILLS = ("last_sample", "last_sample+white")
"""Backgrounds that give the farthest sample the weight the ray has left (pi-GAN's ``last_back``)."""
WHITE_BEHIND = ("white", "last_sample+white")
"""Backgrounds that add white with the weight left in front of any fill (pi-GAN's ``white_back``)."""
DepthMode = Literal["expected", "normalized"]


@dataclass
class Composited:
    """Result of :func:`composite`. Leading dims ``...`` are those of the inputs (usually (B, R))."""

    color: Tensor
    """(..., C) composited features/colour, in the range of the inputs (background added)."""
    depth: Tensor
    """(..., ) distance along the ray (world units); see ``depth_mode``."""
    opacity: Tensor
    """(..., ) accumulated alpha, sum of weights, in [0, 1] (before any last-sample fill)."""
    weights: Tensor
    """(..., S) or (..., S-1) per-sample weights (after any last-sample fill)."""
    transmittance: Tensor
    """(..., S) or (..., S-1) transmittance T_i in front of each sample (interval), before its own alpha."""
    surface_depth: Tensor
    """(..., ) :func:`surface_depth` of the weights before any last-sample fill (world units)."""


def activate_density(sigma: Tensor, activation: DensityActivation, bias: float = 0.0) -> Tensor:
    """Map raw network density to a non-negative density: relu / softplus of ``sigma + bias``."""
    if bias:
        sigma = sigma + bias
    if activation == "relu":
        return F.relu(sigma)
    if activation == "softplus":
        return F.softplus(sigma)
    raise ValueError(f"unknown density activation {activation!r}; valid: relu, softplus")


def surface_depth(weights: Tensor, t: Tensor, *, far: Tensor | float | None = None, eps: float = 1e-6) -> Tensor:
    """The distance to the surface along each ray: ``sum w_i t_i / sum w_i``.

    The expected distance under the compositing weights *before* any background fill, normalised by
    their sum: a semi-transparent ray through a surface at d gives d (not ``opacity * d``, the
    unnormalised expectation, and not a blend of d with the last sample, which pi-GAN's ``last_sample``
    fill would give). A ray whose opacity (sum of weights) is at most ``eps`` has no surface; it gets
    ``far``, by default its last sample distance: "nothing before the end of the sampled range", finite,
    so ``o + d * t`` stays inside the sampled volume (EG3D likewise gives its empty rays the largest t).

    Args:
        weights: (..., S') compositing weights without the background fill (``Composited`` /
            ``RayOutput`` already carry the result as ``surface_depth``).
        t: (..., S') the distances the weights sit at, or (..., S'+1) sample distances with midpoint
            compositing (the interval midpoints are then used).
        far: distance for empty rays: a float or a tensor broadcastable to (...); None: ``t[..., -1]``.
        eps: opacity at or below which a ray counts as empty (also guards the division).
    Returns:
        (..., ) distances along the unit rays, world units; differentiable in ``weights`` and ``t``.
    """
    last = t[..., -1]
    if t.shape[-1] == weights.shape[-1] + 1:
        t = 0.5 * (t[..., :-1] + t[..., 1:])
    elif t.shape[-1] != weights.shape[-1]:
        raise ValueError(f"surface_depth: t has {t.shape[-1]} samples per ray for {weights.shape[-1]} weights; "
                         "pass the weights' own distances (S') or the sample distances (S' + 1)")
    opacity = weights.sum(-1)
    mean = (weights * t).sum(-1) / opacity.clamp_min(eps)
    empty = last if far is None else torch.as_tensor(far, device=mean.device, dtype=mean.dtype).expand_as(mean)
    return torch.where(opacity > eps, mean, empty)


def _add_background(color: Tensor, opacity: Tensor, background: Background | Tensor) -> Tensor:
    """``color`` (..., C) with the background seen through ``1 - opacity`` (the opacity before any last-sample
    fill); black and last_sample add nothing."""
    if isinstance(background, Tensor):
        return color + (1 - opacity)[..., None] * background
    if background in WHITE_BEHIND:
        return color + (1 - opacity)[..., None]
    if background not in ("black", "last_sample"):
        raise ValueError(f"unknown background {background!r}; valid: black, white, last_sample, last_sample+white "
                         "or a (..., C) tensor")
    return color


def _weighted_color_sum(weights: Tensor, color: Tensor, midpoint: bool, color_order: Tensor | None) -> Tensor:
    """``sum_i weights_i * color_i`` (midpoint: of the interval averages ``(c_i + c_{i+1}) / 2``) as one
    batched matrix product of per-sample coefficients with the unsorted, unaveraged colour: no (..., S, C)
    temporaries for the sort, the averages or the products. Same sums in another order (float rounding).

    weights: (..., S') after any fill; color: (..., S, C); color_order: see :func:`composite`."""
    coef = weights
    if midpoint:  # sample j appears in intervals j - 1 and j, each with half its weight
        coef = 0.5 * (F.pad(weights, (0, 1)) + F.pad(weights, (1, 0)))
    if color_order is not None:
        coef = torch.zeros_like(coef).scatter_(-1, color_order, coef)
    return torch.matmul(coef.unsqueeze(-2), color).squeeze(-2)


def composite(color: Tensor, sigma: Tensor, t: Tensor, *, density_activation: DensityActivation = "relu",
              density_bias: float = 0.0, midpoint: bool = False, last_delta: float | Tensor = 1e10,
              background: Background | Tensor = "black", depth_mode: DepthMode = "expected",
              noise_std: float = 0.0, noise: Tensor | None = None,
              generator: torch.Generator | None = None, color_order: Tensor | None = None) -> Composited:
    """Composite S samples per ray front to back.

    Args:
        color: (..., S, C) colour or features at the samples (for colour, in [0, 1]).
        sigma: (..., S) raw density at the samples (before ``density_activation``).
        t: (..., S) sample distances along unit rays, sorted ascending.
        density_activation, density_bias: see :func:`activate_density` (EG3D: softplus, bias -1).
        midpoint: composite S-1 intervals with values averaged at the midpoints (EG3D) instead of S samples.
        last_delta: length of the last interval when ``midpoint=False``: one for all rays, or per ray (...).
        background: ``"black"`` leaves empty space at 0, ``"white"`` adds ``1 - opacity``, ``"last_sample"``
            gives the farthest sample the remaining weight (pi-GAN's ``last_back``), ``"last_sample+white"`` does
            both, as pi-GAN's renderer with ``last_back`` and ``white_back`` (CARLA-style): the leftover weight
            ``1 - opacity`` goes to the farthest sample *and* white is added with it, so the colour can pass 1
            where the farthest sample is empty (``weights`` and ``depth`` are last_sample's); a tensor (..., C)
            broadcastable against the output colour, e.g. (C,) or a per-ray (B, R, C), is the colour /
            features behind the ray, added with weight ``1 - opacity``.
        depth_mode: ``"expected"`` = sum w t; ``"normalized"`` = (sum w t) / (sum w), clamped to [t.min, t.max].
        noise_std: std of Gaussian noise added to raw density (regularisation during training); the
            noise is ``noise`` (shape of ``sigma``) if given, else drawn from ``generator``.
        color_order: (..., S) int64 or None: ``color[..., color_order[..., k], :]`` is the k-th sample's
            (features not yet sorted like ``t`` and ``sigma``, as the renderer's merged coarse + fine passes).
    Returns:
        :class:`Composited`; its ``surface_depth`` is :func:`surface_depth` of the unfilled weights, with
        ``t[..., -1]`` (the last sample) for empty rays.
    """
    if noise_std > 0:
        if noise is None:
            noise = torch.randn(sigma.shape, generator=generator, device=sigma.device, dtype=sigma.dtype)
        sigma = sigma + noise * noise_std
    last = t[..., -1]
    weighted_sum = use_optimized_kernels(color)
    if color_order is not None and not weighted_sum:
        color = color.gather(-2, color_order[..., None].expand(*color_order.shape, color.shape[-1]))
    if midpoint:
        deltas = t[..., 1:] - t[..., :-1]
        if not weighted_sum:
            color = 0.5 * (color[..., :-1, :] + color[..., 1:, :])
        sigma = 0.5 * (sigma[..., :-1] + sigma[..., 1:])
        t = 0.5 * (t[..., :-1] + t[..., 1:])
    else:
        deltas = t[..., 1:] - t[..., :-1]
        final = (last_delta.to(deltas).unsqueeze(-1) if isinstance(last_delta, Tensor)
                 else torch.full_like(deltas[..., :1], last_delta))
        deltas = torch.cat([deltas, final], -1)
    density = activate_density(sigma, density_activation, density_bias)
    alphas = 1 - torch.exp(-deltas * density)
    shifted = torch.cat([torch.ones_like(alphas[..., :1]), 1 - alphas + 1e-10], -1)
    transmittance = torch.cumprod(shifted, -1)[..., :-1]
    weights = alphas * transmittance
    opacity = weights.sum(-1)
    surface = surface_depth(weights, t, far=last)
    if isinstance(background, str) and background in LAST_SAMPLE_FILLS:
        weights = torch.cat([weights[..., :-1], weights[..., -1:] + (1 - opacity)[..., None]], -1)
    if weighted_sum:
        out_color = _weighted_color_sum(weights, color, midpoint, color_order)
    else:
        out_color = torch.sum(weights[..., None] * color, -2)
    depth = torch.sum(weights * t, -1)
    if depth_mode == "normalized":
        depth = depth / opacity
        depth = torch.nan_to_num(depth, nan=float("inf"))
        depth = depth.clamp(t.min(), t.max())
    elif depth_mode != "expected":
        raise ValueError(f"unknown depth mode {depth_mode!r}; valid: expected, normalized")
    out_color = _add_background(out_color, opacity, background)
    return Composited(out_color, depth, opacity, weights, transmittance, surface)
