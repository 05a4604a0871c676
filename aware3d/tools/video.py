"""``aware3d video``: a camera path rendered for a grid of seeds, as MP4 or GIF; with ``--light-path`` (families with
a light condition) one fixed view under the family's looping light sweep instead."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from ..cameras import get_camera_path
from ..checks import AT_LEAST_ONE, FINITE, POSITIVE, SEED, check_options
from ..errors import OptionError
from ..io.media import make_grid, to_uint8, write_json, write_video
from .common import (LatentViews, ModelOptions, load_model, out_dir, psi, require_condition, settings_record, tool_render_config,
                     tool_band, tool_latents, with_light)


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
    light_path: bool = False
    """A relighting video instead of a camera path: the view stays fixed (--yaw/--pitch) and the light sweeps the
    family's loop for --frames frames (ShadeGAN: dx = -1.5 cos(2 pi t), from the left to the right and back,
    with ambient 0.17, diffuse 0.42, dy 0.3); --path and --light then do not apply. Families with a light
    condition only."""
    yaw: float = 0.0
    """With --light-path: the fixed view's yaw offset from frontal, radians (positive turns the camera toward -x)."""
    pitch: float = 0.0
    """With --light-path: the fixed view's pitch offset from the frontal pose, radians (positive looks from above)."""
    latent: str | None = None
    """A latent file of aware3d invert (latent.safetensors) to film instead of --seeds (--grid 1x1): its latent and
    condition (--light / --class replace theirs); with --light-path, --yaw/--pitch are offsets from its view. Pair
    it with the checkpoint its latent.json names (the tuned generator after --pti)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_options(self, {"seeds": SEED, "frames": AT_LEAST_ONE, "fps": POSITIVE, "yaw": FINITE, "pitch": FINITE})
        parse_grid(self.grid)


def parse_grid(text: str) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
        assert rows > 0 and cols > 0
    except (ValueError, AssertionError):
        raise OptionError(f"--grid must look like 2x2 (rows x columns, each >= 1), got {text!r}") from None
    return rows, cols


def grid_seeds(seeds: list[int], rows: int, cols: int) -> list[int]:
    need = rows * cols
    seeds = list(seeds)
    while len(seeds) < need:
        seeds.append(seeds[-1] + 1)
    return seeds[:need]


def camera_schedule(G, opts: VideoOptions, centre: tuple[float, float] | None = None
                    ) -> tuple[list[tuple[float, float, float]], torch.Tensor | None]:
    """Per frame (yaw, pitch, fov_scale) in pi-GAN angles, and with ``--light-path`` the (frames, 4) light codes
    (the camera then stays at the one view, ``--yaw``/``--pitch`` from ``centre``, default the frontal pose);
    None lights keep the options' condition."""
    if not opts.light_path:
        path = get_camera_path(opts.path, G.config.pose, opts.frames, fov_deg=G.config.fov_deg)
        return [(float(y), float(p), float(s)) for y, p, s in zip(path.yaw, path.pitch, path.fov_scale)], None
    require_condition(G, "light", "--light-path")
    if opts.light is not None:
        raise ValueError("--light-path sweeps the light itself; drop --light (or drop --light-path for one fixed light)")
    yaw0, pitch0 = G.config.pose.frontal() if centre is None else centre
    view = (yaw0 + opts.yaw, pitch0 - opts.pitch, 1.0)
    return [view] * opts.frames, G.light_path(opts.frames)


def run(opts: VideoOptions) -> dict:
    G = load_model(opts)
    rows, cols = parse_grid(opts.grid)
    if opts.latent is not None and rows * cols != 1:
        raise OptionError(f"--latent films one latent: drop --grid {opts.grid} (or use --grid 1x1)")
    seeds = grid_seeds(opts.seeds, rows, cols)
    cfg = tool_render_config(G, opts)
    with torch.no_grad():
        source = tool_latents(G, opts, seeds, opts.latent)
    w, condition = source.w, source.condition
    schedule, lights = camera_schedule(G, opts, source.centre)
    with torch.no_grad():
        # The latents are fixed for the whole path: EG3D's tri-planes are computed once here, not per frame.
        views = LatentViews(G, w, condition=condition, resolution=opts.resolution, render=cfg,
                            lock_view_dependence=opts.lock_view_dependence, delta=tool_band(G, opts), fast=opts.fast)

    def frames():
        for i in tqdm(range(len(schedule)), desc="video", unit="frame", disable=not opts.progress):
            yaw, pitch, scale = schedule[i]
            cams = G.cameras([yaw] * len(w), [pitch] * len(w), scale)
            frame_condition = None if lights is None else with_light(condition, lights[i])
            with torch.no_grad():
                img = views.render(cams, frame_condition).image
            yield to_uint8(make_grid(img, nrow=cols, padding=0 if len(w) == 1 else 2))

    target = out_dir(opts) / opts.name
    write_video(target, frames(), fps=opts.fps)
    extra = {} if lights is None else {"lights": lights.tolist()}
    record = settings_record("video", opts, G, seeds=seeds if opts.latent is None else [], truncation_psi=psi(G, opts),
                             render=cfg, file=str(target), frames=len(schedule), **extra)
    write_json(target.with_suffix(".json"), record)
    return record
