"""Shape study: pi-GAN vs ShadeGAN trained with the same compute on synthetic heads, scored on the ground truth.

Both families train on ``synthetic-heads`` (a light direction drawn per image) with one shared recipe: the
same resolution, batch, steps, samples per ray (12, no importance sampling), learning rates, density noise,
discriminator and loss weights, and the same model width (each family's ``-tiny`` network: 3 FiLM layers of
32, box warp 0.36, view-independent colour). The shared numbers are those of ``pigan-demo``, the
repository's recipe for heads in minutes on a CPU (tuned on pi-GAN, not on ShadeGAN). ShadeGAN keeps what
makes it ShadeGAN: Lambertian shading under lights drawn from a light prior fitted to the training
images' lights (``aware3d light-prior --data``: the same ambient and diffuse as the synthetic renderer, the
light directions' spread), phased in over the first 200 steps, and the light-conditioned albedo. Shared as well: the pose term's
distance (pi-GAN's smooth L1, ShadeGAN's own is MSE) and the mapping network's rate (the full rate, as the
released ShadeGAN runs trained, see :mod:`aware3d.models.shadegan.loss`). ShadeGAN trains without the
surface tracker (as the official BFM recipe), so both sample the same points per ray for the whole run.

Then both EMA generators are scored with the repository's metrics (:func:`aware3d.metrics.evaluate`): SIDE
and MAD (normal angle error, degrees) of the rendered depth against a depth network trained on the
dataset's true depth (the ShadeGAN / unsup3d protocol), and SWD against the data; generated at
--metric-resolution with 12 + 12 deterministic samples, ShadeGAN under lights drawn from its prior.

Each model trains in its own process (``--jobs 2``: in parallel, one torch thread each) into
``<out>/runs/<model>``; an interrupted study resumes exactly (rerun the same command), and each model's
numbers are written to ``<out>/results/<model>.json`` as soon as it finishes. At the end: the table,
``<out>/shape_study.json`` and ``<out>/shape_study.png`` (rows: ground truth, pi-GAN, ShadeGAN; each image,
depth, normals).

    python benchmarks/shape_study.py [--out /tmp/shape_study] [--steps 2500] [--jobs 2] [--threads 1]
    python benchmarks/shape_study.py --quick --out /tmp/shape_quick     # a few minutes, a smoke check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

MODELS = ("pigan", "shadegan")
"""The two runs, in launch order."""


@dataclass(frozen=True)
class StudyConfig:
    """What both runs share (stored as ``<out>/study_config.json``; a resumed study must match it)."""

    steps: int = 2500
    """Training steps of each model."""
    batch: int = 8
    """Images per step."""
    resolution: int = 32
    """Training resolution in pixels."""
    num_samples: int = 12
    """Coarse samples per ray in training (no importance samples)."""
    g_lr: float = 3e-4
    """Generator learning rate."""
    d_lr: float = 4e-4
    """Discriminator learning rate."""
    data_pool: int = 4096
    """Synthetic heads rendered once and trained on from memory."""
    metric_images: int = 512
    """Generated images per metric (and real images for SWD)."""
    metric_resolution: int = 64
    """Render size for the metrics (SWD levels 64 / 32 / 16)."""
    eval_samples: int = 12
    """Coarse = fine samples per ray of the metric and grid renders."""
    depth_net_steps: int = 300
    """Training steps of SIDE's depth network (the metric's default; cached, shared by both models)."""
    threads: int = 1
    """Torch threads per training process."""
    seed: int = 0
    """Seed of both runs and of the metrics."""


QUICK = StudyConfig(steps=40, data_pool=256, metric_images=32, depth_net_steps=30)
"""A smoke check: a few minutes in all; its numbers mean nothing."""


def training_setup(name: str, cfg: StudyConfig) -> tuple[str, tuple[str, ...]]:
    """(training preset, overrides) of one model: the shared recipe plus the family's own switches."""
    stage = {"start": 0, "resolution": cfg.resolution, "batch_size": cfg.batch, "batch_split": 1,
             "num_samples": cfg.num_samples, "num_importance": 0, "g_lr": cfg.g_lr, "d_lr": cfg.d_lr}
    shared = (
        "curriculum.stages=" + json.dumps([stage]), "curriculum.fade_steps=200", "curriculum.density_noise=0.5",
        "curriculum.density_noise_steps=300",
        "discriminator.max_resolution=64", "discriminator.channel_base=512", "discriminator.channel_max=64",
        "discriminator.latent_dim=0",
        "loss.r1_gamma=0.3", "loss.pos_lambda=15", "loss.identity_loss=smooth_l1", "loss.topk_v=0.6", "loss.topk_interval=200", "loss.grad_clip=10",
        "model.box_warp=0.36", "model.hidden_dim=32", "model.num_film_layers=3", "model.z_dim=32",
        "model.mapping_hidden_dim=32", "model.mapping_layers=2",
        f"model.eval_render.num_samples={cfg.eval_samples}", f"model.eval_render.num_importance={cfg.eval_samples}",
        "model.eval_render.background=black",
    )
    if name == "pigan":
        return "pigan-tiny", shared + ("model.view_dependent=false",)
    if name == "shadegan":
        mean, std = fitted_light_prior(cfg)
        return "shadegan-tiny", shared + ("model.view_condition=false", "model.surface_tracker=false",
                                          "loss.surface_tracking=false", "loss.shading_start=0",
                                          "loss.shading_ramp=200", "loss.mapping_lr_scale=1",
                                          f"model.light_mean={json.dumps(mean)}", f"model.light_std={json.dumps(std)}")
    raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS)}")


