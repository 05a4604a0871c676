"""Range checks for config and option dataclasses, run from their ``__post_init__``.

A config declares its ranges as a table ``{field name: Range(...)}`` and calls :func:`check_config` (or a tool's
options :func:`check_options`); the first field out of range raises an error that names it, its range and the
value. ``None`` passes every range (optional fields mean "the default" with None); a list or tuple is checked
item by item. Every number must be finite, whatever its range.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import ConfigError, OptionError


def _number(x: float) -> str:
    """A bound as written in messages: integers in full, other numbers in %g."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class Range:
    """An interval of allowed numbers; ``lo``/``hi`` None: unbounded on that side."""

    lo: float | None = None
    """Lower bound."""
    hi: float | None = None
    """Upper bound."""
    lo_open: bool = False
    """The lower bound itself is excluded (``> lo`` instead of ``>= lo``)."""
    hi_open: bool = False
    """The upper bound itself is excluded."""

    def describe(self) -> str:
        """The range in words for messages, e.g. ``> 0``, ``>= 1`` or ``in (0, 180)``."""
        if self.lo is not None and self.hi is not None:
            left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
            return f"in {left}{_number(self.lo)}, {_number(self.hi)}{right}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {_number(self.lo)}"
        if self.hi is not None:
            return f"{'<' if self.hi_open else '<='} {_number(self.hi)}"
        return ""

    def holds(self, value: float) -> bool:
        """Whether one number lies in the range (NaN and infinities never do)."""
        if not math.isfinite(value):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)


FINITE = Range()
POSITIVE = Range(0, lo_open=True)
NON_NEGATIVE = Range(0)
AT_LEAST_ONE = Range(1)
UNIT_INTERVAL = Range(0, 1)
FOV_DEGREES = Range(0, 180, lo_open=True, hi_open=True)
SEED = Range(0, 2**63 - 1)
"""Seeds of torch generators (non-negative 64-bit integers)."""


def _numbers(value: Any) -> list[float]:
    """The numbers a field holds (one, or the items of a list/tuple); booleans and other types are left to the
    type checks."""
    items = value if isinstance(value, (list, tuple)) else [value]
    return [v for v in items if isinstance(v, (int, float)) and not isinstance(v, bool)]


def range_problem(name: str, value: Any, rule: Range) -> str | None:
    """``"<name> must be <range>, got <value>"`` when ``value`` (or one of its items) is out of ``rule``."""
    if value is None:
        return None
    numbers = _numbers(value)
    if all(rule.holds(v) for v in numbers):
        return None
    integers = all(isinstance(v, int) for v in numbers)
    if isinstance(value, (list, tuple)):
        kind = "only integers" if integers else "only finite numbers"
        return f"{name} must hold {kind} {rule.describe()}".rstrip() + f", got {list(value)!r}"
    kind = "an integer" if integers else "a finite number"
    return f"{name} must be {kind} {rule.describe()}".rstrip() + f", got {value!r}"


def check_config(cfg: Any, rules: Mapping[str, Range]) -> None:
    """Raise :class:`~aware3d.errors.ConfigError` naming the first field of ``cfg`` out of its range."""
    for name, rule in rules.items():
        problem = range_problem(name, getattr(cfg, name), rule)
        if problem:
            raise ConfigError(problem)


def check_options(opts: Any, rules: Mapping[str, Range]) -> None:
    """Raise :class:`~aware3d.errors.OptionError` naming the first option (as ``--flag-name``) of the dataclass
    ``opts`` out of its range; for an option whose default is None, the message says that leaving it out
    gives that default (``--resolution 0`` is refused, not read as "the model's")."""
    defaults_none = {f.name for f in dataclasses.fields(opts) if f.default is None}
    for name, rule in rules.items():
        flag = "--" + name.replace("_", "-")
        problem = range_problem(flag, getattr(opts, name), rule)
        if problem:
            raise OptionError(problem + (f"; leave {flag} out for its default" if name in defaults_none else ""))


def device_problem(device: str, flag: str = "--device") -> str | None:
    """Why ``device`` cannot be used here (not a torch device, or CUDA/MPS missing on this machine), or None."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        return f"{flag} {device!r} is not a torch device ({e}); use e.g. cpu, cuda or cuda:1"
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            return f"{flag} {device}: CUDA is not available on this machine; use {flag} cpu"
        if dev.index is not None and dev.index >= count:
            return f"{flag} {device}: this machine has {count} CUDA device(s) (cuda:0 .. cuda:{count - 1})"
    if dev.type == "mps" and not torch.backends.mps.is_available():
        return f"{flag} {device}: MPS is not available on this machine; use {flag} cpu"
    return None


def power_of_two_problem(name: str, value: int, smallest: int) -> str | None:
    """``"<name> must be a power of two >= <smallest>, got <value>"`` when it is not one."""
    if value < smallest or value & (value - 1):
        return f"{name} must be a power of two >= {smallest}, got {value}"
    return None


__all__ = ["AT_LEAST_ONE", "FINITE", "FOV_DEGREES", "NON_NEGATIVE", "POSITIVE", "SEED", "UNIT_INTERVAL", "Range",
           "check_config", "check_options", "device_problem", "power_of_two_problem", "range_problem"]
