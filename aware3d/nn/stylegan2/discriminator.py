"""StyleGAN2's ResNet discriminator parts: the downsampling block, minibatch standard deviation, the 4x4
epilogue with a projection onto a mapped label, and the raw-image resizing EG3D feeds its discriminator.

Images are (B, C, H, W); blocks halve H and W. The ``use_fp16`` blocks run in float16 on CUDA only.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import Conv2dLayer, FullyConnectedLayer, downsample2d, setup_filter, upsample2d

FilterMode = Literal["antialiased", "classic", "none"]


def filtered_resizing(image: Tensor, size: int, f: Tensor, filter_mode: FilterMode | float = "antialiased") -> Tensor:
    """Resize (B, C, H, W) to (B, C, size, size) the way EG3D prepares raw images for its discriminator.

    antialiased: bilinear with antialiasing; none: plain bilinear; classic: FIR upsample, bilinear to
    2 * size + 2, FIR downsample; a float in (0, 1) blends plain (1 - x) and antialiased (x).
    """
    if filter_mode == "antialiased":
        return F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    if filter_mode == "none":
        return F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)
    if filter_mode == "classic":
        x = upsample2d(image, f, up=2)
        x = F.interpolate(x, size=(size * 2 + 2, size * 2 + 2), mode="bilinear", align_corners=False)
        return downsample2d(x, f, down=2, flip_filter=True, padding=-1)
    if isinstance(filter_mode, float) and 0 < filter_mode < 1:
        filtered = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        aliased = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
        return (1 - filter_mode) * aliased + filter_mode * filtered
    raise ValueError(f"unknown filter mode {filter_mode!r}; valid: antialiased, classic, none, or a float in (0, 1)")


class DiscriminatorBlock(nn.Module):
    """ResNet discriminator block at ``resolution``: (B, tmp or 0, r, r) -> (B, out, r/down, r/down).

    ``down`` is 2 in StyleGAN2; 1 keeps the size (EpiGRAF's extra start blocks on patches).
    """

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, resolution: int, img_channels: int,
                 use_fp16: bool = False, conv_clamp: float | None = None, down: int = 2):
        super().__init__()
        if in_channels not in (0, tmp_channels):
            raise ValueError(f"a discriminator block takes 0 (first block) or {tmp_channels} input channels")
        self.in_channels, self.resolution, self.use_fp16 = in_channels, resolution, use_fp16
        self.register_buffer("resample_filter", setup_filter(), persistent=False)
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=down, conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=down)

    def forward(self, x: Tensor | None, img: Tensor | None, force_fp32: bool = False) -> tuple[Tensor, None]:
        ref = x if x is not None else img
        dtype = torch.float16 if (self.use_fp16 and not force_fp32 and ref.device.type == "cuda") else torch.float32
        if x is not None:
            x = x.to(dtype)
        if self.in_channels == 0:
            x = self.fromrgb(img.to(dtype))
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv0(x)
        x = self.conv1(x, gain=math.sqrt(0.5))
        return y.add_(x), None


class MinibatchStdLayer(nn.Module):
    """Appends the mean (over channels and pixels) of the per-group standard deviation as extra channels."""

    def __init__(self, group_size: int | None, num_channels: int = 1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: Tensor) -> Tensor:
        N, C, H, W = x.shape
        G = min(self.group_size, N) if self.group_size is not None else N
        if N % G:
            raise ValueError(f"minibatch-stddev groups of {G} need a batch that is a multiple of {G}, got {N}")
        Fc = self.num_channels
        y = x.reshape(G, -1, Fc, C // Fc, H, W)
        y = y - y.mean(dim=0)
        y = y.square().mean(dim=0)
        y = (y + 1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4])
        y = y.reshape(-1, Fc, 1, 1).repeat(G, 1, H, W)
        return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(nn.Module):
    """4x4 head: minibatch std, 3x3 conv, FC, output FC, projection onto the mapped label."""

    def __init__(self, in_channels: int, cmap_dim: int, resolution: int = 4, mbstd_group_size: int = 4,
                 mbstd_num_channels: int = 1, conv_clamp: float | None = None):
        super().__init__()
        self.cmap_dim = cmap_dim
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: Tensor, cmap: Tensor | None) -> Tensor:
        x = x.to(torch.float32)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.out(self.fc(x.flatten(1)))
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x
