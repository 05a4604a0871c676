"""Exponential moving averages of the generator's weights (kept as full generator copies)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema(G: nn.Module) -> nn.Module:
    """A frozen copy of ``G`` to hold the average."""
    return copy.deepcopy(G).eval().requires_grad_(False)


@torch.no_grad()
def update_ema(ema: nn.Module, G: nn.Module, decay: float, num_updates: int) -> float:
    """ema <- d * ema + (1 - d) * G for parameters, with d = min(decay, (1 + n) / (10 + n)); buffers copied.

    The warm-up ``(1 + n) / (10 + n)`` (torch_ema's ``use_num_updates``, what the seeds use) keeps the first
    averages from being dominated by the random initialisation. Returns the decay used.
    """
    d = min(decay, (1 + num_updates) / (10 + num_updates))
    for p_ema, p in zip(ema.parameters(), G.parameters()):
        p_ema.lerp_(p.detach(), 1 - d)
    copy_buffers(ema, G)
    return d


@torch.no_grad()
def copy_buffers(ema: nn.Module, G: nn.Module) -> None:
    """Buffers are not averaged but copied (e.g. EG3D's w_avg, itself a running mean kept by G)."""
    for b_ema, b in zip(ema.buffers(), G.buffers()):
        b_ema.copy_(b)
