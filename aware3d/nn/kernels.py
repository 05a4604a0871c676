"""Which implementation the building blocks run: the optimized kernels (default) or the reference ones.

The reference kernels follow the official code's arithmetic op for op (they are what the bit-exact parity
work was done against); the optimized kernels compute the same functions with less memory traffic
(channels-last feature maps, polyphase upsampling, padding folded into the convolution, in-place
activations when no gradient is recorded, gain and bias folded into non-resampling modulated convolutions, one weighted gather over the stacked tri-planes instead of three
``grid_sample`` calls, compositing as one weighted matrix product over the unsorted samples, FiLM layers
folded into per-sample weights when gradients are recorded) and agree with the reference to float32
rounding, well inside the parity tolerances.

The choice is a context, not a module attribute: it has to reach every layer of a model without a flag
threaded through each ``forward`` and without being saved into checkpoints or copied into EMA models::

    with reference_kernels():
        oracle = G(z, camera)        # the official arithmetic
    fast = G(z, camera)              # the default, optimized path

Like ``torch.no_grad`` it is scoped to the ``with`` block and to the current thread / task.

A second, independent context, :func:`low_precision`, lets inference-only kernels (the folded SIREN, the
StyleGAN synthesis convolutions) compute in bfloat16 where the device has fast bfloat16 matrix units (CPUs
with AMX or AVX512-BF16, CUDA): the tools' ``--fast``. It changes results beyond the parity tolerances
(mean absolute image error measured 5e-4 on pi-GAN, 5e-3 on EG3D, images in [-1, 1]), so it is never on by
default and never inside :func:`reference_kernels`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from typing import Iterator

import torch

_REFERENCE = contextvars.ContextVar("aware3d_reference_kernels", default=False)
_LOW_PRECISION = contextvars.ContextVar("aware3d_low_precision", default=False)


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


@contextlib.contextmanager
def low_precision(enabled: bool = True) -> Iterator[None]:
    """Let inference kernels compute in bfloat16 inside the block, where the device does it fast
    (:func:`low_precision_dtype`); ``enabled=False``: float32 as usual."""
    token = _LOW_PRECISION.set(bool(enabled))
    try:
        yield
    finally:
        _LOW_PRECISION.reset(token)


@functools.cache
def _cpu_has_fast_bfloat16() -> bool:
    # oneDNN's own test: AVX512-BF16 or AMX (without them bfloat16 GEMMs are emulated, slower than float32).
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def device_has_fast_bfloat16(device: torch.device) -> bool:
    """Whether bfloat16 matrix products on ``device`` are faster than float32 (CUDA, or a CPU with AMX /
    AVX512-BF16)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and _cpu_has_fast_bfloat16()


def low_precision_dtype(x: torch.Tensor) -> torch.dtype | None:
    """bfloat16 when work on ``x`` may run in low precision (inside :func:`low_precision`, not inside
    :func:`reference_kernels`, no gradient recorded, and a device with fast bfloat16); else None."""
    if not _LOW_PRECISION.get() or _REFERENCE.get() or torch.is_grad_enabled():
        return None
    return torch.bfloat16 if device_has_fast_bfloat16(x.device) else None


__all__ = ["OPTIMIZED_DEVICE_TYPES", "device_has_fast_bfloat16", "low_precision", "low_precision_dtype",
           "reference_kernels", "use_optimized_kernels", "using_reference_kernels"]
