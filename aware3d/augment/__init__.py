"""Adaptive discriminator augmentation (StyleGAN2-ADA), family-agnostic, in pure PyTorch.

- :mod:`.matrices`: per-sample 3x3 geometric and 4x4 colour matrices (pure functions, conventions there);
- :mod:`.pipe`: :class:`AugmentConfig` (probability multipliers and strengths, official 'bgc' defaults, the
  official presets), :class:`AugmentPipe` (the module D's inputs go through; ``p`` is a buffer);
- :mod:`.adaptive`: :class:`AdaConfig` and :class:`AdaptiveP`, which moves ``p`` toward the target
  E[sign(D(real))];
- :mod:`.official`: our pipeline from an official snapshot's ``augment_pipe`` (settings and current p), read by
  the restricted unpickler.
"""

from .adaptive import AdaConfig, AdaptiveP, ada_adjustment
from .official import (
    AugmentImportError,
    augment_pipe_from_official,
    augment_pipe_from_snapshot,
)
from .pipe import (
    AUGMENT_PRESETS,
    AugmentConfig,
    AugmentPipe,
    ColorParams,
    GeometricParams,
)

__all__ = [
    "AUGMENT_PRESETS", "AdaConfig", "AdaptiveP", "AugmentConfig", "AugmentImportError", "AugmentPipe",
    "ColorParams", "GeometricParams", "ada_adjustment", "augment_pipe_from_official", "augment_pipe_from_snapshot",
]
