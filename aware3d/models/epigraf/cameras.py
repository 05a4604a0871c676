"""EpiGRAF's camera conventions, its rays (with patches) and its world frame, converted to ours exactly.

EpiGRAF world: +y up, the object at the origin, the *frontal* camera on +x looking along -x (image right =
world -z). ``camera_angles = [yaw, pitch, roll]`` per sample: the camera sits at
``r * (sin(pitch) cos(yaw), cos(pitch), sin(pitch) sin(yaw))`` (yaw zero-centred: 0 is frontal; pitch is the
polar angle from +y, pi/2 on the horizon); roll is ignored. Its cam2world matrices are OpenGL (camera x =
image right, y = image up, looking along -z) and look at the origin.

Our world (:mod:`aware3d.cameras.poses`) has the frontal camera on +z, so the two differ by a quarter turn
about y: EpiGRAF ``(x, y, z)`` is ours ``(-z, y, x)``. That map and the OpenGL <-> OpenCV flip only move and
negate numbers, so converting a camera either way is exact (bit for bit), and an EpiGRAF model renders in its
own frame from our cameras with the official arithmetic.

Rays (``get_initial_rays_trig``): NDC ``x = linspace(-1, 1, W)`` over columns and ``y = linspace(1, -1, H)``
over rows (the edge pixel centres lie on the frustum edge: our ``edge_aligned`` grid), camera direction
``normalize(x, y, -1 / tan(fov / 2))``; a patch (scale s, offset o, both (x, y), offset y counted from the
bottom) maps ``x -> (x + 1) s_x - 1 + 2 o_x`` before that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ...cameras import Cameras, focal_to_fov, intrinsics_from_fov, pigan_to_epigraf

PITCH_EPS = 1e-5
"""EpiGRAF clamps the pitch to [eps, pi - eps] before building cameras."""


@dataclass
class PatchParams:
    """Which window of the image a render covers (EpiGRAF's ``patch_params``)."""

    scales: Tensor
    """(B, 2) window size as a fraction of the image side, (x, y); 1 = the whole image."""
    offsets: Tensor
    """(B, 2) window corner as a fraction of the image side: x from the left edge, y from the bottom edge."""

    def __post_init__(self) -> None:
        if self.scales.ndim != 2 or self.scales.shape[1] != 2 or self.offsets.shape != self.scales.shape:
            raise ValueError(f"patch scales and offsets must both be (B, 2), got {tuple(self.scales.shape)} and "
                             f"{tuple(self.offsets.shape)}")

    @staticmethod
    def full(batch: int, device=None) -> "PatchParams":
        """The whole image (scale 1, offset 0)."""
        return PatchParams(torch.ones(batch, 2, device=device), torch.zeros(batch, 2, device=device))


# ------------------------------------------------------------------------------------------- cameras
def camera_origins(camera_angles: Tensor, radius: float) -> Tensor:
    """(B, 3) camera positions in EpiGRAF's world for ``camera_angles`` (B, 3) (official arithmetic)."""
    yaw, pitch = camera_angles[:, [0]], camera_angles[:, [1]]
    origins = torch.zeros((yaw.shape[0], 3), device=yaw.device)
    origins[:, [0]] = radius * torch.sin(pitch) * torch.cos(yaw)
    origins[:, [2]] = radius * torch.sin(pitch) * torch.sin(yaw)
    origins[:, [1]] = radius * torch.cos(pitch)
    return origins


def _normalize(x: Tensor) -> Tensor:
    return x / torch.norm(x, dim=-1, keepdim=True)


def clamp_pitch(camera_angles: Tensor) -> Tensor:
    """A copy of ``camera_angles`` (B, 3) with the pitch clamped to [1e-5, pi - 1e-5], as EpiGRAF's synthesis does
    before building cameras (the official code clamps the caller's tensor in place)."""
    angles = camera_angles.clone()
    angles[:, [1]] = torch.clamp(angles[:, [1]], PITCH_EPS, np.pi - PITCH_EPS)
    return angles


def epigraf_cam2world(camera_angles: Tensor, radius: float) -> Tensor:
    """(B, 4, 4) EpiGRAF (OpenGL) cam2world looking at the origin, as ``compute_cam2world_matrix`` computes it
    (no pitch clamp here: pitch 0 or pi gives NaN; see :func:`clamp_pitch`)."""
    origins = camera_origins(camera_angles, radius)
    forward = _normalize(_normalize(-origins))
    up = torch.tensor([0, 1, 0], dtype=torch.float, device=forward.device).expand_as(forward)
    left = _normalize(torch.cross(up, forward, dim=-1))
    up = _normalize(torch.cross(forward, left, dim=-1))
    B = forward.shape[0]
    rotation = torch.eye(4, device=forward.device).unsqueeze(0).repeat(B, 1, 1)
    rotation[:, :3, :3] = torch.stack((-left, up, -forward), dim=-1)
    translation = torch.eye(4, device=forward.device).unsqueeze(0).repeat(B, 1, 1)
    translation[:, :3, 3] = origins
    return translation @ rotation


def epigraf_points_to_ours(p: Tensor) -> Tensor:
    """(..., 3) EpiGRAF world coordinates -> ours: (x, y, z) -> (-z, y, x) (exact)."""
    return torch.stack([-p[..., 2], p[..., 1], p[..., 0]], dim=-1)


def our_points_to_epigraf(p: Tensor) -> Tensor:
    """(..., 3) our world coordinates -> EpiGRAF's: (x, y, z) -> (z, y, -x) (exact)."""
    return torch.stack([p[..., 2], p[..., 1], -p[..., 0]], dim=-1)


def _flip_camera_axes(c2w: Tensor) -> Tensor:
    """OpenGL <-> OpenCV: negate the camera's y and z columns (exact; self-inverse)."""
    out = c2w.clone()
    out[:, :, 1:3] = -c2w[:, :, 1:3]
    return out


def epigraf_c2w_to_ours(c2w: Tensor) -> Tensor:
    """(B, 4, 4) EpiGRAF (OpenGL, its world) cam2world -> ours (OpenCV, our world), exactly."""
    rows = c2w.clone()
    rows[:, :3] = epigraf_points_to_ours(c2w[:, :3].transpose(1, 2)).transpose(1, 2)
    return _flip_camera_axes(rows)


def our_c2w_to_epigraf(c2w: Tensor) -> Tensor:
    """(B, 4, 4) our (OpenCV) cam2world -> EpiGRAF's (OpenGL, its world); inverse of :func:`epigraf_c2w_to_ours`."""
    rows = _flip_camera_axes(c2w)
    out = rows.clone()
    out[:, :3] = our_points_to_epigraf(rows[:, :3].transpose(1, 2)).transpose(1, 2)
    return out


def cameras_from_epigraf_angles(camera_angles: Tensor, radius: float, fov_deg: float) -> Cameras:
    """Our :class:`Cameras` for EpiGRAF ``camera_angles`` (B, 3): the official cam2world moved to our frame
    (exactly) and the intrinsics of ``fov_deg`` (edge pixel centre to edge pixel centre, ``edge_aligned``)."""
    c2w = epigraf_c2w_to_ours(epigraf_cam2world(clamp_pitch(camera_angles.to(torch.float32)), radius))
    return Cameras(c2w, intrinsics_from_fov(fov_deg, batch=len(c2w), device=c2w.device))


def epigraf_angles_from_cameras(cameras: Cameras) -> Tensor:
    """(B, 3) EpiGRAF [yaw, pitch, 0] of the camera positions (exact for cameras looking at the origin)."""
    o = our_points_to_epigraf(cameras.origins)
    radius = torch.linalg.norm(o, dim=-1)
    pitch = torch.arccos((o[:, 1] / radius).clamp(-1, 1))
    yaw = torch.atan2(o[:, 2], o[:, 0])
    return torch.stack([yaw, pitch, torch.zeros_like(yaw)], dim=-1)


def epigraf_angles_from_pigan(yaw: Tensor, pitch: Tensor) -> Tensor:
    """pi-GAN angles (frontal (pi/2, pi/2), our world) -> EpiGRAF camera_angles [yaw - pi/2, pitch, 0] (the shared
    :func:`aware3d.cameras.pigan_to_epigraf`)."""
    return pigan_to_epigraf(yaw, pitch)


def fov_of_cameras(cameras: Cameras, default_fov_deg: float, atol: float = 1e-4) -> float | Tensor:
    """The full fov (degrees, edge-aligned) of each camera: ``default_fov_deg`` exactly when every camera has it
    (within ``atol`` degrees), else a (B,) tensor. EpiGRAF renders centred square pinhole cameras only."""
    K = cameras.intrinsics
    fx, fy = K[:, 0, 0], K[:, 1, 1]
    if not (torch.allclose(fx, fy) and torch.allclose(K[:, :2, 2], torch.full_like(K[:, :2, 2], 0.5))
            and bool((K[:, 0, 1] == 0).all())):
        raise ValueError("EpiGRAF renders square pinhole cameras with the principal point at the image centre "
                         "(fx = fy, cx = cy = 0.5, no skew); got other intrinsics")
    fov = focal_to_fov(fx.double())
    if bool(((fov - default_fov_deg).abs() <= atol).all()):
        return float(default_fov_deg)
    return fov.to(torch.float32)


# ---------------------------------------------------------------------------------------------- rays
def ndc_coordinates(batch: int, resolution: int, patch: PatchParams | None = None,
                    device=None) -> tuple[Tensor, Tensor]:
    """NDC (x, y) of the R x R rays, row-major, each (B, R*R) (or (1, R*R) without a patch): x from -1 (left) to
    +1 (right), y from +1 (top) to -1 (bottom), moved into the ``patch`` window."""
    x, y = torch.meshgrid(torch.linspace(-1, 1, resolution, device=device),
                          torch.linspace(1, -1, resolution, device=device), indexing="ij")
    x, y = x.T.flatten().unsqueeze(0), y.T.flatten().unsqueeze(0)
    if patch is None:
        return x, y
    x, y = x.repeat(batch, 1), y.repeat(batch, 1)
    s, o = patch.scales.to(device), patch.offsets.to(device)
    x = (x + 1.0) * s[:, 0].view(batch, 1) - 1.0 + o[:, 0].view(batch, 1) * 2.0
    y = (y + 1.0) * s[:, 1].view(batch, 1) - 1.0 + o[:, 1].view(batch, 1) * 2.0
    return x, y


def camera_directions(batch: int, resolution: int, fov_deg: float | Tensor, patch: PatchParams | None = None,
                      device=None) -> Tensor:
    """(B, R*R, 3) unit ray directions in EpiGRAF's (OpenGL) camera frame, ``get_initial_rays_trig``'s arithmetic.

    ``fov_deg``: one full fov in degrees or one per sample (B,); ``patch``: the window the R x R rays cover.
    """
    per_sample = patch is not None or isinstance(fov_deg, Tensor)
    n = batch if per_sample else 1
    x, y = ndc_coordinates(batch, resolution, patch, device)
    if x.shape[0] != n:
        x, y = x.repeat(n, 1), y.repeat(n, 1)
    fov = fov_deg.to(device) if isinstance(fov_deg, Tensor) else torch.tensor([fov_deg], device=device)
    fov_rad = fov.unsqueeze(1).expand(n, 1) / 360 * 2 * np.pi
    z = -torch.ones((n, resolution * resolution), device=device) / torch.tan(fov_rad * 0.5)
    dirs = _normalize(torch.stack([x, y, z], dim=2))
    return dirs if per_sample else dirs.repeat(batch, 1, 1)


def voxel_coords(n: int, origin: tuple[float, float, float] = (0.0, 0.0, 0.0), cube_size: float = 0.3) -> Tensor:
    """(n^3, 3) the points of ``scripts/extract_geometry.py``'s ``create_voxel_coords`` in EpiGRAF's world.

    Its y and x indices come from float divisions of the flat index ``a n^2 + b n + c``, so the grid is sheared
    (coordinate 0 ~ a + b/n + c/n^2 steps, coordinate 1 ~ b + c/n, coordinate 2 = c), as in EG3D's gen_samples.
    """
    h = cube_size / (n - 1)
    idx = torch.arange(n ** 3, dtype=torch.int64)
    fidx = idx.float()
    cols = [((fidx / n) / n) % n, (fidx / n) % n, (idx % n).float()]
    start = [o - cube_size / 2 for o in origin]
    return torch.stack([c * h + s for c, s in zip(cols, start)], dim=-1)


__all__ = [
    "PITCH_EPS", "PatchParams", "camera_directions", "clamp_pitch", "camera_origins", "cameras_from_epigraf_angles",
    "epigraf_angles_from_cameras", "epigraf_angles_from_pigan", "epigraf_c2w_to_ours", "epigraf_cam2world",
    "epigraf_points_to_ours", "fov_of_cameras", "ndc_coordinates", "our_c2w_to_epigraf", "our_points_to_epigraf", "voxel_coords",
]
