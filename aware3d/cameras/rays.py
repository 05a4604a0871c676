"""Cameras as tensors, and ray generation.

A :class:`Cameras` batch is a cam2world (B, 4, 4) in the OpenCV convention (x right, y down, z forward;
see :mod:`aware3d.cameras.poses`) plus normalised intrinsics (B, 3, 3) (focal lengths and principal
point in units of the image size). It carries no resolution: rays are generated for any (H, W).

Two pixel grids exist in the seeds:

* ``"pixel_centers"`` (EG3D, EpiGRAF, most NeRF code): pixel (i, j) sits at ``((j+0.5)/W, (i+0.5)/H)``.
* ``"edge_aligned"`` (pi-GAN, ShadeGAN, CGOF): the first and last pixel *centres* sit on the image
  borders, ``(j/(W-1), i/(H-1))``, so the fov spans centre to centre.

Rays are ordered row-major (index = row * W + col); row 0 is the top of the image.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor

from .poses import cam2world_from_angles, intrinsics_from_fov, to_eg3d_label

PixelGrid = Literal["pixel_centers", "edge_aligned"]


@dataclass
class Cameras:
    """A batch of pinhole cameras. Tensors, so it moves between devices with :meth:`to`."""

    cam2world: Tensor
    """(B, 4, 4) camera-to-world, OpenCV convention, world +y up."""
    intrinsics: Tensor
    """(B, 3, 3) normalised intrinsics: fx, fy, cx, cy in units of image width/height."""

    def __post_init__(self) -> None:
        if self.cam2world.ndim == 2:
            self.cam2world = self.cam2world[None]
        if self.intrinsics.ndim == 2:
            self.intrinsics = self.intrinsics[None]
        if self.cam2world.shape[-2:] != (4, 4) or self.intrinsics.shape[-2:] != (3, 3):
            raise ValueError(
                f"Cameras needs cam2world (B,4,4) and intrinsics (B,3,3); got {tuple(self.cam2world.shape)} "
                f"and {tuple(self.intrinsics.shape)}"
            )
        if self.intrinsics.shape[0] == 1 and self.cam2world.shape[0] > 1:
            self.intrinsics = self.intrinsics.expand(self.cam2world.shape[0], 3, 3)
        if self.intrinsics.shape[0] != self.cam2world.shape[0]:
            raise ValueError(
                f"batch mismatch: {self.cam2world.shape[0]} cam2world matrices, {self.intrinsics.shape[0]} intrinsics"
            )

    def __len__(self) -> int:
        return self.cam2world.shape[0]

    def __getitem__(self, idx) -> "Cameras":
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        return Cameras(self.cam2world[idx], self.intrinsics[idx])

    def to(self, *args, **kwargs) -> "Cameras":
        return replace(self, cam2world=self.cam2world.to(*args, **kwargs), intrinsics=self.intrinsics.to(*args, **kwargs))

    @property
    def origins(self) -> Tensor:
        """(B, 3) camera positions in world coordinates."""
        return self.cam2world[:, :3, 3]

    def eg3d_label(self) -> Tensor:
        """(B, 25) EG3D conditioning label."""
        return to_eg3d_label(self.cam2world, self.intrinsics)

    @staticmethod
    def cat(cams: list["Cameras"]) -> "Cameras":
        return Cameras(torch.cat([c.cam2world for c in cams]), torch.cat([c.intrinsics for c in cams]))

    @staticmethod
    def from_angles(yaw, pitch, fov_deg: float, radius: float = 1.0, target=None, device=None) -> "Cameras":
        """Cameras on a sphere around the origin from pi-GAN angles (radians, frontal = pi/2, pi/2).

        ``yaw``/``pitch`` may be floats, lists or (B,) tensors; ``fov_deg`` is the full field of view.
        """
        yaw = torch.as_tensor(yaw, dtype=torch.float32, device=device).reshape(-1)
        pitch = torch.as_tensor(pitch, dtype=torch.float32, device=device).reshape(-1)
        yaw, pitch = torch.broadcast_tensors(yaw, pitch)
        c2w = cam2world_from_angles(yaw, pitch, radius, target)
        return Cameras(c2w, intrinsics_from_fov(fov_deg, batch=len(yaw), device=device))


def pixel_coordinates(height: int, width: int, grid: PixelGrid = "pixel_centers", device=None,
                      dtype=torch.float32) -> Tensor:
    """(H*W, 2) normalised image coordinates (u, v) in [0, 1], row-major; u grows right, v grows down."""
    if grid == "pixel_centers":
        u = (torch.arange(width, device=device, dtype=dtype) + 0.5) / width
        v = (torch.arange(height, device=device, dtype=dtype) + 0.5) / height
    elif grid == "edge_aligned":
        u = torch.linspace(0, 1, width, device=device, dtype=dtype)
        v = torch.linspace(0, 1, height, device=device, dtype=dtype)
    else:
        raise ValueError(f"unknown pixel grid {grid!r}; valid: pixel_centers, edge_aligned")
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack([uu.reshape(-1), vv.reshape(-1)], dim=-1)


def camera_directions(intrinsics: Tensor, height: int, width: int, grid: PixelGrid = "pixel_centers",
                      pixels: Tensor | None = None) -> Tensor:
    """Unit ray directions in the camera frame (OpenCV: x right, y down, z forward), (B, R, 3).

    For the ``edge_aligned`` grid the arithmetic follows pi-GAN's exactly (NDC coordinates in [-1, 1] and
    a z of ``2 f``), so directions agree with the official code bit for bit; the geometry is the same as
    ``((u - cx) / fx, (v - cy) / fy, 1)`` normalised, which the ``pixel_centers`` grid uses.
    """
    K = intrinsics
    B = K.shape[0]
    fx, fy = K[:, 0, 0, None], K[:, 1, 1, None]
    cx, cy = K[:, 0, 2, None], K[:, 1, 2, None]
    skew = K[:, 0, 1, None]
    if grid == "edge_aligned" and pixels is None:
        x = torch.linspace(-1, 1, width, device=K.device, dtype=K.dtype)
        y = -torch.linspace(1, -1, height, device=K.device, dtype=K.dtype)
        yy, xx = torch.meshgrid(y, x, indexing="ij")
        xx, yy = xx.reshape(1, -1), yy.reshape(1, -1)
        # Scaled by 2 fx: x_cam = (u - cx - skew * y_cam) / fx with u = (x_ndc + 1) / 2.
        y_s = (yy + (1 - 2 * cy)) * (fx / fy)
        x_s = xx + (1 - 2 * cx) - skew * y_s / fx
        dirs = torch.stack([x_s, y_s, (2 * fx).expand_as(x_s)], dim=-1)
    else:
        if pixels is None:
            pixels = pixel_coordinates(height, width, grid, device=K.device, dtype=K.dtype)
        if pixels.ndim == 2:
            pixels = pixels.expand(B, -1, -1)
        u, v = pixels[..., 0], pixels[..., 1]
        y_cam = (v - cy) / fy
        x_cam = (u - cx - skew * y_cam) / fx
        dirs = torch.stack([x_cam, y_cam, torch.ones_like(x_cam)], dim=-1)
    dirs = dirs / torch.norm(dirs, dim=-1, keepdim=True)
    return dirs.expand(B, -1, -1)


def rotate_to_world(cam2world: Tensor, vectors: Tensor) -> Tensor:
    """Camera-frame vectors (B, R, 3) -> world frame, ``R @ v`` (batched matmul, as the seeds compute it)."""
    return torch.bmm(cam2world[:, :3, :3], vectors.permute(0, 2, 1)).permute(0, 2, 1)


def generate_rays(cameras: Cameras, height: int, width: int | None = None, grid: PixelGrid = "pixel_centers",
                  pixels: Tensor | None = None, return_camera_dirs: bool = False):
    """World-space rays through pixels.

    Args:
        cameras: B cameras.
        height, width: image size in pixels (width defaults to height).
        grid: where pixel centres sit (see module docstring).
        pixels: optional (B, R, 2) or (R, 2) normalised (u, v) coordinates to trace instead of the full
            image (patch training, random pixel subsets).
        return_camera_dirs: also return the (B, R, 3) camera-frame directions.
    Returns:
        rays_o: (B, R, 3) origins (the camera centre), rays_d: (B, R, 3) unit directions; R = H*W
        (row-major) unless ``pixels`` is given. With ``return_camera_dirs``, a third item ``dirs_cam``.
    """
    width = height if width is None else width
    dirs_cam = camera_directions(cameras.intrinsics, height, width, grid, pixels).contiguous()
    rays_d = rotate_to_world(cameras.cam2world, dirs_cam)
    rays_o = cameras.cam2world[:, None, :3, 3].expand_as(rays_d)
    return (rays_o, rays_d, dirs_cam) if return_camera_dirs else (rays_o, rays_d)
