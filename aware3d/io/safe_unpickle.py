"""Restricted unpickling of foreign checkpoints: rebuild tensors and plain state, never run pickled code.

Official checkpoints of other projects are pickles of their own classes (pi-GAN ``generator.pth`` is a
``torch.save`` of a whole ``nn.Module``, ``ema.pth`` a pickled ``torch_ema`` object, EG3D snapshots a plain
``pickle.dump`` of a dict of modules). Loading them with ``pickle``/``torch.load(weights_only=False)`` would
import (and, for EG3D, ``exec``) their code. Here every global a pickle references is checked against a
fixed allow-list of data-only constructors that we implement ourselves; classes the caller names in
``stand_ins`` become inert :class:`PickledObject` records; anything else raises :class:`UnsafePickleError`
before the pickle is unpickled (its opcodes are scanned first so the error lists every offending name).

A file can still attack the loader itself, so (see :mod:`aware3d.io.pickle_vm` and
:mod:`aware3d.io.unpickle_limits`):

- it may only call what the allow-list handed out (never the result of a call, e.g. what a stand-in for
  ``dnnlib.util.get_obj_by_name`` returned), and the builtins only with plain-data arguments;
- it may only write state (BUILD, SETITEM, APPEND, ...) into objects it just built itself; what the
  allow-list hands out is immutable (markers, wrapped functions) or made fresh for each load (stand-in
  classes), so no file can change what a later load sees;
- every size it names is charged to an :class:`~aware3d.io.unpickle_limits.AllocationBudget` before
  anything is allocated (zip members against the tensors' declared sizes, numpy shapes, ``bytes(n)``,
  ranges, tensor views), and its objects may nest only :data:`~aware3d.io.unpickle_limits.MAX_NESTING` deep.

Supported containers: torch's zip format (torch >= 1.6), the legacy stream format (magic number +
pickles + raw storages; also what ``torch.storage._load_from_bytes`` holds inside plain pickles) and the
pre-0.4 tar format.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import math
import os
import pickle
import reprlib
import struct
import sys
import tarfile
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import IO, Any, Union

import numpy as np
import torch

from .pickle_vm import PolicyUnpickler, scan_globals
from .unpickle_limits import (
    MAX_STREAM_NESTING,
    AllocationBudget,
    KeyHashCosts,
    LoadLimitError,
    UnsafePickleError,
    charge_plain_args,
    require_plain,
)

__all__ = [
    "MAX_EXPANDED_OBJECTS",
    "MAX_MODULE_VISITS",
    "LoadLimitError",
    "PickledObject",
    "UnsafePickleError",
    "expanded_size",
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

MAX_EXPANDED_OBJECTS = 2_000_000
"""Most objects a walk of a loaded file may visit (see :func:`expanded_size`; files larger than 32 MB may
expand to one per 16 bytes). An official EpiGRAF snapshot expands to about 220 thousand."""

MAX_MODULE_VISITS = 100_000
"""Most module records :meth:`PickledObject.named_tensors` walks (official generators have a few hundred)."""

_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80
_SHORT.maxlevel = 3


def _short(value: Any) -> str:
    """A bounded repr of file data for messages (plain repr of shared nested containers can be exponential)."""
    return _SHORT.repr(value)


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
        # Keys are the file's data: shown through a bounded repr (a key of nested shared tuples could be huge).
        keys = sorted(k if isinstance(k, str) else _short(k) for k in st)
        shown = f"state keys={_short(keys)}" if st else f"state={type(self.state).__name__}"
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
        Raises :class:`LoadLimitError` when the tree expands to more than :data:`MAX_MODULE_VISITS` modules
        (a file can share one submodule under many names, at every level).
        """
        out: dict[str, torch.Tensor] = {}
        self._collect(prefix, out, include_non_persistent, set(), [MAX_MODULE_VISITS])
        return out

    def _collect(self, prefix: str, out: dict, include_np: bool, path: set[int], visits_left: list[int]) -> None:
        if id(self) in path:  # a module reachable from itself: state_dict would recurse forever
            return
        visits_left[0] -= 1
        if visits_left[0] < 0:
            raise LoadLimitError(f"the module tree of {self.qualname} expands to more than {MAX_MODULE_VISITS} "
                                 "modules (submodules shared under many names)")
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
                child._collect(f"{prefix}{name}.", out, include_np, path, visits_left)


def _pickled_object_from_fields(qualname, args, state, kwargs, listitems, dictitems, extra) -> PickledObject:
    return PickledObject(qualname, args, state, kwargs, listitems, dictitems, extra)



# ---------------------------------------------------------------------------------------------------
# Shared markers and wrapped functions: immutable, so no pickle can change them for a later load
# ---------------------------------------------------------------------------------------------------
class _Frozen:
    """Base of the objects the allow-list hands out to every load: no ``__dict__``, and no attribute or
    pickle-state write after construction (BUILD would otherwise carry one file's state into the next)."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self!r} is shared by every load and cannot be changed")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{self!r} is shared by every load and cannot be changed")

    def __setstate__(self, state: Any) -> None:
        raise UnsafePickleError([repr(self)], None, f"it writes pickled state into {self!r}, an object every load shares")

    def __copy__(self) -> _Frozen:
        return self

    def __deepcopy__(self, memo: dict) -> _Frozen:
        return self

    def __reduce__(self) -> tuple:
        raise TypeError(f"{self!r} belongs to the restricted unpickler and is not picklable")


class _StorageType(_Frozen):
    """Inert marker for a pickled storage class (torch.FloatStorage, torch.UntypedStorage, ...)."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: torch.dtype) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dtype", dtype)

    def __repr__(self) -> str:
        return f"<storage type {self.name}>"


