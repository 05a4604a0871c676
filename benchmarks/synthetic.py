"""Generation speed of the synthetic datasets (aware3d.data.synthetic) against the 10,000-images target.

For each preset: --n images (default 2000) at --resolution (default 64) through ``get_batch`` in batches
of --batch (default 250), after one warm-up batch, timed with a wall clock (and the process CPU time,
which is less sensitive to other processes sharing the cores). The target is 10,000 images in under
120 s on 2 CPU cores, i.e. >= 83.3 images/s or <= 12 ms per image.

    python benchmarks/synthetic.py [--n 2000] [--batch 250] [--resolution 64] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import torch

from aware3d.data.synthetic import make_synthetic

TARGET_S = 120.0
TARGET_N = 10_000


def measure(name: str, n: int, batch: int, resolution: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) to generate items 0..n-1 of preset ``name``."""
    ds = make_synthetic(name, resolution=resolution, length=max(n, batch))
    ds.get_batch(range(min(batch, 16)))  # warm-up: first-call allocations and kernel selection
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for start in range(0, n, batch):
        ds.get_batch(range(start, min(start + batch, n)))
    return time.perf_counter() - wall0, time.process_time() - cpu0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="images to generate per preset")
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--presets", nargs="+", default=["synthetic-heads", "synthetic-objects"])
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.n} images at "
          f"{args.resolution}x{args.resolution}, batches of {args.batch}")
    print(f"{'figure':52s} {'value':>10s} {'target':>10s}")
    target_rate = TARGET_N / TARGET_S
    for name in args.presets:
        wall, cpu = measure(name, args.n, args.batch, args.resolution)
        rate = args.n / wall
        print(f"{name + ' images/s':52s} {rate:10.1f} {f'>= {target_rate:.1f}':>10s}")
        print(f"{name + ' ms/image (wall)':52s} {1000 * wall / args.n:10.2f} {'<= 12.0':>10s}")
        print(f"{name + ' CPU ms/image (all threads)':52s} {1000 * cpu / args.n:10.2f} {'':>10s}")
        print(f"{name + ' projected s for 10,000 images':52s} {TARGET_N / rate:10.1f} {f'< {TARGET_S:.0f}':>10s}")


if __name__ == "__main__":
    main()
