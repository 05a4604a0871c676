"""pi-GAN (Chan et al. 2021): a mapping network and a FiLM-conditioned SIREN radiance field.

This folder is the whole family: config and presets (:mod:`.config`), the generator (:mod:`.generator`,
composed from :mod:`aware3d.nn.siren`), training presets (:mod:`.training`, with the shared progressive
discriminator and the pi-GAN loss recipe of :mod:`aware3d.losses.pigan`) and the official importer
(:mod:`.convert`). It registers itself below.
"""

from ...losses.pigan import PiGANLoss, PiGANLossConfig
from ...nn.progressive_discriminator import ProgressiveDiscriminator, ProgressiveDiscriminatorConfig
from ..registry import FamilySpec, Importer, TinyPresets, TrainingSpec, register_family
from .config import PIGAN_PRESETS, PiGANConfig
from .convert import is_official_generator, load_official
from .generator import PiGANGenerator
from .training import pigan_train_presets

FAMILY = register_family(FamilySpec(
    name="pigan",
    config_cls=PiGANConfig,
    generator_cls=PiGANGenerator,
    presets=PIGAN_PRESETS,
    # The smoke run: 16 px, batch 4 in 2 chunks, 4 + 4 samples per ray.
    tiny=TinyPresets("pigan-tiny", "pigan-tiny", ('curriculum.stages=[{"start": 0, "resolution": 16, "batch_size": 4, '
                                                 '"batch_split": 2, "num_samples": 4, "num_importance": 4, '
                                                 '"g_lr": 2e-4, "d_lr": 4e-4}]',)),
    training=TrainingSpec(ProgressiveDiscriminator, ProgressiveDiscriminatorConfig, PiGANLoss, PiGANLossConfig),
    train_presets=pigan_train_presets(),
    importers=(Importer("official pi-GAN generator.pth (a pickled ImplicitGenerator3d; ema.pth beside it applied)",
                        is_official_generator, load_official),),
))

__all__ = ["FAMILY", "PIGAN_PRESETS", "PiGANConfig", "PiGANGenerator"]
