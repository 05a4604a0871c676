"""Exponential moving averages of the generator's weights (kept as full generator copies).

Two kinds: fixed per-step decays with torch_ema's warm-up (:func:`update_ema`, the pi-GAN-family default) and
the StyleGAN-family half-life in images with a ramp-up (:class:`HalfLifeEMA`, set by a training preset).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

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


@dataclass(frozen=True)
class HalfLifeEMA:
    """The StyleGAN-family EMA of G: a half-life in images with a ramp-up, the decay recomputed every step.

    Step ``s`` starts with ``n`` images seen (before its batch is counted) and batch ``B`` (global); then
    ``h = half_life_kimg * 1000``, capped at ``rampup * n`` when ``rampup`` is set, and the average moves to
    ``beta * ema + (1 - beta) * G`` with ``beta = 0.5 ** (B / h)``: after ``h`` images the old average weighs 0.5.
    At ``n = 0`` with a ramp-up, ``beta = 0`` (the average starts as G's weights after the first step).
    """

    half_life_kimg: float = 10.0
    """Half-life of the average in thousands of images (StyleGAN's ema_kimg; batch x 10 / 32 officially)."""
    rampup: float | None = 0.05
    """Ramp-up: the half-life is at most this fraction of the images seen so far (None: no ramp-up)."""

    def __post_init__(self):
        if not self.half_life_kimg > 0:
            raise ValueError(f"ema.half_life_kimg must be > 0 (thousands of images), got {self.half_life_kimg}")
        if self.rampup is not None and not self.rampup > 0:
            raise ValueError(f"ema.rampup must be > 0 or null (no ramp-up), got {self.rampup}")

    def describe(self) -> str:
        """One line for logs and exported metadata, e.g. ``half-life 10 kimg, ramp-up 0.05``."""
        ramp = "no ramp-up" if self.rampup is None else f"ramp-up {self.rampup:g}"
        return f"half-life {self.half_life_kimg:g} kimg, {ramp}"


HALF_LIFE_EMA_NAME = "G_ema"
"""Checkpoint name of the half-life EMA (StyleGAN's name; the fixed-decay ones are ``G_ema_<decay>``)."""


def half_life_beta(schedule: HalfLifeEMA, images_seen: int, batch_size: int) -> float:
    """Weight of the old average for a step that starts with ``images_seen`` images and shows ``batch_size``."""
    ema_nimg = schedule.half_life_kimg * 1000
    if schedule.rampup is not None:
        ema_nimg = min(ema_nimg, images_seen * schedule.rampup)
    return 0.5 ** (batch_size / max(ema_nimg, 1e-8))


@torch.no_grad()
def update_half_life_ema(ema: nn.Module, G: nn.Module, beta: float) -> None:
    """ema <- G + beta * (ema - G) for parameters (``G.lerp(ema, beta)``, so beta = 0 gives G exactly); buffers
    copied."""
    for p_ema, p in zip(ema.parameters(), G.parameters()):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    copy_buffers(ema, G)
