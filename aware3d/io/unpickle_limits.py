"""What a foreign pickle may make the restricted unpickler do: the errors for refused files and the budget
of memory one file may claim.

A hostile file can name sizes it does not hold: ``bytes(10**12)``, ``list(range(10**10))``, a numpy array
or a tensor view far larger than its storage, a zip member that inflates a thousandfold, a nesting deep
enough to overflow the C stack when hashed. :class:`AllocationBudget` charges every such size *before*
anything is allocated and refuses the file (:class:`LoadLimitError`) once it asks for more than it could
legitimately hold; :data:`MAX_NESTING` bounds how deep its objects may nest.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_SLACK",
    "MAX_NESTING",
    "MAX_STREAM_NESTING",
    "MAX_KEY_HASH_COST",
    "AllocationBudget",
    "KeyHashCosts",
    "LoadLimitError",
    "UnsafePickleError",
    "charge_plain_args",
    "require_plain",
]

DEFAULT_SLACK = 256 * 2**20
"""Bytes a file may make the loader allocate beyond its own size (256 MiB): for sizes it only names
(``bytes(n)``, ranges, numpy shapes) this is the whole allowance; for data read out of it (inflated zip
members, the logical size of its tensors) the allowance is the file's size plus this."""

MAX_NESTING = 1000
"""Deepest object nesting a pickle may build, counted in opcode levels (a container, a call's argument
tuple and its result each count one). CPython's pickler cannot write much deeper structures at its default
recursion limit; far deeper tuples crash the interpreter when hashed."""

MAX_STREAM_NESTING = 4
"""How many ``torch.save`` streams may nest inside each other's bytes (official files use one level)."""

MAX_KEY_HASH_COST = 100_000
"""Most objects (tuples and their items) hashing one dict key or set element may visit. ``hash()`` of a tuple hashes its items, so
tuples that share sub-tuples (``t2 = (t1, t1)``, ``t3 = (t2, t2)``, ...) cost time exponential in the pickle's
size; legitimate keys are strings, ints or short tuples of them."""

_PLAIN_TYPES = (type(None), bool, int, float, complex, str, bytes, bytearray, tuple, list, dict, set, frozenset,
                range, slice)
_ELEMENT_BYTES = 8  # a pointer per element of a list/tuple/set built from a range (the ints are extra)


class UnsafePickleError(pickle.UnpicklingError):
    """Raised when a pickle references a global that is not allowed, or asks for something the restricted
    unpickler refuses (calling a non-function, writing state into a shared object, a memory bomb).

    ``names`` lists every offending global (``module.qualname``) or the refused call; ``source`` is the file.
    """

    def __init__(self, names: Iterable[str], source: str | None = None, reason: str | None = None) -> None:
        self.names: list[str] = list(dict.fromkeys(names))  # unique, first-seen order
        self.source = source
        self.reason = reason
        where = f" {source}" if source else ""
        if reason is None:
            message = (f"refusing to load{where}: it references globals that are not allowed: "
                       f"{', '.join(self.names)}. The file was not executed (nothing was unpickled). If a name is a "
                       f"class whose instances are plain state, pass it (or a 'package.' prefix) in stand_ins.")
        else:
            message = (f"refusing to load{where}: {reason}. No code from the file was run; it is not a checkpoint "
                       f"this loader can read safely")
        super().__init__(message)


class LoadLimitError(UnsafePickleError):
    """A file asks for more memory or deeper nesting than the loader grants (see :class:`AllocationBudget`)."""

    def __init__(self, what: str, source: str | None = None) -> None:
        super().__init__([], source, what)


