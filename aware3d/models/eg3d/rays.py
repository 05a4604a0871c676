"""EG3D's ray sampler (its pixel-centre convention and arithmetic, for bitwise-equal rays)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def eg3d_rays(cam2world: Tensor, intrinsics: Tensor, resolution: int) -> tuple[Tensor, Tensor]:
    """EG3D's RaySampler: rays through pixel centres of a ``resolution``^2 image.

    Args:
        cam2world: (B, 4, 4) OpenCV camera-to-world; intrinsics: (B, 3, 3) normalised (skew supported).
    Returns:
        origins (B, R*R, 3) (the camera position) and unit directions (B, R*R, 3), row-major
        (ray index = row * R + col). The direction is ``cam2world @ (x, y, 1, 1) - origin`` normalised,
        the official arithmetic (bitwise-equal rays).
    """
    B = cam2world.shape[0]
    device = cam2world.device
    origin = cam2world[:, :3, 3]
    fx, fy = intrinsics[:, 0, 0, None], intrinsics[:, 1, 1, None]
    cx, cy, sk = intrinsics[:, 0, 2, None], intrinsics[:, 1, 2, None], intrinsics[:, 0, 1, None]
    idx = torch.arange(resolution, dtype=torch.float32, device=device)
    uv = torch.stack(torch.meshgrid(idx, idx, indexing="ij")) * (1.0 / resolution) + (0.5 / resolution)
    uv = uv.flip(0).reshape(2, -1).transpose(1, 0).unsqueeze(0).repeat(B, 1, 1)
    x_cam, y_cam = uv[:, :, 0], uv[:, :, 1]
    z_cam = torch.ones(B, resolution * resolution, device=device)
    x_lift = (x_cam - cx + cy * sk / fy - sk * y_cam / fy) / fx * z_cam
    y_lift = (y_cam - cy) / fy * z_cam
    cam_points = torch.stack((x_lift, y_lift, z_cam, torch.ones_like(z_cam)), dim=-1)
    world = torch.bmm(cam2world, cam_points.permute(0, 2, 1)).permute(0, 2, 1)[:, :, :3]
    dirs = F.normalize(world - origin[:, None, :], dim=2)
    return origin.unsqueeze(1).repeat(1, dirs.shape[1], 1), dirs
