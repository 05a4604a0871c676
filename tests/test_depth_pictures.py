"""Depth pictures that show shape: a robust colour range, one colour for a flat sheet, a labelled colour bar, and the
demo's and render tool's pictures built from them."""

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from aware3d.cli.main import main
from aware3d.io.depth_pictures import (BACKGROUND, DepthRange, attach_colorbar, colorbar_ticks, colorize_depth_robust,
                                       depth_colorbar, normals_picture, robust_depth_range)
from aware3d.io.media import apply_colormap, colorize_depth


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, ...) channel-first RGB -> brightness, the channel axis at dim -3 removed."""
    r, g, b = rgb.unbind(-3)
    return 0.299 * r + 0.587 * g + 0.114 * b


def _head(res: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """(1,1,res,res) depth 0.9..1.1 on a disk of opacity 1, the far plane (5.0) with opacity 0 around it."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, res), torch.linspace(-1, 1, res), indexing="ij")
    inside = (xs ** 2 + ys ** 2 < 0.8).float()[None, None]
    depth = torch.where(inside > 0, 0.9 + 0.2 * (xs + 1)[None, None] / 2, torch.tensor(5.0))
    return depth, inside


def test_a_few_outliers_do_not_flatten_the_foreground_colours():
    depth, opacity = _head()
    fg = opacity[0, 0] > 0
    outliers = fg.nonzero()[:5]  # 5 of ~620 foreground pixels at 1e3: a floater far behind the head
    depth[0, 0, outliers[:, 0], outliers[:, 1]] = 1e3
    bulk = fg.clone()
    bulk[outliers[:, 0], outliers[:, 1]] = False
    ends = apply_colormap(torch.tensor([1.0, 0.0]))  # (2, 3): the map's bright and dark ends
    full_span = float(_luma(ends[0, :, None, None]) - _luma(ends[1, :, None, None]))

    rgb = colorize_depth_robust(depth, opacity)
    bulk_luma = _luma(rgb[0])[bulk]
    assert float(bulk_luma.max() - bulk_luma.min()) > 0.9 * full_span  # the head still spans the map
    assert torch.all(rgb[0, :, ~fg] == torch.tensor(BACKGROUND)[:, None])  # background grey, not a depth colour
    # The min..max colouring squeezes the head into one end of the map: what the robust range is for.
    flat = colorize_depth(depth[:, 0], mask=opacity[:, 0] > 0.5)
    flat_luma = _luma(flat[0])[bulk]
    assert float(flat_luma.max() - flat_luma.min()) < 0.05 * full_span


def test_a_constant_depth_sheet_is_one_colour():
    depth = torch.full((2, 1, 8, 8), 0.95)
    opacity = torch.ones(2, 1, 8, 8)
    opacity[:, :, :2] = 0.0
    rgb = colorize_depth_robust(depth, opacity)
    sheet = rgb[:, :, 2:].permute(1, 0, 2, 3).reshape(3, -1)
    assert torch.all(sheet == sheet[:, :1])
    assert torch.allclose(sheet[:, 0], apply_colormap(torch.tensor(0.5)), atol=1e-5)  # the map's middle
    r = robust_depth_range(depth, opacity)
    assert r.near < 0.95 < r.far and r.far - r.near == pytest.approx(2e-3)
    labels = [text for _, text in colorbar_ticks(r)]
    assert len(set(labels)) == 3 and labels[1] == "0.9500"


def test_the_range_is_the_foreground_percentiles():
    # Foreground 0, 1, ..., 10 (shuffled); background pixels at 1e3 must not count.
    values = torch.tensor([7.0, 2, 9, 0, 4, 10, 1, 8, 3, 6, 5, 1e3, 1e3, 1e3, 1e3, 1e3]).view(1, 1, 4, 4)
    opacity = torch.tensor([1.0] * 11 + [0.2] * 5).view(1, 1, 4, 4)
    r = robust_depth_range(values, opacity)
    # numpy's linear percentile over the 11 sorted values: rank 0.02 * 10 = 0.2 and 0.98 * 10 = 9.8.
    assert (r.near, r.far) == pytest.approx((0.2, 9.8))
    assert robust_depth_range(values, opacity, percentiles=(0, 100)) == DepthRange(0.0, 10.0)
    # An empty foreground falls back to every pixel: 16 values, rank 0.02 * 15 = 0.3 -> 0.3.
    empty = robust_depth_range(values, torch.zeros_like(opacity))
    assert empty.near == pytest.approx(0.3) and empty.far == pytest.approx(1e3)
    # Non-finite depths are never foreground.
    values[0, 0, 0, 0] = float("inf")
    assert robust_depth_range(values, opacity, percentiles=(0, 100)).far == 10.0
    with pytest.raises(ValueError, match="percentiles"):
        robust_depth_range(values, opacity, percentiles=(98, 2))
    with pytest.raises(ValueError, match=r"\(B,1,H,W\)"):
        robust_depth_range(values[0], opacity[0])


