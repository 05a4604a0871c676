"""The contract between the trainer and a family's loss recipe.

A training step runs the recipe's *phases* in order (e.g. pi-GAN: D then G; StyleGAN2/EG3D: G main,
G reg, D main, D reg). A phase updates one module (``G`` or ``D``) and runs only on steps where
``step % interval == 0``: regularisers evaluated lazily every ``interval`` steps are scaled by
``interval`` so their average strength is unchanged (StyleGAN2's lazy regularisation). For each phase
the trainer splits the global batch into chunks (ranks x ``batch_split``), asks the recipe for the loss
of each chunk, back-propagates ``loss / number_of_chunks``, all-reduces gradients across ranks, checks
for NaN/inf, clips and steps the optimiser. The recipe never owns an optimiser and never steps.

Hooks with defaults in :class:`RecipeBase` (families override what they need):

* :meth:`RecipeBase.prepare` sees each chunk before its loss: a recipe draws its own conditions for the
  generated images there (a light code, a morphable-model code, a class label: ``chunk.condition``), or
  patches, from the chunk's seeded ``generator``; it may read the real images' dataset extras
  (``chunk.real_extras``: light direction, class label, ...).
* :meth:`RecipeBase.param_groups` splits a module's parameters into optimiser groups with their own
  learning-rate scale (ShadeGAN: the surface tracker at 10x G's rate, the mapping network at 0.05x); the
  trainer multiplies the curriculum's learning rate by each group's ``lr_scale``.
* :meth:`RecipeBase.lr_factor` multiplies a group's rate once more, by step (ShadeGAN: G's rate follows the
  annealed samples per ray, ``num_steps / num_steps_max``); 1 by default. The trainer sets every group's rate
  to ``stage lr x lr_scale x lr_factor`` before each step.
* Every image the discriminator sees passes through ``chunk.augment`` (ADA, :mod:`aware3d.augment.run`; the
  identity unless the run augments), and D's logits on real images go to ``chunk.augment.observe_real``.
* The recipe's config implements :class:`aware3d.training.schedule.HasSchedules`: ``schedules()`` names its
  schedules (``aware3d presets --show`` prints them; a config with none inherits ``NoSchedules``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

import torch
from torch import Tensor

from ..augment.run import DAugment
from ..cameras import Cameras
from ..models.base import Condition
from ..rendering import RandomDraws, RenderConfig


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
    real_extras: dict[str, Tensor] = field(default_factory=dict)
    """The real images' dataset extras, rows as ``real_images`` (see :mod:`aware3d.data.base`: ``light_dir``,
    ``class_label``, ``mask``, ...; only what the dataset provides)."""
    condition: Condition | None = None
    """What the generated images are conditioned on (set by the recipe's :meth:`RecipeBase.prepare`)."""
    draws: RandomDraws | None = None
    """Injected uniforms for the generated images' ray jitter / importance sampling, instead of draws from
    ``generator`` (parity tests replaying another implementation's stream; the trainer leaves it None)."""
    augment: DAugment = field(default_factory=DAugment)
    """Every image D sees goes through it (ADA; the identity unless the run augments), and D's logits on real
    images are reported to it (:meth:`~aware3d.augment.run.DAugment.observe_real`)."""

    def with_condition(self, condition: Condition | None) -> "Chunk":
        """This chunk with the generated images' condition set."""
        return replace(self, condition=condition)


def resample_real_extra(chunk: Chunk, name: str) -> Tensor:
    """One value of the real images' dataset extra ``name`` per generated image ((b, ...) rows of
    ``chunk.real_extras[name]`` drawn uniformly with replacement from ``chunk.generator``, on the latents'
    device). The real rows are a uniform sample of the dataset, so the draws follow the dataset's distribution
    of that extra, as the StyleGAN-family loops label fakes with the labels of random dataset items."""
    values = chunk.real_extras[name]
    gen = chunk.generator
    rows = torch.randint(0, values.shape[0], (chunk.z.shape[0],), generator=gen, device=gen.device)
    return values[rows.to(values.device)].to(chunk.z.device)


def checked_real_classes(chunk: Chunk, num_classes: int, model: str, class_keys: tuple[str, str]) -> Tensor | None:
    """(b,) the real images' classes for a class-conditional model with ``num_classes`` K (None when K = 0).

    Refuses data without class labels and labels >= K with the fix; ``model`` names the model in the message
    ("this EG3D model") and ``class_keys`` are the G and D config keys of K (``model.num_classes``, ...)."""
    if num_classes == 0:
        return None
    unconditional = " ".join(f"{k}=0" for k in class_keys)
    if "class_label" not in chunk.real_extras:
        raise ValueError(f"{model} is class-conditional ({num_classes} classes) but the dataset has no class labels: "
                         "train it on a zip whose dataset.json has integer class 'labels' beside EpiGRAF "
                         "'camera_angles', e.g. built from images in CLASS/OBJECT/ folders by `aware3d dataset "
                         "--source IMAGES --labels-from-folders --out data.zip` (as EpiGRAF's collect_labels.py), or "
                         f"make it unconditional with --override {unconditional}")
    labels = chunk.real_extras["class_label"]
    if labels.numel() and int(labels.max()) >= num_classes:
        raise ValueError(f"the dataset has class label {int(labels.max())} but {model} has {num_classes} classes "
                         f"(labels 0..{num_classes - 1}); set --override {' '.join(f'{k}=K' for k in class_keys)} "
                         "with K the dataset's number of classes")
    return labels


@dataclass(frozen=True)
class ParamGroup:
    """Parameters of one module updated with a scaled learning rate."""

    name: str
    """Shown in logs (``lr/G.mapping`` ...)."""
    params: tuple[torch.nn.Parameter, ...]
    """The parameters (every parameter of the module belongs to exactly one group)."""
    lr_scale: float = 1.0
    """Multiplies the curriculum's learning rate for this module."""


class RecipeBase:
    """Defaults of the optional recipe hooks (see the module docstring); recipes subclass it."""

    def prepare(self, chunk: Chunk, stage: StageState) -> Chunk:
        """The chunk a phase's loss sees: unchanged by default."""
        return chunk

    def param_groups(self, module: Literal["G", "D"], net: torch.nn.Module) -> list[ParamGroup]:
        """Optimiser groups of ``net`` (the module named ``module``): one group at the stage's rate by default."""
        return [ParamGroup(module, tuple(net.parameters()))]

    def lr_factor(self, group: str, stage: StageState) -> float:
        """Factor on the learning rate of the parameter group named ``group`` (a :class:`ParamGroup` name) at
        ``stage``, on top of the stage's rate and the group's ``lr_scale``: 1 by default."""
        return 1.0


class LossRecipe(Protocol):
    """A family's losses. Built with the generator and discriminator it trains."""

    def phases(self) -> list[Phase]:
        """The phases of one step, in order."""
        ...

    def prepare(self, chunk: Chunk, stage: StageState) -> Chunk:
        """The chunk a phase's loss sees (draw conditions, patches); :class:`RecipeBase` returns it unchanged."""
        ...

    def param_groups(self, module: Literal["G", "D"], net: torch.nn.Module) -> list[ParamGroup]:
        """Optimiser groups with learning-rate scales; :class:`RecipeBase` gives one group."""
        ...

    def lr_factor(self, group: str, stage: StageState) -> float:
        """Per-step factor on a group's learning rate; :class:`RecipeBase` gives 1."""
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
