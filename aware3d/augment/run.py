"""Augmentation of the discriminator's inputs during a training run (``aware3d train --aug``).

A run's :class:`DAugmentConfig` says whether the images D sees are augmented (``noaug``), with a fixed
probability (``fixed``) or with one adapted toward a target overfitting heuristic (``ada``). The trainer
builds one :class:`~aware3d.augment.pipe.AugmentPipe` (its ``p`` is checkpointed) and, for ``ada``, one
:class:`~aware3d.augment.adaptive.AdaptiveP`, and hands every chunk a :class:`DAugment`: the pipe with the
chunk's own seeded random stream. A recipe passes *every* image D sees through it (real and generated, in the
G and D phases, R1's reals after ``requires_grad_``, so the gradient is taken with respect to the un-augmented
images as officially) and reports D's logits on real images with :meth:`DAugment.observe_real`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from .adaptive import AdaConfig, AdaptiveP
from .pipe import AugmentConfig, AugmentPipe

AugmentMode = Literal["noaug", "ada", "fixed"]


@dataclass(frozen=True)
class DAugmentConfig:
    """How a run augments what its discriminator sees (StyleGAN2-ADA's ``--aug``)."""

    mode: AugmentMode = "noaug"
    """noaug: images as they are; ada: p adapts from D's real logits toward ada.target; fixed: p stays at p."""
    p: float = 0.0
    """Probability multiplier at the start (ada) or throughout (fixed)."""
    pipe: AugmentConfig = field(default_factory=AugmentConfig)
    """Which transforms and how strong (default: the official 'bgc', every geometric and colour transform)."""
    ada: AdaConfig = field(default_factory=AdaConfig)
    """Target, interval and speed of the adaptation (ada only)."""

    def __post_init__(self) -> None:
        if self.mode not in ("noaug", "ada", "fixed"):
            raise ValueError(f"--aug must be noaug, ada or fixed, got {self.mode!r}")
        if not self.p >= 0:
            raise ValueError(f"the augmentation probability must be >= 0, got {self.p}")
        if self.mode == "fixed" and self.p == 0:
            raise ValueError("--aug fixed with p 0 augments nothing: give --aug-p (e.g. 0.2) or use --aug noaug")

    def build(self) -> tuple[AugmentPipe | None, AdaptiveP | None]:
        """The run's pipe (None for noaug) and, for ada, its controller."""
        if self.mode == "noaug":
            return None, None
        pipe = AugmentPipe(self.pipe, p=self.p)
        return pipe, (AdaptiveP(self.ada) if self.mode == "ada" else None)


@dataclass(frozen=True)
class DAugment:
    """The augmentation of one chunk's discriminator inputs; the identity when the run has no pipe."""

    pipe: AugmentPipe | None = None
    """The run's pipe (shared by every chunk; its ``p`` is the current probability)."""
    generator: torch.Generator | None = None
    """This chunk's random stream for the transforms (seeded per step, phase and chunk: exact resume)."""
    controller: AdaptiveP | None = None
    """The adaptive-p controller (ada), which counts the signs of D's real logits."""

    def __call__(self, images: Tensor, masks: int = 0) -> Tensor:
        """``images`` (B, C, H, W) augmented, every sample on its own: the first C - masks channels are colour (1
        or a multiple of 3: stacked RGB images, e.g. an image and its raw render, get the same transform), the last
        ``masks`` channels (e.g. a silhouette) get the same geometric transform and no colour change."""
        if self.pipe is None:
            return images
        return self.pipe(images, generator=self.generator, masks=masks)

    def observe_real(self, logits: Tensor) -> None:
        """Count sign(D(real)) toward the ADA heuristic (a no-op unless p adapts)."""
        if self.controller is not None:
            self.controller.accumulate(logits)




def augment_pair(image: Tensor, low_res: Tensor, augment: DAugment, masks: int = 0) -> tuple[Tensor, Tensor]:
    """One transform per sample for an image (B, C, H, W) and its lower-resolution companion (B, C', h, w), e.g. a
    super-resolved image and its raw render: the companion is resized up (bilinear, antialiased), both are
    augmented as one (C + C')-channel stack and the companion is resized back, as the StyleGAN-family dual
    discriminators' official loops do. The last ``masks`` channels of each (a silhouette) are moved behind all
    colour channels for the pipe, so they get the geometric transform only, and put back."""
    size, c, c_low = image.shape[-2:], image.shape[1], low_res.shape[1]
    up = F.interpolate(low_res, size=size, mode="bilinear", align_corners=False, antialias=True)
    stack = torch.cat([image[:, :c - masks], up[:, :c_low - masks], image[:, c - masks:], up[:, c_low - masks:]], 1)
    out = augment(stack, masks=2 * masks)
    colour, mask = out[:, :c + c_low - 2 * masks], out[:, c + c_low - 2 * masks:]
    image = torch.cat([colour[:, :c - masks], mask[:, :masks]], 1)
    up = torch.cat([colour[:, c - masks:], mask[:, masks:]], 1)
    down = F.interpolate(up, size=low_res.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
    return image, down


__all__ = ["AugmentMode", "DAugment", "DAugmentConfig", "augment_pair"]
