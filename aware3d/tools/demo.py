"""``aware3d demo``: train the tiny preset on the built-in synthetic heads for a few minutes, then show it.

Everything lands in one folder::

    <out>/run/            the training run (config, stats.jsonl, sample grids, checkpoint, generator/)
    <out>/samples.png     seeds x yaw angles (columns): per seed an image row, a depth row (a robust colour range
                          shared by all depth rows, its colour bar in world units under the grid) and a normal row
    <out>/orbit.mp4       the camera circling the frontal view for a 2x2 grid of seeds, images beside their depth
                          (GIF if MP4 cannot be written)
    <out>/seed0000.ply    a coloured marching-cubes mesh (and the density volume seed0000.mrc)
    <out>/demo.json       the numbers: steps, time, images/s, final losses, metrics

Running it again on the same folder continues the same run for another ``--minutes``. The progress bar shows the
training time against ``--minutes``. SIGINT/SIGTERM stop the training with a checkpoint and end the demo with exit
status 130/143, as ``aware3d train`` does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.synthetic import SYNTHETIC_DATASETS
from ..io.depth_pictures import (DepthRange, attach_colorbar, colorize_depth_robust, normals_picture,
                                 robust_depth_range)
from ..io.media import make_grid, save_image, to_uint8, write_json, write_video
from ..training.config import TrainOptions, validate_options
from ..training.run_folder import checkpoint_step
from ..training.signals import TrainingInterrupted, signal_exit_status
from ..training.stats import read_stats
from ..training.trainer import train


@dataclass
class DemoOptions:
    """What ``aware3d demo`` trains and where it writes."""

    out: str = "demo"
    """Output folder (the run lives in <out>/run; an existing run there is continued)."""
    minutes: float = 10.0
    """Training time budget in minutes (2 CPU cores: about 10 give recognisable heads)."""
    preset: str = "pigan-demo"
    """Training preset (pigan-demo: the tiny model with a recipe tuned for minutes on a CPU)."""
    data: str = "synthetic-heads"
    """Dataset: a synthetic name, a folder of images or a zip."""
    data_pool: int = 4096
    """Synthetic data: render this many items once and train on them from memory (0: render every batch)."""
    device: str = "auto"
    """cpu, cuda or auto."""
    seed: int = 0
    """Seed of the run."""
    metrics: bool = True
    """Also compute the weight-free metrics (SWD against the data, SIDE on the synthetic depth)."""
    metric_images: int = 256
    """Generated images per metric (and real images for SWD); 256 keep the metrics to well under a minute."""
    metric_resolution: int = 64
    """Render size for the metrics: 64 px gives SWD three Laplacian-pyramid levels (64, 32, 16); the
    training size (32) would give it only two."""
    depth_net_steps: int = 300
    """Training steps of SIDE's depth network (trained once per dataset and cached, see aware3d metrics)."""
    progress: bool = True
    """Show progress bars."""
    resolution: int = 64
    """Size of the rendered samples and video frames in pixels."""
    video_frames: int = 48
    """Frames in the orbit video."""
    mesh_grid: int = 96
    """Grid points per axis for the mesh."""


def _train_options(opts: DemoOptions, run_dir: Path) -> TrainOptions:
    """The training session: a new run in ``run_dir``, or the one there continued (by time; the step total is a
    placeholder that is never reached)."""
    resume = checkpoint_step(run_dir / "checkpoint") is not None
    data = opts.data
    if opts.data_pool and data in SYNTHETIC_DATASETS:
        # Ray casting a batch of heads costs several percent of a CPU step; a pool rendered once (inside the
        # time budget, a few seconds) does not. The run's config names it, so a resumed run gets it back.
        data = f"{data}:{opts.data_pool}"
    return TrainOptions(preset=opts.preset, data=data, out=str(run_dir), resume=str(run_dir) if resume else None,
                        steps=10 ** 9, minutes=opts.minutes, seed=opts.seed, device=opts.device,
                        sample_every=100, checkpoint_every=200, progress=opts.progress, tensorboard=False)


def _fit(pictures: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, *size), nearest: a family with super-resolution renders its depth and normals at the
    (lower) neural rendering resolution."""
    return pictures if pictures.shape[-2:] == size else F.interpolate(pictures, size=tuple(size), mode="nearest")


def _depth_pictures(out, depth_range: DepthRange) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1]: a render's surface distance (whatever the family's depth convention,
    rendering.surface_depth) coloured over ``depth_range``, at the image's size."""
    from ..metrics.reprojection import output_surface_depth

    pictures = colorize_depth_robust(output_surface_depth(out), out.opacity, depth_range=depth_range)
    return _fit(pictures, out.image.shape[-2:])


