"""A bottleneck ResNet-50 trunk in plain PyTorch (no torchvision), the backbone of Deep3DFaceRecon's R-Net.

The architecture is He et al. 2016 in its "v1.5" form (the one torchvision ships and Deep3DFaceRecon
loads): in a downsampling bottleneck the stride sits on the 3x3 convolution, not on the first 1x1. Layers:

    stem:    7x7 conv (stride 2, pad 3, no bias) -> batch norm -> ReLU -> 3x3 max pool (stride 2, pad 1)
    stages:  4 stages of bottlenecks, see :data:`RESNET50_STAGES`
    pooling: global average over the remaining H x W -> (B, 2048)

Names are ours (``stem_conv``, ``stages.{s}.{b}.reduce``...); :mod:`aware3d.faces.deep3d_import` maps the
official torchvision-style names onto them. Batch norms are ordinary ``nn.BatchNorm2d`` (eps 1e-5), so
imported running statistics are used in ``eval()`` mode.
"""

from __future__ import annotations

from torch import Tensor, nn

RESNET50_STAGES: tuple[tuple[int, int, int], ...] = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))
"""Per stage: (bottleneck width, number of blocks, stride of its first block). Block outputs are
``BOTTLENECK_EXPANSION`` times the width."""
BOTTLENECK_EXPANSION = 4
"""Output channels of a bottleneck per channel of its width."""
STEM_WIDTH = 64
"""Channels after the 7x7 stem convolution."""
FEATURE_DIM = RESNET50_STAGES[-1][0] * BOTTLENECK_EXPANSION
"""Channels of the pooled trunk feature (2048)."""


class Projection(nn.Module):
    """The shortcut of a block whose input and output differ in channels or resolution: 1x1 conv + norm."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.conv(x))


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (carries the stride) -> 1x1 expand, each followed by batch norm; residual add, ReLU."""

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        out_channels = width * BOTTLENECK_EXPANSION
        self.reduce = nn.Conv2d(in_channels, width, kernel_size=1, bias=False)
        self.reduce_norm = nn.BatchNorm2d(width)
        self.spatial = nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, bias=False)
        self.spatial_norm = nn.BatchNorm2d(width)
        self.expand = nn.Conv2d(width, out_channels, kernel_size=1, bias=False)
        self.expand_norm = nn.BatchNorm2d(out_channels)
        needs_projection = stride != 1 or in_channels != out_channels
        self.shortcut = Projection(in_channels, out_channels, stride) if needs_projection else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.reduce_norm(self.reduce(x)))
        h = self.act(self.spatial_norm(self.spatial(h)))
        h = self.expand_norm(self.expand(h))
        return self.act(h + self.shortcut(x))


def _stage(in_channels: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    """``blocks`` bottlenecks; only the first changes resolution (``stride``) and channel count."""
    out_channels = width * BOTTLENECK_EXPANSION
    layers = [Bottleneck(in_channels, width, stride)]
    layers += [Bottleneck(out_channels, width, 1) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet50Trunk(nn.Module):
    """ResNet-50 without its classifier: (B, 3, H, W) images -> (B, 2048) globally average-pooled features.

    Any H, W >= 32 works (the trunk downsamples by 32); the input normalisation is the caller's
    (Deep3DFaceRecon feeds RGB in [0, 1] without mean/std normalisation).
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem_conv = nn.Conv2d(3, STEM_WIDTH, kernel_size=7, stride=2, padding=3, bias=False)
        self.stem_norm = nn.BatchNorm2d(STEM_WIDTH)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        stages, channels = [], STEM_WIDTH
        for width, blocks, stride in RESNET50_STAGES:
            stages.append(_stage(channels, width, blocks, stride))
            channels = width * BOTTLENECK_EXPANSION
        self.stages = nn.ModuleList(stages)

    def feature_map(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, 2048, H/32, W/32) features before pooling."""
        h = self.pool(self.act(self.stem_norm(self.stem_conv(x))))
        for stage in self.stages:
            h = stage(h)
        return h

    def forward(self, x: Tensor) -> Tensor:
        return self.feature_map(x).mean(dim=(2, 3))


__all__ = [
    "BOTTLENECK_EXPANSION",
    "FEATURE_DIM",
    "RESNET50_STAGES",
    "STEM_WIDTH",
    "Bottleneck",
    "Projection",
    "ResNet50Trunk",
]
