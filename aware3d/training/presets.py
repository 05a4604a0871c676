"""Training presets by name: model preset + discriminator + losses + curriculum + default data.

The pi-GAN presets reproduce the seeds' curricula (numbers from the released ``curriculums.py``; the
progressive CelebA schedule is the one published with ShadeGAN as ``CelebA_piGAN``). The ``-tiny``
presets are small enough for a laptop CPU (tests, ``aware3d demo``).
"""

from __future__ import annotations

import math
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
        # `aware3d demo`: pigan-tiny's model with a recipe tuned for heads within minutes on 2 CPU cores.
        # Measured against pigan-tiny at 32 px on 1 thread: no hierarchical sampling makes a step 2.2x faster
        # and the half-width discriminator 1.2x more; a wider box warp (lower SIREN frequencies over the head),
        # R1 0.3 instead of 1 and a faster G gave head-shaped samples in fewer steps; batch 8 (twice the steps
        # per minute) sharper ones. View-independent colour stops the generator from painting the turning
        # head on a flat backdrop (it did so with view-dependent colour: constant depth maps).
        "pigan-demo": TrainPreset(
            "pigan", "pigan-tiny", ProgressiveDiscriminatorConfig(max_resolution=64, channel_base=512, channel_max=64,
                                                                  latent_dim=0),
            PiGANLossConfig(r1_gamma=0.3, pos_lambda=15, topk_v=0.6, topk_interval=200, grad_clip=10),
            Curriculum((Stage(0, 32, 8, 1, 12, 0, g_lr=3e-4, d_lr=4e-4),), fade_steps=200,
                       density_noise=0.5, density_noise_steps=300),
            data="synthetic-heads", total_steps=5000, model_overrides=("box_warp=0.36", "view_dependent=false"),
        ),
    }


def _eg3d_presets() -> dict[str, TrainPreset]:
    """EG3D's official recipes (``train.py`` defaults with each dataset's --gamma / --gpc_reg_prob, batch 32)
    and a CPU-sized one on the built-in synthetic heads.

    StyleGAN2's lazy regularisation also scales the Adam learning rates by interval / (interval + 1)
    (G: 4/5, D: 16/17), which these stages apply; the betas (0, 0.99) are shared by G and D here.
    The official presets have no default dataset: pass ``--data`` (a zip with EG3D labels).
    """
    from ..losses.eg3d import EG3DLossConfig
    from ..models.eg3d.discriminator import DualDiscriminatorConfig

    def official(model: str, img: int, samples: int, loss: EG3DLossConfig) -> TrainPreset:
        stage = Stage(0, img, 32, 1, samples, samples, g_lr=0.0025 * 4 / 5, d_lr=0.002 * 16 / 17)
        return TrainPreset("eg3d", model, DualDiscriminatorConfig(img_resolution=img), loss,
                           Curriculum((stage,), fade_steps=0, density_noise=0.0, betas=(0.0, 0.99)),
                           data="", total_steps=25_000_000 // 32)

    # Synthetic heads are seen at radius 1 with a 12-degree field of view (focal 0.5 / tan 6 deg) and fill
    # about +-0.11 world units, as pi-GAN's CelebA set-up: the tri-planes cover a 0.24 cube.
    heads_camera = ("camera_radius=1.0", "camera_pivot=[0,0,0]", f"focal={0.5 / math.tan(math.radians(6)):.6f}",
                    "fov_deg=12", "pose.radius=1.0", "box_warp=0.24", "shape_half_extent=0.12",
                    "render.near=0.88", "render.far=1.12", "eval_render.near=0.88", "eval_render.far=1.12")
    return {
        # ffhq512-128: trained at neural rendering resolution 64, then moved to 128.
        "eg3d-ffhq": official("eg3d-ffhq", 512, 48, EG3DLossConfig(
            r1_gamma=1.0, gpc_reg_prob=0.5, neural_rendering_resolution_initial=64,
            neural_rendering_resolution_final=128)),
        "eg3d-afhq": official("eg3d-afhq", 512, 48, EG3DLossConfig(
            r1_gamma=5.0, gpc_reg_prob=0.8, neural_rendering_resolution_initial=64,
            neural_rendering_resolution_final=128)),
        "eg3d-shapenet": official("eg3d-shapenet", 128, 64, EG3DLossConfig(
            r1_gamma=0.3, gpc_reg_prob=None, neural_rendering_resolution_initial=64)),
        # CPU-sized: 16 px neural rendering super-resolved to 32 px, batch 8, a short blur.
        "eg3d-tiny": TrainPreset(
            "eg3d", "eg3d-tiny",
            DualDiscriminatorConfig(img_resolution=32, channel_base=256, channel_max=32, num_fp16_res=0,
                                    mapping_layers=2),
            EG3DLossConfig(r1_gamma=1.0, r1_interval=4, gpc_reg_prob=0.5, gpc_reg_fade_kimg=1.0,
                           density_reg=0.25, density_reg_extent=0.12, density_reg_points=256,
                           blur_init_sigma=2.0, blur_fade_kimg=1.0, neural_rendering_resolution_initial=16),
            Curriculum((Stage(0, 32, 8, 1, 12, 12, g_lr=0.0025 * 4 / 5, d_lr=0.002 * 4 / 5),), fade_steps=0,
                       density_noise=0.0, betas=(0.0, 0.99)),
            data="synthetic-heads", total_steps=2000, model_overrides=heads_camera,
        ),
    }


def train_presets() -> dict[str, TrainPreset]:
    """Every training preset by name."""
    return {**_pigan_presets(), **_eg3d_presets()}


def get_train_preset(name: str) -> TrainPreset:
    presets = train_presets()
    if name not in presets:
        raise ValueError(f"unknown training preset {name!r}; valid: {', '.join(sorted(presets))}")
    return presets[name]
