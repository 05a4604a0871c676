"""pi-GAN (Chan et al. 2021): a mapping network and a FiLM-conditioned SIREN radiance field."""

from .config import PIGAN_PRESETS, PiGANConfig
from .generator import PiGANGenerator
from .network import FiLMLayer, FiLMSiren, MappingNetwork

__all__ = ["PIGAN_PRESETS", "PiGANConfig", "PiGANGenerator", "FiLMLayer", "FiLMSiren", "MappingNetwork"]
