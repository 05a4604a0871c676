"""EpiGRAF's training presets: the official recipes and a CPU-sized one on the built-in synthetic heads."""

from __future__ import annotations

from dataclasses import replace

from ...augment import AugmentConfig
from ...augment.run import DAugmentConfig
from ...rendering.patches import PatchSamplerConfig
from ...training.curriculum import Curriculum, Stage
from ...training.ema import HalfLifeEMA
from ...training.presets import TrainPreset
from .discriminator import PatchDiscriminatorConfig
from .loss import EpiGRAFLossConfig

OFFICIAL_BATCH = 64
"""Global batch of the official runs (training.batch_size)."""
OFFICIAL_KIMG = 50_000
"""Length of the official runs, thousands of real images."""
DENSITY_NOISE_KIMG = 5000
"""The density noise (std 1) decays to 0 over this many thousand images (official FFHQ setting)."""


def _official(model: str, img: int, c_dim: int, gamma: float, data: str, data_help: str = "") -> TrainPreset:
    """An official recipe: 64 px patches of ``img`` px images, Beta-annealed scales from 64 / img, batch 64,
    48 + 48 samples, G lr 0.0025, D lr 0.002 x 16/17 (StyleGAN2's lazy-R1 rate correction), betas (0, 0.99)."""
    patch = PatchSamplerConfig(distribution="beta", min_scale=64 / img, max_scale=1.0, alpha=1.0, beta_start=0.001,
                               beta_end=0.8, anneal_kimg=10_000.0, group_size=4)
    loss = EpiGRAFLossConfig(r1_gamma=gamma, r1_interval=16, patch=patch, gpc_reg_prob=0.5, gpc_reg_fade_kimg=1000.0,
                             blur_init_sigma=10.0, blur_fade_kimg=200.0)
    disc = PatchDiscriminatorConfig(patch_resolution=64, image_resolution=img, c_dim=c_dim, channel_base=16384,
                                    channel_max=512, num_fp16_res=4, conv_clamp=256, camera_cond=True,
                                    camera_dropout=0.5, mbstd_group_size=4)
    stage = Stage(0, img, OFFICIAL_BATCH, 1, 48, 48, g_lr=0.0025, d_lr=0.002 * 16 / 17)
    curriculum = Curriculum((stage,), fade_steps=0, density_noise=1.0,
                            density_noise_steps=DENSITY_NOISE_KIMG * 1000 // OFFICIAL_BATCH, betas=(0.0, 0.99))
    ema = HalfLifeEMA(half_life_kimg=OFFICIAL_BATCH * 10 / 32, rampup=0.05)  # train.py's ema_kimg, the loop's ramp-up
    # configs/training/base.yaml: ADA with every 'bgc' transform but x-flips (the dataset is mirrored instead),
    # target 0.6, applied to the patches D sees.
    augment = DAugmentConfig(mode="ada", pipe=replace(AugmentConfig(), xflip=0.0))
    return TrainPreset("epigraf", model, disc, loss, curriculum, data=data, data_help=data_help,
                       total_steps=OFFICIAL_KIMG * 1000 // OFFICIAL_BATCH, ema=ema, augment=augment)


def _megascans_help(num_classes: int, kind: str) -> str:
    return (f"a 256 px zip of Megascans {kind} renders with {num_classes} classes: dataset.json with EpiGRAF "
            "camera_angles and class labels, e.g. aware3d dataset --source RENDERS --labels-from-folders --out "
            f"{kind}.zip for renders in CLASS/OBJECT/ folders (download_megascans.py + prepare_megascans_dataset.py "
            "of the official code make them); or --override model.c_dim=0 discriminator.c_dim=0 for an "
            "unconditional model")


def _tiny() -> TrainPreset:
    """CPU-sized: 16 px patches of 32 px images (scales 0.5 .. 1, annealed over 1 kimg), batch 8 = two patch
    groups, 8 + 8 samples, lazy R1 every 4 steps, a short blur and GPC fade."""
    patch = PatchSamplerConfig(distribution="beta", min_scale=0.5, max_scale=1.0, beta_start=0.001, beta_end=0.8,
                               anneal_kimg=1.0, group_size=4)
    loss = EpiGRAFLossConfig(r1_gamma=0.1, r1_interval=4, patch=patch, gpc_reg_prob=0.5, gpc_reg_fade_kimg=1.0,
                             blur_init_sigma=2.0, blur_fade_kimg=1.0)
    disc = PatchDiscriminatorConfig(patch_resolution=16, image_resolution=32, channel_base=256, channel_max=32,
                                    num_fp16_res=0, mapping_layers=2, hyper_mod_dim=32, const_embed_dim=16,
                                    camera_cond=True, camera_dropout=0.5, mbstd_group_size=4)
    stage = Stage(0, 32, 8, 1, 8, 8, g_lr=0.0025, d_lr=0.002 * 4 / 5)
    curriculum = Curriculum((stage,), fade_steps=0, density_noise=1.0, density_noise_steps=500, betas=(0.0, 0.99))
    return TrainPreset("epigraf", "epigraf-tiny", disc, loss, curriculum, data="synthetic-heads", total_steps=2000)


def epigraf_train_presets() -> dict[str, TrainPreset]:
    """EpiGRAF's official recipes (the hydra defaults with each dataset's gamma: 0.1 for FFHQ, 0.05 elsewhere, as
    the README advises) and a CPU-sized one.

    FFHQ and Cats default to the built-in synthetic heads (same camera set-up: radius 1, fov 12); the Megascans
    models are class-conditional and the synthetic sets have no classes, so they have no default dataset (pass
    ``--data``, a zip with class labels and EpiGRAF camera angles, e.g. from renders in CLASS/OBJECT/ folders:
    ``aware3d dataset --source RENDERS --labels-from-folders``). The official EMA: half-life 20 kimg
    (batch x 10 / 32) with ramp-up 0.05; ``epigraf-tiny`` keeps the fixed per-step decays.
    """
    return {
        "epigraf-ffhq-512": _official("epigraf-ffhq-512", 512, 0, 0.1, "synthetic-heads"),
        "epigraf-cats-256": _official("epigraf-cats-256", 256, 0, 0.05, "synthetic-heads"),
        "epigraf-plants-256": _official("epigraf-plants-256", 256, 198, 0.05, "", _megascans_help(198, "plants")),
        "epigraf-food-256": _official("epigraf-food-256", 256, 10, 0.05, "", _megascans_help(10, "food")),
        "epigraf-tiny": _tiny(),
    }


__all__ = ["epigraf_train_presets"]
