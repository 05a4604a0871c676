"""ShadeGAN's surface tracking: what it saves at render time and in training (printed table + JSON, not a test).

Render: one image (B = 1, psi 0.5, the tools' deterministic sampling) of the same model at each size,
cases interleaved within every repeat, median of --repeats after one warm-up round:

* ``full 12+12``      delta = -1: 12 coarse + 12 fine samples over [near, far];
* ``tracked 12+12``   the preset's delta: the same samples inside the tracked band (the official README:
  "costs almost nothing extra", the number of SIREN evaluations is the same);
* ``tracked 6+6``     the band with the samples the training schedule anneals to (num_steps 12 -> 6).

The paper's -48% inference time is the band *with* fewer samples, i.e. ``tracked 6+6 / full 12+12``; the
``tracked 12+12`` row isolates the tracker's own cost. The model is the official fixture generator
(``$AWARE3D_REFERENCE/shadegan/generator.pth``, EMA weights: a real surface) when present, else a randomly
initialised ``shadegan-celeba-view``. The official timings (timings.json: same settings, 1 thread, they
include drawing the 10000-z truncation average) are compared with ours plus that average; that ratio spans
two processes (and a loaded machine, see the fixture README), so it is informational.

Training: the trainer step of a real preset at --train-resolution (default shadegan-celeba-view, 32 px,
batch 4) at a step where the band and the samples per ray have annealed (6 coarse + 6 fine), against the
same model at the same step with tracking off (``loss.track_start`` beyond the step: full range, 12 + 12),
with the tracker kept at 12 + 12 samples (its own overhead), and without a tracker at all. The paper
reports -24% training time. Wall and process-CPU medians are both reported (CPU time is robust to other
jobs on the machine; with one thread the two agree on an idle machine).

    python benchmarks/shadegan.py [--threads 1] [--repeats 3] [--quick] [--out benchmarks/results/shadegan.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

import aware3d
from aware3d.io.media import write_json

PAPER_RENDER_RATIO = 0.52
"""The paper's inference time with surface tracking relative to without (-48%)."""
PAPER_TRAIN_RATIO = 0.76
"""The paper's training time with surface tracking relative to without (-24%)."""
REPO = Path(__file__).resolve().parents[1]


def reference_dir() -> Path:
    """``$AWARE3D_REFERENCE/shadegan`` (default ``../shared/reference/shadegan`` beside the checkout)."""
    return Path(os.environ.get("AWARE3D_REFERENCE", REPO.parent / "shared" / "reference")) / "shadegan"


@dataclass
class Timing:
    """Wall and process-CPU seconds of the timed repeats of one case."""

    wall: list[float]
    """Wall-clock seconds, one per repeat."""
    cpu: list[float]
    """Process CPU seconds (all threads), one per repeat."""

    def median(self) -> dict[str, float]:
        return {"wall_s": statistics.median(self.wall), "cpu_s": statistics.median(self.cpu),
                "wall_runs": self.wall, "cpu_runs": self.cpu}


def interleaved(cases: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, dict]:
    """Run every case once per round (``warmup`` untimed rounds first); median wall / CPU seconds per case."""
    timings = {name: Timing([], []) for name in cases}
    for r in range(warmup + repeats):
        for name, fn in cases.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            if r >= warmup:
                timings[name].wall.append(time.perf_counter() - t0)
                timings[name].cpu.append(time.process_time() - c0)
    return {name: t.median() for name, t in timings.items()}


# ------------------------------------------------------------------------------------------------ render

def load_generator() -> tuple[aware3d.models.base.Generator3D, str]:
    """The official fixture generator (EMA) if present, else a random ``shadegan-celeba-view`` with w_avg."""
    path = reference_dir() / "generator.pth"
    if path.is_file():
        return aware3d.load(str(path), preset="shadegan-celeba-view").eval(), f"official fixture {path} (EMA weights)"
    G = aware3d.load("shadegan-celeba-view").eval()
    G.update_w_avg()
    return G, "random init shadegan-celeba-view (no fixture found)"


RENDER_CASES = {"full 12+12": (-1.0, 12), "tracked 12+12": (None, 12), "tracked 6+6": (None, 6)}
"""name -> (delta (None: the preset's), coarse = fine samples per ray)."""


def render_section(G, sizes: list[int], repeats: int) -> dict[int, dict]:
    """Per size: each case's timings and the mean |difference| of its image / depth to ``full 12+12``."""
    w = G.mapping(G.z_from_seeds([0]), 0.5).detach()
    cams = G.cameras([G.config.pose.yaw_mean], [G.config.pose.pitch_mean])
    results: dict[int, dict] = {}
    for res in sizes:
        outputs: dict[str, object] = {}

        def case(name: str, delta: float | None, samples: int) -> Callable[[], None]:
            def fn() -> None:
                with torch.no_grad():
                    outputs[name] = G.synthesis(w, cams, resolution=res, render=G.eval_render_config(samples),
                                                delta=delta)
            return fn

        times = interleaved({n: case(n, d, s) for n, (d, s) in RENDER_CASES.items()}, repeats)
        full = outputs["full 12+12"]
        for name, entry in times.items():
            out = outputs[name]
            # Images in [-1, 1] -> colour units of [0, 1]; depth in world units.
            entry["image_mean_abs_diff_vs_full"] = float((out.image - full.image).abs().mean() / 2)
            entry["depth_mean_abs_diff_vs_full"] = float((out.depth - full.depth).abs().mean())
            entry["opacity_mean"] = float(out.opacity.mean())
        results[res] = times
    return results


