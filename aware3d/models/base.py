"""What every family's generator returns and offers to the shared tools."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from ..cameras import Cameras


@dataclass
class GeneratorOutput:
    """One batch of renders. Images are (B, C, H, W) with row 0 at the top."""

    image: Tensor
    """(B, 3, H, W) colour in [-1, 1]."""
    depth: Tensor
    """(B, 1, H, W) distance along each pixel's ray, world units (the family's depth convention)."""
    opacity: Tensor
    """(B, 1, H, W) accumulated alpha in [0, 1]."""
    normals: Tensor | None = None
    """(B, 3, H, W) world-space unit normals (only when requested)."""


class Generator3D(nn.Module):
    """Base class of the families' generators: z (and camera) -> w -> render.

    Subclasses implement :meth:`mapping`, :meth:`synthesis`, :meth:`density` and expose
    ``config`` with ``fov_deg``, ``resolution``, ``pose`` (:class:`PoseDistribution`), ``render``
    (:class:`RenderConfig`), ``pixel_grid`` and ``shape_bounds``.
    """

    family: str = ""
    z_dim: int
    tracks_w_avg: bool = False
    """True when training itself tracks the truncation centre ``w_avg`` (EG3D's mapping network); else
    :meth:`update_w_avg` sets it from random latents (fresh and exported models)."""

    def mapping(self, z: Tensor, truncation_psi: float = 1.0, cameras: Cameras | None = None) -> Tensor:
        raise NotImplementedError

    def synthesis(self, w: Tensor, cameras: Cameras, **kwargs) -> GeneratorOutput:
        """Render latents w from cameras. Every family accepts ``resolution``, ``render``,
        ``lock_view_dependence``, ``normals``, ``generator``, ``draws`` and ``fast`` (inference-only kernels
        that may round differently from the reference path)."""
        raise NotImplementedError

    def density(self, w: Tensor) -> Callable[[Tensor], Tensor]:
        """A function mapping (B, N, 3) world points to (B, N) raw density for latent ``w``."""
        raise NotImplementedError

    def color(self, w: Tensor) -> Callable[[Tensor], Tensor]:
        """A function mapping (B, N, 3) world points to (B, N, 3) colour in [0, 1] (for mesh vertex colours)."""
        raise NotImplementedError

    def forward(self, z: Tensor, cameras: Cameras, *, truncation_psi: float = 1.0, **kwargs) -> GeneratorOutput:
        return self.synthesis(self.mapping(z, truncation_psi, cameras=cameras), cameras, **kwargs)

    # Shared conveniences -------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Standard normal latents (n, z_dim) on the model's device."""
        return torch.randn(n, self.z_dim, generator=generator).to(self.device)

    def z_from_seeds(self, seeds: list[int]) -> Tensor:
        """One latent per integer seed: the same seed always gives the same z (CPU generator)."""
        return torch.cat([torch.randn(1, self.z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]).to(self.device)

    def cameras(self, yaw, pitch, fov_scale: float = 1.0) -> Cameras:
        """Cameras in pi-GAN angles at the model's radius and fov (``fov_scale`` zooms)."""
        cfg = self.config
        return Cameras.from_angles(yaw, pitch, cfg.fov_deg * fov_scale, radius=cfg.pose.radius, device=self.device)

    def sample_cameras(self, n: int, generator: torch.Generator | None = None) -> Cameras:
        """n cameras from the model's training pose distribution."""
        yaw, pitch = self.config.pose.sample(n, generator=generator)
        return self.cameras(yaw, pitch)


def expand_latent(w: Tensor, batch: int) -> Tensor:
    """Broadcast a (1, ...) latent to ``batch`` rows; a (batch, ...) latent passes through."""
    if w.shape[0] == batch:
        return w
    if w.shape[0] == 1:
        return w.expand(batch, *w.shape[1:])
    raise ValueError(f"latent batch {w.shape[0]} does not match {batch} cameras")


__all__ = ["GeneratorOutput", "Generator3D", "expand_latent"]
