"""Named camera paths for the render / video / interpolate tools.

Every path returns pi-GAN angles (yaw, pitch) as (N,) tensors in radians plus a per-frame fov scale
(1 = the model's fov; zoom paths change it). Paths are centred on the model's mean pose and scaled by
its spread, so one path name suits faces (narrow poses) and cars (360 degrees) alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .poses import PoseDistribution


@dataclass(frozen=True)
class CameraPath:
    """Frames of a camera path, in pi-GAN angles."""

    yaw: Tensor
    """(N,) azimuth in radians."""
    pitch: Tensor
    """(N,) polar angle from +y in radians."""
    fov_scale: Tensor
    """(N,) multiplier of the model's field of view (zoom)."""

    def __len__(self) -> int:
        return self.yaw.shape[0]


def _const(n: int, value: float) -> Tensor:
    return torch.full((n,), float(value))


def _spread(pose: PoseDistribution) -> tuple[float, float]:
    """Yaw and pitch amplitudes for a path: the pose spread, with a floor so a fixed-pose model still moves."""
    return max(pose.yaw_std, 0.3), max(pose.pitch_std, 0.15)


def yaw_sweep(pose: PoseDistribution, frames: int) -> CameraPath:
    """Yaw goes from mean - amp to mean + amp at the mean pitch (back and forth for loops: use orbit)."""
    ya, _ = _spread(pose)
    yaw = pose.yaw_mean + torch.linspace(-ya, ya, frames)
    return CameraPath(yaw, _const(frames, pose.pitch_mean), _const(frames, 1.0))


def orbit(pose: PoseDistribution, frames: int) -> CameraPath:
    """A full 360-degree turn around the object at the mean pitch (loops seamlessly)."""
    t = torch.arange(frames, dtype=torch.float32) / frames
    return CameraPath(pose.yaw_mean + 2 * math.pi * t, _const(frames, pose.pitch_mean), _const(frames, 1.0))


def front_circle(pose: PoseDistribution, frames: int) -> CameraPath:
    """The camera traces an ellipse around the frontal view (pi-GAN's render_video trajectory); loops."""
    ya, pa = _spread(pose)
    t = torch.arange(frames, dtype=torch.float32) / frames * 2 * math.pi
    return CameraPath(pose.yaw_mean + ya * torch.sin(t), pose.pitch_mean + pa * torch.cos(t), _const(frames, 1.0))


def zoom(pose: PoseDistribution, frames: int) -> CameraPath:
    """Frontal camera whose fov goes 1 -> 0.5 -> 1 (zoom in, then out); loops."""
    t = torch.arange(frames, dtype=torch.float32) / frames * 2 * math.pi
    scale = 0.75 + 0.25 * torch.cos(t)
    return CameraPath(_const(frames, pose.yaw_mean), _const(frames, pose.pitch_mean), scale)


def fixed_points(pose: PoseDistribution, frames: int) -> CameraPath:
    """A handful of canonical views: left, front-left, front, front-right, right (pitch at the mean)."""
    ya, _ = _spread(pose)
    offsets = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]) * ya
    yaw = pose.yaw_mean + offsets
    return CameraPath(yaw, _const(len(yaw), pose.pitch_mean), _const(len(yaw), 1.0))


CAMERA_PATHS: dict[str, Callable[[PoseDistribution, int], CameraPath]] = {
    "yaw_sweep": yaw_sweep,
    "orbit": orbit,
    "front_circle": front_circle,
    "zoom": zoom,
    "fixed_points": fixed_points,
}


def get_camera_path(name: str, pose: PoseDistribution, frames: int) -> CameraPath:
    """Look up a path by name; the error lists the valid names."""
    try:
        fn = CAMERA_PATHS[name]
    except KeyError:
        raise ValueError(f"unknown camera path {name!r}; valid: {', '.join(sorted(CAMERA_PATHS))}") from None
    if frames < 1:
        raise ValueError(f"a camera path needs at least 1 frame, got {frames}")
    return fn(pose, frames)
