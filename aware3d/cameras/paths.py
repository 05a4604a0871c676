"""Named camera paths for the render / video / interpolate / visualize tools.

Every path returns pi-GAN angles (yaw, pitch) as (N,) tensors in radians plus a per-frame fov scale
(1 = the model's fov; zoom paths change it). Every path is centred on the model's frontal pose
(:meth:`~aware3d.cameras.PoseDistribution.frontal`: the official scripts' central camera). The first
five (``yaw_sweep``, ``orbit``, ``front_circle``, ``zoom``, ``fixed_points``) scale their amplitudes by the
pose spread, so one path name suits faces (narrow poses) and cars (360 degrees) alike; the last four keep
the fixed amplitudes of the EpiGRAF inference configs (``configs/scripts/camera/*.yaml``), which they
reproduce exactly for a model whose frontal pose is (yaw pi/2, pitch pi/2) (every preset but pi-GAN CARLA):

* ``points``: the official ``points`` (yaws 0, -0.3, +0.3 on the horizon), three views;
* ``line``: the official ``line`` (yaw -1.57 -> 1.57 at pitch 0.835, 16 frames by default);
* ``wiggle``: the official ``wiggle`` (yaw -1.57 -> 1.57 while the pitch swings by 0.5 and back; the official
  repository ships no config for it, so the amplitudes are ``line``'s yaw range and a 0.5 pitch swing);
* ``front_circle_zoom``: the official ``front_circle`` (64 frames, yaw +-0.3, pitch +-0.2, fov +-1 degree,
  first frame = last frame as the official ``linspace(0, 1)``); it zooms by degrees, so it needs the model's
  fov (``fov_deg``).

An official offset ``d`` from frontal becomes ``frontal + d`` here: EpiGRAF's zero-centred yaw is our yaw minus
pi/2 (both turn the same way) and both pitches are the polar angle from +y.
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
    """Yaw goes from frontal - amp to frontal + amp at the frontal pitch (back and forth for loops: use orbit)."""
    yaw0, pitch0 = pose.frontal()
    ya, _ = _spread(pose)
    yaw = yaw0 + torch.linspace(-ya, ya, frames)
    return CameraPath(yaw, _const(frames, pitch0), _const(frames, 1.0))


def orbit(pose: PoseDistribution, frames: int) -> CameraPath:
    """A full 360-degree turn around the object at the frontal pitch (loops seamlessly)."""
    yaw0, pitch0 = pose.frontal()
    t = torch.arange(frames, dtype=torch.float32) / frames
    return CameraPath(yaw0 + 2 * math.pi * t, _const(frames, pitch0), _const(frames, 1.0))


def front_circle(pose: PoseDistribution, frames: int) -> CameraPath:
    """The camera traces an ellipse around the frontal view (pi-GAN's render_video trajectory); loops."""
    yaw0, pitch0 = pose.frontal()
    ya, pa = _spread(pose)
    t = torch.arange(frames, dtype=torch.float32) / frames * 2 * math.pi
    return CameraPath(yaw0 + ya * torch.sin(t), pitch0 + pa * torch.cos(t), _const(frames, 1.0))


def zoom(pose: PoseDistribution, frames: int) -> CameraPath:
    """Frontal camera whose fov goes 1 -> 0.5 -> 1 (zoom in, then out); loops."""
    yaw0, pitch0 = pose.frontal()
    t = torch.arange(frames, dtype=torch.float32) / frames * 2 * math.pi
    scale = 0.75 + 0.25 * torch.cos(t)
    return CameraPath(_const(frames, yaw0), _const(frames, pitch0), scale)


def fixed_points(pose: PoseDistribution, frames: int) -> CameraPath:
    """A handful of canonical views: left, front-left, front, front-right, right (at the frontal pitch)."""
    yaw0, pitch0 = pose.frontal()
    ya, _ = _spread(pose)
    offsets = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]) * ya
    yaw = yaw0 + offsets
    return CameraPath(yaw, _const(len(yaw), pitch0), _const(len(yaw), 1.0))


# The fixed amplitudes of the official inference camera configs (radians; the zoom in degrees).
POINTS_YAW_OFFSETS = (0.0, -0.3, 0.3)
"""``points``: yaw offsets of the three views, main view first (configs/scripts/camera/points.yaml)."""
LINE_YAW_HALF_RANGE = 1.57
"""``line`` and ``wiggle``: the yaw goes from mean - this to mean + this (line.yaml's yaw_left/right)."""
LINE_PITCH_OFFSET = 0.835 - math.pi / 2
"""``line``: pitch offset from the mean (line.yaml's pitch 0.835 against the horizon pi/2: seen from above)."""
WIGGLE_PITCH_AMPLITUDE = 0.5
"""``wiggle``: pitch = mean + this * cos(2 pi s) (the official code has the path but ships no config for it)."""
CIRCLE_YAW_AMPLITUDE, CIRCLE_PITCH_AMPLITUDE, CIRCLE_FOV_AMPLITUDE_DEG = 0.3, 0.2, 1.0
"""``front_circle_zoom``: front_circle.yaml's yaw_diff, pitch_diff and fov_diff (degrees)."""