def fitted_light_prior(cfg: StudyConfig) -> tuple[list[float], list[float]]:
    """Mean and per-entry std of the light codes of the training pool's lights (``aware3d light-prior --data``),
    as a ShadeGAN user fits the prior to their data; the model's prior is diagonal, so the tiny correlations
    are dropped."""
    from aware3d.tools.light_prior import LightPriorOptions, dataset_codes, fit_light_prior

    opts = LightPriorOptions(data=f"synthetic-heads:{cfg.data_pool}", resolution=8, progress=False)
    prior, _ridge = fit_light_prior(dataset_codes(opts)[0])
    return ([round(float(v), 5) for v in prior.mean],
            [round(float(v), 5) for v in prior.cov.diagonal().sqrt()])


# ------------------------------------------------------------------------------------------- one model

def train_model(name: str, cfg: StudyConfig, out: Path) -> dict:
    """Train (or resume) ``<out>/runs/<name>`` to ``cfg.steps``; the run's time and last stats."""
    from aware3d.training.config import TrainOptions
    from aware3d.training.trainer import Trainer

    run = out / "runs" / name
    resume = (run / "checkpoint" / "state.json").is_file()
    preset, override = training_setup(name, cfg)
    opts = TrainOptions(preset=preset, data=f"synthetic-heads:{cfg.data_pool}", out=str(run),
                        resume=str(run) if resume else None, steps=cfg.steps, seed=cfg.seed, device="cpu",
                        sample_every=500, checkpoint_every=250, log_every=50, progress=False, tensorboard=False,
                        override=() if resume else override)
    trainer = Trainer(opts)
    result = trainer.train()
    log = run / "stats.jsonl"  # written every log_every steps: absent when a run stopped before the first
    stats = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
    last = next((s for s in reversed(stats) if "G/adv" in s), {})
    return {"preset": preset, "overrides": list(override), "steps": result.step, "stopped_by": result.stopped_by,
            "train_time_s": trainer.state.elapsed_s, "images_per_s": cfg.batch * result.step / trainer.state.elapsed_s,
            "resumed": resume, "last_stats": last, "generator": str(result.generator_dir)}


def light_condition(G, n: int, seed: int):
    """Lights drawn from the model's prior, one per generated image, for a family that takes a light; else None."""
    from aware3d.models.base import Condition

    if "light" not in G.capabilities.conditions:
        return None
    return Condition(light=G.sample_light(n, generator=torch.Generator().manual_seed(seed)))


def evaluate_model(generator_dir: Path, cfg: StudyConfig, out: Path) -> dict:
    """SIDE, MAD and SWD of the exported EMA generator (the depth network is cached in ``<out>/cache``)."""
    import aware3d
    from aware3d.data.base import open_dataset
    from aware3d.metrics import DepthNetConfig, evaluate

    G = aware3d.load(str(generator_dir)).eval()
    data = open_dataset("synthetic-heads", cfg.metric_resolution)
    t0 = time.perf_counter()
    result = evaluate(G, ["side", "swd"], data, num_gen=cfg.metric_images, seed=cfg.seed,
                      resolution=cfg.metric_resolution, depth_net=DepthNetConfig(steps=cfg.depth_net_steps),
                      cache_dir=out / "cache", progress=False,
                      condition=light_condition(G, cfg.metric_images, cfg.seed))
    side = result["metrics"]["side"]
    return {"results": result["results"], "eval_time_s": time.perf_counter() - t0,
            "side_detail": {k: side[k] for k in ("side_std", "images_scored", "images_skipped_small_mask")},
            "depth_net": side["depth_net"], "settings": result["settings"]}


