"""Options and helpers shared by the tools."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..api import load
from ..config import to_dict
from ..models.base import Generator3D, GeneratorOutput


@dataclass
class ModelOptions:
    """Which model to use and how to render it (shared by every tool)."""

    checkpoint: str = "pigan-celeba"
    """An aware3d checkpoint folder, an official pi-GAN generator.pth or EG3D .pkl, or a preset name (fresh
    random init, e.g. pigan-tiny, eg3d-ffhq)."""
    out: str = "out"
    """Output folder (created if missing)."""
    device: str = "cpu"
    """Torch device, e.g. cpu or cuda."""
    preset: str | None = None
    """For official files: the preset whose render and camera settings apply (default: guessed)."""
    ema: bool = True
    """For official files: pi-GAN applies ema.pth from the same folder (as the official scripts do), EG3D takes
    G_ema from the pickle (--no-ema: the training copy G)."""
    init_seed: int = 0
    """For preset names: the seed of the random initialisation."""
    truncation_psi: float | None = None
    """Truncation psi in w space (1 = none); default: the model's evaluation value (pi-GAN 0.7)."""
    resolution: int | None = None
    """Output resolution in pixels (default: the model's)."""
    num_samples: int | None = None
    """Coarse (and fine) samples per ray (default: the model's evaluation setting)."""
    lock_view_dependence: bool = False
    """Ignore the view direction in the colour (steadier colours across views)."""
    progress: bool = True
    """Show progress bars."""


def load_model(opts: ModelOptions) -> Generator3D:
    return load(opts.checkpoint, device=opts.device, ema=opts.ema, preset=opts.preset, seed=opts.init_seed)


def out_dir(opts: ModelOptions) -> Path:
    p = Path(opts.out)
    p.mkdir(parents=True, exist_ok=True)
    return p


def psi(G: Generator3D, opts: ModelOptions) -> float:
    return G.config.eval_truncation_psi if opts.truncation_psi is None else opts.truncation_psi


def caches_planes(G: Generator3D) -> bool:
    """Whether ``G`` separates the camera-independent part of a render: ``planes(w) -> planes`` and
    ``render_planes(planes, w, cameras, ...)`` (EG3D's tri-planes). pi-GAN evaluates its network at every ray
    sample, so nothing is reusable across cameras and it has neither."""
    return callable(getattr(G, "planes", None)) and callable(getattr(G, "render_planes", None))


class LatentViews:
    """Renders one fixed batch of latents ``w`` from many cameras.

    With a generator that offers a tri-plane cache (:func:`caches_planes`) the backbone runs once, here, with
    the model's default noise mode (``config.eval_noise_mode`` in eval), and each :meth:`render` only samples
    the planes, volume-renders and super-resolves; otherwise each :meth:`render` is a ``synthesis`` call. Both
    paths give what ``G.synthesis(w, cameras, ...)`` gives (up to the last bits when ``w`` has one row and the
    cameras several: the cached planes are then computed at batch 1 instead of the expanded batch).

    Args:
        w: latents, (B or 1, w_dim) for pi-GAN, (B or 1, num_ws, w_dim) for EG3D.
        resolution: rendering resolution (EG3D: the neural rendering one); default the model's.
        render: sampling settings (the tools pass ``G.eval_render_config(...)``).
        lock_view_dependence: pi-GAN only (EG3D's colour ignores the view direction).
        normals: also return normal maps.
        sampling_seed: seed of the renderer's random draws (EG3D's jittered and importance samples), the
            same for every call, so consecutive video frames do not flicker and reruns are identical;
            None draws from the global RNG.
    """

    def __init__(self, G: Generator3D, w: torch.Tensor, *, resolution: int | None = None, render=None,
                 lock_view_dependence: bool = False, normals: bool = False, sampling_seed: int | None = 0):
        self.G, self.w = G, w
        self.resolution, self.render_config = resolution, render
        self.lock_view_dependence, self.normals = lock_view_dependence, normals
        self.sampling_seed = sampling_seed
        self.planes = G.planes(w) if caches_planes(G) else None

    def _generator(self) -> torch.Generator | None:
        if self.sampling_seed is None:
            return None
        return torch.Generator(device=self.G.device).manual_seed(self.sampling_seed)

    def render(self, cameras) -> GeneratorOutput:
        """The latents seen from ``cameras`` (B cameras, or as many as ``w`` has rows)."""
        if self.planes is not None:
            return self.G.render_planes(self.planes, self.w, cameras, resolution=self.resolution,
                                        render=self.render_config, normals=self.normals, generator=self._generator())
        return self.G.synthesis(self.w, cameras, resolution=self.resolution, render=self.render_config,
                                lock_view_dependence=self.lock_view_dependence, normals=self.normals, fast=True,
                                generator=self._generator())


def settings_record(tool: str, opts: Any, G: Generator3D, **extra) -> dict:
    """What a tool writes beside its outputs: the exact options, the model and the environment."""
    return {
        "tool": tool,
        "aware3d": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "options": to_dict(opts),
        "model": {"family": G.family, "preset": getattr(G, "preset", None), "source": getattr(G, "source", None),
                  "config": to_dict(G.config)},
        **extra,
    }
