"""Sliced Wasserstein distance between image sets on Laplacian pyramids (the ProGAN recipe).

For each set of images (uint8 values as float, like ProGAN):

1. Build a Laplacian pyramid from full resolution down to ``min_resolution`` (16): each level is the image
   minus the upsampled next coarser one; the last level is the low-pass residual. Down/upsampling use
   the 5x5 binomial kernel ``[1 4 6 4 1]^T [1 4 6 4 1] / 256`` with mirror padding (OpenCV's pyrDown/pyrUp).
2. From every level, take ``nhoods_per_image`` (128) random 7x7 neighbourhoods per image (centres at
   least 3 pixels from the border), all channels: 3 * 7 * 7 = 147-dim descriptors.
3. Normalise each level's descriptors per colour channel (zero mean, unit std over all descriptors and
   positions). ProGAN normalises each set by its own statistics (``normalize="separate"``);
   ``"reference"`` uses the first (real) set's for both, which also sees global colour shifts.
4. Per level: ``dir_repeats`` (4) times, project both descriptor sets on ``dirs_per_repeat`` (128)
   random unit directions, sort each projection, and average the absolute differences of the sorted
   values (the 1D Wasserstein-1 distance). Average over repeats, multiply by 1e3.

The result is one value per level (keyed by the level's resolution) and their mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class SWDConfig:
    """ProGAN's SWD settings."""

    nhood_size: int = 7
    """Side of the square neighbourhoods (odd), pixels."""
    nhoods_per_image: int = 128
    """Neighbourhoods sampled per image and pyramid level."""
    dir_repeats: int = 4
    """Number of independent sets of random directions averaged."""
    dirs_per_repeat: int = 128
    """Random projection directions per repeat."""
    min_resolution: int = 16
    """Coarsest pyramid level, pixels (levels halve from the image size down to this)."""
    normalize: Literal["separate", "reference"] = "separate"
    """Descriptor normalisation: each set by its own channel statistics (ProGAN) or both by the real set's."""


_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])


def _blur(x: Tensor, gain: float = 1.0) -> Tensor:
    """5x5 binomial filter (times ``gain``) with mirror padding (reflect without repeating the edge)."""
    k1 = (_BINOMIAL / 16).to(x)
    k = (torch.outer(k1, k1) * gain)[None, None].expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k, groups=x.shape[1])


def pyr_down(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C, ceil(H/2), ceil(W/2)): blur, keep even pixels."""
    return _blur(x)[:, :, ::2, ::2]


def pyr_up(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C, 2H, 2W): zeros between pixels, blur with 4x gain (keeps the mean)."""
    B, C, H, W = x.shape
    up = torch.zeros(B, C, 2 * H, 2 * W, dtype=x.dtype, device=x.device)
    up[:, :, ::2, ::2] = x
    return _blur(up, gain=4.0)


def pyramid_resolutions(size: int, min_resolution: int = 16) -> list[int]:
    """Level sizes from ``size`` halving while >= ``min_resolution`` (e.g. 64 -> [64, 32, 16])."""
    out = []
    while size >= min_resolution:
        out.append(size)
        size //= 2
    return out


def laplacian_pyramid(images: Tensor, num_levels: int) -> list[Tensor]:
    """Laplacian pyramid of (B, C, H, W) float images: ``num_levels`` band-pass levels, finest first, the
    last one the low-pass residual; summing ``pyr_up`` from coarse to fine reconstructs the images."""
    levels = [images.float()]
    for _ in range(1, num_levels):
        coarse = pyr_down(levels[-1])
        levels[-1] = levels[-1] - pyr_up(coarse)
        levels.append(coarse)
    return levels


def sample_descriptors(level: Tensor, nhood_size: int, nhoods_per_image: int,
                       generator: torch.Generator | None = None) -> Tensor:
    """(B * n, C, k, k) random k x k neighbourhoods of a (B, C, H, W) level, n per image (image-major)."""
    B, C, H, W = level.shape
    r = nhood_size // 2
    if H < nhood_size or W < nhood_size:
        raise ValueError(f"SWD neighbourhoods of {nhood_size} px need levels of at least that size, got {H}x{W}")
    n = B * nhoods_per_image
    img = torch.arange(B).repeat_interleave(nhoods_per_image)
    cy = torch.randint(r, H - r, (n,), generator=generator)
    cx = torch.randint(r, W - r, (n,), generator=generator)
    off = torch.arange(-r, r + 1)
    rows = (cy[:, None] + off)[:, None, :, None]
    cols = (cx[:, None] + off)[:, None, None, :]
    chan = torch.arange(C)[None, :, None, None]
    dev = level.device
    return level[img[:, None, None, None].to(dev), chan.to(dev), rows.to(dev), cols.to(dev)]


