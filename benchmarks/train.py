"""Training throughput and peak memory: the tiny presets (pi-GAN, EG3D) and pigan-celeba's first stage (32x32).

Each configuration runs in its own subprocess (so peak memory is its own), trains a few warm-up steps,
then times the next steps. The reference is the official pi-GAN training step measured on this kind of
machine (``$AWARE3D_REFERENCE/pigan/timings.json``: CelebA settings at 32x32, batch 8, batch_split 2,
fp32, CPU); our pigan-celeba row uses exactly those settings, so the ratio compares like with like.
(The official code cannot run here in the same process, so that ratio spans two processes; the
figure in the JSON was taken as a median of 3 on an otherwise idle machine.)

The EpiGRAF rows compare, at one output resolution (64 px, batch 8, 8 + 8 samples per ray), epigraf-tiny trained
on 32 px patches, the same model trained on whole 64 px images (patch = image, so D judges 64 px inputs), and
eg3d-tiny rendering 32 px super-resolved to 64 px. The paper reports EpiGRAF training 2.5x faster than EG3D;
the ratios printed beside the rows are images/s and own memory (peak RSS above the RSS just before the
trainer was built; on CUDA the peak allocated) of the patch run over each of the other two.

``--resolution 256`` runs the same comparison at 256 px output instead, at EpiGRAF's official patch size:
64 px patches (scales 0.25 .. 1) of 256 px images, the same model on whole 256 px images, and EG3D rendering
64 px neural images super-resolved 4x to 256 px (its 4X module). The three rows share narrow CPU widths
(WIDTHS_256: G and D at most 32 channels, 64 px tri-planes of 8 channels, a 16-wide decoder; EG3D's
super-resolution keeps the tiny preset's 16 / 8 channels), batch 4 (one minibatch-std group), 12 + 12 samples
per ray (official: 48 + 48) and 8 synthetic heads rendered once and served from memory (so the data renderer
is not timed). Timing is in one process: the three trainers are built side by side and stepped in turn
(--warmup rounds, then --steps rounds; default 4, so each row's window holds exactly one lazy-R1 step of
the interval 4 both tiny recipes use), wall and process-CPU seconds. Peak memory is not separable between
trainers of one process, so each row is also run alone in a subprocess (2 steps: the first runs every phase
and creates the Adam state); its "own" memory is the peak RSS minus the RSS just before the trainer was built
(the interpreter, torch and aware3d), and the memory ratios use it. The paper's 2.5x is at full widths on a
GPU; narrow CPU widths weigh rendering and the 256 px discriminator differently, so the ratios here are this
machine's, not a reproduction of that figure.

    python benchmarks/train.py [--steps N] [--device cpu|cuda] [--threads T]
    python benchmarks/train.py --resolution 256 --threads 1 [--out benchmarks/results/epigraf.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUTPUT_64_STAGE = {"start": 0, "resolution": 64, "batch_size": 8, "batch_split": 1, "num_samples": 8,
                   "num_importance": 8, "g_lr": 0.002, "d_lr": 0.002}
"""The stage of the 64 px output rows (EpiGRAF and EG3D alike)."""

CONFIGS = {
    # name: (preset, stage override or None, description)
    "pigan-demo": ("pigan-demo", None, "what aware3d demo trains (32x32, batch 8, 12 samples, small D)"),
    "pigan-tiny": ("pigan-tiny", None, "tiny preset of the tests (32x32, batch 16, 12+12 samples)"),
    "pigan-celeba stage 0": (
        "pigan-celeba",
        {"start": 0, "resolution": 32, "batch_size": 8, "batch_split": 2, "num_samples": 12, "num_importance": 12,
         "g_lr": 6e-5, "d_lr": 2e-4},
        "full-size pi-GAN, 32x32, batch 8 split 2, 12+12 samples (the official timing's settings)",
    ),
    "pigan-celeba stage 0 (preset batch)": ("pigan-celeba", None, "the preset's own first stage: 32x32, batch 26"),
    "eg3d-tiny": ("eg3d-tiny", None, "EG3D's CPU preset: 16 px neural rendering -> 32 px, batch 8, 12+12 samples"),
    "epigraf-tiny 64 px, 32 px patches": ("epigraf-tiny", OUTPUT_64_STAGE,
                                          "EpiGRAF's patch-wise training: 32 px patches of 64 px images"),
    "epigraf-tiny 64 px, full images": ("epigraf-tiny", OUTPUT_64_STAGE,
                                        "the same model trained on whole 64 px images (no patches)"),
    "eg3d-tiny 64 px": ("eg3d-tiny", OUTPUT_64_STAGE, "EG3D at the same output: 32 px neural rendering -> 64 px"),
}
EXTRA_OVERRIDES = {
    # name: overrides beyond the stage, for the rows at 64 px output
    "epigraf-tiny 64 px, 32 px patches": (
        "model.img_resolution=64", "model.patch_resolution=32", "discriminator.image_resolution=64",
        "discriminator.patch_resolution=32"),
    "epigraf-tiny 64 px, full images": (
        "model.img_resolution=64", "model.patch_resolution=64", "discriminator.image_resolution=64",
        "discriminator.patch_resolution=64", "loss.patch.distribution=full"),
    "eg3d-tiny 64 px": (
        "model.img_resolution=64", "model.neural_rendering_resolution=32", "discriminator.img_resolution=64",
        "loss.neural_rendering_resolution_initial=32"),
}
PATCH_ROW, FULL_ROW, EG3D_ROW = "epigraf-tiny 64 px, 32 px patches", "epigraf-tiny 64 px, full images", "eg3d-tiny 64 px"
PAPER_SPEEDUP_OVER_EG3D = 2.5
"""EpiGRAF's reported training speed-up over EG3D."""

