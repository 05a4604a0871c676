"""Which implementation the building blocks run: the optimized kernels (default) or the reference ones.

The reference kernels follow the official code's arithmetic op for op (they are what the bit-exact parity
work was done against); the optimized kernels compute the same functions with less memory traffic
(channels-last feature maps, polyphase upsampling, padding folded into the convolution, in-place
activations when no gradient is recorded, one weighted gather over the stacked tri-planes instead of three
``grid_sample`` calls, compositing as one weighted matrix product over the unsorted samples, FiLM layers
folded into per-sample weights when gradients are recorded) and agree with the reference to float32
rounding, well inside the parity tolerances.

The choice is a context, not a module attribute: it has to reach every layer of a model without a flag
threaded through each ``forward`` and without being saved into checkpoints or copied into EMA models::

    with reference_kernels():
        oracle = G(z, camera)        # the official arithmetic
    fast = G(z, camera)              # the default, optimized path

Like ``torch.no_grad`` it is scoped to the ``with`` block and to the current thread / task.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import torch

_REFERENCE = contextvars.ContextVar("aware3d_reference_kernels", default=False)


@contextlib.contextmanager
def reference_kernels(enabled: bool = True) -> Iterator[None]:
    """Run the reference (official-arithmetic) kernels inside the block (``enabled=False``: the optimized)."""
    token = _REFERENCE.set(bool(enabled))
    try:
        yield
    finally:
        _REFERENCE.reset(token)


def using_reference_kernels() -> bool:
    """Whether the current context asked for the reference kernels."""
    return _REFERENCE.get()


OPTIMIZED_DEVICE_TYPES = frozenset({"cpu"})
"""Devices whose tensors get the optimized kernels. On CUDA the reference kernels measured faster (H200,
torch 2.11, eg3d-ffhq at neural 128: full frame 21 ms reference vs 25 ms optimized, camera-only 9 vs 14 ms;
cuDNN's own layouts and fused resampling leave nothing for these rewrites to win) and stay bit-identical to
the official code's float16 blocks, so CUDA runs the reference arithmetic."""


def use_optimized_kernels(x: "torch.Tensor") -> bool:
    """Whether work on ``x`` takes the optimized kernels: not inside :func:`reference_kernels`, and ``x`` on
    a device where they are faster (:data:`OPTIMIZED_DEVICE_TYPES`)."""
    return not _REFERENCE.get() and x.device.type in OPTIMIZED_DEVICE_TYPES


__all__ = ["OPTIMIZED_DEVICE_TYPES", "reference_kernels", "use_optimized_kernels", "using_reference_kernels"]
