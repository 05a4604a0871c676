"""EpiGRAF's patch-aware discriminator: a StyleGAN2 ResNet discriminator on R x R patches that knows where
each patch lies in the image.

* Depth as for the full image: blocks run from ``image_resolution`` down to 8 (names ``b512 ... b8`` for 512),
  but the first ``log2(image / patch)`` blocks keep the patch size (``down = 1``), the rest halve it.
* Patch parameters ``[s_x, o_x, o_y]`` (the y scale is not used) are encoded per value ``v' = 1000 v`` as
  ``[sin(v' f_k), cos(v' f_k)]`` for the 10 frequencies ``f_k = 2^k pi / 1024`` plus a learned 256-d embedding of
  ``round(v')`` (828 values); a mapping network turns them into a 512-d code ``h`` and every block's second
  conv multiplies its input channels by ``1 + tanh(affine(h))`` (hyper-modulation).
* Projection head: the patch encoding, optional one-hot class labels and (camera-conditioned D) the camera's
  Fourier features are mapped to ``cmap``; logit = ``<features, cmap> / sqrt(cmap_dim)``. Camera features:
  yaw and pitch wrapped like the generator's label, times 64, ``sin / cos(v 2^k pi / 64)``, k = 0..5 (24
  values), with dropout ``camera_dropout`` in training mode.

Inputs are EpiGRAF ``camera_angles`` (B, 3) (see :mod:`.cameras`) and patch parameters (B, 2) scales and offsets.
The highest-resolution ``num_fp16_res`` blocks run in float16 on CUDA (conv clamp applies everywhere).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...nn.stylegan2.discriminator import DiscriminatorBlock, DiscriminatorEpilogue
from ...nn.stylegan2.layers import Conv2dLayer, FullyConnectedLayer
from ...nn.stylegan2.networks import MappingNetwork, channels_at
from .background import fourier_coefficients
from .generator import wrapped_camera_label

PATCH_MULTIPLIER = 1000.0
"""Patch parameters are scaled by this before the Fourier features and the embedding lookup."""
CAMERA_MULTIPLIER = 64.0
"""Wrapped camera angles are scaled by this before their Fourier features."""


@dataclass(frozen=True)
class PatchDiscriminatorConfig:
    """Every constructor argument of :class:`PatchDiscriminator`."""

    patch_resolution: int = 64
    """Side of the patches it judges."""
    image_resolution: int = 512
    """Side of the full images the patches come from (sets the depth: log2(image/patch) extra start blocks)."""
    img_channels: int = 3
    """Channels of the images."""
    c_dim: int = 0
    """Number of classes of the one-hot class label in the head (0: unconditional)."""
    channel_base: int = 16384
    """Channels at block resolution r are min(channel_base // r, channel_max) (official: 0.5 * cbase)."""
    channel_max: int = 512
    """Upper bound on channels."""
    num_fp16_res: int = 4
    """Blocks at the highest resolutions run in float16 on CUDA."""
    conv_clamp: float | None = 256
    """Clamp of convolution outputs (+-value); None = no clamp."""
    cmap_dim: int | None = None
    """Size of the mapped conditioning; None = the 4x4 block's channels."""
    mapping_layers: int = 2
    """FC layers of the hyper-modulation and head mapping networks."""
    mapping_lr_mul: float = 0.01
    """Learning-rate multiplier of those mapping networks."""
    hyper_mod_dim: int = 512
    """Size of the hyper-modulation code."""
    const_embed_dim: int = 256
    """Size of the learned embedding of each rounded patch value."""
    camera_cond: bool = True
    """Condition the head on the camera (Fourier features of yaw and pitch)."""
    camera_dropout: float = 0.5
    """Dropout probability of the camera features in training mode (scaled by 1/(1-p))."""
    mbstd_group_size: int = 4
    """Minibatch-stddev group size (also the patch-sharing group of the sampler)."""
    mbstd_num_channels: int = 1
    """Minibatch-stddev feature channels (0 disables the layer)."""

    def __post_init__(self) -> None:
        ratio = self.image_resolution // self.patch_resolution
        if (self.patch_resolution < 8 or 2 ** int(math.log2(self.patch_resolution)) != self.patch_resolution
                or ratio * self.patch_resolution != self.image_resolution or ratio & (ratio - 1)):
            raise ValueError(f"patch ({self.patch_resolution}) and image ({self.image_resolution}) resolutions must "
                             "be powers of two >= 8 with image >= patch")
        if not 0 <= self.camera_dropout < 1:
            raise ValueError(f"camera_dropout must be in [0, 1), got {self.camera_dropout}")

    @property
    def num_start_blocks(self) -> int:
        """Blocks that keep the patch size."""
        return int(math.log2(self.image_resolution // self.patch_resolution))


class HyperModConv2d(Conv2dLayer):
    """A discriminator conv whose input channels are scaled by ``1 + tanh(affine(h))`` per sample."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, hyper_dim: int, down: int,
                 conv_clamp: float | None):
        super().__init__(in_channels, out_channels, kernel_size, activation="lrelu", down=down, conv_clamp=conv_clamp)
        self.affine = FullyConnectedLayer(hyper_dim, in_channels, bias_init=0.0)

    def forward(self, x: Tensor, hyper: Tensor, gain: float = 1.0) -> Tensor:
        """x (B, in, H, W), hyper (B, hyper_dim) -> (B, out, H / down, W / down)."""
        scale = 1.0 + self.affine(hyper).tanh().unsqueeze(2).unsqueeze(3)
        return super().forward((x * scale).to(x.dtype), gain)


class PatchDiscriminatorBlock(DiscriminatorBlock):
    """The shared ResNet block with a hyper-modulated second conv (and ``down`` 1 or 2)."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, resolution: int, img_channels: int,
                 hyper_dim: int, down: int, use_fp16: bool, conv_clamp: float | None):
        super().__init__(in_channels, tmp_channels, out_channels, resolution, img_channels, use_fp16, conv_clamp, down)
        self.conv1 = HyperModConv2d(tmp_channels, out_channels, 3, hyper_dim, down, conv_clamp)

    def forward(self, x: Tensor | None, img: Tensor, hyper: Tensor) -> Tensor:
        """(B, tmp, r, r) features (None for the first block, which reads ``img``) -> (B, out, r/down, r/down)."""
        ref = x if x is not None else img
        dtype = torch.float16 if (self.use_fp16 and ref.device.type == "cuda") else torch.float32
        if self.in_channels == 0:
            x = self.fromrgb(img.to(dtype))
        else:
            x = x.to(dtype)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv0(x)
        x = self.conv1(x, hyper.to(torch.float32), gain=math.sqrt(0.5))
        return y.add_(x)


def scalar_fourier(values: Tensor, multiplier: float, coefs: Tensor) -> Tensor:
    """(B, n) values -> (B, n, 2K) ``[sin(m v f_k), cos(m v f_k)]`` (EpiGRAF's ``FourierEncoder1d`` on ``m v``)."""
    raw = coefs.view(1, 1, -1) * (values.float() * multiplier).unsqueeze(2)
    return torch.cat([raw.sin(), raw.cos()], dim=2)


def camera_dropout(x: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """``F.dropout(x, p)`` with the keep-mask drawn from ``generator`` (None: torch's global RNG, which gives
    F.dropout's own mask)."""
    if p == 0:
        return x
    mask = torch.empty_like(x).bernoulli_(1 - p, generator=generator)
    return x * mask.div_(1 - p)


class PatchDiscriminator(nn.Module):
    """(patches (B, C, R, R), patch scales/offsets (B, 2), camera_angles (B, 3), class c) -> logits (B,)."""

    def __init__(self, config: PatchDiscriminatorConfig = PatchDiscriminatorConfig()):
        super().__init__()
        self.config = cfg = config
        log2 = int(math.log2(cfg.image_resolution))
        self.block_resolutions = [2 ** i for i in range(log2, 2, -1)]
        ch = {r: channels_at(r, cfg.channel_base, cfg.channel_max) for r in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (log2 + 1 - cfg.num_fp16_res), 8)
        cmap_dim = ch[4] if cfg.cmap_dim is None else cfg.cmap_dim
        self.register_buffer("patch_fourier_coefs", fourier_coefficients(PATCH_MULTIPLIER), persistent=False)
        self.patch_embed = nn.Embedding(int(math.ceil(PATCH_MULTIPLIER)) + 1, cfg.const_embed_dim)
        patch_dim = 3 * (2 * len(self.patch_fourier_coefs) + cfg.const_embed_dim)
        self.hyper_mod_mapping = MappingNetwork(0, patch_dim, cfg.hyper_mod_dim, None, cfg.mapping_layers,
                                                cfg.mapping_lr_mul, None)
        for i, res in enumerate(self.block_resolutions):
            in_ch = ch[res] if res < cfg.image_resolution else 0
            setattr(self, f"b{res}", PatchDiscriminatorBlock(
                in_ch, ch[res], ch[res // 2], res, cfg.img_channels, cfg.hyper_mod_dim,
                1 if i < cfg.num_start_blocks else 2, res >= fp16_resolution, cfg.conv_clamp))
        self.register_buffer("camera_fourier_coefs", fourier_coefficients(CAMERA_MULTIPLIER), persistent=False)
        self.camera_dim = 2 * 2 * len(self.camera_fourier_coefs) if cfg.camera_cond else 0
        self.head_mapping = MappingNetwork(0, cfg.c_dim + patch_dim + self.camera_dim, cmap_dim, None,
                                           cfg.mapping_layers, cfg.mapping_lr_mul, None)
        self.b4 = DiscriminatorEpilogue(ch[4], cmap_dim, 4, cfg.mbstd_group_size, cfg.mbstd_num_channels,
                                        cfg.conv_clamp)

    def encode_patches(self, scales: Tensor, offsets: Tensor) -> Tensor:
        """(B, 828) encoding of ``[s_x, o_x, o_y]``: per value 20 Fourier features then its 256-d embedding."""
        params = torch.cat([scales[:, [0]], offsets], dim=1)
        fourier = scalar_fourier(params, PATCH_MULTIPLIER, self.patch_fourier_coefs)
        embedded = self.patch_embed((params.float() * PATCH_MULTIPLIER).round().long())
        return torch.cat([fourier, embedded], dim=2).reshape(len(params), -1)

    def encode_camera(self, camera_angles: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(B, 24) camera features of EpiGRAF ``camera_angles`` (B, 3), dropped out in training mode."""
        enc = scalar_fourier(wrapped_camera_label(camera_angles), CAMERA_MULTIPLIER, self.camera_fourier_coefs)
        enc = enc.reshape(len(camera_angles), -1)
        return camera_dropout(enc, self.config.camera_dropout, generator) if self.training else enc

    def head_condition(self, patch_enc: Tensor, camera_angles: Tensor | None, c: Tensor | None,
                       generator: torch.Generator | None) -> Tensor:
        """(B, c_dim + 828 + 24) input of the head mapping: class label, patch encoding, camera features."""
        parts = []
        if self.config.c_dim > 0:
            if c is None or c.shape != (len(patch_enc), self.config.c_dim):
                raise ValueError(f"this discriminator needs a (B, {self.config.c_dim}) one-hot class label c")
            parts.append(c.to(torch.float32))
        parts.append(patch_enc)
        if self.config.camera_cond:
            if camera_angles is None or camera_angles.shape != (len(patch_enc), 3):
                raise ValueError("this discriminator is camera-conditioned: pass camera_angles (B, 3) "
                                 "[yaw, pitch, roll] (EpiGRAF convention)")
            parts.append(self.encode_camera(camera_angles, generator))
        return torch.cat(parts, dim=1)

    def forward(self, patches: Tensor, scales: Tensor, offsets: Tensor, camera_angles: Tensor | None = None,
                c: Tensor | None = None, *, generator: torch.Generator | None = None) -> Tensor:
        """Logits (B,). ``generator`` draws the camera dropout mask (None: torch's global RNG, as officially)."""
        R = self.config.patch_resolution
        if patches.ndim != 4 or patches.shape[1:] != (self.config.img_channels, R, R):
            raise ValueError(f"patches must be (B, {self.config.img_channels}, {R}, {R}), got {tuple(patches.shape)}")
        if scales.shape != (len(patches), 2) or offsets.shape != scales.shape:
            raise ValueError(f"patch scales and offsets must be ({len(patches)}, 2)")
        patch_enc = self.encode_patches(scales, offsets)
        hyper = self.hyper_mod_mapping(None, patch_enc)
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, patches, hyper)
        cmap = self.head_mapping(None, self.head_condition(patch_enc, camera_angles, c, generator))
        return self.b4(x, cmap).squeeze(1)

    def feature_maps(self, images: Tensor) -> list[Tensor]:
        """The block outputs (B, C_k, r_k, r_k) for whole images (B, 3, H, W) in [-1, 1] of any size (the
        inversion's discriminator-feature loss): resized (bilinear, antialiased) to the patch resolution and
        seen as one patch of scale 1 at offset 0, without the conditioned head."""
        R = self.config.patch_resolution
        patches = torch.nn.functional.interpolate(images, size=(R, R), mode="bilinear", align_corners=False,
                                                  antialias=True)
        B = len(patches)
        scales = torch.ones(B, 2, device=patches.device)
        hyper = self.hyper_mod_mapping(None, self.encode_patches(scales, torch.zeros_like(scales)))
        x, features = None, []
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, patches, hyper)
            features.append(x)
        return features


__all__ = ["PatchDiscriminator", "PatchDiscriminatorBlock", "PatchDiscriminatorConfig", "HyperModConv2d",
           "camera_dropout", "scalar_fourier"]
