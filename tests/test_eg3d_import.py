"""Safe import of official EG3D pickles: nothing in the file runs, unknown classes/keys/shapes are refused
with a list, numpy 1 and numpy 2 scalar names both load.

Hostile files are made by re-pickling the reference snapshot the way the official code writes it
(``torch_utils.persistence._reconstruct_persistent_obj(meta)`` records with the class source, plain
classes by module path), with the changes each test needs.
"""

import copy
import copyreg
import io
import pickle
import pickletools
import sys
import types

import numpy as np
import pytest
import torch

from aware3d.io.keymap import CheckpointMismatchError
from aware3d.io.pickled_modules import walk_modules
from aware3d.io.safe_unpickle import PickledObject, UnsafePickleError, load_pickle_file
from aware3d.models.eg3d.convert import (
    STAND_INS,
    EG3DImportError,
    build_generator,
    import_official_eg3d,
    snapshot_from_data,
)

from .conftest import require_reference


@pytest.fixture(scope="module")
def snapshot_path():
    return require_reference("eg3d", "network-snapshot.pkl")


@pytest.fixture(scope="module")
def raw_snapshot(snapshot_path):
    """The snapshot as inert stand-ins (G and D dropped to keep re-pickling cheap)."""
    data = load_pickle_file(snapshot_path, stand_ins=STAND_INS)
    return {"training_set_kwargs": data["training_set_kwargs"], "G_ema": data["G_ema"], "augment_pipe": None}


@pytest.fixture(scope="module")
def reference_state(raw_snapshot):
    return {k: v.clone() for k, v in build_generator(raw_snapshot["G_ema"], "ref").state_dict().items()}


def _fake_global(monkeypatch, module: str, name: str, obj):
    """Make ``module.name`` resolve to ``obj`` for the pickler (the files then reference that global)."""
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        mod_name = ".".join(parts[:i])
        if i == len(parts) or mod_name not in sys.modules:
            monkeypatch.setitem(sys.modules, mod_name, types.ModuleType(mod_name))
    setattr(sys.modules[module], name, obj)
    obj.__module__, obj.__qualname__ = module, name


def write_official_style(path, data, monkeypatch, *, numpy1: bool = False, module_src: str | None = None) -> bytes:
    """Pickle ``data`` (a dict of PickledObject trees) as EG3D's training loop would; returns the bytes.

    numpy1: write float64 scalars as ``numpy.core.multiarray.scalar`` (numpy 1.x files) instead of
    ``numpy._core.multiarray.scalar``. module_src: replace every embedded class source by this text.
    """
    with monkeypatch.context() as m:
        def _reconstruct_persistent_obj(meta):  # only its name ends up in the file
            raise AssertionError("never called")

        _fake_global(m, "torch_utils.persistence", "_reconstruct_persistent_obj", _reconstruct_persistent_obj)
        plain: dict[str, type] = {}

        def plain_class(qualname: str) -> type:
            if qualname.startswith("torch.nn.modules."):
                mod, _, name = qualname.rpartition(".")
                return getattr(sys.modules[mod], name)
            if qualname not in plain:
                mod, _, name = qualname.rpartition(".")
                cls = type(name, (), {})
                _fake_global(m, mod, name, cls)
                plain[qualname] = cls
            return plain[qualname]

        class PlainInstance:
            """Pickles as NEWOBJ(cls) + BUILD(state), like an ordinary class instance."""

            def __init__(self, cls, state):
                self.cls, self.state = cls, state

            @property
            def __class__(self):  # pickle checks that NEWOBJ's class is the object's class
                return self.cls

            def __reduce_ex__(self, protocol):
                return copyreg.__newobj__, (self.cls,), self.state

        def materialize(obj):
            # Plain (non-persistent) modules become objects that pickle by class reference.
            mods = (obj.state or {}).get("_modules") or {}
            for k, child in list(mods.items()):
                if isinstance(child, PickledObject):
                    mods[k] = materialize(child)
            return obj if "module_src" in obj.extra else PlainInstance(plain_class(obj.qualname), obj.state)

        data = copy.deepcopy(data)
        for key, value in data.items():
            if isinstance(value, PickledObject):
                data[key] = materialize(value)

        if numpy1:
            def scalar(dtype, raw):  # pragma: no cover - never called, only referenced
                raise AssertionError("never called")
            _fake_global(m, "numpy.core.multiarray", "scalar", scalar)

        class Pickler(pickle.Pickler):
            def reducer_override(self, obj):
                if isinstance(obj, PickledObject):
                    if "module_src" in obj.extra:
                        meta = {"type": "class", "version": 6,
                                "module_src": module_src if module_src is not None else obj.extra["module_src"],
                                "class_name": obj.qualname, "state": obj.state}
                        return _reconstruct_persistent_obj, (meta,)
                if numpy1 and type(obj) is np.float64:
                    return scalar, (np.dtype("float64"), obj.tobytes())
                return NotImplemented

        buf = io.BytesIO()
        Pickler(buf, protocol=4).dump(data)
    raw = buf.getvalue()
    path.write_bytes(raw)
    return raw


