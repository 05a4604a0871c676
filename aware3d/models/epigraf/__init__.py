"""EpiGRAF (Skorokhodov et al. 2022): a StyleGAN2 backbone drawing tri-planes, a 2-layer decoder on the averaged plane
features, volume rendering of full images or patches at the dataset resolution (no super-resolution), optional
plane / inverted-sphere backgrounds, class and camera (GPC) conditioning.

This folder is the generator side of the family: config and presets, EpiGRAF's camera conventions and rays, the
background models, the generator (composed from :mod:`aware3d.nn.stylegan2` and the shared renderer) and the safe
importers of official snapshots and generator state dicts, and the training side: the patch-aware discriminator,
the patch sampler (:mod:`.patches`), the loss recipe (:mod:`.loss`) and training presets (:mod:`.training`). It
registers itself below.
"""

from ..registry import FamilySpec, Importer, TinyPresets, TrainingSpec, register_family
from .cameras import PatchParams, cameras_from_epigraf_angles, epigraf_angles_from_cameras
from .config import EPIGRAF_PRESETS, EpiGRAFConfig, epigraf_render
from .convert import is_generator_state_dict, is_official_snapshot, load_official, load_state_dict_file
from .discriminator import PatchDiscriminator, PatchDiscriminatorConfig
from .generator import EpiGRAFGenerator, EpiGRAFOutput
from .loss import EpiGRAFLoss, EpiGRAFLossConfig
from .training import epigraf_train_presets

FAMILY = register_family(FamilySpec(
    name="epigraf",
    config_cls=EpiGRAFConfig,
    generator_cls=EpiGRAFGenerator,
    presets=EPIGRAF_PRESETS,
    tiny=TinyPresets("epigraf-tiny", "epigraf-tiny"),
    training=TrainingSpec(PatchDiscriminator, PatchDiscriminatorConfig, EpiGRAFLoss, EpiGRAFLossConfig),
    train_presets=epigraf_train_presets(),
    importers=(
        Importer("official EpiGRAF network-snapshot pickle (read safely, its code never runs)", is_official_snapshot,
                 load_official),
        Importer("EpiGRAF generator state_dict (.pt) with its constructor-kwargs JSON beside it",
                 is_generator_state_dict, load_state_dict_file),
    ),
))

__all__ = ["EPIGRAF_PRESETS", "EpiGRAFConfig", "EpiGRAFGenerator", "EpiGRAFOutput", "FAMILY", "PatchParams",
           "cameras_from_epigraf_angles", "epigraf_angles_from_cameras", "epigraf_render"]
