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
from ..models.base import Generator3D


@dataclass
class ModelOptions:
    """Which model to use and how to render it (shared by every tool)."""

    checkpoint: str = "pigan-celeba"
    """An aware3d checkpoint folder, an official pi-GAN generator.pth, or a preset name (fresh random init)."""
    out: str = "out"
    """Output folder (created if missing)."""
    device: str = "cpu"
    """Torch device, e.g. cpu or cuda."""
    preset: str | None = None
    """For official files: the preset whose render and camera settings apply (default: guessed)."""
    ema: bool = True
    """For official pi-GAN files: apply ema.pth from the same folder (as the official scripts do)."""
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


def load_model(opts: ModelOptions) -> Generator3D:
    return load(opts.checkpoint, device=opts.device, ema=opts.ema, preset=opts.preset, seed=opts.init_seed)


def out_dir(opts: ModelOptions) -> Path:
    p = Path(opts.out)
    p.mkdir(parents=True, exist_ok=True)
    return p


def psi(G: Generator3D, opts: ModelOptions) -> float:
    return G.config.eval_truncation_psi if opts.truncation_psi is None else opts.truncation_psi


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
