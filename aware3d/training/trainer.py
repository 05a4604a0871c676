"""The GAN trainer, family-agnostic: a step runs the family's loss phases (see :mod:`aware3d.losses.base`).

Reading order: :class:`Trainer` builds the models, optimisers and run folder (or restores them with
``--resume``); :meth:`Trainer.train` loops over :meth:`Trainer.step` and writes stats, samples and
checkpoints; :meth:`Trainer.step` runs one training step.

Determinism: every random draw of step ``s`` (which real images, z, cameras, rendering jitter, noise)
comes from generators seeded by ``(seed, s, ...)``, and the real images follow a per-epoch permutation
indexed by the count of images already seen. So a run resumed from a checkpoint continues with exactly
the draws it would have made, and the global batch is the same whatever the number of processes:
the batch is cut into ``world_size x batch_split`` chunks and process r evaluates chunks
``r * batch_split ...``.
"""

from __future__ import annotations

import hashlib
import signal
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from ..augment.run import DAugment
from ..cameras import Cameras, angles_from_cam2world, from_eg3d_label
from ..config import to_dict
from ..io.atomic import link_folder
from ..io.checkpoint import save_generator
from ..io.media import save_image, write_json
from ..losses.base import Chunk, LossRecipe, Phase, StageState
from ..models.base import Condition, Generator3D
from . import distributed as dist_utils
from .config import RunConfig, TrainOptions, resolve_run_config, resume_run_config, validate_options
from .ema import HALF_LIFE_EMA_NAME, copy_buffers, half_life_beta, make_ema, update_ema, update_half_life_ema
from .guard import Verdict, judge, remember, running_median
from .progress import RunProgress
from .run_folder import (CHECKPOINT, GENERATOR, GOOD_CHECKPOINT, check_fresh_run_dir, checkpoint_step, export_step,
                         promote_good_checkpoint, resume_source, tidy_run_dir, write_run_config)
from .signals import StopRequest, catch_stop_signals, writing_checkpoint
from .state import TrainingState, ema_name, load_training_checkpoint, read_training_meta, save_training_checkpoint
from .stats import StatsWriter, truncate_stats


class TrainingDiverged(RuntimeError):
    """Too many consecutive skipped updates (non-finite or absurd); the message names the last good checkpoint."""


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any tuple of ints/strings (stable across runs and machines)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") & ((1 << 63) - 1)


def resolve_device(name: str, info: dist_utils.DistInfo) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and info.enabled:
        name = f"cuda:{info.local_rank}"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA device is available here; use --device cpu")
    return torch.device(name)


@dataclass
class TrainResult:
    """What :meth:`Trainer.train` returns."""

    run_dir: Path
    step: int
    stopped_by: str
    """finished | time_limit | signal"""
    generator_dir: Path
    images_per_s: float
    stop_signal: int | None = None
    """The signal's number when ``stopped_by`` is "signal" (None when :meth:`Trainer.request_stop` asked)."""


def uses_autocast(amp_option: bool, device: torch.device, recipe_autocast: bool) -> bool:
    """Whether a step runs under float16 autocast with gradient scaling: ``--amp`` on a CUDA device for a recipe
    that asks for it (pi-GAN's). Families with their own float16 layers (EG3D's and EpiGRAF's ``num_fp16_res``
    blocks, with conv clamps, float16 on CUDA only) opt out and stay float32 elsewhere; on CPU nothing changes."""
    return bool(amp_option and device.type == "cuda" and recipe_autocast)


def build_optimizer(recipe: LossRecipe, name: str, net: nn.Module, lr: float, betas: tuple[float, float],
                    weight_decay: float) -> torch.optim.Adam:
    """Adam over ``recipe``'s parameter groups of ``net`` (the module called ``name``, "G" or "D"); each group
    keeps its ``name`` and ``lr_scale`` (its rate is ``lr * lr_scale`` until the next step sets it)."""
    groups = recipe.param_groups(name, net)
    grouped = [p for g in groups for p in g.params]
    if len(grouped) != len(set(map(id, grouped))) or set(map(id, grouped)) != set(map(id, net.parameters())):
        raise ValueError(f"the recipe's parameter groups of {name} must hold every parameter exactly once")
    return torch.optim.Adam([{"params": list(g.params), "lr": lr * g.lr_scale, "lr_scale": g.lr_scale,
                              "name": g.name} for g in groups], lr=lr, betas=betas, weight_decay=weight_decay)