def _globals(raw: bytes) -> set[str]:
    out, strings = set(), []
    for op, arg, _ in pickletools.genops(raw):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL":
            out.add(f"{strings[-2]}.{strings[-1]}")
    return out


PAYLOAD = "open({target!r}, 'w').write('the embedded source ran')\n"


def test_embedded_source_never_runs_numpy1_and_numpy2(tmp_path, monkeypatch, raw_snapshot, reference_state):
    """Every class source replaced by code that writes a file; numpy-1 scalar names; the import still gives
    the reference weights and nothing was written."""
    target = tmp_path / "pwned"
    payload = PAYLOAD.format(target=str(target))
    exec(compile(payload, "payload", "exec"), {})  # the payload is live: this is what the official loader would do
    assert target.exists()
    target.unlink()

    for numpy1 in (True, False):
        path = tmp_path / f"snapshot_np{1 if numpy1 else 2}.pkl"
        raw = write_official_style(path, raw_snapshot, monkeypatch, numpy1=numpy1, module_src=payload)
        names = _globals(raw)
        assert ("numpy.core.multiarray.scalar" in names) == numpy1
        assert ("numpy._core.multiarray.scalar" in names) == (not numpy1)
        assert "torch_utils.persistence._reconstruct_persistent_obj" in names
        assert "training.triplane.OSGDecoder" in names and "copyreg._reconstructor" not in names
        assert any(op.name == "NEWOBJ" for op, _, _ in pickletools.genops(raw))
        G = import_official_eg3d(path)
        assert not target.exists()
        state = G.state_dict()
        assert state.keys() == reference_state.keys()
        assert all(torch.equal(state[k], reference_state[k]) for k in state)
        fc0 = raw_snapshot["G_ema"].children()["backbone"].children()["mapping"].children()["fc0"]
        assert isinstance(fc0.get("weight_gain"), np.floating)


def test_small_hostile_pickle_is_refused_without_running(tmp_path, monkeypatch):
    target = tmp_path / "pwned"
    payload = PAYLOAD.format(target=str(target))
    root = PickledObject("TriPlaneGenerator", state={"_modules": {}, "_parameters": {}, "_buffers": {}},
                         extra={"module_src": payload})
    path = tmp_path / "tiny.pkl"
    write_official_style(path, {"G_ema": root}, monkeypatch)
    with pytest.raises(EG3DImportError, match="_init_kwargs"):
        import_official_eg3d(path)
    assert not target.exists()


def test_disallowed_global_is_refused_before_anything_runs(tmp_path):
    target = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return os.system, (f"touch {target}",)

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": Evil()}, protocol=4))
    with pytest.raises(UnsafePickleError) as err:
        import_official_eg3d(path)
    assert any(n.endswith("system") for n in err.value.names)
    assert not target.exists()


