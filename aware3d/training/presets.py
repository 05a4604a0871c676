"""Training presets by name: model preset + discriminator + losses + curriculum + default data.

Each family registers its own presets (``FamilySpec.train_presets``, in the family's ``training.py``);
this module only defines the type and looks names up across the registered families.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..augment.run import DAugmentConfig
from .curriculum import Curriculum
from .ema import HalfLifeEMA


@dataclass(frozen=True)
class TrainPreset:
    """Everything a training run needs besides the run options."""

    family: str
    """Model family (registry name)."""
    model: str
    """Model preset name (see ``aware3d presets``)."""
    discriminator: Any
    """The family's discriminator config dataclass."""
    loss: Any
    """The family's loss config dataclass."""
    curriculum: Curriculum
    """Stages and schedules."""
    data: str = "synthetic-heads"
    """Default dataset (a synthetic name, a folder or a zip); empty: the user must pass --data."""
    data_help: str = ""
    """What data the preset expects and how to make it (shown when --data is missing or unsuitable)."""
    total_steps: int = 200_000
    """Default length of the run."""
    model_overrides: tuple[str, ...] = field(default_factory=tuple)
    """``key=value`` changes applied to the model preset's config."""
    ema: HalfLifeEMA | None = None
    """The StyleGAN-family half-life EMA, the run's primary EMA (None: the fixed per-step ``--ema-decays``)."""
    augment: DAugmentConfig = field(default_factory=DAugmentConfig)
    """Augmentation of the discriminator's inputs (ADA; default none)."""


def train_presets() -> dict[str, TrainPreset]:
    """Every training preset of every registered family, by name."""
    from ..models.registry import families

    return {name: p for fam in families().values() for name, p in fam.train_presets.items()}


def get_train_preset(name: str) -> TrainPreset:
    from ..models.registry import families

    presets = train_presets()
    if name in presets:
        return presets[name]
    untrained = [f.name for f in families().values() if f.training is None and name in f.presets]
    if untrained:
        raise ValueError(f"{name!r} is a model preset of the {untrained[0]} family, which has no training recipe "
                         f"yet; training presets: {', '.join(sorted(presets))}")
    raise ValueError(f"unknown training preset {name!r}; valid: {', '.join(sorted(presets))}")
