"""ShadeGAN's training presets: the official curricula (``CelebA_ShadeGAN_view`` / ``_noview``, ``CATS_ShadeGAN``,
``BFM_ShadeGAN_noview``; numbers from the seed-systems spec, the rest from the released ``curriculums.py``
where noted) and a CPU-sized one.

The CelebA and BFM presets use the official ``ProgressiveEncoderDiscriminator``
(:data:`~aware3d.models.shadegan.official_discriminator.OFFICIAL_ENCODER_DISCRIMINATOR`, so an official
``discriminator.pth`` loads into it). Every official curriculum keeps ``num_steps_max`` samples per ray in
the schedule (the stage's ``num_steps`` only matters before the tracker starts), so the stages here keep 12
(Cats 20) throughout.
"""

from __future__ import annotations

from ...nn.progressive_discriminator import ProgressiveDiscriminatorConfig
from ...training.curriculum import Curriculum, Stage
from ...training.presets import TrainPreset
from .loss import ShadeGANLossConfig
from .official_discriminator import OFFICIAL_ENCODER_DISCRIMINATOR

CATS_DISCRIMINATOR = ProgressiveDiscriminatorConfig(max_resolution=256, coord_conv=False, latent_dim=0, pose_dim=0)
"""The closest shared discriminator to the official Cats ``StridedDiscriminator``: the same strided residual
blocks (plain convolutions, 32-64-128-256-400-400-400-400 from 256 px, kaiming init) and a 2x2 head to the
logit alone. It differs in having no 2 px from-RGB adapter and no unused ``pose_layer`` (the official one is
never called); the blend into the second block is skipped at alpha = 1 in both."""


def _celeba() -> tuple[ShadeGANLossConfig, Curriculum]:
    loss = ShadeGANLossConfig(r1_gamma=1.0, pos_lambda=15, topk_v=0.6, topk_interval=2000, grad_clip=0.3,
                              depth_lpips_lambda=1.0)
    curriculum = Curriculum((
        Stage(0, 32, 26, 1, 12, g_lr=2e-5, d_lr=2e-4),
        Stage(30_000, 64, 16, 2, 12, g_lr=2e-5, d_lr=2e-4),
        Stage(70_000, 64, 16, 2, 12, g_lr=1e-5, d_lr=1e-4),
        Stage(100_000, 128, 4, 2, 12, g_lr=2e-6, d_lr=2e-5),
    ), density_noise=1.0, density_noise_steps=5000)
    return loss, curriculum


def _cats() -> tuple[ShadeGANLossConfig, Curriculum]:
    """``CATS_ShadeGAN``: 64 px only, batch 32 in 8 chunks, 20 samples per ray annealed to 10 (beta 1e-4),
    lr 6e-5 / 2e-4, R1 0.2, clip 10, no identity loss. ``unique_lr=False`` there: one parameter group, so
    the mapping network and the tracker train at G's rate and follow its samples-per-ray factor."""
    loss = ShadeGANLossConfig(r1_gamma=0.2, pos_lambda=0, topk_v=0.6, topk_interval=2000, grad_clip=10,
                              track_beta=1e-4, num_samples_min=10, mapping_lr_scale=1.0, tracker_lr_scale=1.0,
                              tracker_follows_lr_factor=True, depth_lpips_lambda=1.0)
    # The D fades in over the first 10k steps even with a single stage (the official fade_steps 10000).
    return loss, Curriculum((Stage(0, 64, 32, 8, 20, g_lr=6e-5, d_lr=2e-4),), density_noise=1.0,
                            density_noise_steps=5000)


def _bfm() -> tuple[ShadeGANLossConfig, Curriculum]:
    """``BFM_ShadeGAN_noview``: no surface tracking (delta -1, so no samples-per-ray annealing and lr factor 1),
    the CelebA losses. The spec gives only the stage steps (64 px at 20k, lr drop at 40k, 128 px at 50k, end
    81k); batch sizes, splits and rates are the released curriculum's (they differ from CelebA's only in the
    batch sizes: 24 / 12 / 4 where CelebA has 26 / 16 / 4)."""
    loss = ShadeGANLossConfig(r1_gamma=1.0, pos_lambda=15, topk_v=0.6, topk_interval=2000, grad_clip=0.3,
                              surface_tracking=False)
    curriculum = Curriculum((
        Stage(0, 32, 24, 1, 12, g_lr=2e-5, d_lr=2e-4),
        Stage(20_000, 64, 12, 2, 12, g_lr=2e-5, d_lr=2e-4),
        Stage(40_000, 64, 12, 2, 12, g_lr=1e-5, d_lr=1e-4),
        Stage(50_000, 128, 4, 2, 12, g_lr=2e-6, d_lr=2e-5),
    ), density_noise=1.0, density_noise_steps=5000)
    return loss, curriculum


def shadegan_train_presets() -> dict[str, TrainPreset]:
    """The official curricula and the CPU-sized ``shadegan-tiny``."""
    celeba_loss, celeba = _celeba()
    cats_loss, cats = _cats()
    bfm_loss, bfm = _bfm()
    official_d = OFFICIAL_ENCODER_DISCRIMINATOR
    return {
        "shadegan-celeba-view": TrainPreset("shadegan", "shadegan-celeba-view", official_d, celeba_loss, celeba,
                                            data="synthetic-heads", total_steps=150_000),
        "shadegan-celeba-noview": TrainPreset("shadegan", "shadegan-celeba-noview", official_d, celeba_loss, celeba,
                                              data="synthetic-heads", total_steps=150_000),
        "shadegan-cats": TrainPreset("shadegan", "shadegan-cats", CATS_DISCRIMINATOR, cats_loss, cats,
                                     data="synthetic-heads", total_steps=30_000),
        "shadegan-bfm": TrainPreset("shadegan", "shadegan-bfm", official_d, bfm_loss, bfm,
                                    data="synthetic-heads", total_steps=81_000),
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
