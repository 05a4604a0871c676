"""Evaluation metrics: FID / KID / IS (Inception-v3 from a local file), SWD and MS-SSIM diversity
(weight-free), multi-view reprojection error, and SIDE / MAD depth accuracy on synthetic data.

``evaluate(G, ["fid50k_full", "swd", "side"], data)`` runs registered metrics (:mod:`.registry`; the
built-in protocols are in :mod:`.protocols`, families add theirs with :func:`register_metric`) and returns a
JSON-ready dict; ``aware3d metrics`` is the command-line front end.
"""

from .depth import (DepthNet, DepthNetConfig, load_or_train_depth_net, mean_angle_deviation, normals_from_depth,
                    scale_invariant_depth_error, train_depth_net)
from .evaluate import evaluate
from .frechet import FeatureStats, frechet_distance, mean_cov
from .generation import GenerationSettings, generate
from .inception import (FIDInceptionV3, InceptionDetector, InceptionFormatError, InceptionWeightsNotFound,
                        load_inception)
from .kid import inception_score, kernel_inception_distance, mmd2_unbiased
from .msssim import ms_ssim, msssim_diversity
from .protocols import MetricSpec
from .real import default_cache_dir, real_inception_stats
from .registry import (METRICS, Metric, MetricContext, Needs, SharedPass, get_metric, metric_names, parse_metric_list,
                       register_metric, registered_metric, unregister_metric)
from .reprojection import ReprojectionConfig, reprojection_error, warp_error
from .swd import SWDConfig, sliced_wasserstein, sliced_wasserstein_distance

__all__ = [
    "DepthNet", "DepthNetConfig", "FIDInceptionV3", "FeatureStats", "GenerationSettings", "InceptionDetector",
    "InceptionFormatError", "InceptionWeightsNotFound", "METRICS", "Metric", "MetricContext", "MetricSpec", "Needs",
    "ReprojectionConfig", "SWDConfig", "SharedPass", "default_cache_dir", "evaluate", "frechet_distance", "generate",
    "get_metric", "inception_score", "kernel_inception_distance", "load_inception", "load_or_train_depth_net",
    "mean_angle_deviation", "mean_cov", "metric_names", "mmd2_unbiased", "ms_ssim", "msssim_diversity",
    "normals_from_depth", "parse_metric_list", "real_inception_stats", "register_metric", "registered_metric",
    "reprojection_error", "scale_invariant_depth_error", "sliced_wasserstein", "sliced_wasserstein_distance",
    "train_depth_net", "unregister_metric", "warp_error",
]
