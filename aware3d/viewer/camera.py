"""The browser's orbit camera in the model's camera convention, and back.

viser's client camera is a position, a look-at point and a *vertical* field of view (radians) in world
coordinates; the scene's up direction is set to +y, the world up of every family (:mod:`aware3d.cameras.poses`).
The model's convention is pi-GAN's angles of the camera *position* about the world origin (yaw = azimuth,
frontal pi/2; pitch = polar angle from +y, frontal pi/2), the distance of that position from the origin, the
point the camera looks at (the origin, or a family's pivot such as EG3D's) and the full field of view of the
square image it renders (degrees). A model renders square images: the viewer shows the square in the middle of
the browser's canvas, spanning the canvas's shorter side, so its field of view is the browser's along that side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..cameras import (
    Cameras,
    camera_origin_from_angles,
    focal_to_fov,
    intrinsics_from_fov,
    look_at,
)

Vector = tuple[float, float, float]


@dataclass(frozen=True)
class OrbitView:
    """A camera in the model's convention (radians, world units, degrees for the fov)."""

    yaw: float
    """Azimuth of the camera position about the world origin; pi/2 is frontal (camera on +z)."""
    pitch: float
    """Polar angle of the camera position from +y; pi/2 is the equator, 0 straight above."""
    radius: float
    """Distance of the camera position from the world origin, world units."""
    fov_deg: float
    """Full field of view of the square render, degrees (border to border)."""
    target: Vector = (0.0, 0.0, 0.0)
    """The world point the camera looks at (the orbit's centre in the browser)."""

    @property
    def position(self) -> np.ndarray:
        """(3,) the camera position, world coordinates."""
        origin = camera_origin_from_angles(torch.tensor([self.yaw], dtype=torch.float64),
                                           torch.tensor([self.pitch], dtype=torch.float64), self.radius)
        return origin[0].numpy()


def square_fov_deg(vertical_fov_rad: float, aspect: float) -> float:
    """Field of view (degrees) of the square spanning the shorter side of a canvas of ``aspect`` = width / height
    whose vertical field of view is ``vertical_fov_rad``: the vertical one for landscape canvases, the horizontal
    one ``2 atan(tan(v / 2) * aspect)`` for portrait ones."""
    return math.degrees(2 * math.atan(math.tan(vertical_fov_rad / 2) * min(1.0, aspect)))


def view_from_browser(position, look_at_point, vertical_fov_rad: float, aspect: float = 1.0) -> OrbitView:
    """The model-convention view of viser's client camera (``position`` and ``look_at_point`` (3,) world
    coordinates, vertical fov in radians, canvas width / height)."""
    p = np.asarray(position, dtype=np.float64)
    radius = float(np.linalg.norm(p))
    if radius == 0.0:
        raise ValueError("the browser camera sits at the world origin: its yaw and pitch are undefined; zoom out")
    pitch = math.acos(min(1.0, max(-1.0, p[1] / radius)))
    yaw = math.atan2(p[2], p[0])
    target = tuple(float(v) for v in np.asarray(look_at_point, dtype=np.float64))
    return OrbitView(yaw, pitch, radius, square_fov_deg(vertical_fov_rad, aspect), target)  # type: ignore[arg-type]


def browser_from_view(view: OrbitView) -> tuple[np.ndarray, np.ndarray, float]:
    """(position (3,), look-at point (3,), vertical fov in radians) for a square canvas: the inverse of
    :func:`view_from_browser` at aspect 1."""
    return view.position, np.asarray(view.target, dtype=np.float64), math.radians(view.fov_deg)


def view_cameras(view: OrbitView, device=None) -> Cameras:
    """One camera (OpenCV cam2world, +y up, normalised intrinsics of a square image) for ``view``."""
    origin = torch.as_tensor(view.position, dtype=torch.float32, device=device)[None]
    target = torch.tensor([view.target], dtype=torch.float32, device=device)
    return Cameras(look_at(origin, target), intrinsics_from_fov(view.fov_deg, device=device))


def rays_meeting_point(cameras: Cameras) -> np.ndarray:
    """(3,) the point nearest (least squares) to every camera's optical axis: the point look-at cameras all aim
    at. Needs two or more cameras whose axes are not parallel."""
    c2w = cameras.cam2world.detach().double().cpu()
    origins, axes = c2w[:, :3, 3], c2w[:, :3, 2] / c2w[:, :3, 2].norm(dim=-1, keepdim=True)
    # Sum over cameras of (I - a a^T) (x - o) = 0: the normal equations of the distances to the axes.
    project = torch.eye(3, dtype=torch.float64) - axes[:, :, None] * axes[:, None, :]
    lhs, rhs = project.sum(0), (project @ origins[:, :, None]).sum(0)[:, 0]
    return torch.linalg.solve(lhs, rhs).numpy()


def home_view(G) -> OrbitView:
    """The model's frontal camera (``config.pose.frontal()``, as the tools render it) as an :class:`OrbitView`:
    its position, the point the family's cameras look at (found from three of its cameras, so a pivot such as
    EG3D's is honoured without reading family settings) and the fov of its intrinsics."""
    yaw0, pitch0 = G.config.pose.frontal()
    cams = G.cameras([yaw0, yaw0 + 0.3, yaw0], [pitch0, pitch0, pitch0 - 0.3])
    front = view_from_browser(cams.origins[0].double().cpu().numpy(), rays_meeting_point(cams), 0.0)
    return OrbitView(front.yaw, front.pitch, front.radius, float(focal_to_fov(float(cams.intrinsics[0, 0, 0]))),
                     front.target)


__all__ = ["OrbitView", "browser_from_view", "home_view", "rays_meeting_point", "square_fov_deg",
           "view_cameras", "view_from_browser"]