class Trainer:
    """Builds (or resumes) a run; :meth:`train` runs it. ``dataset`` may be given directly (tests, demo); ``stop`` is
    the request that signal handlers installed around the construction write (see :func:`train`)."""

    def __init__(self, options: TrainOptions, dataset=None, info: dist_utils.DistInfo | None = None,
                 stop: StopRequest | None = None):
        from ..models.registry import get_family

        validate_options(options)  # before anything is built or written
        self.opts = options
        self.info = info or dist_utils.DistInfo()
        self.stop = stop or StopRequest(verbose=self.info.is_main)
        self.device = resolve_device(options.device, self.info)
        cfg, start, changes = self._resolve_run(options)
        self.cfg = cfg
        family = get_family(cfg.family)
        if family.training is None:
            raise ValueError(f"family {cfg.family!r} has no training recipe yet")
        self._validate_batches()
        if options.metrics:
            self._check_metric_options()  # unknown names fail now, not hours into the run
        if start is None:
            # The process-wide RNG is part of the run's state (checkpointed, restored on resume): start it from
            # the run's seed, so what ran in this process before never shows in the run.
            torch.manual_seed(derive_seed(cfg.seed, "global"))

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(cfg.seed, "init"))
            self.G: Generator3D = family.generator_cls(cfg.model).to(self.device)
            self.D: nn.Module = family.training.discriminator_cls(cfg.discriminator).to(self.device)
        self.G.preset = self._model_preset_name()
        self.G_emas = {d: make_ema(self.G) for d in cfg.ema_decays}
        self.G_ema_half_life = make_ema(self.G) if cfg.ema is not None else None
        pipe, controller = cfg.augment.build()
        self.augment_pipe = None if pipe is None else pipe.to(self.device)
        self.ada = None if controller is None else controller.to(self.device)
        self.recipe = family.training.loss_cls(self.G, self.D, cfg.loss)
        stage0 = cfg.curriculum.stage(0)
        betas, wd = tuple(cfg.curriculum.betas), cfg.curriculum.weight_decay
        self.opt = {
            "G": self._optimizer("G", self.G, stage0.g_lr, betas, wd),
            "D": self._optimizer("D", self.D, stage0.d_lr, betas, wd),
        }
        amp = uses_autocast(options.amp, self.device, self.recipe.autocast)
        self.amp = amp
        self.scalers = {k: torch.amp.GradScaler("cuda", enabled=amp) for k in ("G", "D")}
        self.state = TrainingState()
        self._base_data = dataset
        self._data_by_res: dict[int, Any] = {}
        self._perm_cache: tuple[int, Tensor] | None = None
        self._warned_no_labels = False
        self._start_checkpoint = start
        self._good_pending = False
        """Whether checkpoint/ holds a checkpoint written outside a bad streak that the next good step promotes to
        checkpoint-good/."""
        if start is not None:
            self._restore(start)
        # The data of the first step, opened now: a wrong --data fails before the run folder is created.
        self.dataset(cfg.curriculum.stage(self.state.step).resolution)
        self.stats = None
        if self.info.is_main and not self.stop.requested:  # a signal during set-up: write nothing
            self._prepare_run_dir(changes)
            self.stats = StatsWriter(self.run_dir, tensorboard=options.tensorboard)

    # ----------------------------------------------------------------------------------------- set-up
    def _resolve_run(self, options: TrainOptions) -> tuple[RunConfig, Path | None, dict | None]:
        """Sets ``run_dir``; returns the run's config, the checkpoint folder to start from (None: step 0) and, when
        resuming, the config changes this session makes (None for a fresh run)."""
        if options.resume:
            self.run_dir, folder = resume_source(options.resume)
            step = checkpoint_step(folder)
            cfg, changes = resume_run_config(RunConfig.load(self.run_dir), options, step or 0, str(self.run_dir))
            if step is None and self.info.is_main:
                print(f"aware3d train: {self.run_dir} holds no checkpoint yet; resuming it from step 0", flush=True)
            return cfg, (folder if step is not None else None), changes
        self.run_dir = Path(options.out)
        cfg = resolve_run_config(options)
        check_fresh_run_dir(self.run_dir)
        return cfg, None, None

    def _restore(self, folder: Path) -> None:
        """Load the checkpoint in ``folder``; the streak of bad updates starts again at 0, and the optimisers take
        this session's Adam settings (betas and weight decay may change on resume)."""
        self.state = load_training_checkpoint(folder, self._modules(), self.opt)
        for k, sd in read_training_meta(folder).get("grad_scalers", {}).items():
            if sd and self.amp:
                self.scalers[k].load_state_dict(sd)
        self._good_pending = folder == self.run_dir / CHECKPOINT and self.state.consecutive_bad == 0
        self.state.consecutive_bad = 0
        for opt in self.opt.values():
            for group in opt.param_groups:
                group["betas"] = tuple(self.cfg.curriculum.betas)
                group["weight_decay"] = self.cfg.curriculum.weight_decay

    def _optimizer(self, name: str, net: nn.Module, lr: float, betas, weight_decay: float) -> torch.optim.Adam:
        return build_optimizer(self.recipe, name, net, lr, betas, weight_decay)

    def _model_preset_name(self) -> str:
        from .presets import get_train_preset

        try:
            return get_train_preset(self.cfg.preset).model
        except ValueError:
            return self.cfg.preset

    def _validate_batches(self) -> None:
        chunks = self.info.world_size
        for s in self.cfg.curriculum.stages:
            if s.batch_size % (chunks * s.batch_split):
                raise ValueError(
                    f"stage at step {s.start}: batch_size {s.batch_size} is not divisible by {self.info.world_size} "
                    f"process(es) x batch_split {s.batch_split}; change the process count or override the curriculum")

    def _prepare_run_dir(self, changes: dict | None) -> None:
        """Tidy the folder (recover, delete stale temporaries), drop the stats lines after the starting step, make
        checkpoint/ the one this session starts from, write config.json (with its history) and options.json, and
        export generator/ again if it is not of the starting step (a kill between the export and the checkpoint,
        or --resume RUN/checkpoint-good)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tidy_run_dir(self.run_dir)
        (self.run_dir / "samples").mkdir(exist_ok=True)
        truncate_stats(self.run_dir, self.state.step)
        start = self._start_checkpoint
        if start is not None and start != self.run_dir / CHECKPOINT:  # e.g. --resume RUN/checkpoint-good
            link_folder(start, self.run_dir / CHECKPOINT)
        write_run_config(self.run_dir, self.cfg, changes, self.state.step)
        write_json(self.run_dir / "options.json", to_dict(self.opts))
        if start is not None and export_step(self.run_dir / GENERATOR) != self.state.step:
            self.export_generator()  # generator/ matches the checkpoint this session starts from

    def _modules(self) -> dict[str, nn.Module]:
        mods: dict[str, nn.Module] = {"G": self.G, "D": self.D}
        mods.update({ema_name(d): m for d, m in self.G_emas.items()})
        if self.G_ema_half_life is not None:
            mods[HALF_LIFE_EMA_NAME] = self.G_ema_half_life
        if self.augment_pipe is not None:  # its p (and ADA's sign counts): a resumed run continues with them
            mods["augment_pipe"] = self.augment_pipe
        if self.ada is not None:
            mods["ada"] = self.ada
        return mods

    def dataset(self, resolution: int):
        """The training data at ``resolution`` (opened once per resolution)."""
        if resolution not in self._data_by_res:
            if self._base_data is not None:
                base = self._base_data
            else:
                from ..data.base import open_dataset

                base = open_dataset(self.cfg.data, resolution, mirror=self.cfg.mirror,
                                    skip_corrupt=self.opts.skip_corrupt)
                self._base_data = base
            data = base if base.resolution == resolution else base.at_resolution(resolution)
            if len(data) == 0:
                raise ValueError(f"dataset {self.cfg.data!r} is empty")
            self._data_by_res[resolution] = data
        return self._data_by_res[resolution]

    # ----------------------------------------------------------------------------------------- draws
    def _epoch_permutation(self, epoch: int, n: int) -> Tensor:
        if self._perm_cache is None or self._perm_cache[0] != epoch or len(self._perm_cache[1]) != n:
            g = torch.Generator().manual_seed(derive_seed(self.cfg.seed, "epoch", epoch))
            self._perm_cache = (epoch, torch.randperm(n, generator=g))
        return self._perm_cache[1]

    def real_indices(self, start: int, count: int, n: int) -> list[int]:
        """Items for global batch positions [start, start + count): an epoch-wise permutation of the data."""
        out: list[int] = []
        pos = start
        while len(out) < count:
            epoch, offset = divmod(pos, n)
            take = min(count - len(out), n - offset)
            out.extend(self._epoch_permutation(epoch, n)[offset:offset + take].tolist())
            pos += take
        return out

    def _my_real_batch(self, real_rows: list[int], data, split: int):
        """The real images of this process's chunks (loaded once per step, shared by the phases)."""
        size = len(real_rows) // (self.info.world_size * split)
        mine = real_rows[self.info.rank * split * size:(self.info.rank + 1) * split * size]
        return data.get_batch(mine).to(self.device)

    def _dataset_cameras(self, data, batch_size: int, g: torch.Generator) -> Cameras | None:
        """Cameras of ``batch_size`` random dataset items (None when the dataset has no labels)."""
        if not data.has_labels:
            if not self._warned_no_labels and self.info.is_main:
                warnings.warn(f"dataset {self.cfg.data!r} has no camera labels: generated images use the "
                              "generator's pose distribution instead of the dataset's cameras", stacklevel=2)
            self._warned_no_labels = True
            return None
        label, _ = data.get_labels(torch.randint(len(data), (batch_size,), generator=g))
        return Cameras(*from_eg3d_label(label))

    def _chunks(self, phase_index: int, step: int, real, batch_size: int, split: int, data) -> Iterator[Chunk]:
        """This process's chunks of the global batch for one phase (``real``: this process's real images).
        Every process draws the whole batch's latents and cameras from the same seed and takes its rows."""
        g = torch.Generator().manual_seed(derive_seed(self.cfg.seed, "step", step, phase_index))
        z_all = torch.randn(batch_size, self.G.z_dim, generator=g)
        from_data = self._dataset_cameras(data, batch_size, g) if self.recipe.camera_source == "dataset" else None
        if from_data is None:
            yaw, pitch = self.G.config.pose.sample(batch_size, generator=g)
        else:
            yaw, pitch, _ = angles_from_cam2world(from_data.cam2world)
        size = batch_size // (self.info.world_size * split)
        for s in range(split):
            c = self.info.rank * split + s
            rows = slice(c * size, (c + 1) * size)
            mine = slice(s * size, (s + 1) * size)
            cams = self.G.cameras(yaw[rows], pitch[rows]) if from_data is None else from_data[rows].to(self.device)
            render_gen = torch.Generator(device=self.device).manual_seed(
                derive_seed(self.cfg.seed, "render", step, phase_index, c))
            yield Chunk(real.image[mine], real.label[mine], z_all[rows].to(self.device), cams,
                        torch.stack([yaw[rows], pitch[rows]], -1).to(self.device), render_gen,
                        real_extras={k: v[mine] for k, v in real.extras.items()},
                        augment=self._chunk_augment(step, phase_index, c))

    def _chunk_augment(self, step: int, phase_index: int, chunk_index: int) -> DAugment:
        """The run's D-input augmentation with this chunk's own random stream (the identity without a pipe)."""
        if self.augment_pipe is None:
            return DAugment()
        g = torch.Generator(device=self.device).manual_seed(
            derive_seed(self.cfg.seed, "augment", step, phase_index, chunk_index))
        return DAugment(self.augment_pipe, g, self.ada)

    # ----------------------------------------------------------------------------------------- step
    def _set_learning_rates(self, stage_state: StageState) -> dict[str, float]:
        """Every group's rate: the stage's rate x the group's ``lr_scale`` x the recipe's ``lr_factor`` for this
        step. Returns the stages' rates of G and D."""
        stage = self.cfg.curriculum.stage(stage_state.step)
        lrs = {"G": stage.g_lr, "D": stage.d_lr}
        for k, opt in self.opt.items():
            for group in opt.param_groups:
                factor = self.recipe.lr_factor(group.get("name", k), stage_state)
                group["lr"] = lrs[k] * group.get("lr_scale", 1.0) * factor  # checkpoints before groups: no scale
        return lrs

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.float16) if self.amp else nullcontext()

    def _run_phase(self, phase: Phase, phase_index: int, stage_state: StageState, real, batch_size: int,
                   split: int, data) -> tuple[Verdict, dict[str, Tensor]]:
        """Accumulate the phase's gradients over this process's chunks, average across processes, then step the
        optimiser unless the loss or a gradient is non-finite or absurd (:mod:`aware3d.training.guard`). Returns
        the verdict (the same on every process) and the stats."""
        module = self.G if phase.module == "G" else self.D
        other = self.D if phase.module == "G" else self.G
        opt, scaler = self.opt[phase.module], self.scalers[phase.module]
        module.requires_grad_(True)
        other.requires_grad_(False)
        opt.zero_grad(set_to_none=True)
        finite = True
        totals: dict[str, Tensor] = {}
        loss_sum = torch.zeros((), device=self.device)
        for chunk in self._chunks(phase_index, stage_state.step, real, batch_size, split, data):
            chunk = self.recipe.prepare(chunk, stage_state)
            with self._autocast():
                loss, stats = self.recipe.loss(phase, chunk, stage_state)
            finite &= bool(torch.isfinite(loss).item())
            loss_sum = loss_sum + loss.detach().float() / split
            scaler.scale(loss / split).backward()
            for k, v in stats.items():
                totals[k] = totals.get(k, 0) + v.float() / split
        params = [p for p in module.parameters() if p.requires_grad]
        dist_utils.average_gradients(params, self.info)
        scaler.unscale_(opt)
        grad_norm = _grad_norm(params)
        finite = dist_utils.all_true(finite and bool(torch.isfinite(grad_norm)), self.info, self.device)
        # The loss averaged over processes (the gradients already are), so every process judges alike.
        measures = {"loss": abs(dist_utils.mean_over_ranks({"loss": loss_sum}, self.info, self.device)["loss"]),
                    "grad_norm": float(grad_norm)}
        verdict = judge(measures, finite, self.state.update_history, phase.name, self.opts.max_update_ratio)
        if verdict.ok:
            remember(self.state.update_history, measures, phase.name)
        for quantity in verdict.absurd:
            totals[f"absurd/{phase.name}/{quantity}"] = torch.tensor(measures[quantity])
        if verdict.ok:
            clip = self.recipe.grad_clip(phase.module)
            if clip is not None:
                totals[f"{phase.module}/grad_norm"] = torch.nn.utils.clip_grad_norm_(params, clip).detach().float()
            scaler.step(opt)
            scaler.update()
        else:
            opt.zero_grad(set_to_none=True)
            if self.amp:
                scaler.update()
        module.requires_grad_(False)
        return verdict, totals

    def step(self) -> dict[str, float]:
        """One training step at ``self.state.step``: every phase of the recipe, then the EMA updates."""
        st = self.state
        cur = self.cfg.curriculum
        stage = cur.stage(st.step)
        data = self.dataset(stage.resolution)
        stage_state = StageState(st.step, stage.resolution, cur.render_config(self.G.config.render, st.step),
                                 cur.alpha(st.step), st.images_seen)
        lrs = self._set_learning_rates(stage_state)
        real_rows = self.real_indices(st.images_seen, stage.batch_size, len(data))
        real = self._my_real_batch(real_rows, data, stage.batch_split)
        self.G.train()
        self.D.train()
        record: dict[str, Tensor] = {}
        all_ok = True
        for i, phase in enumerate(self.recipe.phases()):
            if st.step % phase.interval:
                continue
            verdict, stats = self._run_phase(phase, i, stage_state, real, stage.batch_size, stage.batch_split, data)
            record.update(stats)
            if not verdict.ok:
                all_ok = False
                record[f"skipped/{phase.name}"] = torch.ones(())
            elif phase.module == "G":
                for decay, ema in self.G_emas.items():
                    update_ema(ema, self.G, decay, st.step)
        dist_utils.average_buffers(self.G, self.info)  # e.g. EG3D's w_avg, tracked per process
        ema_beta = None
        if self.G_ema_half_life is not None:  # once per step, after every phase, from the images seen before it
            ema_beta = half_life_beta(self.cfg.ema, st.images_seen, stage.batch_size)
            update_half_life_ema(self.G_ema_half_life, self.G, ema_beta)
        for ema in self.G_emas.values():  # G's buffers may change in any phase (EG3D's w_avg in D_main)
            copy_buffers(ema, self.G)
        st.images_seen += stage.batch_size
        st.step += 1
        if all_ok:
            st.consecutive_bad = 0
        else:
            st.skipped_steps += 1
            st.consecutive_bad += 1
        out = dist_utils.mean_over_ranks(record, self.info, self.device)
        out.update({"resolution": stage.resolution, "render_resolution": self.recipe.render_resolution(stage_state),
                    "batch_size": stage.batch_size, "alpha": stage_state.alpha,
                    "lr/G": lrs["G"], "lr/D": lrs["D"], "density_noise": stage_state.render.noise_std,
                    "density_prior": stage_state.render.density_prior})
        if ema_beta is not None:
            out["ema/beta"] = ema_beta
        if self.augment_pipe is not None:
            out.update(self._adapt_augmentation(stage.batch_size))
        return out

    def _adapt_augmentation(self, batch_size: int) -> dict[str, float]:
        """ADA's update after a step (every ``ada.interval`` steps, on every process alike) and what to log."""
        record = {}
        if self.ada is not None:
            heuristic = self.ada.step(self.augment_pipe.p, self.state.step, batch_size)
            if heuristic is not None:
                record["aug/rt"] = heuristic
        record["aug/p"] = float(self.augment_pipe.p)
        return record

    # ----------------------------------------------------------------------------------------- outputs
    def _render_resolution(self) -> int:
        """The size the generator renders at for the last completed step (the first step before training)."""
        st = self.state
        step = max(st.step - 1, 0)
        stage = self.cfg.curriculum.stage(step)
        last_seen = max(st.images_seen - stage.batch_size, 0) if st.step else 0
        return self.recipe.render_resolution(StageState(step, stage.resolution, self.G.config.render,
                                                        self.cfg.curriculum.alpha(step), last_seen))

    @torch.no_grad()
    def sample_grid(self, path: Path, resolution: int) -> Path:
        """Fixed latents (seeds 0..n-1) from three yaws around the frontal pose (the tools' central camera,
        ``pose.frontal()``), rendered by the primary EMA."""
        from ..api import render

        G = self.primary_ema
        n = self.opts.sample_seeds
        yaw0, pitch0 = G.config.pose.frontal()
        yaws = [yaw0 - 0.4, yaw0, yaw0 + 0.4]
        z = G.z_from_seeds(list(range(n))).repeat_interleave(len(yaws), 0)
        cams = G.cameras([y for _ in range(n) for y in yaws], [pitch0] * (n * len(yaws)))
        # A class-conditional model: latent i shows class i mod K (every class in turn down the grid).
        condition = (Condition(class_label=(torch.arange(n) % G.num_classes).repeat_interleave(len(yaws), 0)
                               .to(G.device)) if G.num_classes else None)
        # Any sampling jitter of the render draws from a fixed seed on a forked RNG: the grids are reproducible
        # and how many were written never changes the run's RNG state (exact resume).
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(0)
            out = render(G, z=z, cameras=cams, resolution=resolution, truncation_psi=1.0, condition=condition)
        return save_image(path, out.image.clamp(-1, 1), nrow=len(yaws) * 2)

    @property
    def primary_ema(self) -> nn.Module:
        """The EMA the run samples, evaluates and exports: the half-life one if any, else the first fixed decay."""
        return self.G_ema_half_life if self.G_ema_half_life is not None else self.G_emas[self.cfg.ema_decays[0]]

    def primary_ema_source(self) -> dict[str, Any]:
        """How the primary EMA averages, for an exported generator's ``source`` metadata."""
        if self.cfg.ema is not None:
            return {"ema_half_life_kimg": self.cfg.ema.half_life_kimg, "ema_rampup": self.cfg.ema.rampup}
        return {"ema_decay": self.cfg.ema_decays[0]}

    def export_generator(self) -> Path:
        """The primary EMA generator as an aware3d checkpoint folder ``<run>/generator`` (w_avg refreshed)."""
        G = make_ema(self.primary_ema)  # a copy: refreshing w_avg must not touch the EMA
        if not G.capabilities.tracks_w_avg:
            G.update_w_avg()
        G.preset = self.G.preset
        source = {"trained_by": "aware3d train", "run": str(self.run_dir), "step": self.state.step,
                  **self.primary_ema_source(), "data": self.cfg.data}
        return save_generator(G, self.run_dir / "generator", source=source)

    def _metric_classes(self, G: Generator3D) -> Condition | None:
        """For a class-conditional model, one class per generated image of the largest metric, uniform over the
        classes from a fixed seed (the same images at every evaluation); None otherwise."""
        if not G.num_classes:
            return None
        from ..metrics import parse_metric_list

        count = max(m.with_num_gen(self.opts.metrics_num_gen or None).num_gen
                    for m in parse_metric_list(list(self.opts.metrics)))
        g = torch.Generator().manual_seed(derive_seed(self.cfg.seed, "metric classes"))
        return Condition(class_label=torch.randint(G.num_classes, (count,), generator=g).to(G.device))

    def _check_metric_options(self) -> None:
        """Metric names exist, and ``--best-metric`` is one the evaluations will record (under its count)."""
        from ..metrics import parse_metric_list

        if self.opts.keep_snapshots < 0:
            raise ValueError(f"--keep-snapshots must be >= 0 (0 keeps all), got {self.opts.keep_snapshots}")
        num_gen = self.opts.metrics_num_gen or None
        recorded = [m.with_num_gen(num_gen).name for m in parse_metric_list(list(self.opts.metrics))]
        if self.opts.best_metric is not None and self.opts.best_metric not in recorded:
            raise ValueError(f"--best-metric {self.opts.best_metric} is not among the metrics this run records "
                             f"({', '.join(recorded)}); with --metrics-num-gen N a protocol named by its image count "
                             "is recorded as <name>@N, and --metrics-num-gen 0 keeps each protocol's own count")

    def evaluate_metrics(self) -> dict[str, float]:
        """The chosen metrics of the primary EMA (rank 0), kept with that generator as ``<run>/snapshots/step-N``;
        keeps ``<run>/best`` at the best value so far."""
        from ..metrics import evaluate
        from .snapshots import prune_snapshots, write_snapshot

        G = make_ema(self.primary_ema)
        if not G.capabilities.tracks_w_avg:
            G.update_w_avg()
        G.preset = self.G.preset
        data_res = self.cfg.curriculum.stage(max(self.state.step - 1, 0)).resolution
        out = evaluate(G, list(self.opts.metrics), self.dataset(data_res), num_gen=self.opts.metrics_num_gen or None,
                       seed=self.cfg.seed, progress=False, inception=self.opts.inception,
                       resolution=self._render_resolution(), condition=self._metric_classes(G))
        values = {f"metrics/{k}": float(v) for k, v in out["results"].items()}
        name = self.opts.best_metric or next(iter(out["metrics"]), None)
        source = {"trained_by": "aware3d train", "run": str(self.run_dir), "step": self.state.step,
                  **self.primary_ema_source(), "data": self.cfg.data}
        write_snapshot(self.run_dir, G, self.state.step, self.state.images_seen, out, source)
        if self.opts.keep_snapshots:
            prune_snapshots(self.run_dir, self.opts.keep_snapshots, name)
        if name in out["results"]:
            higher = bool(out["metrics"].get(name, {}).get("higher_is_better", False))
            value = float(out["results"][name])
            best = self.state.best.get(name)
            if best is None or (value > best if higher else value < best):
                self.state.best[name] = value
                save_generator(G, self.run_dir / "best", source={**source, "metric": name, "value": value})
                values[f"best/{name}"] = value
        return values

    def save_checkpoint(self) -> None:
        """The exported generator, then the training checkpoint of the same step (rank 0 only; every process must
        call it). The export comes first: a kill between the two leaves the export ahead of the checkpoint (the
        resumed run redoes those steps exactly and exports them again), never behind it. A second signal during
        the writes waits for them."""
        if self.info.is_main:
            with writing_checkpoint(self.stop):
                self.export_generator()
                save_training_checkpoint(self.run_dir / CHECKPOINT, self.state, self._modules(), self.opt,
                                         extra={"run_config": self.cfg.to_json(),
                                                "grad_scalers": {k: s.state_dict() for k, s in self.scalers.items()}})
            self._good_pending = self.state.consecutive_bad == 0
        if self.info.enabled:
            torch.distributed.barrier()

    def _after_good_step(self) -> None:
        """A step with no skipped update vouches for the checkpoint written just before it: keep that one as
        checkpoint-good/ (rank 0)."""
        if self._good_pending and self.info.is_main:
            with writing_checkpoint(self.stop):
                promote_good_checkpoint(self.run_dir)
        self._good_pending = False

    # ----------------------------------------------------------------------------------------- loop
    def request_stop(self, reason: str = "signal") -> None:
        """Ask the loop to checkpoint and stop after the current step (what a signal does)."""
        self.stop.ask(reason)

    def _log(self, record: dict[str, float], t_start: float, steps_done: int, images_done: int) -> None:
        elapsed = time.perf_counter() - t_start
        record = {"step": self.state.step, "time_s": round(self.state.elapsed_s, 3),
                  "images_per_s": images_done / max(elapsed, 1e-9), "skipped_total": self.state.skipped_steps,
                  **record}
        if self.device.type == "cuda":
            record["mem/peak_gb"] = torch.cuda.max_memory_allocated(self.device) / 2 ** 30
        else:
            record["mem/peak_rss_gb"] = _peak_rss_gb()
        if self.stats is not None:
            self.stats.write(record)

    def train(self) -> TrainResult:
        """Run until total_steps, the time limit, or a signal; ends with a checkpoint unless it stopped before its
        first step (a signal during set-up or the step-0 sample grid: nothing new to save). SIGINT/SIGTERM are
        handled throughout (see :mod:`aware3d.training.signals`)."""
        with catch_stop_signals(self.stop):
            return self._train()

    def _train(self) -> TrainResult:
        st = self.state
        total = self.cfg.total_steps
        rate = 0.0
        if dist_utils.broadcast_flag(self.stop.requested, self.info, self.device):
            return self._finish(rate, ran=False)
        bar = RunProgress(total, st.step, self.opts.minutes, enabled=self.opts.progress and self.info.is_main)
        t_session = time.perf_counter()
        t_window, images_window = time.perf_counter(), 0
        if st.step == 0 and self.info.is_main and self.opts.sample_every:
            self.sample_grid(self.run_dir / "samples" / "step-0000000.png", self._render_resolution())
        ran = False
        if dist_utils.broadcast_flag(self.stop.requested, self.info, self.device):
            total = st.step  # stopped before the first step: skip the loop
        while st.step < total:
            ran = True
            t0 = time.perf_counter()
            record = self.step()
            st.elapsed_s += time.perf_counter() - t0
            images_window += record["batch_size"]
            bar.update(st.step, time.perf_counter() - t_session, _shown_losses(record))
            if any(k.startswith("skipped/") for k in record):
                self._on_bad_step(record)
            else:
                self._after_good_step()
            if st.step % self.opts.log_every == 0 or st.step == total:
                rate = images_window / max(time.perf_counter() - t_window, 1e-9)
                self._log(record, t_window, 1, images_window)
                t_window, images_window = time.perf_counter(), 0
            if self.opts.metrics and self.opts.metrics_every and st.step % self.opts.metrics_every == 0:
                if self.info.is_main and self.stats is not None:
                    self.stats.write({"step": st.step, **self.evaluate_metrics()})
                if self.info.enabled:
                    torch.distributed.barrier()
            if self.opts.sample_every and st.step % self.opts.sample_every == 0 and self.info.is_main:
                self.sample_grid(self.run_dir / "samples" / f"step-{st.step:07d}.png", record["render_resolution"])
            if self.opts.minutes is not None and time.perf_counter() - t_session >= self.opts.minutes * 60:
                self.stop.ask("time_limit")
            stop = dist_utils.broadcast_flag(self.stop.requested, self.info, self.device)
            if stop or st.step % self.opts.checkpoint_every == 0 or st.step == total:
                self.save_checkpoint()
            if stop:
                break
        bar.close()
        return self._finish(rate, ran)

    def _finish(self, rate: float, ran: bool) -> TrainResult:
        """The session's end: the final sample grid (unless a signal asks to be quick), the stats closed, the
        folder tidied, a note on a signal stop."""
        by_signal = self.stop.reason == "signal"
        if self.info.is_main and self.opts.sample_every and ran and not by_signal:
            self.sample_grid(self.run_dir / "samples" / "final.png", self._render_resolution())
        if self.stats is not None:
            self.stats.close()
        if self.info.is_main and self.run_dir.is_dir():
            tidy_run_dir(self.run_dir)
        if by_signal and self.info.is_main:
            self.stop.note(f"stopped by {self._signal_name()} at step {self.state.step}; {self._how_to_continue()}")
        return TrainResult(self.run_dir, self.state.step, self.stop.reason or "finished", self.run_dir / GENERATOR,
                           rate, self.stop.signum)

    def _how_to_continue(self) -> str:
        saved = checkpoint_step(self.run_dir / CHECKPOINT)
        if saved is not None:
            return f"its checkpoint is at step {saved}: continue with aware3d train --resume {self.run_dir}"
        if (self.run_dir / "config.json").is_file():
            return (f"{self.run_dir} holds no checkpoint yet: run the same command again, or continue from step 0 "
                    f"with aware3d train --resume {self.run_dir}")
        return "nothing was written: run the same command again"

    def _signal_name(self) -> str:
        return signal.Signals(self.stop.signum).name if self.stop.signum is not None else "a stop request"

    def _on_bad_step(self, record: dict[str, float]) -> None:
        """Log the skipped updates; stop with :class:`TrainingDiverged` after ``max_bad_steps`` in a row."""
        st = self.state
        skipped = sorted(k.split("/", 1)[1] for k in record if k.startswith("skipped/"))
        absurd = {k.split("/", 1)[1]: v for k, v in record.items() if k.startswith("absurd/")}
        non_finite = [p for p in skipped if not any(a.startswith(f"{p}/") for a in absurd)]
        if self.stats is not None:
            if non_finite:
                self.stats.write({"step": st.step, "event": "non_finite_update_skipped", "phases": non_finite,
                                  "consecutive": st.consecutive_bad})
            if absurd:
                medians = {k: running_median(st.update_history[k]) for k in absurd if st.update_history.get(k)}
                self.stats.write({"step": st.step, "event": "absurd_update_skipped", "values": absurd,
                                  "running_median": medians, "ratio": self.opts.max_update_ratio,
                                  "consecutive": st.consecutive_bad})
        if st.consecutive_bad >= self.opts.max_bad_steps:
            raise TrainingDiverged(self._divergence_message(skipped))

    def _divergence_message(self, phases: list[str]) -> str:
        good = self.run_dir / GOOD_CHECKPOINT
        step = checkpoint_step(good)
        if step is not None:
            where = (f"the last good checkpoint is {good} (step {step}: written before the streak and followed by a "
                     f"good step). Continue from it with --resume {good} and lower learning rates (--override "
                     "curriculum.stages=[...] with smaller g_lr/d_lr) or a stronger R1 (--override loss.r1_gamma=...)")
        else:
            where = ("no checkpoint was written before the streak began; start a new run (another --out) with lower "
                     "learning rates or a stronger R1 (--override loss.r1_gamma=...)")
        return (f"training diverged: {self.state.consecutive_bad} consecutive updates had a non-finite or absurd "
                f"loss or gradient norm (at step {self.state.step}; phases {', '.join(phases)}); {where}")


