"""The options of ``aware3d train`` and the resolved configuration a run stores in ``<run>/config.json``."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..augment.run import DAugmentConfig
from ..config import apply_overrides, from_dict, to_dict
from ..errors import OptionError
from .curriculum import Curriculum
from .ema import HalfLifeEMA
from .presets import TrainPreset, get_train_preset

RUN_FORMAT = "aware3d-run"
RUN_VERSION = 1
DEFAULT_EMA_DECAYS = (0.999, 0.9999)
"""The per-step EMA decays of a run whose preset sets no half-life EMA (and gives no --ema-decays)."""


@dataclass
class TrainOptions:
    """How to run training (``aware3d train``); the model and recipe come from the preset."""

    preset: str = "pigan-tiny"
    """Training preset: model, discriminator, losses, curriculum (list them: aware3d presets)."""
    data: str | None = None
    """Dataset: synthetic-heads, synthetic-objects, a folder of images or a zip (default: the preset's)."""
    out: str = "runs/train"
    """Run folder: config.json, stats.jsonl, samples/, checkpoint/, generator/ (must not hold another run's checkpoint;
    a folder stopped before its first checkpoint is started again)."""
    resume: str | None = None
    """A run folder to continue exactly where it stopped, or one of its checkpoint folders (RUN/checkpoint-good after
    a divergence). Its config is used; --steps, --minutes, --data, --mirror and the learning rates, batch_split,
    schedules and loss.* of --override may change (recorded in config.json), nothing else. A folder without a
    checkpoint resumes from step 0."""
    steps: int | None = None
    """Stop after this many steps in total (default: the preset's)."""
    minutes: float | None = None
    """Stop after this much training time in this session (a checkpoint is written first)."""
    seed: int = 0
    """Seed of the initial weights and of every random draw of the run."""
    device: str = "auto"
    """cpu, cuda, cuda:1 ... or auto (cuda if available; under torchrun each process takes its local GPU)."""
    amp: bool = True
    """Mixed precision (float16 autocast + gradient scaling) on GPU; ignored on CPU."""
    mirror: bool | None = None
    """Mirror augmentation: also train on left-right flipped images (with mirrored cameras); default off (on resume:
    as the run had it)."""
    skip_corrupt: bool = False
    """Skip unreadable image files with a warning instead of stopping."""
    log_every: int = 10
    """Write a stats line (stats.jsonl, TensorBoard) every this many steps."""
    sample_every: int = 200
    """Write a sample grid of fixed latents every this many steps (0: never)."""
    checkpoint_every: int = 500
    """Write a checkpoint every this many steps (and always at the end, on a signal or a time limit)."""
    ema_decays: tuple[float, ...] | None = None
    """Fixed per-step EMA decays of G (default 0.999 0.9999, none if the preset has a half-life EMA, which comes first)."""
    max_bad_steps: int = 10
    """Stop after this many consecutive skipped updates (non-finite or absurd loss or gradient norm)."""
    max_update_ratio: float = 1e3
    """Skip an update whose loss or gradient norm exceeds this many times its running median (at least 1; see
    aware3d.training.guard); 0: skip only non-finite ones."""
    override: tuple[str, ...] = ()
    """Changes to the preset as key=value: model.hidden_dim=64 loss.r1_gamma=1 curriculum.fade_steps=100 ema.rampup=null ..."""
    tensorboard: bool = True
    """Also write TensorBoard events (when the tensorboard package is installed)."""
    progress: bool = True
    """Show a progress bar."""
    sample_seeds: int = 8
    """Number of fixed latents in the sample grids."""
    metrics: tuple[str, ...] = ()
    """Metrics computed on the first EMA every --metrics-every steps (e.g. swd side fid2k_full; see aware3d metrics)."""
    metrics_every: int = 0
    """Evaluate --metrics every this many steps (0: never)."""
    metrics_num_gen: int | None = 512
    """Generated images per metric evaluation during training (0: each protocol's own count, e.g. 2048 for
    fid2k_full); a protocol named by its count is then recorded as <name>@<count> (fid2k_full@512)."""
    best_metric: str | None = None
    """Keep <run>/best (a generator folder) at the best value of this metric, as recorded (e.g. fid2k_full, or
    fid2k_full@512 with --metrics-num-gen 512); default: the first of --metrics."""
    keep_snapshots: int = 0
    """Each metrics evaluation keeps the evaluated generator in snapshots/step-N/ with its numbers (for --best);
    keep only this many: the newest and the best by --best-metric (0: keep all)."""
    inception: str | None = None
    """Inception file for FID/KID/IS during training (else $AWARE3D_INCEPTION)."""
    aug: str | None = None
    """Augmentation of the discriminator's inputs: noaug, ada (p adapts toward --override augment.ada.target=0.6)
    or fixed (p stays at --aug-p); default: the preset's. Transforms: --override augment.pipe.xflip=0 ..."""
    aug_p: float | None = None
    """Augmentation probability at the start (ada) or throughout (fixed); default: the preset's."""
    aug_from: str | None = None
    """Start the augmentation from an official network-snapshot-*.pkl's augment_pipe (its transforms and
    current p; ADA unless --aug says otherwise), read safely."""


@dataclass
class RunConfig:
    """Everything that defines a run's mathematics (stored in config.json; resuming reads it back)."""

    family: str
    preset: str
    model: Any
    discriminator: Any
    loss: Any
    curriculum: Curriculum
    data: str
    total_steps: int
    seed: int
    mirror: bool
    ema_decays: tuple[float, ...]
    """Fixed per-step EMA decays (checkpoint names G_ema_<decay>); the first is the primary EMA when ``ema`` is None."""
    ema: HalfLifeEMA | None = None
    """The StyleGAN-family half-life EMA (checkpoint name G_ema), the primary one (sampled, evaluated, exported)."""
    augment: DAugmentConfig = field(default_factory=DAugmentConfig)
    """Augmentation of the discriminator's inputs (ADA); its current p lives in the checkpoint."""

    def to_json(self) -> dict:
        return {"format": RUN_FORMAT, "version": RUN_VERSION, **to_dict(self)}

    @staticmethod
    def from_json(doc: dict, where: str) -> "RunConfig":
        from ..models.registry import get_family

        if doc.get("format") != RUN_FORMAT:
            raise ValueError(f"{where} is not an aware3d run config (format {doc.get('format')!r})")
        if doc.get("version", 0) > RUN_VERSION:
            raise ValueError(f"{where} is version {doc['version']}; this aware3d reads up to {RUN_VERSION}")
        fam = get_family(doc["family"])
        if fam.training is None:
            raise ValueError(f"{where}: family {doc['family']!r} cannot be trained by this aware3d")
        t = fam.training
        return RunConfig(
            family=doc["family"], preset=doc["preset"],
            model=from_dict(fam.config_cls, doc["model"], f"{where} model"),
            discriminator=from_dict(t.discriminator_config_cls, doc["discriminator"], f"{where} discriminator"),
            loss=from_dict(t.loss_config_cls, doc["loss"], f"{where} loss"),
            curriculum=from_dict(Curriculum, doc["curriculum"], f"{where} curriculum"),
            data=doc["data"], total_steps=int(doc["total_steps"]), seed=int(doc["seed"]), mirror=bool(doc["mirror"]),
            ema_decays=tuple(float(d) for d in doc["ema_decays"]),
            ema=None if doc.get("ema") is None else from_dict(HalfLifeEMA, doc["ema"], f"{where} ema"),
            augment=from_dict(DAugmentConfig, doc["augment"], f"{where} augment") if "augment" in doc
            else DAugmentConfig(),
        )

    @staticmethod
    def load(run_dir: str | Path) -> "RunConfig":
        f = Path(run_dir) / "config.json"
        if not f.is_file():
            raise FileNotFoundError(f"{f} not found: --resume needs a run folder written by aware3d train")
        try:
            doc = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{f} is damaged ({e})") from None
        return RunConfig.from_json(doc, str(f))


_SECTIONS = ("model", "discriminator", "loss", "curriculum", "ema", "augment")


def resolve_run_config(opts: TrainOptions, preset: TrainPreset | None = None) -> RunConfig:
    """The run's configuration from the options: the preset with its and the user's overrides applied."""
    from ..models.registry import get_preset

    preset = preset or get_train_preset(opts.preset)
    family, model_cfg = get_preset(preset.model)
    if family.name != preset.family:
        raise ValueError(f"training preset {opts.preset!r} names model {preset.model!r} of family {family.name!r}, "
                         f"expected {preset.family!r}")
    model_cfg = apply_overrides(model_cfg, list(preset.model_overrides))
    sections: dict[str, Any] = {"model": model_cfg, "discriminator": preset.discriminator, "loss": preset.loss,
                                "curriculum": preset.curriculum, "ema": preset.ema,
                                "augment": _augment_start(preset.augment, opts.aug_from)}
    for k, items in grouped_overrides(opts.override).items():
        if k == "ema" and items and sections[k] is None:  # a preset without one gets the StyleGAN EMA, as changed
            sections[k] = HalfLifeEMA()
        sections[k] = apply_overrides(sections[k], items)
    ema_decays = resolve_ema_decays(opts.ema_decays, sections["ema"])
    data = opts.data or preset.data
    if not data:
        hint = preset.data_help or ("a zip or folder with camera labels, e.g. one built by aware3d dataset, or "
                                    "synthetic-heads")
        raise ValueError(f"training preset {opts.preset!r} has no default dataset: pass --data ({hint})")
    return RunConfig(
        family=family.name, preset=opts.preset, model=sections["model"], discriminator=sections["discriminator"],
        loss=sections["loss"], curriculum=sections["curriculum"], data=data,
        total_steps=opts.steps if opts.steps is not None else preset.total_steps, seed=opts.seed,
        mirror=bool(opts.mirror),
        ema_decays=ema_decays, ema=sections["ema"], augment=_augment_options(sections["augment"], opts),
    )


def grouped_overrides(overrides: tuple[str, ...] | list[str]) -> dict[str, list[str]]:
    """``--override`` items by config section (``loss.r1_gamma=1`` -> ``{"loss": ["r1_gamma=1"], ...}``)."""
    grouped: dict[str, list[str]] = {k: [] for k in _SECTIONS}
    for item in overrides:
        head, _, rest = item.partition(".")
        if head not in grouped or not rest:
            raise ValueError(f"override {item!r} must start with one of {', '.join(s + '.' for s in _SECTIONS)} "
                             "(e.g. loss.r1_gamma=1)")
        grouped[head].append(rest)
    return grouped


def _augment_start(preset_augment: DAugmentConfig, snapshot: str | None) -> DAugmentConfig:
    """The preset's augmentation, or with --aug-from the official snapshot's (ADA from its settings and p)."""
    if snapshot is None:
        return preset_augment
    from ..augment.official import augment_pipe_from_file

    pipe = augment_pipe_from_file(snapshot)
    return DAugmentConfig(mode="ada", p=float(pipe.p), pipe=pipe.config, ada=preset_augment.ada)


def _augment_options(preset_augment: DAugmentConfig, opts: TrainOptions) -> DAugmentConfig:
    """The preset's augmentation (with its overrides) changed by --aug / --aug-p."""
    changes = {k: v for k, v in (("mode", opts.aug), ("p", opts.aug_p)) if v is not None}
    return replace(preset_augment, **changes) if changes else preset_augment


def resolve_ema_decays(decays: tuple[float, ...] | None, half_life: HalfLifeEMA | None) -> tuple[float, ...]:
    """The run's fixed EMA decays: ``decays`` as given, else the defaults unless a half-life EMA replaces them."""
    if decays is None:
        decays = () if half_life is not None else DEFAULT_EMA_DECAYS
    decays = tuple(float(d) for d in decays)
    if any(not 0 < d < 1 for d in decays):
        raise ValueError(f"--ema-decays must be numbers in (0, 1), got {decays}")
    if not decays and half_life is None:
        raise ValueError("the run keeps no EMA of G: pass --ema-decays (e.g. 0.999) or set a half-life EMA "
                         "(--override ema.half_life_kimg=10)")
    if len(set(decays)) != len(decays):
        raise ValueError(f"--ema-decays has a decay twice: {decays}")
    return decays


def with_total_steps(cfg: RunConfig, steps: int | None) -> RunConfig:
    return cfg if steps is None else replace(cfg, total_steps=steps)


# ------------------------------------------------------------------------------------------- validation
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_count(flag: str, value: Any, least: int, what: str) -> None:
    if not _is_int(value) or value < least:
        raise OptionError(f"{flag} must be {what}, got {value!r}")


def validate_options(opts: TrainOptions) -> None:
    """Refuse out-of-range options (naming the option) before anything is built or written."""
    _check_count("--checkpoint-every", opts.checkpoint_every, 1, "a positive number of steps")
    _check_count("--log-every", opts.log_every, 1, "a positive number of steps")
    _check_count("--sample-every", opts.sample_every, 0, "a number of steps >= 0 (0: no sample grids)")
    _check_count("--sample-seeds", opts.sample_seeds, 1, "a positive number of latents")
    _check_count("--max-bad-steps", opts.max_bad_steps, 1, "a positive number of updates")
    _check_count("--metrics-every", opts.metrics_every, 0, "a number of steps >= 0 (0: never)")
    _check_count("--keep-snapshots", opts.keep_snapshots, 0, "a number >= 0 (0 keeps all)")
    if opts.steps is not None:
        _check_count("--steps", opts.steps, 1, "a positive number of steps (the run's total)")
    if opts.metrics_num_gen is not None:
        _check_count("--metrics-num-gen", opts.metrics_num_gen, 0, "a number of images >= 0")
    if opts.minutes is not None and (isinstance(opts.minutes, bool) or not isinstance(opts.minutes, (int, float))
                                     or not math.isfinite(opts.minutes) or opts.minutes <= 0):
        raise OptionError(f"--minutes must be a positive, finite number of minutes, got {opts.minutes!r}")
    ratio = opts.max_update_ratio
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio) \
            or not (ratio == 0 or ratio > 1):
        raise OptionError(f"--max-update-ratio must be 0 (off) or a finite number > 1, got {ratio!r}")


