"""Our model checkpoints: a folder with ``config.json`` + ``generator.safetensors``.

``config.json`` names the format, its version, the family, the preset it came from, where it came from
(e.g. an imported official file) and every constructor argument. Loading never unpickles anything.
Writes are atomic: the folder is assembled under a temporary name and renamed into place, so an
interrupted save leaves either the old checkpoint or the new one, never a half-written mix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..config import from_dict, to_dict
from .atomic import atomic_folder, recover_folder

FORMAT = "aware3d-generator"
VERSION = 1
WEIGHTS = "generator.safetensors"
CONFIG = "config.json"


class CheckpointError(ValueError):
    """A checkpoint folder is missing, incomplete or not ours; the message says which file and what to do."""


def is_checkpoint_dir(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_dir() and (p / CONFIG).is_file()


def save_generator(G, path: str | os.PathLike, source: dict[str, Any] | None = None) -> Path:
    """Write generator ``G`` to the folder ``path`` (replacing an existing checkpoint atomically)."""
    path = Path(path)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "family": G.family,
        "preset": G.preset,
        "source": source or G.source,
        "config": to_dict(G.config),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in G.state_dict().items()}
    with atomic_folder(path) as tmp:
        save_file(tensors, str(tmp / WEIGHTS), metadata={"format": FORMAT, "family": G.family})
        (tmp / CONFIG).write_text(json.dumps(meta, indent=2))
    return path


def load_state_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Load ``state`` into ``module`` only if the key sets and every shape agree; else a
    :class:`CheckpointError` starting with ``what`` and listing the differences."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        raise CheckpointError(f"{what}: missing {missing or 'none'}, unexpected {unexpected or 'none'}, "
                              f"shape mismatches {shapes or 'none'}")
    module.load_state_dict(state)


def read_meta(path: str | os.PathLike) -> dict:
    path = recover_folder(path)
    cfg = path / CONFIG
    if not cfg.is_file():
        raise CheckpointError(f"{path} is not an aware3d checkpoint: {cfg} is missing "
                              "(official pi-GAN files are loaded by pointing at generator.pth)")
    try:
        meta = json.loads(cfg.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg} is not valid JSON ({e}); the checkpoint is damaged") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{cfg} has format {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("version", 0) > VERSION:
        raise CheckpointError(f"{cfg} is format version {meta['version']}; this aware3d reads up to {VERSION}: upgrade aware3d")
    return meta


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Load a generator saved by :func:`save_generator`."""
    from ..models.registry import get_family

    path = Path(path)
    meta = read_meta(path)
    family = get_family(meta["family"])
    config = from_dict(family.config_cls, meta["config"], where=f"{path / CONFIG} config")
    G = family.generator_cls(config)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights} is missing; the checkpoint at {path} is incomplete")
    load_state_strict(G, load_file(str(weights)), f"{weights} does not match its config")
    G.preset = meta.get("preset")
    G.source = meta.get("source")
    return G.to(device).eval()
