"""EG3D's super-resolution modules: the neural rendering (RGB + features) -> the final image.

Two StyleGAN2 synthesis blocks driven by the *last* w only (repeated 3x), with the raw RGB as the skip
image the blocks add to. The input is first resized (bilinear, antialiased) to the module's input size.

=============================  ======  =====  ===============================  ==================
official class                 output  input  blocks (width @ resolution)      resize the input
=============================  ======  =====  ===============================  ==================
SuperresolutionHybrid8XDC      512     128    up 256 @ 256, up 128 @ 512       if size != 128
SuperresolutionHybrid8X        512     128    up 128 @ 256, up 64 @ 512        if size != 128
SuperresolutionHybrid4X        256     128    same-size 128 @ 128, up 64 @ 256  if size < 128
SuperresolutionHybrid2X        128     64     same-size 128 @ 64, up 64 @ 128   if size != 64
=============================  ======  =====  ===============================  ==================

(Sizes scale with ``img_resolution`` here, so small presets can use the same layouts.) With
``sr_num_fp16_res > 0`` both blocks run in float16 on CUDA with a conv clamp of 256, which also applies on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...nn.stylegan2.layers import NoiseMode, SynthesisBlock


@dataclass(frozen=True)
class SuperResolutionLayout:
    """How an official super-resolution class is built."""

    input_divisor: int
    """Input size = img_resolution // input_divisor."""
    block0_up: int
    """Upsampling of the first block (2, or 1 for the "NoUp" same-size block)."""
    channels: tuple[int, int]
    """Official widths of the two blocks."""
    resize_only_smaller: bool
    """Resize the input only when it is smaller than the input size (4X) instead of whenever it differs."""
    official_resolution: int
    """The only output size the official class accepts."""


SR_LAYOUTS: dict[str, SuperResolutionLayout] = {
    "SuperresolutionHybrid8XDC": SuperResolutionLayout(4, 2, (256, 128), False, 512),
    "SuperresolutionHybrid8X": SuperResolutionLayout(4, 2, (128, 64), False, 512),
    "SuperresolutionHybrid4X": SuperResolutionLayout(2, 1, (128, 64), True, 256),
    "SuperresolutionHybrid2X": SuperResolutionLayout(2, 1, (128, 64), False, 128),
}


def sr_layout(name: str) -> SuperResolutionLayout:
    if name not in SR_LAYOUTS:
        raise ValueError(f"unknown super-resolution module {name!r}; valid: {', '.join(SR_LAYOUTS)}")
    return SR_LAYOUTS[name]


class SuperResolution(nn.Module):
    """Neural rendering (B, 3, R, R) + features (B, C, R, R) + ws -> image (B, 3, img_resolution, img_resolution)."""

    def __init__(self, name: str, channels: int, img_resolution: int, w_dim: int = 512, sr_num_fp16_res: int = 4,
                 antialias: bool = True, widths: tuple[int, int] | None = None, fused_modconv: str = "inference_only"):
        super().__init__()
        layout = sr_layout(name)
        self.name, self.layout, self.antialias = name, layout, antialias
        self.img_resolution = img_resolution
        self.input_resolution = img_resolution // layout.input_divisor
        use_fp16 = sr_num_fp16_res > 0
        clamp = 256 if use_fp16 else None
        w0, w1 = widths or layout.channels
        res0 = self.input_resolution * layout.block0_up
        self.block0 = SynthesisBlock(channels, w0, w_dim, res0, 3, is_last=False, up=layout.block0_up,
                                     use_fp16=use_fp16, conv_clamp=clamp, fused_modconv=fused_modconv)
        self.block1 = SynthesisBlock(w0, w1, w_dim, img_resolution, 3, is_last=True, use_fp16=use_fp16,
                                     conv_clamp=clamp, fused_modconv=fused_modconv)

    def needs_resize(self, size: int) -> bool:
        return size < self.input_resolution if self.layout.resize_only_smaller else size != self.input_resolution

    def forward(self, rgb: Tensor, features: Tensor, ws: Tensor, noise_mode: NoiseMode = "none",
                fused_modconv: bool | None = None,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None]:
        """Returns (image, raw_alias).

        ``raw_alias`` reproduces an official quirk: a same-size first block adds its ToRGB output *in place*
        to the RGB it was given; when no resize happened that RGB is the generator's ``image_raw`` (a view of
        the feature image), so the official ``image_raw`` comes back with that addition. Then ``raw_alias``
        is that sum (the caller reports it as ``image_raw``); otherwise None.
        """
        ws = ws[:, -1:, :].repeat(1, 3, 1)
        resized = self.needs_resize(features.shape[-1])
        if resized:
            size = (self.input_resolution, self.input_resolution)
            features = F.interpolate(features, size=size, mode="bilinear", align_corners=False, antialias=self.antialias)
            rgb = F.interpolate(rgb, size=size, mode="bilinear", align_corners=False, antialias=self.antialias)
        kw = dict(noise_mode=noise_mode, fused_modconv=fused_modconv, generator=generator)
        x, img = self.block0(features, rgb, ws, **kw)
        raw_alias = img if (self.layout.block0_up == 1 and not resized) else None
        _, img = self.block1(x, img, ws, **kw)
        return img.contiguous(), raw_alias
