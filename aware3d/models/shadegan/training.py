"""ShadeGAN's training presets: the official CelebA curricula (``CelebA_ShadeGAN_view`` / ``_noview``,
numbers from the released ``curriculums.py`` as summarised in the seed-systems spec) and a CPU-sized one."""

from __future__ import annotations

from ...nn.progressive_discriminator import ProgressiveDiscriminatorConfig
from ...training.curriculum import Curriculum, Stage
from ...training.presets import TrainPreset
from .loss import ShadeGANLossConfig


def shadegan_train_presets() -> dict[str, TrainPreset]:
    """The CelebA curricula and the CPU-sized ``shadegan-tiny``."""
    celeba_loss = ShadeGANLossConfig(r1_gamma=1.0, pos_lambda=15, topk_v=0.6, topk_interval=2000, grad_clip=0.3)
    celeba = Curriculum((
        Stage(0, 32, 26, 1, 12, g_lr=2e-5, d_lr=2e-4),
        Stage(30_000, 64, 16, 2, 12, g_lr=2e-5, d_lr=2e-4),
        Stage(70_000, 64, 16, 2, 12, g_lr=1e-5, d_lr=1e-4),
        Stage(100_000, 128, 4, 2, 12, g_lr=2e-6, d_lr=2e-5),
    ), density_noise=1.0, density_noise_steps=5000)
    ccs = ProgressiveDiscriminatorConfig(coord_conv=True)
    return {
        "shadegan-celeba-view": TrainPreset("shadegan", "shadegan-celeba-view", ccs, celeba_loss, celeba,
                                            data="synthetic-heads", total_steps=150_000),
        "shadegan-celeba-noview": TrainPreset("shadegan", "shadegan-celeba-noview", ccs, celeba_loss, celeba,
                                              data="synthetic-heads", total_steps=150_000),
        # CPU-sized: the tiny model, a small D; shading and tracking start early so short runs exercise them.
        "shadegan-tiny": TrainPreset(
            "shadegan", "shadegan-tiny",
            ProgressiveDiscriminatorConfig(max_resolution=64, channel_base=1024, channel_max=128, latent_dim=0),
            ShadeGANLossConfig(r1_gamma=1.0, pos_lambda=15, topk_v=0.6, topk_interval=200, grad_clip=10,
                               shading_start=0, shading_ramp=200, track_start=0, delta_max=0.24, delta_min=0.06,
                               track_beta=1e-3, num_samples_min=4),
            Curriculum((Stage(0, 32, 16, 1, 12, 12, g_lr=2e-4, d_lr=4e-4),), fade_steps=200,
                       density_noise=0.5, density_noise_steps=300),
            data="synthetic-heads", total_steps=2000,
        ),
    }
