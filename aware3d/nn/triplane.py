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

from dataclasses import dataclass

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


def plane_grid(coords: Tensor, plane_axes: PlaneAxes | str = "official") -> Tensor:
    """(N, M, 3) points -> (N, M, 3, 2) their coordinates on the three planes, point-major (the layout
    :func:`mean_plane_features` reads; cube coordinates in, grid coordinates out)."""
    return torch.stack([coords[..., list(pair)] for pair in plane_axis_pairs(plane_axes)], dim=2)


def project_onto_planes(points: Tensor, plane_axes: PlaneAxes | str = "official") -> Tensor:
    """(N, M, 3) points -> (N * 3, M, 2) plane coordinates, row ``n * 3 + p`` for plane p (plane-major
    :func:`plane_grid`).

    Equal to EG3D's ``points @ inverse(axes_p)`` (its axes are permutation matrices, so the product only
    selects coordinates, exactly).
    """
    N, M, _ = points.shape
    return plane_grid(points, plane_axes).transpose(1, 2).reshape(-1, M, 2)


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


@dataclass(frozen=True)
class PlaneTable:
    """Planes laid out for :func:`mean_plane_features`: one row of C features per texel, each plane framed
    by zero texels (one before, two after, on both axes) so that every bilinear corner of a clamped
    position is a valid row and reads zero outside the plane, with no per-corner bounds test."""

    rows: Tensor
    """(N * P * (H + 3) * (W + 3), C): texel (y, x) of plane p of item n at row ((n P + p)(H + 3) + y + 1)(W + 3) + x + 1."""
    shape: tuple[int, int, int, int]
    """(N, P, H, W) of the planes."""


def plane_table(planes: Tensor) -> PlaneTable:
    """(N, P, C, H, W) planes -> their :class:`PlaneTable` (build it once per set of planes, not per chunk)."""
    N, P, C, H, W = planes.shape
    rows = planes.new_zeros(N, P, H + 3, W + 3, C)
    rows[:, :, 1:H + 1, 1:W + 1] = planes.permute(0, 1, 3, 4, 2)
    return PlaneTable(rows.reshape(-1, C), (N, P, H, W))


def gathers_slower(planes: Tensor) -> bool:
    """Whether ``grid_sample`` beats :func:`mean_plane_features` for ``planes``: when gradients flow into the
    planes (training), as the gather's backward sorts every index to accumulate the texel gradients."""
    return torch.is_grad_enabled() and planes.requires_grad


def mean_plane_features(table: PlaneTable, grid: Tensor, align_corners: bool) -> Tensor:
    """Mean over P planes of their bilinear features, as one weighted gather (``embedding_bag``).

    Args:
        table: the planes, from :func:`plane_table`.
        grid: (N, M, P, 2) grid coordinates of M points on each plane, ``grid_sample``'s convention (x ->
            column, y -> row; -1 / +1 the outer texel edges, or the texel centres with ``align_corners``);
            zeros outside.
    Returns:
        (N, M, C), equal to ``grid_sample`` on each plane followed by the mean, up to float rounding; the
        4 P texels of a point are read as rows of C contiguous features instead of C strided planes.
    """
    N, P, H, W = table.shape
    M = grid.shape[1]
    size = grid.new_tensor([W, H])
    pos = (grid + 1) * ((size - 1) / 2) if align_corners else ((grid + 1) * size - 1) / 2
    # Beyond one texel outside, every corner is a framing zero: clamping there changes nothing.
    pos = pos.clamp(min=grid.new_tensor(-1.0), max=size)
    lo = pos.floor()
    frac = pos - lo
    lo = lo.long()
    Hp, Wp = H + 3, W + 3
    plane_base = torch.arange(P, device=grid.device) * (Hp * Wp) + Wp + 1
    item_base = torch.arange(N, device=grid.device).reshape(N, 1, 1) * (P * Hp * Wp)
    corner = item_base + plane_base + lo[..., 1] * Wp + lo[..., 0]  # (N, M, P)
    index = corner.unsqueeze(-1) + torch.tensor([0, 1, Wp, Wp + 1], device=grid.device)  # (N, M, P, 4)
    wx = torch.stack([1 - frac[..., 0], frac[..., 0]], dim=-1)
    wy = torch.stack([1 - frac[..., 1], frac[..., 1]], dim=-1) * (1 / P)
    weight = (wy.unsqueeze(-1) * wx.unsqueeze(-2)).to(table.rows.dtype)  # (N, M, P, 2, 2)
    out = F.embedding_bag(index.reshape(N * M, P * 4), table.rows, per_sample_weights=weight.reshape(N * M, P * 4),
                          mode="sum")
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
        rgb = torch.sigmoid(x[..., 1:])
        if torch.is_grad_enabled() and rgb.requires_grad:
            rgb = rgb * (1 + 2 * 0.001) - 0.001
        else:  # the same arithmetic in place: two fewer full-size passes at inference
            rgb = rgb.mul_(1 + 2 * 0.001).sub_(0.001)
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
        grid = plane_grid((2 / box_warp) * points, plane_axes)
        rgb, sigma = decoder.decode(mean_plane_features(table, grid, align_corners=False))
        return rgb, sigma[..., 0]

    return gathered_field

