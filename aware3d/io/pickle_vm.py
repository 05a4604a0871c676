"""The pickle machine behind the restricted unpickler: every call and every state write asks a policy first.

CPython's C unpickler calls whatever callable a pickle puts on its stack and writes ``__dict__``/``setattr``
state into whatever object a BUILD targets, so a restricted ``find_class`` alone leaves two doors open: a
pickle can call the *result* of an allowed call, and it can BUILD new attributes into an allow-listed
object that every later load shares (poisoning them). :class:`PolicyUnpickler` is the pure-Python unpickler
with those opcodes routed through an :class:`UnpicklePolicy`; it also refuses copyreg extension codes (their
cache outlives a load) and turns any malformed-stream exception into an ``UnpicklingError`` naming the file.

:func:`scan_globals` reads a pickle's opcodes once, in linear time, without executing anything: the globals
it references and how deep its objects nest.
"""

from __future__ import annotations

import pickle
import pickletools
from collections.abc import Callable
from typing import IO, Any, Protocol

from .unpickle_limits import MAX_NESTING, LoadLimitError, UnsafePickleError

__all__ = ["PolicyUnpickler", "UnpicklePolicy", "scan_globals"]


class UnpicklePolicy(Protocol):
    """What a pickle may reference, call and write into (implemented by the loader's per-file context)."""

    source: str | None

    def find(self, module: str, name: str) -> Any:
        """The safe object a global stands for; raises :class:`UnsafePickleError` for refused names."""

    def call(self, callee: Any, args: tuple, kwargs: dict, opcode: str) -> Any:
        """The result of the pickle calling ``callee`` (REDUCE, NEWOBJ, NEWOBJ_EX, OBJ or INST)."""

    def check_state_write(self, target: Any, opcode: str) -> None:
        """Raise unless ``target`` is a fresh object of this load that may take ``opcode``'s state."""

    def check_build_state(self, target: Any, state: Any) -> None:
        """Raise when a BUILD of ``state`` into ``target`` (already allowed) would allocate too much."""

    def check_keys(self, keys: Any) -> None:
        """Raise when hashing one of ``keys`` (dict keys, set elements) would take too long."""


