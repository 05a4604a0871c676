"""pi-GAN's training losses (the seeds' recipe, shared by ShadeGAN and CGOF).

One step is a D update then a G update:

* D: ``softplus(D(fake)) + softplus(-D(real))``, plus R1 on the reals ``r1_gamma / 2 * E||grad||^2``
  (every step, or lazily every ``r1_interval`` steps), plus the pose identity term
  ``pos_lambda * dist(D_pose(fake), (pitch, yaw))`` and the latent identity term
  ``z_lambda * dist(D_latent(fake), z)``, ``dist`` the config's ``identity_loss`` (smooth L1 by default;
  the official pi-GAN and ShadeGAN ``train.py`` use the mean squared error).
* G: ``softplus(-D(fake))`` over the top-k fakes (k fraction ``max(0.99 ** (step / topk_interval), topk_v)``),
  plus the same pose and latent identity terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cameras.poses import angles_from_cam2world, from_eg3d_label
from ..errors import ConfigError
from ..models.base import Generator3D
from ..nn.progressive_discriminator import ProgressiveDiscriminator
from ..training.schedule import NamedSchedule, Piece, Schedule
from .base import Chunk, Phase, RecipeBase, StageState
from .silhouette import check_discriminator_channels, fake_silhouette, real_silhouette
from .gan import logistic_d, nonsaturating_g, r1_penalty, top_k_logits


@dataclass(frozen=True)
class PiGANLossConfig:
    """Weights and schedules of pi-GAN's losses (the seeds' curriculum keys in brackets)."""

    r1_gamma: float = 0.2
    """R1 weight on real images [r1_lambda]; the penalty is gamma / 2 * E||grad D(x)||^2."""
    r1_interval: int = 1
    """Evaluate R1 every this many steps (1 = every step, as pi-GAN; >1 = lazy, scaled by the interval)."""
    pos_lambda: float = 15.0
    """Weight of the pose identity loss: D regresses the generated camera's (pitch, yaw) [pos_lambda]."""
    z_lambda: float = 0.0
    """Weight of the latent identity loss: D regresses z [z_lambda]."""
    silhouette: bool = False
    """Show D a fourth channel after the colour: the real images' foreground mask and the generated images'
    opacity, both mapped to [-1, 1] (needs a dataset with masks and ``discriminator.in_channels=4``). D then
    compares silhouettes seen from each camera, which a flat sheet or a fog cannot match."""
    real_pos_lambda: float = 0.0
    """Weight of D's pose regression on the *real* images' dataset cameras (0 = off, the seeds): with it D's pose
    head learns what each view really looks like, so G's pose term asks every fake to look like its camera
    (a flat sheet painted with one face does not). Needs a dataset with cameras."""
    topk_v: float = 0.6
    """Smallest fraction of fakes kept for G's loss [topk_v]; 1 disables top-k."""
    topk_interval: int = 2000
    """The kept fraction decays as 0.99 ** (step / topk_interval) down to topk_v [topk_interval]."""
    grad_clip: float | None = 10.0
    """Max gradient norm for G and D updates [grad_clip]; None = no clipping."""
    identity_loss: Literal["smooth_l1", "mse"] = "smooth_l1"
    """Distance of the pose / latent identity terms: "mse" is the official ``torch.nn.MSELoss()``;
    "smooth_l1" (the default, kept so existing configs keep their meaning) is less sensitive to outliers."""

    def topk_schedule(self) -> Schedule:
        """The fraction of fakes kept for G's loss by step: ``min(1, max(0.99 ** (step / topk_interval),
        topk_v))``, written as a decay from 1 with the floor topk_v, 1 throughout when topk_v >= 1 (the same
        values, as ``0.99 ** (step / topk_interval) <= 1`` for step >= 0)."""
        if self.topk_v >= 1:
            return Schedule.constant(1.0)
        if self.topk_interval <= 0:
            raise ValueError(f"topk_interval must be > 0 steps, got {self.topk_interval}")
        return Schedule("step", (Piece(0, 1.0, "exponential", self.topk_v, self.topk_interval, 0.99),))

    def topk_fraction(self, step: int) -> float:
        """Fraction of the fakes, those D scores highest, that G's loss keeps at ``step``."""
        return self.topk_schedule().value_at(step)

    def schedules(self) -> tuple[NamedSchedule, ...]:
        """Every schedule of the recipe, named as the methods that evaluate them."""
        return (NamedSchedule("topk_fraction", self.topk_schedule(), "fraction of fakes kept for G's loss (top-k)"),)


def pitch_yaw(angles: Tensor) -> Tensor:
    """pi-GAN's pose target (pitch, yaw) from (yaw, pitch) angles (B, 2)."""
    return angles.flip(-1)