def run_one(name: str, out: Path) -> None:
    """Train and evaluate one model; write ``<out>/results/<name>.json``."""
    cfg = read_config(out)
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    train = train_model(name, cfg, out)
    if train["steps"] < cfg.steps:  # stopped by a signal: checkpointed, not done; rerunning resumes it
        raise SystemExit(f"{name} stopped at step {train['steps']} of {cfg.steps} ({train['stopped_by']}); "
                         "rerun the study to resume it")
    metrics = evaluate_model(Path(train["generator"]), cfg, out)
    from aware3d.io.media import write_json

    write_json(out / "results" / f"{name}.json", {"model": name, "train": train, **metrics,
                                                    "process_wall_s": time.perf_counter() - t0,
                                                    "process_cpu_s": time.process_time()})
    print(f"{name}: {json.dumps(metrics['results'])}", flush=True)


# ------------------------------------------------------------------------------------------- the study

def write_config(out: Path, cfg: StudyConfig) -> None:
    """Store the study's config, refusing to mix a different one into an existing study folder."""
    f = out / "study_config.json"
    if f.is_file():
        old = StudyConfig(**json.loads(f.read_text()))
        if old != cfg:
            raise SystemExit(f"{out} holds a study with other settings ({f}); rerun with the same options to "
                             "resume it, or choose another --out")
        return
    out.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps(asdict(cfg), indent=1))


def read_config(out: Path) -> StudyConfig:
    return StudyConfig(**json.loads((out / "study_config.json").read_text()))


def launch(names: list[str], out: Path, jobs: int, threads: int) -> None:
    """Run ``--one NAME`` for each model, ``jobs`` processes at a time; logs in ``<out>/logs/<name>.log``."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    (out / "logs").mkdir(parents=True, exist_ok=True)
    pending, running, failed = list(names), [], []
    while pending or running:
        while pending and len(running) < jobs:
            name = pending.pop(0)
            log = open(out / "logs" / f"{name}.log", "a")
            proc = subprocess.Popen([sys.executable, __file__, "--one", name, "--out", str(out)], env=env,
                                    stdout=log, stderr=subprocess.STDOUT)
            print(f"started {name} (pid {proc.pid}), log {log.name}", flush=True)
            running.append((name, proc, log))
        time.sleep(2)
        for item in list(running):
            name, proc, log = item
            if proc.poll() is not None:
                log.close()
                running.remove(item)
                print(f"{name} finished with exit code {proc.returncode}", flush=True)
                if proc.returncode:
                    failed.append(name)
    if failed:
        raise SystemExit(f"models {', '.join(failed)} failed: see {out / 'logs'}; rerun to resume")


def table(results: dict[str, dict]) -> str:
    """The study's table: steps, time, images/s and the metrics of each model."""
    head = f"{'model':10s} {'steps':>6s} {'train min':>10s} {'img/s':>7s} {'SIDE':>8s} {'MAD deg':>8s} {'SWD':>8s}" \
           f" {'SWD 64/32/16':>22s}"
    lines = [head]
    for name, r in results.items():
        m, t = r["results"], r["train"]
        levels = "/".join(f"{m[k]:.1f}" for k in sorted((k for k in m if k.startswith("swd_")),
                                                          key=lambda k: -int(k.split("_")[1])))
        lines.append(f"{name:10s} {t['steps']:6d} {t['train_time_s'] / 60:10.1f} {t['images_per_s']:7.2f} "
                     f"{m['side']:8.4f} {m['mad']:8.2f} {m['swd']:8.2f} {levels:>22s}")
    return "\n".join(lines)


