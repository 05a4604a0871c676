"""The StyleGAN2-ADA augmentation pipeline (geometric and colour groups) in pure PyTorch.

Every transform is applied to each sample independently with probability ``p * multiplier`` (its config
field); ``p`` is the pipeline's buffer, adapted during training by :class:`~.adaptive.AdaptiveP`. The geometric
group (x-flip, 90-degree rotations, integer translation, isotropic scaling, pre-rotation, anisotropic scaling,
post-rotation, fractional translation) is composed into one inverse matrix per sample and executed once:
reflect padding wide enough for the transformed corners, 2x upsampling with the orthogonal ``sym6`` wavelet
low-pass, bilinear ``grid_sample`` of the affine grid, 2x downsampling with the same filter (correlated), as the
official pipeline does. The colour group (brightness, contrast, luma flip, hue rotation, saturation) is one
4x4 matrix per sample applied to every RGB triplet of the channels, so a 6-channel stack of two images (a
dual discriminator's pair) or of several frames gets the same transform on each. Trailing *mask* channels (a
silhouette: opacity or a foreground mask, ``masks=`` in :meth:`AugmentPipe.forward`) follow the geometric group
only, since a brightness or hue change has no meaning for them.

Deliberate differences from the official code: every random number comes from an optional
``torch.Generator`` (reproducible per chunk); nothing is resampled when no sample drew a geometric transform
(so ``p = 0`` returns the input unchanged, bit for bit; the official code filters the whole batch whenever the
group is enabled); 90-degree rotations use exact matrices. With the same draws the output equals the official
pipeline's up to float rounding (about 1e-5). ``AugmentConfig.exact_blit`` optionally does the x-flip, quarter
turns and integer translation by exact pixel indexing, as the original TensorFlow ADA did. The draw order is
documented in :func:`draw_geometric` / :func:`draw_color`; the official filter / noise / cutout groups are not
implemented.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import matrices as M

SYM6_TAPS = (
    0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
    0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
    -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148,
)
"""Low-pass filter of the Symlet-6 wavelet (a mathematical constant; the official pipeline's ``Hz_geom`` is
these taps divided by their sum)."""


@dataclass(frozen=True)
class AugmentConfig:
    """Probability multipliers (0 disables a transform) and strengths of the pipeline; defaults: the official
    'bgc' preset (every geometric and colour transform at multiplier 1) with the official strengths."""

    xflip: float = 1.0
    """Multiplier of the probability of mirroring x."""
    rotate90: float = 1.0
    """Multiplier of the probability of a rotation by a random multiple of 90 degrees."""
    xint: float = 1.0
    """Multiplier of the probability of an integer translation."""
    xint_max: float = 0.125
    """Range of the integer translation, as a fraction of the image size (uniform in +-xint_max)."""
    scale: float = 1.0
    """Multiplier of the probability of isotropic scaling."""
    rotate: float = 1.0
    """Multiplier of the probability of an arbitrary rotation (split into a pre- and a post-rotation)."""
    aniso: float = 1.0
    """Multiplier of the probability of anisotropic scaling."""
    xfrac: float = 1.0
    """Multiplier of the probability of a fractional translation."""
    scale_std: float = 0.2
    """Standard deviation of log2 of the isotropic scale factor."""
    rotate_max: float = 1.0
    """Range of the arbitrary rotation: uniform in +-rotate_max half turns (1 = the full circle)."""
    aniso_std: float = 0.2
    """Standard deviation of log2 of the anisotropic scale factor."""
    xfrac_std: float = 0.125
    """Standard deviation of the fractional translation, as a fraction of the image size."""
    brightness: float = 1.0
    """Multiplier of the probability of a brightness offset."""
    contrast: float = 1.0
    """Multiplier of the probability of a contrast change."""
    lumaflip: float = 1.0
    """Multiplier of the probability of a luma flip."""
    hue: float = 1.0
    """Multiplier of the probability of a hue rotation."""
    saturation: float = 1.0
    """Multiplier of the probability of a saturation change."""
    brightness_std: float = 0.2
    """Standard deviation of the brightness offset (images in [-1, 1])."""
    contrast_std: float = 0.5
    """Standard deviation of log2 of the contrast factor."""
    hue_max: float = 1.0
    """Range of the hue rotation: uniform in +-hue_max half turns (1 = the full circle)."""
    saturation_std: float = 1.0
    """Standard deviation of log2 of the saturation factor."""
    exact_blit: bool = False
    """True: x-flip, quarter turns and integer translation by exact pixel indexing (reflect padding) before the
    resampling of the other geometric transforms, as the original TensorFlow ADA; False: all composed into one
    filtered resampling, as the official PyTorch code (whose asymmetric filter shifts a mirrored or turned image
    by about 0.1 px)."""

    def __post_init__(self) -> None:
        bad = [f.name for f in fields(self) if f.name != "exact_blit"
               and not (math.isfinite(getattr(self, f.name)) and getattr(self, f.name) >= 0)]
        if bad:
            raise ValueError(f"AugmentConfig fields must be finite and >= 0: {', '.join(bad)}")

    @property
    def geometric(self) -> bool:
        """Whether any geometric transform is enabled."""
        return any(getattr(self, n) > 0 for n in GEOMETRIC_MULTIPLIERS)

    @property
    def color(self) -> bool:
        """Whether any colour transform is enabled."""
        return any(getattr(self, n) > 0 for n in COLOR_MULTIPLIERS)


GEOMETRIC_MULTIPLIERS = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOR_MULTIPLIERS = ("brightness", "contrast", "lumaflip", "hue", "saturation")
_OFF = {n: 0.0 for n in GEOMETRIC_MULTIPLIERS + COLOR_MULTIPLIERS}
AUGMENT_PRESETS: dict[str, AugmentConfig] = {
    "blit": AugmentConfig(**{**_OFF, "xflip": 1.0, "rotate90": 1.0, "xint": 1.0}),
    "geom": AugmentConfig(**{**_OFF, "scale": 1.0, "rotate": 1.0, "aniso": 1.0, "xfrac": 1.0}),
    "color": AugmentConfig(**{**_OFF, **{n: 1.0 for n in COLOR_MULTIPLIERS}}),
    "bg": AugmentConfig(**{**_OFF, **{n: 1.0 for n in GEOMETRIC_MULTIPLIERS}}),
    "bgc": AugmentConfig(),
}
"""The official pipeline specs that use only the implemented groups (blit, geom, color and their unions)."""


# ---------------------------------------------------------------------------------------------------
# Random draws
# ---------------------------------------------------------------------------------------------------
class _Draws:
    """Random numbers for one batch, from ``generator`` (or the global RNG), moved to ``device``."""

    def __init__(self, batch: int, generator: torch.Generator | None, device: torch.device) -> None:
        self.batch, self.generator, self.device = batch, generator, device
        self.source = generator.device if generator is not None else device

    def uniform(self, *shape: int) -> Tensor:
        return torch.rand((self.batch, *shape), generator=self.generator, device=self.source).to(self.device)

    def normal(self, *shape: int) -> Tensor:
        return torch.randn((self.batch, *shape), generator=self.generator, device=self.source).to(self.device)

    def gate(self, value: Tensor, probability: float | Tensor, identity: float) -> Tensor:
        """``value`` where a fresh uniform is below ``probability`` (per sample), else ``identity``."""
        u = self.uniform(*([1] * (value.ndim - 1)))
        return torch.where(u < probability, value, torch.full_like(value, identity))


@dataclass
class GeometricParams:
    """Per-sample parameters of the geometric group; the identity value where a transform was not drawn."""

    xflip: Tensor
    """(B,) 1 to mirror x, else 0."""
    rotate90: Tensor
    """(B,) quarter turns 0..3 (the content turns by minus this many, as officially)."""
    xint: Tensor
    """(B, 2) integer translation (x, y) in pixels."""
    scale: Tensor
    """(B,) isotropic scale factor."""
    pre_rotation: Tensor
    """(B,) radians (the content turns by minus this, as officially), before the anisotropic scaling."""
    aniso: Tensor
    """(B,) anisotropic factor: x scaled by it, y by its inverse."""
    post_rotation: Tensor
    """(B,) radians (same sign convention), after the anisotropic scaling."""
    xfrac: Tensor
    """(B, 2) fractional translation (x, y) in pixels."""

    @classmethod
    def identity(cls, batch: int, device: torch.device | str = "cpu") -> GeometricParams:
        z, o = torch.zeros(batch, device=device), torch.ones(batch, device=device)
        return cls(z, z, torch.zeros(batch, 2, device=device), o, z, o, z, torch.zeros(batch, 2, device=device))


@dataclass
class ColorParams:
    """Per-sample parameters of the colour group; the identity value where a transform was not drawn."""

    brightness: Tensor
    """(B,) offset added to every channel."""
    contrast: Tensor
    """(B,) factor on every channel."""
    lumaflip: Tensor
    """(B,) 1 to reflect along the luma axis, else 0."""
    hue: Tensor
    """(B,) rotation about the luma axis, radians."""
    saturation: Tensor
    """(B,) factor on the distance from the luma axis."""

    @classmethod
    def identity(cls, batch: int, device: torch.device | str = "cpu") -> ColorParams:
        z, o = torch.zeros(batch, device=device), torch.ones(batch, device=device)
        return cls(z, o, z, z, o)


def draw_geometric(cfg: AugmentConfig, p: Tensor, draws: _Draws, width: int, height: int) -> GeometricParams:
    """Draw the geometric group for a batch. Per enabled transform, in this order: its value(s), then one
    uniform gate per sample (apply where ``gate < multiplier * p``); disabled transforms draw nothing.
    The arbitrary rotation is split into a pre- and a post-rotation, each with probability
    ``1 - sqrt(1 - rotate * p)``, so that at least one happens with probability ``rotate * p``."""
    out = GeometricParams.identity(draws.batch, draws.device)
    if cfg.xflip > 0:
        out.xflip = draws.gate(torch.floor(draws.uniform() * 2), cfg.xflip * p, 0.0)
    if cfg.rotate90 > 0:
        out.rotate90 = draws.gate(torch.floor(draws.uniform() * 4), cfg.rotate90 * p, 0.0)
    if cfg.xint > 0:
        t = draws.gate((draws.uniform(2) * 2 - 1) * cfg.xint_max, cfg.xint * p, 0.0)
        out.xint = torch.round(t * torch.tensor([width, height], device=t.device, dtype=t.dtype))
    if cfg.scale > 0:
        out.scale = draws.gate(torch.exp2(draws.normal() * cfg.scale_std), cfg.scale * p, 1.0)
    p_rot = 1 - torch.sqrt((1 - cfg.rotate * p).clamp(0, 1))
    if cfg.rotate > 0:
        out.pre_rotation = draws.gate((draws.uniform() * 2 - 1) * math.pi * cfg.rotate_max, p_rot, 0.0)
    if cfg.aniso > 0:
        out.aniso = draws.gate(torch.exp2(draws.normal() * cfg.aniso_std), cfg.aniso * p, 1.0)
    if cfg.rotate > 0:
        out.post_rotation = draws.gate((draws.uniform() * 2 - 1) * math.pi * cfg.rotate_max, p_rot, 0.0)
    if cfg.xfrac > 0:
        t = draws.gate(draws.normal(2) * cfg.xfrac_std, cfg.xfrac * p, 0.0)
        out.xfrac = t * torch.tensor([width, height], device=t.device, dtype=t.dtype)
    return out


def draw_color(cfg: AugmentConfig, p: Tensor, draws: _Draws, channels: int) -> ColorParams:
    """Draw the colour group for a batch (same scheme as :func:`draw_geometric`); hue and saturation are
    skipped (and draw nothing) for single-channel images, as officially."""
    out = ColorParams.identity(draws.batch, draws.device)
    if cfg.brightness > 0:
        out.brightness = draws.gate(draws.normal() * cfg.brightness_std, cfg.brightness * p, 0.0)
    if cfg.contrast > 0:
        out.contrast = draws.gate(torch.exp2(draws.normal() * cfg.contrast_std), cfg.contrast * p, 1.0)
    if cfg.lumaflip > 0:
        out.lumaflip = draws.gate(torch.floor(draws.uniform() * 2), cfg.lumaflip * p, 0.0)
    if cfg.hue > 0 and channels > 1:
        out.hue = draws.gate((draws.uniform() * 2 - 1) * math.pi * cfg.hue_max, cfg.hue * p, 0.0)
    if cfg.saturation > 0 and channels > 1:
        out.saturation = draws.gate(torch.exp2(draws.normal() * cfg.saturation_std), cfg.saturation * p, 1.0)
    return out


# ---------------------------------------------------------------------------------------------------
# Matrices from parameters
# ---------------------------------------------------------------------------------------------------
def blit_inverse_matrix(g: GeometricParams) -> Tensor:
    """(B, 3, 3) inverse of the pixel-blitting part (x-flip, 90-degree rotation, integer translation)."""
    # The official code rotates the content by minus the drawn angle / quarter turns; kept for parity.
    G = M.xflip_inverse(g.xflip)
    G = G @ M.rotate90_inverse(-g.rotate90)
    return G @ M.translate_inverse(g.xint[:, 0], g.xint[:, 1])


def general_inverse_matrix(g: GeometricParams) -> Tensor:
    """(B, 3, 3) inverse of the general part (scale, pre-rotation, anisotropic scale, post-rotation, fractional
    translation); ``G_inv = blit_inverse_matrix(g) @ general_inverse_matrix(g)``."""
    G = M.scale_inverse(g.scale, g.scale)
    G = G @ M.rotate_inverse(-g.pre_rotation)
    G = G @ M.scale_inverse(g.aniso, 1 / g.aniso)
    G = G @ M.rotate_inverse(-g.post_rotation)
    return G @ M.translate_inverse(g.xfrac[:, 0], g.xfrac[:, 1])


def geometric_inverse_matrix(g: GeometricParams) -> Tensor:
    """(B, 3, 3) ``G_inv`` (output pixel -> input pixel, centred pixel coordinates, see :mod:`.matrices`) of the
    composed geometric group, in the official order: x-flip, 90-degree rotation, integer translation, scale,
    pre-rotation, anisotropic scale, post-rotation, fractional translation."""
    return blit_inverse_matrix(g) @ general_inverse_matrix(g)


def color_matrix(c: ColorParams) -> Tensor:
    """(B, 4, 4) ``C`` (input colour -> output colour) of the composed colour group, applied in the order
    brightness, contrast, luma flip, hue rotation, saturation."""
    C = M.brightness_matrix(c.brightness)
    C = M.contrast_matrix(c.contrast) @ C
    C = M.luma_flip_matrix(c.lumaflip) @ C
    C = M.hue_rotation_matrix(c.hue) @ C
    return M.saturation_matrix(c.saturation) @ C


# ---------------------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------------------
def _fir_axis(x: Tensor, taps: Tensor, axis: int, flip: bool, stride: int) -> Tensor:
    """Depthwise 1-D FIR along ``axis`` (-1: x, -2: y), 'valid' extent, keeping every ``stride``-th output.
    ``flip`` True is a true convolution (taps reversed), False a correlation."""
    C = x.shape[1]
    k = (taps.flip(0) if flip else taps).to(x.dtype)
    w = k.reshape(1, 1, 1, -1) if axis == -1 else k.reshape(1, 1, -1, 1)
    s = (1, stride) if axis == -1 else (stride, 1)
    return F.conv2d(x, w.expand(C, 1, *w.shape[2:]), stride=s, groups=C)


def upsample_2x(x: Tensor, taps: Tensor) -> Tensor:
    """(B, C, 2H, 2W): zeros inserted after each pixel, then a separable convolution with ``taps`` (sum 1,
    gain 2 per axis), aligned as StyleGAN's ``upsample2d``."""
    B, C, H, W = x.shape
    k = taps.numel()
    z = F.pad(x.reshape(B, C, H, 1, W, 1), [0, 1, 0, 0, 0, 1]).reshape(B, C, 2 * H, 2 * W)
    z = F.pad(z, [(k + 1) // 2, (k - 2) // 2, (k + 1) // 2, (k - 2) // 2])
    return _fir_axis(_fir_axis(z, taps * 2, -1, True, 1), taps * 2, -2, True, 1)


def downsample_2x(x: Tensor, taps: Tensor, crop: int) -> Tensor:
    """(B, C, (H - 2 crop) / 2, (W - 2 crop) / 2): a separable correlation with ``taps`` keeping every other
    pixel, after removing ``crop`` pixels per side, aligned as StyleGAN's ``downsample2d`` with
    ``padding=-crop`` and ``flip_filter=True``."""
    k = taps.numel()
    lo, hi = (k - 1) // 2 - crop, (k - 2) // 2 - crop
    x = F.pad(x, [lo, hi, lo, hi])  # negative: crops
    return _fir_axis(_fir_axis(x, taps, -1, False, 2), taps, -2, False, 2)


def _margins(G_inv: Tensor, width: int, height: int, filter_pad: int) -> list[int]:
    """[x0, x1, y0, y1] reflect padding (pixels) that holds every sample's transformed corners plus the
    filter's support, at most the image size minus one (what reflect padding allows)."""
    cx, cy = (width - 1) / 2, (height - 1) / 2
    corners = torch.tensor([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], device=G_inv.device,
                           dtype=G_inv.dtype)
    xy = (G_inv @ corners.t())[:, :2, :].permute(1, 0, 2).flatten(1)  # (2, B * 4)
    m = torch.cat([-xy, xy]).max(dim=1).values  # (x0, y0, x1, y1)
    m = m + torch.tensor([2 * filter_pad - cx, 2 * filter_pad - cy] * 2, device=m.device, dtype=m.dtype)
    m = torch.minimum(m.clamp(min=0), torch.tensor([width - 1, height - 1] * 2, device=m.device, dtype=m.dtype))
    x0, y0, x1, y1 = m.ceil().int().tolist()
    return [x0, x1, y0, y1]


def apply_geometric(images: Tensor, G_inv: Tensor, taps: Tensor) -> Tensor:
    """Resample (B, C, H, W) ``images`` by the inverse transforms ``G_inv`` (B, 3, 3): reflect padding, 2x
    upsampling, bilinear sampling of the affine grid (zeros outside, ``align_corners=False``), 2x
    downsampling; output (B, C, H, W). Differentiable in ``images``."""
    B, C, H, W = images.shape
    filter_pad = taps.numel() // 4
    x0, x1, y0, y1 = _margins(G_inv, W, H, filter_pad)
    x = F.pad(images, [x0, x1, y0, y1], mode="reflect")
    one = torch.ones(B, device=G_inv.device, dtype=G_inv.dtype)
    G = M.translate_2d(one * (x0 - x1) / 2, one * (y0 - y1) / 2) @ G_inv
    x = upsample_2x(x, taps)
    G = M.scale_2d(one * 2, one * 2) @ G @ M.scale_2d(one / 2, one / 2)
    G = M.translate_2d(-one / 2, -one / 2) @ G @ M.translate_2d(one / 2, one / 2)
    out_h, out_w = (H + 2 * filter_pad) * 2, (W + 2 * filter_pad) * 2
    G = M.scale_2d(one * 2 / x.shape[3], one * 2 / x.shape[2]) @ G @ M.scale_2d(one * out_w / 2, one * out_h / 2)
    grid = F.affine_grid(G[:, :2, :].to(x.dtype), [B, C, out_h, out_w], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return downsample_2x(x, taps, crop=2 * filter_pad)


def apply_blit(images: Tensor, g: GeometricParams) -> Tensor:
    """The pixel-blitting part of ``g`` on (B, C, H, W) images, exactly: mirror x where ``g.xflip``, then
    ``torch.rot90`` by ``g.rotate90`` quarter turns (square images only, unless no sample turns), then shift
    the content by ``g.xint`` pixels with reflect padding. Same maps as :func:`blit_inverse_matrix`."""
    B, _, H, W = images.shape
    dev = images.device
    flip = g.xflip.to(dev).reshape(B, 1, 1, 1) > 0
    x = torch.where(flip, images.flip(-1), images)
    turns = g.rotate90.to(dev).round().long() % 4
    if bool(turns.any()):
        if H != W:
            raise ValueError(f"exact 90-degree rotations need square images, got {H}x{W}; use "
                             "AugmentConfig(exact_blit=False) or rotate90=0")
        turned = x
        for k in (1, 2, 3):
            turned = torch.where((turns == k).reshape(B, 1, 1, 1), torch.rot90(x, k, dims=(-2, -1)), turned)
        x = turned
    shift = g.xint.to(dev).round().long()  # (B, 2) content shift (x, y)
    m = int(shift.abs().max())
    if m == 0:
        return x
    if m >= min(H, W):
        raise ValueError(f"integer translation of {m} px needs reflect padding wider than the {H}x{W} image; "
                         "lower AugmentConfig.xint_max")
    padded = F.pad(x, [m, m, m, m], mode="reflect")
    rows = torch.arange(H, device=dev)[None] - shift[:, 1:] + m  # (B, H): output row -> padded row
    cols = torch.arange(W, device=dev)[None] - shift[:, :1] + m  # (B, W)
    picked = padded[torch.arange(B, device=dev)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return picked.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)


def apply_color(images: Tensor, C: Tensor) -> Tensor:
    """Apply the colour matrices ``C`` (B, 4, 4) to (B, 3k, H, W) images (every RGB triplet alike) or (B, 1, H, W)
    images (the mean of C's RGB rows: gain = their summed gain, offset = their mean offset)."""
    B, ch, H, W = images.shape
    C = C.to(images.dtype)
    if ch == 1:
        row = C[:, :3, :].mean(dim=1)  # (B, 4)
        return images * row[:, :3].sum(1).reshape(B, 1, 1, 1) + row[:, 3].reshape(B, 1, 1, 1)
    if ch % 3 != 0:
        raise ValueError(f"colour augmentation needs 1 channel or a multiple of 3 (RGB triplets), got {ch}; "
                         "pass mask channels as masks= (they come last), or disable the colour group "
                         "(AugmentConfig brightness/contrast/lumaflip/hue/saturation = 0)")
    x = images.reshape(B, ch // 3, 3, H * W)
    x = C[:, None, :3, :3] @ x + C[:, None, :3, 3:]
    return x.reshape(B, ch, H, W)


class AugmentPipe(nn.Module):
    """ADA's augmentation pipeline: ``forward(images, generator)`` augments a batch with probability ``p`` (a
    buffer: saved in the state dict, so a resumed run continues with the same p).

    Images are (B, C, H, W) floats in [-1, 1]: C - masks colour channels (1 or a multiple of 3), then ``masks``
    mask channels that get the geometric transforms only; the output has the same shape and stays differentiable
    in the input (R1 on augmented reals, G's loss through D).
    """

    def __init__(self, config: AugmentConfig = AugmentConfig(), p: float = 0.0) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("p", torch.tensor(float(p)))
        taps = torch.tensor(SYM6_TAPS, dtype=torch.float64)
        self.register_buffer("filter_taps", (taps / taps.sum()).float(), persistent=False)

    def extra_repr(self) -> str:
        return f"p={float(self.p):.4f}, {self.config}"

    def draw(self, batch: int, channels: int, height: int, width: int, generator: torch.Generator | None = None,
             ) -> tuple[GeometricParams, ColorParams]:
        """The per-sample parameters for a batch (geometric group first, then colour)."""
        draws = _Draws(batch, generator, self.p.device)
        p = self.p.detach().float()
        return draw_geometric(self.config, p, draws, width, height), draw_color(self.config, p, draws, channels)

    def forward(self, images: Tensor, generator: torch.Generator | None = None, masks: int = 0) -> Tensor:
        """``images`` augmented; their last ``masks`` channels are masks (geometric transforms only)."""
        if images.ndim != 4 or not images.is_floating_point():
            raise ValueError(f"AugmentPipe expects (B, C, H, W) float images, got {tuple(images.shape)} "
                             f"{images.dtype}")
        B, C, H, W = images.shape
        if not 0 <= masks < C:
            raise ValueError(f"AugmentPipe: masks={masks} must leave at least one colour channel of the {C}")
        geometric, color = self.draw(B, C - masks, H, W, generator)
        return self.transform(images, geometric, color, masks)

    def transform(self, images: Tensor, geometric: GeometricParams, color: ColorParams, masks: int = 0) -> Tensor:
        """Apply given parameters (the colour group to all but the last ``masks`` channels); a group (or, with
        ``exact_blit``, the blit / general part) is skipped when no sample has a non-identity transform in it."""
        if self.config.exact_blit:
            images = apply_blit(images, geometric)
            G_inv = general_inverse_matrix(geometric).to(images.device)
        else:
            G_inv = geometric_inverse_matrix(geometric).to(images.device)
        if not _is_identity(G_inv):
            images = apply_geometric(images, G_inv, self.filter_taps.to(images.device))
        C = color_matrix(color).to(images.device)
        if not _is_identity(C):
            colour = images.shape[1] - masks
            images = torch.cat([apply_color(images[:, :colour], C), images[:, colour:]], 1) if masks else \
                apply_color(images, C)
        return images


def _is_identity(matrices: Tensor) -> bool:
    """Whether every (n, n) matrix of the (B, n, n) batch is exactly the identity."""
    return torch.equal(matrices, torch.eye(matrices.shape[-1], device=matrices.device).expand_as(matrices))


__all__ = [
    "AUGMENT_PRESETS",
    "SYM6_TAPS",
    "AugmentConfig",
    "AugmentPipe",
    "ColorParams",
    "GeometricParams",
    "apply_blit",
    "apply_color",
    "apply_geometric",
    "blit_inverse_matrix",
    "color_matrix",
    "downsample_2x",
    "draw_color",
    "draw_geometric",
    "general_inverse_matrix",
    "geometric_inverse_matrix",
    "upsample_2x",
]