# ------------------------------------------------------------------------------------------- resume
RESUMABLE = ("total_steps", "data", "mirror", "loss.*", "curriculum.stages.*.g_lr", "curriculum.stages.*.d_lr",
             "curriculum.stages.*.batch_split", "curriculum.fade_steps", "curriculum.density_noise",
             "curriculum.density_noise_steps", "curriculum.density_prior", "curriculum.density_prior_steps",
             "curriculum.betas.*", "curriculum.weight_decay")
"""What a resumed run may change (dotted keys of config.json, ``*`` for any index or field): none of these
shapes a weight or an optimiser state, nor the resolution of the data."""
_RUN_DEFINING = {"preset": "--preset", "seed": "--seed", "ema_decays": "--ema-decays", "aug": "--aug",
                 "aug_p": "--aug-p", "aug_from": "--aug-from"}


def flat_config(value: Any, prefix: str = "") -> dict[str, Any]:
    """A config as ``{dotted key: leaf value}`` (list items by index: ``curriculum.stages.0.g_lr``; an empty list or
    object is a leaf)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = to_dict(value)
    if isinstance(value, dict) and value:
        items = list(value.items())
    elif isinstance(value, (list, tuple)) and value:
        items = [(str(i), v) for i, v in enumerate(value)]
    else:
        return {prefix[:-1]: value}
    out: dict[str, Any] = {}
    for k, v in items:
        out.update(flat_config(v, f"{prefix}{k}."))
    return out


def config_changes(before: RunConfig, after: RunConfig) -> dict[str, list]:
    """``{dotted key: [old, new]}`` for every leaf that differs; stages added or removed also show as
    ``curriculum.stages: [old count, new count]``."""
    a, b = flat_config(before), flat_config(after)
    changes = {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
    if len(before.curriculum.stages) != len(after.curriculum.stages):
        changes["curriculum.stages"] = [len(before.curriculum.stages), len(after.curriculum.stages)]
    return changes


def _refused_options(stored: RunConfig, opts: TrainOptions) -> list[str]:
    """The run-defining options given on resume that differ from the run's (values left at their defaults pass)."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainOptions)}
    refused = []
    for name, flag in _RUN_DEFINING.items():
        given = getattr(opts, name)
        if given == defaults[name] or given is None:
            continue
        if name == "preset" and given == stored.preset or name == "seed" and given == stored.seed:
            continue
        if name == "ema_decays" and tuple(float(d) for d in given) == stored.ema_decays:
            continue
        refused.append(f"{flag} {given}")
    return refused


