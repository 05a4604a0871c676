"""Key-mapping import of foreign weights: every target tensor covered, no unknown keys, shapes checked."""

from __future__ import annotations

from typing import Iterable, Mapping

import torch
from torch import Tensor, nn


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model; the message lists every missing, unexpected and mis-shaped key."""


def apply_key_map(model: nn.Module, source: Mapping[str, Tensor], key_map: Mapping[str, str], *,
                  derived: Iterable[str] = (), what: str = "checkpoint") -> None:
    """Copy ``source[src]`` into ``model``'s tensor ``dst`` for every ``src -> dst`` in ``key_map``.

    Args:
        model: the target; every parameter and buffer must be filled, except names in ``derived``
            (computed after import, e.g. ``w_avg``).
        source: the foreign tensors by their own names.
        key_map: foreign name -> our name.
        what: how to call the source in error messages (e.g. the file path).
    Raises:
        CheckpointMismatchError listing all problems at once; nothing is copied unless all is well.
    """
    targets = dict(model.named_parameters()) | dict(model.named_buffers())
    derived = set(derived)
    problems: list[str] = []
    unknown = sorted(set(source) - set(key_map))
    if unknown:
        problems.append(f"unexpected keys in {what}: {', '.join(unknown)}")
    missing_src = sorted(k for k in key_map if k not in source)
    if missing_src:
        problems.append(f"keys missing from {what}: {', '.join(missing_src)}")
    bad_dst = sorted(v for v in key_map.values() if v not in targets)
    if bad_dst:
        problems.append(f"key map names tensors the model does not have: {', '.join(bad_dst)}")
    uncovered = sorted(set(targets) - set(key_map.values()) - derived)
    if uncovered:
        problems.append(f"model tensors not filled by {what}: {', '.join(uncovered)}")
    for src, dst in key_map.items():
        if src in source and dst in targets and tuple(source[src].shape) != tuple(targets[dst].shape):
            problems.append(f"shape mismatch: {src} is {tuple(source[src].shape)} in {what}, "
                            f"{dst} is {tuple(targets[dst].shape)} in the model")
    if problems:
        raise CheckpointMismatchError("cannot import " + what + ":\n  - " + "\n  - ".join(problems))
    with torch.no_grad():
        for src, dst in key_map.items():
            targets[dst].copy_(source[src].to(targets[dst].dtype))
