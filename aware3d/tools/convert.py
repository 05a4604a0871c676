"""``aware3d convert``: an official checkpoint -> an aware3d checkpoint folder (safetensors + JSON)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..io.checkpoint import save_generator
from ..models.registry import find_importer


@dataclass
class ConvertOptions:
    source: str
    """The official file, recognised by its content (pi-GAN's generator.pth with ema.pth beside it, an EG3D .pkl, ...)."""
    out: str
    """Folder to write (config.json + generator.safetensors)."""
    preset: str | None = None
    """Render and camera settings to attach (pigan-celeba/cats/carla, eg3d-ffhq/afhq/shapenet, ...): needed when the
    file fits several presets (the error lists them), else read from the file."""
    ema: bool = True
    """Use the EMA weights (pi-GAN: apply ema.pth; EG3D: G_ema instead of the training copy G)."""
    discriminator: bool = True
    """Also write the file's discriminator when it has one (EG3D's D: discriminator.safetensors + .json)."""


def run(opts: ConvertOptions) -> dict:
    source = Path(opts.source)
    if not source.is_file():
        raise FileNotFoundError(f"{source} is not a file: aware3d convert reads an official checkpoint file")
    _family, importer = find_importer(source)
    if importer.convert is not None:
        info = importer.convert(source, Path(opts.out), ema=opts.ema, preset=opts.preset,
                                discriminator=opts.discriminator)
    else:
        G = importer.load(source, ema=opts.ema, preset=opts.preset)
        path = save_generator(G, opts.out)
        info = {"out": str(path), "family": G.family, "preset": G.preset, "source": G.source,
                "parameters": sum(p.numel() for p in G.parameters())}
    return {**info, "importer": importer.name}
