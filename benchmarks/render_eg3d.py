"""Frame time of the EG3D family, split into its stages, and camera-only frames with cached tri-planes.

Default: the ``eg3d-ffhq`` preset (full size, random weights: 512 px output, 128 px neural rendering,
48 + 48 samples per ray), batch 1, const noise, the tools' chunked rendering. Each figure is the median of
--reps runs after one warm-up (time.perf_counter, CUDA synchronised). Stages:

* mapping: z + camera label -> ws;
* backbone: ws -> tri-planes (the StyleGAN2 synthesis network);
* rendering: rays, sampling, the tri-plane decoder and compositing at the neural rendering resolution;
* super-resolution: the feature image -> the final image;
* full frame: mapping + synthesis; camera-only frame: rendering + super-resolution on cached planes
  (what ``aware3d video`` / ``render`` pay per view of a seed).

The table gives each figure, the official code's figure for the same stage where the reference fixture has
one (``$AWARE3D_REFERENCE/eg3d/timing.json``: the full FFHQ-512 config, CPU, 2 threads, batch 1, const
noise; rendering = full frame - super-resolution - backbone - mapping), the ratio ours / official and the
target (no slower than the official code: ratio <= 1.0x, meaningful on that CPU with --threads 2 and an
idle machine). The camera-only frame's ratio is to our own full frame (target < 1.0x: the cache saves the
mapping and the backbone).

    python benchmarks/render_eg3d.py [--preset eg3d-ffhq] [--nrr 128 64] [--reps 3] [--device cpu|cuda] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from pathlib import Path

import torch

import aware3d


def timed(fn, reps: int, device: torch.device) -> float:
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def official_figures(nrr: int) -> dict[str, float]:
    """The official code's seconds per stage at neural rendering resolution ``nrr`` (64 or 128), from the
    reference fixture's timing.json (full FFHQ-512 config); empty when the file or the resolution is missing."""
    root = Path(os.environ.get("AWARE3D_REFERENCE", Path(__file__).resolve().parents[2] / "shared" / "reference"))
    file = root / "eg3d" / "timing.json"
    if not file.is_file():
        return {}
    full = json.loads(file.read_text())["full"]
    total, sr = full.get(f"mapping+synthesis_nrr{nrr}"), full.get(f"superresolution_only_from_nrr{nrr}")
    if total is None or sr is None:
        return {}
    mapping, backbone = full["mapping_only"]["median_s"], full["backbone_synthesis_only"]["median_s"]
    total, sr = total["median_s"], sr["median_s"]
    return {"mapping": mapping, "backbone (tri-planes)": backbone,
            "rendering (rays, decoder, compositing)": total - sr - backbone - mapping,
            "super-resolution": sr, "full frame (mapping + synthesis)": total}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="eg3d-ffhq")
    ap.add_argument("--nrr", type=int, nargs="+", default=[128], help="neural rendering resolutions to time")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    G = aware3d.load(args.preset, device=device)
    cfg = G.eval_render_config()
    z = G.z_from_seeds([0])
    cams = G.cameras([G.config.pose.yaw_mean], [G.config.pose.pitch_mean])
    side = G.cameras([G.config.pose.yaw_mean + 0.3], [G.config.pose.pitch_mean])
    params = sum(p.numel() for p in G.parameters())
    print(f"{args.preset}: {params:,} parameters, output {G.config.img_resolution} px, "
          f"{cfg.num_samples}+{cfg.num_importance} samples/ray, device {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    rows: dict[str, list[float]] = {}
    with torch.no_grad():
        ws = G.mapping(z, 0.7)
        planes = G.planes(ws)
        for r in args.nrr:
            raw = G.render_planes(planes, ws, cams, resolution=r, render=cfg, superresolution=False)
            figures = {
                "mapping": timed(lambda: G.mapping(z, 0.7), args.reps, device),
                "backbone (tri-planes)": timed(lambda: G.planes(ws), args.reps, device),
                "rendering (rays, decoder, compositing)": timed(
                    lambda: G.render_planes(planes, ws, cams, resolution=r, render=cfg, superresolution=False),
                    args.reps, device),
                "super-resolution": timed(lambda: G.superresolution(raw.image_raw, raw.features, ws), args.reps, device),
                "full frame (mapping + synthesis)": timed(
                    lambda: G.synthesis(G.mapping(z, 0.7), cams, resolution=r, render=cfg), args.reps, device),
                "camera-only frame (cached tri-planes)": timed(
                    lambda: G.render_planes(planes, ws, side, resolution=r, render=cfg), args.reps, device),
            }
            for k, v in figures.items():
                rows.setdefault(k, []).append(v)
    camera_only = "camera-only frame (cached tri-planes)"
    full = "full frame (mapping + synthesis)"
    for i, r in enumerate(args.nrr):
        official = official_figures(r) if args.preset == "eg3d-ffhq" else {}
        print(f"\nneural rendering {r} px, output {G.config.img_resolution} px (seconds per frame, batch 1)")
        print(f"{'figure':40s} {'ours s':>9s} {'official s':>10s} {'ratio':>7s}  target")
        for k, values in rows.items():
            v = values[i]
            if k == camera_only:
                ratio, ref, target = v / rows[full][i], "", "< 1.0x our full frame"
            elif k in official:
                ratio, ref, target = v / official[k], f"{official[k]:10.3f}", "<= 1.0x official"
            else:
                ratio, ref, target = None, "", ""
            ok = ratio is not None and (ratio < 1.0 if k == camera_only else ratio <= 1.0)
            met = "" if ratio is None else (" (met)" if ok else " (NOT met)")
            print(f"{k:40s} {v:9.3f} {ref:>10s} {'' if ratio is None else f'{ratio:6.2f}x':>7s}  {target}{met}")
        stages = sum(rows[k][i] for k in ("mapping", "backbone (tri-planes)", "rendering (rays, decoder, compositing)",
                                           "super-resolution"))
        print(f"{'sum of the four stages':40s} {stages:9.3f}")
        print(f"{'camera-only frames per second':40s} {1 / rows[camera_only][i]:9.2f}")
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 1024 ** 3:.2f} GB")
    print(f"peak process memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2:.2f} GB (RSS)")


if __name__ == "__main__":
    main()
