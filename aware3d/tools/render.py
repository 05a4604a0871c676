"""``aware3d render``: multi-view images, depth and normal maps for seeds; with ``--relight`` (families with a light
condition) every view under the family's relighting set, with its lighting maps."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from ..cameras import get_camera_path
from ..checks import AT_LEAST_ONE, FINITE, SEED, check_options
from ..io.depth_pictures import colorize_depth_robust, depth_colorbar, robust_depth_range
from ..io.media import make_grid, normals_to_image, save_image, write_json
from ..models.base import Condition
from .common import (LatentViews, ModelOptions, load_model, out_dir, psi, require_condition, settings_record, tool_render_config,
                     tool_band, tool_condition, tool_latents, with_light)


@dataclass
class RenderOptions(ModelOptions):
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    """Latent seeds to render (one z per seed)."""
    yaw: list[float] = field(default_factory=lambda: [-0.5, 0.0, 0.5])
    """Yaw offsets from the frontal view in radians (positive turns the camera toward -x)."""
    pitch: list[float] = field(default_factory=lambda: [0.0])
    """Pitch offsets from the frontal pose in radians (positive looks from above); every yaw x pitch pair is rendered."""
    path: str | None = None
    """Instead of --yaw/--pitch, a named camera path (yaw_sweep, orbit, front_circle, zoom, fixed_points)."""
    frames: int = 5
    """Number of views taken along --path."""
    normals: bool = True
    """Also save normal maps."""
    relight: bool = False
    """Render every view under the family's official relighting set (ShadeGAN: render.py --relight's ambient 0.17,
    diffuse 0.42, dy 0.3, dx -1.5 -1 0 1 1.5), then --light if given, and save per seed, view and light the
    image, normal (n/2 + 0.5), depth (near..far as 0..1) and the family's lighting maps (ShadeGAN: albedo,
    shading, diffuse, tracker_depth); grid rows are seed x view, columns the lights. Families with a light
    condition only."""
    latent: str | None = None
    """A latent file of aware3d invert (latent.safetensors) to render instead of --seeds: its latent and condition
    (--light / --class replace theirs), with --yaw/--pitch offsets from its view (0 0: the inverted picture's
    view). Pair it with the checkpoint its latent.json names (the tuned generator after --pti)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_options(self, {"seeds": SEED, "yaw": FINITE, "pitch": FINITE, "frames": AT_LEAST_ONE})


def view_list(G, opts: RenderOptions, centre: tuple[float, float] | None = None) -> list[tuple[float, float, float]]:
    """(yaw, pitch, fov_scale) in pi-GAN angles for every view the options ask for; ``--yaw``/``--pitch`` are
    offsets from ``centre`` (pi-GAN angles; None: the model's frontal pose)."""
    pose = G.config.pose
    if opts.path:
        p = get_camera_path(opts.path, pose, opts.frames, fov_deg=G.config.fov_deg)
        return [(float(y), float(pt), float(s)) for y, pt, s in zip(p.yaw, p.pitch, p.fov_scale)]
    yaw0, pitch0 = pose.frontal() if centre is None else centre
    return [(yaw0 + y, pitch0 - p, 1.0) for p in opts.pitch for y in opts.yaw]


def light_codes(G, opts: RenderOptions) -> torch.Tensor | None:
    """(L, 4) the lights of ``--relight`` (the family's set, then ``--light``), or None without it."""
    if not opts.relight:
        return None
    require_condition(G, "light", "--relight")
    codes = G.relight_codes()
    condition = tool_condition(G, opts)
    if condition is not None and condition.light is not None:
        codes = torch.cat([codes, condition.light.to(codes)])
    return codes


