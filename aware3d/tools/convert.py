"""``aware3d convert``: an official checkpoint -> an aware3d checkpoint folder (safetensors + JSON)."""

from __future__ import annotations

from dataclasses import dataclass

from ..api import load
from ..io.checkpoint import save_generator


@dataclass
class ConvertOptions:
    source: str
    """The official file, e.g. pi-GAN's generator.pth (ema.pth beside it is applied unless --no-ema)."""
    out: str
    """Folder to write (config.json + generator.safetensors)."""
    preset: str | None = None
    """Render and camera settings to attach (pigan-celeba, pigan-cats, pigan-carla; default: guessed)."""
    ema: bool = True
    """Apply the EMA weights (ema.pth) as the official render scripts do."""


def run(opts: ConvertOptions) -> dict:
    G = load(opts.source, ema=opts.ema, preset=opts.preset)
    path = save_generator(G, opts.out)
    info = {"out": str(path), "family": G.family, "preset": G.preset, "source": G.source,
            "parameters": sum(p.numel() for p in G.parameters())}
    return info