class PolicyUnpickler(pickle._Unpickler):
    """Pure-Python unpickler that defers calls, BUILDs and item writes to ``policy``."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: IO[bytes], policy: UnpicklePolicy,
                 persistent: Callable[[Any], Any] | None = None) -> None:
        # latin1 decodes Python 2 str payloads (e.g. numpy buffers) losslessly; ASCII text is unchanged.
        super().__init__(file, encoding="latin1")
        self._policy = policy
        self._persistent = persistent

    def load(self) -> Any:
        source = self._policy.source
        try:
            return super().load()
        except pickle.UnpicklingError:
            raise
        except (RecursionError, MemoryError) as exc:
            raise LoadLimitError(f"unpickling it ran out of {'stack' if isinstance(exc, RecursionError) else 'memory'}",
                                 source) from None
        except Exception as exc:  # a malformed stream fails anywhere: report it as what it is, with the file
            raise pickle.UnpicklingError(f"{source}: malformed pickle ({type(exc).__name__}: {exc})") from None

    def find_class(self, module: str, name: str) -> Any:
        return self._policy.find(module, name)

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise pickle.UnpicklingError(f"{self._policy.source}: unexpected persistent id in a plain pickle")
        return self._persistent(pid)

    # -- calls ------------------------------------------------------------------------------------------
    def _call(self, callee: Any, args: Any, kwargs: Any, opcode: str) -> Any:
        if type(args) is not tuple or type(kwargs) is not dict:  # f(*range(10**10)) would expand the range
            raise pickle.UnpicklingError(f"{self._policy.source}: {opcode} arguments must be a tuple and a dict")
        return self._policy.call(callee, args, kwargs, opcode)

    def load_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args, {}, "REDUCE")

    def load_newobj(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args, {}, "NEWOBJ")

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args, kwargs, "NEWOBJ_EX")

    def _instantiate(self, klass: Any, args: list) -> None:  # OBJ and INST
        self.append(self._call(klass, tuple(args), {}, "OBJ/INST"))

    # -- state writes -----------------------------------------------------------------------------------
    def load_build(self) -> None:
        target, state = self.stack[-2], self.stack[-1]
        self._policy.check_state_write(target, "BUILD")
        self._policy.check_build_state(target, state)
        pickle._Unpickler.load_build(self)

    def _marked_target(self, opcode: str) -> None:
        below = self.metastack[-1] if self.metastack else []
        if not below:
            raise pickle.UnpicklingError(f"{self._policy.source}: {opcode} without a target")
        self._policy.check_state_write(below[-1], opcode)

    def load_dict(self) -> None:
        self._policy.check_keys(self.stack[0::2])
        pickle._Unpickler.load_dict(self)

    def load_frozenset(self) -> None:
        self._policy.check_keys(self.stack)
        pickle._Unpickler.load_frozenset(self)

    def load_append(self) -> None:
        self._policy.check_state_write(self.stack[-2], "APPEND")
        pickle._Unpickler.load_append(self)

    def load_appends(self) -> None:
        self._marked_target("APPENDS")
        pickle._Unpickler.load_appends(self)

    def load_setitem(self) -> None:
        self._policy.check_state_write(self.stack[-3], "SETITEM")
        self._policy.check_keys((self.stack[-2],))
        pickle._Unpickler.load_setitem(self)

    def load_setitems(self) -> None:
        self._marked_target("SETITEMS")
        self._policy.check_keys(self.stack[0::2])
        pickle._Unpickler.load_setitems(self)

    def load_additems(self) -> None:
        self._marked_target("ADDITEMS")
        self._policy.check_keys(self.stack)
        pickle._Unpickler.load_additems(self)

    def load_ext(self) -> None:
        # copyreg's extension registry is process-wide and the pure-Python unpickler caches its lookups
        # across loads; torch never writes these opcodes.
        raise UnsafePickleError(["copyreg extension code"], self._policy.source,
                                "it uses a copyreg extension code (EXT opcode), which this loader does not accept")

    for _code, _method in ((pickle.REDUCE, load_reduce), (pickle.NEWOBJ, load_newobj),
                           (pickle.NEWOBJ_EX, load_newobj_ex), (pickle.BUILD, load_build),
                           (pickle.APPEND, load_append), (pickle.APPENDS, load_appends),
                           (pickle.SETITEM, load_setitem), (pickle.SETITEMS, load_setitems),
                           (pickle.ADDITEMS, load_additems), (pickle.DICT, load_dict),
                           (pickle.FROZENSET, load_frozenset), (pickle.EXT1, load_ext), (pickle.EXT2, load_ext),
                           (pickle.EXT4, load_ext)):
        dispatch[_code[0]] = _method
    del _code, _method


# ---------------------------------------------------------------------------------------------------
# The opcode scan
# ---------------------------------------------------------------------------------------------------
_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
                         "SHORT_BINSTRING"})
_INTO_TARGET_OPS = frozenset({"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"})
_SAME_STACK_OPS = frozenset({"MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "READONLY_BUFFER", "PROTO", "FRAME"})


def _depth(entry: Any) -> int:
    return 0 if isinstance(entry, str) else entry


class _ScanState:
    """A stack of nesting depths (string constants are kept as themselves, for STACK_GLOBAL) and the
    positions of its MARKs, as the unpickler's stack and metastack would be; each step costs O(its items)."""

    def __init__(self, source: str | None, max_nesting: int) -> None:
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}
        self.found: list[tuple[str, str]] = []
        self.source = source
        self.max_nesting = max_nesting

    def top(self) -> Any:
        return self.stack[-1] if self.stack else 0

    def consume(self, before: list) -> list[Any]:
        """Pop what an opcode with ``before`` as its stack effect takes (for a MARK opcode, the items above
        the last MARK and the ones listed before it)."""
        if pickletools.markobject in before:
            if not self.marks:
                raise pickle.UnpicklingError(f"{self.source}: malformed pickle (an opcode needs a MARK)")
            start = max(self.marks.pop() - before.index(pickletools.markobject), 0)
        else:
            start = max(len(self.stack) - len(before), 0)
        taken = self.stack[start:]
        del self.stack[start:]
        return taken

    def push_result(self, kind: str, taken: list[Any]) -> None:
        if kind in _INTO_TARGET_OPS and taken:  # the container itself stays; its contents nest one deeper
            depth = max(_depth(taken[0]), 1 + max(map(_depth, taken[1:]), default=-1))
        else:
            depth = 1 + max(map(_depth, taken)) if taken else 0
        if depth > self.max_nesting:
            raise LoadLimitError(f"its objects nest more than {self.max_nesting} levels deep", self.source)
        self.stack.append(depth)

    def step(self, op: pickletools.OpcodeInfo, arg: Any) -> None:
        kind = op.name
        if kind in ("GLOBAL", "INST"):
            module, _, name = str(arg).partition(" ")
            self.found.append((module, name))
        if kind == "STACK_GLOBAL":
            name, module = (self.stack.pop() if self.stack else 0), (self.stack.pop() if self.stack else 0)
            if isinstance(module, str) and isinstance(name, str):
                self.found.append((module, name))
            self.stack.append(0)
        elif kind == "MARK":
            self.marks.append(len(self.stack))
        elif kind in _SAME_STACK_OPS:
            if kind == "MEMOIZE":
                self.memo[len(self.memo)] = self.top()
            elif kind.endswith("PUT"):
                self.memo[int(arg)] = self.top()
        elif kind in ("GET", "BINGET", "LONG_BINGET"):
            self.stack.append(self.memo.get(int(arg), 0))
        elif kind == "DUP":
            self.stack.append(self.top())
        elif kind == "POP":  # pops the last MARK when nothing is above it, as the unpickler does
            if self.stack and (not self.marks or len(self.stack) > self.marks[-1]):
                self.stack.pop()
            elif self.marks:
                self.marks.pop()
        elif kind in _STRING_OPS:
            self.stack.append(arg if isinstance(arg, str) else 0)
        else:
            taken = self.consume(op.stack_before)
            if op.stack_after:
                self.push_result(kind, taken)


def scan_globals(stream: IO[bytes], source: str | None = None,
                 max_nesting: int = MAX_NESTING) -> list[tuple[str, str]]:
    """Every (module, name) the pickle at the stream's position references, read from its opcodes without
    executing anything, in time linear in its length. The stream is left after the pickle's STOP.

    STACK_GLOBAL takes its two names from the stack (often via the memo), so the scan tracks which strings
    are on top; names it cannot resolve are left to the unpickler's ``find_class``. It also tracks how deep
    objects nest and raises :class:`LoadLimitError` past ``max_nesting``.

    Raises:
        pickle.UnpicklingError: the stream is truncated or malformed.
    """
    state = _ScanState(source, max_nesting)
    try:
        for op, arg, _pos in pickletools.genops(stream):
            state.step(op, arg)
    except ValueError as exc:  # genops: truncated or malformed stream
        where = f"{source}: " if source else ""
        raise pickle.UnpicklingError(f"{where}malformed pickle: {exc}") from None
    return state.found
