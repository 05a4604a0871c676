"""ShadeGAN (Pan et al. 2021): pi-GAN with an albedo field, normals from the density, Lambertian shading
under a light drawn from a prior, and a surface tracker that narrows each ray's samples.

This folder is the whole family: config and presets (:mod:`.config`), the networks (:mod:`.networks`: the
shading SIREN, built on :mod:`aware3d.nn.siren`, and the surface tracker), the light model and prior
(:mod:`.light`), the generator (:mod:`.generator`), the training recipe (:mod:`.loss`, pi-GAN's plus
lights, shading phase-in and surface tracking; with the shared progressive discriminator) and presets
(:mod:`.training`), and the official importer (:mod:`.convert`).
"""

from ...nn.progressive_discriminator import (
    ProgressiveDiscriminator,
    ProgressiveDiscriminatorConfig,
)
from ..registry import FamilySpec, Importer, TinyPresets, TrainingSpec, register_family
from .config import SHADEGAN_PRESETS, ShadeGANConfig
from .convert import is_official_generator, load_official
from .generator import ShadeGANGenerator
from .light import LightPrior, lambertian_shading
from .loss import ShadeGANLoss, ShadeGANLossConfig
from .training import shadegan_train_presets

FAMILY = register_family(FamilySpec(
    name="shadegan",
    config_cls=ShadeGANConfig,
    generator_cls=ShadeGANGenerator,
    presets=SHADEGAN_PRESETS,
    # The smoke run: 16 px, batch 4 in 2 chunks, 4 + 4 samples per ray. The self-inversion check widens the SIREN
    # box: at 0.24 the untrained density's gradient, hence every normal and the shading, is pixel-scale speckle
    # that decorrelates within 0.01 rad of camera motion (the ball test's finding, tests/test_shadegan_learning.py).
    tiny=TinyPresets("shadegan-tiny", "shadegan-tiny", (('curriculum.stages=[{"start": 0, "resolution": 16, '
                                                       '"batch_size": 4, "batch_split": 2, "num_samples": 4, '
                                                       '"num_importance": 4, "g_lr": 2e-4, "d_lr": 4e-4}]'),),
                     inversion_overrides=("box_warp=2.0",)),
    training=TrainingSpec(ProgressiveDiscriminator, ProgressiveDiscriminatorConfig, ShadeGANLoss, ShadeGANLossConfig),
    train_presets=shadegan_train_presets(),
    importers=(Importer("official ShadeGAN generator.pth (a state_dict with the surface tracker; ema.pth and "
                        "*_light_mvn.pth beside it applied)", is_official_generator, load_official),),
))

__all__ = ["FAMILY", "SHADEGAN_PRESETS", "LightPrior", "ShadeGANConfig", "ShadeGANGenerator", "lambertian_shading"]
