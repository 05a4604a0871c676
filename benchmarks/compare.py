"""Exact vs reference kernels, per family, in one process.

For every family a table of cases (a render of a full-size preset with random weights, a camera-only frame
on cached tri-planes, a training step of the family's tiny recipe). Each case runs in three modes,
alternating within each repetition so that machine noise hits all of them alike:

* reference: ``aware3d.nn.kernels.reference_kernels()`` and the official-arithmetic field (what the parity
  fixtures were matched against; the issue measured it as fast as the official code on this machine);
* exact: the default kernels and the tools' path (channels-last convolutions, polyphase resampling, one
  gather over the stacked tri-planes, the folded SIREN), the same outputs within the parity tolerances;
* the fast mode (the tools' ``--fast``) and its parts: ``bands`` (probe-and-band sampling,
  ``RenderConfig.bands``, float32), ``bf16`` (the exact sampling with ``low_precision()``'s bfloat16 kernels)
  and ``fast`` (both), with their mean |image - exact| (target: >= 5x the exact mode at <= 1e-2 on trained
  models: random weights render fog, whose errors say little about surfaces; ``--checkpoints`` adds render
  cases of trained checkpoints, e.g. the demo's runs);
* on CUDA also tf32 (TensorFloat-32 matmuls and convolutions) and, with --compile, torch.compile.

Columns: median seconds, the ratios reference / mode and exact / mode, the max |mode - reference| of the
image (render cases, against the parity tolerance), the mean |mode - exact| and the mean |mode - converged|
(converged: 4x the samples, unjittered, rendered once untimed; a jittered exact mode is itself far from
it), the peak memory the case adds (CPU: RSS sampled every
5 ms above the RSS before it; CUDA: peak allocated), and the case's GFLOP/s (matmul + convolution FLOPs
counted by ``torch.utils.flop_counter`` on one run) against the GEMM and convolution ceilings measured in
the same run.

    python benchmarks/compare.py [--families pigan eg3d epigraf shadegan cgof] [--reps 3] [--device cpu|cuda]
                                 [--threads N] [--quick] [--json out.json] [--checkpoints RUN/generator ...]

``--quick`` shrinks the renders (64 px, EG3D neural rendering 32 px) to check the script itself in seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

import aware3d
from aware3d.models.registry import build_generator
from aware3d.nn.kernels import low_precision, reference_kernels
from aware3d.rendering.bands import SurfaceBands


# ------------------------------------------------------------------------------------------ measuring
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rss_bytes() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


@contextlib.contextmanager
def peak_memory(device: torch.device, result: list[float]):
    """Appends the peak bytes the block adds (CUDA: max allocated above the start; CPU: sampled RSS)."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        yield
        sync(device)
        result.append(torch.cuda.max_memory_allocated(device) - start)
        return
    start, peak, done = rss_bytes(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield
    finally:
        done.set()
        sampler.join()
        result.append(max(peak[0], rss_bytes()) - start)


def best_gflops(fn: Callable[[], object], flop: float, device: torch.device, reps: int = 5) -> float:
    fn()
    sync(device)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return flop / best / 1e9


def ceilings(device: torch.device) -> dict[str, float]:
    """GFLOP/s of a float32 GEMM and of a 3x3 convolution (channels-last), best of 5, this process."""
    n = 4096 if device.type == "cuda" else 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    c = torch.empty(n, n, device=device)
    gemm = best_gflops(lambda: torch.mm(a, b, out=c), 2 * n ** 3, device)
    size, ch = (256, 256) if device.type == "cuda" else (128, 256)
    x = torch.randn(1 if device.type == "cpu" else 8, ch, size, size, device=device).to(memory_format=torch.channels_last)
    w = torch.randn(ch, ch, 3, 3, device=device).to(memory_format=torch.channels_last)
    with torch.no_grad():
        conv = best_gflops(lambda: torch.nn.functional.conv2d(x, w, padding=1),
                           2 * x.shape[0] * ch * ch * 9 * size * size, device)
    return {"gemm": gemm, "conv": conv}


class FlopCount(TorchDispatchMode):
    """Sums the matmul and convolution FLOPs of every op run inside (torch's own FLOP formulas), without
    FlopCounterMode's per-module tracking (which breaks ``autograd.grad`` in the R1 penalty)."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def count_flop(fn: Callable[[], object]) -> float:
    with FlopCount() as counter:
        fn()
    return float(counter.total)


# ------------------------------------------------------------------------------------------ cases
@dataclass
class Case:
    """One row: ``modes`` maps a mode name to a zero-argument function returning an image (or None)."""

    family: str
    name: str
    modes: dict[str, Callable[[], torch.Tensor | None]]
    tolerance: float | None = None
    """The parity tolerance the exact image must stay within (max abs vs the reference); None: not compared."""
    official: float | None = None
    """The official code's seconds for this case from the reference fixtures (another run: a hint, not a ratio)."""
    batch: int = 1
    """Images per call (the per-second column is batch / seconds)."""
    converged: Callable[[], torch.Tensor] | None = None
    """The same image rendered with 4x the samples, unjittered (run once, untimed): what every mode's sampling
    error is measured against (a jittered exact mode is itself far from it)."""
    results: dict[str, dict] = field(default_factory=dict)


def official_seconds(family: str, file: str, *keys: str) -> float | None:
    """A median from ``$AWARE3D_REFERENCE/<family>/<file>`` (None when absent)."""
    root = Path(os.environ.get("AWARE3D_REFERENCE", Path(__file__).resolve().parents[2] / "shared" / "reference"))
    try:
        node = json.loads((root / family / file).read_text())
        for k in keys:
            node = node[k]
        return float(node["median_s"])
    except (OSError, KeyError, ValueError, TypeError):
        return None


PIGAN_OFFICIAL = {64: ("render_set_final_7reps", "forward_64x64_b1_steps12_hier"),
                  128: ("render_set_final_7reps", "staged_forward_128x128_b1_steps12_hier")}


def in_reference(fn: Callable[[], torch.Tensor | None]) -> Callable[[], torch.Tensor | None]:
    def run():
        with reference_kernels():
            return fn()
    return run


@contextlib.contextmanager
def tf32(enabled: bool = True):
    """TensorFloat-32 matmuls and convolutions on CUDA inside the block (off elsewhere in this script)."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def with_tf32(fn: Callable) -> Callable:
    def run():
        with tf32():
            return fn()
    return run


GPU_CHUNK = 2 ** 21
"""Points per field call on CUDA (the CPU chunk of 16384 would make a GPU render a loop of Python calls)."""


def device_modes(modes: dict[str, Callable], device: torch.device, compile_modes: bool) -> dict[str, Callable]:
    """On CUDA: plus the exact mode with TF32 and, with ``compile_modes``, torch.compile's default mode with
    TF32 (compiling takes minutes per case); elsewhere ``modes`` as they are."""
    if device.type != "cuda":
        return modes
    exact = modes["exact"]
    extra = {"tf32": with_tf32(exact)}
    if compile_modes:
        extra["compiled"] = with_tf32(torch.compile(exact))
    return {**modes, **extra}


def fast_modes(render: Callable[[object], torch.Tensor], cfg) -> dict[str, Callable]:
    """The fast mode and its two parts, from ``render(render_config) -> image``: ``bands`` (band sampling
    alone, float32), ``bf16`` (the exact sampling in bfloat16 kernels) and ``fast`` (both: --fast)."""
    def mode(bands: bool, low: bool) -> Callable[[], torch.Tensor]:
        config = replace(cfg, bands=SurfaceBands()) if bands else cfg

        def run():
            with low_precision(low):
                return render(config)
        return run
    return {"bands": mode(True, False), "bf16": mode(False, True), "fast": mode(True, True)}


def converged(render: Callable[[object], torch.Tensor], cfg) -> Callable[[], torch.Tensor]:
    """``render`` with 4x the coarse and fine samples, unjittered, deterministic importance sampling."""
    dense = replace(cfg, num_samples=4 * cfg.num_samples, num_importance=4 * cfg.num_importance, perturb=False,
                    importance_det=True)
    return lambda: render(dense)


def render_modes(G, cams, render, **kw) -> tuple[dict[str, Callable], Callable]:
    """reference / exact / fast renders of latent seed 0 with the tools' settings ``render``, and the converged
    render."""
    w = G.mapping(G.z_from_seeds([0]), 0.7).detach()

    def image(cfg, folded: bool = True) -> torch.Tensor:
        gen = torch.Generator(device=G.device).manual_seed(0)
        return G.synthesis(w, cams, fast=folded, generator=gen, render=cfg, **kw).image

    return ({"reference": in_reference(lambda: image(render, folded=False)), "exact": lambda: image(render),
             **fast_modes(image, render)}, converged(image, render))


PRESET_OVERRIDES = {"cgof-celeba": ["face_model=synthetic"]}
"""Full-size presets that need a licensed file by default: the built-in stand-in (same sizes) instead."""


def siren_cases(family: str, preset: str, sizes: list[int], device: torch.device, compile_modes: bool,
                batch: int = 1) -> list[Case]:
    G = build_generator(preset, overrides=PRESET_OVERRIDES.get(preset)).to(device).eval()
    p = G.config.pose
    cams = G.cameras([p.yaw_mean + 0.05 * i for i in range(batch)], [p.pitch_mean] * batch)
    cfg = G.eval_render_config(12, **({"max_points": GPU_CHUNK} if device.type == "cuda" else {}))
    cases = []
    for s in sizes:
        modes, dense = render_modes(G, cams, cfg, resolution=s)
        cases.append(Case(family, f"render {preset} {s} px, 12+12 samples, batch {batch}",
                          device_modes(modes, device, compile_modes), tolerance=1e-4, batch=batch, converged=dense,
                          official=official_seconds("pigan", "timings.json", *PIGAN_OFFICIAL[s])
                          if family == "pigan" and s in PIGAN_OFFICIAL and batch == 1 else None))
    return cases


def eg3d_cases(preset: str, nrr: list[int], device: torch.device, compile_modes: bool) -> list[Case]:
    G = aware3d.load(preset, device=device)
    cams = G.cameras([G.config.pose.yaw_mean], [G.config.pose.pitch_mean])
    cfg = G.eval_render_config(**({"max_points": GPU_CHUNK} if device.type == "cuda" else {}))
    cases = []
    for r in nrr:
        full, dense = render_modes(G, cams, cfg, resolution=r)
        with torch.no_grad():
            ws = G.mapping(G.z_from_seeds([0]), 0.7)
            planes = G.planes(ws)

        def camera_only(render=cfg, r=r, planes=planes, ws=ws):
            gen = torch.Generator(device=G.device).manual_seed(0)
            return G.render_planes(planes, ws, cams, resolution=r, render=render, generator=gen).image

        cached = {"reference": in_reference(camera_only), "exact": camera_only,
                  **fast_modes(camera_only, cfg)}
        full, cached = device_modes(full, device, compile_modes), device_modes(cached, device, compile_modes)
        cases.append(Case(G.family, f"{preset} {G.config.img_resolution} px frame, neural {r} px", full, 1e-4,
                          official_seconds("eg3d", "timing.json", "full", f"mapping+synthesis_nrr{r}"), converged=dense))
        cases.append(Case(G.family, f"{preset} camera-only frame, neural {r} px", cached, 1e-4,
                          converged=converged(camera_only, cfg)))
    return cases


def checkpoint_cases(paths: list[str], device: torch.device, resolutions: list[int]) -> list[Case]:
    """Render cases of trained checkpoints (their own evaluation settings, three views of seeds 0-2)."""
    return [case for path in paths for case in _checkpoint_cases(path, device, resolutions)]


def _checkpoint_cases(path: str, device: torch.device, resolutions: list[int]) -> list[Case]:
    G = aware3d.load(path, device=device).eval()
    p = G.config.pose
    cams = G.cameras([p.yaw_mean + d for d in (-0.4, 0.0, 0.3)], [p.pitch_mean] * 3)
    w = G.mapping(G.z_from_seeds([0, 1, 2]), G.config.eval_truncation_psi).detach()
    cfg = G.eval_render_config()

    def image(render, res, folded=True):
        gen = torch.Generator(device=G.device).manual_seed(0)
        return G.synthesis(w, cams, resolution=res, render=render, fast=folded, generator=gen).image
    cases = []
    for res in resolutions:
        modes = {"reference": in_reference(lambda res=res: image(cfg, res, folded=False)),
                 "exact": lambda res=res: image(cfg, res),
                 **fast_modes(lambda render, res=res: image(render, res), cfg)}
        cases.append(Case(G.family, f"trained {path} ({G.preset}), {res} px, batch 3", modes, tolerance=1e-4,
                          batch=3, converged=converged(lambda render, res=res: image(render, res), cfg)))
    return cases


def train_case(family: str, preset: str, device: torch.device, tmp: str, stage: dict | None = None,
               official: float | None = None) -> Case:
    """A training step (G and D phases, the recipe's regularisers) of ``preset`` (with its first curriculum stage
    replaced by ``stage``): one trainer per mode, built alike, stepped in turn."""
    from aware3d.training.config import TrainOptions
    from aware3d.training.trainer import Trainer

    def trainer(tag: str):
        return Trainer(TrainOptions(preset=preset, out=str(Path(tmp) / f"{preset}-{tag}"), steps=10 ** 9,
                                    device=str(device), sample_every=0, checkpoint_every=10 ** 9, progress=False,
                                    tensorboard=False,
                                    override=() if stage is None else ("curriculum.stages=" + json.dumps([stage]),)))

    def stepper(t) -> Callable[[], None]:
        def step() -> None:
            t.step()
        return step

    ref, exact = trainer("reference"), trainer("exact")
    name = f"training step {preset}" + ("" if stage is None else f" {stage['resolution']} px, batch {stage['batch_size']}")
    return Case(family, name, {"reference": in_reference(stepper(ref)), "exact": stepper(exact)}, official=official)


PIGAN_OFFICIAL_STAGE = {"start": 0, "resolution": 32, "batch_size": 8, "batch_split": 2, "num_samples": 12,
                        "num_importance": 12, "g_lr": 6e-5, "d_lr": 2e-4}
"""The official pi-GAN timing's training settings (CelebA, 32x32, batch 8 split 2)."""


def build_cases(families: list[str], device: torch.device, quick: bool, tmp: str,
                nrr: list[int] | None = None, compile_modes: bool = False) -> list[Case]:
    sizes = [64] if quick else [64, 128]
    gpu = device.type == "cuda"
    builders = {
        "pigan": lambda: siren_cases("pigan", "pigan-celeba", [128, 256] if gpu else sizes, device, compile_modes,
                                     8 if gpu else 1),
        "shadegan": lambda: siren_cases("shadegan", "shadegan-celeba-view", sizes[:1], device, compile_modes),
        "cgof": lambda: siren_cases("cgof", "cgof-celeba", sizes[:1], device, compile_modes),
        "eg3d": lambda: eg3d_cases("eg3d-ffhq", nrr or ([32] if quick else [64, 128]), device, compile_modes),
        "epigraf": lambda: siren_cases("epigraf", "epigraf-ffhq-512", [64] if quick else [128], device,
                                       compile_modes),
    }
    cases = []
    for family in families:
        cases += builders[family]()
        cases.append(train_case(family, f"{family}-tiny", device, tmp))
        if family == "pigan" and not quick:
            cases.append(train_case(family, "pigan-celeba", device, tmp, PIGAN_OFFICIAL_STAGE, official_seconds(
                "pigan", "timings.json", "train_step_final_3reps", "celeba_settings_32x32_batch8_split2")))
    return cases


MODE_TARGETS = {"exact": ">= 2x ref", "fast": ">= 5x exact"}
"""What each mode aims at (the fast mode also at <= 1e-2 mean |fast - exact| on trained models)."""


# ------------------------------------------------------------------------------------------ running
def run_case(case: Case, reps: int, device: torch.device) -> None:
    outputs, times, memory = {}, {m: [] for m in case.modes}, {m: [] for m in case.modes}
    with torch.no_grad():
        dense = None if case.converged is None else case.converged()
    with torch.no_grad() if case.tolerance is not None else contextlib.nullcontext():
        for mode, fn in list(case.modes.items()):  # warm-up (and compilation), outputs, FLOP counts
            try:
                outputs[mode] = fn()
            except Exception as err:  # an optional mode (torch.compile) that fails here is reported, not fatal
                if mode in ("reference", "exact"):
                    raise
                print(f"  [{case.name}] mode {mode} failed: {type(err).__name__}: {str(err)[:300]}")
                del case.modes[mode], times[mode], memory[mode]
                continue
            case.results[mode] = {"flop": count_flop(case.modes["exact"] if mode == "compiled" else fn)}
        for _ in range(reps):
            for mode, fn in case.modes.items():
                with peak_memory(device, memory[mode]):
                    sync(device)
                    t0 = time.perf_counter()
                    fn()
                    sync(device)
                    times[mode].append(time.perf_counter() - t0)
    for mode in case.modes:
        r = case.results[mode]
        r.update(seconds=statistics.median(times[mode]), peak_mib=max(memory[mode]) / 2 ** 20)
        r["gflops"] = r["flop"] / r["seconds"] / 1e9
        if outputs.get("reference") is not None and outputs[mode] is not None:
            r["max_abs_vs_reference"] = float((outputs[mode] - outputs["reference"]).abs().max())
            r["mean_abs_vs_reference"] = float((outputs[mode] - outputs["reference"]).abs().mean())
            r["mean_abs_vs_exact"] = float((outputs[mode] - outputs["exact"]).abs().mean())
        if dense is not None and outputs[mode] is not None:
            r["mean_abs_vs_converged"] = float((outputs[mode] - dense).abs().mean())


def print_case(case: Case, ceil: dict[str, float]) -> None:
    ref, exact = case.results["reference"]["seconds"], case.results["exact"]["seconds"]
    print(f"\n[{case.family}] {case.name}")
    print(f"  {'mode':10s} {'seconds':>9s} {'ref/mode':>9s} {'exact/mode':>10s} {'target':>12s} {'max|d|ref':>9s} "
          f"{'mean|d|ex':>9s} {'mean|d|cv':>9s} {'peak MiB':>9s} {'GFLOP/s':>8s} {'of GEMM':>8s} {'of conv':>8s} "
          f"{'images/s':>9s}")
    for mode, r in case.results.items():
        target = MODE_TARGETS.get(mode, "")
        diff, mean, conv = r.get("max_abs_vs_reference"), r.get("mean_abs_vs_exact"), r.get("mean_abs_vs_converged")
        diff_s = "" if diff is None or mode == "reference" else f"{diff:9.1e}"
        mean_s = "" if mean is None or mode in ("reference", "exact") else f"{mean:9.1e}"
        conv_s = "" if conv is None else f"{conv:9.1e}"
        print(f"  {mode:10s} {r['seconds']:9.3f} {ref / r['seconds']:8.2f}x {exact / r['seconds']:9.2f}x "
              f"{target:>12s} {diff_s:>9s} {mean_s:>9s} {conv_s:>9s} {r['peak_mib']:9.0f} {r['gflops']:8.1f} "
              f"{r['gflops'] / ceil['gemm']:8.1%} {r['gflops'] / ceil['conv']:8.1%} {case.batch / r['seconds']:9.2f}")
    if case.official is not None:
        print(f"  official code, reference fixture's own run (another process and load): {case.official:.3f} s")
    if case.tolerance is not None and "max_abs_vs_reference" in case.results["exact"]:
        ok = case.results["exact"]["max_abs_vs_reference"] <= case.tolerance
        print(f"  exact within the parity tolerance {case.tolerance:g}: {'yes' if ok else 'NO'}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="*", default=["pigan", "eg3d", "epigraf", "shadegan", "cgof"],
                    choices=["pigan", "eg3d", "epigraf", "shadegan", "cgof"])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="small renders: checks the script, not the speed")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--compile", action="store_true", help="CUDA: also time torch.compile'd renders")
    ap.add_argument("--nrr", type=int, nargs="+", default=None, help="EG3D neural rendering sizes (64 128)")
    ap.add_argument("--no-train", action="store_true", help="leave the training-step cases out")
    ap.add_argument("--checkpoints", nargs="+", default=[], help="trained checkpoints to add render cases of")
    ap.add_argument("--checkpoint-resolutions", type=int, nargs="+", default=[64, 128])
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # exact unless a mode says
    ceil = ceilings(device)
    if device.type == "cuda":
        with tf32():
            ceil_tf32 = ceilings(device)
        print(f"TF32 ceilings: GEMM {ceil_tf32['gemm']:.1f} GFLOP/s, conv {ceil_tf32['conv']:.1f} GFLOP/s")
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} CPU threads; ceilings: "
          f"GEMM {ceil['gemm']:.1f} GFLOP/s, 3x3 conv {ceil['conv']:.1f} GFLOP/s")
    report = {"device": str(device), "threads": torch.get_num_threads(), "ceilings": ceil, "cases": []}
    with tempfile.TemporaryDirectory() as tmp:
        cases = checkpoint_cases(args.checkpoints, device, args.checkpoint_resolutions)
        for case in cases + build_cases(args.families, device, args.quick, tmp, args.nrr, args.compile):
            if args.no_train and case.name.startswith("training step"):
                continue
            run_case(case, args.reps, device)
            print_case(case, ceil)
            report["cases"].append({"family": case.family, "case": case.name, "official_s": case.official,
                                    **case.results})
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
