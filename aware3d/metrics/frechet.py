"""Feature statistics and the Fréchet distance between two Gaussians (FID).

FID = ``|mu1 - mu2|^2 + tr(C1) + tr(C2) - 2 tr((C1 C2)^(1/2))`` for feature means ``mu`` (D,) and
covariances ``C`` (D, D). Everything is float64. The covariance is the population one (divided by N),
as StyleGAN/EG3D's metrics compute it (pytorch-fid divides by N - 1; the difference is O(1/N)).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _sqrt_psd(matrix: Tensor) -> Tensor:
    """Symmetric square root of a symmetric positive semi-definite (D, D) matrix (negative eigenvalues,
    which only rounding produces, are treated as 0)."""
    evals, evecs = torch.linalg.eigh(matrix)
    return (evecs * evals.clamp_min(0).sqrt()) @ evecs.T


def trace_sqrt_product(cov1: Tensor, cov2: Tensor) -> Tensor:
    """``tr((C1 C2)^(1/2))`` for PSD C1, C2 (float64 scalar).

    C1 C2 is not symmetric, but it is similar to ``S C2 S`` with ``S = C1^(1/2)``, which is symmetric PSD;
    its eigenvalues are real and non-negative, so the trace of the square root is the sum of their square
    roots. This avoids the general (Schur-based) matrix square root and its spurious imaginary parts.
    """
    s1 = _sqrt_psd(cov1)
    m = s1 @ cov2 @ s1
    m = 0.5 * (m + m.T)  # remove the rounding asymmetry before the symmetric eigen-solver
    return torch.linalg.eigvalsh(m).clamp_min(0).sqrt().sum()


def frechet_distance(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """Fréchet distance between N(mu1, C1) and N(mu2, C2).

    Args:
        mu1, mu2: (D,) means.
        cov1, cov2: (D, D) symmetric PSD covariances.
    Returns:
        The distance (>= 0 up to rounding), computed in float64.
    """
    mu1, mu2, cov1, cov2 = (torch.as_tensor(x).double().cpu() for x in (mu1, mu2, cov1, cov2))
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (mu1.shape[0], mu1.shape[0]):
        raise ValueError(f"frechet_distance needs means (D,) and covariances (D, D) of one D; got "
                         f"{tuple(mu1.shape)}, {tuple(cov1.shape)}, {tuple(mu2.shape)}, {tuple(cov2.shape)}")
    diff = mu1 - mu2
    value = diff.dot(diff) + torch.trace(cov1) + torch.trace(cov2) - 2 * trace_sqrt_product(cov1, cov2)
    return float(value)


class FeatureStats:
    """Running float64 statistics of feature vectors: count, sum, sum of outer products, and (optionally)
    every vector, for KID and the Inception Score.

    ``max_items`` caps how many vectors are taken (later ones are dropped), as the seeds' protocols do.
    """

    def __init__(self, capture_all: bool = False, max_items: int | None = None) -> None:
        self.capture_all = capture_all
        self.max_items = max_items
        self.count = 0
        self._sum: Tensor | None = None
        self._outer: Tensor | None = None
        self._all: list[Tensor] = []

    @property
    def is_full(self) -> bool:
        return self.max_items is not None and self.count >= self.max_items

    def append(self, features: Tensor) -> None:
        """Add (N, D) vectors (any float dtype/device; stored on the CPU)."""
        if features.ndim != 2:
            raise ValueError(f"features must be (N, D), got {tuple(features.shape)}")
        if self.max_items is not None:
            features = features[: max(self.max_items - self.count, 0)]
        if features.shape[0] == 0:
            return
        x = features.detach().cpu().double()
        if self._sum is None:
            self._sum = torch.zeros(x.shape[1], dtype=torch.float64)
            self._outer = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64)
        elif x.shape[1] != self._sum.shape[0]:
            raise ValueError(f"feature size changed from {self._sum.shape[0]} to {x.shape[1]}")
        self._sum += x.sum(0)
        self._outer += x.T @ x
        if self.capture_all:
            self._all.append(features.detach().cpu().float())
        self.count += x.shape[0]

    def mean_cov(self) -> tuple[Tensor, Tensor]:
        """(D,) mean and (D, D) population covariance, float64."""
        if self.count == 0 or self._sum is None:
            raise ValueError("no features were collected")
        mean = self._sum / self.count
        cov = self._outer / self.count - torch.outer(mean, mean)
        return mean, cov

    def state(self) -> dict[str, Tensor]:
        """Tensors that rebuild these statistics (for the cache): count, sum, outer, and features if kept."""
        if self._sum is None or self._outer is None:
            raise ValueError("no features were collected")
        out = {"count": torch.tensor(self.count, dtype=torch.int64), "sum": self._sum, "outer": self._outer}
        if self.capture_all:
            out["features"] = self.all().contiguous()
        return out

    @classmethod
    def from_state(cls, state: dict[str, Tensor]) -> "FeatureStats":
        """Inverse of :meth:`state` (``capture_all`` when the state holds the features)."""
        stats = cls(capture_all="features" in state)
        stats.count = int(state["count"])
        stats._sum = state["sum"].double()
        stats._outer = state["outer"].double()
        if "features" in state:
            stats._all = [state["features"].float()]
        return stats

    def all(self) -> Tensor:
        """(N, D) float32 every collected vector (needs ``capture_all``)."""
        if not self.capture_all:
            raise ValueError("FeatureStats was created without capture_all")
        if not self._all:
            raise ValueError("no features were collected")
        return torch.cat(self._all)


def mean_cov(features: Tensor) -> tuple[Tensor, Tensor]:
    """Float64 mean (D,) and population covariance (D, D) of (N, D) features."""
    stats = FeatureStats()
    stats.append(features)
    return stats.mean_cov()


__all__ = ["FeatureStats", "frechet_distance", "mean_cov", "trace_sqrt_product"]
