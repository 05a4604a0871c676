"""Restricted unpickling of foreign checkpoints: rebuild tensors and plain state, never run pickled code.

Official checkpoints of other projects are pickles of their own classes (pi-GAN ``generator.pth`` is a
``torch.save`` of a whole ``nn.Module``, ``ema.pth`` a pickled ``torch_ema`` object, EG3D snapshots a plain
``pickle.dump`` of a dict of modules). Loading them with ``pickle``/``torch.load(weights_only=False)`` would
import (and, for EG3D, ``exec``) their code. Here every global a pickle references is checked against a
fixed allow-list of data-only constructors that we implement ourselves; classes the caller names in
``stand_ins`` become inert :class:`PickledObject` records; anything else raises :class:`UnsafePickleError`
before the pickle is unpickled (its opcodes are scanned first so the error lists every offending name).

Supported containers: torch's zip format (torch >= 1.6), the legacy stream format (magic number +
pickles + raw storages; also what ``torch.storage._load_from_bytes`` holds inside plain pickles) and the
pre-0.4 tar format.
"""

from __future__ import annotations

import builtins
import io
import os
import pickle
import pickletools
import struct
import sys
import tarfile
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Union

import numpy as np
import torch

__all__ = [
    "PickledObject",
    "UnsafePickleError",
    "load_pickle_file",
    "load_torch_file",
    "resolve_location",
]

PathOrFile = Union[str, "os.PathLike[str]", IO[bytes]]
MapLocation = Union[str, torch.device, Mapping[str, str], None]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
# EG3D's torch_utils/persistence.py: instances of persistent classes pickle as a call of this function with
# a ``meta`` dict that carries the class's *source code*; the official loader exec()s it. We keep the data.
_PERSISTENT_RECONSTRUCT = "torch_utils.persistence._reconstruct_persistent_obj"
# Dict subclasses with no behaviour beyond attribute access; rebuilt as plain dicts when allowed.
_PLAIN_DICT_CLASSES = frozenset({"dnnlib.util.EasyDict", "dnnlib.EasyDict"})


class UnsafePickleError(pickle.UnpicklingError):
    """Raised when a pickle references a global that is not allowed.

    The message lists every offending name (``module.qualname``) and says the file was not executed.
    """

    def __init__(self, names: Iterable[str], source: str | None = None) -> None:
        self.names: list[str] = list(dict.fromkeys(names))  # unique, first-seen order
        self.source = source
        where = f" {source}" if source else ""
        super().__init__(
            f"refusing to load{where}: it references globals that are not allowed: "
            f"{', '.join(self.names)}. The file was not executed (nothing was unpickled). If a name is a class whose "
            f"instances are plain state, pass it (or a 'package.' prefix) in stand_ins."
        )


