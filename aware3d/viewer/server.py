"""The web viewer: a viser server whose 3D canvas shows the model rendered from the browser's orbit camera.

The browser's camera (dragged, zoomed) is converted to the model's convention (:mod:`.camera`), the GUI panel
sets the latent, truncation, resolution, samples per ray, each declared condition of the family and the display,
and a :class:`~.worker.RenderWorker` renders on its own thread: a preview at a low resolution while things move,
the full frame once they settle. Frames are sent to the browsers as the scene's background image, padded to the
canvas's aspect so that the square render spans the field of view it was rendered with. The camera followed is
that of the browser that moved last (every connected page shows the same frame and shares the panel).
"""

from __future__ import annotations

import io
import ipaddress
import math
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..models.base import Generator3D
from .camera import OrbitView, browser_from_view, view_from_browser
from .controls import add_controls
from .frames import Frame, FrameRenderer, ViewState
from .worker import RenderWorker

LOOPBACK = "127.0.0.1"
"""The default host: only this machine (or an SSH port forward) reaches the viewer."""
PAD_COLOUR = (24, 24, 24)
"""Colour of the canvas around the square render."""


def host_warning(host: str) -> str | None:
    """The warning printed when the viewer listens beyond this machine (None for a loopback address)."""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        if host == "localhost":
            return None
    return (f"warning: the viewer listens on {host}, so anyone who can reach this machine on that address can use it "
            "(and the model); there is no password. Prefer the default 127.0.0.1 with an SSH port forward "
            "(ssh -L PORT:127.0.0.1:PORT this-machine).")


def _no_share_url(*args, **kwargs) -> None:
    """Refuses viser's share-URL requests (a public tunnel to the viewer)."""
    print("aware3d view: a browser asked for a public share URL; refused (use an SSH port forward)", file=sys.stderr)


def pad_to_aspect(picture: np.ndarray, aspect: float) -> np.ndarray:
    """(H', W', 3) ``picture`` (H, W, 3) centred on a :data:`PAD_COLOUR` canvas of ``aspect`` = width / height,
    the picture spanning the canvas's shorter side (so the browser, stretching it over the canvas, keeps it
    square)."""
    h, w = picture.shape[:2]
    if not math.isfinite(aspect) or aspect <= 0:
        return picture
    out_w, out_h = max(w, round(h * aspect)), max(h, round(w / aspect))
    canvas = np.empty((out_h, out_w, 3), dtype=np.uint8)
    canvas[...] = PAD_COLOUR
    top, left = (out_h - h) // 2, (out_w - w) // 2
    canvas[top:top + h, left:left + w] = picture
    return canvas


def png_bytes(picture: np.ndarray) -> bytes:
    """A (H, W, 3) uint8 picture as PNG file contents."""
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    return buffer.getvalue()


def readout(frame: Frame) -> str:
    """The GUI's status text for a frame: the camera in the model's convention, and where the time went."""
    v = frame.state.view
    backbone = (f"cached ({frame.latent_ms:.1f} ms when computed)" if frame.backbone_cached
                else f"{frame.backbone_ms:.1f} ms")
    quality = "preview" if frame.preview else "full"
    return (f"yaw {math.degrees(v.yaw):.1f}°, pitch {math.degrees(v.pitch):.1f}°, radius {v.radius:.3f}, "
            f"fov {v.fov_deg:.2f}°  \nbackbone {backbone} · render {frame.render_ms:.1f} ms · "
            f"{frame.resolution} px {quality}")