def test_the_colour_bar_matches_its_range_and_labels():
    r = DepthRange(0.9, 1.1)
    ticks = colorbar_ticks(r)
    assert [text for _, text in ticks] == ["0.90", "1.00", "1.10"]
    assert ticks[0][0] == 0.9 and ticks[-1][0] == 1.1 and ticks[1][0] == pytest.approx(1.0)
    assert [text for _, text in colorbar_ticks(DepthRange(0.9, 0.915))] == ["0.9000", "0.9075", "0.9150"]

    width = 161
    bar = depth_colorbar(r, width, gradient_height=8)
    assert bar.shape[0] == 3 and bar.shape[2] == width and bar.shape[1] > 8 + 10
    # Column x of the gradient is the colour of depth near + x / (width - 1) * (far - near).
    columns = torch.tensor([0, 80, 160])
    depths = (0.9 + columns / 160 * 0.2).view(1, 1, 1, 3)
    expected = colorize_depth_robust(depths, depth_range=r)[0, :, 0]
    assert torch.allclose(bar[:, 4, columns], expected, atol=1 / 255)
    # White tick marks under the three tick depths, and white label pixels under each of them.
    assert torch.all(bar[:, 9, columns] == 1.0)
    labels = bar[:, 11:, :].min(dim=0).values > 0.7  # anti-aliased white text
    for lo, hi in ((0, 30), (65, 95), (131, 161)):
        assert bool(labels[:, lo:hi].any()), (lo, hi)
    # A bar too narrow for three labels keeps the end ones only.
    assert len(colorbar_ticks(r, 2)) == 2 and depth_colorbar(r, 40).shape[2] == 40

    picture = torch.zeros(3, 20, width)
    stacked = attach_colorbar(picture, r)
    assert stacked.shape == (3, 20 + bar.shape[1], width) and torch.equal(stacked[:, 20:], bar)


def test_normals_picture_greys_the_background():
    normals = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    opacity = torch.tensor([[1.0, 0.0], [1.0, 1.0]]).view(1, 1, 2, 2)
    pic = normals_picture(normals, opacity)
    assert pic[0, :, 0, 0].tolist() == [0.5, 0.5, 1.0] and pic[0, :, 0, 1].tolist() == list(BACKGROUND)
    assert torch.all(normals_picture(normals, opacity * 0.3)[0, 2] == 1.0)  # nothing opaque: all shown


def test_a_batch_without_foreground_is_coloured_whole():
    """A fog nowhere opaque (a fresh model) still shows its depth, over the range of every pixel."""
    depth = torch.linspace(2.0, 3.0, 16).view(1, 1, 4, 4)
    rgb = colorize_depth_robust(depth, torch.full_like(depth, 0.3))
    assert torch.equal(rgb, colorize_depth_robust(depth))
    assert not torch.any(torch.all(rgb == torch.tensor(BACKGROUND).view(1, 3, 1, 1), dim=1))


def test_render_tool_writes_robust_depth_and_its_bar(tmp_path):
    assert main(["render", "--checkpoint", "pigan-tiny", "--out", str(tmp_path), "--seeds", "0", "--yaw", "0",
                 "--resolution", "16", "--num-samples", "4", "--no-normals"]) == 0
    depth = np.asarray(Image.open(tmp_path / "seed0000_view00_depth.png"))
    assert depth.shape == (16, 16, 3)
    bar = np.asarray(Image.open(tmp_path / "seed0000_view00_depth_bar.png"))
    assert bar.shape[1] == 160 and bar.shape[0] > 8
    # Every depth pixel is a colour of the bar's gradient or the background grey.
    palette = np.concatenate([bar[4], np.full((1, 3), round(BACKGROUND[0] * 255))]).astype(int)
    distance = np.abs(depth.reshape(-1, 1, 3).astype(int) - palette[None]).sum(-1).min(1)
    assert distance.max() <= 6


@pytest.mark.parametrize("preset", ["pigan-tiny", "eg3d-tiny"])
def test_demo_pictures_show_depth_normals_and_the_colour_bar(tmp_path, preset):
    """The demo's pictures at its test's settings (32 px, 3 video frames) on a fresh tiny model (the end-to-end
    run is tests/test_training.py's demo test): samples.png rows image / depth / normals per seed with the bar
    under them; the orbit video has the depth beside the images, coloured over the recorded range. EG3D renders
    its depth and normals below the image size, and they are scaled up to it."""
    import aware3d
    from aware3d.tools import demo, video

    G = aware3d.load(preset)
    res = 32
    path, depth_range = demo._sample_grid(G, tmp_path / "samples.png", [0, 1, 2, 3], [-0.45, -0.225, 0.0, 0.225, 0.45],
                                          res)
    size = G.config.img_resolution if preset.startswith("eg3d") else res  # EG3D's output size is fixed
    tile = size + 2
    bar_height = depth_colorbar(depth_range, 5 * tile + 2).shape[1]
    grid = np.asarray(Image.open(path))
    assert grid.shape == (4 * 3 * tile + 2 + bar_height, 5 * tile + 2, 3)  # 4 seeds x 3 rows, 5 yaws
    yellow = (apply_colormap(torch.tensor(1.0)).numpy() * 255).round()
    assert np.abs(grid[4 * 3 * tile + 2, 0] - yellow).max() <= 1  # the bar starts at the near colour
    # The depth row holds depth colours and grey only; the normal row differs from it.
    depth_tile = grid[tile + 2:2 * tile, 2:tile].reshape(-1, 3).astype(int)
    palette = np.concatenate([grid[4 * 3 * tile + 6], [[128, 128, 128]]]).astype(int)
    assert np.abs(depth_tile[:, None] - palette[None]).sum(-1).min(1).max() <= 6
    assert not np.array_equal(grid[2 * tile + 2:3 * tile, 2:tile], grid[tile + 2:2 * tile, 2:tile])

    opts = video.VideoOptions(checkpoint=preset, out=str(tmp_path), seeds=[0, 1, 2, 3], grid="2x2",
                              path="front_circle", frames=3, resolution=res, progress=False, name="orbit.gif")
    record = demo._orbit_video(opts, depth_range)
    frames = iio.imread(record["file"], index=None)
    half = 2 * tile + 2
    assert frames.shape[:3] == (3, half + depth_colorbar(depth_range, half).shape[1], 2 * half)  # images | depths
    assert record["depth_range"] == {"near": depth_range.near, "far": depth_range.far}