def w_avg_seconds(G, repeats: int) -> float:
    """Median seconds to map 10000 z (the average the official render draws every time)."""
    def fn() -> None:
        with torch.no_grad():
            G.mapping_network(torch.randn(10000, G.z_dim))
    return interleaved({"w_avg": fn}, repeats)["w_avg"]["wall_s"]


def official_render_seconds() -> dict[tuple[int, bool], float]:
    """(size, tracking) -> median wall seconds of the official 1-thread renders (warm-ups excluded)."""
    f = reference_dir() / "timings.json"
    if not f.is_file():
        return {}
    runs: dict[tuple[int, bool], list[float]] = {}
    for r in json.loads(f.read_text())["runs"]:
        if r["threads"] == 1 and not r["warmup"]:
            runs.setdefault((r["img_size"], r["surface_tracking"]), []).append(r["wall_s"])
    return {k: statistics.median(v) for k, v in runs.items()}


# ---------------------------------------------------------------------------------------------- training

def annealed_step(loss, samples: int) -> int:
    """The first step after ``track_start`` at which the recipe's samples per ray have reached their minimum."""
    span = samples - loss.num_samples_min
    if span <= 0:
        return loss.track_start + 1
    return loss.track_start + math.ceil(math.log(2 * span) / loss.track_beta) + 1


TRAIN_CASES = {
    "tracked, annealed": (),
    "tracked, stage samples": ("loss.num_samples_min={samples}",),
    "untracked (track_start beyond)": ("loss.track_start=1000000000",),
    "no tracker built": ("loss.surface_tracking=false", "model.surface_tracker=false"),
}
"""name -> extra overrides ({samples}: the stage's samples per ray)."""


def make_trainer(preset: str, stage: dict, extra: tuple[str, ...], out: Path, threads: int):
    from aware3d.training.config import TrainOptions
    from aware3d.training.trainer import Trainer

    override = ("curriculum.stages=" + json.dumps([stage]), *extra)
    trainer = Trainer(TrainOptions(preset=preset, data=f"synthetic-heads:{4 * stage['batch_size']}", out=str(out),
                                   steps=10 ** 9, device="cpu", sample_every=0, checkpoint_every=10 ** 9,
                                   progress=False, tensorboard=False, override=override))
    torch.set_num_threads(threads)
    return trainer


def step_settings(trainer) -> dict:
    """The recipe's band width and samples per ray at the trainer's current step."""
    from aware3d.losses.base import StageState

    st, cur = trainer.state.step, trainer.cfg.curriculum
    stage = StageState(st, cur.stage(st).resolution, cur.render_config(trainer.G.config.render, st), cur.alpha(st), 0)
    render = trainer.recipe.render_config(stage)
    return {"step": st, "delta": trainer.recipe.delta(st), "num_samples": render.num_samples,
            "num_importance": render.num_importance}


def train_section(preset: str, resolution: int, batch: int, repeats: int, threads: int) -> dict:
    """Trainer steps of every case at the same step (after the samples have annealed), interleaved."""
    from aware3d.training.presets import get_train_preset

    tp = get_train_preset(preset)
    samples = tp.curriculum.stages[0].num_samples
    step = annealed_step(tp.loss, samples)
    stage = {"start": 0, "resolution": resolution, "batch_size": batch, "batch_split": 1, "num_samples": samples,
             "g_lr": tp.curriculum.stages[0].g_lr, "d_lr": tp.curriculum.stages[0].d_lr}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {}
        for i, (name, extra) in enumerate(TRAIN_CASES.items()):
            t = make_trainer(preset, stage, tuple(e.format(samples=samples) for e in extra), Path(tmp) / str(i),
                             threads)
            t.state.step = step
            trainers[name] = t
        settings = {name: step_settings(t) for name, t in trainers.items()}
        times = interleaved({name: t.step for name, t in trainers.items()}, repeats)
    for name, entry in times.items():
        entry.update(settings[name], images_per_s=batch / entry["wall_s"], images_per_cpu_s=batch / entry["cpu_s"])
    return {"preset": preset, "resolution": resolution, "batch": batch, "step": step, "cases": times}


# -------------------------------------------------------------------------------------------------- report

