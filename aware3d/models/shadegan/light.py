"""ShadeGAN's light: the 4-d code, Lambertian shading after integration, and the multivariate-normal prior.

A light code is ``l = (a, d, dx, dy)``: ambient ``k_a = a/2 + 0.5``, diffuse ``k_d = d/2 + 0.5`` and a
direction ``normalise(dx, dy, 1)`` in the frame of a fixed frontal camera at (0, 0, 1). The official code
rotates it to world with that camera's look-at rotation, which is exactly the identity, so the world
direction is ``normalise(dx, dy, 1)`` whatever the render camera: the light is fixed to the object
(+x lights the side on the right of a frontal image, +y from above, +z from the front).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ...io.keymap import CheckpointMismatchError
from ...io.safe_unpickle import load_torch_file

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


@dataclass(frozen=True)
class LightPrior:
    """A multivariate normal over light codes (the official ``weights/light_mvn/*.pth``)."""

    mean: Tensor
    """(4,) float32 mean light code."""
    cov: Tensor
    """(4, 4) float32 covariance (symmetric positive definite)."""

    def __post_init__(self) -> None:
        if tuple(self.mean.shape) != (4,) or tuple(self.cov.shape) != (4, 4):
            raise ValueError(f"a light prior has mean (4,) and cov (4, 4), got {tuple(self.mean.shape)} and "
                             f"{tuple(self.cov.shape)}")

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, 4) codes ``mean + cholesky(cov) @ eps``; eps is one (n, 4) standard normal draw (as ``LSampler``)."""
        eps = torch.empty(n, 4, dtype=self.mean.dtype).normal_(generator=generator)
        return self.transform(eps)

    def transform(self, eps: Tensor) -> Tensor:
        """(n, 4) standard normal draws -> (n, 4) light codes."""
        scale = torch.linalg.cholesky(self.cov.to(eps))
        return self.mean.to(eps) + (scale @ eps[..., None]).squeeze(-1)

    def save(self, path: str | Path) -> Path:
        """Write ``{"mean": [...], "cov": [[...]]}`` JSON (our format, beside a checkpoint)."""
        path = Path(path)
        path.write_text(json.dumps({"mean": self.mean.tolist(), "cov": self.cov.tolist()}, indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> LightPrior:
        """Read our JSON or the official ``{'mean', 'cov'}`` torch file (with the restricted unpickler)."""
        path = Path(path)
        if path.suffix == ".json":
            data = json.loads(path.read_text())
            return cls(torch.tensor(data["mean"], dtype=torch.float32), torch.tensor(data["cov"], dtype=torch.float32))
        return load_official_light_prior(path)


def load_official_light_prior(path: str | Path) -> LightPrior:
    """The official light prior file: a ``torch.save`` of ``{'mean': (4,), 'cov': (4, 4)}``, read safely."""
    data = load_torch_file(path)
    if not isinstance(data, dict) or not {"mean", "cov"} <= set(data):
        raise CheckpointMismatchError(f"{path} is not a ShadeGAN light prior (expected a dict with 'mean' and 'cov')")
    return LightPrior(data["mean"].float(), data["cov"].float())


__all__ = ["FRONTAL_LIGHT_FRAME", "LightPrior", "lambertian_shading", "light_coefficients", "light_direction",
           "load_official_light_prior"]
