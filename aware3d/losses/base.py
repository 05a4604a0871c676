"""The contract between the trainer and a family's loss recipe.

A training step runs the recipe's *phases* in order (e.g. pi-GAN: D then G; StyleGAN2/EG3D: G main,
G reg, D main, D reg). A phase updates one module (``G`` or ``D``) and runs only on steps where
``step % interval == 0``: regularisers evaluated lazily every ``interval`` steps are scaled by
``interval`` so their average strength is unchanged (StyleGAN2's lazy regularisation). For each phase
the trainer splits the global batch into chunks (ranks x ``batch_split``), asks the recipe for the loss
of each chunk, back-propagates ``loss / number_of_chunks``, all-reduces gradients across ranks, checks
for NaN/inf, clips and steps the optimiser. The recipe never owns an optimiser and never steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor

from ..cameras import Cameras
from ..rendering import RenderConfig


@dataclass(frozen=True)
class Phase:
    """One optimiser update within a training step."""

    name: str
    """Shown in logs: G_main, G_reg, D_main, D_reg, or D_both / G_both when main and reg are fused."""
    module: Literal["G", "D"]
    """The module whose parameters this phase updates."""
    interval: int = 1
    """Run on steps where step % interval == 0."""


@dataclass
class StageState:
    """What the curriculum says about the current step (read-only for the recipe)."""

    step: int
    """Global step (number of completed steps before this one)."""
    resolution: int
    """Training image size (real and generated)."""
    render: RenderConfig
    """Render settings for generated images at this step (samples, noise, ...)."""
    alpha: float
    """Fade-in of the discriminator's newest block, in [0, 1]."""
    images_seen: int = 0
    """Real images shown before this step, summed over processes (the official loops' ``cur_nimg``)."""


@dataclass
class Chunk:
    """One slice of the global batch, as seen by one phase."""

    real_images: Tensor
    """(b, 3, r, r) real images in [-1, 1]."""
    real_labels: Tensor
    """(b, 25) EG3D camera labels of the real images (zeros where unknown)."""
    z: Tensor
    """(b, z_dim) latent codes for generated images."""
    cameras: Cameras
    """b cameras for generated images, drawn from the generator's pose distribution."""
    angles: Tensor
    """(b, 2) those cameras as pi-GAN (yaw, pitch), radians."""
    generator: torch.Generator
    """Source of every other random draw in this chunk (rendering jitter, noise, ...), seeded per (step, chunk)."""


class LossRecipe(Protocol):
    """A family's losses. Built with the generator and discriminator it trains."""

    def phases(self) -> list[Phase]:
        """The phases of one step, in order."""
        ...

    def loss(self, phase: Phase, chunk: Chunk, stage: StageState) -> tuple[Tensor, dict[str, Tensor]]:
        """The scalar loss of ``phase`` on ``chunk`` (mean over the chunk, lazy-regulariser scaling included),
        and named detached values to log (e.g. ``{"D/real": ..., "D/r1": ...}``)."""
        ...

    def grad_clip(self, module: Literal["G", "D"]) -> float | None:
        """Max gradient norm for a module's update, or None."""
        ...

    def render_resolution(self, stage: StageState) -> int:
        """Size at which the generator renders at this stage (sample grids use it too): ``stage.resolution``
        for most families, EG3D's neural rendering resolution."""
        ...

    autocast: bool
    """Whether ``--amp`` on a GPU runs this recipe under float16 autocast with gradient scaling (pi-GAN);
    False for families that run chosen layers in float16 themselves (EG3D, as its official recipe)."""

    camera_source: Literal["pose", "dataset"]
    """Where the cameras of generated images come from: the generator's pose distribution (pi-GAN), or the
    labels of random dataset items (EG3D; the pose distribution when the dataset has no labels)."""
