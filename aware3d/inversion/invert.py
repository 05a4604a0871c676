"""The inversion of one target image by one generator (the library entry; ``aware3d invert`` adds the files).

    from aware3d.inversion.invert import invert
    result = invert(G, target)                # target (1, 3, S, S) in [-1, 1], S = G.image_resolution(resolution)
    result.latent, result.angles, result.numbers["psnr"]

:func:`invert` runs the coarse camera search, the latent + camera optimisation and, with ``config.pti``, pivotal
tuning (see :mod:`.latent` and :mod:`.pti`); the generator passed in is never changed (its gradient flags are
restored; pivotal tuning tunes a copy).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm import tqdm

from ..models.base import Condition, Generator3D
from .camera import CameraAngles, angle_record
from .config import InversionConfig
from .latent import History, InversionState, Renderer, coarse_search, fit_latent, resize_target
from .losses import ReconstructionLoss, msssim_distance, psnr
from .pti import pivotal_tuning
from .space import LatentSpace, SynthesisLatent


@dataclass
class InversionResult:
    """What :func:`invert` found."""

    G: Generator3D
    """The generator that renders the result: the tuned copy after pivotal tuning, else the one passed in."""
    space: LatentSpace
    """The family's latent space the offsets are in."""
    offsets: dict[str, Tensor]
    """The latent as offsets from the family's mean, in spread units (one row per group)."""
    latent: SynthesisLatent
    """The synthesis latent and condition (one row)."""
    angles: CameraAngles
    """The camera (one row)."""
    target: Tensor
    """(1, 3, S, S) the target the losses compared against."""
    reconstruction: Tensor
    """(1, 3, S, S) the final render (by :attr:`G`)."""
    latent_only: Tensor | None
    """(1, 3, S, S) the render before pivotal tuning (None without it)."""
    history: list[dict]
    """Per-step records (phase, loss, terms, PSNR)."""
    numbers: dict
    """The final numbers (PSNR, MS-SSIM, loss terms, camera; with PTI also the latent-only PSNR)."""
    renderer: Renderer
    """The render settings used (resolution, samples, renderer seed)."""

    @property
    def groups(self) -> dict[str, Tensor]:
        """Each latent group's value (one row)."""
        return self.space.values(self.offsets)


@contextlib.contextmanager
def frozen(G: nn.Module):
    """``G`` in eval mode without parameter gradients for the block; its mode and flags are restored after."""
    flags = [p.requires_grad for p in G.parameters()]
    mode = G.training
    G.eval().requires_grad_(False)
    try:
        yield G
    finally:
        for p, flag in zip(G.parameters(), flags):
            p.requires_grad_(flag)
        G.train(mode)


def make_renderer(G: Generator3D, config: InversionConfig) -> Renderer:
    """The inversion's renderer: the model's evaluation settings at ``config.resolution`` / ``num_samples``."""
    return Renderer(G.eval_render_config(config.num_samples, fast=config.fast), config.resolution or G.config.resolution,
                    config.sampling_seed)


def target_size(G: Generator3D, config: InversionConfig) -> int:
    """Side of the target (the image the model renders at the inversion's resolution)."""
    return G.image_resolution(config.resolution or G.config.resolution)


@torch.no_grad()
def mean_render(G: Generator3D, config: InversionConfig = InversionConfig()) -> Tensor:
    """(1, 3, S, S) the family's mean latent (the inversion's start) from the model's frontal camera: what
    ``--crop auto`` and ``--crop landmarks`` measure the training framing on."""
    with frozen(G):
        space = G.inversion_space(config.space_samples, config.seed)
        yaw, pitch = G.config.pose.frontal()
        angles = CameraAngles(torch.tensor([yaw], device=G.device), torch.tensor([pitch], device=G.device))
        return make_renderer(G, config)(G, space.latent(space.zero_offsets()), angles.cameras(G)).image.clamp(-1, 1)


