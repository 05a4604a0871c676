"""The silhouette channel a discriminator may see beside the colour (issue 19).

A flat sheet painted with a face, or a fog, can match the colour of every view, but not the outline of the
head from every camera at once: with a silhouette channel D compares the real images' foreground masks with
the generated images' opacity. Both are mapped from [0, 1] to [-1, 1], the range of the colour channels.
A recipe that offers it appends :func:`fake_silhouette` to its generated images and :func:`real_silhouette` to
its real ones, and its discriminator is built with one input channel more.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from .base import Chunk


def fake_silhouette(images: Tensor, opacity: Tensor) -> Tensor:
    """(B, C + 1, H, W): ``images`` (B, C, H, W) with the renders' opacity (B, 1, h, w) in [0, 1] as a last
    channel in [-1, 1], resized bilinearly to H x W where the family renders it smaller (super-resolution)."""
    opacity = opacity.to(images.dtype)
    if opacity.shape[-2:] != images.shape[-2:]:
        opacity = F.interpolate(opacity, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return torch.cat([images, opacity * 2 - 1], 1)


def real_silhouette(chunk: Chunk, option: str) -> Tensor:
    """(B, C + 1, H, W): the chunk's real images with their dataset foreground masks (the ``mask`` extra, in
    {0, 1}) as a last channel in [-1, 1]. ``option`` names the setting that asked for it, for the error when
    the dataset has no masks."""
    mask = chunk.real_extras.get("mask")
    if mask is None:
        raise ConfigError(f"{option} needs the dataset's foreground masks (a 'mask' extra, as the synthetic datasets "
                          f"have), but this dataset has none: use such a dataset or set {option}=false")
    return torch.cat([chunk.real_images, mask.to(chunk.real_images) * 2 - 1], 1)


def check_discriminator_channels(channels: int, option: str, silhouette: bool) -> None:
    """Raise a :class:`ConfigError` unless a discriminator built with ``channels`` input channels (the setting
    ``option``, e.g. ``discriminator.in_channels``) takes what a recipe gives it: 3 colour channels, and one more
    with ``silhouette``."""
    want = 3 + int(silhouette)
    if channels != want:
        raise ConfigError(f"the discriminator takes {option.rsplit('.', 1)[-1]}={channels} but this recipe gives it "
                          f"{want} (colour{' + silhouette' if silhouette else ''}): set {option}={want}")


__all__ = ["check_discriminator_channels", "fake_silhouette", "real_silhouette"]
