"""``aware3d metrics``: evaluate a checkpoint with named metrics; writes ``<out>/metrics.json`` and prints a table.

    aware3d metrics --checkpoint ckpt/celeba --data celeba.zip --metrics fid50k_full,kid50k_full \\
        --inception inception-2015-12-05.pt
    aware3d metrics --checkpoint pigan-tiny --data synthetic-heads --metrics swd,msssim,reprojection,side --num-gen 256
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from ..checks import AT_LEAST_ONE, SEED, check_options
from ..data import open_dataset
from ..io.media import write_json
from ..metrics.depth import DepthNetConfig
from ..metrics.evaluate import evaluate
from ..metrics.faces import FaceMetricsConfig
from ..metrics.generation import image_resolution
from ..metrics.registry import parse_metric_list
from .common import ModelOptions, fast_setting, load_model, out_dir, settings_record, tool_condition


@dataclass
class MetricsOptions(ModelOptions):
    metrics: list[str] = field(default_factory=lambda: ["swd", "msssim", "reprojection"])
    """Metric names, space- or comma-separated: fid50k_full, fid10k_full, fid2k_full, kid50k_full, is50k, swd,
    msssim, reprojection, side, or one a family registers (aware3d.metrics.registry)."""
    data: str | None = None
    """Real images: a synthetic name (synthetic-heads, synthetic-objects), an image folder or a .zip (needed by
    fid*, kid*, swd and side; side needs a synthetic dataset)."""
    num_gen: int | None = None
    """Generated images per metric (latents for reprojection); default: each protocol's own (e.g. 50000)."""
    seed: int = 0
    """Seed of the latents, cameras and random draws (same seed, same numbers)."""
    batch: int = 16
    """Images per generator / detector call."""
    inception: str | None = None
    """Inception-v3 file for fid/kid/is: NVIDIA's inception-2015-12-05.pt or pytorch-fid's
    pt_inception-2015-12-05-6726825d.pth (default: $AWARE3D_INCEPTION)."""
    cache_dir: str | None = None
    """Cache of real-image statistics and of the SIDE depth network (default: $AWARE3D_CACHE/metrics or
    ~/.cache/aware3d/metrics)."""
    camera: Literal["auto", "dataset", "prior"] | None = None
    """Cameras of generated images: dataset (poses of random items), prior (the model's pose distribution) or
    auto; default: each protocol's (auto)."""
    face_regressor: str | None = None
    """Face-regressor checkpoint folder (``aware3d face-regressor train``) for face_disentanglement and
    face_landmark_error (families conditioned on a face model)."""
    depth_net_steps: int | None = None
    """Training steps of the SIDE depth network (default 300); it is trained once per dataset and cached."""
    depth_net_resolution: int | None = None
    """Resolution of the SIDE depth network (default 64)."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_options(self, {"num_gen": AT_LEAST_ONE, "seed": SEED, "batch": AT_LEAST_ONE,
                             "depth_net_steps": AT_LEAST_ONE, "depth_net_resolution": AT_LEAST_ONE})


def format_table(results: dict[str, float]) -> str:
    """The flat results as a two-column text table."""
    width = max(len(k) for k in results) if results else 6
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 12}"]
    lines += [f"{k:<{width}}  {v:.6g}" for k, v in results.items()]
    return "\n".join(lines)


def run(opts: MetricsOptions) -> dict:
    specs = parse_metric_list(opts.metrics)  # validates names before any loading
    G = load_model(opts)
    out = out_dir(opts)
    # Real images at the size of the generated ones (EG3D: the super-resolved img_resolution).
    resolution = image_resolution(G, G.config.resolution if opts.resolution is None else opts.resolution)
    data = open_dataset(opts.data, resolution) if opts.data else None
    depth_cfg = DepthNetConfig()
    if opts.depth_net_steps is not None:
        depth_cfg = replace(depth_cfg, steps=opts.depth_net_steps)
    if opts.depth_net_resolution is not None:
        depth_cfg = replace(depth_cfg, resolution=opts.depth_net_resolution)
    report = evaluate(
        G, [s.name for s in specs], data, num_gen=opts.num_gen, seed=opts.seed, batch=opts.batch,
        cache_dir=opts.cache_dir, progress=opts.progress, inception=opts.inception,
        truncation_psi=opts.truncation_psi, camera=opts.camera, resolution=opts.resolution,
        num_samples=opts.num_samples, lock_view_dependence=opts.lock_view_dependence, depth_net=depth_cfg,
        condition=tool_condition(G, opts), fast=fast_setting(opts),
        configs=[FaceMetricsConfig(regressor=opts.face_regressor)] if opts.face_regressor else (),
    )
    file = out / "metrics.json"
    record = settings_record("metrics", opts, G, **report, file=str(file), out=str(out))
    write_json(file, record)
    print(format_table(report["results"]))
    return record


__all__ = ["MetricsOptions", "format_table", "run"]
