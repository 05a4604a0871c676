"""Kernel Inception Distance (unbiased MMD^2 with a cubic polynomial kernel) and the Inception Score.

KID (Binkowski et al. 2018), as the seeds' metrics compute it: the kernel is
``k(x, y) = (x . y / D + 1)^3`` for D-dimensional features, and on each of ``num_subsets`` random subsets
of m generated and m real vectors (drawn without replacement)::

    MMD^2_u = 1/(m(m-1)) sum_{i != j} [k(x_i, x_j) + k(y_i, y_j)] - 2/m^2 sum_{i, j} k(x_i, y_j)

KID is the mean over subsets. The Inception Score is ``exp(E_x KL(p(y|x) || p(y)))`` per split of the
generated set, reported as mean and std over splits.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def polynomial_kernel(x: Tensor, y: Tensor) -> Tensor:
    """(N, M) kernel matrix ``(x . y / D + 1)^3`` of (N, D) and (M, D) features."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x: Tensor, y: Tensor) -> float:
    """Unbiased MMD^2 between two equally sized (m, D) sets with :func:`polynomial_kernel` (float64)."""
    x, y = x.double(), y.double()
    m = x.shape[0]
    if y.shape[0] != m or m < 2:
        raise ValueError(f"mmd2_unbiased needs two sets of the same size >= 2, got {x.shape[0]} and {y.shape[0]}")
    a = polynomial_kernel(x, x) + polynomial_kernel(y, y)
    b = polynomial_kernel(x, y)
    # Same algebra as the definition: drop the diagonal of the within-set sums.
    return float((a.sum() - torch.diagonal(a).sum()) / (m * (m - 1)) - 2 * b.sum() / (m * m))


def kernel_inception_distance(gen: Tensor, real: Tensor, num_subsets: int = 100, max_subset_size: int = 1000,
                              generator: torch.Generator | None = None) -> tuple[float, float]:
    """KID between (N, D) generated and (M, D) real features.

    Args:
        num_subsets: number of random subsets averaged (the seeds: 100).
        max_subset_size: subset size cap (the seeds: 1000); the size is min(N, M, cap).
        generator: source of the subset draws (CPU).
    Returns:
        (mean, std) of the per-subset unbiased MMD^2.
    """
    m = min(gen.shape[0], real.shape[0], max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 generated and 2 real feature vectors, got {gen.shape[0]} and {real.shape[0]}")
    values = []
    for _ in range(num_subsets):
        gi = torch.randperm(gen.shape[0], generator=generator)[:m]
        ri = torch.randperm(real.shape[0], generator=generator)[:m]
        values.append(mmd2_unbiased(gen[gi], real[ri]))
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std(unbiased=False))


def inception_score(probs: Tensor, num_splits: int = 10) -> tuple[float, float]:
    """Inception Score of (N, K) class probabilities (rows sum to 1), split into ``num_splits`` parts.

    Each split scores ``exp(mean_i sum_k p_ik (log p_ik - log mean_i p_ik))``; returns (mean, std) over
    splits. A set whose rows are all equal scores 1; one-hot rows spread evenly over K classes score K.
    """
    p = probs.double()
    n = p.shape[0]
    if num_splits < 1 or n < num_splits:
        raise ValueError(f"inception_score needs at least num_splits={num_splits} rows, got {n}")
    scores = []
    for i in range(num_splits):
        part = p[i * n // num_splits:(i + 1) * n // num_splits]
        marginal = part.mean(0, keepdim=True)
        # 0 * log 0 is taken as 0 (one-hot rows), as the limit of the KL term.
        kl = torch.where(part > 0, part * (part.clamp_min(1e-300).log() - marginal.clamp_min(1e-300).log()),
                         torch.zeros_like(part))
        scores.append(math.exp(float(kl.sum(1).mean())))
    t = torch.tensor(scores, dtype=torch.float64)
    return float(t.mean()), float(t.std(unbiased=False))


__all__ = ["inception_score", "kernel_inception_distance", "mmd2_unbiased", "polynomial_kernel"]
