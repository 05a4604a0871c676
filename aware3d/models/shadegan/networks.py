"""ShadeGAN's own networks: the shading SIREN (albedo + density + normals) and the surface tracker.

The SIREN is pi-GAN's FiLM-SIREN (:mod:`aware3d.nn.siren`) whose colour branch is read as an albedo and
takes ``[view_dir (if view-conditioned), trunk features, light code (if light-conditioned)]``. Its
per-sample normal is ``-d sigma / d x_warped`` (the point after the box warp), from autograd.

The surface tracker (the official ``ResDecoder``) maps ``w / 10`` (raw frequencies then phases) and
``10 * (pitch - pi/2, yaw - pi/2)`` to a (B, 2, S, S) sigmoid map; channel 0 is the depth in [near, far].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...nn.siren import FiLMLayer, FiLMSiren


class ShadingSiren(FiLMSiren):
    """points (B, N, 3), view dirs (B, N, 3), light (B, 4), w (B, w_dim) -> albedo, raw sigma, normal."""

    def __init__(self, hidden_dim: int = 256, num_film_layers: int = 8, box_warp: float | None = 0.24,
                 view_condition: bool = True, light_condition: bool = True):
        super().__init__(hidden_dim, num_film_layers, box_warp)
        self.view_condition = view_condition
        self.light_condition = light_condition
        self.color_film = FiLMLayer(hidden_dim + 3 * view_condition + 4 * light_condition, hidden_dim)
        self.reset_parameters()

    def warped_trunk(self, x: Tensor, freq: Tensor, phase: Tensor) -> Tensor:
        """Hidden features (B, N, hidden) from already box-warped points ``x`` (B, N, 3)."""
        H = self.hidden_dim
        for i, layer in enumerate(self.film):
            x = layer(x, freq[..., i * H:(i + 1) * H], phase[..., i * H:(i + 1) * H])
        return x

    def sigma_and_normal(self, points: Tensor, freq: Tensor, phase: Tensor,
                         create_graph: bool) -> tuple[Tensor, Tensor, Tensor]:
        """Raw sigma (B, N, 1), unnormalised normal ``-d sigma/d x_warped`` (B, N, 3) and trunk features."""
        with torch.enable_grad():
            x = points * self.box_scale
            if not x.requires_grad:
                x = x.detach().requires_grad_(True)
            h = self.warped_trunk(x, freq, phase)
            sigma = self.sigma_head(h)
            (grad,) = torch.autograd.grad(sigma, x, torch.ones_like(sigma), create_graph=create_graph)
        if not create_graph:
            sigma, h = sigma.detach(), h.detach()
        return sigma, -grad, h

    def albedo(self, h: Tensor, view_dirs: Tensor, light: Tensor, freq: Tensor, phase: Tensor) -> Tensor:
        """Albedo (B, N, 3) in [0, 1] from trunk features; ``light`` (B, 4) is the same for all samples of a row."""
        parts = [view_dirs] if self.view_condition else []
        parts.append(h)
        if self.light_condition:
            parts.append(light[:, None, :].expand(-1, h.shape[1], -1).to(h.dtype))
        H = self.hidden_dim
        c = self.color_film(torch.cat(parts, dim=-1), freq[..., -H:], phase[..., -H:])
        return torch.sigmoid(self.color_head(c))

    def shade_forward(self, points: Tensor, view_dirs: Tensor, light: Tensor, w: Tensor, *,
                      create_graph: bool | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """albedo (B, N, 3) in [0, 1], raw sigma (B, N), normal (B, N, 3) (not normalised, world axes).

        ``create_graph`` (default: whether grad is enabled) keeps the normals differentiable (training)."""
        create_graph = torch.is_grad_enabled() if create_graph is None else create_graph
        freq, phase = self.split_w(w)
        sigma, normal, h = self.sigma_and_normal(points, freq, phase, create_graph)
        return self.albedo(h, view_dirs, light, freq, phase), sigma.squeeze(-1), normal


class ResBlockUp(nn.Module):
    """GN, ReLU, nearest 2x, conv3x3, GN, ReLU, conv3x3, plus a 1x1 shortcut of the up-sampled input."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.gn1 = nn.GroupNorm(cin // 8, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.gn2 = nn.GroupNorm(cout // 8, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.conv_sc = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = F.interpolate(F.relu(self.gn1(x)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.gn2(self.conv1(h))))
        return h + self.conv_sc(F.interpolate(x, scale_factor=2, mode="nearest"))


class SurfaceTracker(nn.Module):
    """The official ``ResDecoder(zdim=w_dim, cout=2, size)``: (w / 10, scaled pose) -> (B, 2, size, size) in (0, 1).

    ``network`` keeps the official Sequential's indices (so the state_dict keys are the official ones):
    0 conv1x1, 2 deconv 1->4, 4 conv3x3, 6 deconv 4->8, 7 GN, 9 conv3x3, then one ResBlockUp per doubling,
    GN, and a 5x5 conv to 2 channels; ReLUs between, a sigmoid at the end.
    """

    def __init__(self, w_dim: int, size: int = 128, channels: int = 256):
        super().__init__()
        blocks = round(math.log2(size / 8))
        if size < 8 or 8 * 2 ** blocks != size:
            raise ValueError(f"tracker_size must be a power of two of at least 8, got {size}")
        c = channels
        self.size = size
        self.linear = nn.Linear(w_dim, c)
        layers: list[nn.Module] = [
            nn.Conv2d(c + 2, c, 1, bias=False), nn.ReLU(),
            nn.ConvTranspose2d(c, c, 4, 1, 0, bias=False), nn.ReLU(),
            nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.ReLU(),
            nn.ConvTranspose2d(c, c, 4, 2, 1, bias=False), nn.GroupNorm(c // 4, c), nn.ReLU(),
            nn.Conv2d(c, c, 3, 1, 1, bias=False),
        ]
        for _ in range(blocks):
            layers.append(ResBlockUp(c, c // 2))
            c //= 2
        layers += [nn.GroupNorm(max(1, c // 4), c), nn.ReLU(), nn.Conv2d(c, 2, 5, 1, 2, bias=False), nn.Sigmoid()]
        self.network = nn.Sequential(*layers)

    def forward(self, w: Tensor, pitch: Tensor, yaw: Tensor) -> Tensor:
        """w (B, w_dim) raw mapping output (frequencies before ``15 f + 30``, then phases); pitch, yaw (B,)
        radians. Returns (B, 2, size, size) in (0, 1)."""
        pose = (torch.stack([pitch, yaw], -1).to(w.dtype) - math.pi / 2) * 10
        h = torch.cat([self.linear(w / 10), pose], -1)
        return self.network(h[:, :, None, None])
