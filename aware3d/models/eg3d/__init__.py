"""EG3D (Chan et al. 2022): a camera-conditioned StyleGAN2 backbone drawing tri-planes, a small decoder
rendered by the shared volume renderer, super-resolution, and the dual discriminator.

This folder is the whole family: config and presets, the generator (composed from :mod:`aware3d.nn.stylegan2`
and :mod:`aware3d.nn.triplane`), super-resolution, the dual discriminator, the loss recipe (:mod:`.loss`),
training presets, the official pickle importer and gen_samples' shape layout. It registers itself below.
"""

from ..registry import FamilySpec, Importer, TinyPresets, TrainingSpec, register_family
from .config import EG3D_PRESETS, EG3DConfig, eg3d_render
from .convert import convert_official, is_official_snapshot, load_official
from .discriminator import DualDiscriminator, DualDiscriminatorConfig
from .generator import EG3DGenerator, EG3DOutput, eg3d_focal, eg3d_intrinsics, eg3d_lookat_cameras
from .loss import EG3DLoss, EG3DLossConfig
from .shapes import OFFICIAL_LAYOUT
from .training import eg3d_train_presets

FAMILY = register_family(FamilySpec(
    name="eg3d",
    config_cls=EG3DConfig,
    generator_cls=EG3DGenerator,
    presets=EG3D_PRESETS,
    tiny=TinyPresets("eg3d-tiny", "eg3d-tiny"),  # its 32 px output is fixed by the super-resolution
    training=TrainingSpec(DualDiscriminator, DualDiscriminatorConfig, EG3DLoss, EG3DLossConfig),
    train_presets=eg3d_train_presets(),
    importers=(Importer("official EG3D network pickle (TriPlaneGenerator; read safely, its code never runs)",
                        is_official_snapshot, load_official, convert_official),),
    grid_layouts={OFFICIAL_LAYOUT.name: OFFICIAL_LAYOUT},
))

__all__ = ["EG3D_PRESETS", "EG3DConfig", "EG3DGenerator", "EG3DOutput", "FAMILY", "eg3d_focal",
           "eg3d_intrinsics", "eg3d_lookat_cameras", "eg3d_render"]
