"""pi-GAN's networks: the mapping network z -> (frequencies, phases) and the FiLM-conditioned SIREN field.

The SIREN computes, for world points p (B, N, 3) and per-sample FiLM parameters,
``x_0 = p * 2 / box_warp``, ``x_{i+1} = sin(freq_i * (W_i x_i + b_i) + phase_i)``, density
``sigma = W_s x_L + b_s`` (raw, no activation) and colour ``sigmoid(W_c sin(freq_c * (W x' + b) + phase_c))``
with ``x' = [view_dir, x_L]``. ``freq = 15 * f_raw + 30`` (the official scaling), slices of 256 per layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .kernels import low_precision_dtype, use_optimized_kernels


@torch.no_grad()
def mean_mapping_output(mapping: nn.Module, z_dim: int, num_samples: int, seed: int = 0, batch: int = 2500,
                        device: torch.device | str = "cpu") -> Tensor:
    """(1, out) mean of ``mapping(z)`` over ``num_samples`` z ~ N(0, I) (z_dim each) drawn from a CPU generator
    seeded with ``seed``, in chunks of ``batch`` on ``device``, accumulated in float64: the truncation
    centre ``w_avg`` of the SIREN families (a stored one keeps renders reproducible; the official code
    re-draws it at every render)."""
    g = torch.Generator().manual_seed(seed)
    total: Tensor | float = 0.0
    for s in range(0, num_samples, batch):
        z = torch.randn(min(batch, num_samples - s), z_dim, generator=g).to(device)
        total = total + mapping(z).double().sum(0, keepdim=True).cpu()
    return total / num_samples



@torch.no_grad()
def refresh_w_avg(w_avg: Tensor, mapping: nn.Module, z_dim: int, num_samples: int, seed: int = 0,
                  batch: int = 2500) -> Tensor:
    """Overwrite the (1, out) buffer ``w_avg`` in place with :func:`mean_mapping_output` (on its device, in its
    dtype) and return it: the ``update_w_avg`` of every SIREN family."""
    mean = mean_mapping_output(mapping, z_dim, num_samples, seed, batch, w_avg.device)
    return w_avg.copy_(mean.to(w_avg))

class MappingNetwork(nn.Module):
    """z (B, z_dim) -> w (B, 2 * n_film * hidden): raw frequencies then phase shifts (pi-GAN's w space)."""

    def __init__(self, z_dim: int, hidden_dim: int, out_dim: int, hidden_layers: int):
        super().__init__()
        dims = [z_dim] + [hidden_dim] * hidden_layers
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])] + [nn.Linear(dims[-1], out_dim)])
        for layer in self.layers:
            nn.init.kaiming_normal_(layer.weight, a=0.2, mode="fan_in", nonlinearity="leaky_relu")
        with torch.no_grad():
            # The official recipe shrinks the last layer so initial frequencies stay near 30.
            self.layers[-1].weight.mul_(0.25)

    def forward(self, z: Tensor) -> Tensor:
        x = z
        for layer in self.layers[:-1]:
            x = F.leaky_relu(layer(x), 0.2)
        return self.layers[-1](x)