def _closed_steps(frames: int) -> Tensor:
    """(N,) s = linspace(0, 1, N) as the official paths step (both ends included; a single frame is s = 0)."""
    return torch.linspace(0.0, 1.0, frames) if frames > 1 else torch.zeros(1)


def points(pose: PoseDistribution, frames: int) -> CameraPath:
    """Three views at the frontal pitch: the frontal yaw, then -0.3 and +0.3 from it (``frames`` is ignored)."""
    yaw0, pitch0 = pose.frontal()
    yaw = yaw0 + torch.tensor(POINTS_YAW_OFFSETS)
    return CameraPath(yaw, _const(len(yaw), pitch0), _const(len(yaw), 1.0))


def line(pose: PoseDistribution, frames: int) -> CameraPath:
    """Yaw from frontal - 1.57 to frontal + 1.57 (both ends included) at the frontal pitch - 0.736 (from above)."""
    yaw0, pitch0 = pose.frontal()
    yaw = yaw0 + LINE_YAW_HALF_RANGE * (2 * _closed_steps(frames) - 1)
    return CameraPath(yaw, _const(frames, pitch0 + LINE_PITCH_OFFSET), _const(frames, 1.0))


def wiggle(pose: PoseDistribution, frames: int) -> CameraPath:
    """``line``'s yaw sweep while the pitch goes frontal + 0.5 -> frontal - 0.5 -> frontal + 0.5 (a cosine)."""
    yaw0, pitch0 = pose.frontal()
    s = _closed_steps(frames)
    yaw = yaw0 + LINE_YAW_HALF_RANGE * (2 * s - 1)
    pitch = pitch0 + WIGGLE_PITCH_AMPLITUDE * torch.cos(2 * math.pi * s)
    return CameraPath(yaw, pitch, _const(frames, 1.0))


def front_circle_zoom(pose: PoseDistribution, frames: int, fov_deg: float) -> CameraPath:
    """An ellipse around the frontal view, yaw +-0.3 (sine) and pitch +-0.2 (cosine), while the fov swings by
    +-1 degree around ``fov_deg`` (the model's full fov, degrees) with the yaw; s = linspace(0, 1), so the first
    and last frames coincide."""
    yaw0, pitch0 = pose.frontal()
    angle = 2 * math.pi * _closed_steps(frames)
    yaw = yaw0 + CIRCLE_YAW_AMPLITUDE * torch.sin(angle)
    pitch = pitch0 + CIRCLE_PITCH_AMPLITUDE * torch.cos(angle)
    return CameraPath(yaw, pitch, 1 + CIRCLE_FOV_AMPLITUDE_DEG * torch.sin(angle) / fov_deg)


PathFn = Callable[..., CameraPath]
"""``fn(pose, frames)``, or ``fn(pose, frames, fov_deg)`` for the paths in :data:`FOV_PATHS`."""

CAMERA_PATHS: dict[str, PathFn] = {
    "yaw_sweep": yaw_sweep,
    "orbit": orbit,
    "front_circle": front_circle,
    "zoom": zoom,
    "fixed_points": fixed_points,
    "points": points,
    "line": line,
    "wiggle": wiggle,
    "front_circle_zoom": front_circle_zoom,
}

FOV_PATHS = frozenset({"front_circle_zoom"})
"""Paths whose zoom is given in degrees: they take the model's fov as a third argument."""

FIXED_VIEW_PATHS = frozenset({"fixed_points", "points"})
"""Paths with a fixed set of views: they ignore the frame count."""

PATH_FRAMES: dict[str, int] = {"points": 3, "fixed_points": 5, "line": 16, "wiggle": 16, "front_circle_zoom": 64}
"""Each path's natural frame count (the official configs' num_frames); the others default to 64."""


def default_frames(name: str) -> int:
    """The frame count a tool uses for path ``name`` when none is given: :data:`PATH_FRAMES`, else 64."""
    return PATH_FRAMES.get(name, 64)


def get_camera_path(name: str, pose: PoseDistribution, frames: int, fov_deg: float | None = None) -> CameraPath:
    """Look up a path by name; the error lists the valid names. ``fov_deg`` (the model's full fov, degrees) is
    needed by the paths that zoom by degrees (:data:`FOV_PATHS`)."""
    try:
        fn = CAMERA_PATHS[name]
    except KeyError:
        raise ValueError(f"unknown camera path {name!r}; valid: {', '.join(sorted(CAMERA_PATHS))}") from None
    if frames < 1:
        raise ValueError(f"a camera path needs at least 1 frame, got {frames}")
    if name not in FOV_PATHS:
        return fn(pose, frames)
    if fov_deg is None or not fov_deg > 0:
        raise ValueError(f"camera path {name!r} zooms by degrees and needs the model's fov: pass "
                         f"fov_deg=G.config.fov_deg (got {fov_deg!r})")
    return fn(pose, frames, float(fov_deg))
