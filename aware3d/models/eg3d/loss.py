"""EG3D's training losses (the official ``StyleGAN2Loss`` of NVlabs/eg3d, written for our trainer).

Four phases, StyleGAN2's lazy regularisation:

* ``G_main`` (every step): ``softplus(-D(G(z, c)))``.
* ``G_reg`` (every ``density_reg_interval`` steps, scaled by it): density smoothness
  ``density_reg * |sigma(x) - sigma(x + eps)|`` at random points x of the cube, ``eps ~ N(0, p_dist^2)``.
* ``D_main`` (every step): ``softplus(D(G(z, c))) + softplus(-D(x_real))``.
* ``D_reg`` (every ``r1_interval`` steps, scaled by it): R1 ``r1_gamma / 2 * E||grad D||^2`` on the real
  image *and* its raw (low-resolution) version, since the dual discriminator sees both.

Around them, the official schedules, all functions of the number of real images shown (``kimg``):

* generator pose conditioning (GPC): the mapping network is conditioned on another sample's camera with a
  probability fading from 1 to ``gpc_reg_prob`` over ``gpc_reg_fade_kimg`` (None: conditioned on zeros);
* the images shown to the discriminator are blurred with a Gaussian whose sigma fades from
  ``blur_init_sigma`` to 0 over ``blur_fade_kimg`` (the raw real images are blurred too);
* the neural rendering resolution moves from ``neural_rendering_resolution_initial`` to ``..._final``
  over ``neural_rendering_resolution_fade_kimg``; real raw images are the real images resized to it.

Generated images are rendered from the cameras of random dataset items (``camera_source = "dataset"``),
as the official loop does; the discriminator is conditioned on the rendering camera.

Class-conditional models (``num_classes`` K > 0 on G and D): :meth:`EG3DLoss.prepare` gives each fake the class
of a real image of its chunk drawn with replacement (the real batch is a uniform sample of the dataset, so the
fakes follow the dataset's class frequencies, as the official loops' labels of random dataset items); G's mapping
and D's label mapping see [camera label, one-hot class], GPC swapping and zeroing acting on the camera only.
Reals go to D with their dataset cameras and classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ...augment.run import augment_pair
from ...losses.base import Chunk, Phase, RecipeBase, StageState, checked_real_classes, resample_real_extra
from ...losses.gan import gaussian_blur, logistic_d, nonsaturating_g
from ...losses.silhouette import check_discriminator_channels, fake_silhouette, real_silhouette
from ...nn.stylegan2.discriminator import FilterMode, filtered_resizing
from ...training.schedule import NamedSchedule, Schedule
from ..base import Condition
from .generator import EG3DGenerator, EG3DOutput


@dataclass(frozen=True)
class EG3DLossConfig:
    """Weights and schedules of EG3D's losses (the official ``train.py`` option in brackets)."""

    r1_gamma: float = 1.0
    """R1 weight on real images (final and raw) [--gamma]; the penalty is gamma / 2 * E||grad D(x)||^2."""
    r1_interval: int = 16
    """Lazy R1: evaluated every this many steps and scaled by it (StyleGAN2's D_reg_interval)."""
    gpc_reg_prob: float | None = 0.5
    """Generator pose conditioning: probability of conditioning the mapping on another sample's camera once
    faded in [--gpc_reg_prob]; None conditions on zeros (--gen_pose_cond=False)."""
    gpc_reg_fade_kimg: float = 1000.0
    """The swap probability fades from 1 to gpc_reg_prob over this many thousand images [--gpc_reg_fade_kimg]."""
    density_reg: float = 0.25
    """Weight of the density smoothness regulariser [--density_reg]; 0 disables the G_reg phase."""
    density_reg_p_dist: float = 0.004
    """Std of the perturbation of the regulariser's points, world units [--density_reg_p_dist]."""
    density_reg_interval: int = 4
    """Lazy density regularisation: every this many steps, scaled by it (StyleGAN2's G_reg_interval)."""
    density_reg_points: int = 1000
    """Random points per sample for the density regulariser."""
    density_reg_extent: float = 1.0
    """The points are uniform in [-extent, extent]^3, world units (official: 1)."""
    blur_init_sigma: float = 10.0
    """Initial sigma (pixels) of the blur of the images the discriminator sees [--blur_init_sigma] ..."""
    blur_fade_kimg: float = 200.0
    """... fading to 0 over this many thousand images [--blur_fade_kimg x batch / 32]; 0 = never blur."""
    blur_raw_target: bool = True
    """Also blur the real raw images (the official default)."""
    neural_rendering_resolution_initial: int = 64
    """Neural rendering resolution at the start of training [--neural_rendering_resolution_initial]."""
    neural_rendering_resolution_final: int | None = None
    """Final neural rendering resolution (None: stay at the initial one) [--neural_rendering_resolution_final]."""
    neural_rendering_resolution_fade_kimg: float = 1000.0
    """Thousands of images over which the resolution moves to the final one [--neural_rendering_resolution_fade_kimg]."""
    filter_mode: FilterMode = "antialiased"
    """How real images are resized to the neural rendering resolution for the raw branch."""
    grad_clip: float | None = None
    """Max gradient norm of G and D updates; None = no clipping (official)."""
    silhouette: bool = False
    """Give both of D's images a silhouette channel (:mod:`aware3d.losses.silhouette`: real masks, generated
    opacity; not in the official code): needs a dataset with masks and ``discriminator.img_channels=4``."""

    def __post_init__(self) -> None:
        if self.r1_interval < 1 or self.density_reg_interval < 1:
            raise ValueError("r1_interval and density_reg_interval must be >= 1 (1 = every step)")
        if self.gpc_reg_prob is not None and not 0 <= self.gpc_reg_prob <= 1:
            raise ValueError(f"gpc_reg_prob must be in [0, 1] or None, got {self.gpc_reg_prob}")
        if self.neural_rendering_resolution_initial < 4:
            raise ValueError("neural_rendering_resolution_initial must be >= 4 pixels")

    # -- schedules (of the number of real images shown; official formulas, see training.schedule) ------
    def swapping_prob_schedule(self) -> Schedule | None:
        """GPC's swap probability by images shown: 1 fading to gpc_reg_prob over gpc_reg_fade_kimg
        (at once when <= 0); None without pose conditioning."""
        if self.gpc_reg_prob is None:
            return None
        if self.gpc_reg_fade_kimg <= 0:
            return Schedule.constant(self.gpc_reg_prob, "image")
        return Schedule.ramp(1.0, self.gpc_reg_prob, self.gpc_reg_fade_kimg * 1e3, "image")

    def blur_sigma_schedule(self) -> Schedule:
        """The blur sigma (pixels) by images shown: blur_init_sigma fading to 0 over blur_fade_kimg."""
        if self.blur_fade_kimg <= 0:
            return Schedule.constant(0.0, "image")
        return Schedule.ramp(self.blur_init_sigma, 0.0, self.blur_fade_kimg * 1e3, "image")

    def neural_rendering_resolution_schedule(self) -> Schedule:
        """The neural rendering resolution (pixels, rounded) by images shown: the initial one moving to
        the final one over neural_rendering_resolution_fade_kimg (at once when <= 0)."""
        initial, final = self.neural_rendering_resolution_initial, self.neural_rendering_resolution_final
        if final is None:
            return Schedule.constant(initial, "image", integer=True)
        return Schedule.ramp(initial, final, self.neural_rendering_resolution_fade_kimg * 1e3, "image", integer=True)

    def schedules(self) -> tuple[NamedSchedule, ...]:
        """Every schedule of the recipe, named as the methods that evaluate them."""
        gpc = self.swapping_prob_schedule()
        return ((() if gpc is None else (NamedSchedule(
                    "swapping_prob", gpc, "probability of conditioning G's mapping on another sample's camera"),))
                + (NamedSchedule("blur_sigma", self.blur_sigma_schedule(), "sigma (pixels) of the blur of D's images"),
                   NamedSchedule("neural_rendering_resolution", self.neural_rendering_resolution_schedule(),
                                 "size (pixels) of the rendered (raw) images")))

    def swapping_prob(self, images_seen: int) -> float | None:
        """GPC's probability of conditioning on another sample's camera (None: condition on zeros)."""
        schedule = self.swapping_prob_schedule()
        return None if schedule is None else schedule.value_at(images_seen)

    def blur_sigma(self, images_seen: int) -> float:
        """Sigma in pixels of the blur of the images the discriminator sees."""
        return self.blur_sigma_schedule().value_at(images_seen)

    def neural_rendering_resolution(self, images_seen: int) -> int:
        """The neural rendering resolution (pixels) at this point of training."""
        return self.neural_rendering_resolution_schedule().value_at(images_seen)


