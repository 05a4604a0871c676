"""``aware3d visualize`` (EpiGRAF's inference visualisations for any family) and the official camera paths."""

from __future__ import annotations

import json
import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from aware3d.cameras import PoseDistribution, get_camera_path
from aware3d.cameras.paths import CAMERA_PATHS, default_frames
from aware3d.cli.main import main
from aware3d.io.checkpoint import save_generator
from aware3d.io.media import to_uint8
from aware3d.models.registry import build_generator
from aware3d.tools.visualize import (VISUALIZATIONS, VisualizeOptions, bg_nobg_renders, front_grid_layout,
                                     make_context, max_projections)

pytestmark = pytest.mark.usefixtures("one_thread")

FRONT = PoseDistribution(yaw_mean=math.pi / 2, pitch_mean=math.pi / 2, yaw_std=0.3, pitch_std=0.15)
R = 16  # render resolution of every tool run here


def png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def visualize(ckpt: str, out, vis: str, *extra: str) -> dict:
    assert main(["visualize", "--checkpoint", ckpt, "--out", str(out), "--vis", vis, "--resolution", str(R),
                 "--no-progress", *extra]) == 0
    return json.loads((out / vis / "visualize.json").read_text())


# ------------------------------------------------------------------------------------------ camera paths
def test_points_are_the_mean_then_either_side_and_ignore_frames():
    for frames in (1, 9):
        p = get_camera_path("points", FRONT, frames)
        np.testing.assert_allclose(p.yaw - math.pi / 2, [0.0, -0.3, 0.3], atol=1e-6)
        assert torch.all(p.pitch == FRONT.pitch_mean) and torch.all(p.fov_scale == 1)
    shifted = get_camera_path("points", PoseDistribution(yaw_mean=2.0, pitch_mean=1.2), 3)
    np.testing.assert_allclose(shifted.yaw, [2.0, 1.7, 2.3], atol=1e-6)
    assert torch.allclose(shifted.pitch, torch.tensor(1.2))


def test_line_sweeps_half_a_turn_from_above():
    p = get_camera_path("line", FRONT, default_frames("line"))
    assert len(p) == 16
    np.testing.assert_allclose([p.yaw[0] - math.pi / 2, p.yaw[-1] - math.pi / 2], [-1.57, 1.57], atol=1e-6)
    assert torch.all(p.yaw.diff() > 0)
    np.testing.assert_allclose(p.pitch, 0.835, atol=1e-6)  # the official pitch 0.835 for a frontal mean
    assert torch.all(p.fov_scale == 1)


def test_wiggle_sweeps_the_yaw_while_the_pitch_swings_once():
    p = get_camera_path("wiggle", FRONT, 17)
    s = np.linspace(0, 1, 17)
    np.testing.assert_allclose(p.yaw - math.pi / 2, -1.57 + 3.14 * s, atol=1e-5)
    np.testing.assert_allclose(p.pitch - math.pi / 2, 0.5 * np.cos(2 * np.pi * s), atol=1e-6)
    assert float(p.pitch[8]) == pytest.approx(math.pi / 2 - 0.5)  # above the horizon half way
    assert float(p.pitch[0]) == pytest.approx(float(p.pitch[-1]))


def test_front_circle_zoom_is_the_official_front_circle():
    p = get_camera_path("front_circle_zoom", FRONT, default_frames("front_circle_zoom"), fov_deg=12.0)
    assert len(p) == 64
    s = np.linspace(0, 1, 64)
    np.testing.assert_allclose(p.yaw - math.pi / 2, 0.3 * np.sin(2 * np.pi * s), atol=1e-6)
    np.testing.assert_allclose(p.pitch - math.pi / 2, 0.2 * np.cos(2 * np.pi * s), atol=1e-6)
    np.testing.assert_allclose(12.0 * p.fov_scale, 12.0 + np.sin(2 * np.pi * s), atol=1e-5)  # +-1 degree
    assert float(p.yaw[0]) == pytest.approx(float(p.yaw[-1]), abs=1e-6)  # linspace(0, 1): the ends coincide
    assert float((12.0 * p.fov_scale).max()) == pytest.approx(13.0, abs=2e-3)
    # The spread-scaled front_circle stays as it was: it loops without repeating its first frame.
    old = get_camera_path("front_circle", FRONT, 8)
    assert float(old.yaw[0]) == pytest.approx(math.pi / 2) and float(old.pitch[0]) == pytest.approx(math.pi / 2 + 0.15)
    assert torch.all(old.fov_scale == 1)


def test_degree_zoom_needs_the_fov_and_every_path_has_a_default_frame_count():
    with pytest.raises(ValueError, match="fov_deg"):
        get_camera_path("front_circle_zoom", FRONT, 8)
    for name in CAMERA_PATHS:
        p = get_camera_path(name, FRONT, default_frames(name), fov_deg=30.0)
        assert len(p) == ({"points": 3, "fixed_points": 5}.get(name) or default_frames(name))
        assert p.yaw.shape == p.pitch.shape == p.fov_scale.shape


