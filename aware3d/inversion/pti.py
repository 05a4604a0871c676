"""Pivotal tuning (Roich et al. 2022's idea, for any family): fine-tune a copy of the generator so that the found
latent and camera (the pivot) render the target more closely, while latents near the pivot keep rendering what
the original generator renders (the locality regulariser).

Each step: the reconstruction loss of the pivot's render by the tuned copy, plus ``locality`` (0.1, the PTI
paper's weight of its regulariser) times the pixel and multi-scale SSIM distance (weighted as in the
reconstruction loss) between the tuned copy's and the original's renders of a latent near the pivot (the pivot's
offsets plus Gaussian noise of ``locality_strength`` spreads per element, through the family's
:class:`~aware3d.inversion.space.LatentSpace`) from a camera drawn from the prior, at ``locality_resolution``.
The original generator is never changed.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch

from ..models.base import Generator3D
from .camera import CameraAngles, prior_cameras
from .config import PTIConfig
from .latent import History, Renderer, cosine_factor
from .losses import ReconstructionLoss, msssim_distance, psnr
from .space import LatentSpace


def locality_distance(G_tuned: Generator3D, G: Generator3D, space: LatentSpace, renderer: Renderer,
                      pivot: dict[str, torch.Tensor], config: PTIConfig, msssim_weight: float,
                      generator: torch.Generator) -> torch.Tensor:
    """() the distance of the two generators' renders of one latent near the pivot from a camera of the prior (draws
    from the CPU ``generator``): mean squared error plus ``msssim_weight`` times 1 - MS-SSIM, the reconstruction
    loss's own weighting."""
    near = space.latent(space.perturbed(pivot, config.locality_strength, generator))
    cameras = prior_cameras(G, 1, generator)
    with torch.no_grad():
        reference = renderer(G, near, cameras, resolution=config.locality_resolution).image
    tuned = renderer(G_tuned, near, cameras, resolution=config.locality_resolution).image
    return (tuned - reference).square().mean() + msssim_weight * msssim_distance(tuned, reference).mean()


def pivotal_tuning(G: Generator3D, space: LatentSpace, renderer: Renderer, loss: ReconstructionLoss,
                   pivot: dict[str, torch.Tensor], angles: CameraAngles, config: PTIConfig, seed: int,
                   history: History, tick: Callable[[], None]) -> Generator3D:
    """A tuned copy of ``G`` (eval mode, gradients off) around the pivot offsets and camera (see the module)."""
    G_tuned = copy.deepcopy(G).eval().requires_grad_(True)
    params = [p for p in G_tuned.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=config.lr)
    generator = torch.Generator().manual_seed(seed)
    latent = space.latent(pivot).detach()
    cameras = angles.cameras(G)
    for step in range(config.steps):
        for group in opt.param_groups:
            group["lr"] = config.lr * cosine_factor(step, config.steps, 0.1)
        out = renderer(G_tuned, latent, cameras)
        terms = loss.terms(out.image)
        total = loss.total(terms)
        objective = total.sum()
        if config.locality > 0:
            local = locality_distance(G_tuned, G, space, renderer, pivot, config, loss.config.msssim, generator)
            objective = objective + config.locality * local
            terms = {**terms, "locality": local.detach().reshape(1)}
        opt.zero_grad(set_to_none=True)
        objective.backward()
        opt.step()
        history.add("pti", {k: v.detach() for k, v in terms.items()}, total.detach(),
                    psnr(out.image.detach(), loss.target), 0)
        tick()
    return G_tuned.requires_grad_(False)


__all__ = ["locality_distance", "pivotal_tuning"]
