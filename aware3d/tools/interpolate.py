"""``aware3d interpolate``: a video moving between seeds in w space (after the mapping network)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from ..cameras import get_camera_path
from ..checks import AT_LEAST_ONE, POSITIVE, SEED, check_options
from ..io.media import to_uint8, write_json, write_video
from .common import (LatentViews, ModelOptions, load_model, map_seeds, out_dir, psi, settings_record, tool_render_config,
                     tool_band, tool_condition)


@dataclass
class InterpolateOptions(ModelOptions):
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Seeds visited in order; the video returns to the first one, so it loops."""
    frames_per_seed: int = 24
    """Frames spent moving from one seed to the next."""
    path: str | None = None
    """Optional camera path followed during the interpolation (default: the frontal view)."""
    fps: float = 24
    """Frames per second."""
    name: str = "interpolation.mp4"
    """File name inside --out; the suffix chooses the format (.mp4 or .gif)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_options(self, {"seeds": SEED, "frames_per_seed": AT_LEAST_ONE, "fps": POSITIVE})


def interpolation_ws(w_keys: torch.Tensor, frames_per_key: int) -> torch.Tensor:
    """Linear paths between consecutive keys (K, ...) and back to the first: (K * frames_per_key, ...).

    Keys may have any trailing shape: (K, D) for pi-GAN, (K, num_ws, w_dim) for EG3D."""
    nxt = torch.roll(w_keys, -1, 0)
    t = torch.arange(frames_per_key, dtype=w_keys.dtype, device=w_keys.device) / frames_per_key
    t = t.reshape(1, -1, *([1] * (w_keys.ndim - 1)))
    return (w_keys[:, None] + t * (nxt - w_keys)[:, None]).reshape(-1, *w_keys.shape[1:])


def run(opts: InterpolateOptions) -> dict:
    G = load_model(opts)
    if len(opts.seeds) < 2:
        raise ValueError("interpolate needs at least two seeds (e.g. --seeds 0 1 2)")
    cfg = tool_render_config(G, opts)
    with torch.no_grad():
        # Truncate the keys, then interpolate: every frame stays inside the truncated region.
        ws = interpolation_ws(map_seeds(G, opts, opts.seeds), opts.frames_per_seed)
    pose = G.config.pose
    path = get_camera_path(opts.path, pose, len(ws), fov_deg=G.config.fov_deg) if opts.path else None

    def frames():
        for i in tqdm(range(len(ws)), desc="interpolate", unit="frame", disable=not opts.progress):
            yaw, pitch, scale = (float(path.yaw[i]), float(path.pitch[i]), float(path.fov_scale[i])) if path else (
                *pose.frontal(), 1.0)
            with torch.no_grad():
                # w changes every frame, so a plane cache (EG3D) is built and used once per frame.
                views = LatentViews(G, ws[i:i + 1], condition=tool_condition(G, opts), resolution=opts.resolution, render=cfg,
                                    lock_view_dependence=opts.lock_view_dependence, delta=tool_band(G, opts),
                                    fast=opts.fast)
                img = views.render(G.cameras([yaw], [pitch], scale)).image
            yield to_uint8(img[0])

    target = out_dir(opts) / opts.name
    write_video(target, frames(), fps=opts.fps)
    record = settings_record("interpolate", opts, G, truncation_psi=psi(G, opts), render=cfg, file=str(target),
                             frames=len(ws), space="w (mapping output, truncated)")
    write_json(target.with_suffix(".json"), record)
    return record
