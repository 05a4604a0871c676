"""``aware3d train``: train a preset on a dataset (single process, or one process per GPU under torchrun).

A run stopped by SIGINT/SIGTERM (after writing its checkpoint) ends the command with exit status 128 + the
signal's number (130, 143) instead of 0, by raising :class:`~aware3d.training.signals.TrainingInterrupted`;
see :mod:`aware3d.training.signals`.
"""

from __future__ import annotations

from ..training.config import TrainOptions
from ..training.signals import TrainingInterrupted, signal_exit_status
from ..training.trainer import TrainResult, train


def summary(result: TrainResult) -> dict:
    """What the command reports about a session."""
    return {"out": str(result.run_dir), "step": result.step, "stopped_by": result.stopped_by,
            "generator": str(result.generator_dir), "images_per_s": round(result.images_per_s, 2)}


def run(opts: TrainOptions) -> dict:
    result = train(opts)
    if result.stopped_by == "signal":
        raise TrainingInterrupted(signal_exit_status(result.stop_signal), summary(result))
    return summary(result)


__all__ = ["TrainOptions", "run", "summary"]
