"""The camera of an inversion: pi-GAN angles on the model's own camera sphere, and the search grid over its prior.

A camera here is ``G.cameras(yaw, pitch)``: the model's radius, field of view and look-at convention (each
family's), with yaw and pitch in pi-GAN angles (radians; frontal ``config.pose.frontal()``, yaw the azimuth,
pitch the polar angle from +y). So what the inversion finds is a view the model renders exactly, and the same
two numbers re-create it in ``render --latent``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..cameras import Cameras, PoseDistribution
from ..models.base import Generator3D
from .config import SearchConfig

PRIOR_DRAWS = 4096
"""Poses drawn from the prior to place the grid's quantiles."""


@dataclass(frozen=True)
class CameraAngles:
    """B cameras as (B,) yaw and pitch tensors (pi-GAN angles, radians)."""

    yaw: Tensor
    """(B,) azimuth; frontal is the model's ``pose.frontal()[0]`` (pi/2 for most)."""
    pitch: Tensor
    """(B,) polar angle from +y; pi/2 is the equator."""

    def cameras(self, G: Generator3D) -> Cameras:
        """The model's cameras at these angles (differentiable in yaw and pitch)."""
        return G.cameras(self.yaw, self.pitch)

    def rows(self, index) -> "CameraAngles":
        return CameraAngles(self.yaw[index], self.pitch[index])

    def detach(self) -> "CameraAngles":
        return CameraAngles(self.yaw.detach().clone(), self.pitch.detach().clone())

    def as_floats(self, row: int = 0) -> tuple[float, float]:
        return float(self.yaw[row]), float(self.pitch[row])


def prior_quantiles(values: Tensor, steps: int, coverage: float) -> Tensor:
    """(steps,) quantiles of ``values`` evenly spaced in probability over its central ``coverage`` (one step: the
    median)."""
    if steps == 1:
        return values.median().reshape(1)
    lo = (1 - coverage) / 2
    q = torch.linspace(lo, 1 - lo, steps, dtype=values.dtype)
    return torch.quantile(values, q)


def pose_grid(pose: PoseDistribution, config: SearchConfig, seed: int = 0, device=None) -> CameraAngles:
    """The search grid: every pair of yaw and pitch quantiles of the prior (``config.yaw_steps`` x
    ``config.pitch_steps``, yaw fastest), read from :data:`PRIOR_DRAWS` seeded draws, so it fits any pose
    distribution (gaussian, uniform, spherical, fixed)."""
    yaw, pitch = pose.sample(PRIOR_DRAWS, generator=torch.Generator().manual_seed(seed))
    yaws = prior_quantiles(yaw.double(), config.yaw_steps, config.coverage)
    pitches = prior_quantiles(pitch.double(), config.pitch_steps, config.coverage)
    grid_pitch, grid_yaw = torch.meshgrid(pitches, yaws, indexing="ij")
    return CameraAngles(grid_yaw.reshape(-1).float().to(device), grid_pitch.reshape(-1).float().to(device))


def prior_cameras(G: Generator3D, n: int, generator: torch.Generator) -> Cameras:
    """``n`` cameras drawn from the model's pose prior (CPU ``generator``)."""
    yaw, pitch = G.config.pose.sample(n, generator=generator)
    return G.cameras(yaw.to(G.device), pitch.to(G.device))


def angle_record(G: Generator3D, angles: CameraAngles, row: int = 0) -> dict:
    """What the JSON files say about one camera: its angles and its offsets from the model's frontal view (the
    ``render --yaw/--pitch`` convention: positive yaw turns the camera toward -x, positive pitch looks from
    above), in radians and degrees."""
    yaw, pitch = angles.as_floats(row)
    yaw0, pitch0 = G.config.pose.frontal()
    return {"yaw": yaw, "pitch": pitch, "yaw_offset": yaw - yaw0, "pitch_offset": pitch0 - pitch,
            "yaw_offset_deg": math.degrees(yaw - yaw0), "pitch_offset_deg": math.degrees(pitch0 - pitch)}


__all__ = ["CameraAngles", "PRIOR_DRAWS", "angle_record", "pose_grid", "prior_cameras", "prior_quantiles"]
