"""The reconstruction loss of an inversion: pixel, multi-scale SSIM, discriminator-feature and LPIPS terms.

Every term is a per-image mean, (B,) for B renders against one target (1, 3, H, W) in [-1, 1]; the total is their
weighted sum (:class:`~aware3d.inversion.config.LossConfig`). Terms:

* ``pixel``: mean squared error of the [-1, 1] images;
* ``msssim``: ``1 - MS-SSIM`` of the [0, 1] images (:func:`aware3d.metrics.msssim.ms_ssim`, fewer scales below
  176 px);
* ``discriminator``: for each block of the trained discriminator (``feature_maps``, every family's D has it), the
  mean squared feature difference over the target's mean squared feature, averaged over the blocks;
* ``lpips``: LPIPS-VGG (:mod:`aware3d.nn.lpips`) from the user's two weight files, on images upsampled to
  ``lpips_min_size``.

The discriminator comes from a training run folder (``aware3d train --out``): its config and
``checkpoint/D.safetensors``; an exported generator or an official file holds none (:func:`load_discriminator`
returns None and the result records that the term was off).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn

from ..metrics.msssim import ms_ssim
from .config import LossConfig


def psnr(image: Tensor, target: Tensor) -> Tensor:
    """(B,) peak signal-to-noise ratio in dB of (B, 3, H, W) images against a (1 or B, 3, H, W) target, both in
    [-1, 1] and measured on [0, 1] (peak 1)."""
    mse = ((image - target) / 2).square().flatten(1).mean(1)
    return -10 * torch.log10(mse.clamp_min(1e-12))


def msssim_distance(image: Tensor, target: Tensor) -> Tensor:
    """(B,) ``1 - MS-SSIM`` of [-1, 1] images (compared on [0, 1]), float32."""
    t = target.expand_as(image)
    return (1 - ms_ssim((image.clamp(-1, 1) + 1) / 2, (t + 1) / 2)).float()


def feature_distance(features: list[Tensor], target_features: list[Tensor]) -> Tensor:
    """(B,) mean over blocks of ``mean((f - f_target)^2) / mean(f_target^2)``: every block weighs alike."""
    terms = []
    for f, t in zip(features, target_features, strict=True):
        norm = t.square().mean().clamp_min(1e-8)
        terms.append((f - t).square().flatten(1).mean(1) / norm)
    return torch.stack(terms).mean(0)


def load_discriminator(source: str | os.PathLike, device: torch.device | str = "cpu") -> nn.Module | None:
    """The trained discriminator of a training run folder (frozen, eval mode), or None when ``source`` is not one
    (an exported generator, an official file or a preset holds no D)."""
    from ..io.checkpoint import load_state_strict
    from ..models.registry import get_family
    from ..training.config import RunConfig
    from ..training.snapshots import is_run_dir

    if not is_run_dir(source):
        return None
    run = Path(source)
    cfg = RunConfig.from_json(json.loads((run / "config.json").read_text()), str(run / "config.json"))
    weights = run / "checkpoint" / "D.safetensors"
    if not weights.is_file():
        return None
    D = get_family(cfg.family).training.discriminator_cls(cfg.discriminator)
    load_state_strict(D, load_file(str(weights)), f"{weights} does not match the run's discriminator")
    return D.to(device).eval().requires_grad_(False)


class ReconstructionLoss:
    """The weighted terms of :class:`LossConfig` against one fixed target image.

    Args:
        target: (1, 3, H, W) in [-1, 1]; renders are compared at its size.
        config: the weights.
        discriminator: a module with ``feature_maps(images) -> list[Tensor]`` (every family's D), or None (the
            term is then off whatever its weight).
        lpips: a loaded :class:`~aware3d.nn.lpips.LPIPS`, or None (the term is then off).
    """

    def __init__(self, target: Tensor, config: LossConfig, discriminator: nn.Module | None = None,
                 lpips: nn.Module | None = None):
        self.target, self.config = target, config
        self.discriminator = discriminator if config.discriminator > 0 else None
        self.lpips = lpips if config.lpips > 0 else None
        self.target_features = None
        if self.discriminator is not None:
            with torch.no_grad():
                self.target_features = self.discriminator.feature_maps(target)

    @property
    def active(self) -> dict[str, float]:
        """The terms in use, with their weights."""
        on = {"pixel": self.config.pixel, "msssim": self.config.msssim,
              "discriminator": self.config.discriminator if self.discriminator is not None else 0.0,
              "lpips": self.config.lpips if self.lpips is not None else 0.0}
        return {k: v for k, v in on.items() if v > 0}

    def _lpips(self, image: Tensor) -> Tensor:
        size = max(self.config.lpips_min_size, image.shape[-1])
        up = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)
        t = F.interpolate(self.target, size=(size, size), mode="bilinear", align_corners=False)
        return self.lpips(up, t.expand_as(up))

    def terms(self, image: Tensor) -> dict[str, Tensor]:
        """Each active term, (B,), for renders (B, 3, H, W) at the target's size."""
        if image.shape[-2:] != self.target.shape[-2:]:
            raise ValueError(f"renders are {tuple(image.shape[-2:])} and the target {tuple(self.target.shape[-2:])}")
        out = {}
        for name in self.active:
            if name == "pixel":
                out[name] = (image - self.target).square().flatten(1).mean(1)
            elif name == "msssim":
                out[name] = msssim_distance(image, self.target)
            elif name == "discriminator":
                out[name] = feature_distance(self.discriminator.feature_maps(image), self.target_features)
            else:
                out[name] = self._lpips(image)
        return out

    def total(self, terms: dict[str, Tensor]) -> Tensor:
        """(B,) the weighted sum of ``terms``."""
        weights = self.active
        return sum(weights[k] * v for k, v in terms.items())


__all__ = ["ReconstructionLoss", "feature_distance", "load_discriminator", "msssim_distance", "psnr"]
