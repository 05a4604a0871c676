"""The official ``ProgressiveEncoderDiscriminator`` (ShadeGAN CelebA / BFM, pi-GAN CARLA) as our shared
progressive discriminator, and the import of its ``discriminator.pth`` (what the official ``--load_dir`` reads).

The official class is 8 residual CoordConv blocks 16-32-64-128-256-400-400-400-400 from 512 px down to 2 px
(average-pooled, a 1x1 projection only where channels change), 9 from-RGB adapters (512 ... 2 px) and a 2x2
head to ``1 + 256 + 2`` (logit, latent, (pitch, yaw)); 62 tensors, 12,825,523 parameters.
:data:`OFFICIAL_ENCODER_DISCRIMINATOR` is that layout in our config; our parameter names stay ours and
:func:`official_discriminator_key_map` translates. The official ``train.py`` saves
``discriminator.state_dict()``: a torch-zip OrderedDict of tensors, read here by the restricted unpickler.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from torch import Tensor

from ...io.keymap import CheckpointMismatchError, apply_key_map
from ...io.safe_unpickle import PickledObject, load_torch_file
from ...nn.progressive_discriminator import ProgressiveDiscriminator, ProgressiveDiscriminatorConfig

OFFICIAL_ENCODER_DISCRIMINATOR = ProgressiveDiscriminatorConfig(
    max_resolution=512, channel_base=8192, channel_max=400, coord_conv=True, latent_dim=256, pose_dim=2,
    downsample="avgpool", coordinate_order="rows_cols", always_blend=True)
"""The official ProgressiveEncoderDiscriminator: pooled CoordConv blocks, AddCoords' channel order, and the
forward that always blends the half-size path into the second block."""


def official_discriminator_key_map(D: ProgressiveDiscriminator) -> dict[str, str]:
    """Official state_dict key -> ours for ``D`` (built from ``D``'s own layers, so a file with other layers
    fails :func:`~aware3d.io.keymap.apply_key_map`'s checks instead of loading partly)."""
    m: dict[str, str] = {}
    for p in ("weight", "bias"):
        for i, block in enumerate(D.blocks):
            m[f"layers.{i}.network.0.conv.{p}"] = f"blocks.{i}.conv0.{p}"
            m[f"layers.{i}.network.2.conv.{p}"] = f"blocks.{i}.conv1.{p}"
            if block.shortcut is not None:
                m[f"layers.{i}.proj.{p}"] = f"blocks.{i}.shortcut.{p}"
        for i in range(len(D.from_rgb)):
            m[f"fromRGB.{i}.model.0.{p}"] = f"from_rgb.{i}.conv.{p}"
        m[f"final_layer.{p}"] = f"head.{p}"
    return m


def discriminator_from_official_state(state: Mapping[str, Tensor], what: str = "state_dict",
                                      config: ProgressiveDiscriminatorConfig = OFFICIAL_ENCODER_DISCRIMINATOR,
                                      ) -> ProgressiveDiscriminator:
    """Our discriminator (``config``, the official layout by default) holding an official state_dict's weights.

    Raises:
        CheckpointMismatchError: listing every unknown, missing or mis-shaped key (nothing is loaded then).
    """
    D = ProgressiveDiscriminator(config)
    apply_key_map(D, dict(state), official_discriminator_key_map(D), what=what)
    return D


def load_official_discriminator(path: str | Path,
                                config: ProgressiveDiscriminatorConfig = OFFICIAL_ENCODER_DISCRIMINATOR,
                                ) -> ProgressiveDiscriminator:
    """Read an official ``discriminator.pth`` (a state_dict; nothing in it is executed) into our discriminator."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"official discriminator checkpoint not found: {path}")
    state = load_torch_file(path)
    if not isinstance(state, dict):
        found = state.qualname if isinstance(state, PickledObject) else type(state).__name__
        raise CheckpointMismatchError(f"{path} is not an official discriminator.pth (expected a state_dict of "
                                      f"tensors, found {found})")
    return discriminator_from_official_state(state, str(path), config)


__all__ = ["OFFICIAL_ENCODER_DISCRIMINATOR", "discriminator_from_official_state", "load_official_discriminator",
           "official_discriminator_key_map"]
