"""Tests for aware3d.io.media: image conversion, grids, colour maps, video and JSON."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import imageio
import numpy as np
import pytest
import torch
from PIL import Image

from aware3d.io.media import (
    colorize_depth,
    make_grid,
    normals_to_image,
    save_image,
    to_uint8,
    write_json,
    write_video,
)

# ----------------------------------------------------------------------------- to_uint8


def test_to_uint8_maps_value_range_ends_and_clamps() -> None:
    x = torch.tensor([-1.0, 1.0, 0.0, -5.0, 5.0, float("nan")]).view(1, 1, 6).expand(3, 1, 6)
    out = to_uint8(x)
    assert out.dtype == np.uint8 and out.shape == (1, 6, 3)
    assert out[0, :, 0].tolist() == [0, 255, 128, 0, 255, 0]
    # Channels-last with the channel order preserved.
    rgb = torch.stack([torch.full((2, 2), -1.0), torch.zeros(2, 2), torch.ones(2, 2)])
    assert to_uint8(rgb)[0, 0].tolist() == [0, 128, 255]


def test_to_uint8_batch_custom_range_and_single_channel() -> None:
    x = torch.linspace(0, 1, 5).view(1, 1, 1, 5).repeat(2, 1, 3, 1)
    out = to_uint8(x, value_range=(0, 1))
    assert out.shape == (2, 3, 5, 1)
    assert out[1, 2, :, 0].tolist() == [0, 64, 128, 191, 255]
    with pytest.raises(ValueError):
        to_uint8(torch.zeros(2, 4, 4))  # 2 channels


# ----------------------------------------------------------------------------- make_grid


def test_make_grid_layout_and_padding() -> None:
    # 5 images of 4x6, values = image index + 1, so every tile is identifiable.
    imgs = torch.arange(1, 6, dtype=torch.float32).view(5, 1, 1, 1).expand(5, 3, 4, 6)
    grid = make_grid(imgs, nrow=3, padding=2, pad_value=-1.0)
    assert grid.shape == (3, 2 * (4 + 2) + 2, 3 * (6 + 2) + 2)
    for k in range(5):
        row, col = divmod(k, 3)
        y0, x0 = 2 + row * 6, 2 + col * 8
        assert torch.all(grid[:, y0 : y0 + 4, x0 : x0 + 6] == k + 1)
    # Border rows/cols and the empty sixth cell keep pad_value.
    assert torch.all(grid[:, :2] == -1) and torch.all(grid[:, :, :2] == -1)
    assert torch.all(grid[:, 8:12, 18:24] == -1)
    # Total image pixels preserved: 5 tiles * 24 px * 3 ch, everything else is padding.
    assert int((grid != -1).sum()) == 5 * 4 * 6 * 3


def test_make_grid_default_is_square_and_no_padding() -> None:
    imgs = torch.rand(4, 1, 3, 3)
    grid = make_grid(imgs, padding=0)
    assert grid.shape == (1, 6, 6)
    assert torch.equal(grid[:, 3:, :3], imgs[2])
    assert make_grid(torch.rand(3, 3, 5, 5), nrow=8, padding=1).shape == (3, 7, 19)


# ----------------------------------------------------------------------------- save_image


def test_save_image_writes_png_of_right_size(tmp_path: Path) -> None:
    img = torch.rand(3, 10, 14) * 2 - 1
    out = save_image(tmp_path / "a" / "b" / "img.png", img)
    with Image.open(out) as pil:
        assert pil.format == "PNG" and pil.size == (14, 10) and pil.mode == "RGB"
        assert np.array_equal(np.asarray(pil), to_uint8(img))

    batch = torch.full((5, 1, 8, 8), 1.0)
    out = save_image(tmp_path / "grid.png", batch, nrow=2)
    with Image.open(out) as pil:
        assert pil.mode == "L" and pil.size == (2 * 10 + 2, 3 * 10 + 2)
        arr = np.asarray(pil)
    assert arr[0, 0] == 0 and arr[2, 2] == 255  # black border, white tile

    out = save_image(tmp_path / "single.png", torch.zeros(1, 3, 7, 9), value_range=(0, 1))
    with Image.open(out) as pil:
        assert pil.size == (9, 7)  # a batch of one is saved unpadded


# ----------------------------------------------------------------------------- depth / normals


def test_colorize_depth_shape_range_order_and_mask() -> None:
    depth = torch.linspace(1.0, 3.0, 20).view(1, 4, 5).repeat(2, 1, 1)
    mask = torch.ones(2, 4, 5, dtype=torch.bool)
    mask[1, 0, 0] = False
    mask[0, 3, 4] = False
    rgb = colorize_depth(depth, mask=mask)
    assert rgb.shape == (2, 3, 4, 5) and rgb.dtype == torch.float32
    assert rgb.min() >= 0 and rgb.max() <= 1
    assert torch.all(rgb[1, :, 0, 0] == 0) and torch.all(rgb[0, :, 3, 4] == 0)
    # Perceptual map: brightness is monotonic in depth (near bright, far dark).
    luma = (0.299 * rgb[0, 0] + 0.587 * rgb[0, 1] + 0.114 * rgb[0, 2]).flatten()[:-1]
    assert torch.all(luma[1:] < luma[:-1])
    # Explicit near/far and 2-D input; masked-out values do not affect the scale.
    d2 = torch.tensor([[1.0, 2.0], [100.0, 3.0]])
    m2 = torch.tensor([[True, True], [False, True]])
    a = colorize_depth(d2, mask=m2)
    b = colorize_depth(d2, near=1.0, far=3.0, mask=m2)
    assert a.shape == (1, 3, 2, 2) and torch.allclose(a, b)
    assert torch.all(a[0, :, 1, 0] == 0)
    # All masked out and a flat map are handled without NaNs.
    assert torch.all(colorize_depth(d2, mask=torch.zeros(2, 2, dtype=torch.bool)) == 0)
    assert torch.isfinite(colorize_depth(torch.ones(3, 3))).all()


def test_normals_to_image() -> None:
    n = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    img = normals_to_image(n)
    assert img.shape == (2, 3, 2, 2)
    assert img[0, :, 0, 0].tolist() == [0.0, 0.5, 1.0]


# ----------------------------------------------------------------------------- video


def _frames(n: int, h: int, w: int):
    # A generator, to exercise the streaming path.
    for i in range(n):
        frame = np.zeros((h, w, 3), np.uint8)
        frame[:, : 3 * (i + 1)] = (200, 60, 10)
        yield frame


# imageio's ffmpeg *reader* leaves its pipes to the garbage collector; not our writer.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_write_video_mp4_odd_size_pads_to_even(tmp_path: Path) -> None:
    out = write_video(tmp_path / "sub" / "v.mp4", _frames(10, 31, 29), fps=10)
    reader = imageio.get_reader(out)
    try:
        frames = [f for f in reader]
        fps = reader.get_meta_data()["fps"]
    finally:
        reader.close()
    assert len(frames) == 10 and fps == pytest.approx(10)
    assert frames[0].shape == (32, 30, 3)
    # Content survives lossy coding: left stripe coloured, right side black.
    assert frames[9][:31, :25].mean(axis=(0, 1))[0] > 150
    assert frames[0][:31, 10:29].max() < 40


def test_write_video_gif(tmp_path: Path) -> None:
    out = write_video(tmp_path / "v.gif", _frames(7, 30, 30), fps=20)
    with Image.open(out) as gif:
        assert gif.n_frames == 7 and gif.size == (30, 30)
        assert gif.info.get("loop") == 0 and gif.info.get("duration") == 50
    frames = imageio.v3.imread(out, index=None)
    assert frames.shape[:3] == (7, 30, 30)
    assert np.array_equal(frames[3][..., :3], list(_frames(7, 30, 30))[3])


def test_write_video_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.mp4.*\.gif"):
        write_video(tmp_path / "v.avi", _frames(2, 8, 8))
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "empty.gif", iter([]))
    with pytest.raises(TypeError, match="uint8"):
        write_video(tmp_path / "f.gif", [np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(ValueError, match="size"):
        write_video(tmp_path / "s.gif", [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 6, 3), np.uint8)])
    # A failure mid-stream leaves no partial file and keeps a previous video intact.
    assert not (tmp_path / "s.gif").exists()
    previous = write_video(tmp_path / "keep.gif", _frames(2, 8, 8)).read_bytes()
    with pytest.raises(ValueError, match="size"):
        write_video(tmp_path / "keep.gif", [np.zeros((8, 8, 3), np.uint8), np.zeros((4, 4, 3), np.uint8)])
    assert (tmp_path / "keep.gif").read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.gif"]


# ----------------------------------------------------------------------------- json


class _Opaque:
    pass


@dataclasses.dataclass
class _Record:
    name: str
    size: tuple[int, int]
    root: Path
    score: np.float32


def test_write_json_types_and_order(tmp_path: Path) -> None:
    obj = {
        "zeta": 1,
        "alpha": _Record("x", (64, 64), Path("/data/ffhq"), np.float32(0.5)),
        "np_int": np.int64(7),
        "arr": np.arange(3),
        "tensor": torch.tensor(2.5),
        "tvec": torch.tensor([1, 2]),
        "tuple": (1, (2, 3)),
        "flag": np.bool_(True),
    }
    out = write_json(tmp_path / "nested" / "meta.json", obj)
    text = out.read_text()
    assert text.startswith('{\n  "zeta": 1,\n  "alpha"')  # indent 2, insertion order kept
    loaded = json.loads(text)
    assert loaded == {
        "zeta": 1,
        "alpha": {"name": "x", "size": [64, 64], "root": "/data/ffhq", "score": 0.5},
        "np_int": 7,
        "arr": [0, 1, 2],
        "tensor": 2.5,
        "tvec": [1, 2],
        "tuple": [1, [2, 3]],
        "flag": True,
    }


def test_write_json_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "m.json"
    write_json(target, {"v": 1})
    # Unserialisable input fails before touching the old file or leaving temp files.
    with pytest.raises(TypeError):
        write_json(target, {"v": _Opaque()})
    assert json.loads(target.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]

    # The new content reaches the target only through os.replace of a same-dir temp file.
    calls: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src, dst):
        calls.append((str(src), str(dst)))
        assert json.loads(target.read_text()) == {"v": 1}  # old content until the swap
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    write_json(target, {"v": 2})
    assert len(calls) == 1
    src, dst = calls[0]
    assert Path(src).parent == tmp_path and Path(dst) == target
    assert json.loads(target.read_text()) == {"v": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]
