"""A corpus of hostile checkpoint files, built here, pushed through every way in: ``aware3d.load``, the convert
tool's import path and the restricted unpickler itself.

Every file must be refused with a clear error that names it (an ``UnpicklingError``, usually the
``UnsafePickleError`` that says what was refused, or the importer's own ``ValueError``), within a time and
peak-memory bound, without its code running (a marker file it would create never appears) and without
changing what a later load sees: after each file, good files load to exactly their weights
(``test_hostile_file_is_refused_and_poisons_nothing``). The code payloads are checked to be live: plain
``pickle`` runs every one of them (``test_code_payloads_fire_under_plain_pickle``).

Pickles are written with a small opcode assembler (below), so each file holds exactly the attack it names.
"""

from __future__ import annotations

import copyreg
import json
import pickle
import re
import struct
import subprocess
import sys
import time
import tracemalloc
import types
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import aware3d
from aware3d.io.checkpoint import save_generator
from aware3d.io.safe_unpickle import PickledObject, UnsafePickleError, load_pickle_file, load_torch_file
from aware3d.models.eg3d.convert import STAND_INS as EG3D_STAND_INS
from aware3d.models.pigan.convert import STAND_INS as PIGAN_STAND_INS
from aware3d.models.registry import build_generator
from aware3d.tools import convert

from .conftest import reference_root

TIME_LIMIT_S = 6.0
MEMORY_LIMIT = 300 * 2**20
"""Peak memory (RSS where the kernel can measure it, else Python allocations) one refused file may cost."""
EXT_CODE = 0xF1  # a copyreg extension code the EXT payload uses (registered only around its own loads)


# ---------------------------------------------------------------------------------------------------
# A tiny pickle assembler: each helper returns the opcodes that push one object
# ---------------------------------------------------------------------------------------------------
def g(module: str, name: str) -> bytes:
    """GLOBAL module.name"""
    return b"c" + f"{module}\n{name}\n".encode()


def u(text: str) -> bytes:
    """BINUNICODE"""
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def raw(data: bytes) -> bytes:
    """BINBYTES"""
    return b"B" + struct.pack("<I", len(data)) + data


