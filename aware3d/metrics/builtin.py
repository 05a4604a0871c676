"""The built-in metrics' computations: each ``run(ctx)`` of :mod:`.protocols` (see :mod:`.registry`).

FID / KID / IS score the final image through one shared pass of Inception features (:data:`INCEPTION_PASS`),
as do SWD and MS-SSIM (without Inception). Reprojection warps colours through depth, so it scores the
volume-rendered image at the depth's resolution (a ``raw_image`` family's ``image_raw``, super-resolution
skipped: the 2D upsampler's output is not defined by the rays). SIDE feeds the final image (what a viewer
sees) to the depth network after an antialiased resize to the depth's resolution, and compares with the
generator's depth there; the depth network is cached in the metrics cache, keyed by the dataset
fingerprint and its config. The absolute foreground-depth metrics (``fg_depth_abs``, ``fg_depth_separation``,
``fg_depth_within_0.01``, ``fg_normal_deg``) share one pass (:data:`FOREGROUND_DEPTH_PASS`) that feeds the same
image to the same network and scores the generator's depth against its absolute prediction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from ..cameras import Cameras
from ..config import to_dict
from ..models.base import Condition, GeneratorOutput
from .depth import (WITHIN_TOLERANCE, DepthNetConfig, ForegroundDepthConfig, erode_mask, foreground_depth_scores,
                    load_or_train_depth_net, mean_angle_deviation, normals_from_depth, scale_invariant_depth_error)
from .frechet import FeatureStats, frechet_distance
from .generation import QUANTIZE, condition_rows, render_generator, to_uint8
from .kid import inception_score, kernel_inception_distance
from .msssim import msssim_diversity
from .real import real_inception_stats, real_preprocessing
from .registry import Metric, MetricContext, SharedPass
from .reprojection import ReprojectionConfig, output_surface_depth, reprojection_error
from .swd import DescriptorSet, SWDConfig, swd_from_descriptors


def _generation_record(ctx: MetricContext) -> dict:
    """How the metric's images were generated (part of every entry)."""
    st = ctx.settings
    return {"num_gen": ctx.num_gen, "camera": st.camera, "truncation_psi": st.truncation_psi,
            "resolution": st.resolution, "image_resolution": st.image_size, "seed": ctx.seed}


# ------------------------------------------------------------------------------- FID / KID / IS

@dataclass
class InceptionFeatures:
    """The Inception pass's product: detector outputs of one set of generated images, and the real
    statistics of every real-image count its metrics use."""

    features: FeatureStats
    """Pool features of the generated images (every vector kept when a metric uses ``all_features``)."""
    probabilities: FeatureStats
    """Class probabilities of the generated images (every vector; empty unless one uses ``probabilities``)."""
    real: dict[int, tuple[FeatureStats, dict]]
    """num_real -> (real statistics, cache record)."""
    record: dict
    """What every entry of the pass records (counts, cameras, detector, preprocessing, generation time)."""

    def real_entry(self, ctx: MetricContext) -> tuple[FeatureStats, dict]:
        """The real statistics of ``ctx.metric`` and its entry so far (the pass's record + the real side)."""
        m = ctx.metric
        real, cache = self.real[real_count(m, ctx.data)]
        entry = dict(self.record)
        entry.update(num_real=real.count, num_real_requested=m.num_real if m.num_real is not None else "full",
                     real_preprocessing=real_preprocessing(ctx.data), real_cache=cache)
        return real, entry


def real_count(metric: Metric, data) -> int:
    """Real images ``metric`` uses: the whole dataset, or its first ``num_real``."""
    return len(data) if metric.num_real is None else min(metric.num_real, len(data))


def _real_stats(metrics, ctx: MetricContext) -> dict[int, tuple[FeatureStats, dict]]:
    """Real statistics once per distinct count, keeping every vector when some metric there uses them."""
    need_all: dict[int, bool] = {}
    for m in metrics:
        c = real_count(m, ctx.data)
        need_all[c] = need_all.get(c, False) or "all_features" in m.uses
    return {c: real_inception_stats(ctx.data, ctx.detector, c, need_all=need_all[c], batch=ctx.batch,
                                    cache_dir=ctx.cache_dir, progress=ctx.progress) for c in sorted(need_all)}


