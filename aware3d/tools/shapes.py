"""``aware3d shapes``: the density on an N^3 grid as .mrc, and a coloured marching-cubes mesh."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..checks import POSITIVE, SEED, Range, check_options
from ..export.layouts import REGULAR, GridLayout
from ..export.shapes import extract_mesh, save_mesh, write_mrc
from ..io.media import write_json
from ..models.registry import families, family_of
from .common import ModelOptions, load_model, map_seeds, out_dir, psi, settings_record


@dataclass
class ShapesOptions(ModelOptions):
    seeds: list[int] = field(default_factory=lambda: [0])
    """Latent seeds; one volume and one mesh per seed."""
    grid: int = 256
    """Grid points per axis (N): the .mrc holds N^3 densities."""
    level: str | None = field(default=None, metadata={"aliases": ("--sigma-threshold",)})
    """Iso level of the mesh in raw density units (times the eval render's density_scale), 'mean' (the mean
    density of the sampled volume without the official layout's -1000 border, handy for untrained models) or pQ
    (the Q-th percentile of that volume, e.g. p97.5); default: the family's (ShadeGAN's extract_shapes.py 35, EpiGRAF's extract_geometry.py p97.5,
    otherwise pi-GAN's 10)."""
    formats: list[str] = field(default_factory=lambda: ["ply"])
    """Mesh formats to write: any of ply, obj, glb."""
    half_extent: float | None = None
    """Half side of the sampled cube in world units (default: the model's, e.g. ShadeGAN's 0.15)."""
    cube_size: float | None = None
    """Side of the sampled cube in world units, as extract_shapes.py's --cube_size (ShadeGAN's 0.3): another way
    to give --half-extent (half of it)."""
    mrc: bool = True
    """Write the density volume as .mrc (as the official shape scripts do)."""
    grid_layout: str = "regular"
    """regular: density at the exact points of a regular N^3 grid over the cube, .mrc indexed x fastest; families
    add their own (EG3D's official: gen_samples.py's sheared grid and .mrc values); see grid_layouts()."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_options(self, {"seeds": SEED, "grid": Range(2), "half_extent": POSITIVE, "cube_size": POSITIVE})


def resolve_level(level: str | float | None, volume: torch.Tensor, default: str | float) -> float:
    """The iso level for ``volume``: ``default`` (the family's) when None; the volume's mean for 'mean'; its
    Q-th percentile for 'pQ' (0 <= Q <= 100); else the number."""
    spec = str(default if level is None else level).strip()
    if spec == "mean":
        return float(volume.mean())
    try:
        if spec.startswith("p"):
            q = float(spec[1:])
            if not 0 <= q <= 100:
                raise ValueError
            return float(np.percentile(volume.detach().cpu().numpy().reshape(-1), q))
        return float(spec)
    except ValueError:
        raise ValueError(f"--level must be a number, 'mean' or a percentile pQ with 0 <= Q <= 100 (e.g. p97.5), "
                         f"got {spec!r}") from None


def grid_layouts(G) -> dict[str, GridLayout]:
    """The layouts available for ``G``: the shared regular one and those its family registers."""
    return {REGULAR.name: REGULAR, **family_of(G).grid_layouts}


def resolve_layout(G, name: str) -> GridLayout:
    layouts = grid_layouts(G)
    if name in layouts:
        return layouts[name]
    owners = sorted(f.name for f in families().values() if name in f.grid_layouts)
    where = f"it belongs to the {', '.join(owners)} family; " if owners else ""
    raise ValueError(f"--grid-layout {name!r} does not apply to this {G.family} model ({where}valid here: "
                     f"{', '.join(layouts)})")


def resolve_half_extent(opts: ShapesOptions) -> float | None:
    """The cube's half side from --half-extent or --cube-size (None: the layout's or model's default)."""
    if opts.cube_size is None:
        return opts.half_extent
    if opts.half_extent is not None:
        raise ValueError(f"give --half-extent or --cube-size, not both (got {opts.half_extent} and {opts.cube_size})")
    if not opts.cube_size > 0:
        raise ValueError(f"--cube-size must be positive, got {opts.cube_size}")
    return opts.cube_size / 2


def run(opts: ShapesOptions) -> dict:
    G = load_model(opts)
    layout = resolve_layout(G, opts.grid_layout)
    half_extent = resolve_half_extent(opts)
    out = out_dir(opts)
    results = []
    bounds = None
    with torch.no_grad():
        ws = map_seeds(G, opts, opts.seeds)
    for seed, w in zip(opts.seeds, ws):
        vols = layout.volumes(G, w[None], opts.grid, half_extent, opts.progress)
        h = vols.half_extent
        bounds = ((-h, -h, -h), (h, h, h))
        entry = {"seed": seed, "grid_layout": layout.name, "density_min": float(vols.interior.min()),
                 "density_max": float(vols.interior.max())}
        stem = out / f"seed{seed:04d}"
        if opts.mrc:
            entry["mrc"] = str(write_mrc(f"{stem}.mrc", vols.file_volume, voxel_size=2 * h / (opts.grid - 1),
                                         origin=(-h, -h, -h)))
        level = resolve_level(opts.level, vols.interior, G.shape_level())
        verts, faces = extract_mesh(vols.mesh_volume, level, bounds)
        with torch.no_grad():
            colors = G.color(w[None])(torch.from_numpy(verts)[None].to(G.device))[0].clamp(0, 1).cpu().numpy()
        entry.update(level=level, vertices=int(len(verts)), faces=int(len(faces)), meshes=[])
        for fmt in opts.formats:
            entry["meshes"].append(str(save_mesh(f"{stem}.{fmt}", verts, faces, vertex_colors=colors.astype(np.float32))))
        results.append(entry)
    record = settings_record("shapes", opts, G, bounds=bounds, truncation_psi=psi(G, opts), shapes=results)
    write_json(out / "shapes.json", record)
    return record
