"""The latent and camera of an inversion: a coarse search over the pose prior, then joint optimisation.

1. **Search** (:func:`coarse_search`): every pose of a grid over the model's prior (:func:`~.camera.pose_grid`)
   starts from the family's mean latent; all of them take ``search.steps`` Adam steps together (one batch, each
   pose with its own latent and camera, at ``search.resolution``), and the one with the lowest loss is kept. A
   few steps per pose tell a turned head from a frontal one far better than the mean latent alone would.
2. **Latent** (:func:`fit_latent`): from that pose, the stage-0 groups of the family's
   :class:`~.space.LatentSpace` and the camera for ``optim.steps``; then every group (e.g. W+ offsets) and the
   camera for ``optim.refine_steps``.

Steps are Adam with warmed-up, cosine-decayed rates; latents are optimised as offsets from the family's mean in spread
units, with the prior penalty ``optim.prior * mean(offset^2)``. The renderer's own random draws (jittered
families) use the same seed at every step (:class:`Renderer`), as ``render --latent`` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cameras import Cameras
from ..models.base import Generator3D, GeneratorOutput
from ..rendering import RenderConfig
from .camera import CameraAngles, pose_grid
from .config import InversionConfig, OptimConfig
from .losses import ReconstructionLoss, psnr
from .space import LatentSpace, SynthesisLatent

PITCH_MARGIN = 0.01
"""Pitch is kept in [margin, pi - margin] (radians) after every step: the look-at frame breaks at the poles."""


@dataclass(frozen=True)
class Renderer:
    """How an inversion renders a generator: one resolution and sampling setting, the same renderer seed each call."""

    render: RenderConfig
    """Sampling settings (the model's evaluation ones, with the inversion's samples per ray)."""
    resolution: int
    """Render resolution (the neural rendering one for families with super-resolution)."""
    sampling_seed: int = 0
    """Seed of the renderer's draws, re-seeded at every call."""

    def __call__(self, G: Generator3D, latent: SynthesisLatent, cameras: Cameras, *, resolution: int | None = None,
                 normals: bool = False) -> GeneratorOutput:
        generator = torch.Generator(device=G.device).manual_seed(self.sampling_seed)
        return G.synthesis(latent.w, cameras, condition=latent.condition, resolution=resolution or self.resolution,
                           render=self.render, normals=normals, generator=generator)


@dataclass
class InversionState:
    """B candidates: latent offsets (spread units, (B, ...) per group) and cameras."""

    offsets: dict[str, Tensor]
    angles: CameraAngles

    def rows(self, index) -> "InversionState":
        return InversionState({k: v[index].detach().clone() for k, v in self.offsets.items()},
                              self.angles.rows(index).detach())


@dataclass
class Phase:
    """One run of Adam steps: what it frees, for how long, at which rates and resolution."""

    name: str
    """Label in the history and the progress bar (search, latent, refine)."""
    groups: tuple[str, ...]
    """Latent groups optimised (the others stay where they are)."""
    steps: int
    lr: float
    camera_lr: float
    resolution: int
    loss: ReconstructionLoss
    """The loss at this phase's resolution."""


@dataclass
class History:
    """Per-step records of every phase (what the loss curve and the JSON show)."""

    rows: list[dict] = field(default_factory=list)

    def add(self, phase: str, terms: dict[str, Tensor], total: Tensor, image_psnr: Tensor, best: int) -> None:
        row = {"phase": phase, "step": len(self.rows), "loss": float(total[best])}
        row.update({k: float(v[best]) for k, v in terms.items()})
        row["psnr"] = float(image_psnr[best])
        self.rows.append(row)


WARMUP_FRACTION = 0.1
"""Fraction of a phase's steps over which its rates ramp up linearly: Adam's first steps move every coordinate by
the full rate, which would throw a converged latent off when a new phase restarts the optimiser."""


def cosine_factor(step: int, steps: int, final: float) -> float:
    """Rate multiplier at ``step`` of ``steps``: a linear ramp over the first :data:`WARMUP_FRACTION`, then a cosine
    from 1 down to ``final`` at the end."""
    if steps <= 1:
        return 1.0
    ramp = min(1.0, (step + 1) / max(1.0, WARMUP_FRACTION * steps))
    return ramp * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * step / (steps - 1))))


def resize_target(target: Tensor, size: int) -> Tensor:
    """(1, 3, size, size) of a (1, 3, H, W) target (bilinear, antialiased when shrinking)."""
    if target.shape[-2:] == (size, size):
        return target
    return F.interpolate(target, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=size < target.shape[-1])


