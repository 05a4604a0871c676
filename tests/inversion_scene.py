"""A tiny generator taught one synthetic head, for the self-inversion checks.

An untrained tiny model renders a faint haze whose image hardly changes with the camera, so nothing could tell
a right camera from a wrong one. :func:`taught_generator` gives any family's tiny preset a subject: all its
weights are fitted (Adam, a few seconds) so that its mean latent (the inversion's start) renders one synthetic
head (:func:`aware3d.data.synthetic.scenes.render_head`) from a fan of cameras around the frontal view. The head
is scaled to fill the model's own view as the synthetic-heads set fills pi-GAN's (the scene is seen from the
model's cameras moved toward the origin). Only the model's functions are used, so every family gets it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from aware3d.cameras import Cameras
from aware3d.data.synthetic.scenes import render_head, sample_head_params
from aware3d.models.base import Generator3D
from aware3d.models.registry import build_generator

HEAD_HALF_WIDTH = 0.105
"""Half-width (world units) of pi-GAN's view at the origin (radius 1, 12 degrees): how the heads are framed."""
LIGHT = torch.tensor([0.3, 0.4, 1.0]) / math.sqrt(0.09 + 0.16 + 1.0)
"""The head's light direction (toward the light, world frame)."""


def head_views(G: Generator3D, cameras: Cameras, size: int, seed: int = 0):
    """One synthetic head (drawn from ``seed``) seen from ``G``'s ``cameras``, scaled to fill the model's view as
    :data:`HEAD_HALF_WIDTH` fills pi-GAN's: (images (B, 3, size, size) in [-1, 1], depth in the model's world
    units (B, 1, size, size), mask (B, 1, size, size))."""
    identity, expression = sample_head_params(torch.Generator().manual_seed(seed))
    c2w = cameras.cam2world.detach().clone().cpu()
    distance = c2w[:, :3, 3].norm(dim=-1)
    half_width = distance / (2 * cameras.intrinsics[:, 0, 0].detach().cpu())
    shrink = HEAD_HALF_WIDTH / half_width
    c2w[:, :3, 3] = c2w[:, :3, 3] * shrink[:, None]
    grid = G.config.pixel_grid
    r = render_head(identity, expression, Cameras(c2w, cameras.intrinsics.detach().cpu()), LIGHT, size, grid=grid)
    return r.image.to(G.device), (r.depth / shrink[:, None, None, None]).to(G.device), r.mask.to(G.device)


def view_fan(G: Generator3D, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n,) yaw and pitch of a fan of views around the frontal one (+-0.45 rad yaw, +-0.2 rad pitch)."""
    yaw0, pitch0 = G.config.pose.frontal()
    k = torch.arange(n, dtype=torch.float32)
    return yaw0 + 0.45 * torch.cos(2.4 * k), pitch0 + 0.2 * torch.sin(1.7 * k)


def taught_generator(preset: str, steps: int = 80, resolution: int = 16, views: int = 12, subjects: int = 1,
                     spread: float = 0.5, batch: int = 2, lr: float = 2e-3, seed: int = 0,
                     overrides: list[str] | None = None) -> Generator3D:
    """``preset`` (with ``overrides``) built from ``seed``, every weight fitted for ``steps`` Adam steps so that
    ``subjects`` latents (the mean, then mean + ``spread`` spreads of Gaussian noise) render each its own synthetic
    head from a fan of ``views`` cameras (see the module). Eval mode, gradients off."""
    G = build_generator(preset, seed=seed, overrides=overrides).eval()
    space = G.inversion_space(num_samples=256, seed=seed)
    noise = torch.Generator().manual_seed(seed)
    latents = [space.latent(space.zero_offsets())]
    latents += [space.latent(space.perturbed(space.zero_offsets(), spread, noise)) for _ in range(subjects - 1)]
    yaw, pitch = view_fan(G, views)
    size = G.image_resolution(resolution)
    heads = [head_views(G, G.cameras(yaw, pitch), size, seed=s)[0] for s in range(subjects)]
    cfg = G.eval_render_config()
    opt = torch.optim.Adam(G.parameters(), lr=lr)
    for _ in range(steps):
        who = int(torch.randint(0, subjects, (1,), generator=noise))
        pick = torch.randint(0, views, (batch,), generator=noise)
        latent = latents[who]
        out = G.synthesis(latent.w.detach(), G.cameras(yaw[pick], pitch[pick]), condition=latent.condition,
                          resolution=resolution, render=cfg, generator=torch.Generator().manual_seed(0))
        loss = F.mse_loss(out.image, heads[who][pick])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return G.requires_grad_(False)


CAMERA_SENSITIVITY_DB = 40.0
"""A model whose mean latent's render changes by less than this (PSNR, dB) when the camera turns 0.1 rad is taught a
head before the self-inversion check: nothing would tell its cameras apart (an untrained EG3D's smooth tri-planes)."""


def camera_sensitivity(G: Generator3D, resolution: int) -> float:
    """PSNR (dB) between the mean latent's renders from the frontal camera and from 0.1 rad of yaw beside it."""
    space = G.inversion_space(num_samples=256)
    latent = space.latent(space.zero_offsets())
    yaw, pitch = G.config.pose.frontal()
    with torch.no_grad():
        a, b = (G.synthesis(latent.w, G.cameras([yaw + d], [pitch]), condition=latent.condition, resolution=resolution,
                            render=G.eval_render_config(), generator=torch.Generator().manual_seed(0)).image
                for d in (0.0, 0.1))
    return float(-10 * torch.log10(((a - b) / 2).square().mean()))


def self_inversion_model(family, resolution: int = 16) -> tuple[Generator3D, bool]:
    """The family's tiny model (with its declared ``inversion_overrides``) for the self-inversion check, taught a
    head when its renders hardly depend on the camera (:data:`CAMERA_SENSITIVITY_DB`); and whether it was."""
    overrides = list(family.tiny.inversion_overrides)
    G = build_generator(family.tiny.model, seed=3, overrides=overrides).eval().requires_grad_(False)
    if camera_sensitivity(G, resolution) < CAMERA_SENSITIVITY_DB:
        return G, False
    return taught_generator(family.tiny.model, resolution=resolution, overrides=overrides), True