def resume_run_config(stored: RunConfig, opts: TrainOptions, step: int, where: str) -> tuple[RunConfig, dict]:
    """The config of a run resumed at ``step``: ``stored`` with the options' permitted changes (:data:`RESUMABLE`)
    applied; returns it and the changes ``{dotted key: [old, new]}``. Anything else that would change is refused
    with one error listing it and what may change."""
    refused = _refused_options(stored, opts)
    if opts.steps is not None and opts.steps < step:
        raise OptionError(f"--steps {opts.steps}: {where} has completed {step} steps already; give a total of at "
                          f"least {step} (or leave --steps out to keep the run's {stored.total_steps})")
    sections = {k: getattr(stored, k) for k in _SECTIONS}
    for k, items in grouped_overrides(opts.override).items():
        if items:
            sections[k] = apply_overrides(HalfLifeEMA() if k == "ema" and sections[k] is None else sections[k],
                                          items)
    changed = replace(stored, **sections, data=opts.data or stored.data,
                      mirror=stored.mirror if opts.mirror is None else bool(opts.mirror),
                      total_steps=stored.total_steps if opts.steps is None else opts.steps)
    changes = config_changes(stored, changed)
    refused += [f"{k} ({v[0]!r} -> {v[1]!r})" for k, v in changes.items()
                if not any(fnmatch.fnmatchcase(k, pattern) for pattern in RESUMABLE)]
    if refused:
        raise OptionError(
            f"--resume {where}: {'; '.join(refused)} cannot change when resuming (the checkpoint's weights, optimiser "
            "states and data were made with the run's settings). What may change on resume: --steps, --minutes, "
            "--data, --mirror, and with --override the stages' g_lr/d_lr/batch_split (curriculum.stages=[...] with "
            "the same stages otherwise), curriculum.fade_steps/density_noise/density_noise_steps/density_prior/"
            "density_prior_steps/betas/weight_decay and loss.*; for anything else start a new run with --out")
    return changed, changes


__all__ = ["DEFAULT_EMA_DECAYS", "RESUMABLE", "RunConfig", "TrainOptions", "config_changes", "flat_config",
           "grouped_overrides", "resolve_ema_decays", "resolve_run_config", "resume_run_config", "validate_options",
           "with_total_steps"]