@torch.no_grad()
def _sample_grid(G, path: Path, seeds: list[int], yaws: list[float], resolution: int) -> tuple[Path, DepthRange]:
    """samples.png: per seed an image row, a depth row and (families with normals) a world-space normal row, one
    column per yaw, with the depth colour bar under the grid. Returns the path and the depth rows' range."""
    from ..api import render
    from ..metrics.reprojection import output_surface_depth

    yaw0, pitch0 = G.config.pose.frontal()
    cameras = G.cameras([yaw0 + y for y in yaws], [pitch0] * len(yaws))
    outs = [render(G, z=G.z_from_seeds([s] * len(yaws)), cameras=cameras, resolution=resolution,
                   normals=G.capabilities.normals) for s in seeds]
    # One range for every depth row, so that the rows compare and one colour bar reads them all.
    depth_range = robust_depth_range(torch.cat([output_surface_depth(o) for o in outs]),
                                     torch.cat([o.opacity for o in outs]))
    rows = []
    for o in outs:
        rows += [(o.image.clamp(-1, 1) + 1) / 2, _depth_pictures(o, depth_range)]
        if o.normals is not None:
            rows.append(_fit(normals_picture(o.normals, o.opacity), o.image.shape[-2:]))
    grid = make_grid(torch.cat(rows), nrow=len(yaws), padding=2)
    return save_image(path, attach_colorbar(grid, depth_range), value_range=(0, 1)), depth_range


def _image_and_depth_frame(out, depth_range: DepthRange, cols: int) -> torch.Tensor:
    """(3, H, W) in [0, 1]: the renders' images tiled ``cols`` wide, on their right the same tiles of coloured depth
    with the colour bar under them (the images padded below with black to the same height)."""
    images = make_grid((out.image.clamp(-1, 1) + 1) / 2, nrow=cols, padding=2)
    depths = attach_colorbar(make_grid(_depth_pictures(out, depth_range), nrow=cols, padding=2), depth_range)
    images = F.pad(images, (0, 0, 0, depths.shape[1] - images.shape[1]))
    return torch.cat([images, depths], dim=2)


def _orbit_video(vopts, depth_range: DepthRange) -> dict:
    """The video tool's grid video (``vopts``: a :class:`~aware3d.tools.video.VideoOptions`) with each frame's
    depth beside its images, coloured over ``depth_range`` (the sample grid's: one scale for every frame, the
    same as samples.png). Writes the video and its settings JSON; returns the settings record."""
    from . import video as video_tool
    from .common import (LatentViews, load_model, map_seeds, out_dir, psi, settings_record, tool_band, tool_condition,
                         tool_render_config)

    G = load_model(vopts)
    rows, cols = video_tool.parse_grid(vopts.grid)
    seeds = video_tool.grid_seeds(vopts.seeds, rows, cols)
    schedule, _ = video_tool.camera_schedule(G, vopts)
    cfg = tool_render_config(G, vopts)
    with torch.no_grad():
        views = LatentViews(G, map_seeds(G, vopts, seeds), condition=tool_condition(G, vopts),
                            resolution=vopts.resolution, render=cfg, delta=tool_band(G, vopts), fast=vopts.fast)

    def frames():
        for yaw, pitch, scale in schedule:
            with torch.no_grad():
                out = views.render(G.cameras([yaw] * len(seeds), [pitch] * len(seeds), scale))
            yield to_uint8(_image_and_depth_frame(out, depth_range, cols), value_range=(0, 1))

    target = out_dir(vopts) / vopts.name
    write_video(target, frames(), fps=vopts.fps)
    record = settings_record("video", vopts, G, seeds=seeds, truncation_psi=psi(G, vopts), render=cfg,
                             file=str(target), frames=len(schedule),
                             depth_range={"near": depth_range.near, "far": depth_range.far})
    write_json(target.with_suffix(".json"), record)
    return record


