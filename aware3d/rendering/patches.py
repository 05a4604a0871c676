"""Patch-wise training helpers: where a patch lies in the image, drawing patch parameters, cutting real patches.

A patch is a square window of the image given by a scale ``s`` (side as a fraction of the image side) and an
offset ``o`` (its corner as a fraction of the side), both (B, 2) = (x, y): **x is counted from the left edge, y
from the bottom edge** (EpiGRAF's convention, the same one its renderer uses for patch rays). Real patches are
bilinear resamplings of the full image at R x R points whose NDC grid is ``linspace(-1, 1, R)`` moved into the
window, so they sample exactly where a patch render shoots its rays.

Parameters are drawn per minibatch-std group (``group_size`` consecutive samples share one patch, so the
discriminator's group statistics compare like with like). The scale comes from a numpy-style ``scale_source``
(``beta``, ``rand``, ``choice`` methods: ``numpy.random`` itself reproduces the official code's global legacy
RNG, a seeded ``numpy.random.RandomState`` gives the same numbers reproducibly); offsets from torch's RNG
(``generator``; None = the global one, as officially).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import AT_LEAST_ONE, FINITE, NON_NEGATIVE, POSITIVE, Range, check_config
from ..errors import ConfigError

PatchDistribution = Literal["beta", "uniform", "discrete_uniform", "full"]
_DISTRIBUTIONS = ("beta", "uniform", "discrete_uniform", "full")


class ScaleSource(Protocol):
    """The numpy legacy-RNG methods the scale draws use (``numpy.random`` or a ``numpy.random.RandomState``)."""

    def beta(self, a: float, b: float, size: int) -> np.ndarray: ...

    def rand(self, size: int) -> np.ndarray: ...

    def choice(self, a: list, size: int, replace: bool = True) -> np.ndarray: ...


@dataclass(frozen=True)
class PatchSamplerConfig:
    """How patch parameters are drawn and annealed over training (EpiGRAF's ``training.patch`` options)."""

    distribution: PatchDistribution = "beta"
    """beta (annealed Beta(alpha, beta) scales), uniform (U[min, max], min annealed), discrete_uniform (a uniform
    pick from ``discrete_support`` within [min, max], min annealed) or full (always the whole image, no draws)."""
    min_scale: float = 0.125
    """Smallest scale reached (patch resolution / image resolution, e.g. 64 / 512)."""
    max_scale: float = 1.0
    """Largest scale (1 = the whole image)."""
    alpha: float = 1.0
    """First Beta parameter (beta distribution)."""
    beta_start: float = 0.001
    """Second Beta parameter at kimg 0 (about always the whole image)."""
    beta_end: float = 0.8
    """Second Beta parameter after ``anneal_kimg`` (mean scale 0.61 for min 0.125)."""
    anneal_kimg: float = 10000.0
    """Length of the linear annealing, in thousands of images shown."""
    discrete_support: tuple[float, ...] = (0.25, 1.0)
    """Scales the discrete_uniform distribution picks from."""
    group_size: int = 4
    """Consecutive samples that share one patch (the discriminator's minibatch-std group)."""

    def __post_init__(self) -> None:
        if self.distribution not in _DISTRIBUTIONS:
            raise ConfigError(f"unknown patch distribution {self.distribution!r}; valid: {', '.join(_DISTRIBUTIONS)}")
        check_config(self, {"min_scale": FINITE, "max_scale": FINITE, "alpha": POSITIVE, "beta_start": POSITIVE,
                            "beta_end": POSITIVE, "anneal_kimg": NON_NEGATIVE,
                            "discrete_support": Range(0, 1, lo_open=True), "group_size": AT_LEAST_ONE})
        if not 0 < self.min_scale <= self.max_scale <= 1:
            raise ConfigError(f"patch scales need 0 < min_scale <= max_scale <= 1, got {self.min_scale}, "
                              f"{self.max_scale}")


def linear_schedule(step: float, start: float, end: float, period: float) -> float:
    """``start`` at step <= 0, ``end`` at step >= period, linear in between (EpiGRAF's ``linear_schedule``)."""
    if step >= period:
        return end
    if step <= 0:
        return start
    return start + (end - start) * step / period


def annealed_parameters(cfg: PatchSamplerConfig, kimg: float) -> tuple[float, float]:
    """(beta, current min scale) at ``kimg``: beta anneals for the beta distribution, the min scale from
    ``max_scale`` down to ``min_scale`` for the uniform ones."""
    if cfg.distribution == "beta":
        return linear_schedule(kimg, cfg.beta_start, cfg.beta_end, cfg.anneal_kimg), cfg.min_scale
    if cfg.distribution in ("uniform", "discrete_uniform"):
        return cfg.beta_start, linear_schedule(kimg, cfg.max_scale, cfg.min_scale, cfg.anneal_kimg)
    return cfg.beta_start, cfg.max_scale


def sample_group_scales(cfg: PatchSamplerConfig, num_groups: int, kimg: float, scale_source: ScaleSource) -> Tensor:
    """(G,) float32 scales, one per group, with the official numpy draws (one call of ``scale_source``)."""
    beta, min_scale = annealed_parameters(cfg, kimg)
    if cfg.distribution == "beta":
        scales = scale_source.beta(a=cfg.alpha, b=beta, size=num_groups) * (cfg.max_scale - min_scale) + min_scale
    elif cfg.distribution == "uniform":
        scales = scale_source.rand(num_groups) * (cfg.max_scale - min_scale) + min_scale
    elif cfg.distribution == "discrete_uniform":
        support = [s for s in cfg.discrete_support if min_scale <= s <= cfg.max_scale]
        if not support:
            raise ValueError(f"no discrete patch scale in [{min_scale}, {cfg.max_scale}]: {cfg.discrete_support}")
        scales = scale_source.choice(support, size=num_groups, replace=True).astype(np.float32)
    else:
        scales = np.ones(num_groups, dtype=np.float32)
    return torch.from_numpy(np.asarray(scales)).float()


def sample_patch_params(batch: int, cfg: PatchSamplerConfig, kimg: float, scale_source: ScaleSource | None = None,
                        generator: torch.Generator | None = None, device=None) -> tuple[Tensor, Tensor]:
    """(scales, offsets), each (batch, 2) float32, shared by groups of ``cfg.group_size`` consecutive samples.

    Square patches (x scale = y scale); offsets uniform in [0, 1 - scale] per axis, drawn as one
    ``torch.rand((G, 2))`` from ``generator``. ``full`` draws nothing and returns scale 1, offset 0.
    ``scale_source`` defaults to ``numpy.random`` (the global legacy RNG, as the official code).
    """
    if batch % cfg.group_size:
        raise ValueError(f"patch parameters are shared by groups of {cfg.group_size}; the batch ({batch}) must be a "
                         "multiple of it")
    if cfg.distribution == "full":
        return torch.ones(batch, 2, device=device), torch.zeros(batch, 2, device=device)
    num_groups = batch // cfg.group_size
    scales_x = sample_group_scales(cfg, num_groups, kimg, np.random if scale_source is None else scale_source)
    scales = torch.stack([scales_x, scales_x], dim=1).to(device)
    offsets = torch.rand(scales.shape, generator=generator, device=device) * (1.0 - scales)
    return scales.repeat_interleave(cfg.group_size, dim=0), offsets.repeat_interleave(cfg.group_size, dim=0)


def patch_grid(scales: Tensor, offsets: Tensor, resolution: int) -> Tensor:
    """(B, R, R, 2) ``grid_sample`` coordinates (x right, y down, align_corners=True) of R x R patches.

    The patch NDC grid (x = linspace(-1, 1, R) over columns, y = -x over rows, y up) is mapped by
    ``(g + 1) * s - 1 + 2 * o`` (offsets from the left / bottom edge) and y is negated to image rows.
    """
    if scales.ndim != 2 or scales.shape[1] != 2 or offsets.shape != scales.shape:
        raise ValueError(f"patch scales and offsets must both be (B, 2), got {tuple(scales.shape)} and "
                         f"{tuple(offsets.shape)}")
    batch = scales.shape[0]
    row = torch.linspace(-1, 1, resolution, device=scales.device).float()
    x = row.view(1, -1).repeat(resolution, 1)
    grid = torch.stack([x, -x.t()], dim=2).unsqueeze(0).repeat(batch, 1, 1, 1)
    grid = (grid + 1.0) * scales.view(batch, 1, 1, 2) - 1.0 + offsets.view(batch, 1, 1, 2) * 2.0
    grid[..., 1] = -grid[..., 1]
    return grid


def extract_patches(images: Tensor, scales: Tensor, offsets: Tensor, resolution: int) -> Tensor:
    """(B, C, R, R) patches of square images (B, C, H, H): bilinear, zero padding, align_corners=True, no
    antialiasing (EpiGRAF's ``extract_patches``)."""
    if images.ndim != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"extract_patches needs square (B, C, H, H) images, got {tuple(images.shape)}")
    grid = patch_grid(scales.to(images.device), offsets.to(images.device), resolution)
    return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="zeros", align_corners=True)


__all__ = ["PatchDistribution", "PatchSamplerConfig", "ScaleSource", "annealed_parameters", "extract_patches",
           "linear_schedule", "patch_grid", "sample_group_scales", "sample_patch_params"]