class Viewer:
    """A running viewer of one loaded model (see the module docstring); :meth:`stop` shuts it down.

    Args:
        G: the model, in eval mode on its device.
        state: the first settings (camera, seeds, truncation, resolution, samples, condition, display); a resolution
            or samples per ray left None become the model's (:meth:`FrameRenderer.completed`).
        host, port: where to listen (viser moves to the next free port when ``port`` is taken; see :attr:`port`).
        preview_resolution: rendering resolution while the camera or a control moves; None: no previews.
        settle: seconds without a change before the full frame.
        out: folder the saved views and shapes are written to.
        mesh_grid: grid points per axis of the saved shape.
    """

    def __init__(self, G: Generator3D, state: ViewState, *, host: str = LOOPBACK, port: int = 8080,
                 preview_resolution: int | None = 32, settle: float = 0.3, out: str | Path = "out", mesh_grid: int = 128):
        import viser

        self.G, self.renderer = G, FrameRenderer(G)
        self.state, displays = self.renderer.completed(state)
        if self.state.display not in displays:
            raise ValueError(f"--display {self.state.display!r}: this {G.family} model shows {', '.join(displays)}")
        self.out, self.mesh_grid, self.preview_resolution = Path(out), mesh_grid, preview_resolution
        self.frames_shown = 0
        self.last_frame: Frame | None = None
        self.last_sent: Frame | None = None
        self._model_lock, self._state_lock = threading.Lock(), threading.Lock()
        self._camera_client = None
        self._aspect = 1.0
        self.server = viser.ViserServer(host=host, port=port, label="aware3d view", verbose=False)
        self.server.scene.set_up_direction("+y")
        self.server.gui.configure_theme(show_share_button=False, show_logo=False)
        # viser can open a public tunnel when a page asks for a share URL; the viewer never does: it stays on the
        # address it was started on (127.0.0.1 unless --host says otherwise).
        self.server.request_share_url = _no_share_url
        self._set_initial_camera(self.state.view)
        self.controls = add_controls(self.server.gui, G, self.state, displays, self.update, self._save_view,
                                     self._save_shape)
        self.worker = RenderWorker(self._render, self._publish, settle=settle,
                                   previews=preview_resolution is not None, on_error=self._render_failed)
        self.server.on_client_connect(self._client_connected)
        self.worker.submit(self.state)

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self.server.get_port()

    @property
    def url(self) -> str:
        return f"http://{self.server.get_host()}:{self.port}"

    def _set_initial_camera(self, view: OrbitView) -> None:
        position, target, fov = browser_from_view(view)
        cam = self.server.initial_camera
        cam.position, cam.look_at, cam.up, cam.fov = tuple(position), tuple(target), (0.0, 1.0, 0.0), fov

    # ---------------------------------------------------------------------------------------- state
    def update(self, **changes) -> None:
        """Change the settings (the GUI's callbacks and tests call this) and render them."""
        with self._state_lock:
            self.state = replace(self.state, **changes)
            state = self.state
        self.worker.submit(state)

    def _client_connected(self, client) -> None:
        def moved(camera) -> None:
            reshaped = client is not self._camera_client or camera.aspect != self._aspect
            self._camera_client, self._aspect = client, camera.aspect
            self.update(view=view_from_browser(camera.position, camera.look_at, camera.fov, camera.aspect))
            frame = self.last_frame
            if reshaped and frame is not None:  # re-pad the latest frame to this canvas now (its view may not change)
                self._send(frame)
        client.camera.on_update(moved)

    # ---------------------------------------------------------------------------------------- frames
    def _render(self, state: ViewState, preview: bool) -> Frame:
        with self._model_lock:
            return self.renderer.render(state, self.preview_resolution if preview else None)

    def _publish(self, frame: Frame) -> None:
        self.last_frame = frame
        self._send(frame)
        self.controls.show_frame(frame, readout(frame))

    def _send(self, frame: Frame) -> None:
        """Show ``frame`` in the browsers, padded to the canvas of the one whose camera it follows (none before a
        browser connects). The image is the scene's shared background, which viser also replays to a page that
        connects (or reconnects) later, so no page is left without the latest frame."""
        if self._camera_client is None:
            return
        self.server.scene.set_background_image(pad_to_aspect(frame.picture, self._aspect), format="jpeg",
                                               jpeg_quality=92)
        self.last_sent = frame
        self.frames_shown += 1

    def _render_failed(self, error: BaseException, trace: str) -> None:
        print(trace, file=sys.stderr)
        self.controls.show_error(f"{type(error).__name__}: {error}")

    def wait_for_frame(self, predicate: Callable[[Frame], bool], timeout: float) -> Frame | None:
        """The latest frame sent to a browser once it is a full one of the current settings satisfying
        ``predicate``, waiting up to ``timeout`` seconds (None then)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = self.last_sent
            if frame is not None and not frame.preview and frame.state == self.state and predicate(frame):
                return frame
            time.sleep(0.05)
        return None

    # ---------------------------------------------------------------------------------------- saving
    def _settled_frame(self) -> Frame:
        """The full frame of the current settings (waiting for it to render)."""
        self.worker.wait_idle(120)
        if self.last_frame is None:
            raise RuntimeError("no frame rendered yet")
        return self.last_frame

    def _save_view(self) -> tuple[str, bytes]:
        frame = self._settled_frame()
        self.out.mkdir(parents=True, exist_ok=True)
        name = f"view-seed{frame.state.seed:04d}-{frame.state.display}-{time.strftime('%H%M%S')}.png"
        data = png_bytes(frame.picture)
        (self.out / name).write_bytes(data)
        return str(self.out / name), data

    def _save_shape(self) -> tuple[str, bytes]:
        with self._state_lock:
            state = self.state
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"shape-seed{state.seed:04d}-{time.strftime('%H%M%S')}.glb"
        with self._model_lock:
            self.renderer.export_shape(state, path, self.mesh_grid)
        return str(path), path.read_bytes()

    def stop(self) -> None:
        """Stop rendering and serving."""
        self.worker.stop()
        self.server.stop()


__all__ = ["LOOPBACK", "Viewer", "host_warning", "pad_to_aspect", "png_bytes", "readout"]
