"""``evaluate(G, metrics, data)``: run registered metrics on a generator (the tool and the trainer call it).

Each name is looked up in the registry (:mod:`.registry`; the built-ins in :mod:`.protocols`, families add
theirs). Before any long work ``evaluate`` checks what the asked-for metrics need (a dataset, its ground
truth, the Inception file, dataset cameras the model can see); then it runs every :class:`SharedPass` once
per group of metrics that share it, then each metric, and flattens every entry into ``results``.

Images are rendered with the model's evaluation render settings at the model's resolution unless told
otherwise (see :mod:`.generation` for the seeding and the two resolutions); real images are read at the
size of the generated images. Every metric's entry in the returned dict records the number of generated and
real images, the camera source, the truncation, the resolutions and the real-image preprocessing.
Real Inception statistics and the SIDE depth network are cached in ``cache_dir`` (see :mod:`.real`).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Any, Callable, Sequence

import torch

from ..config import to_dict
from ..models.base import Condition, Generator3D
from ..nn.kernels import low_precision
from ..rendering.bands import SurfaceBands
from . import protocols  # noqa: F401  (registers the built-in metrics)
from . import faces as _face_metrics  # noqa: F401  (registers the face-model metrics)
from .depth import DepthNetConfig
from .generation import (QUANTIZE, GenerationSettings, check_dataset_cameras, generate, image_resolution,
                         render_generator, resolve_camera, to_uint8)
from .inception import load_inception
from .real import CACHE_ENV, data_info, default_cache_dir, has_ground_truth, real_inception_stats, real_preprocessing
from .registry import Metric, MetricContext, SharedPass, parse_metric_list
from .reprojection import ReprojectionConfig
from .swd import SWDConfig


def check_needs(metrics: Sequence[Metric], data) -> None:
    """Refuse, naming the metrics and the fix, when a metric needs a dataset (or its ground truth) that
    ``data`` does not give. The Inception file is checked by loading it."""
    needs_data = [m.name for m in metrics if m.needs.dataset]
    if needs_data and data is None:
        raise ValueError(f"metrics {', '.join(needs_data)} need real images: pass a dataset (--data NAME_OR_PATH)")
    needs_truth = [m.name for m in metrics if m.needs.ground_truth]
    if needs_truth and not has_ground_truth(data):
        many = len(needs_truth) > 1
        raise ValueError(f"metric{'s' if many else ''} {', '.join(map(repr, needs_truth))} need{'' if many else 's'} "
                         "ground-truth depth and normals from the dataset: pass a synthetic dataset "
                         f"(--data synthetic-heads or synthetic-objects), not {data.name!r}")


def _timed(run: Callable[[MetricContext], dict], ctx: MetricContext, extra_s: float = 0.0) -> dict:
    """``run(ctx)`` with ``time_s`` (its seconds plus ``extra_s``, the shared pass's) added."""
    t0 = time.time()
    entry = run(ctx)
    entry["time_s"] = time.time() - t0 + extra_s
    return entry


def run_metrics(metrics: Sequence[Metric], context: Callable[[Metric], MetricContext]) -> dict[str, dict]:
    """Every metric's details by name: first each shared pass once per group of its metrics with equal image
    count, camera source and truncation (so they score the same images), then the other metrics in order."""
    groups: dict[tuple, list[Metric]] = {}
    for m in metrics:
        if m.shared is not None:
            st = context(m).settings
            groups.setdefault((m.shared, m.num_gen, st.camera, st.truncation_psi), []).append(m)
    details: dict[str, dict] = {}
    for (shared, *_), members in groups.items():
        t0 = time.time()
        product = shared.run(members, context(members[0]))
        pass_s = time.time() - t0
        for m in members:
            details[m.name] = _timed(m.run, replace(context(m), shared=product), pass_s)
    for m in metrics:
        if m.shared is None:
            details[m.name] = _timed(m.run, context(m))
    return details


def evaluate(G: Generator3D, metrics: str | Sequence[str], data=None, *, num_gen: int | None = None, seed: int = 0,
             batch: int = 16, device: str | torch.device | None = None, cache_dir: str | os.PathLike | None = None,
             progress: bool = True, inception: str | os.PathLike | None = None, truncation_psi: float | None = None,
             camera: str | None = None, resolution: int | None = None, num_samples: int | None = None,
             lock_view_dependence: bool = False, depth_net: DepthNetConfig | None = None,
             reprojection: ReprojectionConfig | None = None, swd: SWDConfig | None = None,
             configs: Sequence[Any] = (), condition: Condition | None = None,
             fast: bool | SurfaceBands = False) -> dict[str, Any]:
    """Compute named metrics of generator ``G``.

    Args:
        metrics: registered names (see :data:`aware3d.metrics.registry.METRICS`), a list or a comma-separated
            string.
        data: an :class:`aware3d.data.ImageDataset` (real images; ground truth for ``side``); re-read at the
            generated images' size (:func:`image_resolution`) when its own differs.
        num_gen: overrides every protocol's number of generated images (latents for reprojection).
        seed: seed of latents, cameras and every random draw of the metrics.
        batch: images per generator / detector call.
        device: move ``G`` there first (default: where it is).
        cache_dir: real-statistics and depth-network cache (see :mod:`.real`).
        inception: the Inception file (else ``$AWARE3D_INCEPTION``); only needed for FID / KID / IS.
        truncation_psi, camera: override the protocols' truncation and camera source (auto/dataset/prior).
        resolution, num_samples, lock_view_dependence: render settings (default: the model's evaluation ones);
            ``resolution`` is the rendering resolution (EG3D: neural rendering; its final image stays
            ``config.img_resolution``).
        depth_net, reprojection, swd: settings of those metrics (defaults: their config classes' defaults).
        configs: settings objects of other metrics (each read by type, see :meth:`MetricContext.config`).
        condition: what generation is conditioned on besides z and the camera (one row per image or one for
            all), for families that accept it; None: no condition.
        fast: render in the fast mode (band sampling and bfloat16 where fast; see the tools' ``--fast``): True
            for the default bands, or the :class:`~aware3d.rendering.bands.SurfaceBands` to use; the settings
            record it (the render settings the bands), and the numbers then describe the fast renders.
    Returns:
        ``{"results": {flat name: float}, "metrics": {name: details}, "settings": {...}, "data": {...}}``;
        ``results`` holds each metric's main value under its name plus extras (``swd_<res>``, ``kid50k_full_std``,
        ``mad``, ``reprojection_covisible``); ``metrics[name]["higher_is_better"]`` says the direction.
    """
    chosen = [m.with_num_gen(num_gen) for m in parse_metric_list(metrics)]
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if device is not None:
        G = G.to(device)
    G.check_condition(condition)
    res = resolution or G.config.resolution
    image_res = image_resolution(G, res)
    check_needs(chosen, data)
    # Fail fast, before any long generation.
    detector = load_inception(inception, device=G.device) if any(m.needs.inception for m in chosen) else None
    if data is not None and data.resolution != image_res:
        data = data.at_resolution(image_res)
    cache = default_cache_dir(cache_dir)
    render = G.eval_render_config(num_samples, fast=fast)
    settings = {m.name: GenerationSettings(res, m.truncation_psi if truncation_psi is None else truncation_psi,
                                           resolve_camera(camera or m.camera, data), render, lock_view_dependence,
                                           image_res) for m in chosen}  # camera errors before any long work
    if any(settings[m.name].camera == "dataset" for m in chosen if m.needs.cameras):
        check_dataset_cameras(G, data, render)  # before any long generation
    by_type = {type(c): c for c in (depth_net, reprojection, swd, *configs) if c is not None}

    def context(m: Metric) -> MetricContext:
        return MetricContext(m, G, settings[m.name], data, seed, batch, cache, progress,
                             detector if m.needs.inception else None, condition, by_type)

    was_training = G.training
    G.eval()
    try:
        with low_precision(bool(fast)):
            details = run_metrics(chosen, context)
    finally:
        G.train(was_training)
    ordered = {m.name: {"kind": m.kind, "higher_is_better": m.higher_is_better, "needs": m.needs.names(),
                        **details[m.name]} for m in chosen}
    results = {k: v for m in chosen for k, v in m.flatten(m.name, ordered[m.name]).items()}
    return {
        "results": results,
        "metrics": ordered,
        "settings": {"seed": seed, "batch": batch, "resolution": res, "image_resolution": image_res,
                     "render": to_dict(render),
                     "lock_view_dependence": lock_view_dependence, "fast": bool(fast), "device": str(G.device), "cache_dir": str(cache),
                     "num_gen_override": num_gen, "truncation_psi_override": truncation_psi, "camera_override": camera},
        "data": data_info(data) if data is not None else None,
    }


__all__ = ["CACHE_ENV", "GenerationSettings", "QUANTIZE", "SharedPass", "check_needs", "default_cache_dir",
           "evaluate", "generate", "image_resolution", "real_inception_stats", "real_preprocessing",
           "render_generator", "resolve_camera", "run_metrics", "to_uint8"]
