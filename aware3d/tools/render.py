"""``aware3d render``: multi-view images, depth and normal maps for seeds."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from ..cameras import get_camera_path
from ..io.media import colorize_depth, make_grid, normals_to_image, save_image, write_json
from .common import (LatentViews, ModelOptions, load_model, map_seeds, out_dir, psi, settings_record,
                     tool_condition)


@dataclass
class RenderOptions(ModelOptions):
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    """Latent seeds to render (one z per seed)."""
    yaw: list[float] = field(default_factory=lambda: [-0.5, 0.0, 0.5])
    """Yaw offsets from the frontal view in radians (positive turns the camera toward -x)."""
    pitch: list[float] = field(default_factory=lambda: [0.0])
    """Pitch offsets from the mean pose in radians (positive looks from above); every yaw x pitch pair is rendered."""
    path: str | None = None
    """Instead of --yaw/--pitch, a named camera path (yaw_sweep, orbit, front_circle, zoom, fixed_points)."""
    frames: int = 5
    """Number of views taken along --path."""
    normals: bool = True
    """Also save normal maps."""


def view_list(G, opts: RenderOptions) -> list[tuple[float, float, float]]:
    """(yaw, pitch, fov_scale) in pi-GAN angles for every view the options ask for."""
    pose = G.config.pose
    if opts.path:
        p = get_camera_path(opts.path, pose, opts.frames)
        return [(float(y), float(pt), float(s)) for y, pt, s in zip(p.yaw, p.pitch, p.fov_scale)]
    return [(pose.yaw_mean + y, pose.pitch_mean - p, 1.0) for p in opts.pitch for y in opts.yaw]


@torch.no_grad()
def run(opts: RenderOptions) -> dict:
    G = load_model(opts)
    out = out_dir(opts)
    views = view_list(G, opts)
    w_all = map_seeds(G, opts, opts.seeds)
    cfg = G.eval_render_config(opts.num_samples)
    files, grid_rows = [], []
    for si, seed in enumerate(tqdm(opts.seeds, desc="render", unit="seed", disable=not opts.progress)):
        row = []
        # One latent, many views: EG3D's tri-planes are computed once per seed.
        seed_views = LatentViews(G, w_all[si:si + 1], condition=tool_condition(G, opts), resolution=opts.resolution, render=cfg,
                                 lock_view_dependence=opts.lock_view_dependence, normals=opts.normals)
        for vi, (yaw, pitch, scale) in enumerate(views):
            res = seed_views.render(G.cameras([yaw], [pitch], scale))
            stem = out / f"seed{seed:04d}_view{vi:02d}"
            files.append(str(save_image(f"{stem}.png", res.image[0])))
            mask = res.opacity[:, 0] > 0.5
            depth_map = colorize_depth(res.surface_depth[:, 0], mask=mask)[0]
            files.append(str(save_image(f"{stem}_depth.png", depth_map, value_range=(0, 1))))
            if res.normals is not None:
                files.append(str(save_image(f"{stem}_normal.png", normals_to_image(res.normals)[0], value_range=(0, 1))))
            row.append(res.image[0])
        grid_rows.extend(row)
    grid = out / "grid.png"
    save_image(grid, make_grid(torch.stack(grid_rows), nrow=len(views)))
    record = settings_record("render", opts, G, views=[{"yaw": y, "pitch": p, "fov_scale": s,
                                                        "yaw_deg": math.degrees(y), "pitch_deg": math.degrees(p)}
                                                       for y, p, s in views],
                             truncation_psi=psi(G, opts), render=cfg, files=files, grid=str(grid))
    write_json(out / "render.json", record)
    return record
