"""Coefficient statistics for whitened codes (CGOF's latent is whitened 3DMM coefficients).

Per group (identity, expression, texture, lighting, pose) the mean ``m``, the standard deviations, the
lower Cholesky factor ``L`` of the covariance (``cov = L L^T``) and ``L^-1``; a code ``z ~ N(0, I)`` maps
to coefficients ``c = m + L z`` (:meth:`CoefficientStatistics.unwhiten`) and back
(``z = L^-1 (c - m)``, :meth:`CoefficientStatistics.whiten`), so random codes follow the fitted
distribution with its correlations.

Files: ``<name>.safetensors`` (tensors ``<group>.mean``, ``.std``, ``.cholesky``, ``.cholesky_inverse``,
float64) beside ``<name>.json`` (format, version, group sizes, sample count, jitter).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import Tensor

from ..io.atomic import atomic_write_bytes
from .layout import COEFFICIENT_GROUPS as _GROUPS
from .model import FaceCoefficients

__all__ = ["CoefficientStatistics", "GroupStatistics", "STATISTICS_FORMAT"]

STATISTICS_FORMAT = "aware3d-face-coefficient-statistics"
_VERSION = 1
_FIELDS = ("mean", "std", "cholesky", "cholesky_inverse")


@dataclass(frozen=True)
class GroupStatistics:
    """The distribution of one coefficient group (D dims), float64."""

    mean: Tensor
    """(D,) mean."""
    std: Tensor
    """(D,) standard deviations (unbiased, without the jitter)."""
    cholesky: Tensor
    """(D, D) lower-triangular L with ``L L^T`` = covariance (+ jitter)."""
    cholesky_inverse: Tensor
    """(D, D) L^-1 (lower-triangular)."""

    @staticmethod
    def fit(samples: Tensor, jitter: float) -> "GroupStatistics":
        """Fit to (N, D) samples, N >= 2; ``jitter`` times the mean variance (or times 1 for a constant
        group) is added to the diagonal so L exists for rank-deficient tables."""
        x = samples.detach().to(torch.float64)
        if x.shape[0] < 2:
            raise ValueError(f"fitting coefficient statistics needs at least 2 samples, got {x.shape[0]}")
        mean = x.mean(0)
        centred = x - mean
        cov = centred.T @ centred / (x.shape[0] - 1)
        level = float(cov.diagonal().mean())
        eps = jitter * (level if level > 0 else 1.0)
        L = torch.linalg.cholesky(cov + eps * torch.eye(cov.shape[0], dtype=torch.float64))
        eye = torch.eye(cov.shape[0], dtype=torch.float64)
        L_inv = torch.linalg.solve_triangular(L, eye, upper=False)
        # contiguous, as loaded from a file, so whitening rounds identically before and after a save
        return GroupStatistics(mean, cov.diagonal().sqrt().contiguous(), L.contiguous(), L_inv.contiguous())

    def whiten(self, c: Tensor) -> Tensor:
        """(B, D) coefficients -> codes ``L^-1 (c - mean)``, in c's dtype and device."""
        m, L_inv = self.mean.to(c), self.cholesky_inverse.to(c)
        return (c - m) @ L_inv.T

    def unwhiten(self, z: Tensor) -> Tensor:
        """(B, D) codes -> coefficients ``mean + L z``, in z's dtype and device."""
        return self.mean.to(z) + z @ self.cholesky.to(z).T