class PiGANLoss(RecipeBase):
    """The recipe; ``G`` and ``D`` may be the same modules the trainer optimises (no wrappers needed)."""

    def __init__(self, G: Generator3D, D: torch.nn.Module, config: PiGANLossConfig = PiGANLossConfig()):
        if isinstance(D, ProgressiveDiscriminator):
            check_discriminator_channels(D.config.in_channels, "discriminator.in_channels", config.silhouette)
        self.G, self.D, self.config = G, D, config

    def phases(self) -> list[Phase]:
        cfg = self.config
        if cfg.r1_gamma == 0 or cfg.r1_interval == 1:
            return [Phase("D_both" if cfg.r1_gamma else "D_main", "D"), Phase("G_main", "G")]
        return [Phase("D_main", "D"), Phase("D_reg", "D", cfg.r1_interval), Phase("G_main", "G")]

    autocast: bool = True
    """--amp on a GPU: float16 autocast with gradient scaling (the seeds' mixed precision)."""
    camera_source: Literal["pose", "dataset"] = "pose"
    """pi-GAN renders generated images from the generator's pose distribution."""

    def grad_clip(self, module: Literal["G", "D"]) -> float | None:
        return self.config.grad_clip

    def render_resolution(self, stage: StageState) -> int:
        return stage.resolution

    def _generate(self, chunk: Chunk, stage: StageState) -> Tensor:
        out = self.G(chunk.z, chunk.cameras, resolution=stage.resolution, render=stage.render, generator=chunk.generator,
                     condition=chunk.condition, draws=chunk.draws)
        return fake_silhouette(out.image, out.opacity) if self.config.silhouette else out.image

    @property
    def _masks(self) -> int:
        """How many trailing channels of D's inputs are masks, which augmentation only moves (the silhouette)."""
        return int(self.config.silhouette)

    def _real_inputs(self, chunk: Chunk) -> Tensor:
        """The real images as D sees them: colour, and with ``silhouette`` the dataset's mask as a 4th channel."""
        return real_silhouette(chunk, "loss.silhouette") if self.config.silhouette else chunk.real_images

    def _identity_terms(self, pred, chunk: Chunk) -> tuple[Tensor, dict[str, Tensor]]:
        cfg, stats = self.config, {}
        if cfg.identity_loss not in ("smooth_l1", "mse"):
            raise ValueError(f"identity_loss must be 'smooth_l1' or 'mse', got {cfg.identity_loss!r}")
        dist = F.mse_loss if cfg.identity_loss == "mse" else F.smooth_l1_loss
        loss = torch.zeros((), device=chunk.z.device)
        if cfg.pos_lambda:
            pos = dist(pred.pose, pitch_yaw(chunk.angles).to(pred.pose))
            loss = loss + cfg.pos_lambda * pos
            stats["pose"] = pos.detach()
        if cfg.z_lambda:
            lat = dist(pred.latent, chunk.z)
            loss = loss + cfg.z_lambda * lat
            stats["latent"] = lat.detach()
        return loss, stats

    def _real_pose_term(self, pred, chunk: Chunk) -> Tensor:
        """Distance of D's pose prediction on the real images to their dataset cameras' (pitch, yaw)."""
        if not chunk.real_labels.abs().sum(-1).gt(0).all():
            raise ConfigError("loss.real_pos_lambda > 0 needs the dataset's cameras, but this batch has images "
                              "without one: use a dataset with cameras (synthetic, or a dataset.json with labels) "
                              "or set loss.real_pos_lambda=0")
        cam2world, _ = from_eg3d_label(chunk.real_labels)
        yaw, pitch, _ = angles_from_cam2world(cam2world.float())
        dist = F.mse_loss if self.config.identity_loss == "mse" else F.smooth_l1_loss
        return dist(pred.pose, torch.stack([pitch, yaw], -1).to(pred.pose))

    def loss(self, phase: Phase, chunk: Chunk, stage: StageState) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.config
        if phase.module == "G":
            fake = self.D(chunk.augment(self._generate(chunk, stage), self._masks), stage.alpha)
            adv = nonsaturating_g(top_k_logits(fake.logits, cfg.topk_fraction(stage.step)))
            ident, stats = self._identity_terms(fake, chunk)
            return adv + ident, {"G/adv": adv.detach(), **{f"G/{k}": v for k, v in stats.items()}}

        with_main = phase.name in ("D_main", "D_both")
        with_r1 = phase.name in ("D_reg", "D_both")
        loss = torch.zeros((), device=chunk.z.device)
        stats: dict[str, Tensor] = {}
        real_images = self._real_inputs(chunk).detach().requires_grad_(with_r1)
        real = self.D(chunk.augment(real_images, self._masks), stage.alpha)
        chunk.augment.observe_real(real.logits)
        if with_main:
            with torch.no_grad():
                fake_images = self._generate(chunk, stage)
            fake = self.D(chunk.augment(fake_images, self._masks), stage.alpha)
            adv = logistic_d(real.logits, fake.logits)
            ident, ident_stats = self._identity_terms(fake, chunk)
            loss = loss + adv + ident
            if cfg.real_pos_lambda:
                real_pose = self._real_pose_term(real, chunk)
                loss = loss + cfg.real_pos_lambda * real_pose
                stats["D/real_pose"] = real_pose.detach()
            stats.update({"D/adv": adv.detach(), "D/real": real.logits.detach().mean(),
                          "D/fake": fake.logits.detach().mean(), **{f"D/{k}": v for k, v in ident_stats.items()}})
        if with_r1:
            r1 = r1_penalty(real.logits, real_images)
            loss = loss + r1 * (cfg.r1_gamma / 2) * phase.interval
            stats["D/r1"] = r1.detach()
        return loss, stats
