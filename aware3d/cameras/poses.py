"""Camera poses: look-at matrices, pose distributions and the three angle conventions of the seeds.

World frame (shared by every family): right-handed, **+y is up**, the object sits at the origin.
A cam2world matrix is (B, 4, 4) in the **OpenCV convention**: columns 0..2 of the rotation are the
camera's x (image right), y (image down) and z (viewing direction) axes in world coordinates, column
3 is the camera position. EG3D's 25-float labels use exactly this, so they are stored unchanged.

Angles are radians everywhere. Three conventions exist in the seeds:

* **pi-GAN / ShadeGAN / CGOF** ``(yaw, pitch)``: yaw ``theta`` is the azimuth, pitch ``phi`` the polar angle
  from +y; the camera sits at ``r * (sin phi cos theta, cos phi, sin phi sin theta)``; frontal is
  ``(pi/2, pi/2)`` (camera on +z). Yaw above pi/2 moves the camera toward -x, pitch below pi/2 moves it up.
* **EpiGRAF** ``camera_angles = [yaw, pitch, roll]`` (official ``universome/epigraf``): yaw is zero-centred
  (frontal 0), pitch is the polar angle from +y (pi/2 on the horizon, as pi-GAN's), roll is ignored. Its world
  is ours turned a quarter turn about y (its frontal camera is on +x, ours on +z), so ``yaw = theta - pi/2``
  and ``pitch = phi``: frontal is ``[0, pi/2, 0]`` (the EpiGRAF family folder also converts the official
  matrices exactly).
* **EG3D** label (25 floats): flattened 4x4 cam2world (OpenCV) + flattened 3x3 normalised intrinsics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ..checks import FINITE, NON_NEGATIVE, POSITIVE, Range, check_config

PoseDistName = Literal["gaussian", "uniform", "truncated_gaussian", "spherical_uniform", "fixed"]

_PITCH_EPS = 1e-5
PITCH_RANGE = Range(0, math.pi)
"""Polar angles from +y: 0 looks from straight above, pi from straight below."""


def _normalize(v: Tensor, eps: float = 0.0) -> Tensor:
    return v / (torch.linalg.norm(v, dim=-1, keepdim=True) + eps)


def camera_origin_from_angles(yaw: Tensor, pitch: Tensor, radius: float | Tensor = 1.0) -> Tensor:
    """Camera position on a sphere around the world origin, pi-GAN convention.

    Args:
        yaw: (B,) azimuth theta in radians; pi/2 is frontal (camera on +z).
        pitch: (B,) polar angle phi from +y in radians; pi/2 is the equator. Clamped to [1e-5, pi-1e-5].
        radius: distance from the world origin (world units).
    Returns:
        (B, 3) positions ``r * (sin phi cos theta, cos phi, sin phi sin theta)``.
    """
    pitch = pitch.clamp(_PITCH_EPS, math.pi - _PITCH_EPS)
    return torch.stack(
        [
            radius * torch.sin(pitch) * torch.cos(yaw),
            radius * torch.cos(pitch) * torch.ones_like(yaw),
            radius * torch.sin(pitch) * torch.sin(yaw),
        ],
        dim=-1,
    )


def look_at(origin: Tensor, target: Tensor | None = None, up: tuple[float, float, float] = (0.0, 1.0, 0.0)) -> Tensor:
    """cam2world (B, 4, 4), OpenCV convention, for cameras at ``origin`` (B, 3) looking at ``target``.

    ``target`` defaults to the world origin; ``up`` is the world up direction (+y). The image is upright:
    the camera's y axis (image down) is the world -up projected onto the image plane.
    """
    if target is None:
        target = torch.zeros_like(origin)
    forward = _normalize(target - origin)
    up_t = torch.tensor(up, dtype=origin.dtype, device=origin.device).expand_as(forward)
    # right = forward x up gives image-right for a y-up world (same as -(up x forward)).
    right = _normalize(torch.cross(forward, up_t, dim=-1))
    down = _normalize(torch.cross(forward, right, dim=-1))
    cam2world = torch.eye(4, dtype=origin.dtype, device=origin.device).repeat(origin.shape[0], 1, 1)
    cam2world[:, :3, 0] = right
    cam2world[:, :3, 1] = down
    cam2world[:, :3, 2] = forward
    cam2world[:, :3, 3] = origin
    return cam2world


def opengl_to_opencv(cam2world: Tensor) -> Tensor:
    """Flip the camera's y and z axes: OpenGL (x right, y up, looks down -z) <-> OpenCV. Self-inverse."""
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=cam2world.dtype, device=cam2world.device))
    return cam2world @ flip


# --------------------------------------------------------------------------------------- intrinsics

def fov_to_focal(fov_deg: float | Tensor) -> float | Tensor:
    """Normalised focal length (in units of image width) for a full field of view in degrees.

    The fov is the angle between the left and right image *borders*: ``f = 1 / (2 tan(fov/2))``.
    """
    if isinstance(fov_deg, Tensor):
        return 1.0 / (2.0 * torch.tan(torch.deg2rad(fov_deg) / 2))
    return 1.0 / (2.0 * math.tan(math.radians(fov_deg) / 2))


