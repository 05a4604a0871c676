"""``aware3d shapes``: the density on an N^3 grid as .mrc, and a coloured marching-cubes mesh."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from ..export.shapes import extract_mesh, sample_density_grid, save_mesh, write_mrc
from ..io.media import write_json
from ..models.eg3d.shapes import official_border, official_sigma_volume
from .common import ModelOptions, load_model, out_dir, psi, settings_record


@dataclass
class ShapesOptions(ModelOptions):
    seeds: list[int] = field(default_factory=lambda: [0])
    """Latent seeds; one volume and one mesh per seed."""
    grid: int = 256
    """Grid points per axis (N): the .mrc holds N^3 densities."""
    level: str = "10"
    """Iso level of the mesh in raw density units, or 'mean' (the mean density of the sampled volume without
    the official layout's -1000 border, handy for untrained models)."""
    formats: list[str] = field(default_factory=lambda: ["ply"])
    """Mesh formats to write: any of ply, obj, glb."""
    half_extent: float | None = None
    """Half side of the sampled cube in world units (default: the model's)."""
    mrc: bool = True
    """Write the density volume as .mrc (as the official shape scripts do)."""
    grid_layout: Literal["regular", "official"] = "regular"
    """regular: density at the exact points of a regular N^3 grid over the cube, .mrc indexed x fastest;
    official (EG3D): gen_samples.py's sheared create_samples grid over the box_warp cube, flipped along x, the
    outer int(30 N / 256) voxels set to -1000, stored as gen_samples' .mrc (needs --grid >= 9)."""


def resolve_level(level: str, volume: torch.Tensor) -> float:
    if level == "mean":
        return float(volume.mean())
    try:
        return float(level)
    except ValueError:
        raise ValueError(f"--level must be a number or 'mean', got {level!r}") from None


def check_official_layout(G, opts: ShapesOptions) -> None:
    """Raise a clear error when ``--grid-layout official`` cannot reproduce gen_samples for this model/grid."""
    if G.family != "eg3d":
        raise ValueError(f"--grid-layout official reproduces EG3D's gen_samples.py; this is a {G.family} model: "
                         "use --grid-layout regular")
    if official_border(opts.grid) == 0:
        raise ValueError(f"--grid {opts.grid} is too small for --grid-layout official: gen_samples trims "
                         "int(30 N / 256) voxels per face, which is 0 below N = 9 and then (numpy's [-0:]) sets the "
                         "whole volume to -1000; use --grid 9 or more, or --grid-layout regular")
    if opts.half_extent is not None:
        raise ValueError("--half-extent does not apply to --grid-layout official (gen_samples samples the "
                         "box_warp cube); drop it or use --grid-layout regular")


@torch.no_grad()
def official_volumes(G, w: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """gen_samples' final sigma array (n, n, n) indexed [flipped x, y, z] for one latent (1, num_ws, w_dim),
    and the same values re-indexed [x, y, z] for meshing (the flip undone; the sub-voxel shear of the official
    points is ignored there, so the mesh sits on the regular grid of the box_warp cube)."""
    final = official_sigma_volume(G, w, n)
    return final, final.flip(0)


def run(opts: ShapesOptions) -> dict:
    if opts.grid_layout not in ("regular", "official"):
        raise ValueError(f"--grid-layout must be regular or official, got {opts.grid_layout!r}")
    G = load_model(opts)
    out = out_dir(opts)
    official = opts.grid_layout == "official"
    if official:
        check_official_layout(G, opts)
        h = G.config.box_warp / 2
    else:
        h = opts.half_extent or G.config.shape_half_extent
    bounds = ((-h, -h, -h), (h, h, h))
    results = []
    with torch.no_grad():
        ws = G.mapping(G.z_from_seeds(opts.seeds), psi(G, opts))
    for seed, w in zip(opts.seeds, ws):
        w = w[None]
        if official:
            file_volume, volume = official_volumes(G, w, opts.grid)
            pad = official_border(opts.grid)
            # The level statistics skip the -1000 border, which is not a density of the model.
            interior = volume[pad:opts.grid - pad, pad:opts.grid - pad, pad:opts.grid - pad]
        else:
            density = G.density(w)
            volume = sample_density_grid(lambda p: density(p[None])[0], resolution=opts.grid, bounds=bounds,
                                         device=G.device, progress=opts.progress)
            file_volume = interior = volume
        entry = {"seed": seed, "grid_layout": opts.grid_layout, "density_min": float(interior.min()),
                 "density_max": float(interior.max())}
        stem = out / f"seed{seed:04d}"
        if opts.mrc:
            # Official: gen_samples' mrcfile.new_mmap(shape=sigmas.shape).data[:] = sigmas stores the array in C
            # order (its last axis, z, fastest); write_mrc stores its first axis fastest, hence the transpose.
            mrc_volume = file_volume.permute(2, 1, 0) if official else file_volume
            entry["mrc"] = str(write_mrc(f"{stem}.mrc", mrc_volume, voxel_size=2 * h / (opts.grid - 1),
                                         origin=(-h, -h, -h)))
        level = resolve_level(opts.level, interior)
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
