"""Render speed of the pi-GAN family against a GEMM ceiling measured in the same process.

For each resolution: one image with the pigan-celeba preset (12 coarse + 12 fine samples, as trained, and
the tools' 24 + 24), timed as the median of --reps runs after a warm-up. The SIREN costs 1.05 MFLOP of
matmul per sample point (README of the reference fixture), so achieved GFLOP/s = points x 1.0537e6 / time.
The ceiling is a float32 matmul of the SIREN's shape, (65536 x 256) @ (256 x 256), timed the same way.
Peak memory is the process's peak RSS after the largest render.

    python benchmarks/render.py [--sizes 64 128 256] [--reps 3] [--threads N]
    python benchmarks/render.py --family eg3d [options of benchmarks/render_eg3d.py]   # the EG3D table
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

import aware3d

FLOP_PER_POINT = 1_053_696  # 3*256 + 7*256^2 + 256 + 259*256 + 256*3 MACs, x2


def timed(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def gemm_ceiling(reps: int) -> float:
    """Best-case float32 GEMM of the SIREN's shape: preallocated output, fastest of the runs."""
    a, b, c = torch.randn(65536, 256), torch.randn(256, 256), torch.empty(65536, 256)
    torch.mm(a, b, out=c)
    best = float("inf")
    for _ in range(max(reps, 10)):
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2 * 65536 * 256 * 256 / best / 1e9


def main() -> None:
    family = argparse.ArgumentParser(add_help=False)
    family.add_argument("--family", choices=["pigan", "eg3d"], default="pigan", help="which family's table")
    known, rest = family.parse_known_args()
    if known.family == "eg3d":  # EG3D's frame is split into stages, with its own options
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import render_eg3d

        return render_eg3d.main(rest)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 parents=[family])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--samples", type=int, nargs="+", default=[12, 24], help="coarse (= fine) samples per ray")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    G = aware3d.load("pigan-celeba")
    z = G.z_from_seeds([0])
    w = G.mapping(z, 0.7).detach()
    cams = G.cameras([G.config.pose.yaw_mean], [G.config.pose.pitch_mean])
    ceiling = gemm_ceiling(args.reps)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; GEMM ceiling {ceiling:.1f} GFLOP/s")
    print(f"{'figure':42s} {'value':>12s} {'ratio':>8s} {'target':>8s}")
    for s in args.samples:
        cfg = replace(G.config.eval_render, num_samples=s, num_importance=s)
        for res in args.sizes:
            # fast: the tools' folded SIREN; exact: the official-parity path (training, parity tests).
            for fast in (True, False):
                with torch.no_grad():
                    t = timed(lambda: G.synthesis(w, cams, resolution=res, render=cfg, fast=fast), args.reps)
                gflops = res * res * 2 * s * FLOP_PER_POINT / t / 1e9
                label = "fast" if fast else "exact"
                print(f"{f'render {res}px {s}+{s} {label} (s/image)':42s} {t:12.3f}")
                print(f"{'  SIREN GFLOP/s, ratio to ceiling':42s} {gflops:12.1f} {gflops / ceiling:8.1%} "
                      f"{'>= 70%' if fast else '':>8s}")
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    print(f"{'peak process memory (GB, RSS)':42s} {peak_gb:12.2f} {'':8s} {'< 2 GB':>8s}")


if __name__ == "__main__":
    main()
