"""StyleGAN2 building blocks in pure PyTorch, as EG3D uses them (no compiled CUDA plugins).

Each op follows the arithmetic of the official reference paths step by step (filter scaling before the
convolution, the transposed-convolution route for upsampling, gains applied after the activation,
grouped "fused" modulated convolutions in eval mode) so that imported checkpoints reproduce the official
outputs to the last bits on CPU. Conventions:

* Images and feature maps are (B, C, H, W); filters are 2-D float32 tensors from :func:`setup_filter`.
* ``padding`` is an int or ``(x0, x1, y0, y1)`` in pixels of the *upsampled* image; negative crops.
* Equalised learning rate: weights are stored divided by ``lr_mul`` and scaled by ``lr_mul / sqrt(fan_in)``
  at run time.
* Mixed precision: a block with ``use_fp16`` runs in float16 only on CUDA; on CPU it falls back to float32
  but keeps its ``conv_clamp`` (as the official code).
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..kernels import low_precision_dtype, use_optimized_kernels, using_reference_kernels

Activation = Literal["linear", "lrelu", "relu"]
NoiseMode = Literal["random", "const", "none"]

LRELU_SLOPE = 0.2
# Default gains keep the activations' second moment (He init): sqrt(2) after (l)relu.
_DEFAULT_GAIN = {"linear": 1.0, "lrelu": math.sqrt(2), "relu": math.sqrt(2)}
STANDARD_FILTER_TAPS = (1, 3, 3, 1)


# ---------------------------------------------------------------------------------------------------
# Resampling (upfirdn2d) and convolution with resampling
# ---------------------------------------------------------------------------------------------------
def setup_filter(taps: Sequence[float] = STANDARD_FILTER_TAPS) -> Tensor:
    """The 2-D low-pass filter (K, K) float32: outer product of ``taps`` with itself, normalised to sum 1."""
    f = torch.as_tensor(list(taps), dtype=torch.float32)
    f = torch.outer(f, f)
    f /= f.sum()
    return f


def is_resample_filter(name: str) -> bool:
    """Whether a state_dict name is a resampling-filter buffer (``resample_filter``: a constant, not a weight)."""
    return name == "resample_filter" or name.endswith(".resample_filter")


def nonstandard_resample_filters(tensors: dict[str, Tensor]) -> list[str]:
    """Names of the resampling-filter buffers in ``tensors`` that are not :func:`setup_filter`'s standard one
    (official checkpoints store them; importers rebuild the standard filter and refuse any other)."""
    standard = setup_filter()
    return [k for k, v in tensors.items()
            if is_resample_filter(k) and not (v.shape == standard.shape and torch.equal(v.float(), standard))]


def _padding4(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    """(x0, x1, y0, y1) from an int, (x, y) or (x0, x1, y0, y1)."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = list(padding)
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    if len(padding) == 4:
        return tuple(padding)  # type: ignore[return-value]
    raise ValueError(f"padding must be an int, (x, y) or (x0, x1, y0, y1), got {padding}")