@dataclass(frozen=True)
class CoefficientStatistics:
    """Per-group statistics of a coefficient table (every group of :class:`FaceCoefficients`)."""

    groups: dict[str, GroupStatistics]
    """Group name (identity, expression, texture, lighting, pose) -> its statistics."""
    num_samples: int
    """Rows of the table it was fitted on (0 for :meth:`standard`)."""
    jitter: float = 0.0
    """Relative diagonal jitter used in the fit."""

    def __post_init__(self) -> None:
        for name, dim in _GROUPS:
            g = self.groups.get(name)
            if g is None:
                raise ValueError(f"CoefficientStatistics lacks the group '{name}'")
            if g.mean.shape != (dim,) or g.cholesky.shape != (dim, dim) or g.cholesky_inverse.shape != (dim, dim):
                raise ValueError(f"CoefficientStatistics group '{name}' must be {dim}-dimensional, got mean "
                                 f"{tuple(g.mean.shape)}, cholesky {tuple(g.cholesky.shape)}")

    @staticmethod
    def fit(table: FaceCoefficients | Tensor, jitter: float = 1e-6) -> "CoefficientStatistics":
        """Fit to N coefficient rows: a :class:`FaceCoefficients` or an (N, 257) Deep3DFaceRecon table."""
        c = table if isinstance(table, FaceCoefficients) else FaceCoefficients.from_vector(table)
        groups = {name: GroupStatistics.fit(getattr(c, name), jitter) for name, _ in _GROUPS}
        return CoefficientStatistics(groups, c.batch_size, jitter)

    @staticmethod
    def standard() -> "CoefficientStatistics":
        """Mean 0, identity covariance: codes are the coefficients themselves."""
        groups = {}
        for name, dim in _GROUPS:
            eye = torch.eye(dim, dtype=torch.float64)
            groups[name] = GroupStatistics(torch.zeros(dim, dtype=torch.float64), torch.ones(dim, dtype=torch.float64),
                                           eye, eye.clone())
        return CoefficientStatistics(groups, 0)

    def whiten(self, coefficients: FaceCoefficients) -> FaceCoefficients:
        """Coefficients -> whitened codes, group by group."""
        return FaceCoefficients(**{n: self.groups[n].whiten(getattr(coefficients, n)) for n, _ in _GROUPS})

    def unwhiten(self, codes: FaceCoefficients) -> FaceCoefficients:
        """Whitened codes -> coefficients, group by group."""
        return FaceCoefficients(**{n: self.groups[n].unwhiten(getattr(codes, n)) for n, _ in _GROUPS})

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (a .safetensors file) and its .json sidecar, each atomically. Returns ``path``."""
        path = Path(path)
        if path.suffix != ".safetensors":
            raise ValueError(f"coefficient statistics are saved as a .safetensors file, got {path}")
        tensors = {f"{n}.{f}": getattr(g, f).detach().cpu().to(torch.float64).contiguous()
                   for n, g in self.groups.items() for f in _FIELDS}
        meta = {"format": STATISTICS_FORMAT, "version": _VERSION, "num_samples": self.num_samples,
                "jitter": self.jitter, "groups": {n: d for n, d in _GROUPS}}
        atomic_write_bytes(path, save_safetensors_bytes(tensors, metadata={"format": STATISTICS_FORMAT}))
        atomic_write_bytes(path.with_suffix(".json"), json.dumps(meta, indent=2).encode())
        return path

    @staticmethod
    def load(path: str | os.PathLike) -> "CoefficientStatistics":
        """Read what :meth:`save` wrote; clear errors for a missing file, another format or missing tensors."""
        path = Path(path)
        sidecar = path.with_suffix(".json")
        for f in (path, sidecar):
            if not f.is_file():
                raise FileNotFoundError(f"coefficient statistics file {f} not found (written by "
                                        "CoefficientStatistics.save as <name>.safetensors + <name>.json)")
        meta = json.loads(sidecar.read_text())
        if meta.get("format") != STATISTICS_FORMAT or meta.get("version") != _VERSION:
            raise ValueError(f"{sidecar} is not {STATISTICS_FORMAT} version {_VERSION} "
                             f"(format {meta.get('format')!r}, version {meta.get('version')!r})")
        tensors = load_safetensors_bytes(path.read_bytes())
        missing = [f"{n}.{f}" for n, _ in _GROUPS for f in _FIELDS if f"{n}.{f}" not in tensors]
        if missing:
            raise ValueError(f"{path} lacks the tensors {', '.join(missing)}")
        groups = {n: GroupStatistics(*(tensors[f"{n}.{f}"] for f in _FIELDS)) for n, _ in _GROUPS}
        return CoefficientStatistics(groups, int(meta["num_samples"]), float(meta["jitter"]))