@torch.no_grad()
def model_rows(G, cfg: StudyConfig, seeds: list[int], yaws: list[float]) -> list[torch.Tensor]:
    """Image, depth and normal rows (each (len(seeds) * len(yaws), 3, R, R) in [-1, 1]) of a generator,
    psi 1 as the metrics; ShadeGAN under its prior's mean light."""
    from aware3d.api import render
    from aware3d.io.media import colorize_depth, normals_to_image
    from aware3d.metrics.reprojection import output_surface_depth

    pose, n = G.config.pose, len(seeds) * len(yaws)
    z = G.z_from_seeds(seeds).repeat_interleave(len(yaws), 0)
    cams = G.cameras([pose.yaw_mean + y for _ in seeds for y in yaws], [pose.pitch_mean] * n)
    out = render(G, z=z, cameras=cams, resolution=cfg.metric_resolution, truncation_psi=1.0, normals=True)
    fg = out.opacity > 0.5
    depth = colorize_depth(output_surface_depth(out)[:, 0], mask=fg[:, 0]) * 2 - 1
    normals = torch.where(fg, normals_to_image(out.normals) * 2 - 1, -1.0)
    return [out.image.clamp(-1, 1), depth, normals]


def truth_rows(cfg: StudyConfig, n: int) -> list[torch.Tensor]:
    """Image, depth and normal rows of the first ``n`` dataset items (the ground truth)."""
    from aware3d.data.base import open_dataset
    from aware3d.io.media import colorize_depth, normals_to_image

    s = open_dataset("synthetic-heads", cfg.metric_resolution).ground_truth(list(range(n)))
    fg = s.mask > 0.5
    depth = colorize_depth(s.depth[:, 0], mask=fg[:, 0]) * 2 - 1
    return [s.image, depth, torch.where(fg, normals_to_image(s.normals) * 2 - 1, -1.0)]


def save_grid(out: Path, cfg: StudyConfig, names: list[str]) -> Path:
    """``<out>/shape_study.png``: rows of ground truth, then each model (image, depth, normals);
    4 seeds x 3 yaws (-0.4, 0, 0.4 rad) per row."""
    import aware3d
    from aware3d.io.media import save_image

    seeds, yaws = [0, 1, 2, 3], [-0.4, 0.0, 0.4]
    rows = truth_rows(cfg, len(seeds) * len(yaws))
    for name in names:
        rows += model_rows(aware3d.load(str(out / "runs" / name / "generator")).eval(), cfg, seeds, yaws)
    return save_image(out / "shape_study.png", torch.cat(rows), nrow=len(seeds) * len(yaws))


def summarise(out: Path, cfg: StudyConfig) -> None:
    """Print the table and write ``shape_study.json`` and ``shape_study.png`` from the finished models."""
    from aware3d.io.media import write_json

    results = {n: json.loads((out / "results" / f"{n}.json").read_text()) for n in MODELS
               if (out / "results" / f"{n}.json").is_file()}
    text = table(results)
    print(text)
    doc = {"config": asdict(cfg), "models": results, "table": text.splitlines()}
    if set(results) == set(MODELS):
        p, s = results["pigan"]["results"], results["shadegan"]["results"]
        doc["shadegan_minus_pigan"] = {k: s[k] - p[k] for k in ("side", "mad", "swd")}
        print("ShadeGAN - pi-GAN (lower is better for all): " +
              ", ".join(f"{k} {v:+.4f}" for k, v in doc["shadegan_minus_pigan"].items()))
    grid = save_grid(out, cfg, list(results))
    print(f"wrote {write_json(out / 'shape_study.json', doc)} and {grid}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "runs" / "shape_study"),
                    help="study folder (runs, results, logs, cache, the table's JSON and PNG)")
    ap.add_argument("--quick", action="store_true", help="40 steps, 32 metric images: a smoke check")
    ap.add_argument("--steps", type=int, default=None, help="training steps of each model")
    ap.add_argument("--metric-images", type=int, default=None, help="generated images per metric")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per training process (default 1)")
    ap.add_argument("--jobs", type=int, default=2, help="models trained at the same time (1: one after the other)")
    ap.add_argument("--one", choices=MODELS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = Path(args.out)
    if args.one:
        return run_one(args.one, out)
    cfg = QUICK if args.quick else StudyConfig()
    changes = {"steps": args.steps, "metric_images": args.metric_images, "threads": args.threads}
    cfg = replace(cfg, **{k: v for k, v in changes.items() if v is not None})
    write_config(out, cfg)
    todo = [n for n in MODELS if not (out / "results" / f"{n}.json").is_file()]
    t0 = time.perf_counter()
    launch(todo, out, args.jobs, cfg.threads)
    torch.set_num_threads(cfg.threads)
    summarise(out, cfg)
    print(f"study done in {(time.perf_counter() - t0) / 60:.1f} min (this session)")


if __name__ == "__main__":
    main()
