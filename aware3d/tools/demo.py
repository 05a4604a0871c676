"""``aware3d demo``: train the tiny preset on the built-in synthetic heads for a few minutes, then show it.

Everything lands in one folder::

    <out>/run/            the training run (config, stats.jsonl, sample grids, checkpoint, generator/)
    <out>/samples.png     seeds (rows) x yaw angles (columns), with a depth row under each
    <out>/orbit.mp4       the camera circling the frontal view for a 2x2 grid of seeds (GIF if MP4 cannot be written)
    <out>/seed0000.ply    a coloured marching-cubes mesh (and the density volume seed0000.mrc)
    <out>/demo.json       the numbers: steps, time, images/s, final losses, metrics

Running it again on the same folder continues the same run for another ``--minutes``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.synthetic import SYNTHETIC_DATASETS
from ..io.media import colorize_depth, save_image, write_json
from ..training.config import TrainOptions
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


def _train(opts: DemoOptions, run_dir: Path):
    resume = (run_dir / "checkpoint" / "state.json").is_file()
    data = opts.data
    if opts.data_pool and data in SYNTHETIC_DATASETS:
        # Ray casting a batch of heads costs several percent of a CPU step; a pool rendered once (inside the
        # time budget, a few seconds) does not. The run's config names it, so a resumed run gets it back.
        data = f"{data}:{opts.data_pool}"
    topts = TrainOptions(preset=opts.preset, data=data, out=str(run_dir), resume=str(run_dir) if resume else None,
                         steps=10 ** 9, minutes=opts.minutes, seed=opts.seed, device=opts.device,
                         sample_every=100, checkpoint_every=200, progress=opts.progress, tensorboard=False)
    return train(topts)


@torch.no_grad()
def _sample_grid(G, path: Path, seeds: list[int], yaws: list[float], resolution: int) -> Path:
    from ..api import render
    from ..metrics.reprojection import output_surface_depth

    pose = G.config.pose
    rows = []
    for s in seeds:
        out = render(G, z=G.z_from_seeds([s] * len(yaws)),
                     cameras=G.cameras([pose.yaw_mean + y for y in yaws], [pose.pitch_mean] * len(yaws)),
                     resolution=resolution)
        image = out.image.clamp(-1, 1)
        rows.append(image)
        # The surface distance, whatever the family's depth convention (rendering.surface_depth).
        depth = output_surface_depth(out)[:, 0]
        depth_image = colorize_depth(depth, mask=out.opacity[:, 0] > 0.5) * 2 - 1
        if depth_image.shape[-1] != image.shape[-1]:  # EG3D: depth at the neural rendering resolution
            depth_image = F.interpolate(depth_image, size=image.shape[-2:], mode="nearest")
        rows.append(depth_image)
    return save_image(path, torch.cat(rows), nrow=len(yaws))


def run(opts: DemoOptions) -> dict:
    from .. import api
    from . import shapes as shapes_tool
    from . import video as video_tool

    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    result = _train(opts, out / "run")
    G = api.load(str(result.generator_dir))
    res = opts.resolution
    files = {"samples": str(_sample_grid(G, out / "samples.png", [0, 1, 2, 3], [-0.45, -0.225, 0.0, 0.225, 0.45], res))}
    common = dict(checkpoint=str(result.generator_dir), out=str(out), device="cpu" if opts.device == "auto" else opts.device,
                  progress=opts.progress)
    # pi-GAN's video path, a circle around the frontal view within the training poses: a full 360-degree turn
    # would mostly show the never-seen back of the heads as mush.
    video_opts = dict(common, seeds=[0, 1, 2, 3], grid="2x2", path="front_circle", frames=opts.video_frames,
                      resolution=res)
    try:
        video = video_tool.run(video_tool.VideoOptions(**video_opts, name="orbit.mp4"))
    except (OSError, RuntimeError):  # no usable ffmpeg: a GIF needs only pillow
        video = video_tool.run(video_tool.VideoOptions(**video_opts, name="orbit.gif"))
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
    """SWD and SIDE (weight-free: they need no downloaded file); SIDE only on synthetic data (ground truth)."""
    from ..data.base import open_dataset
    from ..metrics import DepthNetConfig, evaluate

    data = open_dataset(opts.data, opts.metric_resolution)
    names = ["swd"] + (["side"] if opts.data.startswith("synthetic-") else [])
    # Far fewer images than the protocols' defaults (SWD 16384, SIDE 1000): enough to tell noise from heads
    # while the demo's evaluation stays short on a CPU. Rendered at metric_resolution, not the model's 16 px
    # default, so that SWD has several pyramid levels.
    result = evaluate(G, names, data, num_gen=opts.metric_images, resolution=opts.metric_resolution,
                      depth_net=DepthNetConfig(steps=opts.depth_net_steps), progress=opts.progress,
                      device="cpu" if opts.device == "auto" else opts.device)
    # results holds swd (the mean), swd_64 / swd_32 / swd_16 (one per pyramid level), side and mad.
    return {"results": result["results"], "time_s": round(sum(e.get("time_s", 0.0) for e in result["metrics"].values()), 1),
            "settings": result.get("settings")}
