"""The interface every training / metrics dataset offers, and mirror augmentation.

A dataset yields square RGB images at a chosen ``resolution`` with, where known, the camera that took
each one as an EG3D label (25 floats: the row-major 4x4 OpenCV cam2world, then the row-major 3x3
normalised intrinsics; see :mod:`aware3d.cameras.poses`). Conventions of an :class:`ImageBatch`:

* ``image`` (B, 3, H, W) float32 in [-1, 1], row 0 at the top, H = W = ``dataset.resolution``.
* ``label`` (B, 25) float32; all zeros where the item has no camera (``has_label`` False).
* ``index`` (B,) int64 position in the dataset; with mirror augmentation, item ``i + N`` (N the
  unmirrored length) is item ``i`` mirrored.

Mirroring flips the image left-right **and** mirrors its camera: the world is reflected across the
x = 0 plane (``S = diag(-1, 1, 1)``) and the camera's own x axis is flipped, so the new cam2world is
``S R F`` with position ``S t`` (``F = diag(-1, 1, 1)`` in the camera frame), and the principal point and
skew of the intrinsics flip (``cx -> 1 - cx``, ``skew -> -skew``). The mirrored camera then renders the
mirrored scene as exactly the flipped image: the ray of pixel column j is the reflection of the ray of
column W-1-j. For pi-GAN look-at cameras this maps (yaw, pitch) to (pi - yaw, pitch) (EpiGRAF: yaw to
-yaw), which is what the seeds do when they flip a posed image.

Named extras. Beside the image and camera, a dataset may return more per-item data in
``ImageBatch.extras`` (a ``dict[str, Tensor]``, empty by default, batch dim first); which names a dataset
returns is its :attr:`ImageDataset.extra_names`, the same for every item. The names and their
conventions (B batch, H = W = resolution):

* ``light_dir`` (B, 3) float32: world-frame unit vector **toward** the light (synthetic sets).
* ``identity`` (B, Di) float32 and ``expression`` (B, De) float32: the scene parameters the synthetic
  generator drew (:data:`aware3d.data.synthetic.HEAD_IDENTITY_NAMES` (Di = 32) /
  ``HEAD_EXPRESSION_NAMES`` (De = 2) for heads; objects have ``identity`` only,
  ``OBJECT_IDENTITY_NAMES`` (Di = 15)).
* ``mask`` (B, 1, H, W) float32 in {0, 1}: foreground (1 where the pixel-centre ray hits the scene).
* ``depth`` (B, 1, H, W) float32: distance along the unit ray from the camera centre, world units; 0 on
  background (use ``mask``).
* ``normals`` (B, 3, H, W) float32: world-space unit outward normals; 0 on background.
* ``class_label`` (B,) int64 in [0, ``dataset.num_classes``): the class of a conditional image dataset
  (StyleGAN2-ADA / EpiGRAF integer ``labels`` in ``dataset.json``).

Mirrored items carry mirrored extras (the world reflected across x = 0, as for cameras): image-like maps
(``mask``, ``depth``, ``normals``) are flipped left-right, the x component of ``normals`` and
``light_dir`` is negated, and ``identity``, ``expression`` and ``class_label`` are kept (the scene
parameters have no mirrored form: they describe the unmirrored scene). :data:`EXTRA_MIRRORS` holds these
rules; a new extra needs one there before a mirrored dataset can return it.

Use :func:`open_dataset` to get one: a synthetic dataset name, a folder of images or a zip.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "EXTRA_MIRRORS", "DatasetError", "DatasetNotFoundError", "ImageBatch", "ImageDataset", "ImageItem", "LABEL_DIM",
    "flip_images", "mirror_cam2world", "mirror_directions", "mirror_eg3d_label", "mirror_extras", "mirror_intrinsics",
    "mirror_normal_maps", "open_dataset",
]

LABEL_DIM = 25
"""Length of an EG3D camera label: 16 (cam2world) + 9 (intrinsics)."""

_FINGERPRINT_FORMAT = "aware3d-dataset-fingerprint-1"
"""Bumped whenever what a fingerprint covers changes, so stale caches keyed by it are never reused."""


class DatasetError(ValueError):
    """A dataset cannot be opened or read; the message names the file and the fix."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset source (folder, zip or name) does not exist."""


# ============================================================================================ items

