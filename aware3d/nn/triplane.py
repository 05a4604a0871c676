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

from .kernels import use_optimized_kernels
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


def plane_table(planes: Tensor) -> Tensor:
    """(N, P, C, H, W) planes -> (N * P * H * W, C): one row of C features per texel, for
    :func:`mean_plane_features` (build it once per set of planes, not once per chunk of points)."""
    return planes.permute(0, 1, 3, 4, 2).reshape(-1, planes.shape[2])


def gathers_slower(planes: Tensor) -> bool:
    """Whether ``grid_sample`` beats :func:`mean_plane_features` for ``planes``: when gradients flow into the
    planes (training), as the gather's backward sorts every index to accumulate the texel gradients."""
    return torch.is_grad_enabled() and planes.requires_grad


def _bilinear_corners(coord: Tensor, size: int, align_corners: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Texel indices (clamped) and weights (0 outside) of the two texels around grid coordinates ``coord``
    along an axis of ``size`` texels, as ``grid_sample(mode="bilinear", padding_mode="zeros")`` reads them."""
    if align_corners:
        pos = (coord + 1) * ((size - 1) / 2)
    else:
        pos = ((coord + 1) * size - 1) / 2
    lo = pos.floor()
    w_hi = pos - lo
    w_lo = 1 - w_hi
    lo_i = lo.long()
    hi_i = lo_i + 1
    w_lo = w_lo * ((lo_i >= 0) & (lo_i < size))
    w_hi = w_hi * ((hi_i >= 0) & (hi_i < size))
    return lo_i.clamp(0, size - 1), hi_i.clamp(0, size - 1), w_lo, w_hi


def mean_plane_features(table: Tensor, grid: Tensor, resolution: tuple[int, int], align_corners: bool) -> Tensor:
    """Mean over P planes of their bilinear features, as one weighted gather (``embedding_bag``).

    Args:
        table: (N * P * H * W, C) from :func:`plane_table`.
        grid: (N, P, M, 2) grid coordinates per plane, ``grid_sample``'s convention (x -> column, y -> row,
            -1 / +1 the outer texel edges, or the texel centres with ``align_corners``); zeros outside.
        resolution: (H, W) of the planes.
    Returns:
        (N, M, C), equal to ``grid_sample`` on each plane followed by the mean, up to float rounding; the
        12 texels of a point are read as rows of C contiguous features instead of C strided planes.
    """
    N, P, M, _ = grid.shape
    H, W = resolution
    x0, x1, wx0, wx1 = _bilinear_corners(grid[..., 0], W, align_corners)
    y0, y1, wy0, wy1 = _bilinear_corners(grid[..., 1], H, align_corners)
    base = (torch.arange(N * P, device=grid.device).reshape(N, P, 1) * (H * W))
    rows0, rows1 = base + y0 * W, base + y1 * W
    index = torch.stack([rows0 + x0, rows0 + x1, rows1 + x0, rows1 + x1], dim=-1)  # (N, P, M, 4)
    weight = torch.stack([wy0 * wx0, wy0 * wx1, wy1 * wx0, wy1 * wx1], dim=-1) * (1 / P)
    index = index.permute(0, 2, 1, 3).reshape(N * M, P * 4)
    weight = weight.permute(0, 2, 1, 3).reshape(N * M, P * 4).to(table.dtype)
    out = F.embedding_bag(index, table, per_sample_weights=weight, mode="sum")
    return out.reshape(N, M, -1)


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
        return self.decode(plane_features.mean(1))

    def decode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(N, M, C) mean plane features -> (colour features (N, M, output_dim), raw sigma (N, M, 1))."""
        N, M, C = x.shape
        x = self.output(F.softplus(self.hidden(x.reshape(N * M, C)))).reshape(N, M, -1)
        rgb = torch.sigmoid(x[..., 1:]) * (1 + 2 * 0.001) - 0.001
        return rgb, x[..., 0:1]


def triplane_field(planes: Tensor, decoder: TriPlaneDecoder, box_warp: float, plane_axes: PlaneAxes | str = "official"):
    """The shared renderer's field callback for ``planes`` (B, 3, C, H, W):
    ``(points (B, N, 3), view_dirs) -> (colour features (B, N, output_dim), raw sigma (B, N))``."""

    if not use_optimized_kernels(planes) or gathers_slower(planes):
        def field(points: Tensor, view_dirs: Tensor) -> tuple[Tensor, Tensor]:
            rgb, sigma = decoder(sample_from_planes(planes, points, box_warp, plane_axes))
            return rgb, sigma[..., 0]
        return field
    table = plane_table(planes)

    def gathered_field(points: Tensor, view_dirs: Tensor) -> tuple[Tensor, Tensor]:
        grid = plane_grid(points, box_warp, plane_axes)
        rgb, sigma = decoder.decode(mean_plane_features(table, grid, planes.shape[-2:], align_corners=False))
        return rgb, sigma[..., 0]

    return gathered_field


def plane_grid(points: Tensor, box_warp: float, plane_axes: PlaneAxes | str = "official") -> Tensor:
    """(N, M, 3) world points -> (N, 3, M, 2) grid coordinates on the three planes."""
    N, M, _ = points.shape
    return project_onto_planes((2 / box_warp) * points, plane_axes).reshape(N, -1, M, 2).float()
