"""Schedules as data: a value as a function of training progress, in optimiser steps or real images shown.

A :class:`Schedule` is a tuple of :class:`Piece`, each in force from its ``start`` until the next piece's
``start``, in one of three shapes:

* ``constant``: ``value`` throughout (curriculum stages, a phase switched on at some point);
* ``linear``: a ramp from ``value`` at ``start`` to ``target`` at ``start + length``, ``target`` after
  (fade-ins, EG3D's pose-conditioning, blur and rendering-resolution fades, pi-GAN's density noise);
* ``exponential``: ``value * rate ** ((x - start) / length)``, never below ``target`` (pi-GAN's top-k).

Configs stored in run folders keep their official option values and derive their schedules from them
(``schedules()``), so the formula the trainer evaluates and the table ``aware3d presets --show`` prints are
one thing. The arithmetic follows the official formulas operation by operation, so values are bit-identical
to them: a ramp is ``value * (1 - a) + target * a`` with ``a = min((x - start) / length, 1.0)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Literal, Protocol

ScheduleUnit = Literal["step", "image"]
"""What a schedule's x counts: optimiser steps completed, or real images shown, summed over processes
(the official StyleGAN2/EG3D loops' ``cur_nimg``)."""

PieceShape = Literal["constant", "linear", "exponential"]


@dataclass(frozen=True)
class Piece:
    """One piece of a schedule, in force from ``start`` until the next piece's ``start``."""

    start: float
    """First x (in the schedule's unit) at which this piece is in force."""
    value: float
    """The value at ``start`` (throughout, for a constant piece)."""
    shape: PieceShape = "constant"
    """constant, linear (ramp to ``target``) or exponential (decay towards the floor ``target``)."""
    target: float = 0.0
    """linear: the value at and after ``start + length``; exponential: the floor; constant: unused."""
    length: float = 0.0
    """linear: x over which the ramp runs (<= 0: ``target`` at once); exponential: x per factor ``rate`` (> 0)."""
    rate: float = 1.0
    """exponential only: the factor applied every ``length``."""

    def __post_init__(self) -> None:
        if self.shape not in ("constant", "linear", "exponential"):
            raise ValueError(f"schedule piece at {self.start}: unknown shape {self.shape!r}; "
                             "valid: constant, linear, exponential")
        if self.shape == "exponential" and not (self.length > 0 and self.rate > 0):
            raise ValueError(f"exponential schedule piece at {self.start} needs length > 0 and rate > 0, "
                             f"got length {self.length}, rate {self.rate}")

    def at(self, x: float) -> float:
        """The piece's value at ``x >= start`` (the official formulas' operation order)."""
        if self.shape == "constant":
            return self.value
        if self.shape == "linear":
            if self.length <= 0:
                return self.target
            a = min((x - self.start) / self.length, 1.0)
            return self.value * (1 - a) + self.target * a
        return max(self.value * self.rate ** ((x - self.start) / self.length), self.target)

    def turning_point(self) -> float | None:
        """Where the piece stops changing: a ramp's end, the x where a decay meets its floor (None: never)."""
        if self.shape == "linear" and self.length > 0:
            return self.start + self.length
        if self.shape == "exponential" and 0 < self.target < self.value and self.rate < 1:
            return self.start + self.length * math.log(self.target / self.value) / math.log(self.rate)
        return None


@dataclass(frozen=True)
class Schedule:
    """A value as a function of training progress: pieces in order of ``start``, the first at 0."""

    unit: ScheduleUnit
    """What x counts: optimiser steps ("step") or real images shown, summed over processes ("image")."""
    pieces: tuple[Piece, ...]
    """The pieces, ``start`` strictly increasing from 0."""
    integer: bool = False
    """Round values to the nearest integer (Python's ``round``: halves to even), e.g. a resolution."""

    def __post_init__(self) -> None:
        if self.unit not in ("step", "image"):
            raise ValueError(f"schedule unit must be 'step' or 'image', not {self.unit!r}")
        if not self.pieces or self.pieces[0].start != 0:
            raise ValueError("a schedule needs pieces, the first starting at 0")
        starts = [p.start for p in self.pieces]
        if any(b <= a for a, b in zip(starts, starts[1:])):
            raise ValueError(f"schedule piece starts must be strictly increasing, got {starts}")

    @staticmethod
    def constant(value: float, unit: ScheduleUnit = "step", integer: bool = False) -> Schedule:
        """The same value throughout."""
        return Schedule(unit, (Piece(0, value),), integer)

    @staticmethod
    def ramp(begin: float, end: float, length: float, unit: ScheduleUnit, integer: bool = False) -> Schedule:
        """``begin`` at 0 moving linearly to ``end`` at ``length``, then ``end``."""
        return Schedule(unit, (Piece(0, begin, "linear", end, length),), integer)

    def piece_at(self, x: float) -> Piece:
        """The piece in force at ``x`` (>= 0)."""
        if x < 0:
            raise ValueError(f"schedules start at 0; got x = {x}")
        for p in reversed(self.pieces):
            if p.start <= x:
                return p
        raise AssertionError("unreachable: the first piece starts at 0")

    def value_at(self, x: float) -> float | int:
        """The value at ``x`` (in :attr:`unit`)."""
        v = self.piece_at(x).at(x)
        return int(round(v)) if self.integer else v

    def is_constant(self) -> bool:
        """Whether the value never changes."""
        return len(self.pieces) == 1 and self.pieces[0].shape == "constant"

    def key_points(self, until: float | None = None) -> list[float]:
        """Where the schedule changes course: each piece's start and, before the next piece, its turning
        point (a ramp's end, a decay reaching its floor; rounded up to a whole unit); up to ``until``."""
        points: list[float] = []
        for i, p in enumerate(self.pieces):
            points.append(p.start)
            turn = p.turning_point()
            nxt = self.pieces[i + 1].start if i + 1 < len(self.pieces) else math.inf
            if turn is not None and turn < nxt:
                points.append(math.ceil(turn))
        return sorted({x for x in points if until is None or x <= until})

    def table(self, xs: Iterable[float]) -> list[tuple[float, float | int]]:
        """Rows ``(x, value)`` at the distinct ``xs``, in increasing order."""
        return [(x, self.value_at(x)) for x in sorted(set(xs))]


@dataclass(frozen=True)
class NamedSchedule:
    """A schedule with the name it is shown under."""

    name: str
    """Short name, as the method that evaluates it (e.g. ``blur_sigma``)."""
    schedule: Schedule
    """The schedule."""
    about: str = ""
    """One line on what the value is and its unit (e.g. ``sigma in pixels of the blur of D's images``)."""


class HasSchedules(Protocol):
    """A config whose values change during training (loss recipes' configs, the curriculum)."""

    def schedules(self) -> tuple[NamedSchedule, ...]:
        """Every schedule the config implies, named (empty when nothing changes during training)."""
        ...


class NoSchedules:
    """Mix-in for configs that implement :class:`HasSchedules` with no schedule (nothing changes in training)."""

    def schedules(self) -> tuple[NamedSchedule, ...]:
        return ()


__all__ = ["HasSchedules", "NamedSchedule", "NoSchedules", "Piece", "PieceShape", "Schedule", "ScheduleUnit"]
