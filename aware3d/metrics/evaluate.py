"""``evaluate(G, metrics, data)``: run named metric protocols on a generator (the tool and the trainer call it).

Generation is deterministic: latents (and dataset-pose indices) come from a CPU generator seeded with
``seed``, and any random draw of the renderer (EG3D's inference sampling jitters and draws importance
uniforms; pi-GAN's evaluation settings draw nothing) from a generator on the model's device seeded with
``seed + 2``, so the same call gives the same images. Images are rendered with the model's evaluation
render settings at the model's resolution unless told otherwise; real images are read at the size of the
generated images.

Two resolutions (they differ for EG3D): the *rendering* resolution (``resolution``, EG3D's neural rendering
resolution, the size of depth, opacity and ``image_raw``) and the *image* resolution, the size of
``out.image`` (:func:`image_resolution`: EG3D's super-resolved ``config.img_resolution``). FID/KID/IS, SWD and
MS-SSIM score the final image. Reprojection warps colours through depth, so it scores the volume-rendered
image at the depth's resolution (EG3D's ``image_raw``, super-resolution skipped: the 2D upsampler's output is
not defined by the rays). SIDE feeds the final image (what a viewer sees) to the depth network after an
antialiased resize to the depth's resolution, and compares with the generator's depth there.

Every metric's entry in the returned dict records the number of generated and real images, the camera
source, the truncation, the resolutions and the real-image preprocessing.

Real Inception statistics are cached in ``cache_dir`` (default ``$AWARE3D_CACHE/metrics`` or
``~/.cache/aware3d/metrics``) keyed by the dataset fingerprint (content hash at this resolution), the
detector file's sha256, the number of real images and the preprocessing; the SIDE depth network is cached
there too, keyed by the dataset fingerprint and its config.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import Tensor
from tqdm import tqdm

from ..cameras import Cameras
from ..config import to_dict
from ..io.atomic import atomic_write_bytes
from ..models.base import Generator3D, GeneratorOutput
from ..rendering import RenderConfig
from .depth import (DepthNetConfig, erode_mask, load_or_train_depth_net, mean_angle_deviation, normals_from_depth,
                    scale_invariant_depth_error)
from .frechet import FeatureStats, frechet_distance
from .inception import InceptionDetector, load_inception
from .kid import inception_score, kernel_inception_distance
from .msssim import msssim_diversity
from .protocols import MetricSpec, parse_metric_list
from .reprojection import ReprojectionConfig, reprojection_error, surface_depth
from .swd import DescriptorSet, SWDConfig, swd_from_descriptors

CACHE_ENV = "AWARE3D_CACHE"
QUANTIZE = "uint8 = round((x + 1) * 127.5) clamped to [0, 255] (StyleGAN's x * 127.5 + 128, truncated)"
"""How images in [-1, 1] become the detector's uint8 input (real and generated alike)."""


