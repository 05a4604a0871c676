"""ADA's controller: adapt the augmentation probability ``p`` toward a target overfitting heuristic.

The heuristic is ``r_t = E[sign(D(real))]`` over the real logits D produced since the last adjustment (+1: D is
sure every real is real, i.e. it overfits). Every ``interval`` training steps

    p <- max(p + sign(r_t - target) * batch * interval / (kimg * 1000), 0)

with ``batch`` the global batch (all processes), so ``p`` moves by at most 1 per ``kimg`` thousand real images.
The official loops bound p only from below (a p above 1 saturates every gate; it then has to come down again);
``AdaConfig.p_max`` adds an upper bound when wanted.

State for exact resume: the pipeline's ``p`` buffer and this module's two accumulators (buffers, in its state
dict); which steps adjust is decided by the trainer's step counter.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class AdaConfig:
    """Settings of the adaptive probability (the StyleGAN2-ADA / EG3D / EpiGRAF defaults)."""

    target: float = 0.6
    """Target of E[sign(D(real))]: p goes up while the heuristic is above it, down while below."""
    interval: int = 4
    """Adjust p every this many training steps."""
    kimg: float = 500.0
    """Speed: thousands of real images for p to move by 1 (the official loops use 100 when resuming from a
    pre-trained pickle)."""
    p_max: float | None = None
    """Upper bound of p; None = unbounded above, as officially."""

    def __post_init__(self) -> None:
        if self.interval < 1 or not self.kimg > 0:
            raise ValueError(f"AdaConfig needs interval >= 1 and kimg > 0, got interval={self.interval}, "
                             f"kimg={self.kimg}")
        if not -1 <= self.target <= 1:
            raise ValueError(f"AdaConfig.target is a mean of signs, in [-1, 1]; got {self.target}")
        if self.p_max is not None and not self.p_max >= 0:
            raise ValueError(f"AdaConfig.p_max must be >= 0 or None, got {self.p_max}")


def ada_adjustment(heuristic: float, target: float, batch: int, interval: int, kimg: float) -> float:
    """The change of p for one adjustment: ``sign(heuristic - target) * batch * interval / (kimg * 1000)``."""
    direction = float(heuristic > target) - float(heuristic < target)
    return direction * batch * interval / (kimg * 1000)


class AdaptiveP(nn.Module):
    """Accumulates sign(D(real)) and adjusts a pipeline's ``p`` every ``interval`` steps.

    Usage per training step: :meth:`accumulate` with D's real logits (every phase that computes them), then,
    once the step is done, :meth:`step` with the pipeline's ``p`` buffer, the number of completed steps and
    the global batch. Under DDP the accumulators are summed over processes at each adjustment, so every
    process computes the same p.
    """

    def __init__(self, config: AdaConfig = AdaConfig()) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("sign_sum", torch.zeros((), dtype=torch.float64))
        self.register_buffer("sign_count", torch.zeros((), dtype=torch.float64))

    def extra_repr(self) -> str:
        return str(self.config)

    @torch.no_grad()
    def accumulate(self, real_logits: Tensor) -> None:
        """Add the signs of D's logits on real images (any shape; each element counts once)."""
        signs = real_logits.detach().sign().to(self.sign_sum.device, torch.float64)
        self.sign_sum += signs.sum()
        self.sign_count += signs.numel()

    def _global_totals(self) -> tuple[float, float]:
        totals = torch.stack([self.sign_sum, self.sign_count])
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(totals)
        total_sum, total_count = totals.tolist()
        return total_sum, total_count

    @torch.no_grad()
    def step(self, p: Tensor, steps_done: int, batch: int) -> float | None:
        """After a training step: when ``steps_done % interval == 0``, move ``p`` (the pipeline's buffer, changed
        in place) by :func:`ada_adjustment`, clear the accumulators and return the heuristic r_t; otherwise (or
        when no real logits were seen since the last adjustment) change nothing and return None.

        Args:
            p: scalar buffer ``AugmentPipe.p``.
            steps_done: training steps completed, this one included (the official ``batch_idx`` after its
                increment).
            batch: real images per step over all processes.
        """
        cfg = self.config
        if steps_done % cfg.interval != 0:
            return None
        total_sum, total_count = self._global_totals()
        self.sign_sum.zero_()
        self.sign_count.zero_()
        if total_count == 0:
            return None
        heuristic = total_sum / total_count
        # Tensor arithmetic in p's dtype, as the official loops do (same rounding over many small steps).
        new_p = (p + ada_adjustment(heuristic, cfg.target, batch, cfg.interval, cfg.kimg)).clamp(min=0.0)
        p.copy_(new_p if cfg.p_max is None else new_p.clamp(max=cfg.p_max))
        return heuristic


__all__ = ["AdaConfig", "AdaptiveP", "ada_adjustment"]