@dataclass(eq=False)  # eq=False: comparing tensor-filled states with == is meaningless
class PickledObject:
    """Stand-in for an instance of a class we refuse to import (e.g. 'generators.generators.ImplicitGenerator3d').

    Holds what the pickle would have passed to the class: the qualified class name, constructor args (from
    REDUCE/NEWOBJ), and the state given to ``__setstate__`` (usually a dict; for an ``nn.Module`` the module
    ``__dict__`` with '_parameters', '_buffers', '_modules' plus plain attributes). ``kwargs`` holds NEWOBJ_EX
    keyword arguments, ``listitems``/``dictitems`` what the pickle appended/assigned to a list or dict
    subclass, ``extra`` loader notes (for EG3D persistent classes: ``persistent_version`` and ``module_src``,
    the class source text, which is kept as a string and never executed).
    """

    qualname: str
    args: tuple = ()
    state: Any = None
    kwargs: dict = field(default_factory=dict)
    listitems: list = field(default_factory=list)
    dictitems: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    # -- pickle protocol hooks used while unpickling --------------------------------------------------
    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.dictitems[key] = value

    def append(self, item: Any) -> None:
        self.listitems.append(item)

    def extend(self, items: Iterable[Any]) -> None:
        self.listitems.extend(items)

    def __reduce__(self) -> tuple:
        # Without this, copy/pickle of a PickledObject would route its own __dict__ through __setstate__.
        return (_pickled_object_from_fields, (self.qualname, self.args, self.state, self.kwargs,
                                              self.listitems, self.dictitems, self.extra))

    def __repr__(self) -> str:
        st = self._state_dict()
        shown = f"state keys={sorted(map(str, st))}" if st else f"state={type(self.state).__name__}"
        return f"PickledObject({self.qualname!r}, args={len(self.args)}, {shown})"

    # -- helpers ---------------------------------------------------------------------------------------
    def _state_dict(self) -> dict:
        if isinstance(self.state, dict):
            return self.state
        # (dict_state, slot_state) as produced for classes with __slots__
        if isinstance(self.state, tuple) and len(self.state) == 2:
            merged: dict = {}
            for part in self.state:
                if isinstance(part, dict):
                    merged.update(part)
            return merged
        return {}

    def get(self, name: str, default: Any = None) -> Any:
        """An attribute from the pickled state (``default`` when absent or the state is not a dict)."""
        return self._state_dict().get(name, default)

    @property
    def is_module(self) -> bool:
        """Whether the state looks like an ``nn.Module.__dict__``."""
        return isinstance(self._state_dict().get("_modules"), dict)

    def children(self) -> dict[str, PickledObject]:
        """Direct submodules that are stand-ins (``_modules`` entries; None entries skipped)."""
        mods = self._state_dict().get("_modules") or {}
        return {k: v for k, v in mods.items() if isinstance(v, PickledObject)}

    def named_tensors(self, prefix: str = "", *, include_non_persistent: bool = False) -> dict[str, torch.Tensor]:
        """``state_dict()``-style names -> tensors of an ``nn.Module`` stand-in.

        Walks ``_modules`` recursively and lists every non-None ``_parameters``/``_buffers`` entry as
        '{prefix}{name}', in state_dict order. Non-persistent buffers are left out, like ``state_dict()``,
        unless ``include_non_persistent``. Tensors are returned as stored (Parameters stay Parameters).
        """
        out: dict[str, torch.Tensor] = {}
        self._collect(prefix, out, include_non_persistent, set())
        return out

    def _collect(self, prefix: str, out: dict, include_np: bool, path: set[int]) -> None:
        if id(self) in path:  # a module reachable from itself: state_dict would recurse forever
            return
        path = path | {id(self)}
        st = self._state_dict()
        for name, t in (st.get("_parameters") or {}).items():
            if t is not None:
                out[f"{prefix}{name}"] = t
        non_persistent = st.get("_non_persistent_buffers_set") or ()
        for name, t in (st.get("_buffers") or {}).items():
            if t is not None and (include_np or name not in non_persistent):
                out[f"{prefix}{name}"] = t
        for name, child in (st.get("_modules") or {}).items():
            if isinstance(child, PickledObject):
                child._collect(f"{prefix}{name}.", out, include_np, path)


def _pickled_object_from_fields(qualname, args, state, kwargs, listitems, dictitems, extra) -> PickledObject:
    return PickledObject(qualname, args, state, kwargs, listitems, dictitems, extra)


# ---------------------------------------------------------------------------------------------------
# Storage bookkeeping
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _StorageType:
    """Inert marker for a pickled storage class (torch.FloatStorage, torch.UntypedStorage, ...)."""

    name: str
    dtype: torch.dtype


@dataclass
class _Storage:
    """A loaded storage: shared untyped bytes, the element dtype, and a byte offset for legacy views."""

    untyped: torch.UntypedStorage
    dtype: torch.dtype
    byte_offset: int = 0


