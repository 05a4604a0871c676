"""Stopping a run by signal: SIGINT/SIGTERM ask for a checkpoint and a clean stop; the exit status says so.

The handlers are installed from the start of set-up (:func:`aware3d.training.trainer.train`) to the end of the
run, so a scheduler's SIGTERM at any moment leaves a folder that resumes or restarts:

- the first signal asks the loop to stop after the current step with a checkpoint (during set-up or the step-0
  sample grid: to stop before the first step, writing no checkpoint; the folder then restarts or resumes from
  step 0);
- a second signal while a step runs stops at once without saving (the previous checkpoint stays intact) by
  raising :class:`TrainingAborted`; while the checkpoint is being written it is ignored (with a note), so the
  checkpoint the first signal asked for is never cut short.

``aware3d train`` then exits with status 128 + the signal's number (130 for SIGINT, 143 for SIGTERM), as a shell
reports a process that a signal stopped, never 0: a job script can tell a stopped run (resume it) from a
finished one.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def signal_exit_status(signum: int | None) -> int:
    """The exit status of a run stopped by signal ``signum`` (SIGTERM when unknown): 128 + its number."""
    return 128 + int(signum if signum is not None else signal.SIGTERM)


class TrainingAborted(SystemExit):
    """A second signal stopped the run at once, without a new checkpoint. A :class:`SystemExit` carrying
    :func:`signal_exit_status`, so an uncaught one ends the process with that status and no traceback."""


class TrainingInterrupted(SystemExit):
    """``aware3d train`` stopped by a signal after writing its checkpoint: exit status :func:`signal_exit_status`
    (uncaught, it ends the process with that status and no traceback); ``summary`` is what the tool would have
    returned."""

    def __init__(self, code: int, summary: dict):
        super().__init__(code)
        self.summary = summary


@dataclass
class StopRequest:
    """Whether, why and by which signal a run was asked to stop (written by the handlers, read by the loop)."""

    reason: str | None = None
    """None (keep going), "signal", "time_limit", or another reason given to :meth:`ask`."""
    signum: int | None = None
    """The signal that asked, if one did."""
    writing: bool = False
    """True while a checkpoint is being written: a second signal then waits for it."""
    message_prefix: str = "aware3d train"
    """How the notes printed on a signal begin."""
    verbose: bool = True
    """Print a note on each signal (rank 0 only under torchrun)."""

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def ask(self, reason: str, signum: int | None = None) -> None:
        """Ask for a stop (the first reason given is kept)."""
        if self.reason is None:
            self.reason, self.signum = reason, signum

    def on_signal(self, signum: int, frame=None) -> None:
        """The handler: a first signal asks for a stop; a second aborts, unless a checkpoint is being written."""
        name = signal.Signals(signum).name
        if self.reason != "signal":
            self.reason, self.signum = "signal", signum
            self.note(f"got {name}; saving a checkpoint after this step (send again to abort without saving)")
            return
        if self.writing:
            self.note(f"got {name} again while the checkpoint is being written; stopping right after it")
            return
        self.note(f"got {name} again: stopping now without saving; the run folder keeps its last checkpoint (if "
                  "any), which --resume continues")
        raise TrainingAborted(signal_exit_status(signum))

    def note(self, text: str) -> None:
        """Print ``text`` as one of the run's notes (when verbose)."""
        if self.verbose:
            print(f"\n{self.message_prefix}: {text}", flush=True)


@contextmanager
def catch_stop_signals(request: StopRequest) -> Iterator[StopRequest]:
    """SIGINT and SIGTERM go to ``request`` inside the block (nesting is fine); the previous handlers come back
    after it. Outside the main thread (where Python cannot handle signals) nothing is installed."""
    previous = {}
    try:
        for s in STOP_SIGNALS:
            previous[s] = signal.signal(s, request.on_signal)
    except ValueError:  # not the main thread
        for s, h in previous.items():
            signal.signal(s, h)
        previous = {}
    try:
        yield request
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextmanager
def writing_checkpoint(request: StopRequest) -> Iterator[None]:
    """Mark a checkpoint write: a second signal inside waits for the write instead of aborting it."""
    before = request.writing
    request.writing = True
    try:
        yield
    finally:
        request.writing = before


__all__ = ["STOP_SIGNALS", "StopRequest", "TrainingAborted", "TrainingInterrupted", "catch_stop_signals",
           "signal_exit_status", "writing_checkpoint"]