@dataclass
class ImageItem:
    """One dataset item (no batch dim); field meanings as in :class:`ImageBatch`."""

    image: Tensor
    """(3, H, W) float32 in [-1, 1]."""
    label: Tensor
    """(25,) float32 EG3D camera label, zeros when ``has_label`` is False."""
    has_label: Tensor
    """() bool: whether the item has a camera."""
    index: Tensor
    """() int64 position in the dataset."""
    extras: dict[str, Tensor] = field(default_factory=dict)
    """Named extras without the batch dim (see the module docstring)."""

    def to(self, *args, **kwargs) -> "ImageItem":
        """Move every tensor, extras included (``Tensor.to`` arguments)."""
        return ImageItem(self.image.to(*args, **kwargs), self.label.to(*args, **kwargs),
                         self.has_label.to(*args, **kwargs), self.index.to(*args, **kwargs),
                         {k: v.to(*args, **kwargs) for k, v in self.extras.items()})


@dataclass
class ImageBatch:
    """A batch of dataset items (see the module docstring for conventions)."""

    image: Tensor
    """(B, 3, H, W) float32 in [-1, 1], row 0 at the top."""
    label: Tensor
    """(B, 25) float32 EG3D label: row-major OpenCV cam2world (16) + normalised intrinsics (9); zeros
    where ``has_label`` is False."""
    has_label: Tensor
    """(B,) bool: which items have a camera."""
    index: Tensor
    """(B,) int64 item positions in the dataset (mirrored items count from the unmirrored length)."""
    extras: dict[str, Tensor] = field(default_factory=dict)
    """Named extras, batch dim first (names, shapes and dtypes in the module docstring); the keys are the
    dataset's :attr:`ImageDataset.extra_names`."""

    def to(self, *args, **kwargs) -> "ImageBatch":
        """Move every tensor, extras included (``Tensor.to`` arguments, e.g. a device)."""
        return ImageBatch(self.image.to(*args, **kwargs), self.label.to(*args, **kwargs),
                          self.has_label.to(*args, **kwargs), self.index.to(*args, **kwargs),
                          {k: v.to(*args, **kwargs) for k, v in self.extras.items()})

    def __len__(self) -> int:
        return self.image.shape[0]

    def __getitem__(self, i: int) -> ImageItem:
        """Item ``i`` of the batch."""
        return ImageItem(self.image[i], self.label[i], self.has_label[i], self.index[i],
                         {k: v[i] for k, v in self.extras.items()})

    def extra(self, name: str) -> Tensor:
        """Extra ``name``; a ``KeyError`` listing the extras this batch has when it is absent."""
        if name not in self.extras:
            have = ", ".join(sorted(self.extras)) or "none"
            raise KeyError(f"this batch has no extra {name!r} (it has: {have}); see the dataset's extra_names")
        return self.extras[name]

    @staticmethod
    def collate(items: "Sequence[ImageItem] | ImageBatch") -> "ImageBatch":
        """``collate_fn`` for a ``torch.utils.data.DataLoader``: stacks items (extras too; every item must
        have the same extras); a batch (what :meth:`ImageDataset.__getitems__` returns) passes through."""
        if isinstance(items, ImageBatch):
            return items
        if not items:
            raise ValueError("cannot collate an empty list of items")
        names = set(items[0].extras)
        for it in items:
            if set(it.extras) != names:
                raise ValueError(f"cannot collate items with different extras: {sorted(names)} and {sorted(it.extras)}")
        return ImageBatch(torch.stack([it.image for it in items]), torch.stack([it.label for it in items]),
                          torch.stack([it.has_label for it in items]), torch.stack([it.index for it in items]),
                          {k: torch.stack([it.extras[k] for it in items]) for k in items[0].extras})


# ========================================================================================== mirroring

def mirror_cam2world(cam2world: Tensor) -> Tensor:
    """Mirror (B, 4, 4) OpenCV cam2world matrices across the world x = 0 plane.

    Returns ``[[S R F, S t], [0, 1]]`` with ``S = F = diag(-1, 1, 1)``: the reflected camera with its x
    axis flipped (so it stays right-handed and its image is the left-right flip). Self-inverse.
    """
    sign = torch.tensor([-1.0, 1.0, 1.0], dtype=cam2world.dtype, device=cam2world.device)
    out = cam2world.clone()
    out[..., :3, :3] = cam2world[..., :3, :3] * sign[:, None] * sign[None, :]
    out[..., :3, 3] = cam2world[..., :3, 3] * sign
    return out


