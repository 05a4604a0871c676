"""Speed of the pure-PyTorch mesh rasteriser (aware3d.rendering.rasterize) against its 1-second target.

The mesh is a 5,120-triangle icosphere (level 4) squashed and bumped to a face-sized blob (about 0.16 x 0.2 x
0.18 world units at the origin), seen by CGOF-like cameras (radius 1, fov 12 deg, yaw/pitch a little off
frontal), so it fills the frame as a face does. For each resolution (64, 128, 256 by default) and batch
size, the median wall time over --repeats runs after a warm-up of:

* ``rasterize``: fragments only;
* ``+ attributes``: rasterize, interpolate albedo, normals and a 3D flow (9 channels), project 68 points
  and test their visibility (what a synthetic-faces item needs);
* ``+ backward``: the same with vertices and attributes requiring grad, then backward of a scalar loss.

The target (issue 13) is a 64x64 render of a 5k-triangle mesh "well under a second on 2 cores"; the
figure printed beside each time is the ratio to 1 s per image (smaller is better).

    python benchmarks/rasterize.py [--threads 2] [--resolutions 64 128 256] [--batch 1 8] [--repeats 10]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from aware3d.cameras import Cameras
from aware3d.rendering.rasterize import interpolate, project_points, rasterize, visible_points

TARGET_S = 1.0


def blob_mesh(level: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Icosphere of 20 * 4**level triangles, squashed and bumped to a face-sized blob: (V, 3), (F, 3)."""
    t = (1 + 5 ** 0.5) / 2
    v = torch.tensor([(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t),
                      (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)], dtype=torch.float32)
    f = torch.tensor([(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4),
                      (11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9),
                      (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)])
    v = v / v.norm(dim=1, keepdim=True)
    for _ in range(level):
        edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]).sort(1).values
        unique, inverse = torch.unique(edges, dim=0, return_inverse=True)
        mid = v[unique[:, 0]] + v[unique[:, 1]]
        m = inverse.reshape(3, -1).T + v.shape[0]
        v = torch.cat([v, mid / mid.norm(dim=1, keepdim=True)])
        a, b, c, ab, bc, ca = f[:, 0], f[:, 1], f[:, 2], m[:, 0], m[:, 1], m[:, 2]
        f = torch.cat([torch.stack(x, 1) for x in ((a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca))])
    bumps = 1 + 0.06 * torch.sin(7 * v[:, 0]) * torch.cos(5 * v[:, 1]) + 0.1 * v[:, 2].clamp_min(0) ** 4
    return v * bumps[:, None] * torch.tensor([0.08, 0.1, 0.09]), f


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up: first-call allocations
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def workloads(verts: torch.Tensor, faces: torch.Tensor, cams: Cameras, res: int) -> dict:
    """The three timed workloads for one batch (see the module docstring)."""
    B = len(cams)
    gen = torch.Generator().manual_seed(0)
    attrs = torch.rand(B, verts.shape[0], 9, generator=gen)
    points = verts[torch.randperm(verts.shape[0], generator=gen)[:68]][None].expand(B, -1, -1)
    batch_verts = verts[None].expand(B, -1, -1)

    def fragments_only():
        return rasterize(batch_verts, faces, cams, res)

    def with_attributes(v=batch_verts, a=attrs):
        fr = rasterize(v, faces, cams, res)
        out = interpolate(fr, a, faces)
        project_points(points, cams, res)
        visible_points(points, fr, cams, res)
        return out, fr

    def with_backward():
        v = batch_verts.clone().requires_grad_()
        a = attrs.clone().requires_grad_()
        out, fr = with_attributes(v, a)
        (out.square().mean() + fr.depth.mean()).backward()

    return {"rasterize": fragments_only, "+ attributes": with_attributes, "+ backward": with_backward}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--resolutions", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    verts, faces = blob_mesh()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; mesh {verts.shape[0]} vertices, "
          f"{faces.shape[0]} triangles; median of {args.repeats} runs")
    print(f"{'figure':44s} {'s/image':>10s} {'target':>8s} {'ratio':>7s} {'covered':>8s}")
    for B in args.batch:
        yaw = math.pi / 2 + 0.3 * torch.linspace(-1, 1, B)
        pitch = math.pi / 2 - 0.15 * torch.linspace(-1, 1, B)
        cams = Cameras.from_angles(yaw, pitch, 12.0)
        for res in args.resolutions:
            coverage = float(rasterize(verts[None].expand(B, -1, -1), faces, cams, res).mask.float().mean())
            for name, fn in workloads(verts, faces, cams, res).items():
                per_image = median_time(fn, args.repeats) / B
                print(f"{f'{res}x{res} batch {B} {name}':44s} {per_image:10.4f} {f'< {TARGET_S:g}':>8s} "
                      f"{per_image / TARGET_S:7.3f} {coverage:8.2f}")


if __name__ == "__main__":
    main()
