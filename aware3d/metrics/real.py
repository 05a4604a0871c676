"""The real side of the metrics: the cache folder, real Inception statistics, and what the JSON records
about the dataset.

Real Inception statistics are cached in ``cache_dir`` (default ``$AWARE3D_CACHE/metrics`` or
``~/.cache/aware3d/metrics``) keyed by the dataset fingerprint (content hash at this resolution), the
detector file's sha256, the number of real images and the preprocessing.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from tqdm import tqdm

from ..io.atomic import atomic_write_bytes
from .frechet import FeatureStats
from .generation import QUANTIZE, to_uint8
from .inception import InceptionDetector

CACHE_ENV = "AWARE3D_CACHE"
"""Environment variable of the cache root (the metrics use its ``metrics`` folder)."""


def default_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` if given, else ``$AWARE3D_CACHE/metrics``, else ``~/.cache/aware3d/metrics``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    root = os.environ.get(CACHE_ENV)
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "aware3d") / "metrics"


def has_ground_truth(data) -> bool:
    """Whether ``data`` serves ground truth (``data.ground_truth(indices)`` -> a sample with ``image``,
    ``depth``, ``mask``, ``normals``, ``intrinsics``): the synthetic datasets do, image folders do not."""
    return data is not None and data.has_ground_truth


def data_info(data) -> dict:
    """What the output JSON records about the dataset."""
    return {"name": data.name, "length": len(data), "resolution": data.resolution, "mirror": data.mirror,
            "has_labels": bool(data.has_labels), "fingerprint": data.fingerprint()}


def real_preprocessing(data) -> dict:
    """What the real images went through before the detector (recorded in the JSON)."""
    return {"resolution": data.resolution, "mirror": bool(data.mirror), "quantize": QUANTIZE,
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
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(data.name))[:40]
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


__all__ = ["CACHE_ENV", "data_info", "default_cache_dir", "has_ground_truth", "real_inception_stats",
           "real_preprocessing"]
