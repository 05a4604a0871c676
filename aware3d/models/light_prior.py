"""The prior over light codes that light-conditioned families draw from, and its files.

A light code is the 4-vector of :attr:`aware3d.models.base.Condition.light`: ``(a, d, dx, dy)`` (ambient,
diffuse, direction; the shading itself is the family's). A family with a ``light`` condition draws training
lights from a multivariate normal over these codes (ShadeGAN's ``weights/light_mvn/*.pth``). This module holds
that distribution, our file format for it (JSON, exact float32 round trip) and the safe reader of the
official ``torch.save`` format, so the shared tools (``aware3d light-prior``) can fit, convert and store a
prior without importing a family.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..io.atomic import atomic_write_bytes
from ..io.keymap import CheckpointMismatchError
from ..io.safe_unpickle import load_torch_file

LIGHT_PRIOR_FORMAT = "aware3d-light-prior"
"""The ``format`` entry of our light prior JSON."""
LIGHT_PRIOR_VERSION = 1
"""The newest version of that format this code reads."""


@dataclass(frozen=True)
class LightPrior:
    """A multivariate normal over light codes (the official ``weights/light_mvn/*.pth``)."""

    mean: Tensor
    """(4,) float32 mean light code."""
    cov: Tensor
    """(4, 4) float32 covariance (symmetric positive definite)."""

    def __post_init__(self) -> None:
        if tuple(self.mean.shape) != (4,) or tuple(self.cov.shape) != (4, 4):
            raise ValueError(f"a light prior has mean (4,) and cov (4, 4), got {tuple(self.mean.shape)} and "
                             f"{tuple(self.cov.shape)}")

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, 4) codes ``mean + cholesky(cov) @ eps``; eps is one (n, 4) standard normal draw (as ``LSampler``)."""
        eps = torch.empty(n, 4, dtype=self.mean.dtype).normal_(generator=generator)
        return self.transform(eps)

    def transform(self, eps: Tensor) -> Tensor:
        """(n, 4) standard normal draws -> (n, 4) light codes."""
        scale = torch.linalg.cholesky(self.cov.to(eps))
        return self.mean.to(eps) + (scale @ eps[..., None]).squeeze(-1)

    def save(self, path: str | Path, about: dict | None = None) -> Path:
        """Write our JSON ``{"format", "version", "mean": [4], "cov": [[4] x 4], "about": {...}}`` atomically.

        The numbers are the float32 values written exactly (as doubles), so :meth:`load` gives back the same
        tensors bit for bit; ``about`` (optional, JSON-ready) records where the prior came from."""
        data = {"format": LIGHT_PRIOR_FORMAT, "version": LIGHT_PRIOR_VERSION,
                "mean": self.mean.tolist(), "cov": self.cov.tolist()}
        if about:
            data["about"] = about
        return atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode())

    @classmethod
    def load(cls, path: str | Path) -> LightPrior:
        """Read our JSON (``.json``) or the official ``{'mean', 'cov'}`` torch file (with the restricted unpickler)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"light prior file not found: {path}")
        if path.suffix.lower() == ".json":
            return read_light_prior_json(path)
        return load_official_light_prior(path)


def read_light_prior_json(path: str | Path) -> LightPrior:
    """Our JSON prior (files without ``format`` are read too: the first version wrote only mean and cov)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}): not an aware3d light prior") from None
    if not isinstance(data, dict) or not {"mean", "cov"} <= set(data):
        raise ValueError(f"{path} is not an aware3d light prior (expected a JSON object with 'mean' and 'cov')")
    if data.get("format", LIGHT_PRIOR_FORMAT) != LIGHT_PRIOR_FORMAT:
        raise ValueError(f"{path} has format {data['format']!r}, expected {LIGHT_PRIOR_FORMAT!r}")
    if data.get("version", 1) > LIGHT_PRIOR_VERSION:
        raise ValueError(f"{path} is light prior version {data['version']}; this aware3d reads up to "
                         f"{LIGHT_PRIOR_VERSION}: upgrade aware3d")
    return LightPrior(torch.tensor(data["mean"], dtype=torch.float32), torch.tensor(data["cov"], dtype=torch.float32))


def load_official_light_prior(path: str | Path) -> LightPrior:
    """The official light prior file: a ``torch.save`` of ``{'mean': (4,), 'cov': (4, 4)}``, read safely."""
    data = load_torch_file(path)
    if not isinstance(data, dict) or not {"mean", "cov"} <= set(data):
        raise CheckpointMismatchError(f"{path} is not a light prior (expected a dict with 'mean' and 'cov')")
    return LightPrior(data["mean"].float(), data["cov"].float())


__all__ = ["LIGHT_PRIOR_FORMAT", "LIGHT_PRIOR_VERSION", "LightPrior", "load_official_light_prior",
           "read_light_prior_json"]
