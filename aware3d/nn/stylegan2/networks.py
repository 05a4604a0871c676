"""EG3D's StyleGAN2 backbone: a camera-conditioned mapping network and a skip synthesis network whose
"image" is the three stacked feature planes (B, 3 * plane_channels, plane_resolution, plane_resolution)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .layers import FullyConnectedLayer, NoiseMode, SynthesisBlock, normalize_2nd_moment


class MappingNetwork(nn.Module):
    """z (B, z_dim) and label c (B, c_dim) -> w, broadcast to ``num_ws`` copies and optionally truncated.

    z and the embedded label are each normalised to unit RMS and concatenated (z first), then
    ``num_layers`` equalised-lr FC + lrelu layers with learning-rate multiplier ``lr_mul``. With
    ``num_ws=None`` the output is (B, w_dim) (the discriminator's label mapping); otherwise (B, num_ws, w_dim).
    ``w_avg`` (w_dim,) tracks the mean w during training (``update_emas=True``, decay ``w_avg_beta``) and is
    the truncation centre.
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
                 lr_mul: float = 0.01, w_avg_beta: float | None = 0.998):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
        embed_features = w_dim if c_dim > 0 else 0
        features = [z_dim + embed_features] + [w_dim] * num_layers
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(features[i], features[i + 1], activation="lrelu", lr_mul=lr_mul))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: Tensor | None, c: Tensor | None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_emas: bool = False) -> Tensor:
        """Returns (B, num_ws, w_dim) (or (B, w_dim) when num_ws is None). ``truncation_cutoff`` limits the
        truncation to the first ws (None: all)."""
        x = None
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"z must be (B, {self.z_dim}), got {None if z is None else tuple(z.shape)}")
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f"the conditioning label must be (B, {self.c_dim}), got "
                                 f"{None if c is None else tuple(c.shape)}")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if update_emas and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            if self.w_avg_beta is None:
                raise ValueError("this mapping network does not track w_avg, so it cannot truncate")
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x = x.clone()
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    """StyleGAN2's width rule: min(channel_base // resolution, channel_max)."""
    return min(channel_base // resolution, channel_max)


class SynthesisNetwork(nn.Module):
    """Skip generator from 4x4 to ``img_resolution``: blocks b4, b8, ..., summing upsampled ToRGB outputs.

    Consumes ``num_ws = 2 * log2(img_resolution) - 2`` ws (each block shares its last w with the next block's
    first, as in StyleGAN2). Blocks at the ``num_fp16_res`` highest resolutions (but >= 8) use float16 on CUDA.
    """

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 0, conv_clamp: float | None = None,
                 fused_modconv: str = "inference_only"):
        super().__init__()
        log2 = int(math.log2(img_resolution))
        if img_resolution < 4 or 2 ** log2 != img_resolution:
            raise ValueError(f"synthesis resolution must be a power of two >= 4, got {img_resolution}")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            in_ch = channels_at(res // 2, channel_base, channel_max) if res > 4 else 0
            out_ch = channels_at(res, channel_base, channel_max)
            is_last = res == img_resolution
            block = SynthesisBlock(in_ch, out_ch, w_dim, res, img_channels, is_last, use_fp16=res >= fp16_resolution,
                                   conv_clamp=conv_clamp, fused_modconv=fused_modconv)
            self.num_ws += block.num_conv + (block.num_torgb if is_last else 0)
            setattr(self, f"b{res}", block)

    def forward(self, ws: Tensor, noise_mode: NoiseMode = "random", fused_modconv: bool | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        """ws (B, num_ws, w_dim) -> image (B, img_channels, img_resolution, img_resolution) float32."""
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must be (B, {self.num_ws}, {self.w_dim}), got {tuple(ws.shape)}")
        ws = ws.to(torch.float32)
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, block_ws, noise_mode=noise_mode, fused_modconv=fused_modconv, generator=generator)
        return img.contiguous()  # the blocks may work channels-last; callers get the standard layout


class StyleGAN2Backbone(nn.Module):
    """The mapping network + the synthesis network that draws the tri-planes."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_layers: int = 2, mapping_lr_mul: float = 0.01, w_avg_beta: float = 0.998,
                 channel_base: int = 32768, channel_max: int = 512, num_fp16_res: int = 0,
                 conv_clamp: float | None = None, fused_modconv: str = "inference_only"):
        super().__init__()
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, channel_base, channel_max,
                                          num_fp16_res, conv_clamp, fused_modconv)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, mapping_layers, mapping_lr_mul, w_avg_beta)
