"""The tri-plane representation: projecting points onto three feature planes, bilinear sampling, the small
decoder MLP (features -> density + colour features) and the field callback for the shared renderer.

Planes are (B, 3, C, H, W). A world point q is scaled by ``2 / box_warp`` (the cube of side ``box_warp``
centred at the origin maps to [-1, 1]^3) and plane p reads it at the 2-D coordinate (a, b) of its axis
pair: ``a`` indexes the width (column), ``b`` the height (row), -1 being the first texel's outer edge
(``grid_sample`` with ``align_corners=False``, zeros outside). The released EG3D models use the axis pairs
(x, y), (x, z), (z, x) — the third plane is *not* a y-z plane (NVlabs/eg3d issues #30, #53) — which
``"official"`` keeps; ``"corrected"`` uses (x, y), (x, z), (y, z) for new models.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from typing import Literal

from .stylegan2.layers import FullyConnectedLayer

PlaneAxes = Literal["official", "corrected"]
"""Which axis pairs the three planes read: EG3D's released (x,y), (x,z), (z,x), or (x,y), (x,z), (y,z)."""

# Plane p reads the world axes (a, b): a -> column (grid x), b -> row (grid y).
PLANE_AXES: dict[str, tuple[tuple[int, int], ...]] = {
    "official": ((0, 1), (0, 2), (2, 0)),
    "corrected": ((0, 1), (0, 2), (1, 2)),
}


def plane_axis_pairs(plane_axes: PlaneAxes | str) -> tuple[tuple[int, int], ...]:
    if plane_axes not in PLANE_AXES:
        raise ValueError(f"unknown plane_axes {plane_axes!r}; valid: {', '.join(PLANE_AXES)}")
    return PLANE_AXES[plane_axes]


def project_onto_planes(points: Tensor, plane_axes: PlaneAxes | str = "official") -> Tensor:
    """(N, M, 3) points -> (N * 3, M, 2) plane coordinates, row ``n * 3 + p`` for plane p.

    Equal to EG3D's ``points @ inverse(axes_p)`` (its axes are permutation matrices, so the product only
    selects coordinates, exactly).
    """
    pairs = plane_axis_pairs(plane_axes)
    N, M, _ = points.shape
    proj = torch.stack([points[..., list(pair)] for pair in pairs], dim=1)
    return proj.reshape(N * len(pairs), M, 2)


def sample_from_planes(planes: Tensor, points: Tensor, box_warp: float, plane_axes: PlaneAxes | str = "official") -> Tensor:
    """Bilinear features of ``points`` (N, M, 3, world units) on ``planes`` (N, 3, C, H, W) -> (N, 3, M, C).

    Points outside the cube of side ``box_warp`` read zeros.
    """
    N, P, C, H, W = planes.shape
    M = points.shape[1]
    coords = (2 / box_warp) * points
    grid = project_onto_planes(coords, plane_axes).unsqueeze(1)
    feats = F.grid_sample(planes.reshape(N * P, C, H, W), grid.float(), mode="bilinear", padding_mode="zeros",
                          align_corners=False)
    return feats.permute(0, 3, 2, 1).reshape(N, P, M, C)


class TriPlaneDecoder(nn.Module):
    """Mean of the three plane features -> FC -> softplus -> FC: raw density + ``output_dim`` colour features.

    Colour features go through ``sigmoid(x) * 1.002 - 0.001`` (MipNeRF's widened sigmoid, range
    (-0.001, 1.001)); the first three are RGB. View directions are not used.
    """

    def __init__(self, in_features: int = 32, hidden: int = 64, output_dim: int = 32, lr_mul: float = 1.0):
        super().__init__()
        self.hidden = FullyConnectedLayer(in_features, hidden, lr_mul=lr_mul)
        self.output = FullyConnectedLayer(hidden, 1 + output_dim, lr_mul=lr_mul)

    def forward(self, plane_features: Tensor) -> tuple[Tensor, Tensor]:
        """(N, 3, M, C) sampled features -> (colour features (N, M, output_dim), raw sigma (N, M, 1))."""
        x = plane_features.mean(1)
        N, M, C = x.shape
        x = self.output(F.softplus(self.hidden(x.reshape(N * M, C)))).reshape(N, M, -1)
        rgb = torch.sigmoid(x[..., 1:]) * (1 + 2 * 0.001) - 0.001
        return rgb, x[..., 0:1]


def triplane_field(planes: Tensor, decoder: TriPlaneDecoder, box_warp: float, plane_axes: PlaneAxes | str = "official"):
    """The shared renderer's field callback for ``planes`` (B, 3, C, H, W):
    ``(points (B, N, 3), view_dirs) -> (colour features (B, N, output_dim), raw sigma (B, N))``."""

    def field(points: Tensor, view_dirs: Tensor) -> tuple[Tensor, Tensor]:
        rgb, sigma = decoder(sample_from_planes(planes, points, box_warp, plane_axes))
        return rgb, sigma[..., 0]

    return field
