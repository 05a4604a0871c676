"""Where a run's numbers go: ``stats.jsonl`` (one JSON object per line) and TensorBoard when installed."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

from ..io.atomic import atomic_write_bytes


class StatsWriter:
    """Appends stats lines; mirrors scalars to TensorBoard if ``tensorboard`` is importable and wanted."""

    def __init__(self, run_dir: Path, tensorboard: bool = True):
        self.path = run_dir / "stats.jsonl"
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package
            except ImportError:
                SummaryWriter = None
            if SummaryWriter is not None:
                self.tb = SummaryWriter(str(run_dir / "tensorboard"))

    def write(self, record: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        line = json.dumps(clean)
        try:
            with open(self.path, "a") as fh:
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as e:
            # Losing a stats line must not kill a long run; the checkpoint is what matters.
            warnings.warn(f"could not append to {self.path}: {e}")
        if self.tb is not None and "step" in record:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.tb.add_scalar(k, v, record["step"])
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def truncate_stats(run_dir: str | Path, step: int) -> int:
    """Drop the lines of ``stats.jsonl`` after ``step`` (steps a resumed session replays from its checkpoint, or
    every line when a folder without a checkpoint starts again at 0) and any torn line; returns the lines dropped.
    The file is rewritten atomically, and only when something is dropped."""
    p = Path(run_dir) / "stats.jsonl"
    if not p.exists():
        return 0
    kept, dropped = [], 0
    for line in p.read_text().splitlines():
        try:
            record = json.loads(line)
            keep = isinstance(record, dict) and int(record.get("step", 0)) <= step
        except (json.JSONDecodeError, TypeError, ValueError):
            keep = False
        if keep:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        atomic_write_bytes(p, "".join(f"{line}\n" for line in kept).encode())
    return dropped


def read_stats(run_dir: str | Path) -> list[dict[str, Any]]:
    """All stats lines of a run (a torn last line, from a kill mid-write, is ignored)."""
    out = []
    p = Path(run_dir) / "stats.jsonl"
    if not p.exists():
        return out
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
