"""pi-GAN's progressive discriminators with a pose (and latent) head.

The network is a stack of residual blocks that each halve the resolution, from the largest size the
model supports down to 2x2, then a 2x2 convolution to ``1 + latent_dim + 2`` outputs: the real/fake
logit, a latent estimate (the seeds' z_lambda identity loss) and the camera (pitch, yaw) estimate
(pos_lambda). An image of size ``r`` enters at the block for ``r`` through its own 1x1 "from RGB"
adapter; while a new, larger resolution fades in (``alpha < 1``), the output of the first block is
blended with the half-size image entering one block later, as in progressive GANs.

``coord_conv=True`` gives the seeds' CCS encoder discriminator (CoordConv in both convolutions of each
block, pi-GAN CelebA); ``False`` the plain progressive encoder (CARLA). Channels follow the seeds:
``min(channel_max, channel_base / resolution)`` (8192 / 400 gives 16 at 512 up to 400 from 16 down).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
    """Size of the camera estimate head: pi-GAN regresses (pitch, yaw) in radians."""


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


class CoordConv2d(nn.Conv2d):
    """A convolution that sees the pixel coordinates as two extra input channels."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, **kwargs):
        super().__init__(in_channels + 2, out_channels, kernel_size, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(coordinate_channels(x))


class DownBlock(nn.Module):
    """Residual block: two 3x3 convolutions (the second strided) + a strided 1x1 shortcut, / sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int, coord_conv: bool):
        super().__init__()
        conv = CoordConv2d if coord_conv else nn.Conv2d
        self.conv0 = conv(in_channels, out_channels, 3, padding=1)
        self.conv1 = conv(out_channels, out_channels, 3, stride=2, padding=1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=2)
        self.conv0.apply(kaiming_leaky_init)
        self.conv1.apply(kaiming_leaky_init)

    def forward(self, x: Tensor) -> Tensor:
        y = F.leaky_relu(self.conv0(x), 0.2)
        y = F.leaky_relu(self.conv1(y), 0.2)
        return (y + self.shortcut(x)) / math.sqrt(2)


class FromRGB(nn.Module):
    """1x1 convolution from an image to a block's channels, with LeakyReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 1)

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
    """Images (B, 3, r, r) in [-1, 1] -> :class:`DiscriminatorOutput`, for any power-of-two r <= max_resolution."""

    def __init__(self, config: ProgressiveDiscriminatorConfig = ProgressiveDiscriminatorConfig()):
        super().__init__()
        self.config = config
        levels = int(math.log2(config.max_resolution))
        if 2 ** levels != config.max_resolution or levels < 2:
            raise ValueError(f"max_resolution must be a power of two >= 4, got {config.max_resolution}")
        self.resolutions = [2 ** k for k in range(levels, 1, -1)]  # max_resolution ... 4

        def ch(res: int) -> int:
            return max(1, min(config.channel_max, config.channel_base // res))

        self.blocks = nn.ModuleList([DownBlock(ch(r), ch(r // 2), config.coord_conv) for r in self.resolutions])
        self.from_rgb = nn.ModuleList([FromRGB(ch(r)) for r in self.resolutions])
        self.head = nn.Conv2d(ch(2), 1 + config.latent_dim + config.pose_dim, 2)

    def forward(self, images: Tensor, alpha: float = 1.0) -> DiscriminatorOutput:
        """``alpha`` in [0, 1] fades the newest (input-resolution) block in: 0 = only the half-size path."""
        res = images.shape[-1]
        if res not in self.resolutions or images.shape[-2] != res:
            raise ValueError(f"discriminator input must be square with a size in {sorted(self.resolutions)}, "
                             f"got {tuple(images.shape[-2:])}")
        start = self.resolutions.index(res)
        x = self.from_rgb[start](images)
        for i, block in enumerate(self.blocks[start:]):
            if i == 1 and alpha < 1:
                skip = self.from_rgb[start + 1](F.interpolate(images, scale_factor=0.5, mode="nearest"))
                x = alpha * x + (1 - alpha) * skip
            x = block(x)
        out = self.head(x).flatten(1)
        ld = self.config.latent_dim
        return DiscriminatorOutput(out[:, :1], out[:, 1:1 + ld], out[:, 1 + ld:])
