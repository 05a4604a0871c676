"""Our :class:`~.pipe.AugmentPipe` from an official StyleGAN-family ``augment_pipe``, read without running its code.

StyleGAN2-ADA-style training snapshots pickle the live ``AugmentPipe`` module beside G and D (None when the
run used no augmentation). The restricted unpickler (:mod:`aware3d.io.safe_unpickle`) returns it as an inert
:class:`~aware3d.io.safe_unpickle.PickledObject`: either the persistence record
``<package>.torch_utils.persistence._reconstruct_persistent_obj(meta)`` (``meta['class_name']``,
``meta['state']``) or, after a family importer unwrapped it, a record named ``AugmentPipe`` whose state is the
module's ``__dict__``. Its settings are plain float attributes of that state (the constructor arguments as
stored by the persistence wrapper, ``_init_kwargs``, are the fallback, then the official defaults); the current
probability is the buffer ``p``. The official filter / noise / cutout transforms are not implemented here: a
pipe that enables one is refused with the names.
"""

from __future__ import annotations

import os

from typing import Any

import torch

from ..io.keymap import CheckpointMismatchError
from ..io.safe_unpickle import PickledObject
from .pipe import COLOR_MULTIPLIERS, GEOMETRIC_MULTIPLIERS, AugmentConfig, AugmentPipe

_PERSISTENCE_SUFFIX = "torch_utils.persistence._reconstruct_persistent_obj"
CLASS_NAME = "AugmentPipe"
OFFICIAL_DEFAULTS: dict[str, float] = {
    **{name: 0.0 for name in GEOMETRIC_MULTIPLIERS + COLOR_MULTIPLIERS},
    "xint_max": 0.125, "scale_std": 0.2, "rotate_max": 1.0, "aniso_std": 0.2, "xfrac_std": 0.125,
    "brightness_std": 0.2, "contrast_std": 0.5, "hue_max": 1.0, "saturation_std": 1.0,
}
"""The official constructor's defaults (every transform off) for the fields we implement."""
UNSUPPORTED = ("imgfilter", "noise", "cutout")
"""Official transforms (probability multipliers) that this pipeline does not implement."""


class AugmentImportError(CheckpointMismatchError):
    """An official augment_pipe that our pipeline cannot represent (unknown class, unsupported transforms)."""


def _class_and_state(record: PickledObject, where: str) -> tuple[str, dict]:
    """(class name, instance state dict) of a persistence record or an unwrapped module record."""
    if record.qualname.endswith(_PERSISTENCE_SUFFIX):
        meta = record.args[0] if record.args else None
        if not isinstance(meta, dict) or meta.get("type") != "class":
            raise AugmentImportError(f"{where}: unsupported persistence record (expected a class record)")
        name, state = meta.get("class_name"), meta.get("state")
    else:
        name, state = record.qualname, record.state
    if not isinstance(name, str) or name.rsplit(".", 1)[-1] != CLASS_NAME:
        raise AugmentImportError(f"{where}: expected the official {CLASS_NAME}, found class {name!r}")
    if not isinstance(state, dict):
        raise AugmentImportError(f"{where}: the {CLASS_NAME} record has no state dict ({type(state).__name__})")
    return name, state


def _setting(state: dict, init_kwargs: dict, name: str, default: float, where: str) -> float:
    value = state.get(name, init_kwargs.get(name, default))
    try:
        return float(value)
    except (TypeError, ValueError):
        raise AugmentImportError(f"{where}: setting {name}={value!r} is not a number") from None


def official_settings(record: PickledObject, where: str = "augment_pipe") -> tuple[AugmentConfig, float]:
    """(our config, current p) of an official ``AugmentPipe`` record (see the module docstring)."""
    _, state = _class_and_state(record, where)
    init_kwargs = state.get("_init_kwargs") if isinstance(state.get("_init_kwargs"), dict) else {}
    enabled = [n for n in UNSUPPORTED if _setting(state, init_kwargs, n, 0.0, where) > 0]
    if enabled:
        raise AugmentImportError(f"{where}: the official pipe enables {', '.join(enabled)}, which aware3d's "
                                 "AugmentPipe does not implement (it has the geometric and colour groups only)")
    config = AugmentConfig(**{n: _setting(state, init_kwargs, n, d, where) for n, d in OFFICIAL_DEFAULTS.items()})
    p = (state.get("_buffers") or {}).get("p")
    if not isinstance(p, torch.Tensor) or p.numel() != 1:
        raise AugmentImportError(f"{where}: the {CLASS_NAME} record has no scalar buffer 'p'")
    return config, float(p)


def _check_filter(state: dict, pipe: AugmentPipe, where: str) -> None:
    """The official geometric filter buffer (when stored) must be the sym6 low-pass our pipe uses."""
    hz = (state.get("_buffers") or {}).get("Hz_geom")
    if isinstance(hz, torch.Tensor) and not (hz.shape == pipe.filter_taps.shape
                                             and torch.allclose(hz.float(), pipe.filter_taps, atol=1e-7)):
        raise AugmentImportError(f"{where}: Hz_geom {tuple(hz.shape)} is not the sym6 low-pass filter this "
                                 "pipeline resamples with")


def augment_pipe_from_official(record: Any, where: str = "augment_pipe") -> AugmentPipe | None:
    """Our pipeline with the official record's settings and current ``p``; None for None (a run without
    augmentation stores None)."""
    if record is None:
        return None
    if not isinstance(record, PickledObject):
        raise AugmentImportError(f"{where}: expected an unpickled {CLASS_NAME} record, got {type(record).__name__}")
    config, p = official_settings(record, where)
    pipe = AugmentPipe(config, p=p)
    _check_filter(_class_and_state(record, where)[1], pipe, where)
    return pipe


def augment_pipe_from_snapshot(snapshot: Any, where: str = "snapshot") -> AugmentPipe | None:
    """The ``augment_pipe`` entry of an unpickled official snapshot dict as our pipeline (None when absent)."""
    if not isinstance(snapshot, dict):
        raise AugmentImportError(f"{where}: expected a snapshot dict, got {type(snapshot).__name__}")
    return augment_pipe_from_official(snapshot.get("augment_pipe"), f"{where}['augment_pipe']")


SNAPSHOT_STAND_INS = ("torch_utils.", "dnnlib.", "training.", "src.", "omegaconf.", "typing.Any", "torch.optim.",
                      "collections.defaultdict")
"""What the StyleGAN-family snapshot pickles (StyleGAN2-ADA, EG3D, EpiGRAF) reference besides tensors: their own
classes, omegaconf nodes and optimisers, all read back as inert records (nothing is imported or run)."""


def augment_pipe_from_file(path: str | os.PathLike) -> AugmentPipe:
    """The ``augment_pipe`` of an official ``network-snapshot-*.pkl`` (settings and current p), read by the
    restricted unpickler; the error says when the snapshot's run had no augmentation."""
    from ..io.safe_unpickle import load_pickle_file

    data = load_pickle_file(path, stand_ins=SNAPSHOT_STAND_INS)
    pipe = augment_pipe_from_snapshot(data, str(path))
    if pipe is None:
        raise AugmentImportError(f"{path} holds no augment_pipe (its run trained without augmentation): drop "
                                 "--aug-from, or start ADA afresh with --aug ada")
    return pipe


__all__ = [
    "SNAPSHOT_STAND_INS", "augment_pipe_from_file",
    "OFFICIAL_DEFAULTS",
    "UNSUPPORTED",
    "AugmentImportError",
    "augment_pipe_from_official",
    "augment_pipe_from_snapshot",
    "official_settings",
]
