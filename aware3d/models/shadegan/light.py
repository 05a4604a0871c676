"""ShadeGAN's light: the 4-d code, Lambertian shading after integration, and the multivariate-normal prior.

A light code is ``l = (a, d, dx, dy)``: ambient ``k_a = a/2 + 0.5``, diffuse ``k_d = d/2 + 0.5`` and a
direction ``normalise(dx, dy, 1)`` in the frame of a fixed frontal camera at (0, 0, 1). The official code
rotates it to world with that camera's look-at rotation, which is exactly the identity, so the world
direction is ``normalise(dx, dy, 1)`` whatever the render camera: the light is fixed to the object
(+x lights the side on the right of a frontal image, +y from above, +z from the front).

The multivariate-normal prior (:class:`LightPrior`: the official ``*_light_mvn.pth`` and our JSON) lives in
:mod:`aware3d.models.light_prior`, shared with the ``aware3d light-prior`` tool, and is re-exported here.
"""

from __future__ import annotations

import torch
from torch import Tensor

# The prior over codes and its files are shared by every light-conditioned family (aware3d light-prior).
from ..light_prior import LightPrior, load_official_light_prior

FRONTAL_LIGHT_FRAME = torch.eye(3)
"""Rotation from the fixed frontal camera's frame to world (the official ``cam2world_matrix[:3, :3]``: identity)."""


def light_coefficients(light: Tensor) -> tuple[Tensor, Tensor]:
    """light (B, 4) -> ambient k_a (B, 1), diffuse k_d (B, 1): ``a/2 + 0.5``, ``d/2 + 0.5``."""
    return light[:, 0:1] / 2 + 0.5, light[:, 1:2] / 2 + 0.5


def light_direction(light: Tensor) -> Tensor:
    """light (B, 4) -> (B, 3) unit world direction toward the light: ``(dx, dy, 1) / (|.| + 1e-7)``."""
    d = torch.cat([light[:, 2:4], torch.ones_like(light[:, :1])], -1)
    return d / (d.norm(dim=-1, keepdim=True) + 1e-7)


def lambertian_shading(normal: Tensor, light: Tensor, ratio: float = 1.0) -> Tensor:
    """Per-pixel shading ``k_a + k_d * clamp(n . l_dir, 0, 1)``, blended as ``ratio * s + (1 - ratio)``.

    Args:
        normal: (B, R, 3) unit world normals (or 0 on empty rays); NaN dot products count as fully lit (1).
        light: (B, 4) light codes.
        ratio: the shading phase-in ratio (1 = full shading, 0 = none: shading 1).
    Returns:
        (B, R, 1) shading; the image is ``clamp(albedo * shading, 0, 1)``.
    """
    k_a, k_d = light_coefficients(light)
    direction = light_direction(light).to(normal.dtype)
    diffuse = torch.bmm(normal, direction[:, :, None]).clamp(0, 1)
    diffuse = torch.where(torch.isnan(diffuse), torch.ones_like(diffuse), diffuse)
    shading = k_a[:, None] + k_d[:, None] * diffuse
    return ratio * shading + (1 - ratio)


__all__ = ["FRONTAL_LIGHT_FRAME", "LightPrior", "lambertian_shading", "light_coefficients", "light_direction",
           "load_official_light_prior"]