@dataclass
class AllocationBudget:
    """Bytes one file (with the streams nested in it) may make the loader allocate, per pool.

    ``data`` pools (bytes inflated from zip members, tensors' logical sizes) may reach the file's size plus
    ``slack``: a legitimate file holds what it decodes to. The ``named`` pool (sizes the file only names)
    gets ``slack`` alone.
    """

    file_bytes: int
    """Size of the file being loaded, in bytes."""
    source: str | None = None
    """The file, for error messages."""
    slack: int = DEFAULT_SLACK
    """Allowance beyond the file's own size, in bytes."""
    spent: dict[str, int] = field(default_factory=dict)
    """Bytes charged so far, by pool name."""

    def limit(self, pool: str) -> int:
        """The most bytes ``pool`` may reach."""
        return self.slack if pool == "named" else self.file_bytes + self.slack

    def charge(self, pool: str, nbytes: int, what: str) -> None:
        """Count ``nbytes`` against ``pool`` ('inflated', 'tensors' or 'named') before they are allocated;
        :class:`LoadLimitError` naming ``what`` if the pool would overflow."""
        if nbytes < 0:
            raise LoadLimitError(f"{what} has a negative size ({nbytes})", self.source)
        total = self.spent.get(pool, 0) + nbytes
        if total > self.limit(pool):
            raise LoadLimitError(
                f"{what} would make the loader allocate {_human(total)} ({pool}), more than the "
                f"{_human(self.limit(pool))} a {_human(self.file_bytes)} file may claim", self.source)
        self.spent[pool] = total


def _human(nbytes: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{nbytes} bytes"


def require_plain(name: str, args: tuple, kwargs: dict, source: str | None) -> None:
    """Refuse arguments of an allowed builtin constructor that are not plain Python data: a tensor or numpy
    integer would smuggle a size in through ``__index__``, an iterable object through ``__iter__``."""
    for value in (*args, *kwargs.values()):
        if type(value) not in _PLAIN_TYPES:
            raise UnsafePickleError([name], source,
                                    f"it calls {name} with a {type(value).__name__} argument (only plain data allowed)")


def charge_plain_args(name: str, args: tuple, budget: AllocationBudget, *, sized_by_int: bool) -> None:
    """Charge what calling the builtin ``name`` on ``args`` will allocate: every ``range`` it expands
    (a pointer per element) and, when ``sized_by_int`` (``bytes``/``bytearray``), an int first argument
    as that many bytes."""
    for i, value in enumerate(args):
        if type(value) is range:
            try:
                count = len(value)
            except OverflowError:  # more elements than sys.maxsize
                count = budget.limit("named") + 1
            budget.charge("named", count * _ELEMENT_BYTES, f"{name}(range of {count} elements)")
        elif sized_by_int and i == 0 and type(value) is int:
            budget.charge("named", value, f"{name}({value})")


class KeyHashCosts:
    """What hashing each tuple a load built would visit, memoised per tuple (tuples are immutable), so that
    checking every key of a load costs time linear in its size."""

    def __init__(self, source: str | None) -> None:
        self.source = source
        self._costs: dict[int, tuple[tuple, int]] = {}  # id -> (the tuple, kept alive so ids stay unique; cost)

    def cost(self, key: object) -> int:
        """How many objects ``hash(key)`` visits, counting each tuple and each of its items (1 for a key
        that is not a tuple)."""
        if not isinstance(key, tuple):
            return 1
        pending: list[tuple[tuple, bool]] = [(key, False)]
        while pending:  # iterative post-order: a key may nest up to MAX_NESTING tuples deep
            t, children_done = pending.pop()
            if id(t) in self._costs:
                continue
            if children_done:
                total = 1 + sum(self._costs[id(i)][1] if isinstance(i, tuple) else 1 for i in t)
                self._costs[id(t)] = (t, min(total, MAX_KEY_HASH_COST + 1))
            else:
                pending.append((t, True))
                pending.extend((i, False) for i in t if isinstance(i, tuple) and id(i) not in self._costs)
        return self._costs[id(key)][1]

    def check(self, keys: Iterable[object]) -> None:
        """Refuse (:class:`LoadLimitError`) any key whose hash would visit more than :data:`MAX_KEY_HASH_COST` tuples."""
        for key in keys:
            if isinstance(key, tuple) and self.cost(key) > MAX_KEY_HASH_COST:
                raise LoadLimitError(f"a dict key or set element is a tuple that hashing would walk through more "
                                     f"than {MAX_KEY_HASH_COST} objects (shared sub-tuples)", self.source)