class _Marker(_Frozen):
    """Inert stand-in for a class used only as a tag (tensor types)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "name", name)

    def __repr__(self) -> str:
        return f"<marker {self.name}>"


class _Callable(_Frozen):
    """One allowed function of one load: the global's name and our safe implementation, bound to the load."""

    __slots__ = ("name", "fn")

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "fn", fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<allowed function {self.name}>"


@dataclass
class _Storage:
    """A loaded storage: shared untyped bytes, the element dtype, and a byte offset for legacy views."""

    untyped: torch.UntypedStorage
    dtype: torch.dtype
    byte_offset: int = 0


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


def _record_key(value: Any, what: str) -> str:
    """A storage/record key as text; only str, bytes or int keys are accepted (anything else is not a key
    torch writes, and str() of it could be arbitrarily expensive)."""
    if type(value) not in (str, bytes, int):
        raise pickle.UnpicklingError(f"{what} must be a string or an int, got {type(value).__name__}")
    return str(_ascii(value))


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


def _check_shape(values: Any, what: str) -> tuple[tuple[int, ...], int]:
    """(shape, element count) of a shape from the file; sizes must be non-negative ints."""
    shape = _check_ints(values, what)
    if any(s < 0 for s in shape):
        raise pickle.UnpicklingError(f"{what} {_short(shape)} has a negative size")
    return shape, math.prod(shape)