class _Marker:
    """Inert stand-in for a class used only as a tag (tensor types, ``object``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<marker {self.name}>"


_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "DoubleStorage": torch.float64,
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "ComplexDoubleStorage": torch.complex128,
    "ComplexFloatStorage": torch.complex64,
}

_TENSOR_MARKER = _Marker("torch.Tensor")
_PARAMETER_MARKER = _Marker("torch.nn.Parameter")


def _ascii(value: Any) -> Any:
    """Python 2 era files store keys and locations as bytes."""
    return value.decode("ascii") if isinstance(value, bytes) else value


def resolve_location(location: str | bytes, map_location: MapLocation = "cpu") -> torch.device:
    """The device a storage saved at ``location`` (e.g. 'cuda:0') is loaded onto.

    ``map_location`` may be a device/string (everything goes there), a dict {saved location: new location}
    (unlisted locations stay), or None (keep the saved location).
    """
    loc = _ascii(location)
    if not isinstance(loc, str):
        raise pickle.UnpicklingError(f"storage location must be a string, got {type(loc).__name__}")
    if map_location is None:
        target: str | torch.device = loc
    elif isinstance(map_location, (str, torch.device)):
        target = map_location
    elif isinstance(map_location, Mapping):
        target = map_location.get(loc, loc)
    else:
        raise TypeError(f"map_location must be a str, torch.device, dict or None, not {type(map_location).__name__}")
    return torch.device(target)


def _byteswap(raw: bytes | bytearray, dtype: torch.dtype) -> bytes:
    # Complex numbers are swapped per real/imaginary component.
    unit = dtype.itemsize // 2 if dtype.is_complex else dtype.itemsize
    if unit <= 1 or not raw:
        return bytes(raw)
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, unit)[:, ::-1].tobytes()


def _untyped_from_bytes(raw: bytes | bytearray, device: torch.device) -> torch.UntypedStorage:
    if not raw:
        return torch.UntypedStorage(0, device=device)
    # bytearray: torch.frombuffer needs a writable buffer to avoid aliasing immutable bytes.
    cpu = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    if device.type != "cpu":
        cpu = cpu.to(device)
    return cpu.untyped_storage()


def _check_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise pickle.UnpicklingError(f"{what} must be an int, got {type(value).__name__}")
    return value


def _check_ints(values: Any, what: str) -> tuple[int, ...]:
    if not isinstance(values, (tuple, list, torch.Size)):
        raise pickle.UnpicklingError(f"{what} must be a sequence of ints, got {type(values).__name__}")
    return tuple(_check_int(v, what) for v in values)


# ---------------------------------------------------------------------------------------------------
# Safe replacements for the allowed torch / numpy / builtins callables
# ---------------------------------------------------------------------------------------------------
def _tensor_on(storage: Any, offset: Any, size: Any, stride: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError(f"tensor rebuilt from a non-storage object ({type(storage).__name__})")
    dtype = storage.dtype if dtype is None else dtype
    if not isinstance(dtype, torch.dtype):
        raise pickle.UnpicklingError("tensor dtype must be a torch.dtype")
    offset = _check_int(offset, "storage offset")
    size, stride = _check_ints(size, "size"), _check_ints(stride, "stride")
    if storage.byte_offset % dtype.itemsize:
        raise pickle.UnpicklingError("storage view offset is not aligned to the tensor dtype")
    # set_ bounds-checks size/stride/offset against the storage, so a corrupt pickle cannot read out of bounds.
    t = torch.empty((0,), dtype=dtype, device=storage.untyped.device)
    return t.set_(storage.untyped, storage.byte_offset // dtype.itemsize + offset, size, stride)


def _finish_tensor(t: torch.Tensor, requires_grad: Any, metadata: Any) -> torch.Tensor:
    if metadata:
        # Only the conj/neg view bits exist (torch._utils.get_tensor_metadata); anything else is refused.
        if not isinstance(metadata, dict) or not set(metadata) <= {"conj", "neg"}:
            raise pickle.UnpicklingError(f"unsupported tensor metadata {metadata!r}")
        if metadata.get("conj"):
            t = t.conj()
        if metadata.get("neg"):
            t = t._neg_view()
    if requires_grad and (t.is_floating_point() or t.is_complex()):
        t.requires_grad_(True)
    return t


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> torch.Tensor:
    return _tensor_on(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any,
                       backward_hooks: Any, metadata: Any = None) -> torch.Tensor:
    # backward_hooks are dropped: torch never serialises real hooks and we would not run them anyway.
    return _finish_tensor(_tensor_on(storage, storage_offset, size, stride), requires_grad, metadata)


def _rebuild_tensor_v3(storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any,
                       backward_hooks: Any, dtype: Any, metadata: Any = None) -> torch.Tensor:
    return _finish_tensor(_tensor_on(storage, storage_offset, size, stride, dtype), requires_grad, metadata)


def _as_parameter(data: Any, requires_grad: Any) -> torch.nn.Parameter:
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError(f"parameter data must be a tensor, got {type(data).__name__}")
    grad = bool(requires_grad) and (data.is_floating_point() or data.is_complex())
    return torch.nn.Parameter(data.detach(), requires_grad=grad)


def _rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any) -> torch.nn.Parameter:
    return _as_parameter(data, requires_grad)


def _rebuild_parameter_with_state(data: Any, requires_grad: Any, backward_hooks: Any, state: Any) -> torch.nn.Parameter:
    # Python attributes set on the Parameter are dropped: setattr with pickled names is not plain data.
    return _as_parameter(data, requires_grad)


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> torch.Tensor:
    """torch._tensor._rebuild_from_type_v2, limited to plain tensors/Parameters built by our functions."""
    if func not in (_rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_tensor, _rebuild_parameter,
                    _rebuild_parameter_with_state) or not isinstance(args, tuple):
        raise pickle.UnpicklingError("_rebuild_from_type_v2 with an unsupported rebuild function")
    t = func(*args)
    if new_type is _PARAMETER_MARKER and not isinstance(t, torch.nn.Parameter):
        return _as_parameter(t, t.requires_grad)
    if new_type not in (_TENSOR_MARKER, _PARAMETER_MARKER):
        raise pickle.UnpicklingError("_rebuild_from_type_v2 with a tensor subclass that is not allowed")
    return t


def _codecs_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """Protocol-2 pickles spell bytes as _codecs.encode(str, 'latin1'); allow exactly that."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is only allowed as encode(str, 'latin1')")
    return text.encode("latin1")


