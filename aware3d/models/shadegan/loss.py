"""ShadeGAN's training recipe: pi-GAN's (:class:`aware3d.losses.pigan.PiGANLoss`) plus lights drawn from the
model's prior, the shading phase-in, surface tracking (its band and samples-per-ray annealing) and the
tracker's depth loss, with the mapping network at 0.05x and the tracker at 10x the generator's rate.

Not (yet) reproduced from the official ``train.py``: the LPIPS term of the tracker loss (L1 only), and the
generator learning-rate factor ``num_steps / num_steps_max``. The tracker loss compares depths at the render
resolution (the official code upsamples the rendered depth to the tracker's 128 px).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor

from ...losses.base import Chunk, ParamGroup, StageState
from ...losses.gan import nonsaturating_g, top_k_logits
from ...losses.pigan import PiGANLoss, PiGANLossConfig
from ...models.base import Condition


@dataclass(frozen=True)
class ShadeGANLossConfig(PiGANLossConfig):
    """pi-GAN's loss weights plus ShadeGAN's schedules (the official curriculum keys in brackets)."""

    shading_start: int = 5000
    """Step where shading starts to phase in (``act_scheduler``: ratio 0 before)."""
    shading_ramp: int = 2000
    """Steps over which the shading ratio rises linearly from 0 to 1."""
    track_start: int = 5000
    """Step after which rays sample only the band around the tracked depth [start_step]."""
    delta_max: float = 0.24
    """Band width at ``track_start`` [delta_max]."""
    delta_min: float = 0.06
    """Band width reached asymptotically [delta_min]."""
    track_beta: float = 3e-5
    """Decay rate of the band width and the samples per ray [beta]."""
    num_samples_min: int = 6
    """Coarse samples per ray reached asymptotically (from the stage's) [num_steps_min]."""
    depth_lambda: float = 1.0
    """Weight of the tracker's L1 loss against the detached rendered depth (both mapped to [-1, 1])."""
    mapping_lr_scale: float = 0.05
    """Learning-rate factor of the mapping network (the official ``unique_lr``)."""
    tracker_lr_scale: float = 10.0
    """Learning-rate factor of the surface tracker."""


class ShadeGANLoss(PiGANLoss):
    """The recipe; see the module docstring."""

    config: ShadeGANLossConfig

    def light_ratio(self, step: int) -> float:
        """Shading phase-in ratio ``clamp((step - start) / ramp, 0, 1)``."""
        cfg = self.config
        return min(1.0, max(0.0, (step - cfg.shading_start) / cfg.shading_ramp))

    def delta(self, step: int) -> float:
        """Band width: -1 (full range) up to ``track_start``, then ``(max - min) e^{-beta t} + min``."""
        cfg = self.config
        if step <= cfg.track_start:
            return -1.0
        return (cfg.delta_max - cfg.delta_min) * math.exp(-cfg.track_beta * (step - cfg.track_start)) + cfg.delta_min

    def render_config(self, stage: StageState):
        """The stage's render settings with the samples per ray annealed after ``track_start`` (Python round)."""
        cfg, render = self.config, stage.render
        if stage.step <= cfg.track_start:
            return render
        decay = math.exp(-cfg.track_beta * (stage.step - cfg.track_start))
        n = round((render.num_samples - cfg.num_samples_min) * decay + cfg.num_samples_min)
        return replace(render, num_samples=n, num_importance=n if render.num_importance else 0)

    def prepare(self, chunk: Chunk, stage: StageState) -> Chunk:
        """Each generated image gets a light drawn from the model's prior (from the chunk's seeded generator)."""
        light = self.G.sample_light(len(chunk.z), generator=chunk.generator)
        return chunk.with_condition(Condition(light=light))

    def param_groups(self, module: Literal["G", "D"], net: torch.nn.Module) -> list[ParamGroup]:
        if module == "D":
            return super().param_groups(module, net)
        mapping = tuple(net.mapping_network.parameters())
        tracker = tuple(net.tracker.parameters()) if net.tracker is not None else ()
        taken = {id(p) for p in (*mapping, *tracker)}
        rest = tuple(p for p in net.parameters() if id(p) not in taken)
        groups = [ParamGroup("G", rest), ParamGroup("G.mapping", mapping, self.config.mapping_lr_scale)]
        if tracker:
            groups.append(ParamGroup("G.tracker", tracker, self.config.tracker_lr_scale))
        return groups

    def _render(self, chunk: Chunk, stage: StageState):
        return self.G(chunk.z, chunk.cameras, resolution=stage.resolution, render=self.render_config(stage),
                      generator=chunk.generator, condition=chunk.condition, delta=self.delta(stage.step),
                      light_ratio=self.light_ratio(stage.step))

    def _generate(self, chunk: Chunk, stage: StageState) -> Tensor:
        return self._render(chunk, stage).image

    def _depth_loss(self, out, render) -> Tensor:
        """L1 between the tracker's depth and the detached rendered depth, both mapped from [near, far] to [-1, 1]."""
        def unit(d: Tensor) -> Tensor:
            return (d - render.near) / (render.far - render.near) * 2 - 1
        return (unit(out.maps["tracker_depth"]) - unit(out.depth.detach())).abs().mean()

    def loss(self, phase, chunk: Chunk, stage: StageState) -> tuple[Tensor, dict[str, Tensor]]:
        if phase.module != "G":
            return super().loss(phase, chunk, stage)
        cfg = self.config
        out = self._render(chunk, stage)
        fake = self.D(out.image, stage.alpha)
        adv = nonsaturating_g(top_k_logits(fake.logits, cfg.topk_fraction(stage.step)))
        ident, stats = self._identity_terms(fake, chunk)
        loss = adv + ident
        logs = {"G/adv": adv.detach(), **{f"G/{k}": v for k, v in stats.items()}}
        if "tracker_depth" in out.maps and cfg.depth_lambda:
            depth = self._depth_loss(out, self.render_config(stage))
            loss = loss + cfg.depth_lambda * depth
            logs["G/tracker_depth"] = depth.detach()
        return loss, logs
