"""Loss terms shared by the families. Logits are raw discriminator outputs (higher = real)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def nonsaturating_g(fake_logits: Tensor) -> Tensor:
    """Generator's non-saturating logistic loss: mean softplus(-D(G(z)))."""
    return F.softplus(-fake_logits).mean()


def logistic_d(real_logits: Tensor | None, fake_logits: Tensor | None) -> Tensor:
    """Discriminator's logistic loss: mean softplus(D(fake)) + mean softplus(-D(real)); either part may be None."""
    loss = torch.zeros((), device=(real_logits if real_logits is not None else fake_logits).device)
    if fake_logits is not None:
        loss = loss + F.softplus(fake_logits).mean()
    if real_logits is not None:
        loss = loss + F.softplus(-real_logits).mean()
    return loss


def r1_penalty(real_logits: Tensor, real_images: Tensor) -> Tensor:
    """Mean over the batch of ||d sum(D(x)) / dx||^2 at the real images (Mescheder et al. 2018).

    ``real_images`` must require grad and ``real_logits`` be computed from them; the graph is kept
    (``create_graph``) so the penalty can be back-propagated. Multiply by gamma / 2 for the usual R1.
    """
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()


def top_k_logits(fake_logits: Tensor, fraction: float) -> Tensor:
    """The ``ceil(fraction * B)`` highest fake logits (top-k training: G learns from its best samples)."""
    k = max(1, int(torch.ceil(torch.tensor(fraction * fake_logits.shape[0])).item()))
    return torch.topk(fake_logits.flatten(), k).values


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Blur (B, C, H, W) with the StyleGAN-family D-input Gaussian (EG3D, EpiGRAF): taps ``2 ** -(x / sigma)^2``
    for |x| <= floor(3 sigma), normalised to sum 1, zero padding, same size out. ``sigma`` in pixels; below
    1/3 nothing happens (the images come back unchanged)."""
    half = math.floor(sigma * 3)
    if half <= 0:
        return images
    taps = torch.arange(-half, half + 1, device=images.device, dtype=torch.float32).div(sigma).square().neg().exp2()
    taps = (taps / taps.sum()).to(images.dtype)
    C = images.shape[1]
    # Separable: rows then columns (the 2-D kernel is the outer product of the taps).
    x = F.conv2d(F.pad(images, [half, half, 0, 0]), taps.reshape(1, 1, 1, -1).repeat(C, 1, 1, 1), groups=C)
    return F.conv2d(F.pad(x, [0, 0, half, half]), taps.reshape(1, 1, -1, 1).repeat(C, 1, 1, 1), groups=C)
