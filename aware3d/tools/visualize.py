"""``aware3d visualize``: the inference visualisations of the EpiGRAF paper's ``scripts/inference.py`` for any family.

Each ``--vis`` writes into ``<out>/<vis>/`` (the official ``output_dir/vis.name``), with ``visualize.json`` beside:

* ``front_grid``: per seed, the path's first view large over the other views small (official layout, exact for
  the default three ``points`` views): ``seed-XXXX.png``;
* ``video``: per seed, an MP4 along the camera path: ``seed-XXXX.mp4``;
* ``video_grid``: the seeds' videos tiled ``--nrow`` wide, ``--videos-per-grid`` per file: ``seeds-A-to-B.mp4``;
* ``interp``: per seed pair, ``--num-interp-steps`` renders from w(A) to w(B) seen from above (yaw at the mean,
  pitch pi/8 above it): ``seeds-A-B.png``;
* ``interp_video``: per seed pair, a video moving along the path while w goes from A to B: ``seeds-A-B.mp4``;
* ``density``: per seed, the raw density on a regular ``--voxel-res``^3 grid (``seed-XXXX.npy``, indexed [x, y, z]
  in our world, both cube faces included, the official create_voxel_coords lattice), the render from above it
  accompanies officially (``seed-XXXX.png``), its depth map (``_depth.png``) and max projections of the volume
  (``_density.png``: seen from the front, the side (+x) and the top, each scaled to the volume's min..max);
* ``bg_nobg``: per seed, the frontal render with the background model, then without it over white (families with a
  separate background model): ``seed-XXXX.png``;
* ``minigrid``: per seed, the path's views in one row, each resized to ``--tile`` pixels: ``seed-XXXX.png``.

Every image is one latent seen from one camera with the renderer's draws seeded the same (``LatentViews``), so
the same latent and view give the same pixels in every visualisation (interpolation endpoints equal the seeds'
own renders). Latents come from :meth:`~aware3d.models.base.Generator3D.z_from_seeds` (our seed convention, not
numpy's), truncated in w by ``--truncation-psi`` (default: the model's evaluation value).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from ..cameras import Cameras, get_camera_path
from ..cameras.paths import FIXED_VIEW_PATHS, default_frames
from ..checks import AT_LEAST_ONE, POSITIVE, SEED, Range, check_options
from ..export.layouts import REGULAR
from ..io.media import colorize_depth, make_grid, to_uint8, write_json, write_video
from ..models.base import Condition, Generator3D, GeneratorOutput
from ..nn.kernels import low_precision
from ..rendering import RenderConfig
from .common import (LatentViews, ModelOptions, load_model, map_seeds, out_dir, psi, settings_record, tool_band,
                     tool_condition, tool_render_config)

View = tuple[float, float, float]
"""(yaw, pitch, fov_scale) of one camera, pi-GAN angles in radians."""

ABOVE = math.pi / 8
"""interp and density look at the object from this far above the mean pitch (the official pitch 3 pi / 8)."""


@dataclass
class VisualizeOptions(ModelOptions):
    vis: str = "front_grid"
    """What to make, per seed or seed pair: front_grid (first view large over the others), video, video_grid (the
    seeds' videos tiled), interp (a pair blended in w, in a row), interp_video (blended while the camera moves),
    density (the density volume as .npy, a render and depth from above, max projections), bg_nobg (with and
    without the background model) or minigrid (the views in a row)."""
    camera: str | None = None
    """Camera path of front_grid, minigrid (default points) and the videos (default front_circle_zoom, the official
    front_circle): any of yaw_sweep, orbit, front_circle, zoom, fixed_points, points, line, wiggle,
    front_circle_zoom. interp, density and bg_nobg use their fixed official views."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    """Latent seeds; interp and interp_video pair them up (0 with 1, 2 with 3, ...)."""
    num_seeds: int | None = None
    """Instead of listing --seeds: this many consecutive seeds from the first one."""
    frames: int | None = None
    """Frames of the camera path (default: the path's own, e.g. 64 for front_circle_zoom, 16 for line)."""
    fps: float = 30
    """Frames per second of the videos (the official vis configs' 30)."""
    num_interp_steps: int = 7
    """interp: renders from one seed to the other, both included."""
    videos_per_grid: int = 16
    """video_grid: seeds per video file."""
    nrow: int = 4
    """video_grid: videos per row."""
    tile: int = 256
    """minigrid: side in pixels each view is resized to (official 256)."""
    voxel_res: int = 256
    """density: grid points per axis of the saved volume."""
    half_extent: float | None = None
    """density: half side of the sampled cube, world units (default: the model's shape cube)."""
    white_back: bool = False
    """Render empty space white (the official force_whiteback); bg_nobg always renders its second image so."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_options(self, {"seeds": SEED, "num_seeds": AT_LEAST_ONE, "frames": AT_LEAST_ONE, "fps": POSITIVE,
                             "num_interp_steps": Range(2), "videos_per_grid": AT_LEAST_ONE, "nrow": AT_LEAST_ONE,
                             "tile": AT_LEAST_ONE, "voxel_res": Range(2), "half_extent": POSITIVE})


@dataclass
class VisContext:
    """What every visualisation needs: the model, its render settings and the latents."""

    G: Generator3D
    opts: VisualizeOptions
    render: RenderConfig
    """The render settings of every image."""
    seeds: list[int]
    ws: Tensor
    """(S, ...) truncated latents, one row per seed."""
    folder: Path
    camera_name: str | None
    """The camera path the visualisation follows (None: fixed views)."""
    condition: Condition | None = None
    """The options' condition (``--class``, ``--light``), shared by every latent."""
    band: float | None = None
    """The options' surface band (``--delta``), or None."""
    progress: tqdm | None = None

    def views(self, w: Tensor, render=None) -> LatentViews:
        """One latent ``w`` (1, ...) ready to be seen from many cameras (the backbone runs once)."""
        o = self.opts
        return LatentViews(self.G, w, resolution=o.resolution, render=render or self.render,
                           lock_view_dependence=o.lock_view_dependence, condition=self.condition, delta=self.band,
                           fast=o.fast)

    def image(self, views: LatentViews, view: View) -> Tensor:
        """(3, H, W) in [-1, 1]: ``views``' latent from camera ``view``."""
        out = views.render(self.camera(view))
        self.tick()
        return out.image[0]

    def camera(self, view: View) -> Cameras:
        """One camera at ``view``."""
        yaw, pitch, scale = view
        return self.G.cameras([yaw], [pitch], scale)

    def tick(self) -> None:
        if self.progress is not None:
            self.progress.update(1)

    def path(self) -> list[View]:
        """The views of the camera path over ``--frames`` (or the path's own count)."""
        frames = self.opts.frames or default_frames(self.camera_name)
        p = get_camera_path(self.camera_name, self.G.config.pose, frames, fov_deg=self.G.config.fov_deg)
        return [(float(y), float(pt), float(s)) for y, pt, s in zip(p.yaw, p.pitch, p.fov_scale)]

    def fixed_view(self, above: float = 0.0) -> View:
        """The frontal view (``config.pose.frontal()``), ``above`` radians higher, the model's fov."""
        yaw0, pitch0 = self.G.config.pose.frontal()
        return (yaw0, pitch0 - above, 1.0)

    def write(self, name: str, image: Tensor | np.ndarray) -> str:
        """Save a uint8 (H, W, 3) or (H, W) array or a (3, H, W) [-1, 1] tensor as ``folder/name``."""
        arr = image if isinstance(image, np.ndarray) else to_uint8(image)
        path = self.folder / name
        Image.fromarray(arr).save(path)
        return str(path)


# ------------------------------------------------------------------------------------------------ layouts
def resize(image: np.ndarray, side: int, resample=Image.LANCZOS) -> np.ndarray:
    """A uint8 (H, W, 3) image resized to (side, side) with pillow (Lanczos by default, as the official grids)."""
    return np.asarray(Image.fromarray(image).resize((side, side), resample))


def tile_row(images: list[np.ndarray], nrow: int, padding: int = 2) -> np.ndarray:
    """uint8 (H, W, 3) images tiled ``nrow`` per row with a black ``padding`` border (make_grid's layout)."""
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    return make_grid(batch, nrow=nrow, padding=padding).permute(1, 2, 0).numpy()


def front_grid_layout(images: list[np.ndarray]) -> np.ndarray:
    """The first view large over the others small: uint8 (H, W, 3) images (N >= 2) -> one uint8 image.

    The N - 1 small views are resized to side H // (N - 1) and tiled in one row with a 2-pixel border; the main
    view is resized to that row's width minus 4 and framed by 2 pixels left, right and above. For N = 3 this is
    the official layout exactly (main H + 2, row width W + 6)."""
    if len(images) < 2:
        raise ValueError(f"front_grid needs a camera path with at least 2 views, got {len(images)}; use points")
    side = max(1, images[0].shape[0] // (len(images) - 1))
    row = tile_row([resize(im, side) for im in images[1:]], nrow=len(images) - 1)
    main = resize(images[0], row.shape[1] - 4)
    framed = np.pad(main, ((2, 0), (2, 2), (0, 0)))
    return np.concatenate([framed, row], axis=0)


def max_projections(volume: Tensor) -> np.ndarray:
    """uint8 (N, 3N + 4) greyscale max projections of an [x, y, z] volume, seen from the front (+z: x right, y
    up), the side (+x: -z right, y up) and the top (+y: x right, -z up), scaled to the volume's min..max."""
    lo, hi = float(volume.min()), float(volume.max())
    v = (volume - lo) / (hi - lo) if hi > lo else torch.zeros_like(volume)
    front = v.amax(dim=2).T.flip(0)           # (y, x), +y at the top
    side = v.amax(dim=0).flip(0, 1)           # (y, z) -> +y at the top, -z to the right
    top = v.amax(dim=1).T                     # (z, x): -z at the top
    tiles = [to_uint8(t[None].expand(3, -1, -1), value_range=(0, 1)) for t in (front, side, top)]
    return tile_row(tiles, nrow=3, padding=2)[2:-2, 2:-2, 0]


# ------------------------------------------------------------------------------------------------ renders
def seed_name(seed: int, suffix: str) -> str:
    return f"seed-{seed:04d}{suffix}"


def pair_name(a: int, b: int, suffix: str) -> str:
    return f"seeds-{a:04d}-{b:04d}{suffix}"


def seed_pairs(ctx: VisContext) -> list[tuple[int, int, Tensor, Tensor]]:
    """(seed A, seed B, w A, w B) of consecutive seeds; refuses an odd count."""
    if len(ctx.seeds) < 2 or len(ctx.seeds) % 2:
        raise ValueError(f"--vis {ctx.opts.vis} interpolates pairs of seeds (0 with 1, 2 with 3, ...): give an even "
                         f"number of seeds, got {len(ctx.seeds)} ({ctx.seeds})")
    return [(ctx.seeds[i], ctx.seeds[i + 1], ctx.ws[i:i + 1], ctx.ws[i + 1:i + 2]) for i in range(0, len(ctx.seeds), 2)]


def blend(w_from: Tensor, w_to: Tensor, alpha: float) -> Tensor:
    """``w_from (1 - alpha) + w_to alpha`` (the official arithmetic: alpha 0 and 1 give the keys exactly)."""
    return w_from * (1 - alpha) + w_to * alpha


def alphas(steps: int) -> list[float]:
    """``steps`` blend weights from 0 to 1, both included."""
    return torch.linspace(0, 1, steps).tolist() if steps > 1 else [0.0]


def render_without_background(ctx: VisContext, views: LatentViews, view: View) -> GeneratorOutput:
    """``views``' latent from ``view`` without the family's background model (``ignore_bg``), with the same
    renderer draws as :meth:`LatentViews.render`."""
    G = ctx.G
    gen = None if views.sampling_seed is None else torch.Generator(device=G.device).manual_seed(views.sampling_seed)
    kw = dict(resolution=views.resolution, render=views.render_config, generator=gen, condition=views.condition,
              ignore_bg=True)
    with low_precision(views.fast):
        if views.planes is not None:
            return G.render_planes(views.planes, views.w, ctx.camera(view), **kw)
        return G.synthesis(views.w, ctx.camera(view), lock_view_dependence=views.lock_view_dependence, fast=True,
                           **views.band, **kw)


def require_separate_background(G: Generator3D) -> None:
    """Refuse bg_nobg for a family without a separate background model; the error names those that have one."""
    if G.capabilities.separate_background:
        return
    from ..models.registry import families

    havers = sorted(f.name for f in families().values() if f.generator_cls.capabilities.separate_background)
    raise ValueError(f"--vis bg_nobg renders with and without a separate background model (families: "
                     f"{', '.join(havers) or 'none registered'}); this {G.family} model has none")


def bg_nobg_renders(ctx: VisContext, w: Tensor) -> tuple[GeneratorOutput, GeneratorOutput]:
    """The frontal render of ``w`` with the background model and the same view without it over white."""
    view = ctx.fixed_view()
    with_bg = ctx.views(w).render(ctx.camera(view))
    ctx.tick()
    without = render_without_background(ctx, ctx.views(w, replace(ctx.render, background="white")), view)
    ctx.tick()
    return with_bg, without


# ------------------------------------------------------------------------------------------- the visualisations
def vis_front_grid(ctx: VisContext) -> list[str]:
    views = ctx.path()
    files = []
    for i, seed in enumerate(ctx.seeds):
        lv = ctx.views(ctx.ws[i:i + 1])
        files.append(ctx.write(seed_name(seed, ".png"), front_grid_layout([to_uint8(ctx.image(lv, v)) for v in views])))
    return files


def vis_minigrid(ctx: VisContext) -> list[str]:
    views = ctx.path()
    files = []
    for i, seed in enumerate(ctx.seeds):
        lv = ctx.views(ctx.ws[i:i + 1])
        tiles = [resize(to_uint8(ctx.image(lv, v)), ctx.opts.tile, Image.BILINEAR) for v in views]
        files.append(ctx.write(seed_name(seed, ".png"), tile_row(tiles, nrow=len(tiles))))
    return files


def write_frames(ctx: VisContext, name: str, frames: Iterator[np.ndarray]) -> str:
    return str(write_video(ctx.folder / name, frames, fps=ctx.opts.fps))


def vis_video(ctx: VisContext) -> list[str]:
    views = ctx.path()
    files = []
    for i, seed in enumerate(ctx.seeds):
        lv = ctx.views(ctx.ws[i:i + 1])
        files.append(write_frames(ctx, seed_name(seed, ".mp4"), (to_uint8(ctx.image(lv, v)) for v in views)))
    return files


def vis_video_grid(ctx: VisContext) -> list[str]:
    views, per = ctx.path(), ctx.opts.videos_per_grid
    if per < 1 or ctx.opts.nrow < 1:
        raise ValueError(f"--videos-per-grid and --nrow must be >= 1, got {per} and {ctx.opts.nrow}")
    files = []
    for start in range(0, len(ctx.seeds), per):
        group = range(start, min(start + per, len(ctx.seeds)))
        lvs = [ctx.views(ctx.ws[i:i + 1]) for i in group]
        frames = (tile_row([to_uint8(ctx.image(lv, v)) for lv in lvs], nrow=ctx.opts.nrow) for v in views)
        name = f"seeds-{ctx.seeds[group[0]]:04d}-to-{ctx.seeds[group[-1]]:04d}.mp4"
        files.append(write_frames(ctx, name, frames))
    return files


def vis_interp(ctx: VisContext) -> list[str]:
    if ctx.opts.num_interp_steps < 2:
        raise ValueError(f"--num-interp-steps must be >= 2 (both seeds are shown), got {ctx.opts.num_interp_steps}")
    view = ctx.fixed_view(ABOVE)
    files = []
    for a, b, wa, wb in seed_pairs(ctx):
        tiles = [to_uint8(ctx.image(ctx.views(blend(wa, wb, t)), view)) for t in alphas(ctx.opts.num_interp_steps)]
        files.append(ctx.write(pair_name(a, b, ".png"), tile_row(tiles, nrow=len(tiles))))
    return files


def vis_interp_video(ctx: VisContext) -> list[str]:
    views = ctx.path()
    files = []
    for a, b, wa, wb in seed_pairs(ctx):
        frames = (to_uint8(ctx.image(ctx.views(blend(wa, wb, t)), v)) for t, v in zip(alphas(len(views)), views))
        files.append(write_frames(ctx, pair_name(a, b, ".mp4"), frames))
    return files


def vis_density(ctx: VisContext) -> list[str]:
    o, view = ctx.opts, ctx.fixed_view(ABOVE)
    if o.voxel_res < 2:
        raise ValueError(f"--voxel-res must be >= 2 (the grid includes both cube faces), got {o.voxel_res}")
    files = []
    for i, seed in enumerate(ctx.seeds):
        w = ctx.ws[i:i + 1]
        volume = REGULAR.volumes(ctx.G, w, o.voxel_res, o.half_extent, False).mesh_volume
        np.save(ctx.folder / seed_name(seed, ".npy"), volume.numpy().astype(np.float32))
        res = ctx.views(w).render(ctx.camera(view))
        ctx.tick()
        depth = colorize_depth(res.surface_depth[:, 0], mask=res.opacity[:, 0] > 0.5)[0]
        files += [str(ctx.folder / seed_name(seed, ".npy")), ctx.write(seed_name(seed, ".png"), res.image[0]),
                  ctx.write(seed_name(seed, "_depth.png"), to_uint8(depth, value_range=(0, 1))),
                  ctx.write(seed_name(seed, "_density.png"), max_projections(volume))]
    return files


def vis_bg_nobg(ctx: VisContext) -> list[str]:
    require_separate_background(ctx.G)
    files = []
    for i, seed in enumerate(ctx.seeds):
        with_bg, without = bg_nobg_renders(ctx, ctx.ws[i:i + 1])
        pair = [to_uint8(with_bg.image[0]), to_uint8(without.image[0])]
        files.append(ctx.write(seed_name(seed, ".png"), tile_row(pair, nrow=2)))
    return files


@dataclass(frozen=True)
class Visualization:
    """One ``--vis``: how it runs and how many images it renders (for the progress bar)."""

    run: Callable[[VisContext], list[str]]
    images: Callable[[VisContext], int]
    """Renders it makes for the context's seeds."""
    default_camera: str | None
    """The camera path it follows unless ``--camera`` says otherwise; None: fixed official views."""


def _per_view(ctx: VisContext) -> int:
    return len(ctx.seeds) * len(ctx.path())


def _per_pair_view(ctx: VisContext) -> int:
    return len(ctx.seeds) // 2 * len(ctx.path())


VISUALIZATIONS: dict[str, Visualization] = {
    "front_grid": Visualization(vis_front_grid, _per_view, "points"),
    "video": Visualization(vis_video, _per_view, "front_circle_zoom"),
    "video_grid": Visualization(vis_video_grid, _per_view, "front_circle_zoom"),
    "interp": Visualization(vis_interp, lambda ctx: len(ctx.seeds) // 2 * ctx.opts.num_interp_steps, None),
    "interp_video": Visualization(vis_interp_video, _per_pair_view, "front_circle_zoom"),
    "density": Visualization(vis_density, lambda ctx: len(ctx.seeds), None),
    "bg_nobg": Visualization(vis_bg_nobg, lambda ctx: 2 * len(ctx.seeds), None),
    "minigrid": Visualization(vis_minigrid, _per_view, "points"),
}


def get_visualization(opts: VisualizeOptions) -> tuple[Visualization, str | None]:
    """The ``--vis`` entry and the camera path it follows, refusing an unknown name (listing the valid ones), a
    --camera it does not follow, or --frames for a path with fixed views."""
    if opts.vis not in VISUALIZATIONS:
        raise ValueError(f"unknown --vis {opts.vis!r}; valid: {', '.join(VISUALIZATIONS)}")
    vis = VISUALIZATIONS[opts.vis]
    if vis.default_camera is None:
        if opts.camera is not None:
            raise ValueError(f"--vis {opts.vis} uses its fixed official views; drop --camera {opts.camera}")
        return vis, None
    camera = opts.camera or vis.default_camera
    if opts.frames is not None and camera in FIXED_VIEW_PATHS:
        raise ValueError(f"camera path {camera} has a fixed set of views; drop --frames (or pick a path such as "
                         "line or front_circle_zoom)")
    return vis, camera


def resolve_seeds(opts: VisualizeOptions) -> list[int]:
    """``--seeds``, or with ``--num-seeds N`` the N consecutive seeds from the first one."""
    if opts.num_seeds is None:
        seeds = list(opts.seeds)
    elif opts.num_seeds < 1:
        raise ValueError(f"--num-seeds must be >= 1, got {opts.num_seeds}")
    else:
        seeds = [opts.seeds[0] + i for i in range(opts.num_seeds)]
    if not seeds:
        raise ValueError("give at least one seed (--seeds 0 1 or --num-seeds 4)")
    return seeds


def make_context(G: Generator3D, opts: VisualizeOptions, camera: str | None) -> VisContext:
    """The context of one run: render settings, latents of the seeds, the output folder ``<out>/<vis>``."""
    seeds = resolve_seeds(opts)
    render = tool_render_config(G, opts, **({"background": "white"} if opts.white_back else {}))
    folder = out_dir(opts) / opts.vis
    folder.mkdir(parents=True, exist_ok=True)
    return VisContext(G, opts, render, seeds, map_seeds(G, opts, seeds), folder, camera,
                      condition=tool_condition(G, opts), band=tool_band(G, opts))


@torch.no_grad()
def run(opts: VisualizeOptions) -> dict:
    vis, camera = get_visualization(opts)
    resolve_seeds(opts)
    G = load_model(opts)
    ctx = make_context(G, opts, camera)
    seeds, render, folder = ctx.seeds, ctx.render, ctx.folder
    with tqdm(total=vis.images(ctx), desc=opts.vis, unit="image", disable=not opts.progress) as bar:
        ctx.progress = bar
        files = vis.run(ctx)
    record = settings_record("visualize", opts, G, vis=opts.vis, seeds=seeds, truncation_psi=psi(G, opts),
                             render=render, camera=camera, out=str(folder), files=files)
    write_json(folder / "visualize.json", record)
    return record