def _numpy_multiarray() -> Any:
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray


def _np_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    # Plain ndarrays only: a subclass could bring its own __setstate__.
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("numpy _reconstruct is only allowed for numpy.ndarray")
    return _numpy_multiarray()._reconstruct(np.ndarray, shape, dtype)


def _np_scalar(dtype: Any, *args: Any) -> Any:
    if not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError("numpy scalar needs a numpy dtype")
    return _numpy_multiarray().scalar(dtype, *args)


def _np_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """numpy's protocol-5 array reconstructor (numpy._core.numeric._frombuffer)."""
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)


def _copyreg_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """copyreg._reconstructor (protocol 0/1 objects), limited to our stand-in classes."""
    qualname = getattr(cls, "_pickled_qualname", None)
    if qualname is None:
        raise pickle.UnpicklingError("copyreg._reconstructor is only allowed for stand-in classes")
    return PickledObject(qualname, () if base is object or state is None else (state,))


_BUILTINS_ALLOWED = ("set", "frozenset", "list", "dict", "tuple", "slice", "complex", "range", "bytearray",
                     "bytes", "int", "float", "str", "bool", "object")


def _static_globals() -> dict[str, Any]:
    g: dict[str, Any] = {
        "torch._utils._rebuild_tensor": _rebuild_tensor,
        "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
        "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
        "torch._utils._rebuild_parameter": _rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": _rebuild_parameter_with_state,
        "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
        "torch._tensor.Tensor": _TENSOR_MARKER,
        "torch.tensor.Tensor": _TENSOR_MARKER,  # pre-1.8 module name of torch.Tensor
        "torch.Tensor": _TENSOR_MARKER,
        "torch.nn.parameter.Parameter": _PARAMETER_MARKER,
        "torch.device": torch.device,
        "torch.Size": torch.Size,
        "collections.OrderedDict": OrderedDict,
        "copyreg._reconstructor": _copyreg_reconstructor,
        "_codecs.encode": _codecs_encode,
        "numpy.ndarray": np.ndarray,
        "numpy.dtype": np.dtype,
    }
    for mod in ("numpy.core", "numpy._core"):
        g[f"{mod}.multiarray._reconstruct"] = _np_reconstruct
        g[f"{mod}.multiarray.scalar"] = _np_scalar
        g[f"{mod}.numeric._frombuffer"] = _np_frombuffer
    for name in _BUILTINS_ALLOWED:
        g[f"builtins.{name}"] = getattr(builtins, name)  # data constructors only; no getattr/eval/open
    for name, dtype in _STORAGE_DTYPES.items():
        for mod in ("torch", "torch.cuda"):  # legacy files from GPU runs name torch.cuda.*Storage
            g[f"{mod}.{name}"] = _StorageType(name, dtype)
    for full in ("torch.UntypedStorage", "torch.storage.UntypedStorage", "torch._UntypedStorage",
                 "torch.storage._UntypedStorage"):
        g[full] = _StorageType("UntypedStorage", torch.uint8)
    # dtypes/layouts/memory formats pickle as module attributes, e.g. the global 'torch.float32'.
    for name in dir(torch):
        value = getattr(torch, name, None)
        if isinstance(value, (torch.dtype, torch.layout, torch.memory_format)):
            g[f"torch.{name}"] = value
    return g


_STATIC_GLOBALS: dict[str, Any] | None = None
_MODULE_ALIASES = {"__builtin__": "builtins", "copy_reg": "copyreg"}  # Python 2 names
_STAND_IN_TYPES: dict[str, type] = {}