def test_missing_file_and_wrong_content(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        import_official_eg3d(tmp_path / "nope.pkl")
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(EG3DImportError, match="not an EG3D network pickle"):
        import_official_eg3d(path)
    path.write_bytes(pickle.dumps({"something": 1}))
    with pytest.raises(EG3DImportError, match="no EG3D generator"):
        import_official_eg3d(path)


def _mutated(raw_snapshot):
    return copy.deepcopy(raw_snapshot)


def _find(root: PickledObject, path: str) -> PickledObject:
    return dict(walk_modules(root))[path]


def test_unknown_classes_are_listed(raw_snapshot):
    data = _mutated(raw_snapshot)
    _find(data["G_ema"], "decoder.").qualname = "training.triplane.FancyDecoder"
    _find(data["G_ema"], "backbone.synthesis.b8.conv0.").qualname = "ModulatedAttention"
    with pytest.raises(EG3DImportError) as err:
        snapshot_from_data(data, "x.pkl")
    msg = str(err.value)
    assert "training.triplane.FancyDecoder at G_ema.decoder" in msg
    assert "persistent class ModulatedAttention at G_ema.backbone.synthesis.b8.conv0" in msg
    assert "known plain classes" in msg
    snapshot_from_data(raw_snapshot, "x.pkl")  # the unmodified snapshot passes


def _params(root: PickledObject, module: str) -> dict:
    return _find(root, module).state["_parameters"]


@pytest.mark.parametrize("problem", ["missing", "wrong_shape", "unknown_key", "odd_filter"])
def test_key_problems_are_listed(raw_snapshot, problem):
    data = _mutated(raw_snapshot)
    root = data["G_ema"]
    if problem == "missing":
        del _params(root, "backbone.synthesis.b32.conv1.")["weight"]
        expected = "keys missing from x.pkl [G_ema]: backbone.synthesis.b32.conv1.weight"
    elif problem == "wrong_shape":
        _params(root, "decoder.net.2.")["bias"] = torch.nn.Parameter(torch.zeros(34))
        expected = "shape mismatch: decoder.net.2.bias is (34,)"
    elif problem == "unknown_key":
        _params(root, "superresolution.block1.")["gamma"] = torch.nn.Parameter(torch.zeros(3))
        expected = "unexpected keys in x.pkl [G_ema]: superresolution.block1.gamma"
    else:
        _find(root, "backbone.synthesis.b16.").state["_buffers"]["resample_filter"] = torch.ones(4, 4) / 16
        expected = "backbone.synthesis.b16.resample_filter"
    with pytest.raises(CheckpointMismatchError) as err:
        build_generator(root, "x.pkl")
    assert expected in str(err.value)


@pytest.mark.parametrize("change,expected", [
    ({"ray_start": "auto", "ray_end": "auto"}, "'auto' box intersection is not supported"),
    ({"clamp_mode": "relu"}, "clamp_mode='relu' is not supported"),
    ({"superresolution_module": "training.superresolution.SuperresolutionHybrid16X"}, "SuperresolutionHybrid16X is not supported"),
    ({"mystery_option": 3}, "unknown rendering_kwargs: mystery_option"),
])
def test_unsupported_rendering_settings_are_refused(raw_snapshot, change, expected):
    data = _mutated(raw_snapshot)
    data["G_ema"].state["rendering_kwargs"].update(change)
    with pytest.raises(EG3DImportError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        build_generator(data["G_ema"], "x.pkl")


def test_state_overrides_init_kwargs(raw_snapshot):
    """neural_rendering_resolution and rendering_kwargs come from the pickled state, not the constructor."""
    data = _mutated(raw_snapshot)
    data["G_ema"].state["neural_rendering_resolution"] = 128
    data["G_ema"].state["rendering_kwargs"]["depth_resolution_importance"] = 24
    G = build_generator(data["G_ema"], "x.pkl")
    assert G.config.neural_rendering_resolution == 128 and G.config.render.num_importance == 24
    assert data["G_ema"].get("_init_kwargs")["rendering_kwargs"]["depth_resolution_importance"] == 48
