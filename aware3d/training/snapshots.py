"""Snapshots of a training run: the generator at each metrics evaluation, with the numbers it got.

Layout of ``<run>/snapshots/``::

    step-0002000/config.json, generator.safetensors   the first EMA at that step (an aware3d generator folder)
    step-0002000/metrics.json                          {"step", "images_seen", "results", "higher_is_better"}

``results`` are the flat values :func:`aware3d.metrics.evaluate` returned, under the names it recorded them
with (``fid2k_full`` for FID@2k, ``fid2k_full@512`` for the same protocol on 512 images, ``swd``, ...), and
``higher_is_better`` says each main metric's direction. :func:`best_snapshot` picks a run's best snapshot
by one of those names (``aware3d render --checkpoint RUN --best fid2k_full``), as the official StyleGAN-family
scripts pick the best ``network-snapshot-*.pkl`` of a run by its ``metric-*.jsonl``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..io.atomic import recover_folder
from ..io.checkpoint import save_generator
from ..io.media import write_json
from .config import RUN_FORMAT

SNAPSHOTS = "snapshots"
METRICS_FILE = "metrics.json"
SNAPSHOT_FORMAT = "aware3d-snapshot-metrics"


@dataclass(frozen=True)
class Snapshot:
    """One evaluated snapshot of a run."""

    path: Path
    """The generator folder (loadable with :func:`aware3d.load`)."""
    step: int
    """Training steps completed when it was taken."""
    results: dict[str, float]
    """Flat metric values by recorded name."""
    higher_is_better: dict[str, bool]
    """Direction of each main metric (the names a best snapshot can be chosen by)."""


def snapshot_dir(run_dir: str | os.PathLike, step: int) -> Path:
    return Path(run_dir) / SNAPSHOTS / f"step-{step:07d}"


def is_run_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder written by ``aware3d train`` (its config.json is a run config)."""
    config = Path(path) / "config.json"
    try:
        return config.is_file() and json.loads(config.read_text()).get("format") == RUN_FORMAT
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def write_snapshot(run_dir: str | os.PathLike, G, step: int, images_seen: int, report: dict[str, Any],
                   source: dict[str, Any]) -> Snapshot:
    """Save generator ``G`` and the metrics ``report`` (what :func:`~aware3d.metrics.evaluate` returned) as the
    snapshot of ``step``; a snapshot of the same step (a resumed run redoing steps) is replaced."""
    folder = save_generator(G, snapshot_dir(run_dir, step), source=source)
    results = {k: float(v) for k, v in report["results"].items()}
    directions = {name: bool(m.get("higher_is_better", False)) for name, m in report["metrics"].items()}
    write_json(folder / METRICS_FILE, {"format": SNAPSHOT_FORMAT, "step": step, "images_seen": images_seen,
                                       "results": results, "higher_is_better": directions})
    return Snapshot(folder, step, results, directions)


def _read_snapshot(folder: Path) -> Snapshot | None:
    """The snapshot in ``folder``, or None when it has no readable metrics (interrupted while being written)."""
    try:
        doc = json.loads((folder / METRICS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != SNAPSHOT_FORMAT:
        return None
    return Snapshot(folder, int(doc["step"]), {k: float(v) for k, v in doc["results"].items()},
                    {k: bool(v) for k, v in doc["higher_is_better"].items()})


def list_snapshots(run_dir: str | os.PathLike) -> list[Snapshot]:
    """The run's evaluated snapshots, oldest first."""
    root = Path(run_dir) / SNAPSHOTS
    if not root.is_dir():
        return []
    found = [_read_snapshot(p) for p in sorted(root.iterdir()) if p.is_dir() and p.name.startswith("step-")]
    return sorted((s for s in found if s is not None), key=lambda s: s.step)


def _ranked(snapshots: list[Snapshot], metric: str) -> list[Snapshot]:
    """Snapshots that recorded a finite ``metric``, best first (ties: the later step first)."""
    scored = [s for s in snapshots if metric in s.results and math.isfinite(s.results[metric])]
    sign = -1.0 if any(s.higher_is_better.get(metric, False) for s in scored) else 1.0
    return sorted(scored, key=lambda s: (sign * s.results[metric], -s.step))


def best_snapshot(run_dir: str | os.PathLike, metric: str) -> Snapshot:
    """The snapshot of ``run_dir`` with the best recorded value of ``metric`` (lower is better unless the metric
    says otherwise); the errors say how to record one and which names were recorded."""
    snapshots = list_snapshots(run_dir)
    if not snapshots:
        raise ValueError(f"{run_dir} has no evaluated snapshots to choose from: train with --metrics {metric} "
                         "--metrics-every N (each evaluation keeps a snapshot under snapshots/), or drop --best")
    ranked = _ranked(snapshots, metric)
    if not ranked:
        recorded = sorted({name for s in snapshots for name in s.higher_is_better})
        raise ValueError(f"--best {metric}: no snapshot of {run_dir} recorded {metric}; recorded: "
                         f"{', '.join(recorded)} (a protocol run on another image count is recorded as "
                         "<name>@<count>, e.g. fid2k_full@512)")
    return ranked[0]


def run_generator(run_dir: str | os.PathLike, best: str | None = None) -> Path:
    """The generator folder a run offers: its latest export, or with ``best`` its best snapshot by that metric."""
    if best is not None:
        return best_snapshot(run_dir, best).path
    folder = recover_folder(Path(run_dir) / "generator")  # a kill between the export's two renames
    _warn_if_behind(Path(run_dir), folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{run_dir} is a training run without an exported generator yet ({folder} is "
                                "written with the first checkpoint); resume it, or pick a snapshot with --best")
    return folder


def _step_of(file: Path, *keys: str) -> int | None:
    try:
        value: Any = json.loads(file.read_text())
        for k in keys:
            value = value[k]
        return int(value)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def _warn_if_behind(run_dir: Path, folder: Path) -> None:
    """Warn when the export is older than the run's checkpoint (a kill during an export by an aware3d that wrote
    the checkpoint first; the trainer now exports first, and a resume re-exports)."""
    exported = _step_of(folder / "config.json", "source", "step")
    saved = _step_of(recover_folder(run_dir / "checkpoint") / "state.json", "state", "step")
    if exported is not None and saved is not None and exported < saved:
        warnings.warn(f"{folder} holds the generator of step {exported}, but {run_dir}'s checkpoint is at step "
                      f"{saved} (an export was interrupted): run aware3d train --resume {run_dir} to export it again",
                      stacklevel=3)


def prune_snapshots(run_dir: str | os.PathLike, keep: int, metric: str | None) -> list[Path]:
    """Delete all but ``keep`` snapshots (``keep`` >= 1): the newest and the best by ``metric``; returns the
    deleted folders."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    snapshots = list_snapshots(run_dir)
    kept = {snapshots[-1].path} if snapshots else set()
    for s in _ranked(snapshots, metric) if metric else []:
        if len(kept) >= keep:
            break
        kept.add(s.path)
    for s in reversed(snapshots):  # fill up with the newest when fewer snapshots have the metric
        if len(kept) >= keep:
            break
        kept.add(s.path)
    removed = [s.path for s in snapshots if s.path not in kept]
    for path in removed:
        shutil.rmtree(path)
    return removed


__all__ = ["Snapshot", "best_snapshot", "is_run_dir", "list_snapshots", "prune_snapshots", "run_generator",
           "snapshot_dir", "write_snapshot"]