def final_numbers(G: Generator3D, renderer: Renderer, loss: ReconstructionLoss, latent: SynthesisLatent,
                  angles: CameraAngles) -> tuple[Tensor, dict]:
    """The render of ``latent`` from ``angles`` and its numbers: PSNR, MS-SSIM, each loss term and the total."""
    with torch.no_grad():
        image = renderer(G, latent, angles.cameras(G)).image
        terms = loss.terms(image)
        numbers = {"psnr": float(psnr(image, loss.target)[0]),
                   "msssim": float(1 - msssim_distance(image, loss.target)[0]),
                   "loss": float(loss.total(terms)[0]), "terms": {k: float(v[0]) for k, v in terms.items()}}
    return image, numbers


@torch.no_grad()
def face_condition(G: Generator3D, regressor: nn.Module, target: Tensor) -> Condition:
    """The face condition of ``G`` that a face regressor (:class:`~aware3d.faces.FaceCoefficientRegressor`) reads
    from ``target`` (1, 3, H, W) in [-1, 1]: the start CGOF-style inversions keep (their conditioning mesh takes
    no gradient, so the face code cannot be optimised through the render)."""
    if "face" not in G.capabilities.conditions:
        raise ValueError(f"the {G.family} generator takes no face condition, so a face regressor's reading of the "
                         "picture has nothing to set; drop --face-regressor")
    with frozen(regressor):
        coefficients = regressor.reconstruct(target.to(G.device, torch.float32)).coefficients
    return Condition(face=G.face_code_of(coefficients))


def phase_steps(config: InversionConfig) -> int:
    """Every step the inversion takes (the progress bar's total)."""
    return (config.search.steps + config.optim.steps + config.optim.refine_steps
            + (config.pti.steps if config.pti is not None else 0))


def invert(G: Generator3D, target: Tensor, config: InversionConfig = InversionConfig(),
           discriminator: nn.Module | None = None, lpips: nn.Module | None = None,
           progress: bool = False, fixed: Condition | None = None) -> InversionResult:
    """Invert ``target`` (1, 3, H, W) in [-1, 1] (resized to the model's image size if needed) with ``G``.

    ``discriminator`` (a module with ``feature_maps``) and ``lpips`` switch their loss terms on (with weights > 0
    in ``config.loss``). ``fixed`` is a condition the result keeps as given (:meth:`LatentSpace.holding`; e.g.
    a face code read from the picture by :func:`face_condition`). Every random draw is seeded by ``config.seed``
    (the process-wide RNG is left untouched).
    """
    with torch.random.fork_rng(devices=[]), frozen(G):
        torch.manual_seed(config.seed)
        renderer = make_renderer(G, config)
        target = resize_target(target.to(G.device, torch.float32), target_size(G, config))
        space = G.inversion_space(config.space_samples, config.seed)
        if fixed is not None:
            space = space.holding(fixed.to(G.device))
        loss = ReconstructionLoss(target, config.loss, discriminator, lpips)
        search_loss = ReconstructionLoss(resize_target(target, G.image_resolution(config.search.resolution)),
                                         config.loss, discriminator, lpips)
        history = History()
        with tqdm(total=phase_steps(config), desc="invert", unit="step", disable=not progress) as bar:
            def tick() -> None:
                bar.set_postfix_str(f"{history.rows[-1]['phase']} psnr {history.rows[-1]['psnr']:.2f}", refresh=False)
                bar.update(1)

            state = coarse_search(G, space, renderer, search_loss, config, history, tick)
            state = fit_latent(G, space, renderer, loss, state, config, history, tick)
            latent = space.latent(state.offsets).detach()
            image, numbers = final_numbers(G, renderer, loss, latent, state.angles)
            G_out, latent_only = G, None
            if config.pti is not None:
                G_out = pivotal_tuning(G, space, renderer, loss, state.offsets, state.angles, config.pti,
                                       config.seed, history, tick)
                latent_only, before = image, numbers
                image, numbers = final_numbers(G_out, renderer, loss, latent, state.angles)
                numbers["latent_only"] = before
    numbers.update(camera=angle_record(G, state.angles), loss_terms=loss.active, steps=len(history.rows))
    return InversionResult(G_out, space, state.offsets, latent, state.angles, target, image, latent_only,
                           history.rows, numbers, renderer)


__all__ = ["InversionResult", "InversionState", "face_condition", "final_numbers", "frozen", "invert", "make_renderer", "mean_render",
           "phase_steps", "target_size"]
