"""EpiGRAF render time: one full image at 256 and 512 px and one 64 px patch (printed table + JSON, not a test).

Model: the ``epigraf-ffhq-512`` preset at its official widths (random init, 29 M parameters: 512 px tri-planes
of 3 x 32 channels, channel_base 32768 / channel_max 512), eval mode, batch 1, psi 0.7, frontal camera, const
noise, ``torch.no_grad()``, the official inference settings (``config.eval_render``: 48 + 48 jittered samples
per ray, rendered in chunks). ``scripts/inference.py``'s ray_step_multiplier 2 multiplies only the background's
steps in the official code (the foreground stays 48 + 48) and FFHQ has no background model, so it changes nothing
here. Cases, interleaved within every round (one warm-up round, the 512 px image excepted: it runs the same
code as the 256 px one), median of --repeats:

* ``mapping``, ``tri-planes 512 px`` (the backbone), and the renderer alone on cached tri-planes for the patch
  and the 256 px image;
* ``full image 256 px`` / ``full image 512 px``: mapping + tri-planes + rendering (what one inference image costs);
* ``patch 64 px``: the same for one 64 x 64 patch of scale 0.25 (the centre window): EpiGRAF's training render.

Same-process ratios: 512 vs 256 px (4x the pixels; the tri-planes are paid once), the patch vs the 256 px image,
and the renderer's seconds per pixel in a patch vs in a full image (it should be about 1: the cost is per ray).
The official figures (``$AWARE3D_REFERENCE/epigraf/timings.json``, ``full_ffhq``: the official generator at
these widths, random init, same settings, chunks of 64^2 rays) are printed beside ours at the same thread count;
they were taken while other jobs kept 1-1.4 of the 2 cores busy, so ours / official spans two processes and two
loads: informational. The official set has no 512 px image.

    python benchmarks/render_epigraf.py [--threads 1] [--repeats 3] [--preset epigraf-ffhq-512]
        [--out benchmarks/results/epigraf.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable

import torch

import aware3d
from aware3d.io.media import write_json
from aware3d.models.epigraf.cameras import PatchParams

REPO = Path(__file__).resolve().parents[1]
PATCH_RESOLUTION = 64
"""Rays per side of the patch render (the official train_resolution)."""
PATCH_SCALE = 0.25
"""Window side of the patch as a fraction of the image side (64 of 256 px; the official eval patch's)."""
PATCH_OFFSET = (1 - PATCH_SCALE) / 2
"""Window corner (x and y): the centre window."""
NO_WARMUP = {"full image 512 px"}
"""Cases left out of the warm-up round (the same code as a warmed-up case, at ~4x the cost)."""
OFFICIAL_KEYS = {
    "mapping": "full_ffhq/mapping",
    "tri-planes (backbone)": "full_ffhq/triplanes_512",
    "full image 256 px": "full_ffhq/image_256x256_inference_settings",
    "patch 64 px (scale 0.25)": "full_ffhq/patch_64x64_eval",
}
"""Our case -> the official timings.json run of the same work."""


def reference_dir() -> Path:
    """``$AWARE3D_REFERENCE/epigraf`` (default ``../shared/reference/epigraf`` beside the checkout)."""
    return Path(os.environ.get("AWARE3D_REFERENCE", REPO.parent / "shared" / "reference")) / "epigraf"


def interleaved(cases: dict[str, Callable[[], object]], repeats: int) -> dict[str, dict]:
    """Run every case once per round (one untimed round first, NO_WARMUP cases skipped in it); per case the
    median wall and process-CPU seconds and every timed run."""
    wall: dict[str, list[float]] = {n: [] for n in cases}
    cpu: dict[str, list[float]] = {n: [] for n in cases}
    for r in range(1 + repeats):
        for name, fn in cases.items():
            if r == 0 and name in NO_WARMUP:
                continue
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            if r:
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
    return {n: {"wall_s": statistics.median(wall[n]), "cpu_s": statistics.median(cpu[n]), "wall_runs": wall[n],
                "cpu_runs": cpu[n]} for n in cases}


def render_cases(G) -> dict[str, Callable[[], object]]:
    """The timed cases (batch 1, psi 0.7, frontal camera, eval settings) over one fixed z."""
    z = G.z_from_seeds([0])
    cams = G.cameras([G.config.pose.yaw_mean], [G.config.pose.pitch_mean])
    patch = PatchParams(torch.full((1, 2), PATCH_SCALE), torch.full((1, 2), PATCH_OFFSET))
    ws = G.mapping(z, 0.7)
    planes = G.planes(ws)
    return {
        "mapping": lambda: G.mapping(z, 0.7),
        "tri-planes (backbone)": lambda: G.planes(ws),
        "render patch 64 px (cached tri-planes)": lambda: G.render_planes(planes, ws, cams,
                                                                          resolution=PATCH_RESOLUTION, patch=patch),
        "render 256 px (cached tri-planes)": lambda: G.render_planes(planes, ws, cams, resolution=256),
        "patch 64 px (scale 0.25)": lambda: G.synthesis(G.mapping(z, 0.7), cams, resolution=PATCH_RESOLUTION,
                                                        patch=patch),
        "full image 256 px": lambda: G.synthesis(G.mapping(z, 0.7), cams, resolution=256),
        "full image 512 px": lambda: G.synthesis(G.mapping(z, 0.7), cams, resolution=512),
    }


def official_seconds(threads: int) -> dict[str, float]:
    """Our case -> the official median seconds at ``threads`` threads (empty without the fixture)."""
    f = reference_dir() / "timings.json"
    if not f.is_file():
        return {}
    runs = json.loads(f.read_text()).get("per_thread_count", {}).get(str(threads), {}).get("runs", {})
    return {ours: runs[key]["median"] for ours, key in OFFICIAL_KEYS.items() if key in runs}


def same_process_ratios(t: dict[str, float]) -> dict[str, float]:
    """Ratios of our median seconds ``t`` (wall or CPU): the 512 / 256 px scaling, the patch vs the full image, and the
    renderer's seconds per pixel in a patch over those in a full 256 px image."""
    fixed = t["mapping"] + t["tri-planes (backbone)"]
    render_512 = t["full image 512 px"] - fixed
    per_px_patch = t["render patch 64 px (cached tri-planes)"] / PATCH_RESOLUTION ** 2
    per_px_full = t["render 256 px (cached tri-planes)"] / 256 ** 2
    return {
        "full image 512 / 256 px": t["full image 512 px"] / t["full image 256 px"],
        "rendering alone 512 / 256 px (512 derived: image - tri-planes - mapping; pixels 4x)":
            render_512 / t["render 256 px (cached tri-planes)"],
        "patch 64 px / full image 256 px": t["patch 64 px (scale 0.25)"] / t["full image 256 px"],
        "rendering seconds per pixel, patch / full 256 px": per_px_patch / per_px_full,
        "tri-planes share of a full 256 px image": t["tri-planes (backbone)"] / t["full image 256 px"],
        "tri-planes share of a 64 px patch": t["tri-planes (backbone)"] / t["patch 64 px (scale 0.25)"],
    }


def print_results(times: dict[str, dict], official: dict[str, float], ratios: dict[str, dict[str, float]]) -> None:
    """The cases beside the official figures, then the same-process ratios of wall and CPU medians."""
    print(f"{'case (batch 1, seconds)':42s} {'wall s':>8s} {'CPU s':>8s} {'official s':>10s} {'ours/off':>8s}")
    for name, e in times.items():
        ref = official.get(name)
        cols = f"{ref:10.3f} {e['wall_s'] / ref:7.2f}x" if ref else ""
        print(f"{name:42s} {e['wall_s']:8.3f} {e['cpu_s']:8.3f} {cols}")
    print(f"\n{'same-process ratios':86s} {'wall':>6s} {'CPU':>6s}")
    for name, v in ratios["wall"].items():
        print(f"  {name:84s} {v:6.3f} {ratios['cpu'][name]:6.3f}")
    p, f = OFFICIAL_KEYS["patch 64 px (scale 0.25)"], OFFICIAL_KEYS["full image 256 px"]
    if "patch 64 px (scale 0.25)" in official and "full image 256 px" in official:
        print(f"  official {p} / {f}: "
              f"{official['patch 64 px (scale 0.25)'] / official['full image 256 px']:.3f}")


def uptime() -> str:
    """The ``uptime`` line (the machine's load), or '' where the command is missing."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def write_section(path: str, key: str, doc: dict) -> None:
    """Put ``doc`` under ``key`` of the JSON file ``path``, keeping its other keys (the training benchmark's)."""
    f = Path(path)
    data = json.loads(f.read_text()) if f.is_file() else {}
    data[key] = doc
    write_json(f, data)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="epigraf-ffhq-512")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "epigraf.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    G = aware3d.load(args.preset).eval()
    cfg = G.eval_render_config()
    params = sum(p.numel() for p in G.parameters())
    settings = (f"{args.preset}: {params:,} parameters (random init), tri-planes {G.config.plane_resolution} px x "
                f"3 x {G.config.plane_channels}, {cfg.num_samples}+{cfg.num_importance} samples/ray, chunks of "
                f"{cfg.max_points} points, torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print(settings)
    load_before, t0 = uptime(), time.perf_counter()
    with torch.no_grad():
        times = interleaved(render_cases(G), args.repeats)
    load_after = uptime()
    official = official_seconds(args.threads) if args.preset == "epigraf-ffhq-512" else {}
    ratios = {kind: same_process_ratios({n: e[f"{kind}_s"] for n, e in times.items()}) for kind in ("wall", "cpu")}
    print_results(times, official, ratios)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    print(f"\npeak process memory {peak:.2f} GB (RSS); load before: {load_before}; after: {load_after}")
    write_section(args.out, "render", {
        "settings": settings, "preset": args.preset, "parameters": params, "threads": args.threads,
        "repeats": args.repeats, "patch": {"resolution": PATCH_RESOLUTION, "scale": PATCH_SCALE,
                                           "offset": PATCH_OFFSET},
        "times": times, "same_process_ratios": ratios, "official_s": official,
        "ours_over_official_wall": {n: times[n]["wall_s"] / v for n, v in official.items()},
        "official_note": "official full_ffhq timings (timings.json) were taken with other processes keeping 1-1.4 "
                         "of the 2 cores busy; they have no 512 px image",
        "peak_rss_gb": peak, "uptime_before": load_before, "uptime_after": load_after,
        "wall_s": time.perf_counter() - t0})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
