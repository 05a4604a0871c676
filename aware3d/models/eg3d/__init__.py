"""EG3D (Chan et al. 2022): a camera-conditioned StyleGAN2 backbone drawing tri-planes, a small decoder
rendered by the shared volume renderer, super-resolution, and the dual discriminator."""

from .config import EG3D_PRESETS, EG3DConfig, eg3d_render
from .generator import EG3DGenerator, EG3DOutput, eg3d_focal, eg3d_intrinsics, eg3d_lookat_cameras

__all__ = ["EG3D_PRESETS", "EG3DConfig", "EG3DGenerator", "EG3DOutput", "eg3d_focal",
           "eg3d_intrinsics", "eg3d_lookat_cameras", "eg3d_render"]
