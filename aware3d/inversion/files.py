"""The latent file of an inversion: ``latent.safetensors`` (tensors) with ``latent.json`` beside it (the same
numbers for people, and how to render them).

Tensors: ``w`` (the family's synthesis latent, one row), ``condition.light`` / ``condition.face`` /
``condition.class_label`` where set, ``group.<name>`` (each latent group's value, for the record),
``camera.cam2world`` (1, 4, 4) and ``camera.intrinsics`` (1, 3, 3) (the model's camera at the angles below).
Safetensors metadata (strings): ``format`` (:data:`LATENT_FORMAT`), ``version``, ``family``, ``yaw`` and ``pitch``
(pi-GAN angles, radians: the view ``G.cameras(yaw, pitch)`` re-creates).

``aware3d render --latent FILE`` / ``video --latent FILE`` read it (:func:`read_latent`): the file's latent and
condition replace the seeds, and its view is the centre of ``--yaw`` / ``--pitch`` (0 0 re-renders the input's
view). Nothing is pickled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from ..errors import UserError
from ..io.atomic import atomic_write_bytes
from ..models.base import Condition, Generator3D
from .camera import CameraAngles
from .space import SynthesisLatent

LATENT_FORMAT = "aware3d-latent"
LATENT_VERSION = 1
CONDITION_KINDS = ("light", "face", "class_label")


class LatentFileError(UserError, ValueError):
    """A latent file is missing, damaged, of another family or of another shape; the message names it."""


@dataclass(frozen=True)
class LatentFile:
    """What a latent file holds."""

    latent: SynthesisLatent
    """The synthesis latent (one row) and its condition."""
    yaw: float
    """The view's azimuth, pi-GAN angles (radians)."""
    pitch: float
    """The view's polar angle from +y (radians)."""
    family: str
    """The family that wrote it."""
    groups: dict[str, torch.Tensor]
    """Each latent group's value, by name."""


def write_latent(path: str | os.PathLike, G: Generator3D, latent: SynthesisLatent, angles: CameraAngles,
                 groups: dict[str, torch.Tensor]) -> Path:
    """Write ``latent.safetensors`` at ``path`` for one latent and camera of ``G`` (atomically)."""
    cameras = angles.cameras(G)
    tensors = {"w": latent.w, "camera.cam2world": cameras.cam2world, "camera.intrinsics": cameras.intrinsics}
    for kind in CONDITION_KINDS:
        value = None if latent.condition is None else getattr(latent.condition, kind)
        if value is not None:
            tensors[f"condition.{kind}"] = value
    tensors.update({f"group.{k}": v for k, v in groups.items()})
    yaw, pitch = angles.as_floats()
    meta = {"format": LATENT_FORMAT, "version": str(LATENT_VERSION), "family": G.family, "yaw": repr(yaw),
            "pitch": repr(pitch)}
    data = safetensors_bytes({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=meta)
    return atomic_write_bytes(path, data)


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise LatentFileError(f"latent file {str(path)!r} not found; pass the latent.safetensors that aware3d invert "
                              "wrote")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except (SafetensorError, OSError) as e:
        raise LatentFileError(f"latent file {str(path)!r} is not a readable safetensors file ({e}); pass the "
                              "latent.safetensors that aware3d invert wrote") from None


def read_latent(path: str | os.PathLike, G: Generator3D) -> LatentFile:
    """The latent file at ``path``, checked against ``G`` (family, latent shape) and moved to its device."""
    path = Path(path)
    tensors, meta = _read(path)
    if meta.get("format") != LATENT_FORMAT or "w" not in tensors:
        raise LatentFileError(f"{path} is not an aware3d latent file (format {meta.get('format')!r}); pass the "
                              "latent.safetensors that aware3d invert wrote")
    if int(meta.get("version", "0")) > LATENT_VERSION:
        raise LatentFileError(f"{path} is latent format version {meta['version']}; this aware3d reads up to "
                              f"{LATENT_VERSION}: upgrade aware3d")
    if meta.get("family") != G.family:
        raise LatentFileError(f"{path} holds a {meta.get('family')} latent and --checkpoint is a {G.family} model; "
                              "pass the checkpoint the inversion used (its latent.json names it)")
    space = G.inversion_space(num_samples=2)
    expected = space.latent(space.zero_offsets()).w.shape[1:]
    w = tensors["w"].to(G.device)
    if w.ndim < 2 or w.shape[0] != 1 or w.shape[1:] != expected:
        takes = ", ".join(map(str, expected))
        raise LatentFileError(f"{path}: its latent w is {tuple(w.shape)}, this model takes (1, {takes}); "
                              "pass the checkpoint the inversion used (its latent.json names it)")
    parts = {k: tensors.get(f"condition.{k}") for k in CONDITION_KINDS}
    condition = None if all(v is None for v in parts.values()) else Condition(
        **{k: None if v is None else v.to(G.device) for k, v in parts.items()})
    groups = {k[len("group."):]: v for k, v in tensors.items() if k.startswith("group.")}
    try:
        yaw, pitch = float(meta["yaw"]), float(meta["pitch"])
    except (KeyError, ValueError):
        raise LatentFileError(f"{path}: its metadata lacks the camera's yaw and pitch; the file is damaged") from None
    return LatentFile(SynthesisLatent(w, condition), yaw, pitch, meta["family"], groups)


__all__ = ["LATENT_FORMAT", "LATENT_VERSION", "LatentFile", "LatentFileError", "read_latent", "write_latent"]
