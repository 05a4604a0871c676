"""Cost of the metrics' parts, to size ``--num-gen`` for a CPU run (printed table, not a test).

Times (median of --reps after a warm-up) of: the FID Inception-v3 (random weights, same cost as the real
file) per image, SWD descriptors + distance per image, MS-SSIM per pair, the reprojection warp per
latent and view pair, and a depth-network training step. Images are random at --resolution.

    python benchmarks/metrics.py [--resolution 64] [--batch 16] [--reps 3] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from aware3d.cameras import Cameras
from aware3d.metrics.depth import DepthNet, DepthNetConfig
from aware3d.metrics.inception import FIDInceptionV3
from aware3d.metrics.msssim import ms_ssim
from aware3d.metrics.reprojection import warp_error
from aware3d.metrics.swd import DescriptorSet, swd_from_descriptors


def timed(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    R, B = args.resolution, args.batch
    g = torch.Generator().manual_seed(0)
    images = torch.rand(B, 3, R, R, generator=g) * 2 - 1
    rows = []

    net = FIDInceptionV3().eval()
    x299 = torch.rand(B, 3, 299, 299, generator=g) * 2 - 1
    with torch.no_grad():
        t = timed(lambda: net(x299), args.reps)
    rows.append(("inception-v3 forward (299 px)", t / B * 1e3, "ms / image"))

    def swd_once():
        sets = []
        for _ in range(2):
            d = DescriptorSet(R, generator=g)
            d.feed(images)
            sets.append(d)
        swd_from_descriptors(sets[0].descriptors(), sets[1].descriptors(), sets[0].resolutions, generator=g)
    rows.append(("swd (both sets)", timed(swd_once, args.reps) / B * 1e3, "ms / image"))

    other = (images + 0.1 * torch.randn(images.shape, generator=g)).clamp(-1, 1)
    rows.append(("ms-ssim", timed(lambda: ms_ssim((images + 1) / 2, (other + 1) / 2), args.reps) / B * 1e3,
                 "ms / pair"))

    cams = Cameras.from_angles([1.5] * B, [1.57] * B, fov_deg=12.0)
    cams2 = Cameras.from_angles([1.65] * B, [1.57] * B, fov_deg=12.0)
    depth = torch.full((B, 1, R, R), 1.0)
    valid = torch.ones(B, 1, R, R, dtype=torch.bool)
    t = timed(lambda: warp_error(images, depth, valid, cams, other, depth, valid, cams2), args.reps)
    rows.append(("reprojection warp", t / B * 1e3, "ms / latent and view pair"))

    dn = DepthNet(DepthNetConfig(resolution=R))
    opt = torch.optim.Adam(dn.parameters())

    def step():
        pred, logit = dn(images)
        loss = pred.abs().mean() + logit.abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    rows.append((f"depth net train step (batch {B})", timed(step, args.reps) * 1e3, "ms / step"))

    print(f"resolution {R}, batch {B}, threads {torch.get_num_threads()}")
    for name, value, unit in rows:
        print(f"  {name:34s} {value:10.2f} {unit}")


if __name__ == "__main__":
    main()
