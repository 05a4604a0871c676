"""Which updates to skip: a non-finite loss or gradient, or a finite but absurd one.

A learning rate that blows up first makes the weights huge while every number stays finite (D weights of ~1e12
after a few steps); the non-finite losses come later. So beside the non-finite check, each phase's loss and
gradient norm are compared with the running median of that phase's accepted values: a value more than ``ratio``
times ``max(median, floor)`` is absurd, and the update is skipped like a non-finite one. The comparison starts
once ``warmup`` values were accepted; the window keeps the last ``window`` of them (stored in the training state,
so a resumed run judges as the uninterrupted one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WINDOW = 100
"""Accepted values kept per quantity for the running median."""
WARMUP = 10
"""Accepted values needed before anything is judged absurd."""
FLOOR = 1.0
"""The median is taken as at least this: a loss or norm that falls toward 0 must not make 1.0 look absurd."""


@dataclass(frozen=True)
class Verdict:
    """The checks of one phase's update."""

    finite: bool
    """Loss and every gradient finite."""
    absurd: tuple[str, ...] = ()
    """The quantities (``loss``, ``grad_norm``) far outside their running range."""

    @property
    def ok(self) -> bool:
        return self.finite and not self.absurd


def running_median(values: list[float]) -> float:
    """The median of ``values`` (non-empty)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def is_absurd(value: float, history: list[float], ratio: float) -> bool:
    """Whether ``value`` (>= 0) exceeds ``ratio`` x max(median of ``history``, FLOOR) once ``history`` holds
    WARMUP values; ``ratio`` 0 turns the check off."""
    if ratio <= 0 or len(history) < WARMUP:
        return False
    return value > ratio * max(running_median(history), FLOOR)


def judge(measures: dict[str, float], finite: bool, history: dict[str, list[float]], prefix: str,
          ratio: float) -> Verdict:
    """The verdict on one phase's ``measures`` (``loss``: |phase loss|, ``grad_norm``: the gradients' 2-norm) given
    the accepted values so far under ``<prefix>/<quantity>``."""
    if not finite or not all(math.isfinite(v) for v in measures.values()):
        return Verdict(False)
    absurd = tuple(k for k, v in measures.items() if is_absurd(v, history.get(f"{prefix}/{k}", []), ratio))
    return Verdict(True, absurd)


def remember(history: dict[str, list[float]], measures: dict[str, float], prefix: str) -> None:
    """Add an accepted update's ``measures`` to ``history`` (in place), keeping the last WINDOW per quantity."""
    for k, v in measures.items():
        kept = history.setdefault(f"{prefix}/{k}", [])
        kept.append(float(v))
        del kept[:-WINDOW]


__all__ = ["FLOOR", "Verdict", "WARMUP", "WINDOW", "is_absurd", "judge", "remember", "running_median"]