class FiLMLayer(nn.Module):
    """``sin(freq * (W x + b) + phase)`` with per-latent freq/phase of shape (B, out)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)

    def forward(self, x: Tensor, freq: Tensor, phase: Tensor) -> Tensor:
        """x (B, N, in), freq and phase (B, out) -> (B, N, out)."""
        recording = torch.is_grad_enabled() and (x.requires_grad or self.linear.weight.requires_grad
                                                 or freq.requires_grad or phase.requires_grad)
        if use_optimized_kernels(x):
            # sin((f W) x + (f b + p)): the FiLM scale folded into a per-sample weight (B, in, out): one
            # batched GEMM and a sine instead of a GEMM and three elementwise passes over (B, N, out) (and,
            # with gradients, their backward passes). Same function, float32 rounding apart.
            w = freq.unsqueeze(1) * self.linear.weight.t().unsqueeze(0)
            b = (freq * self.linear.bias + phase).unsqueeze(1)
            z = torch.baddbmm(b, x, w)
            return z.sin() if recording else z.sin_()
        h = self.linear(x)
        if not recording:
            # Same arithmetic as below, in place: saves two full-size temporaries at inference.
            return h.mul_(freq.unsqueeze(1)).add_(phase.unsqueeze(1)).sin_()
        return torch.sin(freq.unsqueeze(1) * h + phase.unsqueeze(1))


class FiLMSiren(nn.Module):
    """The pi-GAN field: world points + view directions + FiLM parameters -> (rgb in [0,1], raw sigma)."""

    def __init__(self, hidden_dim: int = 256, num_film_layers: int = 8, box_warp: float | None = 0.24):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.num_film_layers = num_film_layers
        self.box_scale = 1.0 if box_warp is None else 2.0 / box_warp
        self.film = nn.ModuleList([FiLMLayer(3 if i == 0 else hidden_dim, hidden_dim) for i in range(num_film_layers)])
        self.sigma_head = nn.Linear(hidden_dim, 1)
        self.color_film = FiLMLayer(hidden_dim + 3, hidden_dim)
        self.color_head = nn.Linear(hidden_dim, 3)
        self.reset_parameters()

    @property
    def w_dim(self) -> int:
        """Size of the FiLM code: (film layers + colour layer) x hidden, for frequencies and for phases."""
        return 2 * (self.num_film_layers + 1) * self.hidden_dim

    def reset_parameters(self) -> None:
        """The official SIREN init: weights U(+-sqrt(6/fan_in)/25), first layer U(+-1/fan_in); default biases."""
        with torch.no_grad():
            for lin in [m.linear for m in self.film[1:]] + [self.sigma_head, self.color_film.linear, self.color_head]:
                bound = math.sqrt(6 / lin.weight.shape[1]) / 25
                lin.weight.uniform_(-bound, bound)
            first = self.film[0].linear
            first.weight.uniform_(-1 / first.weight.shape[1], 1 / first.weight.shape[1])

    def split_w(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """w (B, w_dim) -> (frequencies scaled as 15 f + 30, phases), each (B, w_dim / 2)."""
        half = w.shape[-1] // 2
        return w[..., :half] * 15 + 30, w[..., half:]

    def trunk(self, points: Tensor, freq: Tensor, phase: Tensor) -> Tensor:
        """Hidden features (B, N, hidden) of the density trunk."""
        x = points * self.box_scale
        H = self.hidden_dim
        for i, layer in enumerate(self.film):
            x = layer(x, freq[..., i * H:(i + 1) * H], phase[..., i * H:(i + 1) * H])
        return x

    def forward(self, points: Tensor, view_dirs: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
        """points, view_dirs: (B, N, 3); w: (B, w_dim). Returns rgb (B, N, 3) in [0, 1], sigma (B, N)."""
        freq, phase = self.split_w(w)
        x = self.trunk(points, freq, phase)
        sigma = self.sigma_head(x)
        H = self.hidden_dim
        c = self.color_film(torch.cat([view_dirs, x], dim=-1), freq[..., -H:], phase[..., -H:])
        rgb = torch.sigmoid(self.color_head(c))
        return rgb, sigma.squeeze(-1)

    def density(self, points: Tensor, w: Tensor) -> Tensor:
        """Raw density (B, N) only (skips the colour branch)."""
        freq, phase = self.split_w(w)
        return self.sigma_head(self.trunk(points, freq, phase)).squeeze(-1)

    @torch.no_grad()
    def fold(self, w: Tensor) -> "FoldedSiren":
        """Inference-only form of the field for latents w (B, w_dim); see :class:`FoldedSiren`."""
        freq, phase = self.split_w(w)
        H = self.hidden_dim
        layers = []
        for i, layer in enumerate([*self.film, self.color_film]):
            f, p = (freq[..., -H:], phase[..., -H:]) if i == len(self.film) else (freq[..., i * H:(i + 1) * H], phase[..., i * H:(i + 1) * H])
            weight = layer.linear.weight
            if i == 0:
                weight = weight * self.box_scale  # fold the box warp into the first layer too
            layers.append(((f[:, :, None] * weight).transpose(1, 2).contiguous(), (f * layer.linear.bias + p)[:, None]))
        return FoldedSiren(layers, self.sigma_head, self.color_head, dtype=low_precision_dtype(w) or w.dtype)


class FoldedSiren:
    """The SIREN with each latent's FiLM frequencies and phases folded into its layer weights.

    ``sin(f * (W x + b) + p) = sin((f W) x + (f b + p))``: one batched GEMM and an in-place sine per layer
    instead of the reference's GEMM and three elementwise passes (on CPU :class:`FiLMLayer` folds the same
    way per call; this object folds once per render). Same function, different rounding (about 1e-6
    relative); the tools use it for speed.

    Two more things make it run near the GEMM ceiling on CPU:

    * the activations ping-pong between two buffers kept for the lifetime of this object (one render):
      a fresh multi-megabyte tensor per layer comes from ``mmap`` and costs page faults on every touch,
      which was about a third of the time;
    * the colour layer's weight is split into its view-direction rows and its feature rows, so
      ``[dirs, x] @ W`` becomes ``dirs @ W_d + x @ W_x`` without copying x into a concatenation.

    With ``dtype=torch.bfloat16`` (:func:`~aware3d.nn.kernels.low_precision`, the tools' ``--fast``) every
    layer after the first runs in bfloat16 (float32 accumulation in the matrix units); the first layer,
    whose folded weights are the largest (its sine arguments reach the hundreds), and the outputs stay
    float32. Measured on the pi-GAN CelebA initialisation: colour 2e-4 mean absolute, density 2 % relative.
    """

    def __init__(self, layers: list[tuple[Tensor, Tensor]], sigma_head: nn.Linear, color_head: nn.Linear,
                 dtype: torch.dtype = torch.float32):
        self.first = layers[0]
        self.layers = [(wt.to(dtype), bias.to(dtype)) for wt, bias in layers[1:-1]]
        color_weight, color_bias = (v.to(dtype) for v in layers[-1])
        self.color_bias = color_bias
        self.color_weight_dirs = color_weight[:, :3].contiguous()  # (B, 3, H): rows of the view direction
        self.color_weight_x = color_weight[:, 3:].contiguous()  # (B, H, H): rows of the trunk features
        self.sigma_head = [v.to(dtype) for v in (sigma_head.weight, sigma_head.bias)]
        self.color_head = [v.to(dtype) for v in (color_head.weight, color_head.bias)]
        self.dtype = dtype
        self._buffers: tuple[Tensor, Tensor] | None = None

    def _workspace(self, like: Tensor, width: int) -> tuple[Tensor, Tensor]:
        B, N, _ = like.shape
        bufs = self._buffers
        if bufs is None or bufs[0].shape != (B, N, width) or bufs[0].device != like.device:
            bufs = tuple(torch.empty(B, N, width, dtype=self.dtype, device=like.device) for _ in range(2))
            self._buffers = bufs  # reused by the following chunks of the same render (same N except the last)
        return bufs

    @torch.no_grad()
    def __call__(self, points: Tensor, view_dirs: Tensor) -> tuple[Tensor, Tensor]:
        width = self.color_weight_x.shape[-1]
        a, b = self._workspace(points, width)
        weight, bias = self.first
        if self.dtype == points.dtype:
            x = torch.baddbmm(bias, points, weight, out=a).sin_()
        else:
            x = a.copy_(torch.baddbmm(bias, points, weight).sin_())
        for weight, bias in self.layers:
            out = a if x is not a else b
            x = torch.baddbmm(bias, x, weight, out=out).sin_()
        # Returned tensors are fresh (never views of the workspace, which the next chunk overwrites).
        sigma = F.linear(x, *self.sigma_head).squeeze(-1).to(points.dtype)
        c = a if x is not a else b
        torch.baddbmm(self.color_bias, view_dirs.to(self.dtype), self.color_weight_dirs, out=c)
        c.baddbmm_(x, self.color_weight_x).sin_()
        return torch.sigmoid(F.linear(c, *self.color_head).to(points.dtype)), sigma