def _stand_in_type(qualname: str) -> type:
    """A class object for ``qualname`` whose construction yields a PickledObject.

    It has to be a real type because the C unpickler's NEWOBJ refuses anything else; ``__new__`` returns a
    PickledObject, so no ``__init__`` ever runs.
    """
    cls = _STAND_IN_TYPES.get(qualname)
    if cls is None:
        def __new__(cls: type, *args: Any, **kwargs: Any) -> PickledObject:
            return PickledObject(cls._pickled_qualname, args, kwargs=kwargs)

        cls = type(qualname.rpartition(".")[2] or qualname, (),
                   {"__new__": __new__, "_pickled_qualname": qualname, "__module__": __name__})
        _STAND_IN_TYPES[qualname] = cls
    return cls


def _plain_dict_type(qualname: str) -> type:
    def __new__(cls: type, *args: Any, **kwargs: Any) -> dict:
        return dict(*args, **kwargs)

    return type(qualname.rpartition(".")[2], (), {"__new__": __new__, "__module__": __name__})


def _reconstruct_persistent(meta: Any) -> PickledObject:
    """EG3D persistent class instance -> PickledObject(class_name, state=instance __dict__); source not run."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str):
        raise pickle.UnpicklingError("unsupported torch_utils.persistence record")
    extra = {"persistent_version": meta.get("version"), "module_src": meta.get("module_src")}
    return PickledObject(meta["class_name"], (), state=meta.get("state"), extra=extra)


# ---------------------------------------------------------------------------------------------------
# The restricted unpickler
# ---------------------------------------------------------------------------------------------------
class _Context:
    """Options shared by every pickle read while loading one file (including nested storage blobs)."""

    def __init__(self, stand_ins: Iterable[str], map_location: MapLocation, source: str) -> None:
        if isinstance(stand_ins, str):  # a lone string would otherwise be split into characters
            stand_ins = (stand_ins,)
        names = [s for s in stand_ins if s]
        self.exact = frozenset(s for s in names if not s.endswith("."))
        self.prefixes = tuple(s for s in names if s.endswith(".")) + ("torch.nn.modules.",)
        self.map_location = map_location
        self.source = source
        self.allow_tensor_types = False  # only the pre-0.4 tar format names torch.FloatTensor & co.

    def is_stand_in(self, full: str) -> bool:
        return full in self.exact or full.startswith(self.prefixes)

    def resolve(self, module: str, name: str) -> tuple[str, Any]:
        """(normalised name, safe object); the object is None when the global is refused."""
        global _STATIC_GLOBALS
        if _STATIC_GLOBALS is None:
            _STATIC_GLOBALS = _static_globals()
        module = _MODULE_ALIASES.get(module, module)
        full = f"{module}.{name}"
        if full in _STATIC_GLOBALS:
            return full, _STATIC_GLOBALS[full]
        if full == "torch.storage._load_from_bytes":
            return full, self._load_from_bytes
        if self.allow_tensor_types and module in ("torch", "torch.cuda") and name.endswith("Tensor"):
            return full, _Marker(full)
        if self.is_stand_in(full):
            if full == _PERSISTENT_RECONSTRUCT:
                return full, _reconstruct_persistent
            if full in _PLAIN_DICT_CLASSES:
                return full, _plain_dict_type(full)
            return full, _stand_in_type(full)
        return full, None

    def _load_from_bytes(self, data: Any) -> Any:
        """torch.storage._load_from_bytes: the bytes are a nested torch.save stream (legacy or zip)."""
        if not isinstance(data, (bytes, bytearray)):
            raise pickle.UnpicklingError("_load_from_bytes expects bytes")
        return _load_torch_bytes(bytes(data), self)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], ctx: _Context,
                 persistent: Callable[[Any], Any] | None = None) -> None:
        # latin1 decodes Python 2 str payloads (e.g. numpy buffers) losslessly; ASCII text is unchanged.
        super().__init__(file, encoding="latin1")
        self._ctx = ctx
        self._persistent = persistent

    def find_class(self, module: str, name: str) -> Any:
        full, obj = self._ctx.resolve(module, name)
        if obj is None:
            raise UnsafePickleError([full], self._ctx.source)
        return obj

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise pickle.UnpicklingError("unexpected persistent id in a plain pickle")
        return self._persistent(pid)


_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
                         "SHORT_BINSTRING"})
_OTHER = object()
_MARK = object()


def _scan_globals(stream: IO[bytes]) -> list[tuple[str, str]]:
    """Every (module, name) a pickle references, read from its opcodes without executing anything.

    STACK_GLOBAL takes its two names from the stack (often via the memo), so a light stack simulation
    tracks which strings are on top. Names it cannot resolve are left to find_class at load time.
    """
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    found: list[tuple[str, str]] = []
    try:
        for op, arg, _pos in pickletools.genops(stream):
            kind = op.name
            if kind in ("GLOBAL", "INST"):
                module, _, name = str(arg).partition(" ")
                found.append((module, name))
            elif kind == "STACK_GLOBAL":
                name = stack.pop() if stack else _OTHER
                module = stack.pop() if stack else _OTHER
                if isinstance(module, str) and isinstance(name, str):
                    found.append((module, name))
                stack.append(_OTHER)
                continue
            if kind == "MARK":
                stack.append(_MARK)
            elif kind == "MEMOIZE":
                memo[len(memo)] = stack[-1] if stack else _OTHER
            elif kind in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg)] = stack[-1] if stack else _OTHER
            elif kind in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo.get(int(arg), _OTHER))
            else:
                before = op.stack_before
                if pickletools.markobject in before:
                    # Pops everything above the last MARK, the MARK, and the items listed before it.
                    mark = max((i for i, v in enumerate(stack) if v is _MARK), default=0)
                    del stack[max(mark - before.index(pickletools.markobject), 0):]
                elif before:
                    del stack[max(len(stack) - len(before), 0):]
                if kind in _STRING_OPS:
                    stack.append(arg)
                else:
                    stack.extend([_OTHER] * len(op.stack_after))
    except ValueError as exc:  # genops: truncated or malformed stream
        raise pickle.UnpicklingError(f"malformed pickle: {exc}") from exc
    return found


def _restricted_load(stream: IO[bytes], ctx: _Context, persistent: Callable[[Any], Any] | None = None) -> Any:
    """Scan one pickle at the stream's position, refuse it if any global is disallowed, else unpickle it."""
    start = stream.tell()
    refused = [full for full, obj in (ctx.resolve(m, n) for m, n in _scan_globals(stream)) if obj is None]
    if refused:
        raise UnsafePickleError(refused, ctx.source)
    stream.seek(start)
    return _RestrictedUnpickler(stream, ctx, persistent).load()


