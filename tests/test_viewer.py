"""``aware3d view``: the camera conversion, the render thread, the frame cache, and the viewer in a real headless
browser (Debian's chromium driven over the Chrome DevTools Protocol). The browser test skips when chromium is
missing, except under CI=true, where it fails (``.ci/run`` installs it)."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aware3d.cameras import Cameras, intrinsics_from_fov, look_at
from aware3d.io.checkpoint import save_generator
from aware3d.models.registry import build_generator, families
from aware3d.viewer import (
    FrameRenderer,
    OrbitView,
    RenderWorker,
    browser_from_view,
    home_view,
    host_warning,
    next_job,
    pad_to_aspect,
    rays_meeting_point,
    square_fov_deg,
    view_cameras,
    view_from_browser,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(family: str):
    return build_generator(families()[family].tiny.model).eval()


# ------------------------------------------------------------------------------------ camera conversion
@pytest.mark.parametrize("position, yaw, pitch, radius", [
    ((0.0, 0.0, 2.0), math.pi / 2, math.pi / 2, 2.0),       # frontal: camera on +z
    ((3.0, 0.0, 0.0), 0.0, math.pi / 2, 3.0),               # on +x: yaw 0
    ((-1.0, 0.0, 0.0), math.pi, math.pi / 2, 1.0),          # on -x: yaw pi
    ((0.0, 1.0, 1.0), math.pi / 2, math.pi / 4, math.sqrt(2)),  # 45 degrees above the equator
    ((0.0, -2.0, 0.0), 0.0, math.pi, 2.0),                  # straight below
])
def test_browser_camera_to_model_angles(position, yaw, pitch, radius):
    view = view_from_browser(position, (0.0, 0.0, 0.0), math.radians(30.0), aspect=1.5)
    assert view.yaw == pytest.approx(yaw, abs=1e-12)
    assert view.pitch == pytest.approx(pitch, abs=1e-12)
    assert view.radius == pytest.approx(radius, abs=1e-12)
    assert view.fov_deg == pytest.approx(30.0)  # landscape: the square spans the height, the vertical fov


def test_portrait_canvas_uses_the_horizontal_fov():
    # A canvas half as wide as tall: the square spans its width, whose half-angle tangent is half the vertical's.
    assert square_fov_deg(math.radians(60.0), 0.5) == pytest.approx(math.degrees(2 * math.atan(math.tan(math.radians(30)) / 2)))
    assert square_fov_deg(math.radians(60.0), 2.0) == pytest.approx(60.0)


def test_model_view_back_to_the_browser_camera():
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        position = (torch.rand(3, generator=g) * 4 - 2).double().numpy()
        target = (torch.rand(3, generator=g) * 0.4 - 0.2).double().numpy()
        view = view_from_browser(position, target, 0.4)
        back_position, back_target, fov = browser_from_view(view)
        np.testing.assert_allclose(back_position, position, atol=1e-12)
        np.testing.assert_allclose(back_target, target, atol=1e-12)
        assert fov == pytest.approx(0.4)


def test_view_cameras_look_at_the_target_upright():
    view = OrbitView(yaw=1.2, pitch=1.0, radius=2.5, fov_deg=20.0, target=(0.1, -0.2, 0.3))
    cam = view_cameras(view)
    c2w = cam.cam2world[0].double()
    forward = torch.tensor(view.target, dtype=torch.float64) - torch.as_tensor(view.position)
    torch.testing.assert_close(c2w[:3, 2], forward / forward.norm(), atol=1e-6, rtol=0)
    assert float(c2w[1, 1]) < 0  # the image's down axis points down the world's +y
    assert abs(float(c2w[1, 0])) < 1e-6  # no roll: image right stays horizontal
    torch.testing.assert_close(cam.intrinsics, intrinsics_from_fov(20.0))


def test_rays_meeting_point_finds_the_common_target():
    target = torch.tensor([[0.3, -0.1, 0.2]])
    origins = torch.tensor([[0.0, 0.0, 2.0], [1.5, 0.5, 1.0], [-1.0, 1.0, 1.5]])
    cams = Cameras(look_at(origins, target.expand(3, 3)), intrinsics_from_fov(12.0, batch=3))
    np.testing.assert_allclose(rays_meeting_point(cams), target[0].numpy(), atol=1e-5)


@pytest.mark.parametrize("family", sorted(families()))
def test_home_view_is_the_models_frontal_camera(family):
    G = tiny(family)
    yaw0, pitch0 = G.config.pose.frontal()
    expected = G.cameras([yaw0], [pitch0])
    got = view_cameras(home_view(G))
    torch.testing.assert_close(got.cam2world, expected.cam2world, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.intrinsics, expected.intrinsics, atol=1e-5, rtol=1e-5)


def test_pad_to_aspect_keeps_the_render_square_and_centred():
    picture = np.full((10, 10, 3), 200, np.uint8)
    wide = pad_to_aspect(picture, 2.0)
    assert wide.shape == (10, 20, 3) and (wide[:, 5:15] == 200).all() and (wide[:, :5] != 200).all()
    tall = pad_to_aspect(picture, 0.5)
    assert tall.shape == (20, 10, 3) and (tall[5:15] == 200).all()


# ------------------------------------------------------------------------------------------- host
def test_default_host_is_loopback():
    from aware3d.cli.main import build_parser
    from aware3d.tools.view import ViewOptions

    assert ViewOptions().host == "127.0.0.1"
    assert build_parser().parse_args(["view", "--checkpoint", "x"]).host == "127.0.0.1"
    for host in ("127.0.0.1", "localhost", "::1"):
        assert host_warning(host) is None


def test_exposed_host_prints_a_warning(capsys):
    from aware3d.tools.view import ViewOptions, start

    warning = host_warning("0.0.0.0")
    assert warning is not None and "0.0.0.0" in warning and "no password" in warning
    with pytest.raises(FileNotFoundError):  # the warning comes first, before the model is read
        start(ViewOptions(host="0.0.0.0", checkpoint="no/such/checkpoint"))
    assert "0.0.0.0" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------- worker
def test_next_job_previews_then_refines_after_settling():
    assert next_job(None, 0.0, None, 1.0, 0.3, True) == (None, None)
    assert next_job("a", 1.0, None, 1.1, 0.3, True) == (("a", True), None)  # moving: a preview first
    job, wait = next_job("a", 1.0, ("a", True), 1.1, 0.3, True)
    assert job is None and wait == pytest.approx(0.2)  # preview shown: wait for the rest of the settle time
    assert next_job("a", 1.0, ("a", True), 1.35, 0.3, True) == (("a", False), None)  # settled: in full
    assert next_job("a", 1.0, ("a", False), 5.0, 0.3, True) == (None, None)  # done until something changes
    assert next_job("b", 1.0, ("a", True), 1.1, 0.3, False) == (("b", False), None)  # no previews: full at once


def test_render_worker_skips_stale_states_and_ends_in_full():
    calls, done = [], threading.Event()

    def render(state, preview):
        time.sleep(0.03)
        calls.append((state, preview))
        return state, preview

    worker = RenderWorker(render, lambda result: done.set() if result == (9, False) else None, settle=0.2)
    try:
        for i in range(10):
            worker.submit(i)
            time.sleep(0.01)
        assert done.wait(10)
        assert worker.wait_idle(5)
    finally:
        worker.stop()
    assert calls[-1] == (9, False)
    assert all(preview for _, preview in calls[:-1])  # only the settled state is rendered in full
    assert len(calls) < 10  # states that arrived during a render were dropped, not queued


# ---------------------------------------------------------------------------------- frames and caches
def test_plane_cache_is_reused_while_only_the_camera_moves():
    G = tiny("eg3d")
    assert G.capabilities.plane_cache
    renderer = FrameRenderer(G)
    state, _ = renderer.completed(_state(G))
    first = renderer.render(replace(state, seed=3))
    assert not first.backbone_cached and first.backbone_ms > 0
    view = state.view
    moved_state = replace(state, seed=3, view=replace(view, yaw=view.yaw + 0.4))
    moved = renderer.render(moved_state)
    assert moved.backbone_cached and moved.backbone_ms == 0.0
    assert np.abs(moved.picture.astype(int) - first.picture.astype(int)).mean() > 1  # the view did change
    np.testing.assert_array_equal(moved.picture, FrameRenderer(G).render(moved_state).picture)  # and is exact
    assert not renderer.render(replace(moved_state, seed=4)).backbone_cached


def test_interpolation_slider_ends_at_each_seed():
    G = tiny("pigan")
    renderer = FrameRenderer(G)
    state, _ = renderer.completed(_state(G))
    a = renderer.render(replace(state, seed=5, seed_b=6, mix=0.0)).picture
    b = renderer.render(replace(state, seed=5, seed_b=6, mix=1.0)).picture
    half = renderer.render(replace(state, seed=5, seed_b=6, mix=0.5)).picture
    np.testing.assert_array_equal(b, FrameRenderer(G).render(replace(state, seed=6, seed_b=6)).picture)
    assert not np.array_equal(a, b) and not np.array_equal(half, a) and not np.array_equal(half, b)


@pytest.mark.parametrize("family", sorted(families()))
def test_every_declared_display_renders(family):
    G = tiny(family)
    renderer = FrameRenderer(G)
    state, displays = renderer.completed(_state(G))
    assert displays[:2] == ("image", "depth") and ("normals" in displays) == G.capabilities.normals
    preview = renderer.render(state, preview_resolution=4)
    assert preview.preview and preview.resolution == 4
    for display in displays:
        frame = renderer.render(replace(state, display=display))
        assert frame.picture.dtype == np.uint8 and frame.picture.shape[-1] == 3 and frame.picture.std() > 0


def test_save_shape_writes_a_coloured_glb(tmp_path):
    import trimesh

    G = tiny("pigan")
    renderer = FrameRenderer(G)
    state, _ = renderer.completed(_state(G))
    info = renderer.export_shape(state, tmp_path / "shape.glb", grid=24, level="p90")
    mesh = trimesh.load(info["file"], force="mesh")
    assert info["vertices"] > 0 and len(mesh.vertices) == info["vertices"]
    assert mesh.visual.vertex_colors.shape[0] == info["vertices"]


def test_class_label_changes_a_class_conditional_render():
    G = build_generator(families()["eg3d"].tiny.model, overrides=["num_classes=3"]).eval()
    renderer = FrameRenderer(G)
    state, _ = renderer.completed(_state(G))
    assert state.class_label == 0  # a class-conditional model needs one: the viewer starts at class 0
    a, b = renderer.render(state), renderer.render(replace(state, class_label=2))
    assert not b.backbone_cached and np.abs(a.picture.astype(int) - b.picture.astype(int)).mean() > 0.5


@pytest.mark.parametrize("preset, overrides, condition_controls", [
    ("pigan-tiny", [], set()),
    ("shadegan-tiny", [], {"light"}),
    ("eg3d-tiny", ["num_classes=3"], {"class_label"}),
])
def test_panel_has_one_control_per_declared_condition(tmp_path, preset, overrides, condition_controls):
    """The panel follows the model's declarations; moving a control (through the server's GUI handle) renders
    the new setting, and Save view writes the frame shown."""
    from aware3d.viewer import Viewer

    G = build_generator(preset, overrides=overrides).eval()
    viewer = Viewer(G, _state(G), port=free_port(), out=tmp_path, preview_resolution=None, settle=0.05)
    try:
        handles = viewer.controls.handles
        assert {"light", "class_label"} & set(handles) == condition_controls
        assert {"seed", "seed_b", "mix", "truncation_psi", "resolution", "num_samples", "display", "fast"} <= set(handles)
        if "light" in handles:
            handles["light"][2].value = 1.0  # dx: the light moves to the side
            assert viewer.state.light[2] == 1.0
        if "class_label" in handles:
            handles["class_label"].value = 2
            assert viewer.state.class_label == 2
        handles["num_samples"].value = 6
        handles["fast"].value = True
        assert viewer.state.fast
        assert viewer.worker.wait_idle(30)
        assert viewer.last_frame.state == viewer.state
        path, data = viewer._save_view()
        saved = np.asarray(Image.open(path).convert("RGB"))
        np.testing.assert_array_equal(saved, viewer.last_frame.picture)
        assert Path(path).read_bytes() == data
    finally:
        viewer.stop()


def _state(G, **changes):
    from aware3d.tools.view import ViewOptions, initial_state

    return replace(initial_state(G, ViewOptions(checkpoint="unused")), **changes)


# --------------------------------------------------------------------------------- headless browser
class DevTools:
    """A minimal Chrome DevTools Protocol client for one page (requests by id; events are skipped)."""

    def __init__(self, ws_url: str):
        from websockets.sync.client import connect

        self.ws, self.next_id = connect(ws_url, max_size=None, open_timeout=20), 0

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def js(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def screenshot(self) -> np.ndarray:
        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def chromium_or_skip() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        msg = "chromium is not installed (apt-get install chromium; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return exe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_browser(exe: str, profile: Path) -> tuple[subprocess.Popen, DevTools]:
    proc = subprocess.Popen([exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
                             f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text().strip()):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError(f"chromium did not start its DevTools endpoint (exit {proc.poll()})")
        time.sleep(0.05)
    port = port_file.read_text().split()[0]
    while True:
        pages = [t for t in json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
                 if t["type"] == "page"]
        if pages:
            return proc, DevTools(pages[0]["webSocketDebuggerUrl"])
        time.sleep(0.05)


VIEWPORT = (1400, 600)
"""Browser viewport (width, height): the square render (600 px, centred) stays clear of the GUI panel."""


def view_area(shot: np.ndarray) -> np.ndarray:
    """The middle 60% of the square render on the canvas (clear of the panel and notifications)."""
    w, h = VIEWPORT
    left = (w - h) // 2
    return shot[int(0.2 * h):int(0.8 * h), left + int(0.2 * h):left + int(0.8 * h)].astype(np.float64)


def matches_picture(area: np.ndarray, picture: np.ndarray) -> float:
    """Correlation of the screenshot's view area with the same part of the rendered picture (resized)."""
    n = picture.shape[0]
    crop = picture[int(0.2 * n):int(0.8 * n) or 1, int(0.2 * n):int(0.8 * n) or 1]
    expected = np.asarray(Image.fromarray(crop).resize(area.shape[1::-1], Image.BILINEAR), dtype=np.float64)
    return float(np.corrcoef(area.reshape(-1), expected.reshape(-1))[0, 1])