# ---------------------------------------------------------------------------------------------------
# Safe replacements for the allowed torch / numpy / builtins callables. Each takes the load's context
# first (bound per load with functools.partial), for its budget and its own objects.
# ---------------------------------------------------------------------------------------------------
def _tensor_on(ctx: _Context, storage: Any, offset: Any, size: Any, stride: Any,
               dtype: torch.dtype | None = None) -> torch.Tensor:
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError(f"tensor rebuilt from a non-storage object ({type(storage).__name__})")
    dtype = storage.dtype if dtype is None else dtype
    if not isinstance(dtype, torch.dtype):
        raise pickle.UnpicklingError("tensor dtype must be a torch.dtype")
    offset = _check_int(offset, "storage offset")
    (size, numel), stride = _check_shape(size, "tensor size"), _check_ints(stride, "stride")
    if storage.byte_offset % dtype.itemsize:
        raise pickle.UnpicklingError("storage view offset is not aligned to the tensor dtype")
    # A view (stride 0) can be far larger than its storage; whoever copies it would allocate all of it.
    ctx.budget.charge("tensors", numel * dtype.itemsize, f"a tensor of size {_short(size)}")
    # set_ bounds-checks size/stride/offset against the storage, so a corrupt pickle cannot read out of bounds.
    t = torch.empty((0,), dtype=dtype, device=storage.untyped.device)
    return t.set_(storage.untyped, storage.byte_offset // dtype.itemsize + offset, size, stride)


def _finish_tensor(t: torch.Tensor, requires_grad: Any, metadata: Any) -> torch.Tensor:
    if metadata:
        # Only the conj/neg view bits exist (torch._utils.get_tensor_metadata); anything else is refused.
        if not isinstance(metadata, dict) or not set(metadata) <= {"conj", "neg"}:
            raise pickle.UnpicklingError(f"unsupported tensor metadata {_short(metadata)}")
        if metadata.get("conj"):
            t = t.conj()
        if metadata.get("neg"):
            t = t._neg_view()
    if requires_grad and (t.is_floating_point() or t.is_complex()):
        t.requires_grad_(True)
    return t


def _rebuild_tensor(ctx: _Context, storage: Any, storage_offset: Any, size: Any, stride: Any) -> torch.Tensor:
    return _tensor_on(ctx, storage, storage_offset, size, stride)


def _rebuild_tensor_v2(ctx: _Context, storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any,
                       backward_hooks: Any, metadata: Any = None) -> torch.Tensor:
    # backward_hooks are dropped: torch never serialises real hooks and we would not run them anyway.
    return _finish_tensor(_tensor_on(ctx, storage, storage_offset, size, stride), requires_grad, metadata)


def _rebuild_tensor_v3(ctx: _Context, storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any,
                       backward_hooks: Any, dtype: Any, metadata: Any = None) -> torch.Tensor:
    return _finish_tensor(_tensor_on(ctx, storage, storage_offset, size, stride, dtype), requires_grad, metadata)


def _as_parameter(data: Any, requires_grad: Any) -> torch.nn.Parameter:
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError(f"parameter data must be a tensor, got {type(data).__name__}")
    grad = bool(requires_grad) and (data.is_floating_point() or data.is_complex())
    return torch.nn.Parameter(data.detach(), requires_grad=grad)


def _rebuild_parameter(ctx: _Context, data: Any, requires_grad: Any, backward_hooks: Any) -> torch.nn.Parameter:
    return _as_parameter(data, requires_grad)


def _rebuild_parameter_with_state(ctx: _Context, data: Any, requires_grad: Any, backward_hooks: Any,
                                  state: Any) -> torch.nn.Parameter:
    # Python attributes set on the Parameter are dropped: setattr with pickled names is not plain data.
    return _as_parameter(data, requires_grad)


_TENSOR_REBUILDS = ("torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3",
                    "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state")


def _rebuild_from_type_v2(ctx: _Context, func: Any, new_type: Any, args: Any, state: Any) -> torch.Tensor:
    """torch._tensor._rebuild_from_type_v2, limited to plain tensors/Parameters built by this load's functions."""
    if not (isinstance(func, _Callable) and func.name in _TENSOR_REBUILDS and ctx.callables.get(func.name) is func
            and type(args) is tuple):
        raise pickle.UnpicklingError("_rebuild_from_type_v2 with an unsupported rebuild function")
    t = func(*args)
    if new_type is _PARAMETER_MARKER and not isinstance(t, torch.nn.Parameter):
        return _as_parameter(t, t.requires_grad)
    if new_type not in (_TENSOR_MARKER, _PARAMETER_MARKER):
        raise pickle.UnpicklingError("_rebuild_from_type_v2 with a tensor subclass that is not allowed")
    return t


def _codecs_encode(ctx: _Context, text: Any, encoding: Any = "utf-8") -> bytes:
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


def _np_dtype(ctx: _Context, spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    """numpy.dtype(spec, align, copy) as numpy pickles it, always as a fresh copy: the builtin dtypes are
    process-wide singletons, and the BUILD that follows writes state into the dtype."""
    if type(spec) is not str:
        raise pickle.UnpicklingError(f"numpy.dtype is only allowed with a type string, got {type(spec).__name__}")
    dtype = np.dtype(spec, bool(align), True)
    ctx.fresh_dtypes[id(dtype)] = dtype
    return dtype


def _np_reconstruct(ctx: _Context, subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    # Plain ndarrays only: a subclass could bring its own __setstate__.
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("numpy _reconstruct is only allowed for numpy.ndarray")
    if not isinstance(dtype, (bytes, str, np.dtype)):
        raise pickle.UnpicklingError(f"numpy _reconstruct needs a dtype, got {type(dtype).__name__}")
    shape, numel = _check_shape(shape, "numpy array shape")
    dtype = np.dtype(dtype.decode("latin1") if isinstance(dtype, bytes) else dtype)
    ctx.budget.charge("named", numel * dtype.itemsize, f"a numpy array of shape {_short(shape)}")
    return _numpy_multiarray()._reconstruct(np.ndarray, shape, dtype)


def _np_scalar(ctx: _Context, dtype: Any, *args: Any) -> Any:
    if not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError("numpy scalar needs a numpy dtype")
    ctx.budget.charge("named", dtype.itemsize, f"a numpy scalar of dtype {_short(dtype)}")
    return _numpy_multiarray().scalar(dtype, *args)


def _np_frombuffer(ctx: _Context, buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """numpy's protocol-5 array reconstructor (numpy._core.numeric._frombuffer): a view, no allocation."""
    if not isinstance(buf, (bytes, bytearray, memoryview)) or not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError("numpy _frombuffer needs a bytes-like buffer and a numpy dtype")
    return np.frombuffer(buf, dtype=dtype).reshape(_check_shape(shape, "numpy array shape")[0], order=order)


def _check_ndarray_state(ctx: _Context, state: Any) -> None:
    """ndarray.__setstate__ allocates the whole shape before it looks at the data: the data must be there."""
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise pickle.UnpicklingError("numpy array state must be (version,) shape, dtype, is_fortran, data")
    shape, dtype, _fortran, raw = state[-4:]
    shape, numel = _check_shape(shape, "numpy array shape")
    if not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError("numpy array state needs a numpy dtype")
    if dtype.hasobject:
        ok = type(raw) is list and len(raw) == numel
    else:
        ok = isinstance(raw, (bytes, bytearray, str)) and len(raw) == numel * dtype.itemsize
    if not ok:
        raise pickle.UnpicklingError(f"numpy array state: the data does not match shape {_short(shape)} of {dtype}")
    if dtype.itemsize == 0:  # a zero-size dtype carries no data however many elements it names
        ctx.budget.charge("named", numel, f"a numpy array of shape {_short(shape)}")


def _copyreg_reconstructor(ctx: _Context, cls: Any, base: Any, state: Any) -> Any:
    """copyreg._reconstructor (protocol 0/1 objects), limited to this load's stand-in classes."""
    qualname = ctx.stand_in_name(cls)
    if qualname is None:
        raise pickle.UnpicklingError("copyreg._reconstructor is only allowed for stand-in classes")
    return PickledObject(qualname, () if base is object or state is None else (state,))


def _reconstruct_persistent(ctx: _Context, meta: Any) -> PickledObject:
    """EG3D persistent class instance -> PickledObject(class_name, state=instance __dict__); source not run."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str):
        raise pickle.UnpicklingError("unsupported torch_utils.persistence record")
    extra = {"persistent_version": meta.get("version"), "module_src": meta.get("module_src")}
    return PickledObject(meta["class_name"], (), state=meta.get("state"), extra=extra)


def _load_from_bytes(ctx: _Context, data: Any) -> Any:
    """torch.storage._load_from_bytes: the bytes are a nested torch.save stream (legacy or zip)."""
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("_load_from_bytes expects bytes")
    if ctx.stream_depth >= MAX_STREAM_NESTING:
        raise LoadLimitError(f"it nests torch.save streams more than {MAX_STREAM_NESTING} deep", ctx.source)
    ctx.stream_depth += 1
    try:
        return _load_torch_bytes(bytes(data), ctx)
    finally:
        ctx.stream_depth -= 1


def _loader_functions() -> dict[str, Callable[..., Any]]:
    """Global name -> our implementation (taking the load's context first) for every allowed function."""
    fns: dict[str, Callable[..., Any]] = {
        "torch._utils._rebuild_tensor": _rebuild_tensor,
        "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
        "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
        "torch._utils._rebuild_parameter": _rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": _rebuild_parameter_with_state,
        "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
        "torch.storage._load_from_bytes": _load_from_bytes,
        "copyreg._reconstructor": _copyreg_reconstructor,
        "_codecs.encode": _codecs_encode,
        "numpy.dtype": _np_dtype,
        _PERSISTENT_RECONSTRUCT: _reconstruct_persistent,  # resolvable only when allowed as a stand-in
    }
    for mod in ("numpy.core", "numpy._core"):
        fns[f"{mod}.multiarray._reconstruct"] = _np_reconstruct
        fns[f"{mod}.multiarray.scalar"] = _np_scalar
        fns[f"{mod}.numeric._frombuffer"] = _np_frombuffer
    return fns


_LOADER_FUNCTIONS = _loader_functions()

# Builtin classes a pickle may call, with plain-data arguments only. Scalars take scalars (str() of a
# container of shared containers would expand it); bytes/bytearray count an int argument as a size.
_SCALAR_TYPES = (type(None), bool, int, float, complex, str, bytes, bytearray)
_SCALAR_CLASSES = frozenset({int, float, complex, str, bool, slice, range, object, torch.device})
_SIZED_BY_INT = frozenset({bytes, bytearray})
_KEYED_CLASSES = frozenset({set, frozenset, dict, OrderedDict})
_BUILTIN_CLASSES: dict[type, str] = {
    **{getattr(builtins, n): f"builtins.{n}" for n in ("set", "frozenset", "list", "dict", "tuple", "slice", "complex",
                                                       "range", "bytearray", "bytes", "int", "float", "str", "bool",
                                                       "object")},
    torch.device: "torch.device",
    torch.Size: "torch.Size",
    OrderedDict: "collections.OrderedDict",
}


def _shared_globals() -> dict[str, Any]:
    """The immutable objects every load may share: builtin classes, markers, storage types, torch dtypes."""
    g: dict[str, Any] = {name: cls for cls, name in _BUILTIN_CLASSES.items()}
    g.update({
        "torch._tensor.Tensor": _TENSOR_MARKER,
        "torch.tensor.Tensor": _TENSOR_MARKER,  # pre-1.8 module name of torch.Tensor
        "torch.Tensor": _TENSOR_MARKER,
        "torch.nn.parameter.Parameter": _PARAMETER_MARKER,
        "numpy.ndarray": np.ndarray,  # a tag for numpy's _reconstruct; calling it is refused
    })
    for name, dtype in _STORAGE_DTYPES.items():
        storage_type = _StorageType(f"torch.{name}", dtype)
        for mod in ("torch", "torch.cuda"):  # legacy files from GPU runs name torch.cuda.*Storage
            g[f"{mod}.{name}"] = storage_type
    untyped = _StorageType("torch.UntypedStorage", torch.uint8)
    for full in ("torch.UntypedStorage", "torch.storage.UntypedStorage", "torch._UntypedStorage",
                 "torch.storage._UntypedStorage"):
        g[full] = untyped
    # dtypes/layouts/memory formats pickle as module attributes, e.g. the global 'torch.float32'.
    for name in dir(torch):
        value = getattr(torch, name, None)
        if isinstance(value, (torch.dtype, torch.layout, torch.memory_format)):
            g[f"torch.{name}"] = value
    return g


_SHARED_GLOBALS = _shared_globals()
_MODULE_ALIASES = {"__builtin__": "builtins", "copy_reg": "copyreg"}  # Python 2 names


def _new_stand_in_type(qualname: str) -> type:
    """A class object for ``qualname`` whose construction yields a PickledObject.

    It has to be a real type because NEWOBJ takes a class; ``__new__`` returns a PickledObject, so no
    ``__init__`` ever runs. Each load makes its own (a class is mutable; the next load must not see it).
    """
    def __new__(cls: type, *args: Any, **kwargs: Any) -> PickledObject:
        return PickledObject(qualname, args, kwargs=kwargs)

    return type(qualname.rpartition(".")[2] or qualname, (), {"__new__": __new__, "__module__": __name__})


def _new_plain_dict_type(qualname: str) -> type:
    def __new__(cls: type, *args: Any, **kwargs: Any) -> dict:
        return dict(*args, **kwargs)

    return type(qualname.rpartition(".")[2], (), {"__new__": __new__, "__module__": __name__})


def _describe(obj: Any, stand_in_name: str | None = None) -> str:
    """What a pickle tried to call or write into, for error messages (``stand_in_name``: the official name
    of one of the load's stand-in classes)."""
    if stand_in_name is not None:
        return f"{stand_in_name} (a stand-in class)"
    if isinstance(obj, PickledObject):
        return f"the result of {obj.qualname}({', '.join(_short(a) for a in obj.args[:3])})"
    if isinstance(obj, (_Callable, _Marker, _StorageType)):
        return obj.name
    if isinstance(obj, type):
        name = _BUILTIN_CLASSES.get(obj)
        return name or f"{obj.__module__}.{obj.__qualname__}"
    return f"a {type(obj).__name__} object"


# ---------------------------------------------------------------------------------------------------
# The per-file policy: what one load may reference, call and write into
# ---------------------------------------------------------------------------------------------------
_STATE_TARGETS: dict[str, tuple[type, ...]] = {
    "BUILD": (PickledObject, OrderedDict, np.ndarray),
    "APPEND": (list, PickledObject),
    "APPENDS": (list, PickledObject),
    "SETITEM": (dict, OrderedDict, PickledObject),
    "SETITEMS": (dict, OrderedDict, PickledObject),
    "ADDITEMS": (set,),
}


class _Context:
    """Options and state shared by every pickle read while loading one file (including nested storage
    blobs): the allow-list resolution, the per-load objects it hands out, the allocation budget, and the
    :class:`~aware3d.io.pickle_vm.UnpicklePolicy` methods the unpickler asks before calls and writes."""

    def __init__(self, stand_ins: Iterable[str], map_location: MapLocation, source: str, file_bytes: int) -> None:
        if isinstance(stand_ins, str):  # a lone string would otherwise be split into characters
            stand_ins = (stand_ins,)
        names = [s for s in stand_ins if s]
        self.exact = frozenset(s for s in names if not s.endswith("."))
        self.prefixes = tuple(s for s in names if s.endswith(".")) + ("torch.nn.modules.",)
        self.map_location = map_location
        self.source = source
        self.budget = AllocationBudget(file_bytes, source)
        self.key_costs = KeyHashCosts(source)
        self.allow_tensor_types = False  # only the pre-0.4 tar format names torch.FloatTensor & co.
        self.stream_depth = 0
        self.fresh_dtypes: dict[int, np.dtype] = {}  # dtypes this load made (kept alive so ids stay unique)
        self.callables = {name: _Callable(name, partial(fn, self)) for name, fn in _LOADER_FUNCTIONS.items()}
        self._stand_in_types: dict[str, type] = {}
        self._stand_in_names: dict[type, str] = {}

    def is_stand_in(self, full: str) -> bool:
        return full in self.exact or full.startswith(self.prefixes)

    def stand_in_name(self, cls: Any) -> str | None:
        """The qualified name of one of this load's stand-in classes (None for anything else)."""
        return self._stand_in_names.get(cls) if isinstance(cls, type) else None

    def _stand_in(self, full: str) -> type:
        cls = self._stand_in_types.get(full)
        if cls is None:
            cls = (_new_plain_dict_type if full in _PLAIN_DICT_CLASSES else _new_stand_in_type)(full)
            self._stand_in_types[full] = cls
            self._stand_in_names[cls] = full
        return cls

    def resolve(self, module: str, name: str) -> tuple[str, Any]:
        """(normalised name, safe object); the object is None when the global is refused."""
        module = _MODULE_ALIASES.get(module, module)
        full = f"{module}.{name}"
        if full in _SHARED_GLOBALS:
            return full, _SHARED_GLOBALS[full]
        if full in self.callables and full != _PERSISTENT_RECONSTRUCT:
            return full, self.callables[full]
        if self.allow_tensor_types and module in ("torch", "torch.cuda") and name.endswith("Tensor"):
            return full, _Marker(full)  # pre-0.4 tar files name torch.FloatTensor & co. as tags
        if self.is_stand_in(full):
            return full, self.callables[full] if full == _PERSISTENT_RECONSTRUCT else self._stand_in(full)
        return full, None

    # -- UnpicklePolicy ------------------------------------------------------------------------------
    def find(self, module: str, name: str) -> Any:
        full, obj = self.resolve(module, name)
        if obj is None:
            raise UnsafePickleError([full], self.source)
        return obj

    def call(self, callee: Any, args: tuple, kwargs: dict, opcode: str) -> Any:
        if isinstance(callee, _Callable) and self.callables.get(callee.name) is callee:
            return callee(*args, **kwargs)
        if self.stand_in_name(callee) is not None:
            return callee(*args, **kwargs)
        if isinstance(callee, type) and callee in _BUILTIN_CLASSES:
            self._check_builtin_call(callee, args, kwargs)
            return callee.__new__(callee, *args, **kwargs) if opcode.startswith("NEWOBJ") else callee(*args, **kwargs)
        what = _describe(callee, self.stand_in_name(callee))
        raise UnsafePickleError([what], self.source, f"it calls {what} ({opcode}), which is not a function or class "
                                                     "the loader allows (only allow-listed globals may be called)")

    def _check_builtin_call(self, cls: type, args: tuple, kwargs: dict) -> None:
        name = _BUILTIN_CLASSES[cls]
        require_plain(name, args, kwargs, self.source)
        if cls in _SCALAR_CLASSES and any(type(v) not in _SCALAR_TYPES for v in (*args, *kwargs.values())):
            raise UnsafePickleError([name], self.source, f"it calls {name} with a container argument")
        charge_plain_args(name, args, self.budget, sized_by_int=cls in _SIZED_BY_INT)
        if cls in _KEYED_CLASSES:
            for arg in args:
                if type(arg) in (list, tuple):
                    keys = arg if cls in (set, frozenset) else [p[0] for p in arg if type(p) in (tuple, list) and p]
                    self.key_costs.check(keys)

    def check_state_write(self, target: Any, opcode: str) -> None:
        if type(target) in _STATE_TARGETS[opcode]:
            return
        if opcode == "BUILD" and self.fresh_dtypes.get(id(target)) is target:
            return
        what = _describe(target, self.stand_in_name(target))
        raise UnsafePickleError([what], self.source,
                                f"it writes pickled state ({opcode}) into {what}; only objects the file itself just "
                                "built may take state (a shared object would carry it into every later load)")

    def check_build_state(self, target: Any, state: Any) -> None:
        if type(target) is np.ndarray:
            _check_ndarray_state(self, state)

    def check_keys(self, keys: Iterable[Any]) -> None:
        self.key_costs.check(keys)


def _restricted_load(stream: IO[bytes], ctx: _Context, persistent: Callable[[Any], Any] | None = None) -> Any:
    """Scan one pickle at the stream's position, refuse it if any global is disallowed, else unpickle it."""
    start = stream.tell()
    refused = [full for full, obj in (ctx.resolve(m, n) for m, n in scan_globals(stream, ctx.source)) if obj is None]
    if refused:
        raise UnsafePickleError(refused, ctx.source)
    stream.seek(start)
    return PolicyUnpickler(stream, ctx, persistent).load()


# ---------------------------------------------------------------------------------------------------
# Containers
# ---------------------------------------------------------------------------------------------------
def _storage_dtype(storage_type: Any) -> torch.dtype:
    if not isinstance(storage_type, _StorageType):
        raise pickle.UnpicklingError(f"persistent id names a non-storage type ({type(storage_type).__name__})")
    return storage_type.dtype


def _read_zip_member(zf: zipfile.ZipFile, name: str, nbytes: int, ctx: _Context) -> bytes:
    """The first ``nbytes`` of member ``name``, refused before inflating anything when its declared size
    is smaller (truncated) or when ``nbytes`` would overflow the load's budget."""
    info = zf.getinfo(name)
    if info.file_size < nbytes:
        raise pickle.UnpicklingError(f"{ctx.source}: zip member {name} holds {info.file_size} bytes, "
                                     f"its record declares {nbytes}")
    ctx.budget.charge("inflated", nbytes, f"zip member {name}")
    with zf.open(info) as fh:
        raw = fh.read(nbytes)
    if len(raw) != nbytes:
        raise pickle.UnpicklingError(f"{ctx.source}: zip member {name} is truncated")
    return raw


def _load_zip(data: bytes, ctx: _Context) -> Any:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") <= 1]
        if len(pkl) != 1:
            raise pickle.UnpicklingError(f"{ctx.source}: zip archive with {len(pkl)} data.pkl records; a torch.save "
                                         "file has exactly one")
        prefix = pkl[0][: -len("data.pkl")]
        if f"{prefix}constants.pkl" in names:
            raise pickle.UnpicklingError(f"{ctx.source} is a TorchScript archive, not a torch.save file")
        order_name = f"{prefix}byteorder"
        # Files written before the byteorder record existed come from little-endian machines.
        file_little = True
        if order_name in names:
            file_little = _read_zip_member(zf, order_name, min(zf.getinfo(order_name).file_size, 16), ctx) != b"big"
        loaded: dict[str, _Storage] = {}

        def persistent_load(pid: Any) -> _Storage:
            if not isinstance(pid, tuple) or len(pid) < 5 or _ascii(pid[0]) != "storage":
                raise pickle.UnpicklingError(f"unsupported persistent id {_short(pid)}")
            storage_type, key, location, numel = pid[1:5]
            dtype = _storage_dtype(storage_type)
            key = _record_key(key, "storage key")
            if key in loaded:
                return loaded[key] if loaded[key].dtype == dtype else _Storage(loaded[key].untyped, dtype)
            nbytes = _check_int(numel, "storage numel") * dtype.itemsize
            record = f"{prefix}data/{key}"
            if record not in names:
                raise pickle.UnpicklingError(f"{ctx.source}: missing storage record {record}")
            raw = _read_zip_member(zf, record, nbytes, ctx)
            if file_little != (sys.byteorder == "little"):
                raw = _byteswap(raw, dtype)
            device = resolve_location(location, ctx.map_location)
            loaded[key] = _Storage(_untyped_from_bytes(raw, device), dtype)
            return loaded[key]

        pickle_bytes = _read_zip_member(zf, pkl[0], zf.getinfo(pkl[0]).file_size, ctx)
        return _restricted_load(io.BytesIO(pickle_bytes), ctx, persistent_load)


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
    claimed = [0]  # bytes all storages claim so far; they must all follow in the stream

    def persistent_load(pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid:
            raise pickle.UnpicklingError(f"unsupported persistent id {_short(pid)}")
        typename = _ascii(pid[0])
        if typename == "module":  # ('module', class, source_file, source): the class (a stand-in)
            return pid[1]
        if typename != "storage" or len(pid) < 6:
            raise pickle.UnpicklingError(f"unsupported persistent id {_short(pid)}")
        storage_type, root_key, location, numel, view_metadata = pid[1:6]
        dtype = _storage_dtype(storage_type)
        root_key = _record_key(root_key, "storage key")
        if root_key not in roots:
            # Raw bytes follow the pickle; allocate now and fill in place afterwards (tensors share it).
            nbytes = _check_int(numel, "storage numel") * dtype.itemsize
            if nbytes < 0 or claimed[0] + nbytes > len(data):  # the bytes must be in the stream
                raise pickle.UnpicklingError(f"{ctx.source}: storage {root_key} claims {nbytes} bytes, more than "
                                             f"the {len(data)}-byte stream holds")
            claimed[0] += nbytes
            device = resolve_location(location, ctx.map_location)
            roots[root_key] = _Storage(torch.UntypedStorage(nbytes, device=device), dtype)
        root = roots[root_key]
        if view_metadata is None:
            return root if root.dtype == dtype else _Storage(root.untyped, dtype)
        if not isinstance(view_metadata, tuple) or len(view_metadata) != 3:
            raise pickle.UnpicklingError(f"{ctx.source}: malformed storage view {_short(view_metadata)}")
        view_key, offset, _view_size = view_metadata
        view_key = _record_key(view_key, "storage view key")
        if view_key not in views:
            views[view_key] = _Storage(root.untyped, dtype, _check_int(offset, "view offset") * dtype.itemsize)
        return views[view_key]

    result = _restricted_load(f, ctx, persistent_load)
    keys = _restricted_load(f, ctx)
    if not isinstance(keys, list):
        raise pickle.UnpicklingError(f"{ctx.source}: malformed storage key list")
    for key in keys:
        _fill_legacy_storage(f, roots.get(_record_key(key, "storage key")), key, order, ctx)
    return result


def _fill_legacy_storage(f: io.BytesIO, storage: _Storage | None, key: Any, order: str, ctx: _Context) -> None:
    """Copy one raw storage record of a legacy stream (8-byte element count + bytes) into its storage."""
    if storage is None:
        raise pickle.UnpicklingError(f"{ctx.source}: storage {_short(key)} listed but never referenced")
    header = f.read(8)
    if len(header) != 8:
        raise pickle.UnpicklingError(f"{ctx.source}: truncated storage data")
    nbytes = int.from_bytes(header, order, signed=True) * storage.dtype.itemsize
    if nbytes != storage.untyped.nbytes():
        raise pickle.UnpicklingError(f"{ctx.source}: storage {_short(key)} size does not match its record")
    raw = f.read(nbytes)
    if len(raw) != nbytes:
        raise pickle.UnpicklingError(f"{ctx.source}: truncated storage data")
    if (order == "little") != (sys.byteorder == "little"):
        raw = _byteswap(raw, storage.dtype)
    if nbytes:
        storage.untyped.copy_(_untyped_from_bytes(raw, torch.device("cpu")))


def _int_key(key: Any) -> Any:
    key = _ascii(key)
    if type(key) not in (str, int):
        raise pickle.UnpicklingError(f"legacy tar key must be a string or an int, got {type(key).__name__}")
    try:
        return int(key)
    except ValueError:
        return key


def _tar_member(tar: tarfile.TarFile, name: str, data_len: int, ctx: _Context) -> io.BytesIO:
    """A regular member's bytes; sparse members (whose holes read as zeros of any declared size) and
    members larger than the archive are refused before reading."""
    try:
        info = tar.getmember(name)
    except KeyError:
        raise pickle.UnpicklingError(f"{ctx.source}: tar member {name} missing") from None
    if not info.isfile() or info.issparse() or info.size > data_len:
        raise pickle.UnpicklingError(f"{ctx.source}: tar member {name} is not a plain file of at most {data_len} bytes")
    fh = tar.extractfile(info)
    if fh is None:
        raise pickle.UnpicklingError(f"{ctx.source}: tar member {name} missing")
    return io.BytesIO(fh.read())


def _read_exact(f: io.BytesIO, n: int, ctx: _Context) -> bytes:
    raw = f.read(n)
    if len(raw) != n:
        raise pickle.UnpicklingError(f"{ctx.source}: truncated legacy tar member")
    return raw


def _legacy_tar_storages(f: io.BytesIO, ctx: _Context, objs: dict[Any, Any]) -> None:
    for _ in range(_check_int(_restricted_load(f, ctx), "storage count")):
        key, location, storage_type = _restricted_load(f, ctx)
        dtype = _storage_dtype(storage_type)
        (numel,) = struct.unpack("<q", _read_exact(f, 8, ctx))
        raw = _read_exact(f, numel * dtype.itemsize, ctx)
        device = resolve_location(location, ctx.map_location)
        objs[_int_key(key)] = _Storage(_untyped_from_bytes(raw, device), dtype)
    for target, root_key, offset, _numel in _restricted_load(f, ctx):
        root = objs[_int_key(root_key)]
        objs[_int_key(target)] = _Storage(root.untyped, root.dtype,
                                          root.byte_offset + _check_int(offset, "view offset") * root.dtype.itemsize)


def _legacy_tar_tensors(f: io.BytesIO, ctx: _Context, objs: dict[Any, Any]) -> None:
    ctx.allow_tensor_types = True  # records name the tensor class (torch.FloatTensor), used as a tag only
    try:
        count = _check_int(_restricted_load(f, ctx), "tensor count")
        for _ in range(count):
            key, storage_id, _tensor_type = _restricted_load(f, ctx)
            (ndim,) = struct.unpack("<i", _read_exact(f, 4, ctx))
            _read_exact(f, 4, ctx)  # ndim was once written as 8 bytes
            size = struct.unpack(f"<{ndim}q", _read_exact(f, 8 * ndim, ctx))
            stride = struct.unpack(f"<{ndim}q", _read_exact(f, 8 * ndim, ctx))
            (offset,) = struct.unpack("<q", _read_exact(f, 8, ctx))
            objs[_int_key(key)] = _tensor_on(ctx, objs[_int_key(storage_id)], offset, size, stride)
    finally:
        ctx.allow_tensor_types = False


def _load_legacy_tar(data: bytes, ctx: _Context) -> Any:
    """The pre-0.4 tar container: 'storages', 'tensors' and 'pickle' members (raw data little-endian)."""
    objs: dict[Any, Any] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        _legacy_tar_storages(_tar_member(tar, "storages", len(data), ctx), ctx, objs)
        _legacy_tar_tensors(_tar_member(tar, "tensors", len(data), ctx), ctx, objs)

        def persistent_load(pid: Any) -> Any:
            if isinstance(pid, tuple):  # (class, source_file, source) of a module container
                return pid[0]
            key = _int_key(pid)
            if key not in objs:
                raise pickle.UnpicklingError(f"{ctx.source}: unknown persistent id {_short(pid)}")
            return objs[key]

        return _restricted_load(_tar_member(tar, "pickle", len(data), ctx), ctx, persistent_load)


# Errors a malformed container raises outside the unpickler (bad zip/tar structure, records of the wrong
# shape, sizes torch refuses): reported as an UnpicklingError that names the file.
_MALFORMED = (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, struct.error, EOFError, ValueError,
              TypeError, KeyError, IndexError, RuntimeError, OverflowError, NotImplementedError)


@contextlib.contextmanager
def _malformed_as_unpickling_error(source: str) -> Iterator[None]:
    """Report a malformed file as an UnpicklingError that names it (refusals name it already)."""
    try:
        yield
    except UnsafePickleError:
        raise
    except pickle.UnpicklingError as exc:
        if source in str(exc):
            raise
        raise pickle.UnpicklingError(f"{source}: {exc}") from None
    except _MALFORMED as exc:
        raise pickle.UnpicklingError(f"{source}: malformed checkpoint ({type(exc).__name__}: {exc})") from None


def _load_torch_bytes(data: bytes, ctx: _Context) -> Any:
    with _malformed_as_unpickling_error(ctx.source):
        if data[:4] == b"PK\x03\x04":
            return _load_zip(data, ctx)
        if data[257:262] == b"ustar":  # POSIX/PAX tar header magic
            return _load_legacy_tar(data, ctx)
        return _load_legacy_stream(data, ctx)


def _children(obj: Any) -> Any:
    """What a walk of a loaded object descends into (None for a leaf: tensors, strings, numbers, ...)."""
    if type(obj) is PickledObject:
        return (obj.args, obj.state, obj.kwargs, obj.listitems, obj.dictitems)
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return obj
    return None


def expanded_size(root: Any, limit: int) -> int:
    """How many objects a recursive walk of ``root`` visits when it expands shared objects at every
    reference but stops at objects already on its path (as ``named_tensors``, ``json.dumps`` or a config
    converter do), computed in time linear in the number of distinct objects; counting stops past ``limit``.

    Shared objects make that count exponential in a pickle's size (``l2 = [l1, l1]``, ``l3 = [l2, l2]``...).
    """
    kids = _children(root)
    if kids is None:
        return 1
    done: dict[int, int] = {}
    on_path = {id(root)}
    frames: list[tuple[Any, Iterator[Any], list[int]]] = [(root, iter(kids), [1])]
    while frames:
        obj, items, count = frames[-1]
        for child in items:
            if id(child) in done:
                count[0] += done[id(child)]
            elif id(child) in on_path or (grandkids := _children(child)) is None:
                count[0] += 1
            else:
                on_path.add(id(child))
                frames.append((child, iter(grandkids), [1]))
                break
            if count[0] > limit:
                return count[0]
        else:
            frames.pop()
            on_path.discard(id(obj))
            done[id(obj)] = count[0]
            if frames:
                frames[-1][2][0] += count[0]
    return done[id(root)]


def _checked_expansion(result: Any, ctx: _Context) -> Any:
    limit = max(MAX_EXPANDED_OBJECTS, ctx.budget.file_bytes // 16)
    if expanded_size(result, limit) > limit:
        raise LoadLimitError(f"its objects expand to more than {limit:,} when walked (objects shared under many "
                             "names, nested into each other)", ctx.source)
    return result


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
        UnsafePickleError: the file references globals outside the allow-list and ``stand_ins``, or tries
            to call or write into something it may not (:class:`LoadLimitError`: asks for too much memory).
        pickle.UnpicklingError: the file is truncated or malformed.
    """
    data, source = _read_all(path)
    ctx = _Context(stand_ins, map_location, source, len(data))
    return _checked_expansion(_load_torch_bytes(data, ctx), ctx)


def load_pickle_file(path: PathOrFile, stand_ins: Iterable[str] = (), map_location: MapLocation = "cpu") -> Any:
    """Load a plain ``pickle.dump`` file (e.g. an EG3D snapshot) with the restricted unpickler.

    Tensors inside are pickled by torch as ``torch.storage._load_from_bytes(bytes)``; those bytes are a
    nested torch.save stream and are decoded by the same restricted loader. EG3D persistent classes
    (``torch_utils.persistence._reconstruct_persistent_obj``, allowed when 'torch_utils.' is a stand-in)
    become ``PickledObject(class_name, state=instance __dict__)`` with the embedded source only stored in
    ``extra['module_src']``; ``dnnlib.util.EasyDict`` (when allowed) becomes a plain dict.

    Raises:
        UnsafePickleError: as :func:`load_torch_file`.
        pickle.UnpicklingError: the file is truncated or malformed.
    """
    data, source = _read_all(path)
    ctx = _Context(stand_ins, map_location, source, len(data))
    with _malformed_as_unpickling_error(source):
        return _checked_expansion(_restricted_load(io.BytesIO(data), ctx), ctx)
