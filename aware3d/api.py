"""The Python API: ``load`` anything (our checkpoint, an official file, a preset name) and render it.

    import aware3d
    G = aware3d.load("pigan-celeba")                     # fresh random init of a preset
    G = aware3d.load("runs/x/generator")                 # our checkpoint folder
    G = aware3d.load("CelebA/generator.pth", preset="pigan-celeba")  # official pi-GAN (+ ema.pth beside it)
    out = aware3d.render(G, seeds=[0, 1], yaw=0.3)       # yaw/pitch: radians from the frontal view
    out.image, out.depth                                 # (B,3,H,W) in [-1,1], (B,1,H,W)
"""

from __future__ import annotations

import os

import torch

from .cameras import Cameras
from .errors import OptionError
from .io.atomic import recover_folder
from .io.checkpoint import CheckpointError, is_checkpoint_dir, load_generator
from .nn.kernels import low_precision
from .models.base import Condition, Generator3D, GeneratorOutput
from .models.registry import all_presets, build_generator, find_importer


def load(source: str | os.PathLike, *, device: str | torch.device = "cpu", ema: bool = True,
         preset: str | None = None, seed: int = 0, best: str | None = None) -> Generator3D:
    """Load a generator.

    Args:
        source: one of
            - an aware3d checkpoint folder (``config.json`` + ``generator.safetensors``);
            - a training run folder (``aware3d train --out``): its latest exported generator, or with ``best``
              its evaluated snapshot with the best recorded value of that metric;
            - an official checkpoint file of any registered family (pi-GAN ``generator.pth``, EG3D ``*.pkl``, ...),
              recognised by its content whatever its name, read safely (never executed);
            - a preset name (e.g. ``pigan-celeba``): a freshly initialised model with weights from ``seed``.
        ema: for official files, the EMA weights (pi-GAN: apply ``ema.pth`` from the same folder when present, as
            the official render scripts do; EG3D: ``G_ema``, else the training copy ``G``).
        preset: for official files, the render/camera settings to attach: required when the file's content fits
            several presets (pi-GAN CelebA or Cats, ShadeGAN CelebA or Cats; the error lists them), else read from
            the file.
        best: with a run folder, a metric name as recorded in its snapshots (``fid2k_full``, ``fid2k_full@512``,
            ``swd``; see :mod:`aware3d.training.snapshots`).
    """
    from .training.snapshots import is_run_dir, run_generator

    src = str(source)
    if best is not None and not is_run_dir(source):
        raise ValueError(f"best={best!r} (--best) picks a snapshot of a training run folder; {src!r} is not one "
                         "(a run folder holds the config.json that aware3d train writes)")
    if is_run_dir(source):
        return load_generator(run_generator(source, best), device=device)
    if src in all_presets():
        return build_generator(src, seed=seed).to(device).eval()
    path = recover_folder(source)  # a checkpoint folder killed between the two renames of its atomic write
    if is_checkpoint_dir(path):
        return load_generator(path, device=device)
    if path.is_file():
        _family, importer = find_importer(path)
        return importer.load(path, ema=ema, preset=preset).to(device)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder without config.json: not an aware3d checkpoint")
    raise FileNotFoundError(
        f"{source!r} is neither a file, a checkpoint folder nor a preset; presets: {', '.join(sorted(all_presets()))}")


def latents(G: Generator3D, seeds: list[int] | None = None, z: torch.Tensor | None = None) -> torch.Tensor:
    """z for ``seeds`` (one per seed, reproducible) or the given ``z`` on the model's device."""
    if z is not None:
        return z.to(G.device)
    return G.z_from_seeds(list(seeds if seeds is not None else [0]))


@torch.no_grad()
def render(G: Generator3D, seeds: list[int] | None = None, *, z: torch.Tensor | None = None,
           yaw: float = 0.0, pitch: float = 0.0, cameras: Cameras | None = None, resolution: int | None = None,
           truncation_psi: float | None = None, num_samples: int | None = None, lock_view_dependence: bool = False,
           normals: bool = False, condition: Condition | None = None, fast: bool = False) -> GeneratorOutput:
    """Render seeds (or z) from one view, under ``condition`` (e.g. a class per latent) if given; ``fast``: the
    tools' fast mode (band sampling, bfloat16 where the device does it fast; about 1e-2 mean absolute error).

    ``yaw`` and ``pitch`` are radians relative to the model's frontal pose (``config.pose.frontal()``, the official
    scripts' central camera), positive yaw turning the camera toward -x and positive pitch looking from above; or
    pass ``cameras`` (one per latent) directly.
    Uses the model's evaluation render settings (no jitter) and truncation unless overridden.
    """
    if resolution is not None and resolution < 1:
        raise OptionError(f"aware3d.render: resolution must be >= 1 pixel (None for the model's own), got {resolution}")
    if num_samples is not None and num_samples < 1:
        raise OptionError(f"aware3d.render: num_samples must be >= 1 (None for the model's own), got {num_samples}")
    zs = latents(G, seeds, z)
    psi = G.config.eval_truncation_psi if truncation_psi is None else truncation_psi
    w = G.mapping(zs, psi, condition=condition)
    if cameras is None:
        yaw0, pitch0 = G.config.pose.frontal()
        cameras = G.cameras([yaw0 + yaw] * len(zs), [pitch0 - pitch] * len(zs))
    with low_precision(fast):
        return G.synthesis(w, cameras.to(G.device), resolution=resolution,
                           render=G.eval_render_config(num_samples, fast=fast), lock_view_dependence=lock_view_dependence,
                           normals=normals, fast=True, condition=condition)