def save_view(stem: Path, res) -> list[str]:
    """The image, depth and normal map of one render. The depth map is the surface distance coloured over the 2nd..98th
    percentiles of its foreground (opacity > 0.5; grey elsewhere), with that range's colour bar in world units
    beside it as ``<stem>_depth_bar.png``."""
    files = [str(save_image(f"{stem}.png", res.image[0]))]
    depth_range = robust_depth_range(res.surface_depth, res.opacity)
    depth_map = colorize_depth_robust(res.surface_depth, res.opacity, depth_range=depth_range)[0]
    files.append(str(save_image(f"{stem}_depth.png", depth_map, value_range=(0, 1))))
    # At least 160 px wide, so that three labels fit beside each other whatever the render size.
    bar = depth_colorbar(depth_range, max(160, depth_map.shape[-1]))
    files.append(str(save_image(f"{stem}_depth_bar.png", bar, value_range=(0, 1))))
    if res.normals is not None:
        files.append(str(save_image(f"{stem}_normal.png", normals_to_image(res.normals)[0], value_range=(0, 1))))
    return files


def save_relit_view(stem: Path, res, G, condition: Condition, cfg) -> list[str]:
    """The image, normal (n/2 + 0.5), depth (``cfg.near`` black .. ``cfg.far`` white, as render.py) and the
    family's lighting maps (:meth:`~aware3d.models.base.Generator3D.relight_maps`) of one relit render."""
    files = [str(save_image(f"{stem}.png", res.image[0])),
             str(save_image(f"{stem}_depth.png", res.depth[0], value_range=(cfg.near, cfg.far)))]
    if res.normals is not None:
        files.append(str(save_image(f"{stem}_normal.png", normals_to_image(res.normals)[0], value_range=(0, 1))))
    for name, image in G.relight_maps(res, condition, cfg).items():
        files.append(str(save_image(f"{stem}_{name}.png", image[0], value_range=(0, 1))))
    return files


def render_seed(G, opts: RenderOptions, name: str, w, views, cfg, lights,
                base: Condition | None) -> tuple[list[str], list[torch.Tensor]]:
    """Every view (and light) of one latent under ``base``, files named ``<name>_view..``: (files written, images
    for the grid in row-major order)."""
    out = Path(opts.out)
    # One latent, many views: EG3D's tri-planes are computed once per seed.
    seed_views = LatentViews(G, w, condition=base, resolution=opts.resolution, render=cfg,
                             lock_view_dependence=opts.lock_view_dependence, normals=opts.normals,
                             delta=tool_band(G, opts), fast=opts.fast)
    files, images = [], []
    for vi, (yaw, pitch, scale) in enumerate(views):
        cams = G.cameras([yaw], [pitch], scale)
        if lights is None:
            res = seed_views.render(cams)
            files += save_view(out / f"{name}_view{vi:02d}", res)
            images.append(res.image[0])
            continue
        for li, code in enumerate(lights):
            condition = with_light(base, code)
            res = seed_views.render(cams, condition)
            files += save_relit_view(out / f"{name}_view{vi:02d}_light{li:02d}", res, G, condition, cfg)
            images.append(res.image[0])
    return files, images


@torch.no_grad()
def run(opts: RenderOptions) -> dict:
    G = load_model(opts)
    out = out_dir(opts)
    source = tool_latents(G, opts, opts.seeds, opts.latent)
    views = view_list(G, opts, source.centre)
    lights = light_codes(G, opts)
    cfg = tool_render_config(G, opts)
    files, grid_images = [], []
    for si, name in enumerate(tqdm(source.names, desc="render", unit="latent", disable=not opts.progress)):
        seed_files, images = render_seed(G, opts, name, source.w[si:si + 1], views, cfg, lights, source.condition)
        files += seed_files
        grid_images += images
    grid = out / "grid.png"
    save_image(grid, make_grid(torch.stack(grid_images), nrow=len(views) if lights is None else len(lights)))
    extra = {} if lights is None else {"lights": lights.tolist()}
    record = settings_record("render", opts, G, views=[{"yaw": y, "pitch": p, "fov_scale": s,
                                                        "yaw_deg": math.degrees(y), "pitch_deg": math.degrees(p)}
                                                       for y, p, s in views],
                             **extra, truncation_psi=psi(G, opts), render=cfg, files=files, grid=str(grid))
    write_json(out / "render.json", record)
    return record