def channel_stats(desc: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std (population) of (N, C, k, k) descriptors, each (1, C, 1, 1)."""
    mean = desc.mean(dim=(0, 2, 3), keepdim=True)
    std = desc.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
    return mean, std


def normalize_descriptors(desc: Tensor, stats: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """(N, C, k, k) -> (N, C*k*k) with channels standardised by ``stats`` (default: the set's own)."""
    mean, std = stats if stats is not None else channel_stats(desc)
    return ((desc - mean) / std.clamp_min(1e-8)).reshape(desc.shape[0], -1)


def _sorted_columns(x: Tensor) -> np.ndarray:
    """Each column of (N, K) sorted, as a float32 numpy array (numpy's CPU sort is ~10x torch's)."""
    return np.sort(x.detach().float().cpu().numpy(), axis=0)


def sliced_wasserstein(a: Tensor, b: Tensor, dir_repeats: int = 4, dirs_per_repeat: int = 128,
                       generator: torch.Generator | None = None) -> float:
    """Mean 1D Wasserstein-1 distance of two (N, D) point sets along random unit directions.

    Both sets must have the same N (sorted projections are compared element by element).
    """
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"sliced_wasserstein needs two (N, D) sets of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    results = []
    for _ in range(dir_repeats):
        dirs = torch.randn(a.shape[1], dirs_per_repeat, generator=generator).to(a)
        dirs = dirs / dirs.norm(dim=0, keepdim=True)
        pa, pb = _sorted_columns(a @ dirs), _sorted_columns(b @ dirs)
        results.append(float(np.abs(pa - pb).mean(dtype=np.float64)))
    return float(np.mean(results))


class DescriptorSet:
    """Accumulates per-level descriptors of a stream of image batches (one pyramid per batch)."""

    def __init__(self, resolution: int, config: SWDConfig = SWDConfig(), generator: torch.Generator | None = None):
        self.config = config
        self.resolutions = pyramid_resolutions(resolution, config.min_resolution)
        if not self.resolutions:
            raise ValueError(f"SWD needs images of at least min_resolution={config.min_resolution} px, got {resolution}")
        self.generator = generator
        self.levels: list[list[Tensor]] = [[] for _ in self.resolutions]

    def feed(self, images: Tensor) -> None:
        """Add (B, 3, H, W) images in [-1, 1]; they are quantised to uint8 values as ProGAN's inputs are."""
        x = ((images.detach().float() + 1) * 127.5).round().clamp(0, 255).cpu()
        for i, level in enumerate(laplacian_pyramid(x, len(self.resolutions))):
            self.levels[i].append(sample_descriptors(level, self.config.nhood_size, self.config.nhoods_per_image,
                                                     self.generator))

    def descriptors(self) -> list[Tensor]:
        """Per level (N, C, k, k) raw descriptors."""
        if not self.levels[0]:
            raise ValueError("no images were fed")
        return [torch.cat(d) for d in self.levels]


def swd_from_descriptors(real: list[Tensor], fake: list[Tensor], resolutions: list[int], config: SWDConfig = SWDConfig(),
                         generator: torch.Generator | None = None) -> dict[str, float]:
    """SWD x 1e3 per level (keys = level resolution as a string) and ``"avg"`` (their mean)."""
    out: dict[str, float] = {}
    for res, r, f in zip(resolutions, real, fake):
        ref = channel_stats(r)
        rn = normalize_descriptors(r, ref)
        fn = normalize_descriptors(f, ref if config.normalize == "reference" else None)
        out[str(res)] = 1e3 * sliced_wasserstein(rn, fn, config.dir_repeats, config.dirs_per_repeat, generator)
    out["avg"] = sum(out.values()) / len(resolutions)
    return out


def sliced_wasserstein_distance(real_images: Tensor, fake_images: Tensor, config: SWDConfig = SWDConfig(),
                                seed: int = 0) -> dict[str, float]:
    """SWD between two in-memory (N, 3, H, W) image sets in [-1, 1] (same N, same size); see module doc."""
    if real_images.shape != fake_images.shape:
        raise ValueError(f"SWD compares image sets of one shape, got {tuple(real_images.shape)} and {tuple(fake_images.shape)}")
    g = torch.Generator().manual_seed(seed)
    sets = []
    for images in (real_images, fake_images):
        d = DescriptorSet(images.shape[-1], config, g)
        d.feed(images)
        sets.append(d)
    return swd_from_descriptors(sets[0].descriptors(), sets[1].descriptors(), sets[0].resolutions, config, g)


__all__ = [
    "DescriptorSet", "SWDConfig", "channel_stats", "laplacian_pyramid", "normalize_descriptors", "pyr_down", "pyr_up",
    "pyramid_resolutions", "sample_descriptors", "sliced_wasserstein", "sliced_wasserstein_distance",
    "swd_from_descriptors",
]
