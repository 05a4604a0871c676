"""CGOF (cGOF v1, Sun et al. 2022): a pi-GAN controlled by a morphable face model. Its latent is a whitened
face-model code plus background noise; the mesh that code builds is rasterised from the render's cameras and
guides where the generator samples (near-mesh sampling) and what its density may do (3-D losses).

This folder is the whole family: config and presets (:mod:`.config`), the latent layout and whitening
(:mod:`.layout`), the conditioning maps (:mod:`.conditioning`), the three-pass renderer (:mod:`.render`), the
generator (:mod:`.generator`, on :mod:`aware3d.nn.siren`), the loss terms (:mod:`.losses`) and the recipe with
its presets (:mod:`.training`, with the shared progressive discriminator). It registers itself below; it
declares the ``face`` condition (the 251-d whitened identity | expression | texture | lighting code).
"""

from ...nn.progressive_discriminator import ProgressiveDiscriminator, ProgressiveDiscriminatorConfig
from ..registry import FamilySpec, TinyPresets, TrainingSpec, register_family
from .conditioning import MeshConditioning, build_conditioning
from .config import CGOF_PRESETS, CGOFConfig
from .generator import CGOFGenerator
from .layout import FACE_CODE_DIM, LatentLayout
from .training import CGOFLoss, CGOFLossConfig, cgof_train_presets

FAMILY = register_family(FamilySpec(
    name="cgof",
    config_cls=CGOFConfig,
    generator_cls=CGOFGenerator,
    presets=CGOF_PRESETS,
    # The smoke run: 16 px, batch 4 in 2 chunks, 4 + 4 (+ 4 fine2) samples per ray.
    tiny=TinyPresets("cgof-tiny", "cgof-tiny", ('curriculum.stages=[{"start": 0, "resolution": 16, "batch_size": 4, '
                                               '"batch_split": 2, "num_samples": 4, "num_importance": 4, '
                                               '"g_lr": 2e-4, "d_lr": 4e-4}]',)),
    training=TrainingSpec(ProgressiveDiscriminator, ProgressiveDiscriminatorConfig, CGOFLoss, CGOFLossConfig),
    train_presets=cgof_train_presets(),
))

__all__ = ["CGOF_PRESETS", "FACE_CODE_DIM", "FAMILY", "CGOFConfig", "CGOFGenerator", "CGOFLoss", "CGOFLossConfig",
           "LatentLayout", "MeshConditioning", "build_conditioning"]
