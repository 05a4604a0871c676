"""aware3d: 3D-aware GANs (pi-GAN, EG3D, ShadeGAN, EpiGRAF, CGOF) in one PyTorch toolkit."""

__version__ = "0.1.0"

from .api import load, render  # noqa: E402

__all__ = ["__version__", "load", "render"]