def mirror_intrinsics(intrinsics: Tensor) -> Tensor:
    """Intrinsics (B, 3, 3) of the left-right flipped image: ``cx -> 1 - cx``, ``skew -> -skew``
    (normalised units, so the flip is ``u -> 1 - u``); focal lengths and ``cy`` are unchanged."""
    out = intrinsics.clone()
    out[..., 0, 2] = 1.0 - intrinsics[..., 0, 2]
    out[..., 0, 1] = -intrinsics[..., 0, 1]
    return out


def mirror_eg3d_label(label: Tensor) -> Tensor:
    """Mirror EG3D labels (B, 25) (see :func:`mirror_cam2world`, :func:`mirror_intrinsics`)."""
    if label.shape[-1] != LABEL_DIM:
        raise ValueError(f"an EG3D label has {LABEL_DIM} numbers, got {label.shape[-1]}")
    flat = label.reshape(-1, LABEL_DIM)
    c2w = mirror_cam2world(flat[:, :16].reshape(-1, 4, 4))
    K = mirror_intrinsics(flat[:, 16:].reshape(-1, 3, 3))
    return torch.cat([c2w.reshape(-1, 16), K.reshape(-1, 9)], -1).reshape(label.shape)


def flip_images(images: Tensor) -> Tensor:
    """Left-right flip of (..., H, W) images (column j <- column W-1-j)."""
    return images.flip(-1)


def _neg_x(like: Tensor) -> Tensor:
    return torch.tensor([-1.0, 1.0, 1.0], dtype=like.dtype, device=like.device)


def mirror_directions(v: Tensor) -> Tensor:
    """World vectors (..., 3) (e.g. ``light_dir``) reflected across the x = 0 plane: x negated."""
    return v * _neg_x(v)


def mirror_normal_maps(normals: Tensor) -> Tensor:
    """World-space normal maps (..., 3, H, W) of the mirrored scene: flipped left-right, x negated."""
    return flip_images(normals) * _neg_x(normals)[:, None, None]


EXTRA_MIRRORS: dict[str, Callable[[Tensor], Tensor] | None] = {
    "light_dir": mirror_directions,
    "identity": None,
    "expression": None,
    "mask": flip_images,
    "depth": flip_images,
    "normals": mirror_normal_maps,
    "class_label": None,
    "coefficients": None,
}
"""How each named extra (batch dim first) is mirrored; None keeps it unchanged (see the module docstring)."""


def mirror_extras(extras: dict[str, Tensor], flipped: Tensor) -> dict[str, Tensor]:
    """Extras (batch dim first) with rows ``flipped`` (B,) bool mirrored by :data:`EXTRA_MIRRORS`."""
    out = {}
    for name, value in extras.items():
        if name not in EXTRA_MIRRORS:
            raise DatasetError(f"extra {name!r} has no mirror rule; add one to aware3d.data.base.EXTRA_MIRRORS "
                               "(or open the dataset without mirror)")
        rule = EXTRA_MIRRORS[name]
        if rule is not None:
            value = torch.where(flipped.reshape(-1, *([1] * (value.ndim - 1))), rule(value), value)
        out[name] = value
    return out


# ========================================================================================== dataset

