"""Alpha compositing of samples along rays (the volume rendering integral, discretised).

For samples at distances t_i with densities sigma_i (after the activation) and spacing delta_i:
``alpha_i = 1 - exp(-sigma_i * delta_i)``, transmittance ``T_i = prod_{j<i} (1 - alpha_j + 1e-10)`` and
weights ``w_i = alpha_i * T_i``. Colour is ``sum w_i c_i``; the two seeds' variants are both here:

* pi-GAN (``midpoint=False``): values at the samples, the last delta is ``last_delta`` (1e10, so the
  farthest sample is opaque wherever its density is positive), depth ``sum w_i t_i`` (not normalised).
* EG3D (``midpoint=True``): values averaged between neighbouring samples, S-1 intervals, depth
  normalised by the total weight and clamped to the sampled range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

DensityActivation = Literal["relu", "softplus"]
Background = Literal["black", "white", "last_sample"]
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


def activate_density(sigma: Tensor, activation: DensityActivation, bias: float = 0.0) -> Tensor:
    """Map raw network density to a non-negative density: relu / softplus of ``sigma + bias``."""
    if bias:
        sigma = sigma + bias
    if activation == "relu":
        return F.relu(sigma)
    if activation == "softplus":
        return F.softplus(sigma)
    raise ValueError(f"unknown density activation {activation!r}; valid: relu, softplus")


def composite(color: Tensor, sigma: Tensor, t: Tensor, *, density_activation: DensityActivation = "relu",
              density_bias: float = 0.0, midpoint: bool = False, last_delta: float = 1e10,
              background: Background = "black", depth_mode: DepthMode = "expected",
              noise_std: float = 0.0, noise: Tensor | None = None,
              generator: torch.Generator | None = None) -> Composited:
    """Composite S samples per ray front to back.

    Args:
        color: (..., S, C) colour or features at the samples (for colour, in [0, 1]).
        sigma: (..., S) raw density at the samples (before ``density_activation``).
        t: (..., S) sample distances along unit rays, sorted ascending.
        density_activation, density_bias: see :func:`activate_density` (EG3D: softplus, bias -1).
        midpoint: composite S-1 intervals with values averaged at the midpoints (EG3D) instead of S samples.
        last_delta: length of the last interval when ``midpoint=False``.
        background: ``"black"`` leaves empty space at 0, ``"white"`` adds ``1 - opacity``, ``"last_sample"``
            gives the farthest sample the remaining weight (pi-GAN's ``last_back``).
        depth_mode: ``"expected"`` = sum w t; ``"normalized"`` = (sum w t) / (sum w), clamped to [t.min, t.max].
        noise_std: std of Gaussian noise added to raw density (regularisation during training); the
            noise is ``noise`` (shape of ``sigma``) if given, else drawn from ``generator``.
    Returns:
        :class:`Composited`.
    """
    if noise_std > 0:
        if noise is None:
            noise = torch.randn(sigma.shape, generator=generator, device=sigma.device, dtype=sigma.dtype)
        sigma = sigma + noise * noise_std
    if midpoint:
        deltas = t[..., 1:] - t[..., :-1]
        color = 0.5 * (color[..., :-1, :] + color[..., 1:, :])
        sigma = 0.5 * (sigma[..., :-1] + sigma[..., 1:])
        t = 0.5 * (t[..., :-1] + t[..., 1:])
    else:
        deltas = t[..., 1:] - t[..., :-1]
        deltas = torch.cat([deltas, torch.full_like(deltas[..., :1], last_delta)], -1)
    density = activate_density(sigma, density_activation, density_bias)
    alphas = 1 - torch.exp(-deltas * density)
    shifted = torch.cat([torch.ones_like(alphas[..., :1]), 1 - alphas + 1e-10], -1)
    weights = alphas * torch.cumprod(shifted, -1)[..., :-1]
    opacity = weights.sum(-1)
    if background == "last_sample":
        weights = torch.cat([weights[..., :-1], weights[..., -1:] + (1 - opacity)[..., None]], -1)
    out_color = torch.sum(weights[..., None] * color, -2)
    depth = torch.sum(weights * t, -1)
    if depth_mode == "normalized":
        depth = depth / opacity
        depth = torch.nan_to_num(depth, nan=float("inf"))
        depth = depth.clamp(t.min(), t.max())
    elif depth_mode != "expected":
        raise ValueError(f"unknown depth mode {depth_mode!r}; valid: expected, normalized")
    if background == "white":
        out_color = out_color + (1 - opacity)[..., None]
    elif background not in ("black", "last_sample"):
        raise ValueError(f"unknown background {background!r}; valid: black, white, last_sample")
    return Composited(out_color, depth, opacity, weights)
