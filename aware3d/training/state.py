"""Training checkpoints: every tensor in safetensors, everything else in JSON, written atomically.

Layout of ``<run>/checkpoint/``::

    state.json            format, version, step, elapsed time, counters, optimiser hyper-parameters, RNG states
    G.safetensors         generator (trained copy)
    D.safetensors         discriminator
    G_ema_<decay>.safetensors   one per EMA decay (e.g. G_ema_0.999)
    optim_G.safetensors   Adam moments and step counts, keyed ``<param index>.<name>``
    optim_D.safetensors
    rng.safetensors       torch CPU (and CUDA) generator states

Loading checks that every module's keys and shapes match the run's config, so a checkpoint from another
run or model fails with a message that names the file.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..io.atomic import atomic_folder, recover_folder
from ..io.checkpoint import CheckpointError, load_state_strict

FORMAT = "aware3d-training-state"
VERSION = 1


@dataclass
class TrainingState:
    """Everything that changes during training, besides the modules' weights."""

    step: int = 0
    """Completed steps."""
    images_seen: int = 0
    """Real images shown to the discriminator so far (global)."""
    elapsed_s: float = 0.0
    """Training wall time so far, summed over resumes."""
    skipped_steps: int = 0
    """Steps with an update skipped because a loss or gradient was not finite or absurd."""
    consecutive_bad: int = 0
    """Current run of consecutive skipped updates (a resumed session starts a new count)."""
    best: dict[str, float] = field(default_factory=dict)
    """Best value seen per tracked metric."""
    update_history: dict[str, list[float]] = field(default_factory=dict)
    """Per ``<phase>/<loss|grad_norm>``, the latest accepted values: the running range that an absurd update is
    judged against (see :mod:`aware3d.training.guard`)."""


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{k}"] = v
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict, where: str) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    for key, v in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    current = opt.state_dict()["param_groups"]
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in current]:
        raise CheckpointError(f"{where} was saved for a different model (parameter groups differ)")
    try:
        opt.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{where} does not fit this run's optimiser: {e}") from None


def _rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    np_state = np.random.get_state()
    meta = {"python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]]}
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
        if states and len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
    py = meta["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npst = meta["numpy"]
    np.random.set_state((npst[0], np.asarray(npst[1], dtype=np.uint32), *npst[2:]))


def _module_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def _load_module(module: nn.Module, file: Path) -> None:
    if not file.is_file():
        raise CheckpointError(f"{file} is missing: the training checkpoint is incomplete")
    load_state_strict(module, load_file(str(file)), f"{file} does not match this run's model")


def ema_name(decay: float) -> str:
    return f"G_ema_{decay:g}"


def save_training_checkpoint(path: str | os.PathLike, state: TrainingState, modules: dict[str, nn.Module],
                             optimizers: dict[str, torch.optim.Optimizer], extra: dict | None = None) -> Path:
    """Write a training checkpoint folder atomically. ``modules``: name -> module (G, D, G_ema_<decay>)."""
    rng_tensors, rng_meta = _rng_state()
    optim_meta = {}
    # Gather everything before touching the disk, so a failure cannot leave a half-made folder behind.
    files = {f"{name}.safetensors": _module_tensors(m) for name, m in modules.items()}
    for name, opt in optimizers.items():
        tensors, meta = _optimizer_tensors(opt)
        files[f"optim_{name}.safetensors"] = tensors
        optim_meta[name] = meta
    files["rng.safetensors"] = rng_tensors
    doc = {"format": FORMAT, "version": VERSION, "state": state.__dict__, "modules": sorted(modules),
           "optimizers": optim_meta, "rng": rng_meta, **(extra or {})}
    with atomic_folder(path) as tmp:
        for fname, tensors in files.items():
            save_file(tensors, str(tmp / fname))
        (tmp / "state.json").write_text(json.dumps(doc))
    return Path(path)


def read_training_meta(path: str | os.PathLike) -> dict:
    path = recover_folder(path)
    f = path / "state.json"
    if not f.is_file():
        raise CheckpointError(f"{path} is not a training checkpoint ({f} is missing); pass the run folder to --resume")
    try:
        doc = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{f} is damaged ({e})") from None
    if doc.get("format") != FORMAT:
        raise CheckpointError(f"{f} has format {doc.get('format')!r}, expected {FORMAT!r}")
    if doc.get("version", 0) > VERSION:
        raise CheckpointError(f"{f} is version {doc['version']}; this aware3d reads up to {VERSION}: upgrade aware3d")
    return doc


def load_training_checkpoint(path: str | os.PathLike, modules: dict[str, nn.Module],
                             optimizers: dict[str, torch.optim.Optimizer], restore_rng: bool = True) -> TrainingState:
    """Load weights, optimiser states and RNG states in place; return the :class:`TrainingState`."""
    path = Path(path)
    doc = read_training_meta(path)
    if sorted(modules) != doc["modules"]:
        raise CheckpointError(f"{path} holds modules {doc['modules']}, this run has {sorted(modules)} "
                              "(different EMA decays or family?)")
    for name, m in modules.items():
        _load_module(m, path / f"{name}.safetensors")
    for name, opt in optimizers.items():
        f = path / f"optim_{name}.safetensors"
        if not f.is_file():
            raise CheckpointError(f"{f} is missing: the training checkpoint is incomplete")
        _load_optimizer(opt, load_file(str(f)), doc["optimizers"][name], str(f))
    if restore_rng:
        _set_rng_state(load_file(str(path / "rng.safetensors")), doc["rng"])
    return TrainingState(**doc["state"])