def render_rows(render: dict[int, dict], w_avg_s: float, official: dict[tuple[int, bool], float]) -> list[tuple]:
    """(figure, value, ratio, target) rows of the render section."""
    rows = []
    for res, cases in render.items():
        full = cases["full 12+12"]
        for name, e in cases.items():
            rows.append((f"render {res}px {name} (wall s | cpu s)", f"{e['wall_s']:.3f} | {e['cpu_s']:.3f}", "", ""))
        for name, target in (("tracked 12+12", "~1 (README)"), ("tracked 6+6", f"{PAPER_RENDER_RATIO:.2f} (paper)")):
            e = cases[name]
            rows.append((f"  {name} / full 12+12 (wall | cpu)", "",
                         f"{e['wall_s'] / full['wall_s']:.3f} | {e['cpu_s'] / full['cpu_s']:.3f}", target))
            rows.append((f"  {name}: mean |image diff| vs full ([0,1])", f"{e['image_mean_abs_diff_vs_full']:.4f}",
                         "", ""))
        for tracking, name in ((False, "full 12+12"), (True, "tracked 12+12")):
            ref = official.get((res, tracking))
            if ref:
                ours = cases[name]["wall_s"] + w_avg_s
                rows.append((f"  ours + w_avg vs official, {name} (s)", f"{ours:.3f} vs {ref:.2f}",
                             f"{ours / ref:.3f}", "info"))
    return rows


def train_rows(train: dict) -> list[tuple]:
    """(figure, value, ratio, target) rows of the training section."""
    cases = train["cases"]
    base = cases["untracked (track_start beyond)"]
    rows = []
    for name, e in cases.items():
        rows.append((f"train {name}: {e['num_samples']}+{e['num_importance']}, delta {e['delta']:.3f}",
                     f"{e['images_per_s']:.3f} img/s | {e['cpu_s']:.2f} cpu s", "", ""))
    for name, target in (("tracked, annealed", f"{PAPER_TRAIN_RATIO:.2f} (paper)"), ("tracked, stage samples", ""),
                         ("no tracker built", "")):
        e = cases[name]
        rows.append((f"  step time {name} / untracked (wall | cpu)", "",
                     f"{e['wall_s'] / base['wall_s']:.3f} | {e['cpu_s'] / base['cpu_s']:.3f}", target))
    return rows


def print_table(rows: list[tuple]) -> None:
    print(f"{'figure':58s} {'value':>24s} {'ratio':>14s} {'target':>14s}")
    for figure, value, ratio, target in rows:
        print(f"{figure:58s} {value:>24s} {ratio:>14s} {target:>14s}")


def ratios(render: dict[int, dict], train: dict) -> dict:
    """The headline ratios (wall-clock and CPU) for the JSON."""
    out: dict = {"render": {}, "train": {}}
    for res, cases in render.items():
        full = cases["full 12+12"]
        out["render"][res] = {name: {"wall": cases[name]["wall_s"] / full["wall_s"],
                                     "cpu": cases[name]["cpu_s"] / full["cpu_s"]}
                              for name in ("tracked 12+12", "tracked 6+6")}
    base = train["cases"]["untracked (track_start beyond)"]
    out["train"] = {name: {"wall": e["wall_s"] / base["wall_s"], "cpu": e["cpu_s"] / base["cpu_s"]}
                    for name, e in train["cases"].items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per case (default 3, --quick 1)")
    ap.add_argument("--quick", action="store_true", help="64 px only, 1 repeat, training on shadegan-tiny")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="render sizes (default 64 128; --quick 64)")
    ap.add_argument("--train-preset", default=None, help="default shadegan-celeba-view (--quick: shadegan-tiny)")
    ap.add_argument("--train-resolution", type=int, default=32)
    ap.add_argument("--train-batch", type=int, default=4)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "shadegan.json"), help="JSON path")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    repeats = args.repeats or (1 if args.quick else 3)
    sizes = args.sizes or ([64] if args.quick else [64, 128])
    preset = args.train_preset or ("shadegan-tiny" if args.quick else "shadegan-celeba-view")
    t0 = time.perf_counter()
    G, source = load_generator()
    render = render_section(G, sizes, repeats)
    w_avg_s = w_avg_seconds(G, repeats)
    official = official_render_seconds()
    train = train_section(preset, args.train_resolution, args.train_batch, repeats, args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); render model: {source}; "
          f"delta {G.config.delta}; w_avg of 10000 z: {w_avg_s:.3f} s")
    print(f"training: {preset} at {args.train_resolution} px, batch {args.train_batch}, step {train['step']}")
    print_table(render_rows(render, w_avg_s, official) + train_rows(train))
    doc = {"torch": torch.__version__, "threads": torch.get_num_threads(), "repeats": repeats, "quick": args.quick,
           "render_model": source, "delta": G.config.delta, "render": render, "w_avg_10000_s": w_avg_s,
           "official_render_1thread_s": {f"{s}px tracking={t}": v for (s, t), v in official.items()},
           "train": train, "ratios": ratios(render, train),
           "targets": {"render_tracked_annealed_over_full": PAPER_RENDER_RATIO,
                       "train_tracked_annealed_over_untracked": PAPER_TRAIN_RATIO},
           "total_s": time.perf_counter() - t0}
    print(f"wrote {write_json(Path(args.out), doc)} ({doc['total_s']:.0f} s)")


if __name__ == "__main__":
    main()
