"""``aware3d view``: a browser viewer (viser) of any family's model, rendering the browser's orbit camera live.

:mod:`.camera` converts the browser's camera to the model's convention, :mod:`.frames` renders one frame of the
current settings (caching latents and tri-planes), :mod:`.worker` runs the renders on a thread (previews while
things move, the full frame once they settle), :mod:`.controls` builds the GUI panel from what the model declares
and :mod:`.server` ties them to a viser server. viser is imported only when a server starts.
"""

from .camera import (OrbitView, browser_from_view, home_view, rays_meeting_point, square_fov_deg, view_cameras,
                     view_from_browser)
from .frames import Frame, FrameRenderer, ViewState
from .server import LOOPBACK, Viewer, host_warning, pad_to_aspect
from .worker import RenderWorker, next_job

__all__ = ["LOOPBACK", "Frame", "FrameRenderer", "OrbitView", "RenderWorker", "ViewState", "Viewer",
           "browser_from_view", "home_view", "host_warning", "next_job", "pad_to_aspect", "rays_meeting_point",
           "square_fov_deg", "view_cameras", "view_from_browser"]
