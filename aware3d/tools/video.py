"""``aware3d video``: a camera path rendered for a grid of seeds, as MP4 or GIF."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from ..cameras import get_camera_path
from ..io.media import make_grid, to_uint8, write_json, write_video
from .common import (LatentViews, ModelOptions, load_model, map_seeds, out_dir, psi, settings_record,
                     tool_condition)


@dataclass
class VideoOptions(ModelOptions):
    seeds: list[int] = field(default_factory=lambda: [0])
    """Latent seeds; with --grid RxC the first R*C seeds fill the grid (more seeds are drawn as seed+i)."""
    grid: str = "1x1"
    """Layout of seeds in each frame, rows x columns (e.g. 2x2)."""
    path: str = "front_circle"
    """Camera path: yaw_sweep, orbit, front_circle, zoom, fixed_points."""
    frames: int = 48
    """Frames in the video."""
    fps: float = 24
    """Frames per second."""
    name: str = "video.mp4"
    """File name inside --out; the suffix chooses the format (.mp4 or .gif)."""


def parse_grid(text: str) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
        assert rows > 0 and cols > 0
    except (ValueError, AssertionError):
        raise ValueError(f"--grid must look like 2x2 (rows x columns), got {text!r}") from None
    return rows, cols


def grid_seeds(seeds: list[int], rows: int, cols: int) -> list[int]:
    need = rows * cols
    seeds = list(seeds)
    while len(seeds) < need:
        seeds.append(seeds[-1] + 1)
    return seeds[:need]


def run(opts: VideoOptions) -> dict:
    G = load_model(opts)
    rows, cols = parse_grid(opts.grid)
    seeds = grid_seeds(opts.seeds, rows, cols)
    path = get_camera_path(opts.path, G.config.pose, opts.frames)
    cfg = G.eval_render_config(opts.num_samples)
    with torch.no_grad():
        w = map_seeds(G, opts, seeds)
        # The latents are fixed for the whole path: EG3D's tri-planes are computed once here, not per frame.
        views = LatentViews(G, w, condition=tool_condition(G, opts), resolution=opts.resolution, render=cfg,
                            lock_view_dependence=opts.lock_view_dependence)

    def frames():
        for i in tqdm(range(len(path)), desc="video", unit="frame", disable=not opts.progress):
            cams = G.cameras([float(path.yaw[i])] * len(seeds), [float(path.pitch[i])] * len(seeds), float(path.fov_scale[i]))
            with torch.no_grad():
                img = views.render(cams).image
            yield to_uint8(make_grid(img, nrow=cols, padding=0 if len(seeds) == 1 else 2))

    target = out_dir(opts) / opts.name
    write_video(target, frames(), fps=opts.fps)
    record = settings_record("video", opts, G, seeds=seeds, truncation_psi=psi(G, opts), render=cfg,
                             file=str(target), frames=len(path))
    write_json(target.with_suffix(".json"), record)
    return record
