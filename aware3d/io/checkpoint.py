"""Our model checkpoints: a folder with ``config.json`` + ``generator.safetensors``.

``config.json`` names the format, its version, the family, the preset it came from, where it came from
(e.g. an imported official file) and every constructor argument. Loading never unpickles anything.
Writes are atomic: the folder is assembled under a temporary name and renamed into place, so an
interrupted save leaves either the old checkpoint or the new one, never a half-written mix.
"""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..config import from_dict, to_dict
from ..errors import CheckpointError
from .atomic import atomic_folder, recover_folder
from .presize import WeightsBound, build_on_meta

FORMAT = "aware3d-generator"
VERSION = 1
WEIGHTS = "generator.safetensors"
CONFIG = "config.json"


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
    check_state_shapes(module, state, what)
    module.load_state_dict(state)


def check_state_shapes(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """:class:`CheckpointError` (starting with ``what``) unless ``state`` has exactly ``module``'s keys and shapes
    (``module`` may live on the meta device: only its shapes are read)."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        raise CheckpointError(f"{what}: missing {missing or 'none'}, unexpected {unexpected or 'none'}, "
                              f"shape mismatches {shapes or 'none'}")


def read_weights(file: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file; a damaged or truncated one is a :class:`CheckpointError` naming it."""
    try:
        return load_file(str(file))
    except SafetensorError as e:
        raise CheckpointError(f"{file} is not a readable safetensors file ({e}); the checkpoint is damaged: "
                              "re-export or re-convert it") from e


def read_folder_meta(path: str | os.PathLike, fmt: str, max_version: int, missing_hint: str) -> tuple[Path, dict]:
    """(recovered folder, checked ``config.json``) of a checkpoint folder of format ``fmt`` (a generator's, a face
    regressor's ...): present, valid JSON, an object, the right format, a version this aware3d reads. Any fault is
    a :class:`CheckpointError` naming the file; ``missing_hint`` says what to do when there is no config.json."""
    path = recover_folder(path)
    cfg = path / CONFIG
    if not cfg.is_file():
        raise CheckpointError(f"{path} is not an aware3d checkpoint of format {fmt!r}: {cfg} is missing "
                              f"({missing_hint})")
    try:
        meta = json.loads(cfg.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg} is not valid JSON ({e}); the checkpoint is damaged") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{cfg} holds a JSON {type(meta).__name__}, not the object aware3d writes; the "
                              "checkpoint is damaged: re-export or re-convert it")
    if meta.get("format") != fmt:
        raise CheckpointError(f"{cfg} has format {meta.get('format')!r}, expected {fmt!r}")
    version = meta.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{cfg}: 'version' must be an integer, got {version!r}; the checkpoint is damaged")
    if version > max_version:
        raise CheckpointError(f"{cfg} is format version {version}; this aware3d reads up to {max_version}: "
                              "upgrade aware3d")
    return path, meta


def read_meta(path: str | os.PathLike) -> dict:
    """The checked ``config.json`` of a generator checkpoint folder (see :func:`read_folder_meta`)."""
    path, meta = read_folder_meta(path, FORMAT, VERSION, "official pi-GAN files are loaded by pointing at "
                                  "generator.pth")
    cfg = path / CONFIG
    for key, kind in (("family", str), ("config", dict)):
        if not isinstance(meta.get(key), kind):
            found = "missing" if key not in meta else f"a {type(meta[key]).__name__}"
            raise CheckpointError(f"{cfg}: '{key}' must be a JSON {'string' if kind is str else 'object'}, but it "
                                  f"is {found}; the checkpoint is damaged: re-export or re-convert it")
    return meta


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Load a generator saved by :func:`save_generator`."""
    from ..models.registry import get_family

    path = Path(path)
    meta = read_meta(path)
    try:
        family = get_family(meta["family"])
        config = from_dict(family.config_cls, meta["config"], where=f"{path / CONFIG}: config")
    except ValueError as e:  # an unknown family, or a config field of the wrong type or out of its range
        raise CheckpointError(f"{e}; fix {path / CONFIG} or re-export the checkpoint") from e
    weights = path / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights} is missing; the checkpoint at {path} is incomplete")
    state, what = read_weights(weights), f"{weights} does not match its config"
    # The config's sizes are checked against the weights on the meta device before anything is allocated.
    build = partial(family.generator_cls, config)
    check_state_shapes(build_on_meta(build, WeightsBound.of(state), what, CheckpointError), state, what)
    G = build()
    load_state_strict(G, state, what)
    G.preset = meta.get("preset")
    G.source = meta.get("source")
    return G.to(device).eval()