def keep_artifact(shot: np.ndarray, tmp_path: Path, name: str) -> None:
    Image.fromarray(shot).save(tmp_path / name)
    target = os.environ.get("AWARE3D_TEST_ARTIFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / name, Path(target) / name)


def test_viewer_in_a_headless_browser(tmp_path):
    """The page loads from the server, shows the render (not blank, and it is our picture), and typing another
    seed into the page's Seed field changes the image. Screenshots: view_first.png, view_seed5.png."""
    from aware3d.tools.view import ViewOptions, start

    exe = chromium_or_skip()
    checkpoint = save_generator(tiny("eg3d"), tmp_path / "eg3d-tiny")
    viewer = start(ViewOptions(checkpoint=str(checkpoint), port=free_port(), out=str(tmp_path / "out"),
                               preview_resolution=8, settle=0.2))
    proc, page = None, None
    try:
        proc, page = launch_browser(exe, tmp_path / "profile")
        page.call("Emulation.setDeviceMetricsOverride", width=VIEWPORT[0], height=VIEWPORT[1], deviceScaleFactor=1,
                  mobile=False)
        page.call("Page.navigate", url=viewer.url)
        shot = _settled_screenshot(page, viewer)
        keep_artifact(shot, tmp_path, "view_first.png")
        area = view_area(shot)
        assert area.std() > 8, f"the view area is blank (pixel std {area.std():.1f})"
        assert matches_picture(area, viewer.last_sent.picture) > 0.8, "the canvas does not show the render"

        # Change a control through the page: focus the Seed field and type, as a user would.
        assert page.js("(() => { const label = [...document.querySelectorAll('label')].find(l => l.textContent === 'Seed');"
                       " const input = document.getElementById(label.htmlFor); input.focus(); input.select();"
                       " return document.activeElement === input; })()")
        page.call("Input.insertText", text="5")
        changed = viewer.wait_for_frame(lambda f: f.state.seed == 5, 30)
        assert changed is not None, f"typing into the page did not reach the viewer (seed {viewer.state.seed})"
        shot5 = _settled_screenshot(page, viewer)
        keep_artifact(shot5, tmp_path, "view_seed5.png")
        area5 = view_area(shot5)
        assert area5.std() > 8
        assert np.abs(area5 - area).mean() > 5, "the image did not change with the seed"
        assert matches_picture(area5, viewer.last_sent.picture) > 0.8
    finally:
        if page is not None:
            page.ws.close()
        if proc is not None:
            proc.kill()
            proc.wait(10)
        viewer.stop()


def _settled_screenshot(page: DevTools, viewer) -> np.ndarray:
    """A screenshot once the browser shows the latest full frame sent to it (the render arrives as the canvas's
    background image, decoded and drawn a moment later; the browser's own camera messages may still bring new
    frames), or the last one taken after 10 s."""
    assert viewer.wait_for_frame(lambda f: True, 30) is not None, "the viewer sent no full frame of its settings"
    deadline = time.monotonic() + 10
    while True:
        shot, frame = page.screenshot(), viewer.last_sent
        area = view_area(shot)
        shown = area.std() > 8 and matches_picture(area, frame.picture) > 0.8  # correlation alone is scale-free
        if (shown and not frame.preview and frame.state == viewer.state) or time.monotonic() > deadline:
            return shot
        time.sleep(0.1)