# ---------------------------------------------------------------------------------------------------
# Containers
# ---------------------------------------------------------------------------------------------------
def _storage_dtype(storage_type: Any) -> torch.dtype:
    if not isinstance(storage_type, _StorageType):
        raise pickle.UnpicklingError(f"persistent id names a non-storage type ({type(storage_type).__name__})")
    return storage_type.dtype


def _load_zip(data: bytes, ctx: _Context) -> Any:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") <= 1]
        if not pkl:
            raise pickle.UnpicklingError(f"{ctx.source}: zip archive without data.pkl (not a torch.save file)")
        prefix = pkl[0][: -len("data.pkl")]
        if f"{prefix}constants.pkl" in names:
            raise pickle.UnpicklingError(f"{ctx.source} is a TorchScript archive, not a torch.save file")
        order_name = f"{prefix}byteorder"
        # Files written before the byteorder record existed come from little-endian machines.
        file_little = zf.read(order_name).decode().strip() != "big" if order_name in names else True
        loaded: dict[str, _Storage] = {}

        def persistent_load(pid: Any) -> _Storage:
            if not isinstance(pid, tuple) or len(pid) < 5 or _ascii(pid[0]) != "storage":
                raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
            storage_type, key, location, numel = pid[1:5]
            dtype = _storage_dtype(storage_type)
            key = str(_ascii(key))
            if key in loaded:
                return loaded[key] if loaded[key].dtype == dtype else _Storage(loaded[key].untyped, dtype)
            nbytes = _check_int(numel, "storage numel") * dtype.itemsize
            record = f"{prefix}data/{key}"
            if record not in names:
                raise pickle.UnpicklingError(f"{ctx.source}: missing storage record {record}")
            raw = zf.read(record)
            if len(raw) < nbytes:
                raise pickle.UnpicklingError(f"{ctx.source}: storage {key} has {len(raw)} bytes, expected {nbytes}")
            raw = raw[:nbytes]
            if file_little != (sys.byteorder == "little"):
                raw = _byteswap(raw, dtype)
            device = resolve_location(location, ctx.map_location)
            loaded[key] = _Storage(_untyped_from_bytes(raw, device), dtype)
            return loaded[key]

        return _restricted_load(io.BytesIO(zf.read(pkl[0])), ctx, persistent_load)


