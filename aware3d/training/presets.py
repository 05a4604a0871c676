"""Training presets by name: model preset + discriminator + losses + curriculum + default data.

The pi-GAN presets reproduce the seeds' curricula (numbers from the released ``curriculums.py``; the
progressive CelebA schedule is the one published with ShadeGAN as ``CelebA_piGAN``). The ``-tiny``
presets are small enough for a laptop CPU (tests, ``aware3d demo``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..models.pigan.discriminator import ProgressiveDiscriminatorConfig
from .curriculum import Curriculum, Stage


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
    """Default dataset (a synthetic name, a folder or a zip)."""
    total_steps: int = 200_000
    """Default length of the run."""
    model_overrides: tuple[str, ...] = field(default_factory=tuple)
    """``key=value`` changes applied to the model preset's config."""


def _pigan_presets() -> dict[str, TrainPreset]:
    from ..losses.pigan import PiGANLossConfig

    ccs = ProgressiveDiscriminatorConfig(coord_conv=True)
    celeba_loss = PiGANLossConfig(r1_gamma=0.2, pos_lambda=15, topk_v=0.6, topk_interval=2000, grad_clip=10)
    return {
        "pigan-celeba": TrainPreset(
            "pigan", "pigan-celeba", ccs, celeba_loss,
            Curriculum((
                Stage(0, 32, 26, 1, 12, g_lr=2e-5, d_lr=2e-4),
                Stage(30_000, 64, 16, 2, 5, g_lr=2e-5, d_lr=2e-4),
                Stage(70_000, 64, 16, 2, 5, g_lr=1e-5, d_lr=1e-4),
                Stage(100_000, 128, 4, 2, 4, g_lr=2e-6, d_lr=2e-5),
            )),
            data="synthetic-heads", total_steps=150_000,
        ),
        "pigan-celeba-64": TrainPreset(
            "pigan", "pigan-celeba", ccs, celeba_loss,
            Curriculum((Stage(0, 64, 56, 2, 12, g_lr=6e-5, d_lr=2e-4),)),
            data="synthetic-heads", total_steps=200_000,
        ),
        "pigan-cats": TrainPreset(
            "pigan", "pigan-cats", ProgressiveDiscriminatorConfig(coord_conv=False),
            PiGANLossConfig(r1_gamma=0.2, pos_lambda=0, topk_v=0.6, topk_interval=2000, grad_clip=10),
            Curriculum((Stage(0, 64, 28, 4, 24, g_lr=6e-5, d_lr=2e-4),)),
            data="synthetic-heads", total_steps=200_000,
        ),
        "pigan-carla": TrainPreset(
            "pigan", "pigan-carla", ProgressiveDiscriminatorConfig(coord_conv=False),
            PiGANLossConfig(r1_gamma=10, pos_lambda=0, topk_v=1.0, topk_interval=1000, grad_clip=1),
            Curriculum((
                Stage(0, 32, 30, 1, 48, g_lr=4e-5, d_lr=4e-4),
                Stage(10_000, 64, 14, 2, 48, g_lr=2e-5, d_lr=2e-4),
                Stage(55_000, 128, 10, 5, 48, g_lr=1e-5, d_lr=1e-4),
            )),
            data="synthetic-objects", total_steps=200_000,
        ),
        # CPU-sized: narrow networks, 32x32 images, few samples; D fades in quickly. Used by `aware3d demo`.
        "pigan-tiny": TrainPreset(
            "pigan", "pigan-tiny", ProgressiveDiscriminatorConfig(max_resolution=64, channel_base=1024, channel_max=128,
                                                                  latent_dim=0),
            PiGANLossConfig(r1_gamma=1.0, pos_lambda=15, topk_v=0.6, topk_interval=200, grad_clip=10),
            Curriculum((Stage(0, 32, 16, 1, 12, 12, g_lr=2e-4, d_lr=4e-4),), fade_steps=200,
                       density_noise=0.5, density_noise_steps=300),
            data="synthetic-heads", total_steps=2000,
        ),
    }


def train_presets() -> dict[str, TrainPreset]:
    """Every training preset by name."""
    return {**_pigan_presets()}


def get_train_preset(name: str) -> TrainPreset:
    presets = train_presets()
    if name not in presets:
        raise ValueError(f"unknown training preset {name!r}; valid: {', '.join(sorted(presets))}")
    return presets[name]
