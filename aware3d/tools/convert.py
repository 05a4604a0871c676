"""``aware3d convert``: an official checkpoint -> an aware3d checkpoint folder (safetensors + JSON)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..api import load
from ..io.checkpoint import save_generator


@dataclass
class ConvertOptions:
    source: str
    """The official file: pi-GAN's generator.pth (ema.pth beside it is applied unless --no-ema) or an EG3D .pkl."""
    out: str
    """Folder to write (config.json + generator.safetensors)."""
    preset: str | None = None
    """Render and camera settings to attach (pigan-celeba/cats/carla, eg3d-ffhq/afhq/shapenet; default: guessed)."""
    ema: bool = True
    """Use the EMA weights (pi-GAN: apply ema.pth; EG3D: G_ema instead of the training copy G)."""
    discriminator: bool = True
    """EG3D: also write the pickle's dual discriminator D (discriminator.safetensors + discriminator.json)."""


def run(opts: ConvertOptions) -> dict:
    source = Path(opts.source)
    if source.suffix == ".pkl" and source.is_file():
        # One restricted read of the pickle for every network in it.
        from ..models.eg3d.convert import convert_snapshot, load_official_snapshot, save_discriminator

        snapshot = load_official_snapshot(source)
        wanted = "G_ema" if opts.ema else "G"
        if wanted not in snapshot.networks:
            raise ValueError(f"{source} has no {wanted} (present: {', '.join(snapshot.networks)}); "
                             f"{'use --no-ema' if opts.ema else 'drop --no-ema'}")
        nets = convert_snapshot(snapshot, preset=opts.preset)
        G = nets[wanted]
        path = save_generator(G, opts.out)
        info = {"out": str(path), "family": G.family, "preset": G.preset, "source": G.source,
                "parameters": sum(p.numel() for p in G.parameters()), "networks": sorted(nets)}
        if opts.discriminator and "D" in nets:
            info["discriminator"] = str(save_discriminator(nets["D"], path))
        return info
    G = load(opts.source, ema=opts.ema, preset=opts.preset)
    path = save_generator(G, opts.out)
    info = {"out": str(path), "family": G.family, "preset": G.preset, "source": G.source,
            "parameters": sum(p.numel() for p in G.parameters())}
    return info
