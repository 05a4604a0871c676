"""Datasets: the :class:`ImageDataset` interface, real-image folders / zips and synthetic 3D scenes.

``open_dataset(source, resolution, mirror=..., ...)`` returns an :class:`ImageDataset` whose
``get_batch(indices)`` yields :class:`ImageBatch` (image (B, 3, H, W) in [-1, 1], EG3D label (B, 25),
has_label (B,), index (B,) and the named ``extras`` of ``dataset.extra_names``). See :mod:`.base` for
the conventions, :mod:`.images` for folders and zips, :mod:`.synthetic_images` for the synthetic adapter
and :mod:`.synthetic` for the scenes themselves.
"""

from .base import (
    EXTRA_MIRRORS,
    LABEL_DIM,
    DatasetError,
    DatasetNotFoundError,
    ImageBatch,
    ImageDataset,
    ImageItem,
    flip_images,
    mirror_cam2world,
    mirror_directions,
    mirror_eg3d_label,
    mirror_extras,
    mirror_intrinsics,
    mirror_normal_maps,
    open_dataset,
)
from .images import PREPROCESS_PRESETS, ImageFolderDataset, Preprocess
from .synthetic import SYNTHETIC_DATASETS, SyntheticDataset, SyntheticSample
from .synthetic_images import SyntheticImageDataset, mirror_sample, synthetic_extra_names

__all__ = [
    "EXTRA_MIRRORS", "LABEL_DIM", "PREPROCESS_PRESETS", "SYNTHETIC_DATASETS", "DatasetError", "DatasetNotFoundError",
    "ImageBatch", "ImageDataset", "ImageFolderDataset", "ImageItem", "Preprocess", "SyntheticDataset",
    "SyntheticImageDataset", "SyntheticSample", "flip_images", "mirror_cam2world", "mirror_directions",
    "mirror_eg3d_label", "mirror_extras", "mirror_intrinsics", "mirror_normal_maps", "mirror_sample",
    "open_dataset", "synthetic_extra_names",
]
