"""GAN losses: shared terms (:mod:`.gan`), the phase contract every family follows (:mod:`.base`) and the
families' recipes (:mod:`.pigan`, ...)."""

from .base import Chunk, LossRecipe, Phase, StageState
from .gan import logistic_d, nonsaturating_g, r1_penalty

__all__ = ["Chunk", "LossRecipe", "Phase", "StageState", "logistic_d", "nonsaturating_g", "r1_penalty"]
