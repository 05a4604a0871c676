"""Loss terms shared by the families. Logits are raw discriminator outputs (higher = real)."""

from __future__ import annotations

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
