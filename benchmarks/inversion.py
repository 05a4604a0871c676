"""Inversion against ground truth: a model trained on synthetic-heads inverts held-out heads, and the geometry it
reconstructs is compared with the true depth and normals (printed table + JSON, not a test).

1. A model: ``--run DIR`` (an ``aware3d train`` run folder, used as it is), else ``pigan-demo`` trained for
   ``--minutes`` on synthetic-heads (``aware3d demo``'s recipe and 4096-item pool) in ``--out``/run; a run already
   there is trained ``--minutes`` further (the JSON records its steps and training time in all).
2. Held-out pictures: items of synthetic-heads drawn with another dataset seed (``--data-seed``; the training pool
   is seed 0), rendered at the model's training size with their exact depth, normals and mask. They were made by
   the ray caster, not by the generator.
3. Each is inverted as ``aware3d invert`` does (same defaults; ``--pti``: pivotal tuning after the latent), and
   the found latent is rendered from the found camera with its surface depth and normals.

Per picture, on the true foreground eroded by one pixel: PSNR of the reconstruction; SIDE, the scale-invariant
depth error of the inverted surface depth against the true ray depth
(:func:`aware3d.metrics.depth.scale_invariant_depth_error`); MAD, unsup3d's mean angle deviation in degrees
between the normals of the two depth maps, each computed from its depth through its own camera; ``MAD field``,
the angle between the density's own normals (what ``reconstruction_normal.png`` shows) and the true world
normals; and the camera's error (radians, the larger of yaw's and pitch's). Rows: the latent alone, after
pivotal tuning, and two references: the model's mean latent from the found camera (where the inversion starts)
and a flat sheet facing the camera (SIDE is then the true depth's own spread about a plane; MAD the true
normals' angle to the view axis).

    OMP_NUM_THREADS=2 python benchmarks/inversion.py [--minutes 6] [--images 8] [--out runs/inversion_bench]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "inversion.json"


def get_model(args) -> tuple[Path, dict]:
    """The run folder to invert with (trained, or trained further, here for ``--minutes`` unless ``--run`` is
    given) and its training record (steps, training minutes in all)."""
    from aware3d.training.config import TrainOptions
    from aware3d.training.snapshots import is_run_dir
    from aware3d.training.stats import read_stats
    from aware3d.training.trainer import train

    run = Path(args.run or Path(args.out) / "run")
    if not args.run and args.minutes > 0:
        resume = str(run) if is_run_dir(run) and (run / "checkpoint" / "state.json").is_file() else None
        train(TrainOptions(preset="pigan-demo", data="synthetic-heads:4096", out=str(run), resume=resume,
                           steps=10 ** 9, minutes=args.minutes, seed=0, device="cpu", sample_every=0,
                           checkpoint_every=200, progress=False, tensorboard=False))
    stats = [s for s in read_stats(run) if "event" not in s]
    last = stats[-1] if stats else {}
    return run, {"steps": last.get("step"), "train_minutes": round(last.get("time_s", 0.0) / 60, 2)}


def geometry_scores(depth, normals, intrinsics, grid, truth, mask) -> dict[str, float]:
    """SIDE, MAD and MAD of the field normals for one render against a synthetic sample, on ``mask`` (1, 1, H, W).

    ``depth`` (1, 1, H, W) is the render's surface distance along its rays (world units), ``intrinsics`` (1, 3, 3)
    and ``grid`` its camera's; ``normals`` (1, 3, H, W) its world normals (the density's gradient), or None. MAD
    is unsup3d's: both depth maps' own normals (:func:`aware3d.metrics.depth.normals_from_depth`, camera frames);
    ``mad_field`` compares the render's density normals with the true world normals instead."""
    from aware3d.metrics.depth import mean_angle_deviation, normals_from_depth, scale_invariant_depth_error

    side = scale_invariant_depth_error(depth.clamp_min(1e-6), truth.depth[None], mask)
    ours = normals_from_depth(depth.clamp_min(1e-6), intrinsics, grid)
    true = normals_from_depth(truth.depth[None], truth.intrinsics[None], "pixel_centers")
    scores = {"side": float(side[0]), "mad": float(mean_angle_deviation(ours, true, mask)[0])}
    if normals is not None:
        scores["mad_field"] = float(mean_angle_deviation(normals, truth.normals[None], mask)[0])
    return scores


def render_geometry(G, latent, angles, renderer):
    """(image, surface depth, normals) of ``latent`` from ``angles`` as render --latent renders them."""
    import torch

    from aware3d.tools.common import LatentViews

    views = LatentViews(G, latent.w, condition=latent.condition, resolution=renderer.resolution,
                        render=renderer.render, normals=True, sampling_seed=renderer.sampling_seed)
    with torch.no_grad():
        out = views.render(angles.cameras(G))
    return out.image, out.surface_depth, out.normals


