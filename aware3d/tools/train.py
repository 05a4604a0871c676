"""``aware3d train``: train a preset on a dataset (single process, or one process per GPU under torchrun)."""

from __future__ import annotations

from ..training.config import TrainOptions
from ..training.trainer import train


def run(opts: TrainOptions) -> dict:
    result = train(opts)
    return {"out": str(result.run_dir), "step": result.step, "stopped_by": result.stopped_by,
            "generator": str(result.generator_dir), "images_per_s": round(result.images_per_s, 2)}


__all__ = ["TrainOptions", "run"]