def run(opts: DemoOptions) -> dict:
    from .. import api
    from . import shapes as shapes_tool
    from . import video as video_tool

    out = Path(opts.out)
    topts = _train_options(opts, out / "run")
    validate_options(topts)  # --minutes 0 and the like: refused before the folder is made
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    result = train(topts)
    if result.stopped_by == "signal":  # the run is saved; stop now, as aware3d train does (exit status 130/143)
        raise TrainingInterrupted(signal_exit_status(result.stop_signal), {"out": str(out), "step": result.step,
                                                                            "stopped_by": result.stopped_by})
    G = api.load(str(result.generator_dir))
    res = opts.resolution
    samples, depth_range = _sample_grid(G, out / "samples.png", [0, 1, 2, 3], [-0.45, -0.225, 0.0, 0.225, 0.45], res)
    files = {"samples": str(samples)}
    common = dict(checkpoint=str(result.generator_dir), out=str(out), device="cpu" if opts.device == "auto" else opts.device,
                  progress=opts.progress)
    # pi-GAN's video path, a circle around the frontal view within the training poses: a full 360-degree turn
    # would mostly show the never-seen back of the heads as mush.
    video_opts = dict(common, seeds=[0, 1, 2, 3], grid="2x2", path="front_circle", frames=opts.video_frames,
                      resolution=res)
    try:
        video = _orbit_video(video_tool.VideoOptions(**video_opts, name="orbit.mp4"), depth_range)
    except (OSError, RuntimeError):  # no usable ffmpeg: a GIF needs only pillow
        video = _orbit_video(video_tool.VideoOptions(**video_opts, name="orbit.gif"), depth_range)
    files["video"] = video["file"]
    try:
        mesh = shapes_tool.run(shapes_tool.ShapesOptions(**common, seeds=[0], grid=opts.mesh_grid, level="10"))
    except ValueError:
        # A barely trained model may not reach pi-GAN's usual iso level 10 anywhere; use its mean density.
        mesh = shapes_tool.run(shapes_tool.ShapesOptions(**common, seeds=[0], grid=opts.mesh_grid, level="mean"))
    files["mesh"] = [m for entry in mesh["shapes"] for m in entry["meshes"]]
    stats = [s for s in read_stats(result.run_dir) if "event" not in s]
    last = stats[-1] if stats else {}
    numbers = {
        "steps": result.step, "stopped_by": result.stopped_by, "train_minutes": round(last.get("time_s", 0) / 60, 2),
        "images_per_s": round(last.get("images_per_s", 0.0), 2), "images_seen": None,
        "final": {k: last[k] for k in ("G/adv", "D/adv", "D/r1", "D/pose", "G/pose") if k in last},
        "wall_minutes": round((time.time() - t0) / 60, 2), "files": files,
    }
    try:
        from ..training.state import read_training_meta

        numbers["images_seen"] = read_training_meta(result.run_dir / "checkpoint")["state"]["images_seen"]
    except (OSError, ValueError, KeyError):
        pass
    if opts.metrics:
        numbers["metrics"] = _metrics(G, opts)
    write_json(out / "demo.json", numbers)
    print(f"aware3d demo: {result.step} steps; samples {files['samples']}, video {files['video']}, "
          f"mesh {', '.join(files['mesh']) or '(none)'}, numbers {out / 'demo.json'}")
    return {"out": str(out), "step": result.step, "stopped_by": result.stopped_by, "files": list(files.values())}


def _metrics(G, opts: DemoOptions) -> dict:
    """SWD, SIDE and the absolute foreground-depth metrics (weight-free: they need no downloaded file); the
    depth metrics only on synthetic data (ground truth)."""
    from ..data.base import open_dataset
    from ..metrics import DepthNetConfig, evaluate

    data = open_dataset(opts.data, opts.metric_resolution)
    # SIDE / MAD forgive a global depth scale (a painted sheet scores well); the fg_* metrics are absolute.
    depth_names = ["side", "fg_depth_abs", "fg_depth_separation", "fg_depth_within_0.01", "fg_normal_deg"]
    names = ["swd"] + (depth_names if opts.data.startswith("synthetic-") else [])
    # Far fewer images than the protocols' defaults (SWD 16384, SIDE 1000): enough to tell noise from heads
    # while the demo's evaluation stays short on a CPU. Rendered at metric_resolution, not the model's 16 px
    # default, so that SWD has several pyramid levels.
    start = time.time()
    result = evaluate(G, names, data, num_gen=opts.metric_images, resolution=opts.metric_resolution,
                      depth_net=DepthNetConfig(steps=opts.depth_net_steps), progress=opts.progress,
                      device="cpu" if opts.device == "auto" else opts.device)
    # results holds swd (the mean), swd_64 / swd_32 / swd_16 (one per pyramid level), side, mad and each fg_*
    # metric with its floor as fg_*_gt (the ground truth's own score: what exactly true depth would get).
    # Wall time: the metrics sharing a pass each count the pass in their own time_s, so their sum overcounts.
    return {"results": result["results"], "time_s": round(time.time() - start, 1), "settings": result.get("settings")}