def score_picture(G, item, config, D) -> dict[str, dict]:
    """Every row's numbers for one held-out item."""
    from aware3d.inversion.invert import invert
    from aware3d.inversion.losses import psnr
    from aware3d.metrics.depth import erode_mask

    target = item.image[None]
    mask = erode_mask(item.mask[None])
    result = invert(G, target, config, discriminator=D)
    camera = max(abs(float(result.angles.yaw) - float(item.angles[0])),
                 abs(float(result.angles.pitch) - float(item.angles[1])))
    rows = {}
    models = {"latent": G, "latent + PTI": result.G} if config.pti is not None else {"latent": G}
    cameras = result.angles.cameras(G)
    camera_of = (cameras.intrinsics, G.config.pixel_grid)
    for name, model in models.items():
        image, depth, normals = render_geometry(model, result.latent, result.angles, result.renderer)
        rows[name] = {"psnr": float(psnr(image, result.target)), "camera": camera,
                      **geometry_scores(depth, normals, *camera_of, item, mask)}
    mean = result.space.latent(result.space.zero_offsets())
    image, depth, normals = render_geometry(G, mean, result.angles, result.renderer)
    rows["mean latent"] = {"psnr": float(psnr(image, result.target)), "camera": camera,
                           **geometry_scores(depth, normals, *camera_of, item, mask)}
    # A flat sheet facing the camera: depth constant along the optical axis (distance 1 / cos of each ray's angle).
    flat = sheet_depth(item.intrinsics[None], item.depth.shape[-1])
    forward = item.cam2world[:3, 2]
    flat_normals = (-forward).reshape(1, 3, 1, 1).expand_as(item.normals[None])
    rows["flat sheet"] = {"psnr": float("nan"), "camera": float("nan"),
                          **geometry_scores(flat, flat_normals, item.intrinsics[None], "pixel_centers", item, mask)}
    return rows


def sheet_depth(intrinsics, size: int):
    """(1, 1, size, size) ray distances to the plane z = 1 of the camera (a sheet facing it)."""
    from aware3d.cameras import camera_directions

    dirs = camera_directions(intrinsics, size, size, "pixel_centers")  # unit rays in the camera frame
    return (1 / dirs[..., 2]).reshape(1, 1, size, size)


def summary(per_image: list[dict]) -> dict[str, dict[str, float]]:
    """Mean and std over the pictures of every row's numbers."""
    out = {}
    for row in per_image[0]:
        out[row] = {}
        for key in per_image[0][row]:
            values = [p[row][key] for p in per_image if math.isfinite(p[row][key])]
            out[row][key] = statistics.fmean(values) if values else float("nan")
            out[row][key + "_std"] = statistics.pstdev(values) if len(values) > 1 else float("nan")
    return out


def table(numbers: dict[str, dict[str, float]]) -> str:
    head = ["", "PSNR (dB)", "SIDE", "MAD (deg)", "MAD field (deg)", "camera err (rad)"]
    lines = [head]
    for row, v in numbers.items():
        def cell(k: str, fmt: str) -> str:
            return "-" if not math.isfinite(v[k]) else f"{v[k]:{fmt}} +- {v[k + '_std']:{fmt}}"
        lines.append([row, cell("psnr", ".2f"), cell("side", ".4f"), cell("mad", ".1f"), cell("mad_field", ".1f"),
                      cell("camera", ".3f")])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", help="an aware3d train run folder to use instead of training one")
    ap.add_argument("--minutes", type=float, default=6.0,
                    help="training (or further training of the run in --out) before the inversions; 0: none")
    ap.add_argument("--images", type=int, default=8, help="held-out pictures to invert")
    ap.add_argument("--data-seed", type=int, default=1, help="synthetic-heads seed of the held-out pictures")
    ap.add_argument("--resolution", type=int, default=32, help="picture and render size (the demo trains at 32)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--refine-steps", type=int, default=100)
    ap.add_argument("--pti-steps", type=int, default=100)
    ap.add_argument("--out", default="runs/inversion_bench")
    ap.add_argument("--json", default=str(RESULTS))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    from aware3d import api
    from aware3d.data.synthetic import make_synthetic
    from aware3d.inversion.config import InversionConfig, OptimConfig, PTIConfig
    from aware3d.inversion.losses import load_discriminator

    t0 = time.time()
    run, training = get_model(args)
    G = api.load(str(run))
    D = load_discriminator(run)
    config = InversionConfig(resolution=args.resolution, optim=OptimConfig(steps=args.steps,
                                                                           refine_steps=args.refine_steps),
                             pti=PTIConfig(steps=args.pti_steps))
    data = make_synthetic("synthetic-heads", resolution=args.resolution, seed=args.data_seed)
    per_image = []
    for i in range(args.images):
        start = time.time()
        per_image.append(score_picture(G, data[i], config, D))
        print(f"picture {i}: {time.time() - start:.1f} s, " + ", ".join(
            f"{row} psnr {v['psnr']:.2f} side {v['side']:.4f} mad {v['mad']:.1f}" for row, v in per_image[-1].items()
            if math.isfinite(v["psnr"])), flush=True)
    numbers = summary(per_image)
    print(table(numbers))
    doc = {"run": str(run), "training": training, "images": args.images,
           "data_seed": args.data_seed, "resolution": args.resolution, "steps": args.steps,
           "refine_steps": args.refine_steps, "pti_steps": args.pti_steps, "discriminator": D is not None,
           "threads": torch.get_num_threads(), "wall_minutes": round((time.time() - t0) / 60, 2),
           "summary": numbers, "per_image": per_image}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
