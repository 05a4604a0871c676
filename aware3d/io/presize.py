"""Building a model whose sizes come from a file only once the file's weights could fill it.

An imported checkpoint names its sizes (``hidden_dim`` in a pickle or in ``config.json``, layer counts, ...)
separately from the tensors it holds, so a hostile or damaged file can ask a constructor for a model of
terabytes. :func:`build_bounded_by_weights` first builds the model on the meta device (no memory) while
counting every parameter and buffer it registers, and stops the build as soon as it registers more tensors
or elements than the file holds (plus a margin for buffers the model derives itself); only then is the
model built for real. Shape-by-shape checks stay with the caller (``apply_key_map``, ``load_state_strict``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar

import torch
from torch import Tensor, nn
from torch.nn.modules import module as module_hooks

from .keymap import CheckpointMismatchError

__all__ = ["EXTRA_ELEMENTS", "EXTRA_TENSORS", "WeightsBound", "build_bounded_by_weights", "build_on_meta"]

M = TypeVar("M", bound=nn.Module)

EXTRA_TENSORS = 64
"""Tensors a model may register beyond twice the file's count (derived buffers: filters, running means)."""
EXTRA_ELEMENTS = 1 << 24
"""Elements a model may register beyond twice what the file holds (16 Mi, 64 MiB of float32)."""


class WeightsBound:
    """The most a model built for a file may register: from the file's tensor count and element total."""

    def __init__(self, tensors: int, elements: int) -> None:
        self.max_tensors = 2 * tensors + EXTRA_TENSORS
        self.max_elements = 2 * elements + EXTRA_ELEMENTS
        self.tensors = 0
        self.elements = 0

    @classmethod
    def of(cls, weights: Mapping[str, Tensor] | Mapping[str, tuple[int, ...]]) -> WeightsBound:
        """The bound for a file whose tensors (or their shapes) are ``weights``."""
        shapes = [tuple(w.shape) if isinstance(w, Tensor) else tuple(w) for w in weights.values()]
        return cls(len(shapes), sum(_numel(s) for s in shapes))

    def add(self, tensor: Tensor | None) -> bool:
        """Count one registered tensor; False once the model outgrows the bound."""
        if tensor is None:
            return True
        self.tensors += 1
        self.elements += tensor.numel()
        return self.tensors <= self.max_tensors and self.elements <= self.max_elements


def _numel(shape: tuple[int, ...]) -> int:
    total = 1
    for s in shape:
        total *= int(s)
    return total


class _Outgrown(Exception):
    """Raised from inside a registration hook to stop a meta build early."""


@contextmanager
def _counting_registrations(bound: WeightsBound) -> Iterator[None]:
    """Count this thread's parameter/buffer registrations against ``bound`` (raising once outgrown)."""
    owner = threading.get_ident()

    def hook(module: nn.Module, name: str, tensor: Tensor | None) -> None:
        if threading.get_ident() == owner and not bound.add(tensor):
            raise _Outgrown(name)

    handles = [module_hooks.register_module_parameter_registration_hook(hook),
               module_hooks.register_module_buffer_registration_hook(hook)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def build_on_meta(build: Callable[[], M], bound: WeightsBound, what: str,
                  error: type[Exception] = CheckpointMismatchError) -> M:
    """``build()`` on the meta device, stopped with ``error`` (naming ``what``) as soon as the model it builds
    registers more tensors or elements than ``bound`` allows, or when the sizes cannot make a model at all."""
    try:
        with torch.device("meta"), _counting_registrations(bound):
            return build()
    except _Outgrown:
        raise error(f"{what}: the sizes it names would build a model larger than its weights "
                    f"(at least {bound.tensors} tensors / {bound.elements:,} elements, the file holds at most "
                    f"{(bound.max_tensors - EXTRA_TENSORS) // 2} / {(bound.max_elements - EXTRA_ELEMENTS) // 2:,}); "
                    "the file is damaged or not what it claims to be") from None
    except (RuntimeError, ValueError, TypeError, OverflowError, IndexError) as exc:
        raise error(f"{what}: the sizes it names do not make a model ({type(exc).__name__}: {exc})") from None


def build_bounded_by_weights(build: Callable[[], M], weights: Mapping[str, Tensor] | Mapping[str, tuple[int, ...]],
                             what: str, error: type[Exception] = CheckpointMismatchError) -> M:
    """``build()`` for real, once a meta-device build has shown that the model fits the file's ``weights``
    (name -> tensor or shape); else ``error`` naming ``what``, with nothing allocated."""
    build_on_meta(build, WeightsBound.of(weights), what, error)
    return build()