def focal_to_fov(focal: float | Tensor) -> float | Tensor:
    """Inverse of :func:`fov_to_focal`: full field of view in degrees."""
    if isinstance(focal, Tensor):
        return torch.rad2deg(2 * torch.atan(1.0 / (2.0 * focal)))
    return math.degrees(2 * math.atan(1.0 / (2.0 * focal)))


def intrinsics_from_fov(fov_deg: float | Tensor, batch: int = 1, dtype=torch.float32, device=None) -> Tensor:
    """(B, 3, 3) normalised intrinsics ``[[f, 0, 0.5], [0, f, 0.5], [0, 0, 1]]`` for a square image.

    Normalised means pixel coordinates are divided by the image size, so the same matrix serves every
    resolution; the principal point is the image centre.
    """
    f = torch.as_tensor(fov_to_focal(fov_deg), dtype=dtype, device=device).reshape(-1)
    if f.numel() == 1:
        f = f.expand(batch)
    K = torch.zeros(f.shape[0], 3, 3, dtype=dtype, device=device)
    K[:, 0, 0] = f
    K[:, 1, 1] = f
    K[:, 0, 2] = 0.5
    K[:, 1, 2] = 0.5
    K[:, 2, 2] = 1.0
    return K


# ------------------------------------------------------------------------------------ distributions

@dataclass(frozen=True)
class PoseDistribution:
    """Where cameras are placed, in pi-GAN angles (see module docstring)."""

    dist: PoseDistName = "gaussian"
    """Distribution of yaw and pitch: gaussian, uniform (mean +- std), truncated_gaussian (|x| < 2 std),
    spherical_uniform (uniform over the sphere band, pi-GAN CARLA), fixed (always the mean)."""
    yaw_mean: float = math.pi / 2
    """Mean azimuth theta in radians; pi/2 is frontal."""
    pitch_mean: float = math.pi / 2
    """Mean polar angle phi from +y in radians; pi/2 is the equator. For spherical_uniform it is the official
    ``v_mean``: pi times the mean of v, with phi = arccos(1 - 2 v) (see :meth:`frontal`)."""
    yaw_std: float = 0.0
    """Spread of the yaw in radians (std for gaussians, half-width for uniform)."""
    pitch_std: float = 0.0
    """Spread of the pitch in radians (std for gaussians, half-width for uniform)."""
    radius: float = 1.0
    """Distance of the camera from the world origin, world units."""
    frontal_pitch: float | None = None
    """Polar angle (radians) of the official scripts' central camera where it is not the distribution's centre
    (EG3D ShapeNet: gen_samples looks from near the equator, the cars are seen from above); None: the centre."""

    def __post_init__(self) -> None:
        check_config(self, {"yaw_mean": FINITE, "pitch_mean": FINITE, "yaw_std": NON_NEGATIVE,
                            "pitch_std": NON_NEGATIVE, "radius": POSITIVE, "frontal_pitch": PITCH_RANGE})

    def frontal(self) -> tuple[float, float]:
        """(yaw, pitch) of the official scripts' central camera, pi-GAN angles in radians: what the tools render
        at zero offsets and centre their camera paths on.

        The official scripts render the distribution with zero spread: the means, except that spherical_uniform
        maps its pitch mean as it maps every draw, to ``arccos(1 - 2 pitch_mean / pi)`` (pi-GAN CARLA: 1.015 rad,
        not 0.742); ``frontal_pitch``, when set, replaces the pitch.
        """
        if self.frontal_pitch is not None:
            return self.yaw_mean, self.frontal_pitch
        if self.dist == "spherical_uniform":
            v = min(max(self.pitch_mean / math.pi, _PITCH_EPS), 1 - _PITCH_EPS)
            return self.yaw_mean, math.acos(1 - 2 * v)
        return self.yaw_mean, self.pitch_mean

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> tuple[Tensor, Tensor]:
        """Draw ``n`` poses. Returns (yaw, pitch), each (n,), radians, pitch clamped to (0, pi)."""
        return sample_angles(self, n, generator=generator, device=device)


def _truncated_normal(n: int, generator, device) -> Tensor:
    """Standard normal truncated to (-2, 2): redraw out-of-range values (resampling keeps it exact)."""
    out = torch.randn(n, generator=generator, device=device)
    bad = out.abs() >= 2
    while bool(bad.any()):
        out[bad] = torch.randn(int(bad.sum()), generator=generator, device=device)
        bad = out.abs() >= 2
    return out


