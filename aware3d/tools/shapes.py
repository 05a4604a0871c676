"""``aware3d shapes``: the density on an N^3 grid as .mrc, and a coloured marching-cubes mesh."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..export.shapes import extract_mesh, sample_density_grid, save_mesh, write_mrc
from ..io.media import write_json
from .common import ModelOptions, load_model, out_dir, psi, settings_record


@dataclass
class ShapesOptions(ModelOptions):
    seeds: list[int] = field(default_factory=lambda: [0])
    """Latent seeds; one volume and one mesh per seed."""
    grid: int = 256
    """Grid points per axis (N): the .mrc holds N^3 densities."""
    level: str = "10"
    """Iso level of the mesh in raw density units, or 'mean' (the mean density of the sampled volume, handy
    for untrained models)."""
    formats: list[str] = field(default_factory=lambda: ["ply"])
    """Mesh formats to write: any of ply, obj, glb."""
    half_extent: float | None = None
    """Half side of the sampled cube in world units (default: the model's)."""
    mrc: bool = True
    """Write the density volume as .mrc (as the official shape scripts do)."""


def resolve_level(level: str, volume: torch.Tensor) -> float:
    if level == "mean":
        return float(volume.mean())
    try:
        return float(level)
    except ValueError:
        raise ValueError(f"--level must be a number or 'mean', got {level!r}") from None


def run(opts: ShapesOptions) -> dict:
    G = load_model(opts)
    out = out_dir(opts)
    h = opts.half_extent or G.config.shape_half_extent
    bounds = ((-h, -h, -h), (h, h, h))
    results = []
    with torch.no_grad():
        ws = G.mapping(G.z_from_seeds(opts.seeds), psi(G, opts))
    for seed, w in zip(opts.seeds, ws):
        w = w[None]
        density = G.density(w)
        volume = sample_density_grid(lambda p: density(p[None])[0], resolution=opts.grid, bounds=bounds,
                                     device=G.device)
        entry = {"seed": seed, "density_min": float(volume.min()), "density_max": float(volume.max())}
        stem = out / f"seed{seed:04d}"
        if opts.mrc:
            entry["mrc"] = str(write_mrc(f"{stem}.mrc", volume, voxel_size=2 * h / (opts.grid - 1), origin=(-h, -h, -h)))
        level = resolve_level(opts.level, volume)
        verts, faces = extract_mesh(volume, level, bounds)
        with torch.no_grad():
            colors = G.color(w)(torch.from_numpy(verts)[None].to(G.device))[0].clamp(0, 1).cpu().numpy()
        entry.update(level=level, vertices=int(len(verts)), faces=int(len(faces)), meshes=[])
        for fmt in opts.formats:
            entry["meshes"].append(str(save_mesh(f"{stem}.{fmt}", verts, faces, vertex_colors=colors.astype(np.float32))))
        results.append(entry)
    record = settings_record("shapes", opts, G, bounds=bounds, truncation_psi=psi(G, opts), shapes=results)
    write_json(out / "shapes.json", record)
    return record
