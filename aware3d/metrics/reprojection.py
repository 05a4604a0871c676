"""Multi-view consistency: warp a rendered view into its neighbour through depth and cameras.

For two renders (i, j) of the same latent, every pixel of view i with a surface (opacity above
``min_opacity``) is lifted to the world point ``o_i + d_i * t_i`` (its camera centre, unit ray and surface
distance), projected into camera j, and kept when it lands inside image j, in front of the camera, between
pixels of j that all hold a surface (so the bilinear colour lookup blends no background), and is not
occluded there: its distance to camera j must agree with view j's
depth at that pixel (nearest pixel) within ``depth_tolerance`` (relative). The error is the mean absolute
colour difference, in [0, 1] colour units averaged over RGB, between view i's pixel and view j's colour
bilinearly sampled at the projection, over all co-visible pixels. A perfectly 3D-consistent renderer with
view-independent colour scores about 0; colours that change with the camera score more.

Surface distance: the render's ``surface_depth`` (:func:`aware3d.rendering.surface_depth`: the compositing
weights before any background fill, normalised by their sum), whatever the family's ``depth`` convention
(pi-GAN's is unnormalised and mixes in the last-sample fill); see :func:`output_surface_depth`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cameras import Cameras, PixelGrid, generate_rays
from ..models.base import GeneratorOutput


@dataclass(frozen=True)
class ReprojectionConfig:
    """Which views are compared and when a pixel counts as co-visible."""

    yaw_offsets: tuple[float, ...] = (-0.3, -0.15, 0.0, 0.15, 0.3)
    """Yaw of the views in radians relative to the pose mean (neighbours in this list are compared)."""
    pitch_offset: float = 0.0
    """Pitch of every view relative to the pose mean, radians (positive looks from above)."""
    min_opacity: float = 0.5
    """Pixels whose accumulated opacity is below this have no surface and are skipped."""
    depth_tolerance: float = 0.02
    """Occlusion test: |distance to camera j - depth of j| must be below this fraction of the distance."""


def output_surface_depth(out: GeneratorOutput) -> Tensor:
    """(B, 1, H, W) distance to the surface of a render: its ``surface_depth``, the renderer's one definition
    (:func:`aware3d.rendering.surface_depth`), which every family fills."""
    if out.surface_depth is None:
        raise ValueError("this generator's output has no surface_depth: a family fills GeneratorOutput.surface_depth "
                         "from the renderer's RayOutput.surface_depth (aware3d.rendering.surface_depth)")
    return out.surface_depth


def world_points(cameras: Cameras, depth: Tensor, grid: PixelGrid = "pixel_centers") -> Tensor:
    """(B, H*W, 3) world points ``o + d t`` of (B, 1, H, W) distances along the pixel rays (row-major)."""
    B, _, H, W = depth.shape
    rays_o, rays_d = generate_rays(cameras, H, W, grid=grid)
    return rays_o + rays_d * depth.reshape(B, H * W, 1)


def project(points: Tensor, cameras: Cameras, height: int, width: int,
            grid: PixelGrid = "pixel_centers") -> tuple[Tensor, Tensor, Tensor]:
    """Project (B, N, 3) world points into B cameras.

    Returns:
        sample_xy: (B, N, 2) positions for ``grid_sample(..., align_corners=True)`` (-1 / +1 = centres of
            the first / last pixel), x along the width.
        distance: (B, N) distance from the camera centre (the depth convention of the renders).
        in_front: (B, N) bool, the point is in front of the camera (z > 0).
    """
    c2w = cameras.cam2world
    K = cameras.intrinsics
    rel = points - c2w[:, None, :3, 3]
    cam = rel @ c2w[:, :3, :3]  # R^T (p - o) for each point, as row vectors
    z = cam[..., 2]
    in_front = z > 1e-8
    zs = torch.where(in_front, z, torch.ones_like(z))
    xn, yn = cam[..., 0] / zs, cam[..., 1] / zs
    u = K[:, None, 0, 0] * xn + K[:, None, 0, 1] * yn + K[:, None, 0, 2]
    v = K[:, None, 1, 1] * yn + K[:, None, 1, 2]
    if grid == "pixel_centers":
        col, row = u * width - 0.5, v * height - 0.5
    elif grid == "edge_aligned":
        col, row = u * (width - 1), v * (height - 1)
    else:
        raise ValueError(f"unknown pixel grid {grid!r}; valid: pixel_centers, edge_aligned")
    sx = col / max(width - 1, 1) * 2 - 1
    sy = row / max(height - 1, 1) * 2 - 1
    return torch.stack([sx, sy], -1), rel.norm(dim=-1), in_front


def warp_error(image_i: Tensor, depth_i: Tensor, valid_i: Tensor, cam_i: Cameras,
               image_j: Tensor, depth_j: Tensor, valid_j: Tensor, cam_j: Cameras,
               grid: PixelGrid = "pixel_centers", depth_tolerance: float = 0.02) -> tuple[Tensor, Tensor]:
    """Colour error of warping view i into view j, per image.

    Args:
        image_*: (B, 3, H, W) colours in [-1, 1]; depth_*: (B, 1, H, W) surface distances;
        valid_*: (B, 1, H, W) bool, the pixel has a surface; cam_*: B cameras.
    Returns:
        (sum of per-pixel mean-over-RGB absolute differences in [0, 1] units, number of co-visible pixels),
        each (B,).
    """
    B, _, H, W = image_i.shape
    pts = world_points(cam_i, depth_i, grid)
    xy, dist, in_front = project(pts, cam_j, H, W, grid)
    inside = in_front & (xy.abs() <= 1 + 1e-6).all(-1)
    g = xy[:, :, None, :]  # (B, N, 1, 2) sampling grid
    col_j = F.grid_sample(image_j, g, mode="bilinear", align_corners=True, padding_mode="border")[..., 0]
    dep_j = F.grid_sample(depth_j, g, mode="nearest", align_corners=True, padding_mode="border")[:, 0, :, 0]
    # Every pixel the bilinear colour lookup touches must hold a surface (no background blended in).
    val_j = F.grid_sample(valid_j.float(), g, mode="bilinear", align_corners=True, padding_mode="border")[:, 0, :, 0] > 0.999
    visible = (dist - dep_j).abs() <= depth_tolerance * dist
    mask = inside & val_j & visible & valid_i.reshape(B, -1)
    diff = (image_i.reshape(B, 3, -1) - col_j).abs().mean(1) / 2  # [-1, 1] -> [0, 1] units
    return (diff * mask).sum(1), mask.sum(1)


def reprojection_error(images: Tensor, depths: Tensor, valid: Tensor, cameras: list[Cameras],
                       grid: PixelGrid = "pixel_centers", depth_tolerance: float = 0.02) -> dict:
    """Mean warp error over neighbouring views, both directions.

    Args:
        images: (V, B, 3, H, W) renders of B latents from V views in [-1, 1].
        depths: (V, B, 1, H, W) surface distances.
        valid: (V, B, 1, H, W) bool surface masks.
        cameras: V camera batches (B each).
    Returns:
        {"error_sum", "pixels", "per_latent_sum" (B,), "per_latent_pixels" (B,), "total_pixels"} tensors to
        accumulate over batches; the metric is error_sum / pixels.
    """
    V, B, _, H, W = images.shape
    err = torch.zeros(B, dtype=torch.float64)
    cnt = torch.zeros(B, dtype=torch.float64)
    for a in range(V - 1):
        for i, j in ((a, a + 1), (a + 1, a)):
            e, c = warp_error(images[i], depths[i], valid[i], cameras[i], images[j], depths[j], valid[j], cameras[j],
                              grid, depth_tolerance)
            err += e.double().cpu()
            cnt += c.double().cpu()
    total = 2 * (V - 1) * B * H * W
    return {"error_sum": err.sum(), "pixels": cnt.sum(), "per_latent_sum": err, "per_latent_pixels": cnt,
            "total_pixels": total}


__all__ = ["ReprojectionConfig", "output_surface_depth", "project", "reprojection_error", "warp_error",
           "world_points"]