def prior_penalty(offsets: dict[str, Tensor], groups: tuple[str, ...]) -> Tensor:
    """(B,) mean squared offset (spread units) over the elements of ``groups``."""
    parts = [offsets[g].flatten(1).square() for g in groups]
    return torch.cat(parts, 1).mean(1)


def _evaluate(G, space, renderer, phase, offsets, angles):
    out = renderer(G, space.latent(offsets), angles.cameras(G), resolution=phase.resolution)
    terms = phase.loss.terms(out.image)
    return out, terms, phase.loss.total(terms)


def run_phase(G: Generator3D, space: LatentSpace, renderer: Renderer, state: InversionState, phase: Phase,
              optim: OptimConfig, history: History, tick: Callable[[], None]) -> tuple[InversionState, Tensor]:
    """``phase.steps`` Adam steps on ``state`` (every candidate at once; candidates never mix: the objective is the
    sum of their losses). Returns the new state and each candidate's final loss (B,)."""
    offsets = {k: v.detach().clone().requires_grad_(k in phase.groups) for k, v in state.offsets.items()}
    yaw = state.angles.yaw.detach().clone().requires_grad_(optim.optimise_camera)
    pitch = state.angles.pitch.detach().clone().requires_grad_(optim.optimise_camera)
    params = [{"params": [offsets[g] for g in phase.groups], "lr": phase.lr, "base": phase.lr}]
    if optim.optimise_camera and phase.camera_lr > 0:
        params.append({"params": [yaw, pitch], "lr": phase.camera_lr, "base": phase.camera_lr})
    opt = torch.optim.Adam(params)
    for step in range(phase.steps):
        for group in opt.param_groups:
            group["lr"] = group["base"] * cosine_factor(step, phase.steps, optim.final_lr)
        out, terms, total = _evaluate(G, space, renderer, phase, offsets, CameraAngles(yaw, pitch))
        objective = total + optim.prior * prior_penalty(offsets, phase.groups)
        opt.zero_grad(set_to_none=True)
        objective.sum().backward()
        opt.step()
        with torch.no_grad():
            pitch.clamp_(PITCH_MARGIN, math.pi - PITCH_MARGIN)
            history.add(phase.name, terms, total, psnr(out.image, phase.loss.target), int(total.argmin()))
        tick()
    with torch.no_grad():  # the loss where the steps ended (the last step's loss is one step behind)
        _, _, final = _evaluate(G, space, renderer, phase, offsets, CameraAngles(yaw, pitch))
    state = InversionState({k: v.detach() for k, v in offsets.items()}, CameraAngles(yaw.detach(), pitch.detach()))
    return state, final


def stage_groups(space: LatentSpace, last_stage: int) -> tuple[str, ...]:
    """Names of the groups freed up to ``last_stage``."""
    return tuple(g.name for g in space.groups if g.stage <= last_stage)


def coarse_search(G: Generator3D, space: LatentSpace, renderer: Renderer, loss: ReconstructionLoss,
                  config: InversionConfig, history: History, tick: Callable[[], None]) -> InversionState:
    """The best pose of the grid over the prior after ``search.steps`` joint steps per pose (see the module)."""
    grid = pose_grid(G.config.pose, config.search, config.seed, device=G.device)
    state = InversionState(space.zero_offsets(len(grid.yaw)), grid)
    phase = Phase("search", stage_groups(space, space.stages[0]), config.search.steps, config.optim.lr,
                  config.optim.camera_lr, config.search.resolution, loss)
    state, final = run_phase(G, space, renderer, state, phase, config.optim, history, tick)
    return state.rows(slice(int(final.argmin()), int(final.argmin()) + 1))


def fit_latent(G: Generator3D, space: LatentSpace, renderer: Renderer, loss: ReconstructionLoss,
               state: InversionState, config: InversionConfig, history: History,
               tick: Callable[[], None]) -> InversionState:
    """The joint optimisation from the search's pose: stage-0 groups, then every group (see the module)."""
    o = config.optim
    first = Phase("latent", stage_groups(space, space.stages[0]), o.steps, o.lr, o.camera_lr, renderer.resolution, loss)
    state, _ = run_phase(G, space, renderer, state, first, o, history, tick)
    every = Phase("refine", stage_groups(space, space.stages[-1]), o.refine_steps, o.lr, o.camera_lr,
                  renderer.resolution, loss)
    state, _ = run_phase(G, space, renderer, state, every, o, history, tick)
    return state


__all__ = ["History", "InversionState", "PITCH_MARGIN", "Phase", "Renderer", "WARMUP_FRACTION", "coarse_search",
           "cosine_factor",
           "fit_latent", "prior_penalty", "resize_target", "run_phase", "stage_groups"]
