"""Frames per second of ``aware3d view`` at each model's default resolution, with and without cached tri-planes.

For every preset (default: each family's tiny preset and one full preset, random weights) the viewer's own
frame code (:class:`aware3d.viewer.FrameRenderer`, the model's evaluation samples per ray, the image display)
renders the frontal view:

* new latent: a seed not seen before, so the mapping (and a tri-plane family's backbone) runs: what a seed,
  truncation or interpolation change costs;
* camera only: the camera moved, the latent is reused; a family with a plane cache
  (``capabilities.plane_cache``) also reuses its tri-planes, the others run the whole synthesis again;
* preview: camera only at the viewer's preview resolution (--preview, default 32 px; a super-resolving family
  shows its raw render), what a drag costs.

Each figure is the median of --reps frames (full presets: --full-reps) after a warm-up frame at 16 px; the
backbone / rendering split is the viewer's own readout (CUDA synchronised). The table is printed and written to
--json.

    python benchmarks/viewer.py [--presets pigan-tiny eg3d-ffhq ...] [--device cpu|cuda] [--reps 5] [--full-reps 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from aware3d.models.registry import build_generator, families, get_preset
from aware3d.tools.view import ViewOptions, initial_state
from aware3d.viewer import FrameRenderer

FULL_PRESETS = {"pigan": "pigan-celeba", "eg3d": "eg3d-ffhq", "shadegan": "shadegan-celeba-view",
                "epigraf": "epigraf-ffhq-512"}
"""The full preset timed per family (families not listed are timed at their tiny preset only)."""


def default_presets() -> list[str]:
    out = []
    for name, family in sorted(families().items()):
        out.append(family.tiny.model)
        if name in FULL_PRESETS:
            out.append(FULL_PRESETS[name])
    return out


def median_frame(renderer: FrameRenderer, states, preview: int | None = None) -> dict:
    """Median wall time, backbone and render milliseconds of rendering each state in turn."""
    walls, backbone, render = [], [], []
    for state in states:
        t0 = time.perf_counter()
        frame = renderer.render(state, preview)
        walls.append(time.perf_counter() - t0)
        backbone.append(frame.backbone_ms)
        render.append(frame.render_ms)
    return {"s": statistics.median(walls), "backbone_ms": statistics.median(backbone),
            "render_ms": statistics.median(render), "resolution": frame.resolution,
            "image": int(frame.picture.shape[0])}


def time_preset(preset: str, device: str, reps: int, preview: int) -> dict:
    """The three figures of one preset (see the module docstring)."""
    G = build_generator(preset).to(device).eval()
    renderer = FrameRenderer(G)
    state = initial_state(G, ViewOptions(checkpoint=preset, device=device))
    renderer.render(replace(state, resolution=16, seed=10_000))  # warm-up: kernels, allocator
    state, _ = renderer.completed(replace(state, seed=10_001))
    view = state.view
    new = median_frame(renderer, [replace(state, seed=s) for s in range(reps)])
    moved = [replace(state, seed=reps - 1, view=replace(view, yaw=view.yaw + 0.05 * (i + 1))) for i in range(reps)]
    camera = median_frame(renderer, moved)
    quick = median_frame(renderer, [replace(s, view=replace(s.view, pitch=view.pitch - 0.05)) for s in moved], preview)
    return {"preset": preset, "family": G.family, "plane_cache": G.capabilities.plane_cache,
            "samples": state.num_samples, "new_latent": new, "camera_only": camera, "preview": quick}


def fmt_time(s: float) -> str:
    return f"{s * 1e3:.0f} ms" if s < 1 else f"{s:.2f} s"


def preview_cell(preview: dict, full: dict) -> str:
    """The preview figure, or a note where the model's resolution is already at or below the preview's (the
    viewer then renders every frame in full)."""
    if preview["resolution"] >= full["resolution"]:
        return "= full"
    return f"{fmt_time(preview['s'])} ({1 / preview['s']:.1f})"


def table(rows: list[dict], preview: int) -> str:
    head = (f"| preset | render px -> image | samples | new latent: s/frame (fps) | backbone ms | camera only: "
            f"s/frame (fps) | planes | preview {preview} px (fps) |")
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        n, c, p = r["new_latent"], r["camera_only"], r["preview"]
        lines.append(f"| {r['preset']} | {n['resolution']} -> {n['image']} | {r['samples']} | {fmt_time(n['s'])} "
                     f"({1 / n['s']:.2f}) | {n['backbone_ms']:.1f} | {fmt_time(c['s'])} ({1 / c['s']:.2f}) | "
                     f"{'cached' if r['plane_cache'] else 'n/a'} | {preview_cell(p, n)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=None, help="model presets (default: tiny + full per family)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reps", type=int, default=5, help="frames per figure for tiny presets")
    parser.add_argument("--full-reps", type=int, default=1, help="frames per figure for full presets")
    parser.add_argument("--preview", type=int, default=32, help="the viewer's preview resolution")
    parser.add_argument("--json", default="benchmarks/results/viewer.json")
    args = parser.parse_args()
    presets = args.presets or default_presets()
    load_before, rows = os.getloadavg(), []
    for preset in presets:
        tiny = preset == get_preset(preset)[0].tiny.model
        t0 = time.perf_counter()
        with torch.no_grad():
            rows.append(time_preset(preset, args.device, args.reps if tiny else args.full_reps, args.preview))
        print(f"{preset}: {time.perf_counter() - t0:.1f} s", flush=True)
    print(table(rows, args.preview))
    print(f"load average (1 min) before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}; "
          f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")
    record = {"device": args.device, "threads": torch.get_num_threads(), "omp": os.environ.get("OMP_NUM_THREADS"),
              "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
              "load_before": load_before, "load_after": os.getloadavg(), "rows": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
