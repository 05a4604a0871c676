"""Restricted unpickler: rebuilds tensors and plain state of foreign checkpoints, never runs pickled code."""

from __future__ import annotations

import copy
import io
import os
import pickle
import struct
import sys
import tarfile
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from aware3d.io.safe_unpickle import (
    LoadLimitError,
    PickledObject,
    UnsafePickleError,
    load_pickle_file,
    load_torch_file,
    resolve_location,
)

from .conftest import require_reference


# ---------------------------------------------------------------------------------------------------
# Fixtures: classes that live in throwaway modules, so the files reference globals we never import
# ---------------------------------------------------------------------------------------------------
def _register(monkeypatch: pytest.MonkeyPatch, module_name: str, *classes: type) -> None:
    """Expose ``classes`` as ``module_name.<Name>`` (and its parent package) for pickling."""
    package = module_name.split(".")[0]
    mod = types.ModuleType(module_name)
    for cls in classes:
        cls.__module__ = module_name
        setattr(mod, cls.__qualname__, cls)
    monkeypatch.setitem(sys.modules, package, types.ModuleType(package))
    monkeypatch.setitem(sys.modules, module_name, mod)


def _unregister(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()


class Sub(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.randn(5))
        self.register_buffer("counter", torch.tensor([3], dtype=torch.int64))
        self.register_buffer("scratch", torch.zeros(2), persistent=False)
        self.register_buffer("unused", None)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.body = nn.Sequential(nn.Linear(4, 5), nn.LeakyReLU(0.2), Sub())
        self.register_buffer("running", torch.randn(4, dtype=torch.float64))
        self.table = torch.arange(12.0).reshape(3, 4)  # plain tensor attribute, not a buffer
        self.table_row = self.table[1]  # a view: must keep sharing the table's storage
        self.depth = 7
        self.label = "fake"
        self.device = torch.device("cpu")


class ExponentialMovingAverage:
    """Shaped like torch_ema 0.2's object: its __dict__ is what gets pickled."""

    def __init__(self, params: list[torch.Tensor], decay: float) -> None:
        self.decay = decay
        self.num_updates = 0
        self.shadow_params = [p.clone().detach() for p in params]
        self.collected_params: list[torch.Tensor] = []


def _marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


class Evil:
    """Unpickling this with plain pickle would run a shell command that creates a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class EvalEvil:
    def __reduce__(self):
        return (eval, ("__import__('os')",))


# ---------------------------------------------------------------------------------------------------
# 1. whole-module pickle of a class hierarchy we never import
# ---------------------------------------------------------------------------------------------------
def test_whole_module_pickle_with_stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _register(monkeypatch, "fakeofficial.nets", Net, Sub)
    net = Net()
    path = tmp_path / "generator.pth"
    torch.save(net, path)
    _unregister(monkeypatch)
    assert "fakeofficial.nets" not in sys.modules

    root = load_torch_file(path, stand_ins=["fakeofficial."])
    assert "fakeofficial.nets" not in sys.modules and "fakeofficial" not in sys.modules
    assert isinstance(root, PickledObject) and root.qualname == "fakeofficial.nets.Net"
    assert root.is_module

    expected = net.state_dict()
    got = root.named_tensors()
    assert list(got) == list(expected)  # same names, same (state_dict) order
    for name, tensor in expected.items():
        assert got[name].dtype == tensor.dtype
        assert torch.equal(got[name], tensor), name
    assert isinstance(got["fc.weight"], nn.Parameter) and got["fc.weight"].requires_grad
    assert "body.2.scratch" in root.named_tensors(include_non_persistent=True)

    children = root.children()
    assert children["fc"].qualname == "torch.nn.modules.linear.Linear"
    seq = children["body"]
    assert seq.qualname == "torch.nn.modules.container.Sequential"
    assert [m.qualname for m in seq.children().values()] == [
        "torch.nn.modules.linear.Linear", "torch.nn.modules.activation.LeakyReLU", "fakeofficial.nets.Sub"]
    assert seq.children()["1"].get("negative_slope") == 0.2

    assert root.get("depth") == 7 and root.get("label") == "fake"
    assert root.get("device") == torch.device("cpu")
    assert root.get("missing", "dflt") == "dflt"
    table, row = root.get("table"), root.get("table_row")
    assert torch.equal(table, net.table) and torch.equal(row, net.table[1])
    assert row.untyped_storage().data_ptr() == table.untyped_storage().data_ptr()
    table[1, 0] = -1.0
    assert row[0].item() == -1.0  # a real view, not a copy


def test_refused_without_stand_ins_lists_every_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _register(monkeypatch, "fakeofficial.nets", Net, Sub)
    path = tmp_path / "generator.pth"
    torch.save(Net(), path)
    _unregister(monkeypatch)
    with pytest.raises(UnsafePickleError) as err:
        load_torch_file(path)
    assert set(err.value.names) == {"fakeofficial.nets.Net", "fakeofficial.nets.Sub"}
    assert "not executed" in str(err.value) and str(path) in str(err.value)
    # An exact name only admits that class.
    with pytest.raises(UnsafePickleError) as err:
        load_torch_file(path, stand_ins=["fakeofficial.nets.Net"])
    assert err.value.names == ["fakeofficial.nets.Sub"]


# ---------------------------------------------------------------------------------------------------
# 2. an object whose __dict__ holds a list of tensors (torch_ema style)
# ---------------------------------------------------------------------------------------------------
def test_ema_like_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _register(monkeypatch, "fakeema.ema", ExponentialMovingAverage)
    params = [torch.randn(4, 3), torch.randn(4), torch.randn(2, 2, dtype=torch.float16)]
    path = tmp_path / "ema.pth"
    torch.save(ExponentialMovingAverage(params, decay=0.999), path)
    _unregister(monkeypatch)

    ema = load_torch_file(path, stand_ins=["fakeema.ema.ExponentialMovingAverage"])
    assert ema.qualname == "fakeema.ema.ExponentialMovingAverage" and not ema.is_module
    assert ema.get("decay") == 0.999 and ema.get("num_updates") == 0
    assert ema.get("collected_params") == []
    shadow = ema.get("shadow_params")
    assert isinstance(shadow, list) and len(shadow) == 3
    for got, want in zip(shadow, params):
        assert got.dtype == want.dtype and torch.equal(got, want)


# ---------------------------------------------------------------------------------------------------
# 3. malicious payloads are refused before anything runs
# ---------------------------------------------------------------------------------------------------
def _system_name(names: list[str]) -> bool:
    return any(n in ("posix.system", "os.system", "nt.system") for n in names)


def test_malicious_torch_zip_refused(tmp_path: Path) -> None:
    marker = _marker(tmp_path)
    path = tmp_path / "evil.pth"
    torch.save({"weights": torch.ones(3), "payload": Evil(marker), "more": EvalEvil()}, path)
    with pytest.raises(UnsafePickleError) as err:
        load_torch_file(path)
    assert _system_name(err.value.names), err.value.names
    assert "builtins.eval" in err.value.names  # every offender listed at once
    assert "posix.system" in str(err.value) or "os.system" in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_malicious_plain_pickle_refused(tmp_path: Path, protocol: int) -> None:
    marker = _marker(tmp_path)
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps([Evil(marker), torch.zeros(2), EvalEvil()], protocol=protocol))
    with pytest.raises(UnsafePickleError) as err:
        load_pickle_file(path)
    assert _system_name(err.value.names) and "builtins.eval" in err.value.names
    assert not marker.exists()
    # Even when a caller allows the name as a stand-in, it is only recorded, never called.
    obj = load_pickle_file(path, stand_ins=["posix.", "os.", "nt.", "builtins.eval"])
    assert isinstance(obj[0], PickledObject) and obj[0].args == (f"touch {marker}",)
    assert not marker.exists()


def test_malicious_payload_inside_storage_bytes_refused(tmp_path: Path) -> None:
    """torch.storage._load_from_bytes is allowed, but the nested stream goes through the same checks."""
    marker = _marker(tmp_path)
    nested = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}))
    nested += pickle.dumps(Evil(marker), protocol=2)

    class Smuggler:
        def __reduce__(self):
            return (torch.storage._load_from_bytes, (nested,))

    path = tmp_path / "smuggle.pkl"
    path.write_bytes(pickle.dumps({"x": Smuggler()}, protocol=4))
    with pytest.raises(UnsafePickleError) as err:
        load_pickle_file(path)
    assert _system_name(err.value.names)
    assert not marker.exists()


def test_dangerous_builtins_refused(tmp_path: Path) -> None:
    path = tmp_path / "getattr.pkl"
    path.write_bytes(pickle.dumps([getattr, open, exec, __import__], protocol=4))
    with pytest.raises(UnsafePickleError) as err:
        load_pickle_file(path)
    assert set(err.value.names) == {"builtins.getattr", "io.open", "builtins.exec", "builtins.__import__"}


# ---------------------------------------------------------------------------------------------------
# 4. storages tagged with a CUDA location load on the CPU
# ---------------------------------------------------------------------------------------------------
def test_resolve_location() -> None:
    cpu = torch.device("cpu")
    assert resolve_location("cuda:0", "cpu") == cpu
    assert resolve_location(b"cuda:1", torch.device("cpu")) == cpu
    assert resolve_location("cuda:0", {"cuda:0": "cpu"}) == cpu
    assert resolve_location("cuda:1", {"cuda:0": "cpu"}) == torch.device("cuda:1")
    assert resolve_location("cpu", None) == cpu
    assert resolve_location("cuda:0", None) == torch.device("cuda:0")
    with pytest.raises(TypeError):
        resolve_location("cuda:0", 3)  # type: ignore[arg-type]


def _rewrite_zip(src: Path, dst: Path, edit) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, edit(info.filename, zin.read(info.filename)))


def test_cuda_tagged_zip_loads_on_cpu(tmp_path: Path) -> None:
    src, dst = tmp_path / "cpu.pth", tmp_path / "cuda.pth"
    tensors = {"a": torch.randn(3, 2), "b": torch.arange(5)}
    torch.save(tensors, src)
    # data.pkl is protocol 2 without frames, so the BINUNICODE location 'cpu' can be swapped in place.
    old = b"X\x03\x00\x00\x00cpu"
    new = b"X\x06\x00\x00\x00cuda:0"
    _rewrite_zip(src, dst, lambda name, raw: raw.replace(old, new) if name.endswith("data.pkl") else raw)
    with zipfile.ZipFile(dst) as zf:
        assert b"cuda:0" in zf.read(next(n for n in zf.namelist() if n.endswith("data.pkl")))
    got = load_torch_file(dst, map_location="cpu")
    for key, value in tensors.items():
        assert got[key].device.type == "cpu" and torch.equal(got[key], value)
    got = load_torch_file(dst, map_location={"cuda:0": "cpu"})
    assert torch.equal(got["a"], tensors["a"])
    # The location really is read from the file: send cuda:0 storages to the meta device.
    meta = load_torch_file(dst, map_location={"cuda:0": "meta"})
    assert meta["a"].device.type == "meta" and meta["a"].shape == (3, 2)


# ---------------------------------------------------------------------------------------------------
# 5. plain pickle.dump of tensors and numpy data
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_plain_pickle_with_tensors_and_numpy(tmp_path: Path, protocol: int) -> None:
    base = torch.randn(4, 6)
    data = {
        "w": base,
        "w_t": base.t(),  # a transposed view
        "half": torch.randn(3, dtype=torch.float16),
        "long": torch.arange(7),
        "param": nn.Parameter(torch.randn(2, 2)),
        "empty": torch.empty(0),
        "arr": np.linspace(0, 1, 5),
        "iarr": np.arange(6, dtype=np.int32).reshape(2, 3),
        "scalar": np.float64(0.125),
        "meta": {"res": 64, "names": ("a", "b"), "flags": {1, 2}, "blob": b"\x00\xff"},
    }
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    got = load_pickle_file(path)
    for key in ("w", "w_t", "half", "long", "param", "empty"):
        assert got[key].dtype == data[key].dtype and torch.equal(got[key], data[key]), key
    assert isinstance(got["param"], nn.Parameter)
    # Plain pickles of torch >= 2 store each view's storage as its own blob (plain pickle.loads does not
    # share them either), so only the layout is checked here; zip files keep sharing (see above).
    assert got["w_t"].stride() == (1, 6)
    np.testing.assert_array_equal(got["arr"], data["arr"])
    np.testing.assert_array_equal(got["iarr"], data["iarr"])
    assert got["iarr"].dtype == np.int32
    assert isinstance(got["scalar"], np.float64) and got["scalar"] == 0.125
    assert got["meta"] == data["meta"]


# ---------------------------------------------------------------------------------------------------
# Other containers: legacy torch.save stream, big-endian zip, pre-0.4 tar
# ---------------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Couldn't retrieve source code")
def test_legacy_stream_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _register(monkeypatch, "fakeofficial.nets", Net, Sub)
    net = Net()
    path = tmp_path / "legacy.pth"
    torch.save(net, path, _use_new_zipfile_serialization=False)
    _unregister(monkeypatch)
    assert not zipfile.is_zipfile(path)
    root = load_torch_file(path, stand_ins=["fakeofficial."])
    got, expected = root.named_tensors(), net.state_dict()
    assert list(got) == list(expected)
    assert all(torch.equal(got[k], v) for k, v in expected.items())
    assert root.get("table_row").untyped_storage().data_ptr() == root.get("table").untyped_storage().data_ptr()


def test_big_endian_zip_is_byteswapped(tmp_path: Path) -> None:
    src, dst = tmp_path / "le.pth", tmp_path / "be.pth"
    tensors = {"f": torch.randn(5), "i": torch.arange(-3, 3, dtype=torch.int16), "d": torch.randn(2, dtype=torch.float64)}
    torch.save(tensors, src)
    sizes = {}  # storage key -> element size, from a plain (trusted, our own) load
    with zipfile.ZipFile(src) as zf:
        prefix = zf.namelist()[0].split("/")[0]
    for i, (key, t) in enumerate(tensors.items()):
        sizes[f"{prefix}/data/{i}"] = t.element_size()

    def edit(name: str, raw: bytes) -> bytes:
        if name.endswith("byteorder"):
            return b"big"
        if name in sizes:
            return np.frombuffer(raw, np.uint8).reshape(-1, sizes[name])[:, ::-1].tobytes()
        return raw

    _rewrite_zip(src, dst, edit)
    got = load_torch_file(dst)
    for key, value in tensors.items():
        assert torch.equal(got[key], value), key


def test_pre_04_tar_format(tmp_path: Path) -> None:
    """Hand-built file in the old tar layout (storages / tensors / pickle members), read back."""
    data = torch.arange(10, dtype=torch.float32)

    def p(obj) -> bytes:
        return pickle.dumps(obj, protocol=2)

    storages = p(1) + p((7, "cuda:0", torch.FloatStorage)) + struct.pack("<q", 10) + data.numpy().tobytes() + p([])
    tensors = p(2)
    for key, size, stride, offset in ((1, (2, 3), (3, 1), 0), (2, (4,), (2,), 1)):
        tensors += p((key, 7, torch.FloatTensor)) + struct.pack("<ii", len(size), 0)
        tensors += struct.pack(f"<{len(size)}q", *size) + struct.pack(f"<{len(stride)}q", *stride)
        tensors += struct.pack("<q", offset)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return {"t1": "1", "t2": "2"}.get(obj) if isinstance(obj, str) and obj.startswith("t") else None

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump({"a": "t1", "b": "t2", "n": 3})
    path = tmp_path / "old.pth"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, raw in (("storages", storages), ("tensors", tensors), ("pickle", buf.getvalue())):
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    got = load_torch_file(path)
    assert got["n"] == 3
    assert torch.equal(got["a"], data[:6].reshape(2, 3))
    assert torch.equal(got["b"], data[1::2][:4])
    assert got["a"].untyped_storage().data_ptr() == got["b"].untyped_storage().data_ptr()


def test_pickled_object_copy_and_repr() -> None:
    obj = PickledObject("pkg.Cls", (1,), {"_parameters": {"w": torch.ones(2)}, "_modules": {}, "x": 1})
    dup = copy.deepcopy(obj)
    assert dup.qualname == "pkg.Cls" and dup.args == (1,) and dup.get("x") == 1
    assert torch.equal(dup.named_tensors()["w"], torch.ones(2))
    assert "pkg.Cls" in repr(obj) and len(repr(obj)) < 200
    restored = pickle.loads(pickle.dumps(obj))
    assert restored.get("x") == 1


# ---------------------------------------------------------------------------------------------------
# 6. the real official files (skip when the reference folder is absent; fail under CI=true)
# ---------------------------------------------------------------------------------------------------
def test_official_pigan_generator(reference_dir: Path) -> None:
    path = require_reference("pigan", "generator.pth")
    root = load_torch_file(path, stand_ins=["generators.", "siren."])
    assert root.qualname == "generators.generators.ImplicitGenerator3d"
    tensors = root.named_tensors()
    assert len(tensors) == 30
    assert sum(t.numel() for t in tensors.values()) == 1_910_788
    assert tensors["siren.network.0.layer.weight"].shape == (256, 3)
    assert tensors["siren.mapping_network.network.6.weight"].shape == (4608, 256)
    assert root.get("z_dim") == 256
    assert root.get("avg_frequencies").shape == (1, 2304)
    assert all(torch.isfinite(t).all() for t in tensors.values())


def test_official_pigan_ema(reference_dir: Path) -> None:
    path = require_reference("pigan", "ema.pth")
    ema = load_torch_file(path, stand_ins=["torch_ema."])
    assert ema.qualname == "torch_ema.ema.ExponentialMovingAverage"
    shadow = ema.get("shadow_params")
    assert isinstance(shadow, list) and len(shadow) == 30
    assert all(isinstance(t, torch.Tensor) for t in shadow)
    assert ema.get("decay") == 0.999


def test_official_eg3d_snapshot(reference_dir: Path) -> None:
    import json

    path = require_reference("eg3d", "network-snapshot.pkl")
    with pytest.raises(UnsafePickleError) as err:  # persistent classes carry source code: refused by default
        load_pickle_file(path)
    assert "torch_utils.persistence._reconstruct_persistent_obj" in err.value.names

    snap = load_pickle_file(path, stand_ins=["torch_utils.", "training.", "dnnlib."])
    assert list(snap) == ["training_set_kwargs", "G", "D", "G_ema", "augment_pipe"]
    assert snap["augment_pipe"] is None
    assert snap["training_set_kwargs"]["class_name"] == "training.dataset.ImageFolderDataset"
    G_ema, G = snap["G_ema"], snap["G"]
    assert G_ema.qualname == "TriPlaneGenerator" and snap["D"].qualname == "DualDiscriminator"
    assert G_ema.extra["persistent_version"] == 6 and isinstance(G_ema.extra["module_src"], str)
    kwargs = G_ema.get("_init_kwargs")
    assert type(kwargs["mapping_kwargs"]) is dict and kwargs["mapping_kwargs"] == {"num_layers": 2}  # EasyDict
    assert G_ema.get("neural_rendering_resolution") == 64
    renderer = G_ema.children()["renderer"]
    assert renderer.qualname == "training.volumetric_rendering.renderer.ImportanceRenderer"
    assert renderer.get("plane_axes").shape == (3, 3, 3)
    fc0 = G_ema.children()["backbone"].children()["mapping"].children()["fc0"]
    assert isinstance(fc0.get("weight_gain"), np.floating)

    tensors = G_ema.named_tensors()
    params = {k: v for k, v in tensors.items() if isinstance(v, nn.Parameter)}
    buffers = {k: v for k, v in tensors.items() if k not in params}
    assert (len(params), len(buffers)) == (132, 45)
    assert sum(t.numel() for t in params.values()) == 2_844_456
    assert sum(t.numel() for t in buffers.values()) == 831_049
    assert tensors["backbone.mapping.w_avg"].abs().sum() > 0  # trained value, not the zero init
    layout_path = path.with_name("pickle_layout.json")
    if layout_path.exists():
        layout = json.loads(layout_path.read_text())["networks"]["G_ema"]
        shapes = {**layout["param_names_shapes"], **layout["buffer_names_shapes"]}
        assert {k: list(v.shape) for k, v in tensors.items()} == shapes
    g_tensors = G.named_tensors()
    assert not torch.equal(g_tensors["decoder.net.0.weight"], tensors["decoder.net.0.weight"])
    assert len(snap["D"].named_tensors()) == 92


# ---------------------------------------------------------------------------------------------------
# 7. the loader under attack: poisoning, calls of call results, budgets, linear scans
# ---------------------------------------------------------------------------------------------------
def _glob(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def _text(s: str) -> bytes:
    return b"X" + struct.pack("<I", len(s.encode())) + s.encode()


def _int(v: int) -> bytes:
    data = v.to_bytes(v.bit_length() // 8 + 1, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data


def _pickle(body: bytes) -> bytes:
    return b"\x80\x04" + body + b"."


_POISONS = {
    # BUILD with a dict state writes the storage marker's __dict__: later float32 storages read as float16
    "storage type": _glob("torch", "FloatStorage") + b"(" + _text("dtype") + _glob("torch", "float16") + b"db",
    # BUILD with slot state setattr()s the rebuild function's defaults: later tensors come back negated
    "rebuild defaults": (_glob("torch._utils", "_rebuild_tensor_v2") + b"(N(" + _text("__defaults__") + b"((" +
                         _text("neg") + b"\x88dtdtb"),
    # ... or renames the cached stand-in class: later modules come back under another class name
    "stand-in class": (_glob("fakeofficial.nets", "Net") + b"(N(" + _text("_pickled_qualname") + _text("evil.Evil")
                       + b"dtb"),
}


@pytest.mark.parametrize("target", list(_POISONS))
def test_refused_builds_do_not_poison_later_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    _register(monkeypatch, "fakeofficial.nets", Net, Sub)
    net = Net()
    good = tmp_path / "generator.pth"
    torch.save(net, good)
    _unregister(monkeypatch)
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(_pickle(b"(" + _POISONS[target] + b"l"))
    with pytest.raises(UnsafePickleError) as err:
        load_pickle_file(bad, stand_ins=["fakeofficial."])
    assert "BUILD" in str(err.value) and str(bad) in str(err.value)
    root = load_torch_file(good, stand_ins=["fakeofficial."])
    assert root.qualname == "fakeofficial.nets.Net"
    got = root.named_tensors()
    for name, tensor in net.state_dict().items():
        assert got[name].dtype == tensor.dtype and torch.equal(got[name], tensor), name


def test_allow_listed_objects_are_immutable_or_fresh_per_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aware3d.io import safe_unpickle as su

    marker, storage_type = su._SHARED_GLOBALS["torch.Tensor"], su._SHARED_GLOBALS["torch.FloatStorage"]
    for obj, attr in ((marker, "name"), (storage_type, "dtype")):
        with pytest.raises(AttributeError):
            setattr(obj, attr, "evil")
        with pytest.raises(UnsafePickleError):
            obj.__setstate__({attr: "evil"})  # what the C unpickler's BUILD would call
    a = su._Context(["pkg."], "cpu", "a", 0)
    b = su._Context(["pkg."], "cpu", "b", 0)
    assert a.find("pkg.mod", "Cls") is a.find("pkg.mod", "Cls")  # one class per load ...
    assert a.find("pkg.mod", "Cls") is not b.find("pkg.mod", "Cls")  # ... never shared with the next
    rebuild = a.find("torch._utils", "_rebuild_tensor_v2")
    assert rebuild is not b.find("torch._utils", "_rebuild_tensor_v2")
    with pytest.raises(AttributeError):
        rebuild.fn = print


def test_calling_what_a_stand_in_returned_is_refused_naming_file_and_call(tmp_path: Path) -> None:
    marker = _marker(tmp_path)
    path = tmp_path / "network-snapshot.pkl"
    inner = _glob("dnnlib.util", "get_obj_by_name") + b"(" + _text("os.system") + b"tR"
    path.write_bytes(_pickle(inner + b"(" + _text(f"touch {marker}") + b"tR"))
    with pytest.raises(UnsafePickleError) as err:
        load_pickle_file(path, stand_ins=["dnnlib."])
    message = str(err.value)
    assert str(path) in message and "dnnlib.util.get_obj_by_name('os.system')" in message and "calls" in message
    assert not marker.exists()


@pytest.mark.parametrize("body, words", [
    (_glob("builtins", "bytes") + b"(" + _int(10**11) + b"tR", "builtins.bytes(100000000000)"),
    (_glob("builtins", "list") + b"(" + _glob("builtins", "range") + b"(" + _int(10**10) + b"tRtR", "range of"),
    (_glob("numpy._core.multiarray", "_reconstruct") + b"(" + _glob("numpy", "ndarray") + b"(" + _int(10**6)
     + _int(10**6) + b"tC\x01ftR", "numpy array of shape"),
])
def test_sizes_a_file_only_names_are_charged_before_allocating(tmp_path: Path, body: bytes, words: str) -> None:
    path = tmp_path / "bomb.pkl"
    path.write_bytes(_pickle(body))
    with pytest.raises(LoadLimitError, match="allocate") as err:
        load_pickle_file(path)
    assert words in str(err.value)


def test_zip_members_are_checked_against_declared_sizes_before_inflating(tmp_path: Path) -> None:
    src = tmp_path / "ok.pth"
    torch.save({"w": torch.arange(4.0)}, src)
    # The same storage record, now claiming 2**30 elements: refused by its declared size, nothing inflated.
    big = tmp_path / "big.pth"
    _rewrite_zip(src, big, lambda name, raw: raw.replace(b"K\x04", b"J\x00\x00\x00\x40")
                 if name.endswith("data.pkl") else raw)
    with pytest.raises(pickle.UnpicklingError, match="holds 16 bytes, its record declares 4294967296"):
        load_torch_file(big)


def test_tensor_views_are_charged_at_their_logical_size(tmp_path: Path) -> None:
    path = tmp_path / "expanded.pth"
    torch.save({"small": torch.ones(3).expand(4, 3), "huge": torch.ones(1).expand(10**12)}, path)
    with pytest.raises(LoadLimitError, match=r"tensor of size \(1000000000000,\)"):
        load_torch_file(path)
    torch.save({"small": torch.ones(3).expand(4, 3)}, path)
    assert torch.equal(load_torch_file(path)["small"], torch.ones(4, 3))


def test_opcode_scan_is_linear_in_the_pickle(tmp_path: Path) -> None:
    """130 thousand MARK-ed tuples above 65 thousand items: quadratic scans took minutes on this 390 kB pickle."""
    import time

    from aware3d.io.pickle_vm import scan_globals

    data = _pickle(b"(" + b"K\x01" * 65_000 + b"(t" * 130_000 + b"l")
    assert len(data) > 380_000
    start = time.perf_counter()
    assert scan_globals(io.BytesIO(data)) == []
    assert time.perf_counter() - start < 2.0
    got = load_pickle_file(io.BytesIO(data))
    assert len(got) == 195_000 and got[0] == 1 and got[-1] == ()


def test_nesting_and_shared_structures_are_bounded(tmp_path: Path) -> None:
    from aware3d.io.safe_unpickle import expanded_size
    from aware3d.io.unpickle_limits import KeyHashCosts

    deep = tmp_path / "deep.pkl"
    deep.write_bytes(_pickle(b")" + b"\x85" * 5000))  # ((((...)))) 5000 deep
    with pytest.raises(LoadLimitError, match="nest more than 1000 levels"):
        load_pickle_file(deep)
    # Analytic sizes of shared structures: hashing t_k = (t_{k-1}, t_{k-1}) visits 2**(k+1) - 1 tuples.
    t: tuple = ()
    for _ in range(10):
        t = (t, t)
    assert KeyHashCosts(None).cost(t) == 2**11 - 1
    l1: list = []
    for _ in range(10):
        l1 = [l1, l1]
    assert expanded_size(l1, 10**9) == 2**11 - 1
    cyclic: list = []
    cyclic.append(cyclic)
    assert expanded_size(cyclic, 10**9) == 2  # the back reference counts once


def test_module_walks_stop_at_cycles() -> None:
    from aware3d.io.pickled_modules import walk_modules

    leaf = PickledObject("torch.nn.modules.linear.Linear", state={"_modules": {}, "_parameters": {"w": torch.ones(2)}})
    root = PickledObject("pkg.Net", state={"_modules": {"leaf": leaf}, "_parameters": {}})
    leaf.state["_modules"]["up"] = root  # a damaged file: the child holds its parent
    assert [p for p, _ in walk_modules(root)] == ["", "leaf."]
    assert list(root.named_tensors()) == ["leaf.w"]
