"""Every tool end to end on a fresh tiny model: files of the right size and format, plus a JSON of settings."""

import json
import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

import aware3d
from aware3d.cli.main import main
from aware3d.export.shapes import read_mrc
from aware3d.io.checkpoint import save_generator


def test_render_writes_images_depth_normals_and_settings(tmp_path):
    rc = main(["render", "--checkpoint", "pigan-tiny", "--out", str(tmp_path), "--seeds", "0", "5",
               "--yaw", "-0.3", "0.3", "--resolution", "24", "--num-samples", "6"])
    assert rc == 0
    for seed in (0, 5):
        for v in range(2):
            for suffix in ("", "_depth", "_normal"):
                im = Image.open(tmp_path / f"seed{seed:04d}_view{v:02d}{suffix}.png")
                assert im.size == (24, 24) and im.mode == "RGB"
    grid = Image.open(tmp_path / "grid.png")
    assert grid.size == (2 * 24 + 3 * 2, 2 * 24 + 3 * 2)
    rec = json.loads((tmp_path / "render.json").read_text())
    assert rec["options"]["seeds"] == [0, 5] and rec["model"]["family"] == "pigan"
    assert rec["render"]["num_samples"] == 6 and rec["truncation_psi"] == 0.7
    assert rec["views"][0]["yaw"] == pytest.approx(math.pi / 2 - 0.3)


def test_render_with_camera_path(tmp_path):
    assert main(["render", "--checkpoint", "pigan-tiny", "--out", str(tmp_path), "--seeds", "1",
                 "--path", "orbit", "--frames", "3", "--resolution", "16", "--no-normals"]) == 0
    assert len(list(tmp_path.glob("seed0001_view*_depth.png"))) == 3
    assert not list(tmp_path.glob("*_normal.png"))


@pytest.mark.parametrize("name", ["video.mp4", "video.gif"])
def test_video_grid(tmp_path, name):
    assert main(["video", "--checkpoint", "pigan-tiny", "--out", str(tmp_path), "--grid", "2x2", "--frames", "4",
                 "--resolution", "16", "--num-samples", "4", "--name", name]) == 0
    frames = iio.imread(tmp_path / name, index=None)
    assert frames.shape[0] == 4
    assert frames.shape[1:3] == (2 * 16 + 3 * 2, 2 * 16 + 3 * 2)
    rec = json.loads((tmp_path / name).with_suffix(".json").read_text())
    assert rec["seeds"] == [0, 1, 2, 3]


def test_interpolate(tmp_path):
    assert main(["interpolate", "--checkpoint", "pigan-tiny", "--out", str(tmp_path), "--seeds", "0", "1",
                 "--frames-per-seed", "3", "--resolution", "16", "--num-samples", "4", "--name", "i.gif"]) == 0
    frames = iio.imread(tmp_path / "i.gif", index=None)
    assert frames.shape[:3] == (6, 16, 16)


def test_interpolation_path_hits_the_keys():
    from aware3d.tools.interpolate import interpolation_ws
    keys = torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 3.0]])
    ws = interpolation_ws(keys, 4)
    assert ws.shape == (12, 2)
    assert torch.equal(ws[0], keys[0]) and torch.equal(ws[4], keys[1]) and torch.equal(ws[8], keys[2])
    assert torch.allclose(ws[2], (keys[0] + keys[1]) / 2)


def test_shapes_mrc_and_meshes(tmp_path):
    assert main(["shapes", "--checkpoint", "pigan-tiny", "--out", str(tmp_path), "--seeds", "3", "--grid", "24",
                 "--level", "mean", "--formats", "ply", "obj", "glb"]) == 0
    vol, header = read_mrc(tmp_path / "seed0003.mrc")
    assert vol.shape == (24, 24, 24) and vol.dtype == np.float32
    G = aware3d.load("pigan-tiny")
    # The stored volume is the model's density at the grid corners.
    w = G.mapping(G.z_from_seeds([3]), 0.7)
    with torch.no_grad():
        corner = G.density(w)(torch.tensor([[[-0.15, -0.15, -0.15]]]))
    assert float(vol[0, 0, 0]) == pytest.approx(float(corner), rel=1e-4, abs=1e-5)
    rec = json.loads((tmp_path / "shapes.json").read_text())
    nverts = rec["shapes"][0]["vertices"]
    for fmt in ("ply", "obj", "glb"):
        mesh = trimesh.load(tmp_path / f"seed0003.{fmt}", force="mesh", process=False)
        assert len(mesh.vertices) == nverts
        assert mesh.visual.kind == "vertex"


def test_convert_and_load_round_trip(tmp_path):
    G = aware3d.load("pigan-tiny", seed=4)
    save_generator(G, tmp_path / "ckpt")
    G2 = aware3d.load(tmp_path / "ckpt")
    assert G2.config == G.config and G2.preset == "pigan-tiny"
    for (k, a), (_, b) in zip(G.state_dict().items(), G2.state_dict().items()):
        assert torch.equal(a, b), k
    a = aware3d.render(G, [7], yaw=0.2, resolution=12)
    b = aware3d.render(G2, [7], yaw=0.2, resolution=12)
    assert torch.equal(a.image, b.image) and torch.equal(a.depth, b.depth)
    # And the tools accept our checkpoint folder.
    assert main(["render", "--checkpoint", str(tmp_path / "ckpt"), "--out", str(tmp_path / "r"), "--seeds", "0",
                 "--yaw", "0", "--resolution", "12"]) == 0


def test_bad_inputs_give_clear_errors(tmp_path, capsys):
    assert main(["render", "--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "pigan-celeba" in err  # lists the valid presets
    (tmp_path / "empty").mkdir()
    assert main(["render", "--checkpoint", str(tmp_path / "empty"), "--out", str(tmp_path)]) == 2
    assert "config.json" in capsys.readouterr().err
    assert main(["video", "--checkpoint", "pigan-tiny", "--out", str(tmp_path), "--grid", "2by2"]) == 2
    assert "2x2" in capsys.readouterr().err
    assert main(["shapes", "--checkpoint", "pigan-tiny", "--out", str(tmp_path), "--grid", "8", "--level", "1e9"]) == 2
    assert "level" in capsys.readouterr().err


def test_shapes_percentile_level_and_the_official_geometry_default(tmp_path):
    from aware3d.tools.shapes import resolve_level

    volume = torch.arange(101, dtype=torch.float32)
    assert resolve_level("p97.5", volume, 10.0) == pytest.approx(97.5)
    assert resolve_level(None, volume, "p50") == pytest.approx(50.0) and resolve_level("p0", volume, 1) == 0.0
    for bad in ("p101", "pxx", "percentile"):
        with pytest.raises(ValueError, match="percentile pQ"):
            resolve_level(bad, volume, 10.0)
    # A model whose family meshes at a percentile (extract_geometry.py's 97.5th) by default, at --cube-size 0.3.
    assert aware3d.load("epigraf-tiny").shape_level() == "p97.5"
    assert main(["shapes", "--checkpoint", "epigraf-tiny", "--out", str(tmp_path), "--grid", "16", "--cube-size", "0.3",
                 "--formats", "ply", "--no-progress"]) == 0
    rec = json.loads((tmp_path / "shapes.json").read_text())
    vol, _ = read_mrc(tmp_path / "seed0000.mrc")
    assert rec["bounds"][1] == pytest.approx([0.15] * 3)
    assert rec["shapes"][0]["level"] == pytest.approx(float(np.percentile(vol, 97.5)), rel=1e-5)
    assert rec["shapes"][0]["faces"] > 0