def default_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` if given, else ``$AWARE3D_CACHE/metrics``, else ``~/.cache/aware3d/metrics``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    root = os.environ.get(CACHE_ENV)
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "aware3d") / "metrics"


def to_uint8(images: Tensor) -> Tensor:
    """(B, C, H, W) float in [-1, 1] -> uint8 (see :data:`QUANTIZE`)."""
    return ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


# ------------------------------------------------------------------------------------ generation

@dataclass(frozen=True)
class GenerationSettings:
    """How generated images are made (recorded in the output JSON)."""

    resolution: int
    """Rendering resolution in pixels (EG3D: the neural rendering resolution of depth and ``image_raw``)."""
    truncation_psi: float
    """Truncation in w space (1 = none)."""
    camera: str
    """Resolved camera source: "dataset" (labels of random items) or "prior" (the model's pose distribution)."""
    render: RenderConfig
    """Sampling and compositing settings."""
    lock_view_dependence: bool = False
    """Whether colours ignore the view direction."""
    image_resolution: int | None = None
    """Size of the final ``image`` in pixels (None: the rendering resolution; EG3D: ``img_resolution``)."""

    @property
    def image_size(self) -> int:
        """The final image's side in pixels."""
        return self.image_resolution or self.resolution


def image_resolution(G: Generator3D, render_resolution: int) -> int:
    """Side of ``G``'s final images when rendering at ``render_resolution``: a model with a super-resolution
    stage (EG3D) always outputs ``config.img_resolution``; the others output the rendering resolution."""
    return int(getattr(G.config, "img_resolution", None) or render_resolution)


RENDER_SEED_OFFSET = 2
"""The renderer's random draws use ``seed + RENDER_SEED_OFFSET`` (``seed + 1`` picks the real images)."""


def render_generator(G: Generator3D, seed: int) -> torch.Generator:
    """The seeded source of the renderer's draws, on the model's device (where the renderer draws them)."""
    return torch.Generator(device=G.device).manual_seed(seed + RENDER_SEED_OFFSET)


def resolve_camera(requested: str, data) -> str:
    """"dataset" or "prior" for a requested source ("auto": dataset poses when every item has a label)."""
    if requested not in ("auto", "dataset", "prior"):
        raise ValueError(f"unknown camera source {requested!r}; valid: auto, dataset, prior")
    has_labels = data is not None and bool(getattr(data, "has_labels", False))
    if requested == "dataset" and not has_labels:
        raise ValueError("camera source 'dataset' needs a dataset whose items all have camera labels "
                         "(pass --data with labels, or use --camera prior)")
    if requested == "auto":
        return "dataset" if has_labels else "prior"
    return requested


def check_dataset_cameras(G: Generator3D, data, render: RenderConfig, items: int = 16) -> None:
    """Refuse dataset cameras that cannot see the model's object: the camera's distance to the world origin
    (where every family's object sits) must lie in the rays' [near, far] range for at least one of the first
    ``items`` labels. E.g. synthetic-heads' cameras (radius 1) and EG3D (rays from 2.25 to 3.3)."""
    label = data.get_labels(list(range(min(items, len(data)))))[0].to(torch.float32)
    dist = label[:, :16].reshape(-1, 4, 4)[:, :3, 3].norm(dim=-1)
    if bool(((dist < render.near) | (dist > render.far)).all()):
        raise ValueError(
            f"the dataset's cameras are {float(dist.min()):.3g}..{float(dist.max()):.3g} from the origin, but this "
            f"{G.family} model renders {render.near:g}..{render.far:g} along each ray (its cameras sit at "
            f"{G.config.pose.radius:g}): from there it would show empty space. Use --camera prior (the model's pose "
            "distribution) or a dataset whose cameras match the model")


@torch.no_grad()
def generate(G: Generator3D, n: int, settings: GenerationSettings, *, seed: int, batch: int, data=None,
             normals: bool = False, progress: bool = True, desc: str = "generate") -> Iterator[tuple[GeneratorOutput, Cameras]]:
    """Yield ``(render, cameras)`` batches of ``n`` images in total; deterministic for a seed."""
    g = torch.Generator().manual_seed(seed)
    g_render = render_generator(G, seed)
    dev = G.device
    with tqdm(total=n, desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for s in range(0, n, batch):
            b = min(batch, n - s)
            z = torch.randn(b, G.z_dim, generator=g).to(dev)
            if settings.camera == "dataset":
                idx = torch.randint(0, len(data), (b,), generator=g)
                label = data.get_labels(idx)[0].to(dev, torch.float32)
                cams = Cameras(label[:, :16].reshape(-1, 4, 4), label[:, 16:].reshape(-1, 3, 3))
            else:
                cams = G.sample_cameras(b, generator=g).to(dev)
            out = G(z, cams, truncation_psi=settings.truncation_psi, resolution=settings.resolution,
                    render=settings.render, lock_view_dependence=settings.lock_view_dependence, normals=normals,
                    fast=True, generator=g_render)
            bar.update(b)
            yield out, cams


# ---------------------------------------------------------------------------- real statistics

def _data_info(data) -> dict:
    return {"name": getattr(data, "name", None), "length": len(data), "resolution": getattr(data, "resolution", None),
            "mirror": getattr(data, "mirror", None), "has_labels": bool(getattr(data, "has_labels", False)),
            "fingerprint": data.fingerprint()}


def real_preprocessing(data) -> dict:
    """What the real images went through before the detector (recorded in the JSON)."""
    return {"resolution": data.resolution, "mirror": bool(getattr(data, "mirror", False)), "quantize": QUANTIZE,
            "order": "the first num_real items of the dataset"}


def real_inception_stats(data, detector: InceptionDetector, num_real: int | None, *, need_all: bool, batch: int,
                         cache_dir: Path, use_cache: bool = True, progress: bool = True) -> tuple[FeatureStats, dict]:
    """Inception features of the first ``num_real`` (None: all) dataset items, from the cache when present.

    Returns the statistics (with every vector when ``need_all``) and a record of the cache use. A cached
    entry without the vectors is recomputed (and replaced) when they are needed.
    """
    n = len(data) if num_real is None else min(num_real, len(data))
    desc = {"format": "aware3d-real-stats-1", "dataset": data.fingerprint(), "detector_sha256": detector.sha256,
            "detector_kind": detector.kind, "output": "pool_features", "num_real": n, "quantize": QUANTIZE}
    key = hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:20]
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(getattr(data, "name", "data")))[:40]
    file = cache_dir / f"real-{name}-{key}.safetensors"
    if use_cache and file.is_file():
        state = load_safetensors_bytes(file.read_bytes())
        if not need_all or "features" in state:
            return FeatureStats.from_state(state), {"cache": "hit", "file": str(file), "num_real": n}
    stats = FeatureStats(capture_all=need_all)
    with tqdm(total=n, desc="real features", unit="img", disable=not progress, leave=False) as bar:
        for s in range(0, n, batch):
            idx = list(range(s, min(n, s + batch)))
            stats.append(detector.features(to_uint8(data.get_batch(idx).image)))
            bar.update(len(idx))
    if use_cache:
        atomic_write_bytes(file, save_safetensors_bytes(stats.state(), metadata={"description": json.dumps(desc)}))
    return stats, {"cache": "miss" if use_cache else "off", "file": str(file) if use_cache else None, "num_real": n}


# ----------------------------------------------------------------------------------- per metric

def _inception_group(G, specs: list[MetricSpec], settings: GenerationSettings, detector: InceptionDetector, data,
                     seed: int, batch: int, cache_dir: Path, progress: bool) -> dict[str, dict]:
    """FID / KID / IS sharing one set of generated images (same count, cameras and truncation)."""
    n = specs[0].num_gen
    want_feats = any(s.kind in ("fid", "kid") for s in specs)
    want_probs = any(s.kind == "is" for s in specs)
    need_all = any(s.kind == "kid" for s in specs)
    feats = FeatureStats(capture_all=need_all)
    probs = FeatureStats(capture_all=True)
    start = time.time()
    for out, _ in generate(G, n, settings, seed=seed, batch=batch, data=data, progress=progress,
                           desc=f"generate ({', '.join(s.name for s in specs)})"):
        img = to_uint8(out.image)
        if want_feats:
            feats.append(detector.features(img))
        if want_probs:
            probs.append(detector.probabilities(img))
    gen_time = time.time() - start
    common = {"num_gen": n, "camera": settings.camera, "truncation_psi": settings.truncation_psi,
              "resolution": settings.resolution, "image_resolution": settings.image_size, "seed": seed,
              "detector": detector.describe(),
              "generated_preprocessing": {"quantize": QUANTIZE}, "generation_time_s": gen_time}
    out: dict[str, dict] = {}

    def real_count(spec: MetricSpec) -> int:
        return len(data) if spec.num_real is None else min(spec.num_real, len(data))

    # Real statistics once per distinct count, keeping every vector when some KID needs them.
    real_specs = [s for s in specs if s.kind in ("fid", "kid")]
    counts = sorted({real_count(s) for s in real_specs})
    real_stats = {c: real_inception_stats(data, detector, c, need_all=any(s.kind == "kid" and real_count(s) == c
                                                                          for s in real_specs),
                                          batch=batch, cache_dir=cache_dir, progress=progress) for c in counts}
    for spec in specs:
        t0 = time.time()
        entry = dict(common)
        if spec.kind in ("fid", "kid"):
            real, record = real_stats[real_count(spec)]
            entry.update(num_real=real.count, num_real_requested=spec.num_real if spec.num_real is not None else "full",
                         real_preprocessing=real_preprocessing(data), real_cache=record)
            if spec.kind == "fid":
                mu_g, cov_g = feats.mean_cov()
                mu_r, cov_r = real.mean_cov()
                entry["value"] = frechet_distance(mu_g, cov_g, mu_r, cov_r)
            else:
                mean, std = kernel_inception_distance(feats.all(), real.all(), spec.kid_subsets, spec.kid_subset_size,
                                                      torch.Generator().manual_seed(seed))
                entry.update(value=mean, std=std, subsets=spec.kid_subsets, subset_size=spec.kid_subset_size)
        else:
            mean, std = inception_score(probs.all(), spec.is_splits)
            entry.update(value=mean, std=std, splits=spec.is_splits)
        entry["time_s"] = time.time() - t0 + gen_time
        out[spec.name] = entry
    return out


def _random_real_images(data, n: int, seed: int, batch: int) -> Iterator[Tensor]:
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed + 1))[:n].tolist()
    for s in range(0, n, batch):
        yield data.get_batch(perm[s:s + batch]).image


def _swd(G, spec: MetricSpec, settings: GenerationSettings, data, seed: int, batch: int, progress: bool,
         config: SWDConfig) -> dict:
    n = min(spec.num_gen, len(data))
    g = torch.Generator().manual_seed(seed)
    real = DescriptorSet(settings.image_size, config, g)
    for images in _random_real_images(data, n, seed, batch):
        real.feed(images)
    fake = DescriptorSet(settings.image_size, config, g)
    for out, _ in generate(G, n, settings, seed=seed, batch=batch, data=data, progress=progress, desc="generate (swd)"):
        fake.feed(out.image)
    values = swd_from_descriptors(real.descriptors(), fake.descriptors(), real.resolutions, config, g)
    return {"value": values["avg"], "levels": {k: v for k, v in values.items() if k != "avg"}, "num_gen": n, "num_real": n,
            "camera": settings.camera, "truncation_psi": settings.truncation_psi, "resolution": settings.resolution,
            "image_resolution": settings.image_size, "seed": seed, "config": to_dict(config),
            "real_preprocessing": {**real_preprocessing(data), "order": "a random subset of num_real items (seed + 1)"}}


def _msssim(G, spec: MetricSpec, settings: GenerationSettings, data, seed: int, batch: int, progress: bool) -> dict:
    images = torch.cat([to_uint8(out.image).cpu() for out, _ in generate(
        G, spec.num_gen, settings, seed=seed, batch=batch, data=data, progress=progress, desc="generate (msssim)")])
    n = images.shape[0]
    # More random pairs than there are distinct pairs only repeats them.
    pairs = min(spec.msssim_pairs, n * (n - 1) // 2)
    res = msssim_diversity(images.float() / 127.5 - 1, pairs, generator=torch.Generator().manual_seed(seed))
    return {"value": res.pop("mean"), **res, "num_gen": spec.num_gen, "camera": settings.camera,
            "truncation_psi": settings.truncation_psi, "resolution": settings.resolution,
            "image_resolution": settings.image_size, "seed": seed,
            "images": "generated images quantised to uint8, compared in [0, 1] with data range 1"}


def has_superresolution(G: Generator3D) -> bool:
    """Whether ``G``'s final image comes from a 2D super-resolution network (EG3D) rather than the rays."""
    return isinstance(getattr(G, "superresolution", None), torch.nn.Module)


def ray_image(out: GeneratorOutput) -> Tensor:
    """The volume-rendered colour (B, 3, R, R) at the depth's resolution: EG3D's ``image_raw``, else ``image``."""
    raw = getattr(out, "image_raw", None)
    return out.image if raw is None else raw


@torch.no_grad()
def _reprojection(G, spec: MetricSpec, settings: GenerationSettings, seed: int, batch: int, progress: bool,
                  config: ReprojectionConfig) -> dict:
    pose = G.config.pose
    grid = G.config.pixel_grid
    views = [(pose.yaw_mean + dy, pose.pitch_mean - config.pitch_offset) for dy in config.yaw_offsets]
    if len(views) < 2:
        raise ValueError("reprojection needs at least two yaw offsets")
    g = torch.Generator().manual_seed(seed)
    g_render = render_generator(G, seed)
    # Only image_raw is compared (see the module doc), so EG3D's costly super-resolution is skipped.
    geometry_only = {"superresolution": False} if has_superresolution(G) else {}
    err = cnt = 0.0
    per_latent = []
    total = 0
    n = spec.num_gen
    cfg = settings.render
    for s in tqdm(range(0, n, batch), desc="reprojection", unit="batch", disable=not progress, leave=False):
        b = min(batch, n - s)
        z = torch.randn(b, G.z_dim, generator=g).to(G.device)
        # Camera-conditioned mappings (EG3D) get the mean pose, the same for every view of a latent.
        w = G.mapping(z, settings.truncation_psi, cameras=G.cameras([pose.yaw_mean] * b, [pose.pitch_mean] * b))
        images, depths, valid, cams = [], [], [], []
        for yaw, pitch in views:
            c = G.cameras([yaw] * b, [pitch] * b)
            out = G.synthesis(w, c, resolution=settings.resolution, render=cfg,
                              lock_view_dependence=settings.lock_view_dependence, fast=True, generator=g_render,
                              **geometry_only)
            images.append(ray_image(out))
            depths.append(surface_depth(out.depth, out.opacity, cfg.background, cfg.depth_mode))
            valid.append(out.opacity > config.min_opacity)
            cams.append(c)
        r = reprojection_error(torch.stack(images), torch.stack(depths), torch.stack(valid), cams, grid,
                               config.depth_tolerance)
        err += float(r["error_sum"])
        cnt += float(r["pixels"])
        total += r["total_pixels"]
        per_latent += (r["per_latent_sum"] / r["per_latent_pixels"].clamp_min(1)).tolist()
    return {"value": err / cnt if cnt > 0 else float("nan"), "covisible_fraction": cnt / total,
            "per_latent_std": float(torch.tensor(per_latent).std()) if len(per_latent) > 1 else 0.0,
            "num_latents": n, "views": [{"yaw": y, "pitch": p} for y, p in views], "pixel_grid": grid,
            "truncation_psi": settings.truncation_psi, "resolution": settings.resolution, "seed": seed,
            "lock_view_dependence": settings.lock_view_dependence, "config": to_dict(config),
            "image": "image_raw (volume-rendered, at the depth resolution; super-resolution skipped)"
            if geometry_only else "image",
            "units": "mean |colour difference| over RGB in [0, 1] units over co-visible pixels of neighbouring views"}


def _depth(G, spec: MetricSpec, settings: GenerationSettings, data, seed: int, batch: int, cache_dir: Path,
           progress: bool, config: DepthNetConfig, min_pixels: int = 16) -> dict:
    if not hasattr(data, "ground_truth"):
        raise ValueError(f"metric {spec.name!r} needs ground-truth depth: pass a synthetic dataset "
                         f"(--data synthetic-heads or synthetic-objects), not {getattr(data, 'name', data)!r}")
    dn_data = data.at_resolution(config.resolution) if data.resolution != config.resolution else data

    def ground_truth(indices: list[int]):
        s = dn_data.ground_truth(indices)
        return s.image, s.depth, s.mask

    n_items = getattr(dn_data, "base_length", len(dn_data))
    net, record = load_or_train_depth_net(ground_truth, n_items, dn_data.fingerprint(), cache_dir, config, G.device,
                                          progress)
    cfg = settings.render
    sides, mads = [], []
    skipped = 0
    for out, cams in generate(G, spec.num_gen, settings, seed=seed, batch=batch, data=data, progress=progress,
                              desc="generate (side)"):
        gen_depth = surface_depth(out.depth, out.opacity, cfg.background, cfg.depth_mode)
        image = out.image.clamp(-1, 1)
        if image.shape[-2:] != gen_depth.shape[-2:]:  # EG3D: super-resolved image, depth at the rendering size
            image = F.interpolate(image, size=tuple(gen_depth.shape[-2:]), mode="bilinear", antialias=True,
                                  align_corners=False)
        pred_depth, pred_fg = net.predict(image)
        mask = erode_mask((out.opacity > 0.5) & (pred_fg > 0.5))
        ok = mask.flatten(1).sum(1) >= min_pixels
        skipped += int((~ok).sum())
        if not bool(ok.any()):
            continue
        m = mask[ok]
        sides.append(scale_invariant_depth_error(pred_depth[ok], gen_depth[ok], m).cpu())
        grid = G.config.pixel_grid
        n_pred = normals_from_depth(pred_depth[ok], cams.intrinsics[ok], grid)
        n_gen = normals_from_depth(gen_depth[ok], cams.intrinsics[ok], grid)
        mads.append(mean_angle_deviation(n_pred, n_gen, m).cpu())
    side = torch.cat(sides) if sides else torch.empty(0)
    mad = torch.cat(mads) if mads else torch.empty(0)
    return {"value": float(side.mean()) if len(side) else float("nan"),
            "mad_deg": float(mad.mean()) if len(mad) else float("nan"),
            "side_std": float(side.std()) if len(side) > 1 else 0.0, "images_scored": len(side),
            "images_skipped_small_mask": skipped, "min_mask_pixels": min_pixels, "num_gen": spec.num_gen,
            "camera": settings.camera, "truncation_psi": settings.truncation_psi, "resolution": settings.resolution,
            "seed": seed, "depth_net": {"config": to_dict(config), "dataset_fingerprint": dn_data.fingerprint(), **record},
            "image_resolution": settings.image_size,
            "image": "the final image, antialiased-resized to the depth resolution when they differ",
            "mask": "generator opacity > 0.5 and depth-net foreground > 0.5, eroded by one pixel",
            "units": "SIDE on log depth (unitless); MAD in degrees"}


# ------------------------------------------------------------------------------------- evaluate

def _flat_results(name: str, kind: str, entry: dict) -> dict[str, float]:
    out = {name: entry["value"]}
    if kind in ("kid", "is"):
        out[f"{name}_std"] = entry["std"]
    elif kind == "swd":
        out.update({f"{name}_{res}": v for res, v in entry["levels"].items()})
    elif kind == "reprojection":
        out[f"{name}_covisible"] = entry["covisible_fraction"]
    elif kind == "depth":
        out["mad"] = entry["mad_deg"]
    return out


def evaluate(G: Generator3D, metrics: str | Sequence[str], data=None, *, num_gen: int | None = None, seed: int = 0,
             batch: int = 16, device: str | torch.device | None = None, cache_dir: str | os.PathLike | None = None,
             progress: bool = True, inception: str | os.PathLike | None = None, truncation_psi: float | None = None,
             camera: str | None = None, resolution: int | None = None, num_samples: int | None = None,
             lock_view_dependence: bool = False, depth_net: DepthNetConfig | None = None,
             reprojection: ReprojectionConfig | None = None, swd: SWDConfig | None = None) -> dict[str, Any]:
    """Compute named metrics of generator ``G``.

    Args:
        metrics: names (see :data:`aware3d.metrics.protocols.METRICS`), a list or a comma-separated string.
        data: an :class:`aware3d.data.ImageDataset` (real images; ground truth for ``side``); re-read at the
            generated images' size (:func:`image_resolution`) when its own differs.
        num_gen: overrides every protocol's number of generated images (latents for reprojection).
        seed: seed of latents, cameras and every random draw of the metrics.
        batch: images per generator / detector call.
        device: move ``G`` there first (default: where it is).
        cache_dir: real-statistics and depth-network cache (see module docstring).
        inception: the Inception file (else ``$AWARE3D_INCEPTION``); only needed for FID / KID / IS.
        truncation_psi, camera: override the protocols' truncation and camera source (auto/dataset/prior).
        resolution, num_samples, lock_view_dependence: render settings (default: the model's evaluation ones);
            ``resolution`` is the rendering resolution (EG3D: neural rendering; its final image stays
            ``config.img_resolution``).
        depth_net, reprojection, swd: settings of those metrics (defaults: their config classes' defaults).
    Returns:
        ``{"results": {flat name: float}, "metrics": {name: details}, "settings": {...}, "data": {...}}``;
        ``results`` holds each metric's main value under its name plus extras (``swd_<res>``, ``kid50k_full_std``,
        ``mad``, ``reprojection_covisible``); ``metrics[name]["higher_is_better"]`` says the direction.
    """
    specs = [s.with_num_gen(num_gen) for s in parse_metric_list(metrics)]
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if device is not None:
        G = G.to(device)
    res = resolution or G.config.resolution
    image_res = image_resolution(G, res)
    needs_data = [s.name for s in specs if s.needs_real]
    if needs_data and data is None:
        raise ValueError(f"metrics {', '.join(needs_data)} need real images: pass a dataset (--data NAME_OR_PATH)")
    detector = None
    if any(s.needs_inception for s in specs):
        detector = load_inception(inception, device=G.device)  # fail fast, before any long generation
    if data is not None and getattr(data, "resolution", image_res) != image_res:
        data = data.at_resolution(image_res)
    cache = default_cache_dir(cache_dir)
    render = G.eval_render_config(num_samples)
    was_training = G.training
    G.eval()

    def settings_for(spec: MetricSpec) -> GenerationSettings:
        psi = spec.truncation_psi if truncation_psi is None else truncation_psi
        cam = resolve_camera(camera or spec.camera, data)
        return GenerationSettings(res, psi, cam, render, lock_view_dependence, image_res)

    details: dict[str, dict] = {}
    results: dict[str, float] = {}
    if any(settings_for(s).camera == "dataset" for s in specs if s.kind != "reprojection"):
        check_dataset_cameras(G, data, render)  # before any long generation
    try:
        inception_specs = [s for s in specs if s.needs_inception]
        groups: dict[tuple, list[MetricSpec]] = {}
        for s in inception_specs:
            st = settings_for(s)
            groups.setdefault((s.num_gen, st.camera, st.truncation_psi), []).append(s)
        for group in groups.values():
            details.update(_inception_group(G, group, settings_for(group[0]), detector, data, seed, batch, cache, progress))
        for spec in specs:
            if spec.needs_inception:
                continue
            t0 = time.time()
            st = settings_for(spec)
            if spec.kind == "swd":
                entry = _swd(G, spec, st, data, seed, batch, progress, swd or SWDConfig())
            elif spec.kind == "msssim":
                entry = _msssim(G, spec, st, data, seed, batch, progress)
            elif spec.kind == "reprojection":
                entry = _reprojection(G, spec, st, seed, batch, progress, reprojection or ReprojectionConfig())
            elif spec.kind == "depth":
                entry = _depth(G, spec, st, data, seed, batch, cache, progress, depth_net or DepthNetConfig())
            else:  # a new kind registered without an implementation
                raise ValueError(f"metric kind {spec.kind!r} of {spec.name!r} has no implementation")
            entry["time_s"] = time.time() - t0
            details[spec.name] = entry
        ordered = {}
        for spec in specs:
            entry = {"kind": spec.kind, "higher_is_better": spec.higher_is_better, **details[spec.name]}
            ordered[spec.name] = entry
            results.update(_flat_results(spec.name, spec.kind, entry))
    finally:
        G.train(was_training)
    return {
        "results": results,
        "metrics": ordered,
        "settings": {"seed": seed, "batch": batch, "resolution": res, "image_resolution": image_res,
                     "render": to_dict(render),
                     "lock_view_dependence": lock_view_dependence, "device": str(G.device), "cache_dir": str(cache),
                     "num_gen_override": num_gen, "truncation_psi_override": truncation_psi, "camera_override": camera},
        "data": _data_info(data) if data is not None else None,
    }


__all__ = ["GenerationSettings", "default_cache_dir", "evaluate", "generate", "image_resolution",
           "real_inception_stats", "render_generator", "resolve_camera", "to_uint8"]