def sample_angles(d: PoseDistribution, n: int, generator: torch.Generator | None = None, device=None) -> tuple[Tensor, Tensor]:
    """Sample ``n`` (yaw, pitch) pairs from ``d``; see :class:`PoseDistribution`."""
    def rand():
        return torch.rand(n, generator=generator, device=device)

    def randn():
        return torch.randn(n, generator=generator, device=device)

    if d.dist == "gaussian":
        yaw = randn() * d.yaw_std + d.yaw_mean
        pitch = randn() * d.pitch_std + d.pitch_mean
    elif d.dist == "uniform":
        yaw = (rand() - 0.5) * 2 * d.yaw_std + d.yaw_mean
        pitch = (rand() - 0.5) * 2 * d.pitch_std + d.pitch_mean
    elif d.dist == "truncated_gaussian":
        yaw = _truncated_normal(n, generator, device) * d.yaw_std + d.yaw_mean
        pitch = _truncated_normal(n, generator, device) * d.pitch_std + d.pitch_mean
    elif d.dist == "spherical_uniform":
        # Uniform in cos(phi): v in [0,1] maps to phi = arccos(1 - 2v), so area on the sphere is uniform.
        yaw = (rand() - 0.5) * 2 * d.yaw_std + d.yaw_mean
        v = (rand() - 0.5) * 2 * (d.pitch_std / math.pi) + d.pitch_mean / math.pi
        pitch = torch.arccos(1 - 2 * v.clamp(1e-5, 1 - 1e-5))
    elif d.dist == "fixed":
        yaw = torch.full((n,), d.yaw_mean, device=device)
        pitch = torch.full((n,), d.pitch_mean, device=device)
    else:
        raise ValueError(
            f"unknown pose distribution {d.dist!r}; valid: gaussian, uniform, truncated_gaussian, "
            "spherical_uniform, fixed"
        )
    return yaw, pitch.clamp(_PITCH_EPS, math.pi - _PITCH_EPS)


# ------------------------------------------------------------------------------------ conventions

def pigan_to_epigraf(yaw: Tensor, pitch: Tensor) -> Tensor:
    """pi-GAN (yaw, pitch) (B,) -> official EpiGRAF camera_angles (B, 3) = [yaw - pi/2, pitch, 0] (radians).

    The same camera: EpiGRAF's world is ours turned a quarter turn about y, which only shifts the azimuth.
    """
    return torch.stack([yaw - math.pi / 2, pitch, torch.zeros_like(yaw)], dim=-1)


def epigraf_to_pigan(camera_angles: Tensor) -> tuple[Tensor, Tensor]:
    """Official EpiGRAF camera_angles (..., 3) [yaw, pitch, roll] -> pi-GAN (yaw + pi/2, pitch). Roll is ignored
    (as EpiGRAF's renderer ignores it)."""
    return camera_angles[..., 0] + math.pi / 2, camera_angles[..., 1]


def legacy_zero_centered_to_pigan(camera_angles: Tensor) -> tuple[Tensor, Tensor]:
    """aware3d's pre-fix ``"zero_centered"`` camera_angles (..., 3) [yaw - pi/2, pitch - pi/2, 0] -> pi-GAN
    (yaw, pitch). Only for reading ``dataset.json`` files tagged ``"camera": {"angles": "zero_centered"}``
    written by older ``aware3d dataset`` runs; it is not EpiGRAF's convention (:func:`epigraf_to_pigan` is)."""
    return camera_angles[..., 0] + math.pi / 2, camera_angles[..., 1] + math.pi / 2


def angles_from_cam2world(cam2world: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """pi-GAN (yaw, pitch) and radius of the camera positions of (B, 4, 4) cam2world matrices.

    Exact for cameras on a sphere around the origin (look-at the origin); for others it describes the
    camera position only.
    """
    pos = cam2world[:, :3, 3]
    radius = torch.linalg.norm(pos, dim=-1)
    pitch = torch.arccos((pos[:, 1] / radius).clamp(-1, 1))
    yaw = torch.atan2(pos[:, 2], pos[:, 0])
    return yaw, pitch, radius


def cam2world_from_angles(yaw: Tensor, pitch: Tensor, radius: float | Tensor = 1.0,
                          target: Tensor | None = None) -> Tensor:
    """(B, 4, 4) OpenCV cam2world for pi-GAN angles, looking at ``target`` (default: world origin)."""
    return look_at(camera_origin_from_angles(yaw, pitch, radius), target)


def to_eg3d_label(cam2world: Tensor, intrinsics: Tensor) -> Tensor:
    """EG3D camera label (B, 25): flattened (row-major) 4x4 cam2world + flattened 3x3 normalised intrinsics."""
    return torch.cat([cam2world.reshape(-1, 16), intrinsics.reshape(-1, 9)], dim=-1)


def from_eg3d_label(label: Tensor) -> tuple[Tensor, Tensor]:
    """Inverse of :func:`to_eg3d_label`: (cam2world (B,4,4), intrinsics (B,3,3))."""
    if label.shape[-1] != 25:
        raise ValueError(f"an EG3D camera label has 25 numbers (16 cam2world + 9 intrinsics), got {label.shape[-1]}")
    return label[..., :16].reshape(-1, 4, 4), label[..., 16:25].reshape(-1, 3, 3)