def n(value: int) -> bytes:
    """LONG1 (any int up to 255 bytes)"""
    data = value.to_bytes(value.bit_length() // 8 + 1, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data


def t(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def lst(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"l"


def d(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"d"


def call(f: bytes, *args: bytes) -> bytes:
    return f + t(*args) + b"R"


def build(obj: bytes, state: bytes) -> bytes:
    return obj + state + b"b"


def put(i: int) -> bytes:
    return b"r" + struct.pack("<I", i)


def get(i: int) -> bytes:
    return b"j" + struct.pack("<I", i)


NONE, TRUE, FALSE = b"N", b"\x88", b"\x89"


def prog(body: bytes) -> bytes:
    """A complete protocol-4 pickle of the object ``body`` pushes."""
    return b"\x80\x04" + body + b"."


def persid_storage(key: str, numel: int, storage: str = "FloatStorage") -> bytes:
    return t(u("storage"), g("torch", storage), u(key), u("cpu"), n(numel)) + b"Q"


def tensor(storage: bytes, size: tuple[int, ...], stride: tuple[int, ...]) -> bytes:
    return call(g("torch._utils", "_rebuild_tensor_v2"), storage, n(0), t(*map(n, size)), t(*map(n, stride)), FALSE,
                call(g("collections", "OrderedDict")))


# ---------------------------------------------------------------------------------------------------
# Containers: a torch zip written by hand (so members can lie), a legacy torch.save stream
# ---------------------------------------------------------------------------------------------------
def _zip_bytes(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip archive of (name, stored data, method 0/8, CRC-32, uncompressed size) members."""
    out, central = bytearray(), bytearray()
    for name, data, method, crc, size in members:
        fname = name.encode()
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc, len(data), size,
                               len(fname), 0, 0, 0, 0, 0, len(out)) + fname
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc, len(data), size, len(fname), 0)
        out += fname + data
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(out), 0)
    return bytes(out + central + end)


def stored(name: str, data: bytes) -> tuple[str, bytes, int, int, int]:
    return name, data, 0, zlib.crc32(data), len(data)


def deflated_zeros(name: str, nbytes: int) -> tuple[str, bytes, int, int, int]:
    """A member that inflates to ``nbytes`` zeros from a few hundred kB: one compressed 16 MiB block,
    repeated (a full flush resets the compressor, so every block compresses to the same bytes)."""
    chunk = 16 << 20
    assert nbytes % chunk == 0
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = comp.compress(bytes(chunk)) + comp.flush(zlib.Z_FULL_FLUSH)
    repeat = comp.compress(bytes(chunk)) + comp.flush(zlib.Z_FULL_FLUSH)
    data = first + repeat * (nbytes // chunk - 1) + comp.flush()
    crc = 0
    block = bytes(chunk)
    for _ in range(nbytes // chunk):
        crc = zlib.crc32(block, crc)
    return name, data, 8, crc, nbytes


def torch_zip(data_pkl: bytes, *records: tuple[str, bytes, int, int, int]) -> bytes:
    return _zip_bytes([stored("archive/data.pkl", data_pkl), stored("archive/byteorder", b"little"), *records])


def legacy_stream(body: bytes, keys: list[str] = (), raw_records: bytes = b"") -> bytes:
    """A legacy (pre-zip) torch.save stream: magic, protocol, system info, the object, storage keys, raw data."""
    sys_info = d(u("protocol_version"), n(1001), u("little_endian"), TRUE, u("type_sizes"), d())
    return (prog(n(0x1950A86A20F9469CFC6C)) + prog(n(1001)) + prog(sys_info) + prog(body)
            + prog(lst(*map(u, keys))) + raw_records)


# Disguises: the payload rides in a file that the EG3D or pi-GAN importer recognises, so that
# aware3d.load / convert really unpickle it (files no sniffer recognises are refused unread).
def as_eg3d(body: bytes) -> bytes:
    meta = d(u("type"), u("class"), u("version"), n(6), u("module_src"), u(""), u("class_name"),
             u("TriPlaneGenerator"), u("state"), d())
    return prog(d(u("G_ema"), call(g("torch_utils.persistence", "_reconstruct_persistent_obj"), meta),
                  u("payload"), body))


def as_pigan(body: bytes) -> bytes:
    return torch_zip(prog(t(g("generators.generators", "ImplicitGenerator3d"), body)))


# ---------------------------------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------------------------------
@dataclass
class Hostile:
    name: str
    make: Callable[[Path], Path]
    """Writes the file (or folder) under the given folder, returns it."""
    routes: tuple[str, ...]
    """Ways in: 'unpickle' (the restricted unpickler with the importer's stand-ins), 'load' (aware3d.load),
    'convert' (the convert tool)."""
    expect: type[Exception] | None = UnsafePickleError
    """The error every route must raise (None: any clear error; the unpickler route may then load it)."""
    names: tuple[str, ...] = ()
    """Words the message must contain besides the file name."""


def _marker(folder: Path) -> Path:
    return folder / "pwned"


def _cmd(folder: Path) -> str:
    return f"touch {_marker(folder)}"


# Code payloads: body(folder) -> the opcodes of one object whose plain unpickling creates the marker file.
CODE_PAYLOADS: dict[str, Callable[[Path], bytes]] = {
    "os_system": lambda f: call(g("os", "system"), u(_cmd(f))),
    "posix_system": lambda f: call(g("posix", "system"), u(_cmd(f))),
    "subprocess_popen": lambda f: call(g("subprocess", "check_call"), lst(u("touch"), u(str(_marker(f))))),
    "builtins_eval": lambda f: call(g("builtins", "eval"), u(f"open({str(_marker(f))!r}, 'w')")),
    "builtins_exec": lambda f: call(g("builtins", "exec"), u(f"open({str(_marker(f))!r}, 'w')")),
    "py2_builtin_eval": lambda f: call(g("__builtin__", "eval"), u(f"open({str(_marker(f))!r}, 'w')")),
    "getattr_import_chain": lambda f: call(call(g("builtins", "getattr"), call(g("builtins", "__import__"), u("os")),
                                                u("system")), u(_cmd(f))),
    "importlib_getattr": lambda f: call(call(g("builtins", "getattr"), call(g("importlib", "import_module"), u("os")),
                                             u("system")), u(_cmd(f))),
    "functools_partial": lambda f: call(call(g("functools", "partial"), g("os", "system"), u(_cmd(f)))),
    "operator_methodcaller": lambda f: call(call(g("operator", "methodcaller"), u("system"), u(_cmd(f))),
                                            call(g("importlib", "import_module"), u("os"))),
    # STACK_GLOBAL whose names come from the memo, not from the opcode before it
    "stack_global_via_memo": lambda f: (u("os") + put(0) + b"0" + u("system") + put(1) + b"0" + get(0) + get(1)
                                        + b"\x93" + t(u(_cmd(f))) + b"R"),
    "inst_opcode": lambda f: b"(" + u(_cmd(f)) + b"ios\nsystem\n",
    "obj_opcode": lambda f: b"(" + g("os", "system") + u(_cmd(f)) + b"o",
    "copyreg_extension": lambda f: b"\x82" + bytes([EXT_CODE]) + t(u(_cmd(f))) + b"R",
    "nested_load_from_bytes": lambda f: call(g("torch.storage", "_load_from_bytes"),
                                             raw(legacy_stream(call(g("os", "system"), u(_cmd(f)))))),
    "pickle_loads_inside": lambda f: call(g("pickle", "loads"), raw(prog(call(g("os", "system"), u(_cmd(f)))))),
    # a global under an allowed official prefix is an inert stand-in; calling what it returned is refused
    "get_obj_by_name_call": lambda f: call(call(g("dnnlib.util", "get_obj_by_name"), u("os.system")), u(_cmd(f))),
}

# Writes into objects the allow-list hands to every load (each would change later loads under the old loader).
POISON_PAYLOADS: dict[str, bytes] = {
    "build_storage_type_dict": build(g("torch", "FloatStorage"), d(u("dtype"), g("torch", "float16"))),
    "build_storage_type_slots": build(g("torch", "FloatStorage"), t(NONE, d(u("dtype"), g("torch", "float64")))),
    "build_rebuild_defaults": build(g("torch._utils", "_rebuild_tensor_v2"),
                                    t(NONE, d(u("__defaults__"), t(d(u("neg"), TRUE))))),
    "build_rebuild_dict": build(g("torch._utils", "_rebuild_tensor_v2"), d(u("evil"), n(1))),
    "build_tensor_marker": build(g("torch", "Tensor"), d(u("name"), u("evil"))),
    "build_stand_in_class": build(g("training.networks", "Generator"),
                                  t(NONE, d(u("_pickled_qualname"), u("evil.Evil")))),
    "build_builtin_type": build(g("builtins", "object"), t(NONE, d(u("evil"), n(1)))),
    "build_load_from_bytes": build(g("torch.storage", "_load_from_bytes"), t(NONE, d(u("fn"), g("builtins", "int")))),
    "append_into_marker": g("torch", "Tensor") + u("x") + b"a",
    "setitem_into_stand_in_class": g("training.networks", "Generator") + u("k") + u("v") + b"s",
}

_RANGE = g("builtins", "range")
_ND = g("numpy._core.multiarray", "_reconstruct")
_DTYPE = g("numpy", "dtype")


def _shared_tuples(levels: int) -> bytes:
    """t_k = (t_{k-1}, t_{k-1}): a tuple whose hash (or walk) visits 2**levels tuples, in 12 bytes a level
    (each level lives in the memo only, so the body pushes one object)."""
    body = b")" + put(0) + b"0"
    for k in range(1, levels + 1):
        body += get(k - 1) + get(k - 1) + b"\x86" + put(k) + b"0"
    return body + get(levels)


def _shared_lists(levels: int) -> bytes:
    """l_k = [l_{k-1}, l_{k-1}]: nothing is hashed, but any walk of l_levels visits 2**levels lists."""
    body = b"]" + put(0) + b"0"
    for k in range(1, levels + 1):
        body += b"]" + b"(" + get(k - 1) + get(k - 1) + b"e" + put(k) + b"0"
    return body + get(levels)


def _shared_modules(levels: int) -> bytes:
    """m_k: a Sequential whose two children are both m_{k-1}: its state_dict walk visits 2**levels modules."""
    seq = g("torch.nn.modules.container", "Sequential")
    body = seq + b")\x81" + put(0) + b"0"
    for k in range(1, levels + 1):
        body += build(seq + b")\x81", d(u("_parameters"), d(), u("_buffers"), d(), u("_modules"),
                                        d(u("a"), get(k - 1), u("b"), get(k - 1)))) + put(k) + b"0"
    return body + get(levels)


BOMB_PAYLOADS: dict[str, bytes] = {
    "bytes_of_huge_int": call(g("builtins", "bytes"), n(10**11)),
    "bytearray_of_huge_int": call(g("builtins", "bytearray"), n(10**11)),
    "bytes_newobj": g("builtins", "bytes") + t(n(10**11)) + b"\x81",
    "list_of_huge_range": call(g("builtins", "list"), call(_RANGE, n(10**10))),
    "frozenset_of_huge_range": call(g("builtins", "frozenset"), call(_RANGE, n(10**10))),
    "torch_size_of_huge_range": call(g("torch", "Size"), call(_RANGE, n(10**10))),
    "bytes_of_numpy_int": call(g("builtins", "bytes"), call(g("numpy._core.multiarray", "scalar"),
                                                            call(_DTYPE, u("i8"), FALSE, TRUE),
                                                            raw((10**11).to_bytes(8, "little")))),
    "str_of_shared_lists": call(g("builtins", "str"), _shared_lists(60)),
    "numpy_reconstruct_huge": call(_ND, g("numpy", "ndarray"), t(n(10**6), n(10**6)), raw(b"f")),
    "numpy_state_huge_object_array": build(call(_ND, g("numpy", "ndarray"), t(n(0)), raw(b"b")),
                                           t(n(1), t(n(10**9)), call(_DTYPE, u("O8"), FALSE, TRUE), FALSE, lst(n(1)))),
    "numpy_subarray_scalar": call(g("numpy._core.multiarray", "scalar"), call(_DTYPE, u("(16000,16000)f8"), FALSE, TRUE),
                                  raw(b"")),
    "deep_nested_tuples": b")" + b"\x85" * 1_000_000,
    "deep_nested_lists": b"(" * 200_000 + b"l" * 200_000,
    "exponential_hash_key": d(_shared_tuples(80), n(1)),
    "exponential_shared_lists": _shared_lists(80),
    "exponential_shared_modules": _shared_modules(80),
    "rebuild_from_type_with_stand_in": call(g("torch._tensor", "_rebuild_from_type_v2"),
                                            call(g("dnnlib.util", "get_obj_by_name"), u("os.system")),
                                            g("torch", "Tensor"), t(), d()),
}

# Loads without complaint through the unpickler (nothing in it is unsafe), but the importers refuse it;
# under the old loader the opcode scan was quadratic in it (about 390 kB: minutes).
INERT_PAYLOADS: dict[str, bytes] = {
    "many_marks": b"(" + b"K\x01" * 65_000 + b"(t" * 130_000 + b"l",
    "huge_memo_index": NONE + b"r\xff\xff\xff\xff",
}


def _body_entries() -> list[Hostile]:
    """Every payload rides in an EG3D plain pickle (unpickler and aware3d.load) and a pi-GAN torch zip (convert)."""
    out = []
    for group, expect in ((CODE_PAYLOADS, UnsafePickleError), (POISON_PAYLOADS, UnsafePickleError),
                          (BOMB_PAYLOADS, pickle.UnpicklingError), (INERT_PAYLOADS, None)):
        for name, payload in group.items():
            body = payload if callable(payload) else (lambda p: lambda _f: p)(payload)
            out.append(Hostile(f"eg3d-{name}", lambda f, b=body: _write(f / "snapshot.pkl", as_eg3d(b(f))),
                               ("unpickle", "load"), expect))
            out.append(Hostile(f"pigan-{name}", lambda f, b=body: _write(f / "generator.pth", as_pigan(b(f))),
                               ("convert",), expect))
    return out


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _fake_pigan(folder: Path, *, hidden_attr: int = 8, z_attr: int = 4) -> Path:
    """A tiny module tree under the official pi-GAN class names; ``hidden_attr``/``z_attr`` are the sizes
    the pickle *claims* (the importer reads them), the tensors are 8 wide."""
    names = ["generators", "generators.generators", "siren", "siren.siren"]
    mods = {name: types.ModuleType(name) for name in names}
    h = 8

    class FiLMLayer(nn.Module):
        def __init__(self, i: int, o: int) -> None:
            super().__init__()
            self.layer = nn.Linear(i, o)

    class CustomMappingNetwork(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = nn.Sequential(nn.Linear(4, h), nn.LeakyReLU(0.2), nn.Linear(h, 2 * 3 * h))

    class UniformBoxWarp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale_factor = 2 / 0.24

    class SPATIALSIRENBASELINE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden_dim = hidden_attr
            self.network = nn.ModuleList([FiLMLayer(3 if i == 0 else h, h) for i in range(2)])
            self.final_layer = nn.Linear(h, 1)
            self.color_layer_sine = FiLMLayer(h + 3, h)
            self.color_layer_linear = nn.Sequential(nn.Linear(h, 3), nn.Sigmoid())
            self.mapping_network = CustomMappingNetwork()
            self.gridwarper = UniformBoxWarp()

    class ImplicitGenerator3d(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.z_dim = z_attr
            self.siren = SPATIALSIRENBASELINE()

    for cls, mod in [(FiLMLayer, "siren.siren"), (CustomMappingNetwork, "siren.siren"),
                     (UniformBoxWarp, "siren.siren"), (SPATIALSIRENBASELINE, "siren.siren"),
                     (ImplicitGenerator3d, "generators.generators")]:
        cls.__module__, cls.__qualname__ = mod, cls.__name__
        setattr(mods[mod], cls.__name__, cls)
    saved = {name: sys.modules.get(name) for name in names}
    sys.modules.update(mods)
    try:
        torch.manual_seed(0)
        torch.save(ImplicitGenerator3d(), folder / "generator.pth")
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    return folder / "generator.pth"


def _hostile_folder(folder: Path, change: Callable[[dict], None]) -> Path:
    """An aware3d checkpoint folder of the tiny pi-GAN preset whose config.json was then edited by ``change``."""
    out = save_generator(build_generator("pigan-tiny"), folder / "ckpt")
    meta = json.loads((out / "config.json").read_text())
    change(meta["config"])
    (out / "config.json").write_text(json.dumps(meta))
    return out


def _lying_safetensors(folder: Path) -> Path:
    out = save_generator(build_generator("pigan-tiny"), folder / "ckpt")
    weights = out / "generator.safetensors"
    head_len = struct.unpack("<Q", weights.read_bytes()[:8])[0]
    head = json.loads(weights.read_bytes()[8:8 + head_len])
    key = next(k for k in head if k != "__metadata__")
    head[key]["shape"] = [10**6, 10**6]
    head[key]["data_offsets"] = [0, 4 * 10**12]
    new_head = json.dumps(head).encode()
    weights.write_bytes(struct.pack("<Q", len(new_head)) + new_head + weights.read_bytes()[8 + head_len:])
    return out


_ZIP_STORAGE = tensor(persid_storage("0", 1), (1,), (1,))
GiB = 2**30


_FileSpec = tuple[str, Callable[[Path], bytes], str, tuple[str, ...], "type[Exception] | None"]
"""(name, the file's bytes from the folder, file name, routes, expected error)"""


def _pigan_data(body: bytes) -> bytes:
    return prog(t(g("generators.generators", "ImplicitGenerator3d"), body))


def _eg3d_storage_bytes(stream: bytes) -> bytes:
    return as_eg3d(call(g("torch.storage", "_load_from_bytes"), raw(stream)))


def _zip_files() -> list[_FileSpec]:
    """Zip members and tensors that claim more than the file holds, and broken archives."""
    huge = GiB // 8
    return [
        ("zip-bomb-storage", lambda f: torch_zip(_pigan_data(tensor(persid_storage("0", huge), (huge,), (1,))),
                                                 deflated_zeros("archive/data/0", GiB // 2)),
         "generator.pth", ("convert", "unpickle"), UnsafePickleError),
        ("zip-bomb-data-pkl", lambda f: _zip_bytes([deflated_zeros("archive/data.pkl", GiB // 2)]),
         "generator.pth", ("unpickle", "load"), UnsafePickleError),
        ("zip-two-data-pkl", lambda f: _zip_bytes([stored("a/data.pkl", prog(NONE)), stored("b/data.pkl", prog(NONE))]),
         "generator.pth", ("unpickle", "load"), None),
        ("zip-member-shorter-than-numel", lambda f: torch_zip(_pigan_data(tensor(persid_storage("0", 10**12), (4,), (1,))),
                                                             stored("archive/data/0", bytes(16))),
         "generator.pth", ("convert", "unpickle"), pickle.UnpicklingError),
        ("zip-tensor-view-larger-than-storage", lambda f: torch_zip(_pigan_data(tensor(persid_storage("0", 1),
                                                                                       (10**12,), (0,))),
                                                                    stored("archive/data/0", bytes(4))),
         "generator.pth", ("convert", "unpickle"), UnsafePickleError),
        ("zip-storage-record-missing", lambda f: torch_zip(_pigan_data(_ZIP_STORAGE)), "generator.pth",
         ("convert", "unpickle"), pickle.UnpicklingError),
        ("zip-negative-size", lambda f: torch_zip(_pigan_data(tensor(persid_storage("0", 4), (-4,), (1,))),
                                                  stored("archive/data/0", bytes(16))),
         "generator.pth", ("unpickle",), pickle.UnpicklingError),
        ("zip-out-of-bounds-view", lambda f: torch_zip(_pigan_data(tensor(persid_storage("0", 4), (40,), (1,))),
                                                       stored("archive/data/0", bytes(16))),
         "generator.pth", ("unpickle",), pickle.UnpicklingError),
        ("zip-without-data-pkl", lambda f: _zip_bytes([stored("archive/other", b"x")]), "generator.pth",
         ("unpickle", "load"), None),
        ("torchscript-archive", lambda f: _zip_bytes([stored("archive/data.pkl", prog(NONE)),
                                                      stored("archive/constants.pkl", prog(NONE))]),
         "generator.pth", ("unpickle",), pickle.UnpicklingError),
        ("truncated-zip", lambda f: as_pigan(lst(*[u("x" * 50)] * 50))[:700], "generator.pth",
         ("unpickle", "convert"), None),
    ]


def _stream_files() -> list[_FileSpec]:
    """Legacy torch.save streams whose storages claim more than the stream, and malformed pickles."""
    def storage(key: str, numel: int, kind: str = "FloatStorage") -> bytes:
        return t(u("storage"), g("torch", kind), u(key), u("cpu"), n(numel), NONE) + b"Q"

    return [
        ("legacy-huge-numel", lambda f: _eg3d_storage_bytes(legacy_stream(tensor(storage("0", 10**12), (4,), (1,)),
                                                                          ["0"])),
         "snapshot.pkl", ("unpickle", "load"), pickle.UnpicklingError),
        ("legacy-many-storages", lambda f: _eg3d_storage_bytes(legacy_stream(
            lst(*[storage(str(i), 70_000, "ByteStorage") for i in range(6000)]))),
         "snapshot.pkl", ("unpickle", "load"), pickle.UnpicklingError),
        ("legacy-wrong-magic", lambda f: _eg3d_storage_bytes(prog(n(12345)) + prog(n(1001))), "snapshot.pkl",
         ("unpickle", "load"), pickle.UnpicklingError),
        ("nested-streams", lambda f: _eg3d_storage_bytes(legacy_stream(_nested_streams(200))), "snapshot.pkl",
         ("unpickle",), UnsafePickleError),
        ("truncated-pickle", lambda f: as_eg3d(lst(*[u("x" * 50)] * 50))[:-900], "snapshot.pkl",
         ("unpickle", "load"), None),
        ("huge-declared-bytes", lambda f: as_eg3d(b"\x8e" + struct.pack("<Q", 2**62) + b"abc"), "snapshot.pkl",
         ("unpickle", "load"), None),
        ("stack-underflow", lambda f: as_eg3d(b"tR"), "snapshot.pkl", ("unpickle",), pickle.UnpicklingError),
        ("random-bytes", lambda f: np.random.default_rng(0).bytes(4096), "snapshot.pkl", ("unpickle", "load"), None),
        ("empty-file", lambda f: b"", "snapshot.pkl", ("unpickle", "load"), None),
        ("tar-member-larger-than-archive", lambda f: _lying_tar(), "old.pth", ("unpickle",), pickle.UnpicklingError),
    ]


def _file_entries() -> list[Hostile]:
    out = [Hostile(name, lambda f, m=make, fn=fname: _write(f / fn, m(f)), routes, expect)
           for name, make, fname, routes, expect in _zip_files() + _stream_files()]
    return out + [
        Hostile("pigan-claims-huge-sizes", lambda f: _fake_pigan(f, hidden_attr=10**9, z_attr=10**9),
                ("load", "convert"), ValueError, ("larger than its weights",)),
        Hostile("folder-huge-hidden-dim", lambda f: _hostile_folder(f, lambda c: c.update(hidden_dim=10**7)),
                ("load",), ValueError, ("does not match its config",)),
        Hostile("folder-many-layers", lambda f: _hostile_folder(f, lambda c: c.update(num_film_layers=10**6)),
                ("load",), ValueError, ("larger than its weights",)),
        Hostile("folder-plausible-mismatch", lambda f: _hostile_folder(f, lambda c: c.update(hidden_dim=64)),
                ("load",), ValueError, ("shape mismatches",)),
        Hostile("folder-lying-safetensors", _lying_safetensors, ("load",), ValueError),
    ]


def _nested_streams(depth: int) -> bytes:
    body = NONE
    for _ in range(depth):
        body = call(g("torch.storage", "_load_from_bytes"), raw(legacy_stream(body)))
    return body


def _lying_tar() -> bytes:
    """A pre-0.4 tar file whose 'storages' member header claims 1 TB."""
    header = bytearray(512)
    header[0:8] = b"storages"
    header[100:108] = b"0000644\0"
    header[124:136] = b"%011o\0" % 10**12
    header[156:157] = b"0"
    header[257:263] = b"ustar\0"
    header[263:265] = b"00"
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + bytes(1024)


CORPUS = _body_entries() + _file_entries()


# ---------------------------------------------------------------------------------------------------
# Good files, and what loading them must give (the poisoning check)
# ---------------------------------------------------------------------------------------------------
@dataclass
class GoodFiles:
    folder: Path
    expected: dict[str, dict] = field(default_factory=dict)

    def loads(self) -> dict[str, Callable[[], dict]]:
        """Each good file's loader, returning name -> tensor or numpy array."""
        out = {
            "fake official pi-GAN (zip, stand-ins)": lambda: _module_tensors(
                load_torch_file(self.folder / "pigan" / "generator.pth", stand_ins=PIGAN_STAND_INS)),
            "plain pickle with storage bytes and numpy": lambda: _plain_tensors(
                load_pickle_file(self.folder / "plain.pkl")),
            "pi-GAN import into our model": lambda: _imported_state(self.folder / "pigan" / "generator.pth"),
        }
        official = reference_root() / "pigan" / "generator.pth"
        if official.is_file():
            out["official pi-GAN generator.pth"] = lambda: _module_tensors(
                load_torch_file(official, stand_ins=PIGAN_STAND_INS))
        return out

    def check(self) -> None:
        for what, load in self.loads().items():
            got = load()
            want = self.expected[what]
            assert list(got) == list(want), what
            for key, value in want.items():
                assert _same(got[key], value), f"{what}: {key} changed"


def _imported_state(path: Path) -> dict[str, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):  # the truncation centre is computed from random latents
        torch.manual_seed(0)
        return dict(aware3d.load(path, preset="pigan-celeba").state_dict())


def _module_tensors(root: PickledObject) -> dict[str, torch.Tensor]:
    assert isinstance(root, PickledObject) and root.qualname == "generators.generators.ImplicitGenerator3d"
    return {k: v.detach() for k, v in root.named_tensors().items()}


def _plain_tensors(data: dict) -> dict:
    assert isinstance(data, dict)
    return data


def _same(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> bool:
    """Same type, dtype (byte order included) and every element."""
    if isinstance(b, np.ndarray):
        return type(a) is np.ndarray and a.dtype == b.dtype and a.dtype.str == b.dtype.str and np.array_equal(a, b)
    return isinstance(a, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)


@pytest.fixture(scope="module")
def good_files(tmp_path_factory: pytest.TempPathFactory) -> GoodFiles:
    folder = tmp_path_factory.mktemp("good")
    (folder / "pigan").mkdir()
    _fake_pigan(folder / "pigan")
    gen = torch.Generator().manual_seed(1)
    plain = {"w": torch.randn(3, 4, generator=gen), "h": torch.randn(5, generator=gen).half(),
             "i": torch.arange(6), "a": np.linspace(0.0, 1.0, 7), "b": np.arange(4, dtype=np.int32)}
    (folder / "plain.pkl").write_bytes(pickle.dumps(plain, protocol=4))
    good = GoodFiles(folder)
    good.expected = {what: load() for what, load in good.loads().items()}
    # Ground truth where we have it: the tensors as written, not as our loader first read them.
    for key, value in plain.items():
        assert _same(good.expected["plain pickle with storage bytes and numpy"][key], value), key
    return good


# ---------------------------------------------------------------------------------------------------
# Measuring one load
# ---------------------------------------------------------------------------------------------------
def _peak_rss_kb() -> int | None:
    try:
        return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))
    except (OSError, AttributeError):
        return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux: write 5 to clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _peak_rss_kb() is not None
    except OSError:
        return False


def _measured(fn: Callable[[], object]) -> tuple[BaseException | None, float, int]:
    """(the exception ``fn`` raised, seconds, peak memory growth in bytes) of one call."""
    rss = _reset_peak_rss()
    before = _peak_rss_kb() if rss else 0
    if not rss:
        tracemalloc.start()
    start = time.perf_counter()
    error: BaseException | None = None
    try:
        fn()
    except Exception as exc:  # the test inspects the exception
        error = exc
    seconds = time.perf_counter() - start
    if rss:
        grown = (_peak_rss_kb() - before) * 1024
    else:
        grown = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return error, seconds, grown


def _route(route: str, path: Path) -> Callable[[], object]:
    if route == "unpickle":
        if path.suffix == ".pkl":
            return lambda: load_pickle_file(path, stand_ins=EG3D_STAND_INS)
        return lambda: load_torch_file(path, stand_ins=PIGAN_STAND_INS)
    if route == "load":  # pi-GAN files fit several presets; EG3D snapshots name theirs
        return lambda: aware3d.load(path, preset="pigan-celeba" if path.suffix == ".pth" else None)
    return lambda: convert.run(convert.ConvertOptions(source=str(path), out=str(path.parent / "converted"),
                                                      preset="pigan-celeba"))


_CLEAR = (pickle.UnpicklingError, ValueError)
"""What 'refused with a clear error' means: an unpickling error (the loader's refusals are UnsafePickleError)
or the importer's own ValueError, naming the file; never a TypeError, MemoryError, RecursionError, ..."""


@pytest.fixture
def copyreg_extension():
    """The EXT payload needs os.system registered as a copyreg extension (as a poisoned environment might)."""
    copyreg.add_extension("os", "system", EXT_CODE)
    yield
    copyreg.remove_extension("os", "system", EXT_CODE)


@pytest.mark.parametrize("hostile", CORPUS, ids=[h.name for h in CORPUS])
def test_hostile_file_is_refused_and_poisons_nothing(hostile: Hostile, tmp_path: Path, good_files: GoodFiles,
                                                     copyreg_extension) -> None:
    path = hostile.make(tmp_path)
    for route in hostile.routes:
        error, seconds, grown = _measured(_route(route, path))
        where = f"{hostile.name} via {route}"
        if error is None:
            assert route == "unpickle" and hostile.expect is None, f"{where}: not refused"
        else:
            assert isinstance(error, hostile.expect or _CLEAR), f"{where}: {type(error).__name__}: {error}"
            assert path.name in str(error), f"{where}: the error does not name the file: {error}"
            assert all(word in str(error) for word in hostile.names), f"{where}: {error}"
        assert seconds < TIME_LIMIT_S, f"{where}: took {seconds:.1f} s"
        assert grown < MEMORY_LIMIT, f"{where}: grew memory by {grown / 2**20:.0f} MiB"
        assert not _marker(tmp_path).exists(), f"{where}: the payload ran"
    good_files.check()


def test_refusals_say_what_was_refused(tmp_path: Path) -> None:
    """The messages name the offending global, the refused call or write, the budget that ran out."""
    cases = {
        "os_system": ("posix.system", "os.system"),
        "get_obj_by_name_call": ("dnnlib.util.get_obj_by_name('os.system')", "calls"),
        "build_rebuild_defaults": ("torch._utils._rebuild_tensor_v2", "BUILD"),
        "build_storage_type_dict": ("torch.FloatStorage", "BUILD"),
        "bytes_of_huge_int": ("builtins.bytes(100000000000)", "allocate"),
        "deep_nested_tuples": ("nest more than",),
        "exponential_hash_key": ("hashing",),
        "exponential_shared_modules": ("expand to more than",),
    }
    payloads = {**CODE_PAYLOADS, **POISON_PAYLOADS, **BOMB_PAYLOADS}
    for name, words in cases.items():
        payload = payloads[name]
        path = _write(tmp_path / f"{name}.pkl", as_eg3d(payload(tmp_path) if callable(payload) else payload))
        with pytest.raises(UnsafePickleError) as err:
            load_pickle_file(path, stand_ins=EG3D_STAND_INS)
        message = str(err.value)
        assert str(path) in message and any(w in message for w in words), (name, message)


def test_code_payloads_fire_under_plain_pickle(tmp_path: Path) -> None:
    """The corpus is live: plain pickle.loads runs every code payload (each in its own folder)."""
    folders = []
    for name, payload in CODE_PAYLOADS.items():
        # get_obj_by_name needs the official dnnlib on the path; torch.load of nested bytes is weights_only
        # (safe) since torch 2.6, which is what this loader must also be without torch's help.
        if name in ("get_obj_by_name_call", "nested_load_from_bytes"):
            continue
        folder = tmp_path / name
        folder.mkdir()
        # Protocol 2 header: plain pickle maps the Python 2 name __builtin__ only for protocols below 3.
        _write(folder / "payload.pkl", b"\x80\x02" + payload(folder) + b".")
        folders.append(folder)
    script = (
        "import copyreg, pickle, sys\n"
        f"copyreg.add_extension('os', 'system', {EXT_CODE})\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        pickle.loads(open(p + '/payload.pkl', 'rb').read())\n"
        "    except Exception:\n"
        "        pass\n")
    subprocess.run([sys.executable, "-c", script, *map(str, folders)], check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert [f.name for f in folders if not _marker(f).exists()] == []


def test_bounded_build_is_the_plain_build() -> None:
    """The meta-device pre-build neither changes the model nor draws from the random generators, and it
    stops a build that outgrows the file's weights long before finishing it."""
    from aware3d.io.presize import build_bounded_by_weights
    from aware3d.models.pigan import PIGAN_PRESETS, PiGANGenerator

    config = PIGAN_PRESETS["pigan-tiny"]
    torch.manual_seed(3)
    plain = PiGANGenerator(config).state_dict()
    torch.manual_seed(3)
    bounded = build_bounded_by_weights(lambda: PiGANGenerator(config), plain, "tiny").state_dict()
    assert list(bounded) == list(plain) and all(torch.equal(plain[k], bounded[k]) for k in plain)
    huge = replace(config, num_film_layers=100_000)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="tiny: the sizes it names would build a model larger than its weights"):
        build_bounded_by_weights(lambda: PiGANGenerator(huge), plain, "tiny")
    assert time.perf_counter() - start < 2.0
