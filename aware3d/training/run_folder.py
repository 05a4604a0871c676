"""A run folder's life across sessions: which checkpoint a session starts from, what it may overwrite, the
config history, and tidying what kills left behind.

Layout of ``<run>/`` (what :class:`~aware3d.training.trainer.Trainer` writes)::

    config.json          the run's configuration, with ``history``: what each resumed session changed
    options.json         the options of the latest session
    stats.jsonl          one line per logged step (a resumed session first drops the lines after its checkpoint)
    samples/             sample grids
    checkpoint/          the latest training checkpoint (see :mod:`aware3d.training.state`)
    checkpoint-good/     the latest checkpoint written outside a streak of skipped updates and followed by a good
                         step (hard links to the same files where possible), named by the divergence message;
                         ``--resume <run>/checkpoint-good`` continues from it
    generator/           the exported generator; written before the checkpoint of the same step, so it is never
                         behind a checkpoint (a resume re-exports one that an older aware3d left behind)

A folder holding ``config.json`` but no checkpoint (stopped before its first checkpoint) can be started again
with the same ``--out`` (a fresh run) or continued from step 0 with ``--resume``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..errors import OptionError
from ..io.atomic import link_folder, recover_folder, tidy_folder
from ..io.media import write_json
from .config import RunConfig

CHECKPOINT = "checkpoint"
GOOD_CHECKPOINT = "checkpoint-good"
GENERATOR = "generator"


def checkpoint_step(folder: Path) -> int | None:
    """The completed steps of the training checkpoint in ``folder`` (recovered first), None if it holds none."""
    state = recover_folder(folder) / "state.json"
    if not state.is_file():
        return None
    try:
        return int(json.loads(state.read_text())["state"]["step"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def export_step(folder: Path) -> int | None:
    """The step an exported generator folder was written at (its ``source.step``), None if unknown or missing."""
    try:
        meta = json.loads((recover_folder(folder) / "config.json").read_text())
        return int(meta["source"]["step"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def resume_source(resume: str) -> tuple[Path, Path]:
    """(run folder, checkpoint folder to start from) for ``--resume``: a run folder (its ``checkpoint/``), or a
    checkpoint folder inside one (``RUN/checkpoint-good``)."""
    path = Path(resume)
    if (recover_folder(path) / "state.json").is_file() and (path.parent / "config.json").is_file():
        return path.parent, path
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path / 'config.json'} not found: --resume takes a run folder written by aware3d "
                                f"train (or a checkpoint folder inside one); to start a new run there use --out {path}")
    return path, path / CHECKPOINT


def check_fresh_run_dir(run_dir: Path) -> None:
    """A fresh run may use ``run_dir`` unless it holds a training checkpoint (a folder stopped before its first
    checkpoint is started again)."""
    steps = [s for s in (checkpoint_step(run_dir / CHECKPOINT), checkpoint_step(run_dir / GOOD_CHECKPOINT))
             if s is not None]
    if steps:
        step = steps[0]
        raise OptionError(f"{run_dir} already holds a training run (its checkpoint is at step {step}): continue it "
                          f"with --resume {run_dir}, or choose another --out")


def write_run_config(run_dir: Path, cfg: RunConfig, changes: dict[str, list] | None, step: int) -> Path:
    """config.json: ``cfg``, with the previous sessions' ``history`` kept and, when resuming with ``changes``, an
    entry ``{"step", "time", "changes": {key: [old, new]}}`` added (``changes`` None: a fresh run, no history)."""
    history = []
    if changes is not None:
        try:
            history = list(json.loads((run_dir / "config.json").read_text()).get("history", []))
        except (OSError, json.JSONDecodeError, AttributeError, TypeError):
            history = []
        if changes:
            history.append({"step": step, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "changes": changes})
    return write_json(run_dir / "config.json", {**cfg.to_json(), "history": history})


def promote_good_checkpoint(run_dir: Path) -> Path:
    """``checkpoint-good/``: the current ``checkpoint/`` (hard links; the files are never rewritten in place)."""
    return link_folder(run_dir / CHECKPOINT, run_dir / GOOD_CHECKPOINT)


def tidy_run_dir(run_dir: Path) -> list[Path]:
    """Recover folders killed between renames and delete leftover temporaries in the run folder and its
    ``snapshots/`` (at the start and the end of a session, when nothing is being written)."""
    return tidy_folder(run_dir) + tidy_folder(run_dir / "snapshots")


__all__ = ["CHECKPOINT", "GENERATOR", "GOOD_CHECKPOINT", "check_fresh_run_dir", "checkpoint_step", "export_step",
           "promote_good_checkpoint", "resume_source", "tidy_run_dir", "write_run_config"]