def inception_pass(metrics, ctx: MetricContext) -> InceptionFeatures:
    """Generate ``ctx.num_gen`` images once and keep what ``metrics`` use of them: ``features`` (mean and
    covariance of the pool features), ``all_features`` (every feature vector), ``probabilities``."""
    uses = frozenset().union(*(m.uses for m in metrics))
    feats = FeatureStats(capture_all="all_features" in uses)
    probs = FeatureStats(capture_all=True)
    want_feats, want_probs = bool(uses & {"features", "all_features"}), "probabilities" in uses
    start = time.time()
    for out, _ in ctx.generate(desc=f"generate ({', '.join(m.name for m in metrics)})"):
        img = to_uint8(out.image)
        if want_feats:
            feats.append(ctx.detector.features(img))
        if want_probs:
            probs.append(ctx.detector.probabilities(img))
    record = {**_generation_record(ctx), "detector": ctx.detector.describe(),
              "generated_preprocessing": {"quantize": QUANTIZE}, "generation_time_s": time.time() - start}
    return InceptionFeatures(feats, probs, _real_stats([m for m in metrics if m.needs.real], ctx), record)


INCEPTION_PASS = SharedPass("inception", inception_pass)
"""FID / KID / IS of equal image count, cameras and truncation score one set of generated images."""


def fid(ctx: MetricContext) -> dict:
    """Fréchet distance between generated and real Inception pool features."""
    real, entry = ctx.shared.real_entry(ctx)
    mu_g, cov_g = ctx.shared.features.mean_cov()
    mu_r, cov_r = real.mean_cov()
    entry["value"] = frechet_distance(mu_g, cov_g, mu_r, cov_r)
    return entry


def kid(ctx: MetricContext, *, subsets: int = 100, subset_size: int = 1000) -> dict:
    """Kernel Inception distance: mean and std over ``subsets`` random subsets of at most ``subset_size``."""
    real, entry = ctx.shared.real_entry(ctx)
    mean, std = kernel_inception_distance(ctx.shared.features.all(), real.all(), subsets, subset_size,
                                          torch.Generator().manual_seed(ctx.seed))
    entry.update(value=mean, std=std, subsets=subsets, subset_size=subset_size)
    return entry


def inception_score_metric(ctx: MetricContext, *, splits: int = 10) -> dict:
    """Inception Score: mean and std over ``splits`` splits of the generated images."""
    entry = dict(ctx.shared.record)
    mean, std = inception_score(ctx.shared.probabilities.all(), splits)
    entry.update(value=mean, std=std, splits=splits)
    return entry


def with_std(name: str, entry: dict) -> dict[str, float]:
    """Flat results of a mean +- std metric: ``name`` and ``name_std``."""
    return {name: entry["value"], f"{name}_std": entry["std"]}


# ------------------------------------------------------------------------------------ SWD, MS-SSIM

def _random_real_images(data, n: int, seed: int, batch: int):
    """``n`` random dataset images (order seeded by ``seed + 1``) in batches of (B, 3, H, W)."""
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed + 1))[:n].tolist()
    for s in range(0, n, batch):
        yield data.get_batch(perm[s:s + batch]).image


def swd(ctx: MetricContext) -> dict:
    """Sliced Wasserstein distance on Laplacian pyramids, as many generated as random real images."""
    config = ctx.config(SWDConfig)
    n = min(ctx.num_gen, len(ctx.data))
    g = torch.Generator().manual_seed(ctx.seed)
    real = DescriptorSet(ctx.settings.image_size, config, g)
    for images in _random_real_images(ctx.data, n, ctx.seed, ctx.batch):
        real.feed(images)
    fake = DescriptorSet(ctx.settings.image_size, config, g)
    for out, _ in ctx.generate(n, desc="generate (swd)"):
        fake.feed(out.image)
    values = swd_from_descriptors(real.descriptors(), fake.descriptors(), real.resolutions, config, g)
    st = ctx.settings
    return {"value": values["avg"], "levels": {k: v for k, v in values.items() if k != "avg"}, "num_gen": n,
            "num_real": n, "camera": st.camera, "truncation_psi": st.truncation_psi, "resolution": st.resolution,
            "image_resolution": st.image_size, "seed": ctx.seed, "config": to_dict(config),
            "real_preprocessing": {**real_preprocessing(ctx.data),
                                   "order": "a random subset of num_real items (seed + 1)"}}


