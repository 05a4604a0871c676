"""Frame time of the EG3D family, split into its stages, and camera-only frames with cached tri-planes.

Default: the ``eg3d-ffhq`` preset (full size, random weights: 512 px output, 128 px neural rendering,
48 + 48 samples per ray), batch 1, const noise, the tools' chunked rendering. Each figure is the median of
--reps runs after one warm-up (time.perf_counter, CUDA synchronised). Stages:

* mapping: z + camera label -> ws;
* backbone: ws -> tri-planes (the StyleGAN2 synthesis network);
* rendering: rays, sampling, the tri-plane decoder and compositing at the neural rendering resolution;
* super-resolution: the feature image -> the final image;
* full frame: mapping + synthesis; camera-only frame: rendering + super-resolution on cached planes.

    python benchmarks/render_eg3d.py [--preset eg3d-ffhq] [--nrr 128 64] [--reps 3] [--device cpu|cuda] [--threads N]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="eg3d-ffhq")
    ap.add_argument("--nrr", type=int, nargs="+", default=[128], help="neural rendering resolutions to time")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
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
    print(f"{'stage (seconds per frame, batch 1)':44s} " + " ".join(f"{f'nrr {r}':>10s}" for r in args.nrr))
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
    for k, values in rows.items():
        print(f"{k:44s} " + " ".join(f"{v:10.3f}" for v in values))
    fps = [1 / v for v in rows["camera-only frame (cached tri-planes)"]]
    print(f"{'camera-only frames per second':44s} " + " ".join(f"{v:10.2f}" for v in fps))
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 1024 ** 3:.2f} GB")
    print(f"peak process memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2:.2f} GB (RSS)")


if __name__ == "__main__":
    main()
