"""Which implementation the building blocks run: the optimized kernels (default) or the reference ones.

The reference kernels follow the official code's arithmetic op for op (they are what the bit-exact parity
work was done against); the optimized kernels compute the same functions with less memory traffic
(channels-last feature maps, in-place activations when no gradient is recorded, padding folded into the
convolution, one weighted gather over the stacked tri-planes instead of three ``grid_sample`` calls) and
agree with the reference to float32 rounding, well inside the parity tolerances.

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
from typing import Iterator

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


__all__ = ["reference_kernels", "using_reference_kernels"]