def upfirdn2d(x: Tensor, f: Tensor | None, up: int = 1, down: int = 1, padding: int | Sequence[int] = 0,
              flip_filter: bool = False, gain: float = 1.0) -> Tensor:
    """Upsample (insert zeros), pad, filter with the 2-D FIR filter ``f``, downsample (drop pixels).

    Args:
        x: (B, C, H, W).
        f: (K, K) float32 filter or None (identity).
        up, down: integer factors.
        padding: pixels added (negative: removed) on each side after upsampling.
        flip_filter: False convolves (the filter is flipped, as a true convolution), True correlates.
        gain: overall gain; the 2-D filter is multiplied by it (``up**2`` keeps the mean for upsampling).
    Returns:
        (B, C, (H*up + y0 + y1 - K + 1) / down, ...) in the dtype of ``x``.
    """
    if f is None:
        f = torch.ones(1, 1, dtype=torch.float32, device=x.device)
    if f.ndim != 2:
        raise ValueError(f"upfirdn2d needs a 2-D filter (K, K), got shape {tuple(f.shape)}")
    pads = _padding4(padding)
    if use_optimized_kernels(x):
        if up > 1 and down == 1 and _polyphase_ok(f.shape[-1], up, pads):
            return _upfirdn2d_polyphase(x, f, up, pads, flip_filter, gain)
        if up == 1 and len(set(pads)) == 1 and pads[0] >= 0:
            # Equal non-negative padding: let the convolution pad (no padded copy of the image).
            return _depthwise_fir(x, f, pads[0], flip_filter, gain)[:, :, ::down, ::down]
    B, C, H, W = x.shape
    px0, px1, py0, py1 = pads
    if up > 1:
        x = x.reshape(B, C, H, 1, W, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(B, C, H * up, W * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    return _depthwise_fir(x, f, 0, flip_filter, gain)[:, :, ::down, ::down]


def _fir_weight(f: Tensor, channels: int, flip_filter: bool, gain: float, dtype: torch.dtype) -> Tensor:
    """(channels, 1, K, K) depthwise weight that *correlates* like convolving with ``f`` (unless flip_filter)."""
    f = (f * (gain ** (f.ndim / 2))).to(dtype)
    if not flip_filter:
        f = f.flip([0, 1])
    return f[None, None].repeat(channels, 1, 1, 1)


def _depthwise_fir(x: Tensor, f: Tensor, padding: int, flip_filter: bool, gain: float) -> Tensor:
    return F.conv2d(x, _fir_weight(f, x.shape[1], flip_filter, gain, x.dtype), padding=padding, groups=x.shape[1])


def _polyphase_ok(k: int, up: int, pads: tuple[int, int, int, int]) -> bool:
    """Whether zero-insertion + padding + filtering equals one strided transposed depthwise convolution:
    the leading pad within the filter (0 <= p0 <= K - 1) and the trailing one giving an output padding in
    [0, up - 1] (output_padding = p1 - p0 + up - 1)."""
    px0, px1, py0, py1 = pads
    return all(0 <= p0 <= k - 1 and 0 <= p1 - p0 + up - 1 <= up - 1 for p0, p1 in ((px0, px1), (py0, py1)))


def _upfirdn2d_polyphase(x: Tensor, f: Tensor, up: int, pads: tuple[int, int, int, int], flip_filter: bool,
                         gain: float) -> Tensor:
    """upfirdn2d(up > 1, down = 1) without materialising the zero-inserted image.

    Zero-inserting then correlating with g (the flipped, scaled f) is a transposed convolution with stride
    ``up`` whose kernel is g flipped back, padded by K - 1 - p0 and extended by p1 - p0 + up - 1 outputs:
    each output pixel touches only the K / up taps that land on real samples (polyphase filtering).
    """
    k = f.shape[-1]
    px0, px1, py0, py1 = pads
    w = _fir_weight(f, x.shape[1], not flip_filter, gain, x.dtype)  # flipped twice: the transposed conv flips
    return F.conv_transpose2d(x, w, stride=up, padding=(k - 1 - py0, k - 1 - px0),
                              output_padding=(py1 - py0 + up - 1, px1 - px0 + up - 1), groups=x.shape[1])


def upsample2d(x: Tensor, f: Tensor, up: int = 2, padding: int | Sequence[int] = 0, gain: float = 1.0) -> Tensor:
    """Upsample by ``up`` with filter ``f``; output (B, C, H*up, W*up) for padding 0."""
    px0, px1, py0, py1 = _padding4(padding)
    k = f.shape[-1]
    pad = [px0 + (k + up - 1) // 2, px1 + (k - up) // 2, py0 + (k + up - 1) // 2, py1 + (k - up) // 2]
    return upfirdn2d(x, f, up=up, padding=pad, gain=gain * up * up)


def downsample2d(x: Tensor, f: Tensor, down: int = 2, padding: int | Sequence[int] = 0, flip_filter: bool = False,
                 gain: float = 1.0) -> Tensor:
    """Filter with ``f`` and keep every ``down``-th pixel; output (B, C, H/down, W/down) for padding 0."""
    px0, px1, py0, py1 = _padding4(padding)
    k = f.shape[-1]
    pad = [px0 + (k - down + 1) // 2, px1 + (k - down) // 2, py0 + (k - down + 1) // 2, py1 + (k - down) // 2]
    return upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter, gain=gain)


def _flipped(w: Tensor, flip_weight: bool) -> Tensor:
    # F.conv2d correlates; a true convolution (flip_weight=False) flips the kernel.
    return w.flip([2, 3]) if not flip_weight and (w.shape[-1] > 1 or w.shape[-2] > 1) else w


def _conv(x: Tensor, w: Tensor, stride: int = 1, padding: int | Sequence[int] = 0, groups: int = 1,
          transpose: bool = False, flip_weight: bool = True) -> Tensor:
    w = _flipped(w, flip_weight)
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(x: Tensor, w: Tensor, f: Tensor | None = None, up: int = 1, down: int = 1,
                    padding: int | Sequence[int] = 0, groups: int = 1, flip_weight: bool = True) -> Tensor:
    """2-D convolution with optional up/downsampling by the FIR filter ``f``.

    Args:
        x: (B, groups * I, H, W); w: (O, I, kh, kw) in the dtype of ``x``.
        up, down: integer factors (the result is (H * up / down) for ``padding = k // 2``).
        padding: padding with respect to the upsampled image.
        flip_weight: True correlates (F.conv2d semantics), False convolves.
    Upsampling uses a strided transposed convolution followed by the filter, downsampling the filter then
    a strided convolution; 1x1 kernels resample on the cheaper side.
    """
    out_channels, in_per_group, kh, kw = w.shape
    fk = 1 if f is None else f.shape[-1]
    px0, px1, py0, py1 = _padding4(padding)
    if up > 1:
        px0 += (fk + up - 1) // 2
        px1 += (fk - up) // 2
        py0 += (fk + up - 1) // 2
        py1 += (fk - up) // 2
    if down > 1:
        px0 += (fk - down + 1) // 2
        px1 += (fk - down) // 2
        py0 += (fk - down + 1) // 2
        py1 += (fk - down) // 2
    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1])
        return _conv(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up ** 2)
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1])
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1:
        # Transposed convolution wants (I, O) per group.
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
            w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2)
        if down > 1:
            x = upfirdn2d(x, f, down=down)
        return x
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)
    x = upfirdn2d(x, f if (up > 1 or down > 1) else None, up=up, padding=[px0, px1, py0, py1], gain=up ** 2)
    x = _conv(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d(x, f, down=down)
    return x


# ---------------------------------------------------------------------------------------------------
# Bias + activation + gain + clamp
# ---------------------------------------------------------------------------------------------------
def bias_act(x: Tensor, b: Tensor | None = None, dim: int = 1, act: Activation = "linear", alpha: float | None = None,
             gain: float | None = None, clamp: float | None = None, overwrite_input: bool = False) -> Tensor:
    """``clamp(act(x + b) * gain, -clamp, clamp)``; ``b`` (C,) is broadcast along ``dim``.

    ``gain`` defaults to the activation's (sqrt 2 for lrelu/relu, 1 for linear); lrelu's slope defaults to 0.2.
    ``overwrite_input``: ``x`` is the caller's temporary and may be reused for the result when no gradient
    is recorded (the layers pass their fresh convolution outputs).
    """
    if act not in _DEFAULT_GAIN:
        raise ValueError(f"unknown activation {act!r}; valid: {', '.join(_DEFAULT_GAIN)}")
    # In place after the first out-of-place op (never on the caller's tensor) when nothing records a
    # gradient: the same values without a fresh full-size buffer per step.
    in_place = not using_reference_kernels() and not (
        torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad)))
    own = overwrite_input  # whether x may be overwritten
    if b is not None:
        b = b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
        x = x.add_(b) if in_place and own else x + b
        own = True
    if act == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE if alpha is None else float(alpha), inplace=in_place and own)
        own = True
    elif act == "relu":
        x = F.relu(x, inplace=in_place and own)
        own = True
    gain = float(_DEFAULT_GAIN[act] if gain is None else gain)
    if gain != 1:
        x = x.mul_(gain) if in_place and own else x * gain
        own = True
    if clamp is not None and clamp >= 0:
        x = x.clamp_(-clamp, clamp) if in_place and own else x.clamp(-clamp, clamp)
    return x


