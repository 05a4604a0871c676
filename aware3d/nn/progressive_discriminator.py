"""pi-GAN's progressive discriminators with a pose (and latent) head.

The network is a stack of residual blocks that each halve the resolution, from the largest size the
model supports down to 2x2, then a 2x2 convolution to ``1 + latent_dim + 2`` outputs: the real/fake
logit, a latent estimate (the seeds' z_lambda identity loss) and the camera (pitch, yaw) estimate
(pos_lambda). An image of size ``r`` enters at the block for ``r`` through its own 1x1 "from RGB"
adapter; while a new, larger resolution fades in (``alpha < 1``), the output of the first block is
blended with the half-size image entering one block later, as in progressive GANs.

``coord_conv=True`` gives the seeds' CCS encoder discriminator (CoordConv in both convolutions of each
block, pi-GAN CelebA); ``False`` the plain strided one (pi-GAN Cats). Channels follow the seeds:
``min(channel_max, channel_base / resolution)`` (8192 / 400 gives 16 at 512 up to 400 from 16 down).

``downsample="avgpool"`` gives the official ``ProgressiveEncoderDiscriminator`` (ShadeGAN CelebA / BFM, pi-GAN
CARLA): both 3x3 convolutions keep the size, then the block's output and its input are average-pooled 2x,
the input goes through a 1x1 projection only where the channel count changes, and the sum is divided by
sqrt(2); it also has a from-RGB adapter for 2 px inputs. With ``coordinate_order="rows_cols"`` and
``always_blend=True`` (the official forward) it reproduces that class exactly (the ShadeGAN family folder
maps the official weights onto it). The defaults keep the strided
layout of existing configs and checkpoints unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class ProgressiveDiscriminatorConfig:
    """Every constructor argument of :class:`ProgressiveDiscriminator`."""

    max_resolution: int = 512
    """Largest input size (a power of two >= 4); every power of two from 4 up to it is accepted."""
    channel_base: int = 8192
    """Channels of the block entered at resolution r are min(channel_max, channel_base // r)."""
    channel_max: int = 400
    """Upper bound on channels."""
    coord_conv: bool = True
    """CoordConv (two extra coordinate channels) in every block: the CCS discriminator."""
    latent_dim: int = 256
    """Size of the latent-code estimate head (0 disables it)."""
    pose_dim: int = 2
    """Size of the camera estimate head: pi-GAN regresses (pitch, yaw) in radians (0 disables it)."""
    downsample: Literal["stride", "avgpool"] = "stride"
    """How a block halves the size: "stride" (second 3x3 conv and the 1x1 shortcut strided, pi-GAN's CCS /
    strided discriminators) or "avgpool" (2x average pooling after the convs, the shortcut a 1x1 projection
    only where channels change; the official ProgressiveEncoderDiscriminator, with a 2 px from-RGB adapter)."""
    coordinate_order: Literal["cols_rows", "rows_cols"] = "cols_rows"
    """CoordConv channel order: "cols_rows" (column coordinate first, linspace) or "rows_cols" (the official
    AddCoords: the channel varying along rows first, computed as ``2 i / (n - 1) - 1``)."""
    in_channels: int = 3
    """Input channels: 3 (RGB), or 4 when the recipe shows D a silhouette channel after the colour (pi-GAN's
    ``loss.silhouette``: the real mask or the generated opacity, in [-1, 1])."""
    always_blend: bool = False
    """Blend the half-size path in even at alpha = 1 (the official forward: the same outputs, but the
    half-size adapter then gets a zero gradient instead of none); False skips it at alpha = 1."""


def kaiming_leaky_init(module: nn.Module) -> None:
    """The seeds' init for conv/linear layers followed by LeakyReLU(0.2)."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(module.weight, a=0.2, mode="fan_in", nonlinearity="leaky_relu")


def coordinate_channels(x: Tensor) -> Tensor:
    """x (B, C, H, W) with two channels appended: the column and row coordinate, each in [-1, 1]."""
    B, _, H, W = x.shape
    cols = torch.linspace(-1, 1, W, device=x.device, dtype=x.dtype).view(1, 1, 1, W).expand(B, 1, H, W)
    rows = torch.linspace(-1, 1, H, device=x.device, dtype=x.dtype).view(1, 1, H, 1).expand(B, 1, H, W)
    return torch.cat([x, cols, rows], 1)


def row_column_channels(x: Tensor) -> Tensor:
    """x (B, C, H, W) with two channels appended: the row then the column coordinate, ``2 i / (n - 1) - 1``
    in float32 (the official AddCoords' layout and arithmetic)."""
    B, _, H, W = x.shape
    rows = (torch.arange(H, device=x.device).float() / (H - 1) * 2 - 1).to(x.dtype).view(1, 1, H, 1)
    cols = (torch.arange(W, device=x.device).float() / (W - 1) * 2 - 1).to(x.dtype).view(1, 1, 1, W)
    return torch.cat([x, rows.expand(B, 1, H, W), cols.expand(B, 1, H, W)], 1)


class CoordConv2d(nn.Conv2d):
    """A convolution that sees the pixel coordinates as two extra input channels (``order``: see
    :attr:`ProgressiveDiscriminatorConfig.coordinate_order`)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 order: Literal["cols_rows", "rows_cols"] = "cols_rows", **kwargs):
        super().__init__(in_channels + 2, out_channels, kernel_size, **kwargs)
        self.add_coordinates = coordinate_channels if order == "cols_rows" else row_column_channels

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(self.add_coordinates(x))


class DownBlock(nn.Module):
    """Residual block: two 3x3 convolutions (the second strided) + a strided 1x1 shortcut, / sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int, coord_conv: bool,
                 order: Literal["cols_rows", "rows_cols"] = "cols_rows"):
        super().__init__()
        conv = partial(CoordConv2d, order=order) if coord_conv else nn.Conv2d
        self.conv0 = conv(in_channels, out_channels, 3, padding=1)
        self.conv1 = conv(out_channels, out_channels, 3, stride=2, padding=1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=2)
        self.conv0.apply(kaiming_leaky_init)
        self.conv1.apply(kaiming_leaky_init)

    def forward(self, x: Tensor) -> Tensor:
        y = F.leaky_relu(self.conv0(x), 0.2)
        y = F.leaky_relu(self.conv1(y), 0.2)
        return (y + self.shortcut(x)) / math.sqrt(2)


class PooledDownBlock(nn.Module):
    """Residual block: two 3x3 convolutions at full size, then 2x average pooling of the result and of the
    input, a 1x1 projection of the pooled input where the channel count changes, sum / sqrt(2).

    PyTorch's default initialisation, as the official block (its kaiming init only touches Linear layers)."""

    def __init__(self, in_channels: int, out_channels: int, coord_conv: bool,
                 order: Literal["cols_rows", "rows_cols"] = "rows_cols"):
        super().__init__()
        conv = partial(CoordConv2d, order=order) if coord_conv else nn.Conv2d
        self.conv0 = conv(in_channels, out_channels, 3, padding=1)
        self.conv1 = conv(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: Tensor) -> Tensor:
        y = F.leaky_relu(self.conv0(x), 0.2)
        y = F.avg_pool2d(F.leaky_relu(self.conv1(y), 0.2), 2)
        skip = F.avg_pool2d(x, 2)
        if self.shortcut is not None:
            skip = self.shortcut(skip)
        return (y + skip) / math.sqrt(2)


class FromRGB(nn.Module):
    """1x1 convolution from an image to a block's channels, with LeakyReLU."""

    def __init__(self, channels: int, in_channels: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(self.conv(x), 0.2)


@dataclass
class DiscriminatorOutput:
    """What the discriminator predicts for a batch of B images."""

    logits: Tensor
    """(B, 1) real/fake logit (higher = real)."""
    latent: Tensor
    """(B, latent_dim) latent-code estimate."""
    pose: Tensor
    """(B, pose_dim) camera estimate: (pitch, yaw) radians in pi-GAN's convention."""


class ProgressiveDiscriminator(nn.Module):
    """Images (B, 3, r, r) in [-1, 1] -> :class:`DiscriminatorOutput`, for any power-of-two r <= max_resolution
    (down to 4 px; down to 2 px with ``downsample="avgpool"``)."""

    def __init__(self, config: ProgressiveDiscriminatorConfig = ProgressiveDiscriminatorConfig()):
        super().__init__()
        self.config = config
        levels = int(math.log2(config.max_resolution))
        if 2 ** levels != config.max_resolution or levels < 2:
            raise ValueError(f"max_resolution must be a power of two >= 4, got {config.max_resolution}")
        if config.downsample not in ("stride", "avgpool"):
            raise ValueError(f"downsample must be 'stride' or 'avgpool', got {config.downsample!r}")
        if config.coordinate_order not in ("cols_rows", "rows_cols"):
            raise ValueError(f"coordinate_order must be 'cols_rows' or 'rows_cols', got {config.coordinate_order!r}")
        self.resolutions = [2 ** k for k in range(levels, 1, -1)]  # max_resolution ... 4: each block's input size
        pooled = config.downsample == "avgpool"
        # The official pooled layout also adapts 2 px images (they go straight to the head).
        self.input_resolutions = self.resolutions + [2] if pooled else list(self.resolutions)

        def ch(res: int) -> int:
            return max(1, min(config.channel_max, config.channel_base // res))

        block = PooledDownBlock if pooled else DownBlock
        self.blocks = nn.ModuleList([block(ch(r), ch(r // 2), config.coord_conv, config.coordinate_order)
                                     for r in self.resolutions])
        if config.in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {config.in_channels}")
        self.from_rgb = nn.ModuleList([FromRGB(ch(r), config.in_channels) for r in self.input_resolutions])
        self.head = nn.Conv2d(ch(2), 1 + config.latent_dim + config.pose_dim, 2)

    def forward(self, images: Tensor, alpha: float = 1.0) -> DiscriminatorOutput:
        """``alpha`` in [0, 1] fades the newest (input-resolution) block in: 0 = only the half-size path."""
        res = images.shape[-1]
        if res not in self.input_resolutions or images.shape[-2] != res:
            raise ValueError(f"discriminator input must be square with a size in {sorted(self.input_resolutions)}, "
                             f"got {tuple(images.shape[-2:])}")
        start = self.input_resolutions.index(res)
        x = self.from_rgb[start](images)
        for i, block in enumerate(self.blocks[start:]):
            if i == 1 and (alpha < 1 or self.config.always_blend):
                skip = self.from_rgb[start + 1](F.interpolate(images, scale_factor=0.5, mode="nearest"))
                x = alpha * x + (1 - alpha) * skip
            x = block(x)
        out = self.head(x).flatten(1)
        ld = self.config.latent_dim
        return DiscriminatorOutput(out[:, :1], out[:, 1:1 + ld], out[:, 1 + ld:])

    def feature_maps(self, images: Tensor) -> list[Tensor]:
        """The block outputs (B, C_k, r_k, r_k) for images (B, 3, H, W) in [-1, 1] of any size, first resized
        (bilinear, antialiased) to the largest input resolution not above their height (the inversion's
        discriminator-feature loss). A D with a silhouette channel (``in_channels`` 4) gets it as +1, all
        foreground, when the images have only colour: the features then compare colour alone, alike for both."""
        if images.shape[1] < self.config.in_channels:
            fill = images.new_ones(images.shape[0], self.config.in_channels - images.shape[1], *images.shape[2:])
            images = torch.cat([images, fill], 1)
        fits = [r for r in self.input_resolutions if r <= images.shape[-2]] or [min(self.input_resolutions)]
        res = max(fits)
        x = F.interpolate(images, size=(res, res), mode="bilinear", align_corners=False, antialias=True)
        start = self.input_resolutions.index(res)
        x = self.from_rgb[start](x)
        features = []
        for block in self.blocks[start:]:
            x = block(x)
            features.append(x)
        return features
