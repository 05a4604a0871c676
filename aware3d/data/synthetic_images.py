"""The synthetic datasets (:mod:`aware3d.data.synthetic`) behind the :class:`ImageDataset` interface.

Items are rendered on access with the vectorised :meth:`SyntheticDataset.get_batch`; every item has a
camera (its ``eg3d_label``) and the ground truth comes along as named extras (conventions in
:mod:`aware3d.data.base`): ``light_dir`` (B, 3), ``identity`` (B, Di), ``expression`` (B, De; heads
only), ``mask`` (B, 1, H, W), ``depth`` (B, 1, H, W) and ``normals`` (B, 3, H, W), mirrored with the
image for mirrored items. The in-memory pool (``synthetic-heads:4096``) keeps the cheap extras
(``light_dir``, ``identity``, ``expression``) and the mask (1 float per pixel: a discriminator that sees
silhouettes trains on it), but depth and normals only when built with ``pool_maps=True``: they hold 4 floats
per pixel, more than the image's 3. Everything else a :class:`SyntheticSample` holds (angles,
background, ...) stays available through :meth:`SyntheticImageDataset.ground_truth`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Sequence

import torch
from torch import Tensor

from ..config import to_dict
from .base import (
    ImageDataset, _check_resolution, flip_images, mirror_cam2world, mirror_directions, mirror_eg3d_label,
    mirror_intrinsics, mirror_normal_maps,
)
from .synthetic import SYNTHETIC_DATASETS, SyntheticSample, make_synthetic
from .synthetic.faces import IBUG_MIRROR, SyntheticFaceSample, mirror_landmarks

__all__ = ["SYNTHETIC_MAP_EXTRAS", "SyntheticImageDataset", "mirror_face_fields", "mirror_sample", "synthetic_extra_names"]

SYNTHETIC_MAP_EXTRAS = ("mask", "depth", "normals")
"""The dense per-pixel extras of a synthetic item (an in-memory pool keeps the mask, the others only with
``pool_maps``)."""


_KIND_EXTRAS = {"heads": ("light_dir", "identity", "expression"), "objects": ("light_dir", "identity"),
                "faces": ("light_dir", "identity", "expression", "coefficients")}
"""The parameter extras of each synthetic kind (faces: the 80 identity, 64 expression and 257 Deep3DFaceRecon
coefficients)."""


def synthetic_extra_names(kind: str, maps: bool = True) -> tuple[str, ...]:
    """Extras of a synthetic kind ("heads", "objects" or "faces"): light_dir, identity, expression (heads and
    faces), coefficients (faces), the mask, then depth and normals when ``maps``."""
    return _KIND_EXTRAS[kind] + (SYNTHETIC_MAP_EXTRAS if maps else SYNTHETIC_MAP_EXTRAS[:1])


def _sample_extras(sample: SyntheticSample, names: tuple[str, ...]) -> dict[str, Tensor]:
    """The extras ``names`` of a batched sample (same tensors, float32)."""
    return {name: getattr(sample, name).to(torch.float32) for name in names}


def mirror_sample(sample: SyntheticSample) -> SyntheticSample:
    """The ground truth of a batched sample seen in a mirror (world reflected across x = 0).

    Images, depth, normals and mask are flipped left-right; normals and the light direction have their
    world x negated; cameras are mirrored (:func:`aware3d.data.base.mirror_cam2world`), pi-GAN angles
    become (pi - yaw, pitch) and EpiGRAF angles (-yaw, pitch, roll). ``identity`` / ``expression`` /
    ``background`` still describe the unmirrored scene (the parameters have no mirrored form); so do a face
    sample's coefficients, while its landmarks are mirrored (:func:`mirror_face_fields`).
    """
    angles = sample.angles.clone()
    angles[..., 0] = math.pi - angles[..., 0]
    camera_angles = sample.camera_angles.clone()
    camera_angles[..., 0] = -camera_angles[..., 0]
    return replace(
        sample,
        image=flip_images(sample.image), depth=flip_images(sample.depth), mask=flip_images(sample.mask),
        normals=mirror_normal_maps(sample.normals),
        cam2world=mirror_cam2world(sample.cam2world), intrinsics=mirror_intrinsics(sample.intrinsics),
        angles=angles, camera_angles=camera_angles, eg3d_label=mirror_eg3d_label(sample.eg3d_label),
        light_dir=mirror_directions(sample.light_dir),
        **(mirror_face_fields(sample) if isinstance(sample, SyntheticFaceSample) else {}),
    )


def mirror_face_fields(sample: SyntheticFaceSample) -> dict[str, Tensor]:
    """The mirrored landmark fields of a batched face sample: 2-D landmarks flipped (x -> W - 1 - x) with their
    sides swapped (iBUG order), visibility permuted alike, 3-D landmarks with world x negated; the coverage
    flipped with the image."""
    width = sample.image.shape[-1]
    order = list(IBUG_MIRROR)
    world = sample.landmarks_3d[..., order, :].clone()
    world[..., 0] = -world[..., 0]
    return {"landmarks": mirror_landmarks(sample.landmarks, width), "landmark_visible": sample.landmark_visible[..., order],
            "landmarks_3d": world, "coverage": flip_images(sample.coverage)}


class SyntheticImageDataset(ImageDataset):
    """A synthetic preset (``synthetic-heads``, ``synthetic-objects``, ``synthetic-faces``) as an :class:`ImageDataset`."""

    def __init__(self, name: str, resolution: int, *, mirror: bool = False, length: int | None = None,
                 seed: int = 0, in_memory: bool = False, pool_maps: bool = False) -> None:
        """``in_memory``: render every item once (on first access, at the current resolution) and serve
        images from memory afterwards. Worth it for a short pool (e.g. ``length=4096`` at 32 px, a few
        seconds) read many times, as ``aware3d demo`` does: ray casting a batch costs several percent of a
        CPU training step. Same images and labels either way. ``pool_maps``: with ``in_memory``, also
        keep depth and normals (4 floats per pixel); without it the pool serves light_dir, identity,
        expression and the mask."""
        if name not in SYNTHETIC_DATASETS:
            raise KeyError(f"unknown synthetic dataset {name!r}; valid: {', '.join(sorted(SYNTHETIC_DATASETS))}")
        self.name = name
        self.mirror = bool(mirror)
        overrides = {"resolution": _check_resolution(resolution), "seed": seed}
        self.synthetic = make_synthetic(name, **overrides, **({} if length is None else {"length": length}))
        self.resolution = self.synthetic.resolution
        self.in_memory = bool(in_memory)
        self.pool_maps = bool(pool_maps)
        self._pool: dict[str, Tensor] | None = None  # image, label and the pool's extras of every item

    @property
    def base_length(self) -> int:
        return len(self.synthetic)

    @property
    def has_labels(self) -> bool:
        return True

    @property
    def has_ground_truth(self) -> bool:
        return True

    @property
    def extra_names(self) -> tuple[str, ...]:
        """light_dir, identity, expression (heads only), mask, depth, normals; an in-memory pool without
        ``pool_maps`` leaves out the last two (see the module docstring)."""
        return synthetic_extra_names(self.synthetic.config.kind, maps=self.pool_maps or not self.in_memory)

    @property
    def fov_deg(self) -> float:
        """Full field of view of every camera, degrees."""
        return self.synthetic.fov_deg

    def _set_resolution(self, resolution: int) -> None:
        self.synthetic = make_synthetic(self.synthetic.config, resolution=resolution)
        self.resolution = resolution
        self._pool = None  # a copy at another resolution renders its own pool

    def _load(self, indices: list[int]) -> tuple[Tensor, Tensor, Tensor]:
        return self._load_with_extras(indices)[:3]

    def _load_with_extras(self, indices: list[int]) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
        ones = torch.ones(len(indices), dtype=torch.bool)
        if self.in_memory:
            pool = self._rendered_pool()
            idx = torch.tensor(indices, dtype=torch.int64)
            return pool["image"][idx], pool["label"][idx], ones, {k: pool[k][idx] for k in self.extra_names}
        s = self.synthetic.get_batch(indices)
        return s.image, s.eg3d_label.to(torch.float32), ones, _sample_extras(s, self.extra_names)

    def _rendered_pool(self, batch: int = 256) -> dict[str, Tensor]:
        if self._pool is None:
            n = self.base_length
            parts = [self.synthetic.get_batch(list(range(s, min(s + batch, n)))) for s in range(0, n, batch)]
            pool = {"image": torch.cat([p.image for p in parts]),
                    "label": torch.cat([p.eg3d_label for p in parts]).to(torch.float32)}
            for name in self.extra_names:
                pool[name] = torch.cat([getattr(p, name) for p in parts]).to(torch.float32)
            self._pool = pool
        return self._pool

    def _load_labels(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        label = self.synthetic.cameras(indices).eg3d_label().to(torch.float32)
        return label, torch.ones(len(indices), dtype=torch.bool)

    def ground_truth(self, indices: Sequence[int] | Tensor) -> SyntheticSample:
        """Full :class:`SyntheticSample` of dataset items ``indices`` (mirrored items mirrored, see
        :func:`mirror_sample`); ``index`` holds the dataset positions."""
        if isinstance(indices, Tensor):
            indices = indices.reshape(-1).tolist()
        idx = [self._resolve(i) for i in indices]
        n = self.base_length
        sample = self.synthetic.get_batch([i % n for i in idx])
        flipped = [i >= n for i in idx]
        if any(flipped):
            mirrored = mirror_sample(sample)
            sel = torch.tensor(flipped)
            merged = {}
            for key, value in vars(sample).items():
                other = getattr(mirrored, key)
                mask = sel.reshape(-1, *([1] * (value.ndim - 1)))
                merged[key] = torch.where(mask, other, value)
            sample = type(sample)(**merged)
        sample.index = torch.tensor(idx, dtype=torch.int64)
        return sample

    def _fingerprint_parts(self) -> dict[str, Any]:
        return {"synthetic": self.name, "config": to_dict(self.synthetic.config)}