def swd_levels(name: str, entry: dict) -> dict[str, float]:
    """Flat results of SWD: the average under ``name``, each pyramid level as ``name_<resolution>``."""
    return {name: entry["value"], **{f"{name}_{res}": v for res, v in entry["levels"].items()}}


def msssim(ctx: MetricContext, *, pairs: int = 10000) -> dict:
    """MS-SSIM diversity: mean MS-SSIM of random pairs of distinct generated images (lower: more diverse)."""
    images = torch.cat([to_uint8(out.image).cpu() for out, _ in ctx.generate(desc="generate (msssim)")])
    n = images.shape[0]
    # More random pairs than there are distinct pairs only repeats them.
    pairs = min(pairs, n * (n - 1) // 2)
    res = msssim_diversity(images.float() / 127.5 - 1, pairs, generator=torch.Generator().manual_seed(ctx.seed))
    return {"value": res.pop("mean"), **res, **_generation_record(ctx),
            "images": "generated images quantised to uint8, compared in [0, 1] with data range 1"}


# ------------------------------------------------------------------------------------- reprojection

def ray_image(out: GeneratorOutput, raw_image: bool) -> Tensor:
    """The volume-rendered colour (B, 3, R, R) at the depth's resolution: ``image_raw`` for a ``raw_image``
    family (EG3D), else ``image``."""
    return out.image_raw if raw_image else out.image


def _render_views(ctx: MetricContext, z: Tensor, views, g_render, config: ReprojectionConfig,
                  condition: Condition | None):
    """Every view of latents ``z``: (images, surface depths, valid masks, cameras), one entry per view."""
    G, st = ctx.G, ctx.settings
    (yaw0, pitch0), b, raw = G.config.pose.frontal(), z.shape[0], G.capabilities.raw_image
    # Camera-conditioned mappings (EG3D) get the frontal pose, the same for every view of a latent.
    w = G.mapping(z, st.truncation_psi, cameras=G.cameras([yaw0] * b, [pitch0] * b),
                  condition=condition)
    # Only the volume-rendered image is compared (see the module doc), so the super-resolution is skipped.
    geometry_only = {"superresolution": False} if raw else {}
    images, depths, valid, cams = [], [], [], []
    for yaw, pitch in views:
        c = G.cameras([yaw] * b, [pitch] * b)
        out = G.synthesis(w, c, resolution=st.resolution, render=st.render,
                          lock_view_dependence=st.lock_view_dependence, fast=True, generator=g_render,
                          **geometry_only, condition=condition)
        images.append(ray_image(out, raw))
        depths.append(output_surface_depth(out))
        valid.append(out.opacity > config.min_opacity)
        cams.append(c)
    return torch.stack(images), torch.stack(depths), torch.stack(valid), cams


@torch.no_grad()
def reprojection(ctx: MetricContext) -> dict:
    """Multi-view reprojection error: each latent from yaw-offset views around the frontal pose, colours warped
    through depth into the neighbouring view and compared on co-visible pixels."""
    G, st, config = ctx.G, ctx.settings, ctx.config(ReprojectionConfig)
    (yaw0, pitch0), grid, n = G.config.pose.frontal(), G.config.pixel_grid, ctx.num_gen
    views = [(yaw0 + dy, pitch0 - config.pitch_offset) for dy in config.yaw_offsets]
    if len(views) < 2:
        raise ValueError("reprojection needs at least two yaw offsets")
    g = torch.Generator().manual_seed(ctx.seed)
    g_render = render_generator(G, ctx.seed)
    err = cnt = 0.0
    per_latent, total = [], 0
    for s in tqdm(range(0, n, ctx.batch), desc="reprojection", unit="batch", disable=not ctx.progress, leave=False):
        b = min(ctx.batch, n - s)
        z = torch.randn(b, G.z_dim, generator=g).to(G.device)
        images, depths, valid, cams = _render_views(ctx, z, views, g_render, config,
                                                    condition_rows(ctx.condition, s, s + b, G.device))
        r = reprojection_error(images, depths, valid, cams, grid, config.depth_tolerance)
        err += float(r["error_sum"])
        cnt += float(r["pixels"])
        total += r["total_pixels"]
        per_latent += (r["per_latent_sum"] / r["per_latent_pixels"].clamp_min(1)).tolist()
    return {"value": err / cnt if cnt > 0 else float("nan"), "covisible_fraction": cnt / total,
            "per_latent_std": float(torch.tensor(per_latent).std()) if len(per_latent) > 1 else 0.0,
            "num_latents": n, "views": [{"yaw": y, "pitch": p} for y, p in views], "pixel_grid": grid,
            "truncation_psi": st.truncation_psi, "resolution": st.resolution, "seed": ctx.seed,
            "lock_view_dependence": st.lock_view_dependence, "config": to_dict(config),
            "image": "image_raw (volume-rendered, at the depth resolution; super-resolution skipped)"
            if G.capabilities.raw_image else "image",
            "units": "mean |colour difference| over RGB in [0, 1] units over co-visible pixels of neighbouring views"}


def with_covisible(name: str, entry: dict) -> dict[str, float]:
    """Flat results of reprojection: the error and ``name_covisible``, the co-visible pixel fraction."""
    return {name: entry["value"], f"{name}_covisible": entry["covisible_fraction"]}


# ------------------------------------------------------------------------------------------ SIDE / MAD

def _depth_net(ctx: MetricContext, config: DepthNetConfig):
    """The depth network trained on the dataset's ground truth at ``config.resolution`` (cached), its record
    and the dataset at that resolution."""
    data = ctx.data.at_resolution(config.resolution) if ctx.data.resolution != config.resolution else ctx.data

    def ground_truth(indices: list[int]):
        s = data.ground_truth(indices)
        return s.image, s.depth, s.mask

    net, record = load_or_train_depth_net(ground_truth, data.base_length, data.fingerprint(), ctx.cache_dir, config,
                                          ctx.G.device, ctx.progress)
    return net, record, data


def _image_at_depth_size(out: GeneratorOutput, depth: Tensor) -> Tensor:
    """The final image in [-1, 1], antialiased-resized to the depth's size when they differ (EG3D: a
    super-resolved image, depth at the rendering size)."""
    image = out.image.clamp(-1, 1)
    if image.shape[-2:] != depth.shape[-2:]:
        image = F.interpolate(image, size=tuple(depth.shape[-2:]), mode="bilinear", antialias=True,
                              align_corners=False)
    return image


def _side_mad(net, out: GeneratorOutput, cams, ctx: MetricContext, min_pixels: int):
    """Per-image SIDE and MAD of one batch (images with a large enough mask), and the number skipped."""
    gen_depth = output_surface_depth(out)
    pred_depth, pred_fg = net.predict(_image_at_depth_size(out, gen_depth))
    mask = erode_mask((out.opacity > 0.5) & (pred_fg > 0.5))
    ok = mask.flatten(1).sum(1) >= min_pixels
    skipped = int((~ok).sum())
    if not bool(ok.any()):
        return None, None, skipped
    m, grid = mask[ok], ctx.G.config.pixel_grid
    side = scale_invariant_depth_error(pred_depth[ok], gen_depth[ok], m).cpu()
    n_pred = normals_from_depth(pred_depth[ok], cams.intrinsics[ok], grid)
    n_gen = normals_from_depth(gen_depth[ok], cams.intrinsics[ok], grid)
    return side, mean_angle_deviation(n_pred, n_gen, m).cpu(), skipped


def side(ctx: MetricContext, *, min_pixels: int = 16) -> dict:
    """SIDE (scale-invariant depth error) and MAD (mean angle deviation of normals) between the generator's
    depth and a depth network's prediction from the generated image (the network learns the dataset's
    ground truth)."""
    config = ctx.config(DepthNetConfig)
    net, record, dn_data = _depth_net(ctx, config)
    sides, mads, skipped = [], [], 0
    for out, cams in ctx.generate(desc="generate (side)"):
        s, m, k = _side_mad(net, out, cams, ctx, min_pixels)
        skipped += k
        if s is not None:
            sides.append(s)
            mads.append(m)
    side = torch.cat(sides) if sides else torch.empty(0)
    mad = torch.cat(mads) if mads else torch.empty(0)
    st = ctx.settings
    return {"value": float(side.mean()) if len(side) else float("nan"),
            "mad_deg": float(mad.mean()) if len(mad) else float("nan"),
            "side_std": float(side.std()) if len(side) > 1 else 0.0, "images_scored": len(side),
            "images_skipped_small_mask": skipped, "min_mask_pixels": min_pixels, "num_gen": ctx.num_gen,
            "camera": st.camera, "truncation_psi": st.truncation_psi, "resolution": st.resolution,
            "seed": ctx.seed, "depth_net": {"config": to_dict(config), "dataset_fingerprint": dn_data.fingerprint(),
                                            **record},
            "image_resolution": st.image_size,
            "image": "the final image, antialiased-resized to the depth resolution when they differ",
            "mask": "generator opacity > 0.5 and depth-net foreground > 0.5, eroded by one pixel",
            "units": "SIDE on log depth (unitless); MAD in degrees"}


def with_mad(name: str, entry: dict) -> dict[str, float]:
    """Flat results of SIDE: the SIDE under ``name`` and the MAD (degrees) under ``mad``."""
    return {name: entry["value"], "mad": entry["mad_deg"]}


# ------------------------------------------------------------------------ absolute foreground depth

FOREGROUND_SCORE_UNITS = {
    "abs": "mean |depth - reference| over the eroded reference foreground, world units",
    "separation": "median depth over the eroded reference background minus median over the eroded foreground, "
                  "world units",
    "within": f"fraction of eroded-foreground pixels with |depth - reference| <= {WITHIN_TOLERANCE:g} world units",
    "normal_deg": "mean angle between the normals of the depth and of the reference over the eroded foreground, "
                  "degrees",
}
"""What each score of :func:`~aware3d.metrics.depth.foreground_depth_scores` measures (recorded in the JSON)."""


@dataclass
class ForegroundDepthScores:
    """The foreground-depth pass's product: per-image scores of the generated images and of the ground truth."""

    generated: dict[str, Tensor]
    """Score name -> (N,) scores of the generated images that were scored."""
    ground_truth: dict[str, Tensor]
    """Score name -> (M,) the same scores of held-out dataset items' true depth (the metrics' floor)."""
    record: dict
    """What every entry of the pass records (counts, masks, the depth network, the ground-truth items)."""


def _camera_scale(cam2world: Tensor, intrinsics: Tensor) -> tuple[Tensor, Tensor]:
    """(B,) distance of each camera centre to the world origin and (B,) normalised focal length fx."""
    return cam2world[:, :3, 3].norm(dim=-1), intrinsics[:, 0, 0]


def dataset_camera_scale(data, items: int = 16) -> tuple[float, float]:
    """Median camera distance to the origin and normalised focal length of the first ``items`` labels."""
    label = data.get_labels(list(range(min(items, len(data)))))[0].to(torch.float32)
    dist, focal = _camera_scale(label[:, :16].reshape(-1, 4, 4), label[:, 16:].reshape(-1, 3, 3))
    return float(dist.median()), float(focal.median())


def check_absolute_cameras(cams: Cameras, reference: tuple[float, float], tolerance: float) -> None:
    """Refuse generated cameras whose distance to the origin or focal length differs from the dataset's
    ``reference`` (distance, focal) by more than ``tolerance`` (relative): absolute depth, and the depth
    network's estimate of it, exist only at the cameras the network learned."""
    dist, focal = _camera_scale(cams.cam2world.float().cpu(), cams.intrinsics.float().cpu())
    for what, got, want in (("distance to the origin", dist, reference[0]), ("normalised focal length", focal,
                                                                              reference[1])):
        if float(((got - want).abs() / want).max()) > tolerance:
            raise ValueError(
                f"the absolute depth metrics (fg_depth_*, fg_normal_deg) compare depths in the dataset's world units, "
                f"learnt at its cameras (camera {what} {want:.4g}), but the generated cameras have "
                f"{float(got.min()):.4g}..{float(got.max()):.4g}: render from the dataset's cameras (--camera dataset, "
                "when the model can see from there), use a model trained with them, or use the scale-invariant side")


def _score_against_depth_net(net, image: Tensor, depth: Tensor, intrinsics: Tensor, grid) -> dict[str, Tensor]:
    """Scores (on the CPU) of (B, 1, H, W) ``depth`` against the depth network's absolute depth and foreground
    (probability > 0.5) predicted from the (B, 3, H, W) ``image``."""
    ref_depth, ref_fg = net.predict(image)
    scores = foreground_depth_scores(depth, ref_depth, (ref_fg > 0.5).float(), intrinsics, grid)
    return {k: v.cpu() for k, v in scores.items()}


def _scored(parts: list[dict[str, Tensor]], min_pixels: int) -> tuple[dict[str, Tensor], int]:
    """Batches' scores joined, keeping images with at least ``min_pixels`` inside and outside; and the
    number left out."""
    joined = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    ok = (joined["inside_pixels"] >= min_pixels) & (joined["outside_pixels"] >= min_pixels)
    return {k: v[ok] for k, v in joined.items()}, int((~ok).sum())


def _ground_truth_scores(net, data, ctx: MetricContext, net_config: DepthNetConfig,
                         config: ForegroundDepthConfig) -> tuple[dict[str, Tensor], dict]:
    """The scores of the ground truth itself: held-out items' true depth (background at the generator's far
    plane, where its empty rays end) as the depth, their true image as the network's input. Falls back to
    training items, recorded as not held out, when the dataset has no others."""
    n, far = data.base_length, float(ctx.settings.render.far)
    first = min(net_config.train_items, n)
    indices = list(range(first, min(n, first + config.gt_items)))
    held_out = bool(indices)
    indices = indices or list(range(min(n, config.gt_items)))
    device, parts = net.log_depth_mean.device, []
    for s in range(0, len(indices), ctx.batch):
        gt = data.ground_truth(indices[s:s + ctx.batch])
        depth = torch.where(gt.mask > 0.5, gt.depth, torch.full_like(gt.depth, far))
        parts.append(_score_against_depth_net(net, gt.image.to(device), depth.to(device), gt.intrinsics.to(device),
                                              ctx.G.config.pixel_grid))
    scores, skipped = _scored(parts, config.min_pixels)
    return scores, {"items": [indices[0], indices[-1] + 1], "held_out": held_out, "items_scored": len(scores["abs"]),
                    "items_skipped_small_mask": skipped, "resolution": data.resolution, "background_depth": far,
                    "what": "each score with the true depth (background at the model's far plane) as the generated "
                            "depth and the true image as the network's input: what a generator with exactly the true "
                            "geometry gets, the floor of abs and normal_deg and the ceiling of separation and within"}


def foreground_depth_pass(metrics, ctx: MetricContext) -> ForegroundDepthScores:
    """Absolute foreground-depth scores (:func:`~aware3d.metrics.depth.foreground_depth_scores`) of
    ``ctx.num_gen`` generated images, and of the ground truth itself (:func:`_ground_truth_scores`).

    The reference ("the truth") of a generated image is the SIDE depth network's absolute depth and
    foreground predicted from that image. A generated image has no ground truth of its own, and the dataset
    item whose camera was used shows another head (other proportions, hair, neck), so comparing with it
    would mostly measure identity and silhouette differences. The network is trained on the dataset's exact
    (image, depth, mask) triples and regresses absolute log depth (not up to scale), so it estimates the
    absolute depth and the mask of this very image; its own error is not hidden: the ``_gt`` values are the
    scores the true geometry gets. The separation uses the network's mask only, with the generator's own
    depth on both sides, so a flat sheet scores about 0 whatever the network's depth error. The generated
    cameras must be the dataset's (:func:`check_absolute_cameras`)."""
    config, net_config = ctx.config(ForegroundDepthConfig), ctx.config(DepthNetConfig)
    reference, grid = dataset_camera_scale(ctx.data), ctx.G.config.pixel_grid
    net, parts, start = None, [], time.time()
    for out, cams in ctx.generate(desc=f"generate ({', '.join(m.name for m in metrics)})"):
        check_absolute_cameras(cams, reference, config.camera_tolerance)
        if net is None:  # after the first cameras are checked: a mismatch fails before any training
            net, net_record, dn_data = _depth_net(ctx, net_config)
        depth = output_surface_depth(out)
        parts.append(_score_against_depth_net(net, _image_at_depth_size(out, depth), depth, cams.intrinsics, grid))
    generated, skipped = _scored(parts, config.min_pixels)
    truth, truth_record = _ground_truth_scores(net, dn_data, ctx, net_config, config)
    record = {**_generation_record(ctx), "images_scored": len(generated["abs"]), "images_skipped_small_mask": skipped,
              "config": to_dict(config), "within_tolerance": WITHIN_TOLERANCE, "generation_time_s": time.time() - start,
              "depth": "the generator's surface depth: distance along the unit pixel ray, world units",
              "reference": "the depth network's absolute depth and foreground (probability > 0.5) predicted from the "
                           "final image, antialiased-resized to the depth resolution",
              "masks": {"inside": "reference foreground eroded by one pixel",
                        "outside": "reference background eroded by one pixel"},
              "ground_truth": truth_record,
              "depth_net": {"config": to_dict(net_config), "dataset_fingerprint": dn_data.fingerprint(), **net_record}}
    return ForegroundDepthScores(generated, truth, record)


FOREGROUND_DEPTH_PASS = SharedPass("foreground depth", foreground_depth_pass)
"""The absolute foreground-depth metrics of equal image count, cameras and truncation score one set of images
against one depth-network prediction."""


def _mean_std(values: Tensor) -> tuple[float, float]:
    """Mean (NaN when empty) and standard deviation (0 for fewer than two) of (N,) values."""
    mean = float(values.mean()) if len(values) else float("nan")
    return mean, float(values.std()) if len(values) > 1 else 0.0


def foreground_depth(ctx: MetricContext, *, score: str) -> dict:
    """One score of the foreground-depth pass: its mean over the generated images (``value``) and over the
    ground truth's held-out items (``gt_value``), with the pass's record."""
    entry = dict(ctx.shared.record)
    value, std = _mean_std(ctx.shared.generated[score])
    gt_value, gt_std = _mean_std(ctx.shared.ground_truth[score])
    entry.update(value=value, std=std, gt_value=gt_value, gt_std=gt_std, score=score,
                 units=FOREGROUND_SCORE_UNITS[score])
    return entry


def with_gt(name: str, entry: dict) -> dict[str, float]:
    """Flat results of a foreground-depth metric: the value under ``name``, the ground truth's own score
    (the metric's floor) under ``name_gt``."""
    return {name: entry["value"], f"{name}_gt": entry["gt_value"]}


__all__ = ["FOREGROUND_DEPTH_PASS", "FOREGROUND_SCORE_UNITS", "ForegroundDepthScores", "INCEPTION_PASS",
           "InceptionFeatures", "check_absolute_cameras", "dataset_camera_scale", "fid", "foreground_depth",
           "foreground_depth_pass", "inception_pass", "inception_score_metric", "kid", "msssim", "ray_image",
           "real_count", "reprojection", "side", "swd", "swd_levels", "with_covisible", "with_gt", "with_mad",
           "with_std"]
