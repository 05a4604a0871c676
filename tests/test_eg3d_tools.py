"""The tools on EG3D: tri-plane caching in render/video/interpolate, gen_samples' official shape grid, and
--checkpoint with EG3D preset names and the official pickle."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import aware3d
from aware3d.cameras import get_camera_path
from aware3d.cli.main import main
from aware3d.export.shapes import read_mrc
from aware3d.io.media import make_grid, to_uint8
from aware3d.models.eg3d.shapes import OFFICIAL_PAD_VALUE, official_shape_points, official_sigma_volume
from aware3d.tools import interpolate as interpolate_tool
from aware3d.tools import video as video_tool
from aware3d.tools.common import LatentViews

from .conftest import require_reference

pytestmark = pytest.mark.usefixtures("one_thread")



@pytest.fixture(scope="module")
def eg3d_tiny():
    G = aware3d.load("eg3d-tiny", seed=3)
    # A fresh model has zero noise strengths: make the backbone noise matter, so a wrong noise mode shows.
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.5)
    return G


def count_backbone_rows(G) -> list[int]:
    """Batch size of every backbone (tri-plane) synthesis call on ``G`` from now on."""
    rows: list[int] = []
    G.backbone.synthesis.register_forward_hook(lambda module, args, output: rows.append(int(args[0].shape[0])))
    return rows


# ----------------------------------------------------------------------------------- plane caching

def test_latent_views_match_synthesis_for_eg3d_and_pigan(eg3d_tiny):
    G = eg3d_tiny
    assert G.capabilities.plane_cache and not aware3d.load("pigan-tiny").capabilities.plane_cache
    cfg = G.eval_render_config(4)
    with torch.no_grad():
        w = G.mapping(G.z_from_seeds([0, 1]), 0.7)
        views = LatentViews(G, w, resolution=8, render=cfg, normals=True)
        for yaw in (1.2, 1.57, 1.9):
            cams = G.cameras([yaw, yaw + 0.1], [1.5, 1.6])
            # EG3D's inference sampling is random (jitter, importance uniforms): LatentViews seeds it (seed 0)
            # for every call, so frames do not flicker; the reference gets the same draws.
            cached = views.render(cams)
            direct = G.synthesis(w, cams, resolution=8, render=cfg, normals=True, noise_mode=G.config.eval_noise_mode,
                                 generator=torch.Generator().manual_seed(0))
            assert cached.image.shape == (2, 3, G.config.img_resolution, G.config.img_resolution)
            for name in ("image", "image_raw", "depth", "opacity", "normals"):
                assert torch.allclose(getattr(cached, name), getattr(direct, name), atol=1e-5), name
    # The cache is the const-noise planes: another noise mode gives other images, so the match above is real.
    with torch.no_grad():
        other = G.synthesis(w, cams, resolution=8, render=cfg, noise_mode="none",
                            generator=torch.Generator().manual_seed(0)).image
    assert (other - cached.image).abs().max() > 1e-4

    P = aware3d.load("pigan-tiny")
    pcfg = P.eval_render_config(4)
    with torch.no_grad():
        pw = P.mapping(P.z_from_seeds([0]), 0.7)
        cams = P.cameras([1.4], [1.5])
        a = LatentViews(P, pw, resolution=8, render=pcfg).render(cams).image
        b = P.synthesis(pw, cams, resolution=8, render=pcfg, fast=True).image
    assert torch.equal(a, b)


def test_video_runs_the_backbone_once_and_equals_per_frame_synthesis(tmp_path, monkeypatch, eg3d_tiny):
    G = eg3d_tiny
    rows = count_backbone_rows(G)
    written = []
    monkeypatch.setattr(video_tool, "load_model", lambda opts: G)
    monkeypatch.setattr(video_tool, "write_video", lambda target, frames, fps: written.extend(list(frames)))
    opts = video_tool.VideoOptions(checkpoint="eg3d-tiny", out=str(tmp_path), seeds=[5], grid="1x2", frames=3,
                                   resolution=8, num_samples=4, name="v.gif")
    video_tool.run(opts)
    assert rows == [2]  # one backbone call for the video, one row per seed
    assert len(written) == 3
    # Every frame equals a plain synthesis of the same seeds and camera (same const noise).
    rows.clear()
    path = get_camera_path("front_circle", G.config.pose, 3)
    cfg = G.eval_render_config(4)
    with torch.no_grad():
        w = G.mapping(G.z_from_seeds([5, 6]), G.config.eval_truncation_psi)
        for i, frame in enumerate(written):
            cams = G.cameras([float(path.yaw[i])] * 2, [float(path.pitch[i])] * 2, float(path.fov_scale[i]))
            # Every frame uses the same sampling draws (seed 0): no flicker from the jittered samples.
            img = G.synthesis(w, cams, resolution=8, render=cfg, generator=torch.Generator().manual_seed(0)).image
            assert np.array_equal(frame, to_uint8(make_grid(img, nrow=2, padding=2)))
    assert rows == [2, 2, 2]  # the reference, by contrast, recomputes the planes per frame


def test_interpolate_on_eg3d_one_backbone_call_per_frame(tmp_path, monkeypatch, eg3d_tiny):
    G = eg3d_tiny
    rows = count_backbone_rows(G)
    written = []
    monkeypatch.setattr(interpolate_tool, "load_model", lambda opts: G)
    monkeypatch.setattr(interpolate_tool, "write_video", lambda target, frames, fps: written.extend(list(frames)))
    opts = interpolate_tool.InterpolateOptions(checkpoint="eg3d-tiny", out=str(tmp_path), seeds=[0, 1],
                                               frames_per_seed=2, resolution=8, num_samples=4, name="i.gif")
    interpolate_tool.run(opts)
    assert rows == [1, 1, 1, 1]
    S = G.config.img_resolution
    assert [f.shape for f in written] == [(S, S, 3)] * 4
    assert not np.array_equal(written[0], written[1])  # the latent moves


# ---------------------------------------------------------------------------- --checkpoint on EG3D

@pytest.mark.parametrize("verb,args", [
    ("render", ["--seeds", "0", "--yaw", "-0.2", "0.2", "--resolution", "8", "--num-samples", "4"]),
    ("video", ["--frames", "2", "--resolution", "8", "--num-samples", "4", "--name", "v.gif"]),
    ("interpolate", ["--seeds", "0", "1", "--frames-per-seed", "1", "--resolution", "8", "--num-samples", "4",
                     "--name", "i.gif"]),
    ("shapes", ["--grid", "12", "--level", "mean", "--grid-layout", "official"]),
])
def test_tools_accept_an_eg3d_preset_name(tmp_path, verb, args):
    assert main([verb, "--checkpoint", "eg3d-tiny", "--out", str(tmp_path), *args]) == 0
    record = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert record["model"]["family"] == "eg3d" and record["options"]["checkpoint"] == "eg3d-tiny"
    if verb == "render":
        from PIL import Image
        S = aware3d.load("eg3d-tiny").config.img_resolution
        assert Image.open(tmp_path / "seed0000_view01.png").size == (S, S)
        assert Image.open(tmp_path / "seed0000_view01_depth.png").size == (8, 8)  # neural rendering resolution


def test_tools_accept_the_official_pickle(tmp_path):
    pkl = require_reference("eg3d", "network-snapshot.pkl")
    assert main(["render", "--checkpoint", str(pkl), "--out", str(tmp_path / "r"), "--seeds", "0", "--yaw", "0",
                 "--resolution", "8", "--num-samples", "4", "--no-normals"]) == 0
    record = json.loads((tmp_path / "r" / "render.json").read_text())
    assert record["model"]["family"] == "eg3d" and record["model"]["config"]["img_resolution"] == 512
    assert main(["shapes", "--checkpoint", str(pkl), "--out", str(tmp_path / "s"), "--grid", "16",
                 "--level", "mean", "--formats", "ply"]) == 0
    assert (tmp_path / "s" / "seed0000.ply").is_file()


# --------------------------------------------------------------------------- official shape grid

def test_official_grid_points_by_hand():
    # gen_samples' create_samples(3, cube_length=1): flat index i, z = i % 3, y = (i / 3) % 3, x = (i / 9) % 3 in
    # float (not integer) division, then * h + o with h = 0.5, o = -0.5.
    pts = official_shape_points(3, 1.0)
    expected = []
    for i in range(27):
        expected.append([((i / 3) / 3) % 3 * 0.5 - 0.5, (i / 3) % 3 * 0.5 - 0.5, (i % 3) * 0.5 - 0.5])
    assert torch.allclose(pts, torch.tensor(expected), atol=1e-6)
    # Not a regular grid: flat index 5 = (ix 0, iy 1, iz 2) sits at y = -0.5 + (1 + 2/3) * 0.5.
    assert pts[5].tolist() == pytest.approx([-0.5 + (5 / 9) * 0.5, -0.5 + (5 / 3) * 0.5, 0.5])
    # The last point passes the box in x: (26 / 9) % 3 = 2.888...
    assert pts[26, 0].item() == pytest.approx(-0.5 + 26 / 9 * 0.5)
    # box_warp scales and centres it (the ShapeNet preset's 1.6).
    assert torch.allclose(official_shape_points(3, 1.6), pts * 1.6, atol=1e-6)


def test_official_volume_flip_and_border_by_hand(eg3d_tiny):
    G = eg3d_tiny
    with torch.no_grad():
        w = G.mapping(G.z_from_seeds([2]), 0.7)
        planes = G.planes(w, noise_mode="const")
        n = 10  # border int(30 * 10 / 256) = 1 voxel
        raw = official_sigma_volume(G, w, n, raw=True, planes=planes)
        points = official_shape_points(n, G.config.box_warp)
        direct = G.sample_planes(planes, points[None])[1][0, :, 0].reshape(n, n, n)
        final = official_sigma_volume(G, w, n, planes=planes)
    assert torch.equal(raw, direct)
    assert torch.equal(final[1:-1, 1:-1, 1:-1], raw.flip(0)[1:-1, 1:-1, 1:-1])
    for axis in range(3):
        for i in (0, n - 1):
            assert bool((final.select(axis, i) == OFFICIAL_PAD_VALUE).all())
    # gen_samples' trim with pad = 0 (N < 9) is numpy's sigmas[-0:] = -1000: the whole volume.
    small = official_sigma_volume(G, w, 4, planes=planes)
    assert bool((small == OFFICIAL_PAD_VALUE).all())


def test_shapes_official_layout_mrc_holds_gen_samples_array(tmp_path, eg3d_tiny, monkeypatch):
    from aware3d.tools import shapes as shapes_tool
    G = eg3d_tiny
    monkeypatch.setattr(shapes_tool, "load_model", lambda opts: G)
    n = 12
    opts = shapes_tool.ShapesOptions(checkpoint="eg3d-tiny", out=str(tmp_path), seeds=[4], grid=n, level="mean",
                                     formats=["ply"], grid_layout="official")
    record = shapes_tool.run(opts)
    with torch.no_grad():
        w = G.mapping(G.z_from_seeds([4]), G.config.eval_truncation_psi)
        expected = official_sigma_volume(G, w, n).numpy()
    # mrcfile.new_mmap(shape=sigmas.shape).data[:] = sigmas: the file body is the array in C order.
    raw = (tmp_path / "seed0004.mrc").read_bytes()
    assert raw[1024:] == np.ascontiguousarray(expected, dtype="<f4").tobytes()
    vol, header = read_mrc(tmp_path / "seed0004.mrc")
    assert np.array_equal(vol.transpose(2, 1, 0), expected)
    entry = record["shapes"][0]
    assert entry["grid_layout"] == "official" and entry["vertices"] > 0
    # 'mean' is the mean of the untrimmed voxels (the -1000 border would drag it below every density).
    pad = 1
    assert entry["level"] == pytest.approx(float(expected[pad:-pad, pad:-pad, pad:-pad].mean()), rel=1e-5)
    # Too small for the official trim: a clear error instead of an all -1000 volume.
    opts.grid = 8
    with pytest.raises(ValueError, match="grid-layout regular"):
        shapes_tool.run(opts)


def test_shapes_official_layout_matches_the_reference_fixture(tmp_path, monkeypatch):
    root = require_reference("eg3d")
    fx = torch.load(root / "fixture.pt", weights_only=True)
    from aware3d.tools import shapes as shapes_tool
    G = aware3d.load(root / "network-snapshot.pkl")
    # The fixture's z (numpy RandomState(1)) instead of our per-seed z; everything else is the tool's own path.
    monkeypatch.setattr(shapes_tool, "load_model", lambda opts: G)
    monkeypatch.setattr(G, "z_from_seeds", lambda seeds: fx["z"][:1].float())
    opts = shapes_tool.ShapesOptions(checkpoint="pickle", out=str(tmp_path), seeds=[0], grid=32, level="10",
                                     formats=["ply"], grid_layout="official", truncation_psi=0.7)
    shapes_tool.run(opts)
    vol, _ = read_mrc(tmp_path / "seed0000.mrc")
    assert np.abs(vol.transpose(2, 1, 0) - fx["shape32_sigma_final"].numpy()).max() <= 1e-3