OUTPUT_256_STAGE = {"start": 0, "resolution": 256, "batch_size": 4, "batch_split": 1, "num_samples": 12,
                    "num_importance": 12, "g_lr": 0.002, "d_lr": 0.002}
"""The stage of the 256 px output rows: one minibatch-std group of 4, 12 + 12 samples per ray."""
WIDTHS_256 = ("model.z_dim=32", "model.w_dim=32", "model.channel_base=8192", "model.channel_max=32",
              "model.plane_resolution=64", "model.plane_channels=8", "model.decoder_hidden=16",
              "discriminator.channel_base=8192", "discriminator.channel_max=32")
"""Narrow widths shared by the three 256 px rows (8192 // 256 = 32 channels at 256 px, so no layer is starved)."""
DATA_256 = "synthetic-heads:8"
"""The 256 px rows' data: 8 synthetic heads rendered once and served from memory (training is timed, not data)."""
PATCH_256, FULL_256, EG3D_256 = "epigraf 256 px, 64 px patches", "epigraf 256 px, full images", "eg3d 256 px"
CONFIGS_256 = {
    PATCH_256: ("epigraf-tiny", OUTPUT_256_STAGE, "the official setting: 64 px patches (scales 0.25 .. 1)"),
    FULL_256: ("epigraf-tiny", OUTPUT_256_STAGE, "the same model trained on whole 256 px images"),
    EG3D_256: ("eg3d-tiny", OUTPUT_256_STAGE, "64 px neural rendering -> 4x super-resolution -> 256 px"),
}
EXTRA_OVERRIDES.update({
    PATCH_256: WIDTHS_256 + (
        "model.img_resolution=256", "model.patch_resolution=64", "discriminator.image_resolution=256",
        "discriminator.patch_resolution=64", "loss.patch.min_scale=0.25"),
    FULL_256: WIDTHS_256 + (
        "model.img_resolution=256", "model.patch_resolution=256", "discriminator.image_resolution=256",
        "discriminator.patch_resolution=256", "loss.patch.distribution=full"),
    EG3D_256: WIDTHS_256 + (
        "model.img_resolution=256", "model.neural_rendering_resolution=64", "model.sr_module=SuperresolutionHybrid4X",
        "discriminator.img_resolution=256", "loss.neural_rendering_resolution_initial=64"),
})
ALL_CONFIGS = {**CONFIGS, **CONFIGS_256}
DATA = {name: DATA_256 for name in CONFIGS_256}
"""Dataset per row beyond the preset's default."""
COMPARISONS = {64: (PATCH_ROW, FULL_ROW, EG3D_ROW), 256: (PATCH_256, FULL_256, EG3D_256)}
"""Per output resolution: the (patch-wise, full-image, EG3D) rows compared."""


def make_trainer(name: str, device: str, out: str):
    """A trainer of configuration ``name`` writing (nothing but its config) under ``out``."""
    from aware3d.training.config import TrainOptions
    from aware3d.training.trainer import Trainer

    preset, stage, _ = ALL_CONFIGS[name]
    override = (() if stage is None else ("curriculum.stages=" + json.dumps([stage]),)) + EXTRA_OVERRIDES.get(name, ())
    return Trainer(TrainOptions(preset=preset, data=DATA.get(name), out=str(Path(out) / "run"), steps=10 ** 9,
                                device=device, sample_every=0, checkpoint_every=10 ** 9, progress=False,
                                tensorboard=False, override=override))


