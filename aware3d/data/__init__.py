"""Datasets: the :class:`ImageDataset` interface, real-image folders / zips and synthetic 3D scenes.

``open_dataset(source, resolution, mirror=..., ...)`` returns an :class:`ImageDataset` whose
``get_batch(indices)`` yields :class:`ImageBatch` (image (B, 3, H, W) in [-1, 1], EG3D label (B, 25),
has_label (B,), index (B,)). See :mod:`.base` for the conventions, :mod:`.images` for folders and zips,
:mod:`.synthetic_images` for the synthetic adapter and :mod:`.synthetic` for the scenes themselves.
"""

from .base import (
    LABEL_DIM,
    DatasetError,
    DatasetNotFoundError,
    ImageBatch,
    ImageDataset,
    ImageItem,
    flip_images,
    mirror_cam2world,
    mirror_eg3d_label,
    mirror_intrinsics,
    open_dataset,
)
from .images import PREPROCESS_PRESETS, ImageFolderDataset, Preprocess
from .synthetic import SYNTHETIC_DATASETS, SyntheticDataset, SyntheticSample
from .synthetic_images import SyntheticImageDataset, mirror_sample

__all__ = [
    "LABEL_DIM", "PREPROCESS_PRESETS", "SYNTHETIC_DATASETS", "DatasetError", "DatasetNotFoundError", "ImageBatch",
    "ImageDataset", "ImageFolderDataset", "ImageItem", "Preprocess", "SyntheticDataset", "SyntheticImageDataset",
    "SyntheticSample", "flip_images", "mirror_cam2world", "mirror_eg3d_label", "mirror_intrinsics", "mirror_sample",
    "open_dataset",
]