def swap_conditioning(c: Tensor, swapping_prob: float | None, generator: torch.Generator | None,
                      per_sample: bool = True) -> Tensor:
    """GPC: each row of the (B, 25) labels is replaced by the previous row's (``roll`` by one) with
    probability ``swapping_prob``; None gives zeros (no pose conditioning). ``per_sample=False`` makes one
    draw for the whole batch (the official density regulariser does that)."""
    if swapping_prob is None:
        return torch.zeros_like(c)
    u = torch.rand((c.shape[0] if per_sample else 1, 1), generator=generator, device=c.device)
    return torch.where(u < swapping_prob, torch.roll(c, 1, 0), c)


class EG3DLoss(RecipeBase):
    """The recipe over an :class:`EG3DGenerator` and a :class:`DualDiscriminator`."""

    autocast: bool = False
    """No autocast: the generator's and discriminator's num_fp16_res blocks run in float16 on a GPU by
    themselves, with their conv clamps, as the official recipe."""
    camera_source: Literal["dataset", "pose"] = "dataset"
    """Generated images use the cameras of random dataset items (the generator's pose distribution when
    the dataset has no labels)."""

    def __init__(self, G: EG3DGenerator, D: torch.nn.Module, config: EG3DLossConfig = EG3DLossConfig()):
        d_classes = getattr(D.config, "num_classes", 0)
        if d_classes != G.config.num_classes:
            raise ValueError(f"the discriminator has num_classes {d_classes} but the generator "
                             f"{G.config.num_classes}; set both to the dataset's number of classes "
                             "(--override model.num_classes=K discriminator.num_classes=K)")
        check_discriminator_channels(D.config.img_channels, "discriminator.img_channels", config.silhouette)
        self.G, self.D, self.config = G, D, config

    def phases(self) -> list[Phase]:
        cfg = self.config
        phases = [Phase("G_main", "G")]
        if cfg.density_reg > 0:
            phases.append(Phase("G_reg", "G", cfg.density_reg_interval))
        phases.append(Phase("D_main", "D"))
        if cfg.r1_gamma > 0:
            phases.append(Phase("D_reg", "D", cfg.r1_interval))
        return phases

    def grad_clip(self, module: Literal["G", "D"]) -> float | None:
        return self.config.grad_clip

    def render_resolution(self, stage: StageState) -> int:
        """The neural rendering resolution of generated images at this stage."""
        return self.config.neural_rendering_resolution(stage.images_seen)

    def prepare(self, chunk: Chunk, stage: StageState) -> Chunk:
        """The chunk unchanged for an unconditional model; for a class-conditional one, with its fakes' classes:
        the classes of real images of the chunk drawn with replacement from ``chunk.generator`` (the dataset's
        class distribution)."""
        if self.G.config.num_classes == 0:
            return chunk
        self.real_class_labels(chunk)  # a dataset without fitting classes fails here, before anything is rendered
        return chunk.with_condition(Condition(class_label=resample_real_extra(chunk, "class_label")))

    # -- pieces ----------------------------------------------------------------------------------
    def _mapping(self, chunk: Chunk, stage: StageState, update_emas: bool, per_sample: bool = True) -> Tensor:
        c_gen = swap_conditioning(chunk.cameras.eg3d_label(), self.config.swapping_prob(stage.images_seen),
                                  chunk.generator, per_sample)
        return self.G.mapping(chunk.z, cameras=c_gen, update_emas=update_emas, condition=chunk.condition)

    def _generate(self, chunk: Chunk, stage: StageState, update_emas: bool = False) -> EG3DOutput:
        ws = self._mapping(chunk, stage, update_emas)
        return self.G.synthesis(ws, chunk.cameras, neural_rendering_resolution=self.render_resolution(stage),
                                render=stage.render, noise_mode="random", generator=chunk.generator,
                                condition=chunk.condition)

    def _fake_pair(self, fake: EG3DOutput) -> tuple[Tensor, Tensor]:
        """The generated (final, raw) images as D sees them, each with the opacity channel under ``silhouette``."""
        if not self.config.silhouette:
            return fake.image, fake.image_raw
        return fake_silhouette(fake.image, fake.opacity), fake_silhouette(fake.image_raw, fake.opacity)

    def _discriminate(self, image: Tensor, image_raw: Tensor, c: Tensor, class_label: Tensor | None,
                      stage: StageState, chunk: Chunk) -> Tensor:
        # As the official run_D: only the final image is blurred here (real raw images were blurred before).
        image = gaussian_blur(image, self.config.blur_sigma(stage.images_seen))
        if chunk.augment.pipe is not None:
            image, image_raw = augment_pair(image, image_raw, chunk.augment, masks=int(self.config.silhouette))
        if class_label is None:  # the unconditional call, exactly as before class conditioning existed
            return self.D(image, image_raw, c, generator=chunk.generator)
        return self.D(image, image_raw, c, class_label=class_label, generator=chunk.generator)

    def real_class_labels(self, chunk: Chunk) -> Tensor | None:
        """(b,) the real images' classes for a class-conditional model (None for an unconditional one)."""
        return checked_real_classes(chunk, self.G.config.num_classes, "this EG3D model",
                                    ("model.num_classes", "discriminator.num_classes"))

    def _fake_class_labels(self, chunk: Chunk) -> Tensor | None:
        if self.G.config.num_classes == 0:
            return None
        if chunk.condition is None or chunk.condition.class_label is None:
            raise ValueError("a class-conditional EG3D loss needs the chunk from its prepare() (the fakes' classes)")
        return chunk.condition.class_label

    def real_raw(self, real_images: Tensor, stage: StageState) -> Tensor:
        """The real images at the neural rendering resolution, as the raw branch of D sees them."""
        cfg = self.config
        raw = filtered_resizing(real_images, self.render_resolution(stage), self.D.resample_filter, cfg.filter_mode)
        if cfg.blur_raw_target:
            raw = gaussian_blur(raw, cfg.blur_sigma(stage.images_seen))
        return raw

    def density_regularizer(self, chunk: Chunk, stage: StageState) -> Tensor:
        """Mean |sigma(x) - sigma(x + eps)| (raw density, before activation) at random points x."""
        cfg = self.config
        ws = self._mapping(chunk, stage, update_emas=False, per_sample=False)
        planes = self.G.planes(ws, noise_mode="random", generator=chunk.generator)
        B, n = ws.shape[0], cfg.density_reg_points
        x = (torch.rand((B, n, 3), generator=chunk.generator, device=ws.device) * 2 - 1) * cfg.density_reg_extent
        eps = torch.randn((B, n, 3), generator=chunk.generator, device=ws.device) * cfg.density_reg_p_dist
        sigma = self.G.sample_planes(planes, torch.cat([x, x + eps], 1))[1]
        return F.l1_loss(sigma[:, :n], sigma[:, n:])

    def _check_real(self, chunk: Chunk) -> None:
        size = chunk.real_images.shape[-1]
        if size != self.G.config.img_resolution:
            raise ValueError(f"real images are {size} px but the EG3D generator outputs {self.G.config.img_resolution} "
                             "px: an EG3D curriculum's resolution is the final (super-resolved) image size; set "
                             f"curriculum stages' resolution to {self.G.config.img_resolution}")
        if getattr(self.D.config, "c_dim", 0) > 0 and not bool(chunk.real_labels.abs().sum(1).gt(0).all()):
            raise ValueError("EG3D's discriminator is conditioned on the real images' cameras, but the dataset "
                             "has images without a camera label; use a zip with EG3D 'labels' (or EpiGRAF "
                             "'camera_angles') in dataset.json (aware3d dataset builds one), or a synthetic "
                             "dataset")

    # -- the recipe --------------------------------------------------------------------------------
    def loss(self, phase: Phase, chunk: Chunk, stage: StageState) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.config
        fake_class = self._fake_class_labels(chunk)
        if phase.name == "G_main":
            fake = self._generate(chunk, stage)
            logits = self._discriminate(*self._fake_pair(fake), chunk.cameras.eg3d_label(), fake_class, stage, chunk)
            adv = nonsaturating_g(logits)
            return adv, {"G/adv": adv.detach(), "G/fake": logits.detach().mean()}
        if phase.name == "G_reg":
            tv = self.density_regularizer(chunk, stage)
            return tv * cfg.density_reg * phase.interval, {"G/density_tv": tv.detach()}

        self._check_real(chunk)
        real_c = chunk.real_labels
        with_r1 = phase.name == "D_reg"
        real_images = real_silhouette(chunk, "loss.silhouette") if cfg.silhouette else chunk.real_images
        real_image = real_images.detach().requires_grad_(with_r1)
        real_raw = self.real_raw(real_images, stage).detach().requires_grad_(with_r1)
        real_logits = self._discriminate(real_image, real_raw, real_c, self.real_class_labels(chunk), stage, chunk)
        chunk.augment.observe_real(real_logits)
        if phase.name == "D_main":
            with torch.no_grad():
                fake = self._generate(chunk, stage, update_emas=True)
            fake_logits = self._discriminate(*self._fake_pair(fake), chunk.cameras.eg3d_label(), fake_class, stage,
                                             chunk)
            adv = logistic_d(real_logits, fake_logits)
            return adv, {"D/adv": adv.detach(), "D/real": real_logits.detach().mean(),
                         "D/fake": fake_logits.detach().mean()}
        if phase.name == "D_reg":
            grads = torch.autograd.grad(real_logits.sum(), [real_image, real_raw], create_graph=True)
            r1 = sum(g.square().flatten(1).sum(1) for g in grads).mean()
            return r1 * (cfg.r1_gamma / 2) * phase.interval, {"D/r1": r1.detach()}
        raise ValueError(f"EG3D's recipe has no phase {phase.name!r}")