def current_rss_gb() -> float:
    """This process's resident set size now, GiB (Linux /proc; 0 where it is missing)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 30


def measure(name: str, steps: int, warmup: int, device: str, threads: int) -> dict:
    """Train configuration ``name`` alone in this process: images/s over ``steps`` after ``warmup`` steps,
    peak memory (CUDA: allocated; CPU: peak RSS, and ``own_gb`` = peak RSS minus the RSS before the build)."""
    import resource

    import torch

    torch.set_num_threads(threads)
    base = current_rss_gb()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(name, device, tmp)
        for _ in range(warmup):
            trainer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        images = 0
        for _ in range(steps):
            images += trainer.step()["batch_size"]
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() / 2 ** 30 if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)
    own = peak if device.startswith("cuda") else peak - base
    return {"name": name, "images_per_s": images / dt, "step_s": dt / steps, "peak_gb": peak, "own_gb": own,
            "batch": images // steps, "steps": steps, "device": device, "threads": threads}


def measure_interleaved(names: list[str], steps: int, warmup: int, device: str, threads: int) -> dict[str, dict]:
    """Time the trainers of ``names`` in this process, stepped in turn (``warmup`` untimed rounds, then ``steps``
    rounds): per name images/s, mean wall and process-CPU seconds per step, and the wall time of every step."""
    import torch

    torch.set_num_threads(threads)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    with tempfile.TemporaryDirectory() as tmp:
        trainers = {n: make_trainer(n, device, str(Path(tmp) / str(i))) for i, n in enumerate(names)}
        walls: dict[str, list[float]] = {n: [] for n in names}
        cpus: dict[str, list[float]] = {n: [] for n in names}
        images = dict.fromkeys(names, 0)
        for r in range(warmup + steps):
            for n, trainer in trainers.items():
                sync()
                t0, c0 = time.perf_counter(), time.process_time()
                batch = trainer.step()["batch_size"]
                sync()
                if r >= warmup:
                    walls[n].append(time.perf_counter() - t0)
                    cpus[n].append(time.process_time() - c0)
                    images[n] += batch
    return {n: {"images_per_s": images[n] / sum(walls[n]), "step_s": sum(walls[n]) / steps,
                "cpu_step_s": sum(cpus[n]) / steps, "cpu_images_per_s": images[n] / sum(cpus[n]),
                "step_wall_runs": walls[n], "batch": images[n] // steps, "steps": steps} for n in names}


def reference_step_s() -> float | None:
    root = Path(os.environ.get("AWARE3D_REFERENCE", Path(__file__).resolve().parents[1].parent / "shared" / "reference"))
    f = root / "pigan" / "timings.json"
    if not f.is_file():
        return None
    t = json.loads(f.read_text())
    return t["train_step_final_3reps"]["celeba_settings_32x32_batch8_split2"]["median_s"]


def epigraf_ratio(row: dict, rows: list[dict]) -> tuple[str, str] | None:
    """(ratio, target) columns of the patch-wise EpiGRAF row against the full-image and EG3D rows measured with it
    (same output resolution): the patch run's images/s and own memory over theirs (None for the other rows or
    when the patch row was not run)."""
    trio = next((t for t in COMPARISONS.values() if row["name"] in t[1:]), None)
    patch = None if trio is None else next((r for r in rows if r["name"] == trio[0]), None)
    if patch is None:
        return None
    speedup = patch["images_per_s"] / row["images_per_s"]
    memory = patch["own_gb"] / row["own_gb"]
    target = f"paper {PAPER_SPEEDUP_OVER_EG3D}x" if row["name"] == trio[2] else "(patches vs full)"
    return f"patches {speedup:4.2f}x, mem {memory:4.2f}x", target


def run_alone(name: str, steps: int, warmup: int, device: str, threads: int) -> dict:
    """:func:`measure` of ``name`` in a fresh subprocess (its peak memory is its own)."""
    out = subprocess.run([sys.executable, __file__, "--one", name, "--steps", str(steps), "--warmup", str(warmup),
                          "--device", device, "--threads", str(threads)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def rows_256(names: list[str], steps: int, warmup: int, device: str, threads: int) -> list[dict]:
    """The 256 px rows: memory from each configuration alone in a subprocess (2 steps), speed from all of them
    stepped in turn in this process."""
    memory = {n: run_alone(n, 1, 1, device, threads) for n in names}
    speed = measure_interleaved(names, steps, warmup, device, threads)
    return [{"name": n, **speed[n], "peak_gb": memory[n]["peak_gb"], "own_gb": memory[n]["own_gb"],
             "memory_steps": 2, "device": device, "threads": threads} for n in names]


def print_256_summary(rows: list[dict]) -> dict:
    """Print the 256 px settings and the patch row's ratios (wall and CPU); return them for the JSON."""
    by = {r["name"]: r for r in rows}
    print(f"256 px settings: stage {json.dumps(OUTPUT_256_STAGE)}; shared widths {' '.join(WIDTHS_256)}; "
          f"data {DATA_256}; EG3D super-resolution 4X with the tiny preset's 16 / 8 channels")
    ratios = {}
    if PATCH_256 in by:
        p = by[PATCH_256]
        for other in (FULL_256, EG3D_256):
            if other in by:
                o = by[other]
                ratios[f"patches / {other}"] = {
                    "images_per_s_wall": p["images_per_s"] / o["images_per_s"],
                    "images_per_s_cpu": p["cpu_images_per_s"] / o["cpu_images_per_s"],
                    "own_memory": p["own_gb"] / o["own_gb"], "peak_rss": p["peak_gb"] / o["peak_gb"]}
                r = ratios[f"patches / {other}"]
                print(f"patches vs {other}: {r['images_per_s_wall']:.2f}x images/s (CPU time {r['images_per_s_cpu']:.2f}x), "
                      f"own memory {r['own_memory']:.2f}x, peak RSS {r['peak_rss']:.2f}x"
                      + (f"; paper: {PAPER_SPEEDUP_OVER_EG3D}x faster than EG3D" if other == EG3D_256 else ""))
    return ratios


