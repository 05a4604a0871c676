"""The built-in metric protocols: what each name computes, on how many images, from which cameras.

The names follow the seeds (StyleGAN2-ADA / EG3D / EpiGRAF ``metric_main.py``): ``fid50k_full`` compares
50k generated images with every real image, ``kid50k_full`` uses up to 1M real images and 100 subsets of
1000, ``is50k`` splits 50k generated images in 10, ``fid2k_full`` is EpiGRAF's quick FID on 2048 images.
The weight-free and 3D metrics (``swd``, ``msssim``, ``reprojection``, ``side``, and the absolute
foreground-depth ones: ``fg_depth_abs``, ``fg_depth_separation``, ``fg_depth_within_0.01``, ``fg_normal_deg``,
each with the ground truth's own score as ``<name>_gt``) are ours; their defaults
are ProGAN's (SWD on 16384 images) or chosen to be cheap, and ``num_gen`` overrides any of them; a protocol
whose name states its count records an override under ``<name>@<count>`` (``fid2k_full@512``), so FID@2k,
FID@50k and a quick FID are never confused in a stats file or a best-checkpoint choice.

Importing this module registers them (:mod:`.registry`); families add theirs with
:func:`~aware3d.metrics.registry.register_metric`.
"""

from __future__ import annotations

from functools import partial

from . import builtin as b
from .registry import METRICS, CameraSource, Metric, Needs, get_metric, parse_metric_list, register_metric

MetricSpec = Metric
"""The former name of :class:`~aware3d.metrics.registry.Metric`."""

INCEPTION_FEATURES = Needs(real=True, inception=True)
"""FID / KID: generated and real Inception features."""

FOREGROUND_DEPTH = Needs(real=True, ground_truth=True, depth=True)
"""The absolute foreground-depth metrics: the depth network trained on the dataset's ground truth, the
generator's depth."""

BUILTIN_METRICS: tuple[Metric, ...] = (
    Metric("fid50k_full", b.fid, 50000, INCEPTION_FEATURES, shared=b.INCEPTION_PASS, uses=frozenset({"features"}),
           kind="fid", counted_name=True),
    Metric("fid10k_full", b.fid, 10000, INCEPTION_FEATURES, shared=b.INCEPTION_PASS, uses=frozenset({"features"}),
           kind="fid", counted_name=True),
    Metric("fid2k_full", b.fid, 2048, INCEPTION_FEATURES, shared=b.INCEPTION_PASS, uses=frozenset({"features"}),
           kind="fid", counted_name=True),
    Metric("kid50k_full", partial(b.kid, subsets=100, subset_size=1000), 50000, INCEPTION_FEATURES,
           num_real=1_000_000, flatten=b.with_std, shared=b.INCEPTION_PASS, uses=frozenset({"all_features"}),
           kind="kid", counted_name=True),
    Metric("is50k", partial(b.inception_score_metric, splits=10), 50000, Needs(inception=True),
           higher_is_better=True, flatten=b.with_std, shared=b.INCEPTION_PASS, uses=frozenset({"probabilities"}),
           kind="is", counted_name=True),
    Metric("swd", b.swd, 16384, Needs(real=True), flatten=b.swd_levels, kind="swd"),
    Metric("msssim", partial(b.msssim, pairs=10000), 1000, Needs(), kind="msssim"),
    Metric("reprojection", b.reprojection, 64, Needs(depth=True, cameras=False), flatten=b.with_covisible,
           kind="reprojection"),
    Metric("side", partial(b.side, min_pixels=16), 1000, Needs(real=True, ground_truth=True, depth=True),
           flatten=b.with_mad, kind="depth"),
    *(Metric(name, partial(b.foreground_depth, score=score), 1000, FOREGROUND_DEPTH, higher_is_better=higher,
             flatten=b.with_gt, shared=b.FOREGROUND_DEPTH_PASS, kind="foreground_depth")
      for name, score, higher in (("fg_depth_abs", "abs", False), ("fg_depth_separation", "separation", True),
                                  ("fg_depth_within_0.01", "within", True), ("fg_normal_deg", "normal_deg", False))),
)
"""The built-in protocols, registered in this order."""

for _metric in BUILTIN_METRICS:
    register_metric(_metric)

__all__ = ["BUILTIN_METRICS", "CameraSource", "METRICS", "MetricSpec", "get_metric", "parse_metric_list"]
