"""Official ``ema.pth`` files: pickled ``torch_ema.ExponentialMovingAverage`` objects (pi-GAN, ShadeGAN).

Such a file holds ``shadow_params``, one tensor per entry of the generator's ``parameters()`` (paired by
position, as ``ema.copy_to`` pairs them), and possibly ``collected_params`` (a copy of the raw weights left
by ``ema.store()``), which is ignored. It is read with the restricted unpickler; nothing in it runs.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from .keymap import CheckpointMismatchError
from .safe_unpickle import PickledObject, load_torch_file

EMA_STAND_INS = ("torch_ema.",)
"""The one class such a file pickles besides tensors."""


def apply_torch_ema(params: list[tuple[str, Tensor]], ema_path: Path) -> dict[str, Tensor]:
    """``params`` (the official ``named_parameters()`` in order) with every tensor replaced by the EMA shadow
    at its position; the shapes must agree."""
    if not ema_path.is_file():
        raise FileNotFoundError(f"EMA file not found: {ema_path} (pass ema=None to use the raw weights)")
    ema = load_torch_file(ema_path, stand_ins=EMA_STAND_INS)
    shadow = ema.state.get("shadow_params") if isinstance(ema, PickledObject) and isinstance(ema.state, dict) else None
    if not isinstance(shadow, list):
        raise CheckpointMismatchError(f"{ema_path} is not a torch_ema ExponentialMovingAverage (no shadow_params)")
    if len(shadow) != len(params):
        raise CheckpointMismatchError(
            f"{ema_path} holds {len(shadow)} shadow tensors but the generator has {len(params)} parameters")
    out = {}
    for (name, p), s in zip(params, shadow):
        if not isinstance(s, Tensor):
            raise CheckpointMismatchError(f"{ema_path}: shadow entry for {name} is a {type(s).__name__}, not a tensor")
        if tuple(s.shape) != tuple(p.shape):
            raise CheckpointMismatchError(f"{ema_path}: shadow tensor for {name} is {tuple(s.shape)}, expected {tuple(p.shape)}")
        out[name] = s.detach()
    return out


__all__ = ["EMA_STAND_INS", "apply_torch_ema"]
