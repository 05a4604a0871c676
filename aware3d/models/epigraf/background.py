"""EpiGRAF's background models: the NeRF++ inverted sphere with its modulated INR, and the plane image.

Sphere (``bg_model.type = sphere``): outside the unit sphere a point is described by the unit vector to its
projection on the sphere and its inverse distance 1/r (NeRF++'s ``depth2pts_outside``), 4 coordinates. Each ray
takes ``num_steps`` inverse distances from ``start`` (1, the sphere) to 0 (infinity), jittered in training. A
small INR (INR-GAN style: Fourier features, modulated fully connected layers with their own ws, a skip output per
block) gives [r, g, b, sigma] there, composited front to back over the negated inverse distances (deltas
``start / (num_steps - 1)``, the last one 1e10). The foreground then adds ``background * final transmittance``.

Plane (``bg_model.type = plane``): three extra backbone channels form a 2-D image, resized to the image
resolution and read where each ray crosses the image (the patch window too), composited the same way.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...nn.stylegan2.layers import FullyConnectedLayer, bias_act
from ...rendering import composite, jitter_in_bins

LRELU_GAIN = math.sqrt(2)


def fourier_coefficients(max_value: float) -> Tensor:
    """(K,) the log-spaced frequencies of EpiGRAF's ``FourierEncoder1d``: ``2^k pi / T``, T = 2^ceil(log2 max)."""
    resolution = 2 ** math.ceil(math.log2(max_value))
    count = math.ceil(math.log2(resolution))
    powers = torch.tensor([2]).repeat(count).pow(torch.arange(count))
    return powers.float() * math.pi / resolution


def modulated_linear(x: Tensor, weight: Tensor, styles: Tensor, demodulate: bool = True) -> Tensor:
    """x (B, I, N) through a per-sample modulated (and demodulated) linear layer (O, I) -> (B, O, N).

    Activations are scaled by the styles (B, I) before and by the demodulation coefficients after a shared
    matmul (INR-GAN's ``style_modulate_linear``).
    """
    B = x.shape[0]
    dcoefs = None
    if demodulate:
        w = weight.unsqueeze(0) * styles.reshape(B, 1, -1)
        dcoefs = (w.square().sum(dim=2) + 1e-8).rsqrt().reshape(B, -1, 1)
    x = x * styles.reshape(B, -1, 1)
    x = (x.permute(0, 2, 1) @ weight.t()).permute(0, 2, 1)
    return x * dcoefs if demodulate else x