class ImageDataset(torch.utils.data.Dataset):
    """Base of every dataset: images at ``resolution`` with optional cameras, mirror augmentation.

    Subclasses implement :attr:`base_length`, :meth:`_load` (unmirrored items), :meth:`_fingerprint_parts`
    and :attr:`has_labels`, and, when they return extras, :attr:`extra_names` and
    :meth:`_load_with_extras`; this class handles indexing, mirroring (extras included), batching and
    fingerprints.
    ``dataset[i]`` is an :class:`ImageItem`; :meth:`get_batch` an :class:`ImageBatch`. With a
    ``torch.utils.data.DataLoader`` pass ``collate_fn=ImageBatch.collate`` (or use :meth:`loader`):
    whole batches are then fetched through :meth:`__getitems__` (vectorised for synthetic data).
    """

    name: str = ""
    """Short name (folder / zip stem or synthetic preset name)."""
    resolution: int = 0
    """Side of the square images in pixels."""
    mirror: bool = False
    """Whether mirrored copies follow the N original items (length 2N)."""

    # ---------------------------------------------------------------- for subclasses
    @property
    def base_length(self) -> int:
        """Number of items before mirroring."""
        raise NotImplementedError

    @property
    def has_labels(self) -> bool:
        """Whether every item has a camera label."""
        raise NotImplementedError

    @property
    def has_ground_truth(self) -> bool:
        """Whether ``ground_truth(indices)`` serves the scenes' depth, normals and masks (synthetic data)."""
        return False

    @property
    def extra_names(self) -> tuple[str, ...]:
        """Names of the extras every batch carries in ``ImageBatch.extras`` (conventions in the module
        docstring); none by default."""
        return ()

    @property
    def num_classes(self) -> int:
        """Number of classes of the ``class_label`` extra (labels lie in [0, num_classes)); 0 when the
        dataset has no class labels."""
        return 0

    def _load(self, indices: list[int]) -> tuple[Tensor, Tensor, Tensor]:
        """Unmirrored items ``indices`` (each in [0, base_length)): image (B, 3, R, R) in [-1, 1],
        label (B, 25), has_label (B,) bool."""
        raise NotImplementedError

    def _load_with_extras(self, indices: list[int]) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """:meth:`_load` plus the unmirrored extras named by :attr:`extra_names`. Subclasses with extras
        override this (synthetic sets get image and ground truth from one rendering)."""
        return (*self._load(indices), {})

    def _fingerprint_parts(self) -> dict[str, Any]:
        """JSON-ready description of everything that defines the unmirrored images at this resolution."""
        raise NotImplementedError

    def _load_labels(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        """Unmirrored labels (B, 25) and has_label (B,) of ``indices``. Subclasses override this when
        labels are cheaper than images (the trainer draws generator cameras from the dataset's labels)."""
        _, label, has_label = self._load(indices)
        return label, has_label

    # ---------------------------------------------------------------- shared
    def __len__(self) -> int:
        return self.base_length * (2 if self.mirror else 1)

    def _resolve(self, index: int) -> int:
        index = int(index)
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {self.name!r} of length {n}")
        return index

    def _positions(self, indices: Sequence[int] | Tensor, caller: str) -> tuple[list[int], list[int], Tensor]:
        """(dataset positions, unmirrored item indices, (B,) bool: mirrored) of ``indices``."""
        if isinstance(indices, Tensor):
            indices = indices.reshape(-1).tolist()
        idx = [self._resolve(i) for i in indices]
        if not idx:
            raise ValueError(f"{caller} needs at least one index")
        n = self.base_length
        return idx, [i % n for i in idx], torch.tensor([i >= n for i in idx], dtype=torch.bool)

    def get_batch(self, indices: Sequence[int] | Tensor) -> ImageBatch:
        """Items ``indices`` (ints, negatives count from the end) as one :class:`ImageBatch`."""
        idx, items, flipped = self._positions(indices, "get_batch")
        image, label, has_label, extras = self._load_with_extras(items)
        if set(extras) != set(self.extra_names):
            raise DatasetError(f"{type(self).__name__} {self.name!r} loaded extras {sorted(extras)} but declares "
                               f"extra_names {sorted(self.extra_names)}")
        if bool(flipped.any()):
            image = torch.where(flipped[:, None, None, None], flip_images(image), image)
            relabel = flipped & has_label
            label = torch.where(relabel[:, None], mirror_eg3d_label(label), label)
            extras = mirror_extras(extras, flipped)
        return ImageBatch(image=image.contiguous(), label=label, has_label=has_label,
                          index=torch.tensor(idx, dtype=torch.int64),
                          extras={k: v.contiguous() for k, v in extras.items()})

    def get_labels(self, indices: Sequence[int] | Tensor) -> tuple[Tensor, Tensor]:
        """Camera labels (B, 25) and has_label (B,) of items ``indices`` (mirrored items mirrored), without
        decoding or rendering images where the dataset can avoid it. Equal to ``get_batch(indices).label``."""
        _, items, flipped = self._positions(indices, "get_labels")
        label, has_label = self._load_labels(items)
        label = torch.where((flipped & has_label)[:, None], mirror_eg3d_label(label), label)
        return label, has_label

    def __getitem__(self, index: int) -> ImageItem:
        return self.get_batch([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> ImageBatch:
        """Batched fetch used by ``DataLoader`` (torch >= 2.0); pair it with ``ImageBatch.collate``."""
        return self.get_batch(indices)

    def fingerprint(self) -> str:
        """sha256 hex of what defines the data at this resolution (content, preprocessing, mirror), to key
        caches of real-image statistics. Equal fingerprints mean equal images and labels."""
        desc = {"format": _FINGERPRINT_FORMAT, "kind": type(self).__name__, "resolution": self.resolution,
                "mirror": self.mirror, **self._fingerprint_parts()}
        return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()

    def at_resolution(self, resolution: int) -> "ImageDataset":
        """The same items at another resolution (a shallow copy; the source is not rescanned)."""
        out = copy.copy(self)
        out._set_resolution(_check_resolution(resolution))
        return out

    def _set_resolution(self, resolution: int) -> None:
        self.resolution = resolution

    def loader(self, batch_size: int, *, shuffle: bool = True, num_workers: int = 0, seed: int = 0,
               drop_last: bool = True, **kwargs) -> torch.utils.data.DataLoader:
        """A ``DataLoader`` yielding :class:`ImageBatch` (order seeded by ``seed`` when shuffling)."""
        return torch.utils.data.DataLoader(
            self, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, drop_last=drop_last,
            collate_fn=ImageBatch.collate, generator=torch.Generator().manual_seed(seed), **kwargs)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, resolution={self.resolution}, length={len(self)}, "
                f"mirror={self.mirror}, has_labels={self.has_labels})")


def _check_resolution(resolution: int) -> int:
    if not isinstance(resolution, int) or isinstance(resolution, bool) or resolution < 1:
        raise DatasetError(f"resolution must be a positive integer number of pixels, got {resolution!r}")
    return resolution


# ============================================================================================ open

def open_dataset(source: str, resolution: int, *, mirror: bool = False, skip_corrupt: bool = False,
                 length: int | None = None, seed: int = 0, preprocess: Any = "center",
                 check: str = "quick") -> ImageDataset:
    """Open a dataset by source.

    Args:
        source: a synthetic name (``synthetic-heads``, ``synthetic-objects``), optionally with ``:N``
            (``synthetic-heads:4096``: its first N items, rendered once and served from memory), a folder
            of images (png, jpg, jpeg, webp, bmp, found recursively) or a ``.zip`` of them; cameras come
            from a ``dataset.json`` at the root (EG3D ``labels`` or EpiGRAF ``camera_angles``), integer
            ``labels`` become the ``class_label`` extra.
        resolution: side of the square output images in pixels.
        mirror: append left-right mirrored copies with mirrored cameras (length doubles).
        skip_corrupt: skip unreadable images with a warning each (listed in ``dataset.skipped``)
            instead of raising :class:`DatasetError`. Images only.
        length: synthetic: number of items (default: the preset's); images: keep a random subset of
            this many items drawn with ``seed`` (kept in sorted order), as StyleGAN's ``max_size``.
        seed: synthetic: the dataset seed; images: the subset seed.
        preprocess: images only: a :class:`aware3d.data.images.Preprocess` or a preset name of
            :data:`aware3d.data.images.PREPROCESS_PRESETS` (``center``, ``pigan-celeba``, ...).
        check: images only: how files are verified at scan time (``quick``, ``full``, ``none``; see
            :func:`aware3d.data.images.check_image_bytes`).
    """
    from pathlib import Path

    from .synthetic import SYNTHETIC_DATASETS

    resolution = _check_resolution(resolution)
    if not isinstance(source, (str, Path)) or not str(source):
        raise DatasetError(f"dataset source must be a name or a path, got {source!r}")
    if str(source) in SYNTHETIC_DATASETS:
        from .synthetic_images import SyntheticImageDataset

        return SyntheticImageDataset(str(source), resolution, mirror=mirror, length=length, seed=seed)
    name, colon, count = str(source).partition(":")
    if colon and name in SYNTHETIC_DATASETS:
        from .synthetic_images import SyntheticImageDataset

        if not count.isdigit() or int(count) < 1:
            raise DatasetError(f"dataset {str(source)!r}: after {name}: give a positive number of items to keep in "
                               f"memory, e.g. {name}:4096")
        if length is not None and length != int(count):
            raise DatasetError(f"dataset {str(source)!r} asks for {count} items but length={length} was given")
        return SyntheticImageDataset(name, resolution, mirror=mirror, length=int(count), seed=seed, in_memory=True)
    path = Path(source)
    forms = (f"a synthetic name ({', '.join(sorted(SYNTHETIC_DATASETS))}), a folder of images "
             "(png, jpg, jpeg, webp, bmp) or a .zip of them")
    if not path.exists():
        raise DatasetNotFoundError(f"dataset {str(source)!r} not found: expected {forms}")
    from .images import ImageFolderDataset

    if path.is_dir() or (path.is_file() and path.suffix.lower() == ".zip"):
        return ImageFolderDataset(path, resolution, mirror=mirror, skip_corrupt=skip_corrupt, length=length,
                                  seed=seed, preprocess=preprocess, check=check)
    raise DatasetError(f"dataset {str(source)!r} is neither a folder nor a .zip: expected {forms}")