def normalize_2nd_moment(x: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """``x / sqrt(mean(x^2) + eps)`` along ``dim`` (unit RMS)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


# ---------------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------------
class FullyConnectedLayer(nn.Module):
    """Equalised-lr linear layer: ``act(x @ (W * lr_mul / sqrt(in)).T + b * lr_mul)``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: Activation = "linear",
                 lr_mul: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul

    def forward(self, x: Tensor) -> Tensor:
        """x (N, in) -> (N, out)."""
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)


class Conv2dLayer(nn.Module):
    """Equalised-lr convolution with optional resampling, bias, activation and clamp (discriminator layers)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: Activation = "linear", up: int = 1, down: int = 1, conv_clamp: float | None = None):
        super().__init__()
        self.activation, self.up, self.down, self.conv_clamp = activation, up, down, conv_clamp
        self.register_buffer("resample_filter", setup_filter(), persistent=False)
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.act_gain = _DEFAULT_GAIN[activation]
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: Tensor, gain: float = 1.0) -> Tensor:
        """x (B, in, H, W) -> (B, out, H * up / down, W * up / down)."""
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample(x, w.to(x.dtype), self.resample_filter, up=self.up, down=self.down,
                            padding=self.padding, flip_weight=(self.up == 1))
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp, overwrite_input=True)


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, noise: Tensor | None = None, up: int = 1,
                     padding: int = 0, resample_filter: Tensor | None = None, demodulate: bool = True,
                     flip_weight: bool = True, fused_modconv: bool = True, scale: float = 1.0,
                     bias: Tensor | None = None) -> Tensor:
    """StyleGAN2 modulated convolution.

    Args:
        x: (B, I, H, W) activations; weight: (O, I, k, k); styles: (B, I) per-sample input scales.
        noise: optional tensor broadcastable to the output, added after demodulation.
        demodulate: rescale each output channel to unit expected norm.
        fused_modconv: one grouped convolution with per-sample weights (inference) instead of scaling
            the activations before and after a shared convolution (training; same result up to rounding).
        scale, bias: only with ``fused_modconv`` and no resampling: a factor on the (demodulated) weights and a
            (O,) bias the convolution adds (folded into the convolution rather than separate passes).
    Returns:
        (B, O, H * up, W * up).
    """
    B = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if x.dtype == torch.float16 and demodulate:
        # Pre-normalise so the float16 products cannot overflow (demodulation undoes the scale).
        weight = weight * (1 / math.sqrt(in_channels * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    w = dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(B, 1, -1, 1, 1)
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
    if (scale != 1.0 or bias is not None) and not (fused_modconv and up == 1):
        raise ValueError("modulated_conv2d: scale and bias are folded into fused convolutions without resampling only")
    if demodulate and fused_modconv:
        w = w * (dcoefs * scale if scale != 1.0 else dcoefs).reshape(B, -1, 1, 1, 1)
    elif scale != 1.0:
        w = w * scale
    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(B, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), resample_filter, up=up, padding=padding, flip_weight=flip_weight)
        if demodulate and noise is not None:
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(B, -1, 1, 1))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(B, -1, 1, 1)
        if noise is not None:
            return x.add_(noise.to(x.dtype))
        return x
    # One sample needs no folding into groups; reshaping would give the batch dimension a stride of C,
    # which the CPU convolution reads as a foreign layout (a copy, and a channels-first output).
    if B > 1:
        x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    if bias is not None:
        x = F.conv2d(x, _flipped(w, flip_weight).to(x.dtype), bias.repeat(B).to(x.dtype), padding=padding, groups=B)
    else:
        x = conv2d_resample(x, w.to(x.dtype), resample_filter, up=up, padding=padding, groups=B,
                            flip_weight=flip_weight)
    if B > 1:
        x = x.reshape(B, -1, *x.shape[2:])
    if noise is not None:
        # bfloat16 activations (low_precision) take the noise in their dtype: a mixed-dtype in-place add over a
        # channels-last map measured 40x slower on CPU. Float16 keeps the official float32 noise.
        x = x.add_(noise.to(x.dtype) if x.dtype == torch.bfloat16 else noise)
    return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally upsampling 2x) + noise + bias + lrelu (+ clamp)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, conv_clamp: float | None = None):
        super().__init__()
        self.in_channels, self.out_channels, self.resolution, self.up = in_channels, out_channels, resolution, up
        self.use_noise, self.conv_clamp = use_noise, conv_clamp
        self.padding = kernel_size // 2
        self.register_buffer("resample_filter", setup_filter(), persistent=False)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: Tensor, w: Tensor, noise_mode: NoiseMode = "random", fused_modconv: bool = True,
                gain: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """x (B, in, r/up, r/up), w (B, w_dim) -> (B, out, r, r). ``generator`` feeds random noise."""
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"unknown noise_mode {noise_mode!r}; valid: random, const, none")
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], generator=generator,
                                device=x.device) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        if self.up == 1 and fused_modconv and use_optimized_kernels(x):
            return self._folded(x, styles, noise, _DEFAULT_GAIN["lrelu"] * gain, clamp)
        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=(self.up == 1),
                             fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), act="lrelu", gain=_DEFAULT_GAIN["lrelu"] * gain, clamp=clamp,
                        overwrite_input=True)

    def _folded(self, x: Tensor, styles: Tensor, noise: Tensor | None, act_gain: float,
                clamp: float | None) -> Tensor:
        """The same layer in three passes over the output instead of five (fused, no resampling): the gain is
        folded into the demodulated weights, the bias and the noise (``lrelu(y) g = lrelu(g y)``, g > 0), the
        bias into the convolution, and the clamp moved before the activation (``clamp(lrelu(y), -c, c) =
        lrelu(clamp(y, -c / slope, c))``, lrelu being monotonic). Equal to the reference up to float rounding;
        in place unless gradients are recorded (the same values either way)."""
        x = modulated_conv2d(x, self.weight, styles, padding=self.padding, fused_modconv=True, scale=act_gain,
                             bias=self.bias * act_gain)
        in_place = not torch.is_grad_enabled()
        if noise is not None:
            noise = (noise * act_gain).to(x.dtype)
            x = x.add_(noise) if in_place else x + noise
        if clamp is not None and clamp >= 0:
            x = x.clamp_(-clamp / LRELU_SLOPE, clamp) if in_place else x.clamp(-clamp / LRELU_SLOPE, clamp)
        return F.leaky_relu(x, LRELU_SLOPE, inplace=in_place)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution without demodulation: features -> output channels (the skip images)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: Tensor, w: Tensor, fused_modconv: bool = True) -> Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp, overwrite_input=True)


def resolve_fused(setting: str | bool, training: bool) -> bool:
    """fused_modconv setting ('inference_only', 'always', 'never' or a bool) -> whether to fuse now."""
    if isinstance(setting, bool):
        return setting
    if setting == "inference_only":
        return not training
    if setting in ("always", "never"):
        return setting == "always"
    raise ValueError(f"unknown fused_modconv {setting!r}; valid: inference_only, always, never")


class SynthesisBlock(nn.Module):
    """One resolution of a StyleGAN2 skip generator: [const or 2x upsampling conv0] + conv1 + ToRGB.

    ``up=2`` is the usual block (input at half resolution, skip image upsampled and accumulated);
    ``up=1`` is EG3D's "NoUp" super-resolution block (same resolution in and out, skip image not resized).
    Consumes ``num_conv + num_torgb`` ws.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, up: int = 2, use_fp16: bool = False, conv_clamp: float | None = None,
                 fused_modconv: str = "inference_only"):
        super().__init__()
        self.in_channels, self.w_dim, self.resolution, self.img_channels = in_channels, w_dim, resolution, img_channels
        self.is_last, self.up, self.use_fp16, self.fused_modconv = is_last, up, use_fp16, fused_modconv
        self.register_buffer("resample_filter", setup_filter(), persistent=False)
        self.num_conv = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=up, conv_clamp=conv_clamp)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.num_conv += 1
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_torgb = 1

    def forward(self, x: Tensor | None, img: Tensor | None, ws: Tensor, noise_mode: NoiseMode = "random",
                fused_modconv: bool | None = None, force_fp32: bool = False,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """x (B, in, r/up, r/up) or None, img (B, img_channels, r/up, r/up) or None, ws (B, num_conv+1, w_dim).

        Returns (x (B, out, r, r) in the block's dtype, img (B, img_channels, r, r) float32).
        """
        if ws.shape[1] != self.num_conv + self.num_torgb:
            raise ValueError(f"block at {self.resolution} px needs {self.num_conv + self.num_torgb} ws, got {ws.shape[1]}")
        w_iter = iter(ws.unbind(dim=1))
        fp16 = self.use_fp16 and not force_fp32 and ws.device.type == "cuda"
        # Inside low_precision() (the tools' --fast) every block computes in bfloat16 where that is fast; its
        # float32 range needs none of float16's overflow guards. The skip images stay float32.
        dtype = torch.float16 if fp16 else (low_precision_dtype(ws) or torch.float32)
        fused = resolve_fused(self.fused_modconv if fused_modconv is None else fused_modconv, self.training)
        layer_kw = dict(noise_mode=noise_mode, fused_modconv=fused, generator=generator)
        # Channels-last feature maps: oneDNN's CPU convolutions and depthwise FIR filters run 1.5-3x faster in
        # that layout (no layout-converting copies); the values are the same.
        layout = torch.channels_last if use_optimized_kernels(ws) else torch.contiguous_format
        if self.in_channels == 0:
            x = self.const.to(dtype=dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = self.conv1(x.contiguous(memory_format=layout), next(w_iter), **layer_kw)
        else:
            x = x.to(dtype=dtype, memory_format=layout)
            x = self.conv0(x, next(w_iter), **layer_kw)
            x = self.conv1(x, next(w_iter), **layer_kw)
        if img is not None and self.up > 1:
            img = upsample2d(img, self.resample_filter, up=self.up)
        y = self.torgb(x, next(w_iter), fused_modconv=fused).to(dtype=torch.float32)
        # Out of place (the official code adds in place): the same values, and safe for autograd when ``img``
        # is a view of a tensor that is still needed (EG3D's NoUp super-resolution blocks).
        img = img + y if img is not None else y
        return x, img


__all__ = [
    "is_resample_filter", "nonstandard_resample_filters",
    "Conv2dLayer", "FullyConnectedLayer", "STANDARD_FILTER_TAPS", "SynthesisBlock", "SynthesisLayer", "ToRGBLayer",
    "bias_act", "conv2d_resample", "downsample2d", "modulated_conv2d", "normalize_2nd_moment", "resolve_fused",
    "setup_filter", "upfirdn2d", "upsample2d",
]