def write_results(path: str, key: str, doc: dict) -> None:
    """Put ``doc`` under ``key`` of the JSON file ``path``, keeping its other keys (other benchmarks' sections)."""
    from aware3d.io.media import write_json

    f = Path(path)
    data = json.loads(f.read_text()) if f.is_file() else {}
    data[key] = doc
    write_json(f, data)


def print_table(rows: list[dict], device: str) -> None:
    """The rows with images/s, step time, peak and own memory, and their ratio columns."""
    ref = reference_step_s()
    print(f"{'configuration':40s} {'images/s':>9s} {'step s':>8s} {'peak GB':>8s} {'own GB':>7s}  "
          "ratio vs official   target")
    for r in rows:
        ratio, target = "", ""
        if r["name"] == "pigan-celeba stage 0" and ref and device == "cpu":
            speedup = ref / r["step_s"]
            ratio = f"{speedup:5.2f}x faster" if speedup >= 1 else f"{1 / speedup:5.2f}x slower"
            target = ">= 1.0x (" + ("met" if speedup >= 1 else "NOT met") + ")"
        ratio, target = epigraf_ratio(r, rows) or (ratio, target)
        print(f"{r['name']:40s} {r['images_per_s']:9.2f} {r['step_s']:8.2f} {r['peak_gb']:8.2f} {r['own_gb']:7.2f}  "
              f"{ratio:18s} {target}")
    if ref and any(r["name"] == "pigan-celeba stage 0" for r in rows):
        print(f"official pi-GAN train step (CelebA settings, 32x32, batch 8, split 2, CPU): {ref:.1f} s "
              f"= {8 / ref:.2f} images/s (reference timings.json)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, choices=sorted(COMPARISONS), default=64,
                    help="64: every configuration, each alone in a subprocess; 256: the EpiGRAF comparison at "
                         "256 px output, timed in one process")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 5; 4 at --resolution 256)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--only", nargs="*", help="configuration names to run (default: all of the resolution's)")
    ap.add_argument("--out", help="also write the rows to this JSON file, under train_<resolution>px")
    args = ap.parse_args()
    steps = args.steps or (4 if args.resolution == 256 else 5)
    if args.one:
        print(json.dumps(measure(args.one, steps, args.warmup, args.device, args.threads)))
        return
    load_before, t0 = os.getloadavg(), time.perf_counter()
    if args.resolution == 256:
        rows = rows_256(list(args.only or CONFIGS_256), steps, args.warmup, args.device, args.threads)
    else:
        rows = [run_alone(name, steps, args.warmup, args.device, args.threads) for name in args.only or CONFIGS]
    load_after = os.getloadavg()
    print_table(rows, args.device)
    ratios = print_256_summary(rows) if args.resolution == 256 else {}
    print(f"load average (1/5/15 min) before {load_before}, after {load_after}; {time.perf_counter() - t0:.0f} s")
    print(json.dumps(rows))
    if args.out:
        write_results(args.out, f"train_{args.resolution}px", {
            "rows": rows, "ratios": ratios, "paper_speedup_over_eg3d": PAPER_SPEEDUP_OVER_EG3D,
            "stage": OUTPUT_256_STAGE if args.resolution == 256 else OUTPUT_64_STAGE,
            "shared_widths": list(WIDTHS_256) if args.resolution == 256 else None,
            "data": DATA_256 if args.resolution == 256 else None, "load_average_before": load_before,
            "load_average_after": load_after, "uptime": uptime(), "wall_s": time.perf_counter() - t0,
            "method": "speed: trainers stepped in turn in one process; memory: each row alone in a subprocess, "
                      "own = peak RSS - RSS before the trainer was built" if args.resolution == 256 else
                      "each row alone in a subprocess"})


def uptime() -> str:
    """The ``uptime`` line (the machine's load when the run ended), or '' where the command is missing."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


if __name__ == "__main__":
    main()
