"""What a family declares for inversion: the latent it is rendered from, as named groups to optimise.

A family's ``Generator3D.inversion_space()`` returns a :class:`LatentSpace`: groups (e.g. pi-GAN's FiLM
``frequencies`` and ``phases``, EG3D's shared ``w`` and per-layer ``w_plus`` offsets, ShadeGAN's ``light``), each
with the value the search starts from (the family's mean latent) and its spread over the prior, and ``compose``,
which turns group values into what ``G.synthesis`` takes (a :class:`SynthesisLatent`: ``w`` and a condition).

The shared optimiser works in *spread units*: a group's value is ``start + offset * scale``, so one learning rate,
one perturbation size and one prior penalty (``mean(offset^2)``) fit every group of every family. ``stage`` says
when a group is freed: 0 from the start (with the camera), 1 in the refinement (e.g. W+ offsets after a shared w).

The helpers below build the groups two kinds of family share: FiLM-SIREN codes (:func:`film_groups`) and StyleGAN
w / w+ (:func:`style_groups`); a family calls the ones that fit it. Nothing here names a family.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, Mapping

import torch
from torch import Tensor

from ..models.base import Condition


@dataclass(frozen=True)
class LatentGroup:
    """One named part of a family's latent."""

    name: str
    """Key in the latent file and the optimiser (e.g. ``frequencies``, ``w_plus``, ``light``)."""
    start: Tensor
    """(1, ...) the value the search starts from (the family's mean latent)."""
    scale: Tensor
    """Broadcastable to ``start``, positive: the group's spread over the prior (per-element std); offsets,
    perturbations and the prior penalty are in these units."""
    stage: int = 0
    """When the optimiser frees the group: 0 from the start, 1 in the refinement steps."""


@dataclass(frozen=True)
class SynthesisLatent:
    """What ``G.synthesis`` renders: the latent and the condition (one row, or one per camera)."""

    w: Tensor
    """The family's synthesis latent: (B, w_dim) for FiLM-SIREN families, (B, num_ws, w_dim) for StyleGAN ones."""
    condition: Condition | None = None
    """The condition besides w (e.g. ShadeGAN's light), or None."""

    def detach(self) -> "SynthesisLatent":
        c = self.condition
        condition = None if c is None else Condition(*(None if v is None else v.detach()
                                                       for v in (c.light, c.face, c.class_label)))
        return SynthesisLatent(self.w.detach(), condition)


@dataclass(frozen=True)
class LatentSpace:
    """A family's latent as groups to optimise, and how their values become a :class:`SynthesisLatent`."""

    groups: tuple[LatentGroup, ...]
    """The groups, in the order the latent file lists them."""
    compose: Callable[[Mapping[str, Tensor]], SynthesisLatent]
    """Group values by name ((B, ...) each, B rows or 1) -> the latent and condition ``synthesis`` takes."""

    def __post_init__(self) -> None:
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"a latent space needs uniquely named groups, got {names}")
        for g in self.groups:
            if g.start.shape[0] != 1 or not bool((g.scale > 0).all()):
                raise ValueError(f"latent group {g.name!r}: start must have one row and scale must be positive")

    @property
    def stages(self) -> tuple[int, ...]:
        """The distinct stages of the groups, in order."""
        return tuple(sorted({g.stage for g in self.groups}))

    def values(self, offsets: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Group values ``start + offset * scale`` for offsets in spread units (a missing group: its start)."""
        return {g.name: g.start + offsets[g.name] * g.scale if g.name in offsets else g.start for g in self.groups}

    def zero_offsets(self, batch: int = 1) -> dict[str, Tensor]:
        """Offsets of zero (every group at its start), ``batch`` rows each."""
        return {g.name: torch.zeros(batch, *g.start.shape[1:], device=g.start.device, dtype=g.start.dtype)
                for g in self.groups}

    def latent(self, offsets: Mapping[str, Tensor]) -> SynthesisLatent:
        """The synthesis latent of offsets in spread units."""
        return self.compose(self.values(offsets))

    def holding(self, fixed: Condition) -> "LatentSpace":
        """This space with ``fixed`` joined to every composed latent's condition (its set fields win): a condition
        the picture fixes and the optimiser does not move, e.g. the face code a face regressor reads from it."""
        def compose(values: Mapping[str, Tensor]) -> SynthesisLatent:
            latent = self.compose(values)
            own = latent.condition or Condition()
            joined = {f.name: getattr(own, f.name) if getattr(fixed, f.name) is None else getattr(fixed, f.name)
                      for f in fields(Condition)}
            return SynthesisLatent(latent.w, Condition(**joined))
        return LatentSpace(self.groups, compose)

    def perturbed(self, offsets: Mapping[str, Tensor], strength: float,
                  generator: torch.Generator) -> dict[str, Tensor]:
        """Offsets moved by Gaussian noise of ``strength`` spreads per element (drawn on the CPU from ``generator``)."""
        return {k: v + strength * torch.randn(v.shape, generator=generator).to(v) for k, v in offsets.items()}


def spread(samples: Tensor, floor: float = 1e-4) -> Tensor:
    """(1, ...) per-element std of latent ``samples`` (N, ...) over N, at least ``floor`` (constant elements of an
    untrained network would otherwise get no step)."""
    return samples.std(dim=0, keepdim=True).clamp_min(floor)


def film_groups(w_avg: Tensor, samples: Tensor) -> tuple[LatentGroup, LatentGroup]:
    """FiLM-SIREN codes w = [frequencies | phases] (pi-GAN's layout): two stage-0 groups, each half of w, starting
    at the halves of ``w_avg`` (1, w_dim) with the spread of mapped ``samples`` (N, w_dim)."""
    half = w_avg.shape[-1] // 2
    scale = spread(samples)
    return (LatentGroup("frequencies", w_avg[:, :half].clone(), scale[:, :half]),
            LatentGroup("phases", w_avg[:, half:].clone(), scale[:, half:]))


def film_w(values: Mapping[str, Tensor]) -> Tensor:
    """w (B, w_dim) of the :func:`film_groups` values."""
    return torch.cat([values["frequencies"], values["phases"]], dim=-1)


def style_groups(w_avg: Tensor, samples: Tensor, num_ws: int) -> tuple[LatentGroup, LatentGroup]:
    """StyleGAN latents: ``w`` (1, 1, w_dim), one code shared by every layer, from ``w_avg`` (w_dim,) (stage 0), and
    ``w_plus`` (1, num_ws, w_dim) per-layer offsets from 0 (stage 1: W+ after W), both with the spread of the
    mapped ``samples`` (N, w_dim)."""
    scale = spread(samples)[:, None]
    return (LatentGroup("w", w_avg.reshape(1, 1, -1).clone(), scale),
            LatentGroup("w_plus", torch.zeros(1, num_ws, w_avg.shape[-1], device=w_avg.device), scale, stage=1))


def style_ws(values: Mapping[str, Tensor]) -> Tensor:
    """ws (B, num_ws, w_dim) of the :func:`style_groups` values: the shared w plus the per-layer offsets."""
    return values["w"] + values["w_plus"]


__all__ = ["LatentGroup", "LatentSpace", "SynthesisLatent", "film_groups", "film_w", "spread", "style_groups",
           "style_ws"]
