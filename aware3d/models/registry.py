"""Families and presets by name. Errors list the valid names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Generator3D


@dataclass(frozen=True)
class FamilySpec:
    """What a family plugs into the shared parts."""

    name: str
    """Family name as written in checkpoints (config.json "family")."""
    config_cls: type
    """The generator's config dataclass (its only constructor argument)."""
    generator_cls: type[Generator3D]
    """The generator class."""
    presets: dict[str, Any]
    """Preset name -> config instance."""
    training: "TrainingSpec | None" = None
    """How the family is trained (None: inference only)."""


@dataclass(frozen=True)
class TrainingSpec:
    """What the trainer needs from a family besides its generator."""

    discriminator_cls: type
    """Discriminator class; its only constructor argument is its config."""
    discriminator_config_cls: type
    """The discriminator's config dataclass."""
    loss_cls: type
    """Loss recipe class, built as ``loss_cls(G, D, loss_config)`` (see :mod:`aware3d.losses.base`)."""
    loss_config_cls: type
    """The loss recipe's config dataclass."""


def _families() -> dict[str, FamilySpec]:
    # Imported lazily so that `import aware3d.models.registry` stays cheap and cycle-free.
    from ..losses.pigan import PiGANLoss, PiGANLossConfig
    from .pigan import PIGAN_PRESETS, PiGANConfig, PiGANGenerator
    from .pigan.discriminator import ProgressiveDiscriminator, ProgressiveDiscriminatorConfig

    from ..losses.eg3d import EG3DLoss, EG3DLossConfig
    from .eg3d import EG3D_PRESETS, EG3DConfig, EG3DGenerator
    from .eg3d.discriminator import DualDiscriminator, DualDiscriminatorConfig

    pigan_training = TrainingSpec(ProgressiveDiscriminator, ProgressiveDiscriminatorConfig, PiGANLoss, PiGANLossConfig)
    eg3d_training = TrainingSpec(DualDiscriminator, DualDiscriminatorConfig, EG3DLoss, EG3DLossConfig)
    return {
        "pigan": FamilySpec("pigan", PiGANConfig, PiGANGenerator, PIGAN_PRESETS, pigan_training),
        "eg3d": FamilySpec("eg3d", EG3DConfig, EG3DGenerator, EG3D_PRESETS, eg3d_training),
    }


def get_family(name: str) -> FamilySpec:
    fams = _families()
    if name not in fams:
        raise ValueError(f"unknown model family {name!r}; valid: {', '.join(sorted(fams))}")
    return fams[name]


def all_presets() -> dict[str, tuple[FamilySpec, Any]]:
    """Every preset name -> (family, config)."""
    return {p: (f, cfg) for f in _families().values() for p, cfg in f.presets.items()}


def get_preset(name: str) -> tuple[FamilySpec, Any]:
    presets = all_presets()
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; valid: {', '.join(sorted(presets))}")
    return presets[name]


def build_generator(preset: str, seed: int = 0, overrides: list[str] | None = None) -> Generator3D:
    """A freshly initialised generator for a preset (weights from ``seed``; ``overrides`` like
    ``render.num_samples=24``), with its truncation centre computed."""
    import torch

    from ..config import apply_overrides

    family, cfg = get_preset(preset)
    cfg = apply_overrides(cfg, overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G = family.generator_cls(cfg)
    G.update_w_avg()
    G.preset = preset
    return G


