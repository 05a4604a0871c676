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
the ratios printed beside the rows are images/s of the patch run over each of the other two.

    python benchmarks/train.py [--steps N] [--device cpu|cuda] [--threads T]
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


def measure(name: str, steps: int, warmup: int, device: str, threads: int) -> dict:
    import torch

    from aware3d.training.config import TrainOptions
    from aware3d.training.trainer import Trainer

    torch.set_num_threads(threads)
    preset, stage, _ = CONFIGS[name]
    override = (() if stage is None else ("curriculum.stages=" + json.dumps([stage]),)) + EXTRA_OVERRIDES.get(name, ())
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(TrainOptions(preset=preset, out=str(Path(tmp) / "run"), steps=10 ** 9, device=device,
                                       sample_every=0, checkpoint_every=10 ** 9, progress=False, tensorboard=False,
                                       override=override))
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
    import resource

    peak = (torch.cuda.max_memory_allocated() / 2 ** 30 if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)
    return {"name": name, "images_per_s": images / dt, "step_s": dt / steps, "peak_gb": peak,
            "batch": images // steps, "steps": steps, "device": device, "threads": threads}


def reference_step_s() -> float | None:
    root = Path(os.environ.get("AWARE3D_REFERENCE", Path(__file__).resolve().parents[1].parent / "shared" / "reference"))
    f = root / "pigan" / "timings.json"
    if not f.is_file():
        return None
    t = json.loads(f.read_text())
    return t["train_step_final_3reps"]["celeba_settings_32x32_batch8_split2"]["median_s"]


def epigraf_ratio(row: dict, rows: list[dict]) -> tuple[str, str] | None:
    """(ratio, target) columns of the patch-wise EpiGRAF row against the full-image and EG3D rows measured with it:
    the patch run's images/s over theirs (None for the other rows or when the patch row was not run)."""
    patch = next((r for r in rows if r["name"] == PATCH_ROW), None)
    if patch is None or row["name"] not in (FULL_ROW, EG3D_ROW):
        return None
    speedup = patch["images_per_s"] / row["images_per_s"]
    memory = patch["peak_gb"] / row["peak_gb"]
    target = f"paper {PAPER_SPEEDUP_OVER_EG3D}x" if row["name"] == EG3D_ROW else "(patches vs full)"
    return f"patches {speedup:4.2f}x, mem {memory:4.2f}x", target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--only", nargs="*", help="configuration names to run (default: all)")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.steps, args.warmup, args.device, args.threads)))
        return
    rows = []
    for name in args.only or CONFIGS:
        out = subprocess.run([sys.executable, __file__, "--one", name, "--steps", str(args.steps), "--warmup",
                              str(args.warmup), "--device", args.device, "--threads", str(args.threads)],
                             check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    ref = reference_step_s()
    print(f"{'configuration':40s} {'images/s':>9s} {'step s':>8s} {'peak GB':>8s}  ratio vs official   target")
    for r in rows:
        ratio, target = "", ""
        if r["name"] == "pigan-celeba stage 0" and ref and args.device == "cpu":
            speedup = ref / r["step_s"]
            ratio = f"{speedup:5.2f}x faster" if speedup >= 1 else f"{1 / speedup:5.2f}x slower"
            target = ">= 1.0x (" + ("met" if speedup >= 1 else "NOT met") + ")"
        ratio, target = epigraf_ratio(r, rows) or (ratio, target)
        print(f"{r['name']:40s} {r['images_per_s']:9.2f} {r['step_s']:8.2f} {r['peak_gb']:8.2f}  {ratio:18s} {target}")
    if ref:
        print(f"official pi-GAN train step (CelebA settings, 32x32, batch 8, split 2, CPU): {ref:.1f} s "
              f"= {8 / ref:.2f} images/s (reference timings.json)")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