def test_front_grid_layout_is_the_official_for_three_views():
    ims = [np.full((32, 32, 3), v, np.uint8) for v in (50, 100, 200)]
    grid = front_grid_layout(ims)
    # main h + 2 framed by 2 above, then the row of two h/2 tiles with its 2-pixel border: width w + 6
    assert grid.shape == (2 + 34 + 16 + 4, 38, 3)
    assert np.all(grid[2:36, 2:36] == 50) and np.all(grid[38:54, 2:18] == 100) and np.all(grid[38:54, 20:36] == 200)
    assert np.all(grid[:2] == 0) and np.all(grid[36:38] == 0)
    with pytest.raises(ValueError, match="at least 2 views"):
        front_grid_layout(ims[:1])


def test_max_projections_face_the_documented_way():
    volume = torch.zeros(5, 5, 5)
    volume[4, 0, 1] = 2.0  # +x, -y, z just behind the back face (z grows toward the frontal camera)
    img = max_projections(volume)
    front, side, top = img[:, :5], img[:, 7:12], img[:, 14:19]
    assert img.shape == (5, 19) and np.all(img[:, 5:7] == 0)
    assert [tuple(np.argwhere(t == 255)[0]) for t in (front, side, top)] == [(4, 4), (4, 3), (1, 4)]


# ------------------------------------------------------------------------------------------- the tool
@pytest.fixture(scope="module")
def sphere_ckpt(tmp_path_factory) -> str:
    """A tiny model of the family with a separate background model (inverted-sphere background)."""
    G = build_generator("epigraf-tiny", seed=2, overrides=["background=sphere", "render.last_delta=0.001",
                                                          "eval_render.last_delta=0.001", "w_avg_samples=200"])
    return str(save_generator(G.eval(), tmp_path_factory.mktemp("ckpt") / "sphere"))


def tile_count(width: int, tile: int) -> float:
    return (width - 2) / (tile + 2)


@pytest.mark.parametrize("vis", list(VISUALIZATIONS))
def test_every_vis_writes_its_files(vis, sphere_ckpt, tmp_path):
    camera = ("--camera", "line") if vis in ("front_grid", "minigrid") else ()
    rec = visualize(sphere_ckpt, tmp_path, vis, "--seeds", "3", "4", "--frames", "3", "--voxel-res", "6",
                    "--num-interp-steps", "4", "--tile", "10", *camera)
    folder = tmp_path / vis
    names = sorted(p.name for p in folder.iterdir())
    expect = {
        "front_grid": ["seed-0003.png", "seed-0004.png"], "minigrid": ["seed-0003.png", "seed-0004.png"],
        "video": ["seed-0003.mp4", "seed-0004.mp4"], "video_grid": ["seeds-0003-to-0004.mp4"],
        "interp": ["seeds-0003-0004.png"], "interp_video": ["seeds-0003-0004.mp4"],
        "bg_nobg": ["seed-0003.png", "seed-0004.png"],
        "density": [f"seed-000{s}{x}" for s in (3, 4) for x in (".npy", ".png", "_density.png", "_depth.png")],
    }[vis]
    assert names == sorted(expect + ["visualize.json"])
    assert sorted(rec["files"]) == sorted(str(folder / n) for n in expect)
    assert rec["seeds"] == [3, 4] and rec["model"]["family"] == "epigraf" and rec["options"]["vis"] == vis
    first = folder / expect[0]
    if vis == "front_grid":  # line, 3 views: main (16 + 2) over two 8-pixel tiles
        assert png(first).shape == (2 + 18 + 8 + 4, 22, 3)
    elif vis == "minigrid":
        assert png(first).shape == (14, 3 * 12 + 2, 3)
    elif vis in ("video", "interp_video"):
        assert iio.imread(first, index=None).shape == (3, R, R, 3)
    elif vis == "video_grid":
        assert iio.imread(first, index=None).shape == (3, R + 4, 2 * R + 6, 3)
    elif vis == "interp":
        assert png(first).shape == (R + 4, 4 * (R + 2) + 2, 3)
    elif vis == "bg_nobg":
        assert png(first).shape == (R + 4, 2 * R + 6, 3)
    else:
        assert np.load(first).shape == (6, 6, 6) and np.load(first).dtype == np.float32
        assert png(folder / "seed-0003.png").shape == (R, R, 3)
        assert png(folder / "seed-0003_density.png").shape == (6, 3 * 6 + 4)  # front, side, top
    if vis in ("video", "video_grid", "interp_video"):
        assert rec["camera"] == "front_circle_zoom"


