"""Training curricula as data: stages that change resolution, batch, samples per ray and learning rates.

A curriculum is a tuple of :class:`Stage` sorted by ``start``; stage k is active for
``stages[k].start <= step < stages[k+1].start``. When the resolution grows, the discriminator's new
block fades in over ``fade_steps`` steps (pi-GAN also fades in the very first stage, from step 0).
The fade-in and the density noise are :class:`~aware3d.training.schedule.Schedule` s derived from these
fields (:meth:`Curriculum.schedules`), keyed by step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..rendering import RenderConfig
from .schedule import NamedSchedule, Piece, Schedule


@dataclass(frozen=True)
class Stage:
    """One stage of a curriculum (the seeds' numbered curriculum entries)."""

    start: int
    """First step of this stage."""
    resolution: int
    """Training image size in pixels [img_size]."""
    batch_size: int
    """Global batch size, summed over all processes [batch_size]."""
    batch_split: int = 1
    """Each process's share is evaluated in this many sequential chunks (gradient accumulation) [batch_split]."""
    num_samples: int = 12
    """Coarse samples per ray [num_steps]."""
    num_importance: int | None = None
    """Fine samples per ray; None = as many as coarse (pi-GAN's hierarchical_sample), 0 = none."""
    g_lr: float = 6e-5
    """Generator learning rate [gen_lr]."""
    d_lr: float = 2e-4
    """Discriminator learning rate [disc_lr]."""


@dataclass(frozen=True)
class Curriculum:
    """Stages plus the schedules that run across them."""

    stages: tuple[Stage, ...]
    """Stages sorted by start; the first starts at step 0."""
    fade_steps: int = 10000
    """Steps over which a new discriminator block fades in after a resolution change [fade_steps]."""
    density_noise: float = 1.0
    """Std of the noise on raw density at step 0 (pi-GAN's nerf_noise), decaying linearly to 0 ..."""
    density_noise_steps: int = 5000
    """... over this many steps."""
    density_prior: float = 0.0
    """Strength of the ball-shaped raw-density prior at step 0 (:func:`~aware3d.rendering.renderer.ball_density_prior`:
    a shape in front of empty space to start from, so the generator does not settle on a flat painted sheet),
    decaying linearly to 0 ...; 0 = none (the seeds)."""
    density_prior_steps: int = 0
    """... over this many steps."""
    density_prior_radius: float = 0.1
    """Radius of the prior's ball around the world origin, world units (about the subject's half size)."""
    betas: tuple[float, float] = (0.0, 0.9)
    """Adam betas for G and D [betas]."""
    weight_decay: float = 0.0
    """Adam weight decay [weight_decay]."""

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("a curriculum needs at least one stage")
        if self.stages[0].start != 0:
            raise ValueError(f"the first curriculum stage must start at step 0, not {self.stages[0].start}")
        starts = [s.start for s in self.stages]
        if starts != sorted(set(starts)):
            raise ValueError(f"curriculum stage starts must be strictly increasing, got {starts}")
        for s in self.stages:
            if s.resolution < 4 or s.resolution & (s.resolution - 1):
                raise ValueError(f"stage at step {s.start}: resolution {s.resolution} is not a power of two >= 4")
            if s.batch_size < 1 or s.batch_split < 1 or s.batch_size % s.batch_split:
                raise ValueError(f"stage at step {s.start}: batch_size {s.batch_size} must be a positive multiple "
                                 f"of batch_split {s.batch_split}")
            if s.num_samples < 2:
                raise ValueError(f"stage at step {s.start}: num_samples must be >= 2")

    def stage_index(self, step: int) -> int:
        return max(i for i, s in enumerate(self.stages) if s.start <= step)

    def stage(self, step: int) -> Stage:
        """The stage active at ``step``."""
        return self.stages[self.stage_index(step)]

    def resolution_start(self, step: int) -> int:
        """The step at which the current resolution began (pi-GAN's last_upsample_step)."""
        i = self.stage_index(step)
        res = self.stages[i].resolution
        while i > 0 and self.stages[i - 1].resolution == res:
            i -= 1
        return self.stages[i].start

    def alpha(self, step: int) -> float:
        """Fade-in of the discriminator's newest block at ``step``, in [0, 1]."""
        return self.alpha_schedule().value_at(step)

    def noise_std(self, step: int) -> float:
        """Density noise std at ``step``."""
        return self.noise_schedule().value_at(step)

    def alpha_schedule(self) -> Schedule:
        """The fade-in by step: at each resolution change (and step 0) a ramp 0 -> 1 over ``fade_steps``,
        cut short by the next change; 1 throughout when ``fade_steps <= 0``."""
        if self.fade_steps <= 0:
            return Schedule.constant(1.0)
        starts = [s.start for i, s in enumerate(self.stages)
                  if i == 0 or s.resolution != self.stages[i - 1].resolution]
        return Schedule("step", tuple(Piece(start, 0.0, "linear", 1.0, self.fade_steps) for start in starts))

    def noise_schedule(self) -> Schedule:
        """The density noise std by step: ``density_noise`` at 0 decaying linearly to 0 at
        ``density_noise_steps`` (0 throughout when either is <= 0, as the seeds' max(0, ...))."""
        if self.density_noise_steps <= 0 or self.density_noise <= 0:
            return Schedule.constant(0.0)
        return Schedule.ramp(self.density_noise, 0.0, self.density_noise_steps, "step")

    def prior_schedule(self) -> Schedule:
        """The density prior's strength by step: ``density_prior`` at 0 decaying linearly to 0 at
        ``density_prior_steps`` (0 throughout when either is <= 0)."""
        if self.density_prior_steps <= 0 or self.density_prior <= 0:
            return Schedule.constant(0.0)
        return Schedule.ramp(self.density_prior, 0.0, self.density_prior_steps, "step")

    def schedules(self) -> tuple[NamedSchedule, ...]:
        """The schedules that run across the stages, named as the methods that evaluate them."""
        return (NamedSchedule("alpha", self.alpha_schedule(), "fade-in of the discriminator's newest block, 0..1"),
                NamedSchedule("noise_std", self.noise_schedule(), "std of the noise on raw density"),
                NamedSchedule("density_prior", self.prior_schedule(), "strength of the ball-shaped density prior"))

    def render_config(self, base: RenderConfig, step: int) -> RenderConfig:
        """``base`` (the model's training render settings) with this step's samples and noise, unchunked."""
        s = self.stage(step)
        return replace(base, num_samples=s.num_samples,
                       num_importance=s.num_samples if s.num_importance is None else s.num_importance,
                       noise_std=self.noise_std(step), density_prior=self.prior_schedule().value_at(step),
                       density_prior_radius=self.density_prior_radius, max_points=None)

    def boundaries(self) -> list[int]:
        return [s.start for s in self.stages]

    def images_seen(self, step: int) -> int:
        """Real images shown before ``step`` (the trainer adds each step's global batch size)."""
        total = 0
        for i, s in enumerate(self.stages):
            end = self.stages[i + 1].start if i + 1 < len(self.stages) else math.inf
            total += max(0, min(step, end) - s.start) * s.batch_size
        return int(total)

    def step_at_images(self, images: float) -> int:
        """The first step before which at least ``images`` real images have been shown."""
        shown = 0
        for i, s in enumerate(self.stages):
            end = self.stages[i + 1].start if i + 1 < len(self.stages) else math.inf
            if shown + (end - s.start) * s.batch_size >= images:
                return s.start + max(0, math.ceil((images - shown) / s.batch_size))
            shown += (end - s.start) * s.batch_size
        raise AssertionError("unreachable: the last stage never ends")