def _load_legacy_stream(data: bytes, ctx: _Context) -> Any:
    """torch.save with _use_new_zipfile_serialization=False (and the bytes inside _load_from_bytes)."""
    f = io.BytesIO(data)
    if _restricted_load(f, ctx) != _LEGACY_MAGIC:
        raise pickle.UnpicklingError(f"{ctx.source}: invalid magic number; not a torch.save file")
    if _restricted_load(f, ctx) != _LEGACY_PROTOCOL:
        raise pickle.UnpicklingError(f"{ctx.source}: unsupported legacy torch.save protocol")
    sys_info = _restricted_load(f, ctx)
    # The raw section is in the writer's byte order (recorded in sys_info).
    order = "little" if not isinstance(sys_info, dict) or sys_info.get("little_endian", True) else "big"
    roots: dict[str, _Storage] = {}
    views: dict[str, _Storage] = {}

    def persistent_load(pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid:
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        typename = _ascii(pid[0])
        if typename == "module":  # ('module', class, source_file, source): the class (a stand-in)
            return pid[1]
        if typename != "storage" or len(pid) < 6:
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        storage_type, root_key, location, numel, view_metadata = pid[1:6]
        dtype = _storage_dtype(storage_type)
        root_key = str(_ascii(root_key))
        if root_key not in roots:
            # Raw bytes follow the pickle; allocate now and fill in place afterwards (tensors share it).
            nbytes = _check_int(numel, "storage numel") * dtype.itemsize
            if not 0 <= nbytes <= len(data):  # the bytes must be in the stream; refuse absurd allocations
                raise pickle.UnpicklingError(f"{ctx.source}: storage {root_key} claims {nbytes} bytes")
            device = resolve_location(location, ctx.map_location)
            roots[root_key] = _Storage(torch.UntypedStorage(nbytes, device=device), dtype)
        root = roots[root_key]
        if view_metadata is None:
            return root if root.dtype == dtype else _Storage(root.untyped, dtype)
        view_key, offset, _view_size = view_metadata
        view_key = str(_ascii(view_key))
        if view_key not in views:
            views[view_key] = _Storage(root.untyped, dtype, _check_int(offset, "view offset") * dtype.itemsize)
        return views[view_key]

    result = _restricted_load(f, ctx, persistent_load)
    keys = _restricted_load(f, ctx)
    if not isinstance(keys, list):
        raise pickle.UnpicklingError(f"{ctx.source}: malformed storage key list")
    for key in keys:
        storage = roots.get(str(_ascii(key)))
        if storage is None:
            raise pickle.UnpicklingError(f"{ctx.source}: storage {key!r} listed but never referenced")
        header = f.read(8)
        if len(header) != 8:
            raise pickle.UnpicklingError(f"{ctx.source}: truncated storage data")
        nbytes = int.from_bytes(header, order, signed=True) * storage.dtype.itemsize
        if nbytes != storage.untyped.nbytes():
            raise pickle.UnpicklingError(f"{ctx.source}: storage {key!r} size does not match its record")
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise pickle.UnpicklingError(f"{ctx.source}: truncated storage data")
        if (order == "little") != (sys.byteorder == "little"):
            raw = _byteswap(raw, storage.dtype)
        if nbytes:
            storage.untyped.copy_(_untyped_from_bytes(raw, torch.device("cpu")))
    return result


def _int_key(key: Any) -> Any:
    key = _ascii(key)
    try:
        return int(key)
    except (TypeError, ValueError):
        return key


def _load_legacy_tar(data: bytes, ctx: _Context) -> Any:
    """The pre-0.4 tar container: 'storages', 'tensors' and 'pickle' members (raw data little-endian)."""
    objs: dict[Any, Any] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        def member(name: str) -> io.BytesIO:
            fh = tar.extractfile(name)
            if fh is None:
                raise pickle.UnpicklingError(f"{ctx.source}: tar member {name} missing")
            return io.BytesIO(fh.read())

        def read_exact(f: io.BytesIO, n: int) -> bytes:
            raw = f.read(n)
            if len(raw) != n:
                raise pickle.UnpicklingError(f"{ctx.source}: truncated legacy tar member")
            return raw

        f = member("storages")
        for _ in range(_check_int(_restricted_load(f, ctx), "storage count")):
            key, location, storage_type = _restricted_load(f, ctx)
            dtype = _storage_dtype(storage_type)
            (numel,) = struct.unpack("<q", read_exact(f, 8))
            raw = read_exact(f, numel * dtype.itemsize)
            device = resolve_location(location, ctx.map_location)
            objs[_int_key(key)] = _Storage(_untyped_from_bytes(raw, device), dtype)
        for target, root_key, offset, _numel in _restricted_load(f, ctx):
            root = objs[_int_key(root_key)]
            objs[_int_key(target)] = _Storage(root.untyped, root.dtype,
                                              root.byte_offset + _check_int(offset, "view offset") * root.dtype.itemsize)

        f = member("tensors")
        ctx.allow_tensor_types = True  # records name the tensor class (torch.FloatTensor), used as a tag only
        try:
            count = _check_int(_restricted_load(f, ctx), "tensor count")
            for _ in range(count):
                key, storage_id, _tensor_type = _restricted_load(f, ctx)
                (ndim,) = struct.unpack("<i", read_exact(f, 4))
                read_exact(f, 4)  # ndim was once written as 8 bytes
                size = struct.unpack(f"<{ndim}q", read_exact(f, 8 * ndim))
                stride = struct.unpack(f"<{ndim}q", read_exact(f, 8 * ndim))
                (offset,) = struct.unpack("<q", read_exact(f, 8))
                objs[_int_key(key)] = _tensor_on(objs[_int_key(storage_id)], offset, size, stride)
        finally:
            ctx.allow_tensor_types = False

        def persistent_load(pid: Any) -> Any:
            if isinstance(pid, tuple):  # (class, source_file, source) of a module container
                return pid[0]
            key = _int_key(pid)
            if key not in objs:
                raise pickle.UnpicklingError(f"{ctx.source}: unknown persistent id {pid!r:.80}")
            return objs[key]

        return _restricted_load(member("pickle"), ctx, persistent_load)


def _load_torch_bytes(data: bytes, ctx: _Context) -> Any:
    if data[:4] == b"PK\x03\x04":
        return _load_zip(data, ctx)
    if data[257:262] == b"ustar":  # POSIX/PAX tar header magic
        return _load_legacy_tar(data, ctx)
    return _load_legacy_stream(data, ctx)


def _read_all(path: PathOrFile) -> tuple[bytes, str]:
    if hasattr(path, "read"):
        return path.read(), getattr(path, "name", "<stream>")  # type: ignore[union-attr]
    with open(path, "rb") as fh:
        return fh.read(), os.fspath(path)


def load_torch_file(path: PathOrFile, stand_ins: Iterable[str] = (), map_location: MapLocation = "cpu") -> Any:
    """Load a ``torch.save`` file with the restricted unpickler; nothing in the file is executed.

    Handles the zip container (torch >= 1.6), the legacy stream format and the pre-0.4 tar format.
    ``stand_ins`` lists allowed class names, exact ('module.QualName') or prefixes ending in '.'
    ('siren.siren.'); their instances (and any 'torch.nn.modules.' class) become :class:`PickledObject`.
    Tensors are rebuilt on ``map_location`` (see :func:`resolve_location`; default CPU, also for storages
    tagged 'cuda:N'); Parameters come back as ``nn.Parameter``. Views keep sharing their storage.

    Raises:
        UnsafePickleError: the file references globals outside the allow-list and ``stand_ins``.
    """
    data, source = _read_all(path)
    return _load_torch_bytes(data, _Context(stand_ins, map_location, source))


def load_pickle_file(path: PathOrFile, stand_ins: Iterable[str] = (), map_location: MapLocation = "cpu") -> Any:
    """Load a plain ``pickle.dump`` file (e.g. an EG3D snapshot) with the restricted unpickler.

    Tensors inside are pickled by torch as ``torch.storage._load_from_bytes(bytes)``; those bytes are a
    nested torch.save stream and are decoded by the same restricted loader. EG3D persistent classes
    (``torch_utils.persistence._reconstruct_persistent_obj``, allowed when 'torch_utils.' is a stand-in)
    become ``PickledObject(class_name, state=instance __dict__)`` with the embedded source only stored in
    ``extra['module_src']``; ``dnnlib.util.EasyDict`` (when allowed) becomes a plain dict.

    Raises:
        UnsafePickleError: the file references globals outside the allow-list and ``stand_ins``.
    """
    data, source = _read_all(path)
    return _restricted_load(io.BytesIO(data), _Context(stand_ins, map_location, source))