def _shown_losses(record: dict[str, float]) -> dict[str, str]:
    """The progress bar's losses: adv (G and D) and r1."""
    return {k.split("/")[-1] + ("G" if k.startswith("G/") else "D" if k.startswith("D/") else ""): f"{v:.3g}"
            for k, v in record.items() if k in ("G/adv", "D/adv", "D/r1")}


def _grad_norm(params: list[nn.Parameter]) -> Tensor:
    """The 2-norm of all the gradients of ``params`` together (0 when none has one); inf/NaN if any is."""
    norms = [torch.linalg.vector_norm(p.grad.detach().float()) for p in params if p.grad is not None]
    if not norms:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(norms).double())


def _peak_rss_gb() -> float:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    except (ImportError, OSError):
        return float("nan")


def train(options: TrainOptions, dataset=None) -> TrainResult:
    """Train with ``options`` in this process, joining a torchrun process group when there is one. SIGINT/SIGTERM
    are caught from the start of set-up (see :mod:`aware3d.training.signals`)."""
    info = dist_utils.init_distributed(options.device if options.device != "auto" else
                                       ("cuda" if torch.cuda.is_available() else "cpu"))
    stop = StopRequest(verbose=info.is_main)
    try:
        with catch_stop_signals(stop):
            return Trainer(options, dataset=dataset, info=info, stop=stop).train()
    finally:
        dist_utils.shutdown_distributed()


__all__ = ["Trainer", "TrainResult", "TrainingDiverged", "build_optimizer", "derive_seed", "train", "uses_autocast"]