def test_other_families(tmp_path):
    rec = visualize("pigan-tiny", tmp_path, "video_grid", "--num-seeds", "3", "--seeds", "5", "--nrow", "2",
                    "--videos-per-grid", "2", "--frames", "2", "--num-samples", "4")
    assert rec["seeds"] == [5, 6, 7]
    assert [iio.imread(f, index=None).shape for f in rec["files"]] == [(2, R + 4, 2 * R + 6, 3), (2, R + 4, R + 4, 3)]
    rec = visualize("eg3d-tiny", tmp_path, "front_grid", "--seeds", "1", "--num-samples", "4")
    side = 2 * R  # eg3d-tiny super-resolves 2x: the main view and the row are as wide as its image + 6
    assert png(rec["files"][0]).shape == (2 + side + 2 + side // 2 + 4, side + 6, 3)


def test_the_other_tools_take_the_degree_zoom_path(tmp_path):
    assert main(["video", "--checkpoint", "pigan-tiny", "--out", str(tmp_path), "--path", "front_circle_zoom",
                 "--frames", "2", "--resolution", "8", "--num-samples", "3", "--name", "v.gif", "--no-progress"]) == 0
    assert iio.imread(tmp_path / "v.gif", index=None).shape[:3] == (2, 8, 8)


def test_interp_endpoints_are_the_seeds_own_renders(tmp_path):
    # density renders each seed from the view interp uses (pitch pi/8 above the mean): the same pixels.
    interp = png(visualize("epigraf-tiny", tmp_path, "interp", "--seeds", "0", "1", "--num-interp-steps", "3")
                 ["files"][0])
    density = visualize("epigraf-tiny", tmp_path, "density", "--seeds", "0", "1", "--voxel-res", "2")
    ends = [interp[2:2 + R, 2:2 + R], interp[2:2 + R, 2 + 2 * (R + 2):2 + 2 * (R + 2) + R]]
    own = [png(tmp_path / "density" / f"seed-000{s}.png") for s in (0, 1)]
    assert np.array_equal(ends[0], own[0]) and np.array_equal(ends[1], own[1])
    middle = interp[2:2 + R, 2 + R + 2:2 + 2 * R + 2]
    assert not np.array_equal(middle, own[0]) and not np.array_equal(middle, own[1])
    assert density["camera"] is None


def test_bg_nobg_differs_only_where_the_background_shows(sphere_ckpt, tmp_path):
    import aware3d

    G = aware3d.load(sphere_ckpt)
    opts = VisualizeOptions(checkpoint=sphere_ckpt, out=str(tmp_path), vis="bg_nobg", seeds=[3], resolution=R,
                            progress=False)
    ctx = make_context(G, opts, None)
    with torch.no_grad():
        with_bg, without = bg_nobg_renders(ctx, ctx.ws[:1])
    # with: fg + bg * T_last; without: fg + white * (1 - opacity); T_last and 1 - opacity say where it shows.
    diff = (with_bg.image - without.image).abs()
    bound = with_bg.background.abs() * with_bg.final_transmittance + (1 - without.opacity)
    assert torch.all(diff <= bound + 1e-5)
    assert float(diff.max()) > 1e-2 and without.background is None and with_bg.background is not None
    rec = visualize(sphere_ckpt, tmp_path, "bg_nobg", "--seeds", "3")
    grid = png(rec["files"][0])
    assert np.array_equal(grid[2:2 + R, 2:2 + R], to_uint8(with_bg.image[0]))
    assert np.array_equal(grid[2:2 + R, 4 + R:4 + 2 * R], to_uint8(without.image[0]))
    # An opaque foreground hides the background: then the two renders agree.
    with torch.no_grad():
        G.decoder.output.bias[-1] = 1e4
        opaque_bg, opaque = bg_nobg_renders(ctx, ctx.ws[:1])
    assert float(opaque_bg.final_transmittance.max()) < 1e-12
    assert torch.allclose(opaque_bg.image, opaque.image, atol=1e-6, rtol=0)


@pytest.mark.parametrize("args, message", [
    (["--checkpoint", "pigan-tiny", "--vis", "bg_nobg"], "separate background model (families: epigraf); this pigan"),
    (["--vis", "nope"], "unknown --vis 'nope'; valid: front_grid, video, video_grid, interp, interp_video, density, "
                        "bg_nobg, minigrid"),
    (["--vis", "interp", "--seeds", "0", "1", "2"], "even number of seeds, got 3"),
    (["--vis", "interp", "--camera", "line"], "fixed official views; drop --camera line"),
    (["--vis", "video", "--camera", "spiral"], "unknown camera path 'spiral'; valid: "),
    (["--vis", "front_grid", "--frames", "4"], "camera path points has a fixed set of views; drop --frames"),
    (["--vis", "front_grid", "--camera", "line", "--frames", "1"], "at least 2 views"),
])
def test_refusals_name_the_problem(args, message, tmp_path, capsys):
    base = ["visualize", "--checkpoint", "epigraf-tiny", "--out", str(tmp_path), "--resolution", "8", "--no-progress"]
    assert main(base + args) == 2
    assert message in capsys.readouterr().err


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["visualize", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--vis", "--camera", "--seeds", "--num-seeds", "--frames", "--fps", "--num-interp-steps",
                 "--videos-per-grid", "--nrow", "--tile", "--voxel-res", "--white-back", "--checkpoint"):
        assert flag in text
    assert "front_circle_zoom" in text and "bg_nobg" in text
