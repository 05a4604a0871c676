"""EpiGRAF's patch sampling on top of the shared helpers (:mod:`aware3d.rendering.patches`): its
``training.patch`` options as a :class:`~aware3d.rendering.patches.PatchSamplerConfig`, draws as
:class:`~.cameras.PatchParams`, and real patches cut where a patch render of the same parameters shoots its rays.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...rendering.patches import PatchSamplerConfig, ScaleSource, extract_patches, sample_patch_params
from .cameras import PatchParams

_PATCH_DISTRIBUTIONS = {"beta", "uniform", "discrete_uniform"}


def sampler_config_from_official(patch_cfg: dict) -> PatchSamplerConfig:
    """Our sampler config from EpiGRAF's resolved ``training.patch`` dict (``enabled`` false -> ``full``)."""
    if not patch_cfg.get("enabled", False):
        return PatchSamplerConfig(distribution="full", group_size=int(patch_cfg.get("mbstd_group_size", 4)))
    dist = patch_cfg.get("distribution")
    if dist not in _PATCH_DISTRIBUTIONS:
        raise ValueError(f"unknown EpiGRAF patch distribution {dist!r}; valid: {', '.join(sorted(_PATCH_DISTRIBUTIONS))}")
    return PatchSamplerConfig(
        distribution=dist, min_scale=float(patch_cfg["min_scale_trg"]), max_scale=float(patch_cfg["max_scale"]),
        alpha=float(patch_cfg.get("alpha", 1.0)), beta_start=float(patch_cfg.get("beta_val_start", 0.001)),
        beta_end=float(patch_cfg.get("beta_val_end", 0.8)), anneal_kimg=float(patch_cfg["anneal_kimg"]),
        discrete_support=tuple(float(s) for s in patch_cfg.get("discrete_support", (0.25, 1.0))),
        group_size=int(patch_cfg["mbstd_group_size"]))


def sample_patches(batch: int, cfg: PatchSamplerConfig, kimg: float, scale_source: ScaleSource | None = None,
                   generator: torch.Generator | None = None, device=None) -> PatchParams:
    """Patch parameters for ``batch`` samples at training progress ``kimg`` (see
    :func:`aware3d.rendering.patches.sample_patch_params`; ``scale_source`` None = numpy's global RNG)."""
    scales, offsets = sample_patch_params(batch, cfg, kimg, scale_source, generator, device)
    return PatchParams(scales, offsets)


def real_patches(images: Tensor, patch: PatchParams, resolution: int) -> Tensor:
    """(B, C, R, R) bilinear patches of full real images (B, C, H, H) (official ``extract_patches``)."""
    return extract_patches(images, patch.scales, patch.offsets, resolution)


__all__ = ["real_patches", "sample_patches", "sampler_config_from_official"]