class ModulatedLinear(nn.Module):
    """Modulated fully connected layer + bias + lrelu (gain sqrt 2): the INR's hidden layer."""

    def __init__(self, in_features: int, out_features: int, w_dim: int):
        super().__init__()
        self.affine = FullyConnectedLayer(w_dim, in_features, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        """x (B, I, N), w (B, w_dim) -> (B, O, N)."""
        x = modulated_linear(x, self.weight, self.affine(w))
        return bias_act(x.unsqueeze(3), self.bias, act="lrelu", gain=LRELU_GAIN).squeeze(3)


class ModulatedOutput(nn.Module):
    """Modulated linear output layer without demodulation (styles / sqrt(in)) + bias: a block's skip output."""

    def __init__(self, in_features: int, out_features: int, w_dim: int):
        super().__init__()
        self.affine = FullyConnectedLayer(w_dim, in_features, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.weight_gain = 1 / math.sqrt(in_features)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        x = modulated_linear(x, self.weight, self.affine(w) * self.weight_gain, demodulate=False)
        return bias_act(x.unsqueeze(3), self.bias).squeeze(3)


class INRBlock(nn.Module):
    """First block: Fourier features of the coordinates -> conv1; later blocks: conv0 -> conv1; each + to_out."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, out_dim: int, coord_dim: int,
                 posenc_period: float):
        super().__init__()
        self.in_channels, self.coord_dim, self.posenc_period = in_channels, coord_dim, posenc_period
        if in_channels == 0:
            self.register_buffer("fourier_coefs", fourier_coefficients(posenc_period))
            conv1_in = coord_dim * 2 * self.fourier_coefs.numel()
        else:
            self.conv0 = ModulatedLinear(in_channels, out_channels, w_dim)
            conv1_in = out_channels
        self.conv1 = ModulatedLinear(conv1_in, out_channels, w_dim)
        self.to_out = ModulatedOutput(out_channels, out_dim, w_dim)
        self.num_layers = 1 if in_channels == 0 else 2

    def encode(self, coords: Tensor) -> Tensor:
        """(B, coord_dim, N) -> (B, coord_dim * 2K, N): per coordinate sin then cos of ``v * period * coef_k``."""
        B, D, N = coords.shape
        v = coords.permute(0, 2, 1).reshape(B * N, D).float() * self.posenc_period
        raw = self.fourier_coefs.view(1, 1, -1) * v.unsqueeze(2)
        feats = torch.cat([raw.sin(), raw.cos()], dim=2).view(B * N, -1)
        return feats.reshape(B, N, -1).permute(0, 2, 1)

    def forward(self, x: Tensor, out: Tensor | None, ws: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, C or coord_dim, N), ws (B, num_layers + 1, w_dim) -> (features, summed output (B, out_dim, N))."""
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.conv1(self.encode(x), next(w_iter))
        else:
            x = self.conv0(x, next(w_iter))
            x = self.conv1(x, next(w_iter))
        y = self.to_out(x, next(w_iter))
        return x, (y if out is None else out + y)


class SphereINR(nn.Module):
    """The background network: (B, 4, N) inverted-sphere coordinates and ws (B, num_ws, w_dim) -> (B, 4, N)."""

    def __init__(self, w_dim: int, num_blocks: int = 2, channel_base: int = 32768, channel_max: int = 128,
                 coord_dim: int = 4, out_dim: int = 4, posenc_period: float = 64.0):
        super().__init__()
        widths = [min(channel_base // 2 ** (i + 2), channel_max) for i in range(num_blocks)]
        self.w_dim = w_dim
        self.blocks = nn.ModuleList([
            INRBlock(widths[i - 1] if i > 0 else 0, widths[i], w_dim, out_dim, coord_dim, posenc_period)
            for i in range(num_blocks)])
        # Each block shares its output w with the next block's first layer (as the StyleGAN2 skip generator).
        self.num_ws = sum(b.num_layers for b in self.blocks) + 1

    def forward(self, coords: Tensor, ws: Tensor) -> Tensor:
        if ws.ndim != 3 or ws.shape[1] != self.num_ws:
            raise ValueError(f"the background INR needs ws (B, {self.num_ws}, {self.w_dim}), got {tuple(ws.shape)}")
        ws = ws.to(torch.float32)
        x, out, w_idx = coords, None, 0
        for block in self.blocks:
            x, out = block(x, out, ws.narrow(1, w_idx, block.num_layers + 1))
            w_idx += block.num_layers
        return out


# ------------------------------------------------------------------------------------ sphere geometry
def depth2pts_outside(ray_o: Tensor, ray_d: Tensor, depth: Tensor) -> tuple[Tensor, Tensor]:
    """NeRF++'s inverted-sphere points of rays (..., 3) at inverse distances ``depth`` (...) in [0, 1].

    Returns (points (..., 4) = (unit vector, 1/r), the distance along the ray). Rays through the sphere's centre
    or tangent to it give NaN (the rotation axis is 0/0), as in the official code.
    """
    d1 = -torch.sum(ray_d * ray_o, dim=-1) / torch.sum(ray_d * ray_d, dim=-1)
    p_mid = ray_o + d1.unsqueeze(-1) * ray_d
    p_mid_norm = torch.norm(p_mid, dim=-1)
    ray_d_cos = 1.0 / torch.norm(ray_d, dim=-1)
    d2 = torch.sqrt(1.0 - p_mid_norm * p_mid_norm) * ray_d_cos
    p_sphere = ray_o + (d1 + d2).unsqueeze(-1) * ray_d
    rot_axis = torch.cross(ray_o, p_sphere, dim=-1)
    rot_axis = rot_axis / torch.norm(rot_axis, dim=-1, keepdim=True)
    phi = torch.asin(p_mid_norm)
    theta = torch.asin(p_mid_norm * depth)
    rot_angle = (phi - theta).unsqueeze(-1)
    # Rodrigues' rotation of p_sphere about rot_axis.
    p_new = (p_sphere * torch.cos(rot_angle) + torch.cross(rot_axis, p_sphere, dim=-1) * torch.sin(rot_angle)
             + rot_axis * torch.sum(rot_axis * p_sphere, dim=-1, keepdim=True) * (1.0 - torch.cos(rot_angle)))
    p_new = p_new / torch.norm(p_new, dim=-1, keepdim=True)
    pts = torch.cat((p_new, depth.unsqueeze(-1)), dim=-1)
    depth_real = 1.0 / (depth + 1e-6) * torch.cos(theta) * ray_d_cos + d1
    return pts, depth_real


def background_points(rays_o: Tensor, rays_d: Tensor, num_steps: int, start: float = 1.0,
                      u: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Points (B, R * S, 4) and inverse distances (B, R, S) of the background samples of rays (B, R, 3).

    ``u`` (B, R, S): uniforms that jitter the inverse distances (training); None keeps the lattice.
    """
    B, R = rays_d.shape[:2]
    z = torch.linspace(start, 0.0, steps=num_steps).to(rays_d.device).repeat(B, R, 1)
    if u is not None:
        z = jitter_in_bins(z, u)
    d = rays_d / rays_d.norm(dim=2, keepdim=True)
    o = rays_o.unsqueeze(2).expand(B, R, num_steps, 3)
    pts, _ = depth2pts_outside(o, d.unsqueeze(2).expand(B, R, num_steps, 3), z)
    return pts.reshape(B, -1, 4), z


def render_sphere_background(inr: SphereINR, ws: Tensor, rays_o: Tensor, rays_d: Tensor, num_steps: int,
                             start: float = 1.0, u: Tensor | None = None, chunk_rays: int | None = None,
                             white_back: bool = False) -> Tensor:
    """(B, R, C) composited background colours of rays (B, R, 3) (EpiGRAF's ``render_spherical_bg``).

    ``u`` (B, R, S) jitters the inverse distances (training); ``chunk_rays`` bounds the rays evaluated at once
    (memory only; rays are independent); ``white_back`` adds the remaining transmittance as white (Megascans).
    """
    B, R = rays_d.shape[:2]
    step = chunk_rays or R
    out = []
    for s in range(0, R, step):
        sl = slice(s, s + step)
        pts, z = background_points(rays_o[:, sl], rays_d[:, sl], num_steps, start, None if u is None else u[:, sl])
        raw = inr(pts.permute(0, 2, 1), ws).permute(0, 2, 1).reshape(B, -1, num_steps, inr_out_dim(inr))
        res = composite(raw[..., :-1], raw[..., -1], -z, density_activation="softplus", last_delta=1e10,
                        background="white" if white_back else "black")
        out.append(res.color)
    return torch.cat(out, 1)


def inr_out_dim(inr: SphereINR) -> int:
    return inr.blocks[-1].to_out.weight.shape[0]


def plane_background(image: Tensor, rays_ndc: tuple[Tensor, Tensor], img_resolution: int) -> Tensor:
    """(B, R, C) the plane background ``image`` (B, C, h, w) seen by rays at NDC (x, y) (each (B, R), y up).

    The image is resized to ``img_resolution`` (bilinear, corners aligned) and read with the same convention
    (EpiGRAF's full render and its ``extract_patches`` window agree with this read).
    """
    bg = F.interpolate(image, size=(img_resolution, img_resolution), mode="bilinear", align_corners=True)
    x, y = rays_ndc
    grid = torch.stack([x, -y], dim=-1).unsqueeze(1)
    return F.grid_sample(bg, grid, mode="bilinear", align_corners=True).squeeze(2).permute(0, 2, 1)


__all__ = ["INRBlock", "ModulatedLinear", "ModulatedOutput", "SphereINR", "background_points", "depth2pts_outside",
           "fourier_coefficients", "modulated_linear", "plane_background",
           "render_sphere_background"]
