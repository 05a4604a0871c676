"""EG3D's dual discriminator: a camera-conditioned StyleGAN2 ResNet discriminator that sees the final image
and the raw neural rendering (resized to the same size) stacked as 6 channels.

Blocks go from ``img_resolution`` down to 8 (each: [fromRGB] + 3x3 conv + 3x3 conv with 2x downsampling,
plus a 1x1 downsampling skip, summed with gain sqrt(0.5)), then the 4x4 epilogue: minibatch standard
deviation, conv, FC, and a projection onto the mapped camera label (``(x * cmap).sum / sqrt(cmap_dim)``); a
class-conditional discriminator (``num_classes`` K > 0) maps [camera label, one-hot class] instead.
Channels follow min(channel_base // r, channel_max). The ``num_fp16_res`` highest-resolution blocks run in
float16 on CUDA (conv clamp applies everywhere).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...nn.stylegan2.discriminator import DiscriminatorBlock, DiscriminatorEpilogue, FilterMode, filtered_resizing
from ...nn.stylegan2.layers import setup_filter
from ...nn.stylegan2.networks import MappingNetwork, channels_at
from .generator import class_one_hot


@dataclass(frozen=True)
class DualDiscriminatorConfig:
    """Every constructor argument of :class:`DualDiscriminator`."""

    c_dim: int = 25
    """Size of the camera label the discriminator is conditioned on (0: unconditional)."""
    num_classes: int = 0
    """Classes of a class-conditional model: the label mapping sees [camera label, one-hot class]; 0 = none."""
    img_resolution: int = 512
    """Size of the final images it judges (the raw image is resized to this)."""
    img_channels: int = 3
    """Channels of each image (the network sees twice as many: final + raw)."""
    channel_base: int = 32768
    """Channels at resolution r are min(channel_base // r, channel_max)."""
    channel_max: int = 512
    """Upper bound on channels."""
    num_fp16_res: int = 4
    """Blocks at the highest resolutions run in float16 on CUDA."""
    conv_clamp: float | None = 256
    """Clamp of convolution outputs (+-value); None = no clamp."""
    cmap_dim: int | None = None
    """Size of the mapped camera label; None = the 4x4 block's channels."""
    disc_c_noise: float = 0.0
    """Std (in units of the batch std) of the Gaussian noise added to the label before mapping (training)."""
    mapping_layers: int = 8
    """FC layers of the label mapping network."""
    mapping_lr_mul: float = 0.01
    """Learning-rate multiplier of the label mapping network."""
    mbstd_group_size: int = 4
    """Minibatch-stddev group size (the batch must be a multiple of min(group, batch))."""
    mbstd_num_channels: int = 1
    """Minibatch-stddev feature channels (0 disables the layer)."""
    freeze_layers: int = 0
    """Number of leading layers kept frozen during training (recorded for the trainer)."""
    raw_filter_mode: FilterMode = "antialiased"
    """How the raw image is resized to img_resolution (official: antialiased bilinear)."""


class DualDiscriminator(nn.Module):
    """(final image (B, 3, S, S), raw image (B, 3, R, R), camera label (B, 25)) -> logits (B, 1)."""

    def __init__(self, config: DualDiscriminatorConfig = DualDiscriminatorConfig()):
        super().__init__()
        self.config = cfg = config
        log2 = int(math.log2(cfg.img_resolution))
        if cfg.img_resolution < 8 or 2 ** log2 != cfg.img_resolution:
            raise ValueError(f"discriminator resolution must be a power of two >= 8, got {cfg.img_resolution}")
        img_channels = cfg.img_channels * 2
        self.block_resolutions = [2 ** i for i in range(log2, 2, -1)]
        ch = {r: channels_at(r, cfg.channel_base, cfg.channel_max) for r in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (log2 + 1 - cfg.num_fp16_res), 8)
        label_dim = cfg.c_dim + cfg.num_classes
        cmap_dim = (ch[4] if cfg.cmap_dim is None else cfg.cmap_dim) if label_dim > 0 else 0
        for res in self.block_resolutions:
            in_ch = ch[res] if res < cfg.img_resolution else 0
            setattr(self, f"b{res}", DiscriminatorBlock(in_ch, ch[res], ch[res // 2], res, img_channels,
                                                         use_fp16=res >= fp16_resolution, conv_clamp=cfg.conv_clamp))
        if label_dim > 0:
            self.mapping = MappingNetwork(0, label_dim, cmap_dim, None, cfg.mapping_layers, cfg.mapping_lr_mul, None)
        self.b4 = DiscriminatorEpilogue(ch[4], cmap_dim, 4, cfg.mbstd_group_size, cfg.mbstd_num_channels, cfg.conv_clamp)
        self.register_buffer("resample_filter", setup_filter(), persistent=False)

    def forward(self, image: Tensor | dict, image_raw: Tensor | None = None, c: Tensor | None = None, *,
                class_label: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Logits (B, 1). Also accepts EG3D's call ``D({'image': ..., 'image_raw': ...}, c)``. ``c``: the (B, 25)
        camera labels; ``class_label``: the (B,) (or (1,)) classes of a class-conditional discriminator."""
        if isinstance(image, dict):
            if c is not None:
                raise TypeError("with a dict of images, pass the label as the second argument")
            image, image_raw, c = image["image"], image["image_raw"], image_raw
        if image_raw is None:
            raise ValueError("the dual discriminator needs both the final image and the raw image")
        raw = filtered_resizing(image_raw, image.shape[-1], self.resample_filter, self.config.raw_filter_mode)
        img = torch.cat([image, raw], 1)
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img)
        cmap = None
        if self.config.c_dim + self.config.num_classes > 0:
            cmap = self.mapping(None, self.conditioning_label(c, class_label, image.shape[0], generator))
        elif class_label is not None:
            raise ValueError("this discriminator is not class-conditional (num_classes 0); pass no class_label")
        return self.b4(x, cmap)

    def feature_maps(self, images: Tensor) -> list[Tensor]:
        """The block outputs (B, C_k, r_k, r_k) for images (B, 3, H, W) in [-1, 1] of any size (the inversion's
        discriminator-feature loss): resized (bilinear, antialiased) to ``img_resolution`` and fed as both the
        final and the raw image (a real image's raw input is itself resized), without the conditioned head."""
        size = self.config.img_resolution
        image = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                                                antialias=True)
        img, x, features = torch.cat([image, image], 1), None, []
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img)
            features.append(x)
        return features

    def conditioning_label(self, c: Tensor | None, class_label: Tensor | None, batch: int,
                           generator: torch.Generator | None) -> Tensor:
        """(B, c_dim + num_classes) the label mapping's input: the camera label (plus the training noise
        ``disc_c_noise``, on the camera part only), then the one-hot class of a class-conditional model."""
        cfg = self.config
        parts = []
        if cfg.c_dim > 0:
            if c is None:
                raise ValueError(f"this discriminator is conditioned on (B, {cfg.c_dim}) camera labels; pass c")
            if cfg.disc_c_noise > 0:
                noise = torch.randn(c.shape, generator=generator, device=c.device, dtype=c.dtype)
                c = c + noise * c.std(0) * cfg.disc_c_noise
            parts.append(c)
        if cfg.num_classes > 0:
            if class_label is None:
                raise ValueError(f"this discriminator is class-conditional ({cfg.num_classes} classes); pass "
                                 "class_label, the (B,) classes of the images")
            parts.append(class_one_hot(class_label.to(self.resample_filter.device), cfg.num_classes, batch))
        elif class_label is not None:
            raise ValueError("this discriminator is not class-conditional (num_classes 0); pass no class_label")
        return parts[0] if len(parts) == 1 else torch.cat(parts, 1)
