"""``aware3d runs``: a training run's evaluated snapshots, and the best one by a recorded metric."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..training.snapshots import best_snapshot, is_run_dir, list_snapshots


@dataclass
class RunsOptions:
    action: Literal["best", "list"]
    """best: the snapshot with the best value of --metric; list: every snapshot with its numbers."""
    run: str
    """A training run folder (aware3d train --out)."""
    metric: str | None = None
    """For best: the metric as recorded (fid2k_full, fid2k_full@512, swd, ...)."""


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _fmt(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.6g}"


def run(opts: RunsOptions) -> dict:
    if not is_run_dir(opts.run):
        raise ValueError(f"{opts.run} is not a training run folder (no run config.json from aware3d train)")
    if opts.action == "best":
        if not opts.metric:
            raise ValueError("aware3d runs best needs --metric (e.g. --metric fid2k_full)")
        best = best_snapshot(opts.run, opts.metric)
        print(f"best {opts.metric} = {_fmt(best.results[opts.metric])} at step {best.step}: {best.path}")
        return {"generator": str(best.path), "step": best.step, "metric": opts.metric,
                "value": best.results[opts.metric]}
    snapshots = list_snapshots(opts.run)
    names = sorted({n for s in snapshots for n in s.higher_is_better})
    rows = [["step", *names, "path"]]
    rows += [[str(s.step), *(_fmt(s.results.get(n)) for n in names), str(s.path)] for s in snapshots]
    print(_table(rows) if snapshots else f"{opts.run} has no evaluated snapshots (train with --metrics ... "
                                         "--metrics-every N)")
    return {"snapshots": [{"step": s.step, "path": str(s.path), "results": s.results} for s in snapshots]}
