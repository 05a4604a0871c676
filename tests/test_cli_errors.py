"""Bad input gives one line, not a traceback (issue 17, "Errors, not tracebacks").

Each case of the issue goes through the command line in-process (``main([...])``, stderr captured): a non-zero
exit status, one line on stderr that names the file or option, no ``Traceback`` unless ``--debug``. Then the
range checks behind them: every numeric field of every config (each registered family's, the renderer's, the
camera distribution's, the patch sampler's) refuses out-of-range and non-finite values with an error naming it.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import pickle
import shutil
import subprocess
import sys
import types
import typing
import zipfile
from pathlib import Path

import pytest
import torch

from aware3d.cameras import PoseDistribution
from aware3d.cli.main import EXIT_BUG, EXIT_INTERRUPTED, EXIT_USER_ERROR, main
from aware3d.config import apply_overrides, from_dict, to_dict
from aware3d.errors import CheckpointError, ConfigError, OptionError, UserError
from aware3d.io.atomic import atomic_folder
from aware3d.io.checkpoint import load_generator, save_generator
from aware3d.models.registry import all_presets, build_generator, families, get_preset
from aware3d.rendering import RenderConfig
from aware3d.rendering.patches import PatchSamplerConfig
from aware3d.tools.render import RenderOptions

REPO = Path(__file__).resolve().parents[1]
TINY = families()["pigan"].tiny.model


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    """(exit status, stderr) of ``aware3d argv`` run in this process."""
    capsys.readouterr()
    status = main(list(argv))
    return status, capsys.readouterr().err


def assert_one_line(status: int, err: str, *names: str, expected: int = EXIT_USER_ERROR) -> str:
    """A user error: status ``expected``, one stderr line without a traceback, naming each of ``names``."""
    lines = err.strip().splitlines()
    assert status == expected, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("aware3d "), err
    for name in names:
        assert name in lines[0], (name, err)
    return lines[0]


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> Path:
    return save_generator(build_generator(TINY, seed=1), tmp_path_factory.mktemp("ckpt") / "good")


def edited_checkpoint(good: Path, tmp_path: Path, edit) -> Path:
    """A copy of ``good`` whose config.json went through ``edit(meta) -> new JSON value``."""
    folder = tmp_path / "edited"
    shutil.copytree(good, folder)
    meta = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(edit(meta)))  # json writes NaN as NaN, as a hand edit might
    return folder


def _with(meta: dict, path: tuple[str, ...], value) -> dict:
    node = meta
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return meta


def _without(meta: dict, key: str) -> dict:
    meta.pop(key)
    return meta


# ------------------------------------------------------------------------------ options out of range
@pytest.mark.parametrize("argv, flag", [
    (["render", "--resolution", "-4"], "--resolution"),
    (["render", "--resolution", "0"], "--resolution"),  # 0 is not "the model's": leave the option out for that
    (["render", "--num-samples", "0"], "--num-samples"),
    (["render", "--truncation-psi", "nan"], "--truncation-psi"),
    (["render", "--seeds", "0", "-1"], "--seeds"),
    (["render", "--device", "no-such-device"], "--device"),
    (["video", "--grid", "0x2"], "--grid"),
    (["video", "--fps", "0"], "--fps"),
    (["interpolate", "--frames-per-seed", "0"], "--frames-per-seed"),
    (["shapes", "--grid", "1"], "--grid"),
    (["shapes", "--cube-size", "-0.3"], "--cube-size"),
    (["visualize", "--num-interp-steps", "1"], "--num-interp-steps"),
    (["visualize", "--tile", "0"], "--tile"),
    (["metrics", "--batch", "0"], "--batch"),
    (["dataset", "--source", "synthetic-heads", "--resolution", "-4"], "--resolution"),
    (["dataset", "--source", "synthetic-heads", "--fov-deg", "inf"], "--fov-deg"),
    (["light-prior", "--codes", "x.csv", "--min-lz", "1"], "--min-lz"),
])
def test_option_out_of_range_is_one_line(capsys, tmp_path, argv, flag):
    status, err = run_cli(capsys, *argv, "--out", str(tmp_path / "out"))
    assert_one_line(status, err, flag)
    assert not (tmp_path / "out").exists()  # refused before anything is loaded or written


def test_zero_resolution_is_refused_not_read_as_the_models():
    with pytest.raises(OptionError, match=r"--resolution must be an integer >= 1, got 0; leave --resolution out"):
        RenderOptions(resolution=0)
    assert RenderOptions(resolution=None).resolution is None and RenderOptions(resolution=8).resolution == 8


def test_debug_adds_the_traceback(capsys, tmp_path):
    out = str(tmp_path / "o")
    status, err = run_cli(capsys, "--debug", "render", "--resolution", "-4", "--out", out)
    assert status == EXIT_USER_ERROR and "Traceback" in err and "OptionError" in err
    assert err.strip().splitlines()[-1].startswith("aware3d render: error: --resolution")
    status, err = run_cli(capsys, "render", "--resolution", "-4", "--out", out, "--debug")  # after the verb too
    assert status == EXIT_USER_ERROR and "Traceback" in err


def test_process_exit_status_and_stderr(tmp_path):
    """The real entry point: ``python -m aware3d`` exits 2 with one line (about 4 s: the import)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "aware3d", "render", "--resolution", "-4", "--out",
                           str(tmp_path / "o")], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert_one_line(proc.returncode, proc.stderr, "--resolution")
    assert proc.stdout == ""


# -------------------------------------------------------------------------------- config overrides
def test_override_with_an_impossible_size_names_the_field(capsys, tmp_path):
    tiny = families()["pigan"].tiny
    out = tmp_path / "run"
    status, err = run_cli(capsys, "train", "--preset", tiny.train, "--data", "synthetic-heads", "--out", str(out),
                          "--steps", "1", "--override", "model.hidden_dim=-8")
    assert_one_line(status, err, "hidden_dim", "-8")
    assert not (out / "checkpoint").exists()


@pytest.mark.parametrize("override, field", [
    ("hidden_dim=-8", "hidden_dim"), ("fov_deg=NaN", "fov_deg"), ("fov_deg=180", "fov_deg"),
    ("render.near=2", "near"), ("render.num_samples=0", "num_samples"), ("pose.radius=0", "radius"),
    ("eval_render.max_points=0", "max_points"),
])
def test_override_out_of_range_is_a_config_error(override, field):
    with pytest.raises(ConfigError, match=field) as err:
        apply_overrides(get_preset(TINY)[1], [override])
    assert override in str(err.value)


# ------------------------------------------------------------------------------ damaged checkpoints
@pytest.mark.parametrize("edit, names", [
    (lambda m: _with(m, ("config", "fov_deg"), math.nan), ("config.json", "fov_deg", "finite")),
    (lambda m: _with(m, ("config", "hidden_dim"), -8), ("config.json", "hidden_dim", "-8")),
    (lambda m: _with(m, ("config", "render", "near"), 5.0), ("config.json", "render", "far must be > near")),
    (lambda m: _with(m, ("config", "render"), "x"), ("config.json", "render", "RenderConfig")),
    (lambda m: _with(m, ("config", "z_dim"), "32"), ("config.json", "z_dim", "integer")),
    (lambda m: _with(m, ("config",), [1, 2]), ("config.json", "'config'", "list")),
    (lambda m: _with(m, ("family",), 3), ("config.json", "'family'")),
    (lambda m: _with(m, ("family",), "no-such-family"), ("config.json", "no-such-family")),
    (lambda m: _without(m, "family"), ("config.json", "'family'", "missing")),
    (lambda m: _without(m, "config"), ("config.json", "'config'", "missing")),
    (lambda m: _with(m, ("version",), "1"), ("config.json", "version")),
    (lambda m: [m], ("config.json", "list")),
])
def test_malformed_config_json_is_one_line(capsys, tmp_path, good_checkpoint, edit, names):
    folder = edited_checkpoint(good_checkpoint, tmp_path, edit)
    with pytest.raises(CheckpointError):
        load_generator(folder)
    status, err = run_cli(capsys, "render", "--checkpoint", str(folder), "--out", str(tmp_path / "o"))
    assert_one_line(status, err, str(folder), *names)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_damaged_safetensors_is_one_line(capsys, tmp_path, good_checkpoint, damage):
    folder = tmp_path / "ckpt"
    shutil.copytree(good_checkpoint, folder)
    weights = folder / "generator.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"garbage": b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!",
                         "truncated": data[: len(data) // 2], "empty": b""}[damage])
    with pytest.raises(CheckpointError, match="generator.safetensors"):
        load_generator(folder)
    status, err = run_cli(capsys, "render", "--checkpoint", str(folder), "--out", str(tmp_path / "o"))
    assert_one_line(status, err, str(weights), "re-export")


# -------------------------------------------------------------------------------- hostile pickles
@pytest.fixture
def official_class(monkeypatch) -> type:
    """A class that pickles as the official pi-GAN generator (so the pi-GAN importer takes the file)."""
    package, module = types.ModuleType("generators"), types.ModuleType("generators.generators")
    cls = type("ImplicitGenerator3d", (), {"__module__": "generators.generators"})
    module.ImplicitGenerator3d, package.generators = cls, module
    monkeypatch.setitem(sys.modules, "generators", package)
    monkeypatch.setitem(sys.modules, "generators.generators", module)
    return cls


class _Touch:
    """Pickles as a call of os.system that would create ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("verb", ["render", "convert"])
def test_unsafe_pickle_is_one_line_and_runs_nothing(capsys, tmp_path, official_class, verb):
    evil, marker = tmp_path / "generator.pth", tmp_path / "MARKER"
    torch.save([official_class(), _Touch(marker)], evil)
    argv = (["render", "--checkpoint", str(evil), "--out", str(tmp_path / "o")] if verb == "render"
            else ["convert", str(evil), str(tmp_path / "o")])
    status, err = run_cli(capsys, *argv)
    assert_one_line(status, err, str(evil), "system", "not executed")
    assert not marker.exists() and not (tmp_path / "o").exists()


def test_truncated_torch_zip_is_one_line(capsys, tmp_path, official_class):
    full, broken = tmp_path / "full.pth", tmp_path / "generator.pth"
    torch.save([official_class(), torch.zeros(3)], full)
    with zipfile.ZipFile(full) as src, zipfile.ZipFile(broken, "w") as dst:
        for info in src.infolist():
            if not info.filename.endswith("/data/0"):  # drop the tensor's storage record
                dst.writestr(info, src.read(info))
    status, err = run_cli(capsys, "render", "--checkpoint", str(broken), "--out", str(tmp_path / "o"))
    assert_one_line(status, err, str(broken), "storage")


# ------------------------------------------------------------------- what the CLI does with each class
def _raising(error: BaseException):
    def run(opts):
        raise error
    return run


def test_reader_error_without_a_file_name_gets_the_input_option(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("aware3d.tools.render.run", _raising(pickle.UnpicklingError("malformed pickle: bad opcode")))
    status, err = run_cli(capsys, "render", "--checkpoint", "x.pth", "--out", str(tmp_path / "o"))
    assert_one_line(status, err, "--checkpoint x.pth", "malformed pickle")


def test_disk_full_is_one_line(capsys, tmp_path, monkeypatch):
    target = tmp_path / "model"

    def run(opts):
        with atomic_folder(target):
            raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr("aware3d.tools.render.run", run)
    status, err = run_cli(capsys, "render", "--out", str(tmp_path / "o"))
    assert_one_line(status, err, str(target), "no space left")


def test_user_error_subclasses_are_one_line(capsys, tmp_path, monkeypatch):
    class CustomError(UserError):
        pass
    monkeypatch.setattr("aware3d.tools.render.run", _raising(CustomError("the thing at fault, and the fix")))
    status, err = run_cli(capsys, "render", "--out", str(tmp_path / "o"))
    assert_one_line(status, err, "the thing at fault, and the fix")


def test_a_bug_keeps_its_traceback_and_asks_for_a_report(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("aware3d.tools.render.run", _raising(KeyError("w_avg")))
    status, err = run_cli(capsys, "render", "--out", str(tmp_path / "o"))
    assert status == EXIT_BUG and "Traceback" in err and "KeyError" in err
    assert "internal error" in err and "report" in err


def test_ctrl_c_exits_130(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("aware3d.tools.render.run", _raising(KeyboardInterrupt()))
    status, err = run_cli(capsys, "render", "--out", str(tmp_path / "o"))
    assert_one_line(status, err, "interrupted", expected=EXIT_INTERRUPTED)


# ------------------------------------------------------------------------- every config's ranges
def _base_configs() -> list[tuple[str, object]]:
    """One valid instance of every config class: each family's tiny preset and the shared nested configs."""
    out = [(f.config_cls.__name__, get_preset(f.tiny.model)[1]) for _, f in sorted(families().items())]
    return out + [("RenderConfig", RenderConfig()), ("PoseDistribution", PoseDistribution("gaussian", 1.5, 1.5, 0.3)),
                  ("PatchSamplerConfig", PatchSamplerConfig())]


BASES = _base_configs()


def _numeric_fields(cfg) -> list[tuple[str, type, bool]]:
    """(name, int or float, holds a tuple) for each numeric field of ``cfg`` (Optional stripped)."""
    out = []
    for name, tp in typing.get_type_hints(type(cfg)).items():
        args = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_origin(tp) in (
            typing.Union, types.UnionType) else [tp]
        base = args[0] if len(args) == 1 else None
        inner = typing.get_args(base)[:1] if typing.get_origin(base) is tuple else ()
        kind = inner[0] if inner else base
        if kind in (int, float):
            out.append((name, kind, bool(inner)))
    return out


def _bad_value(cfg, name: str, holds_tuple: bool, bad):
    """``bad`` in place of the field (its first item for a tuple; a 2-tuple where the default is None)."""
    if not holds_tuple:
        return bad
    current = getattr(cfg, name) or (16, 8)
    return (bad, *current[1:])


CASES = [(label, cfg, name, kind, tup) for label, cfg in BASES for name, kind, tup in _numeric_fields(cfg)]


@pytest.mark.parametrize("label, cfg, name, kind, holds_tuple", CASES, ids=[f"{c[0]}.{c[2]}" for c in CASES])
def test_every_numeric_field_refuses_nonsense(label, cfg, name, kind, holds_tuple):
    """NaN and infinity in every number field, and -8 in every integer field (every size and count), are
    refused by construction and by from_dict, naming the field."""
    bads = [math.nan, math.inf] if kind is float else [-8]
    for bad in bads:
        value = _bad_value(cfg, name, holds_tuple, bad)
        with pytest.raises(ConfigError, match=name):
            dataclasses.replace(cfg, **{name: value})
        data = to_dict(cfg)
        data[name] = list(value) if holds_tuple else value
        with pytest.raises(ConfigError, match=rf"{label}.*{name}"):
            from_dict(type(cfg), data)


@pytest.mark.parametrize("name", sorted(all_presets()))
def test_every_preset_passes_its_checks_and_round_trips(name):
    cfg = get_preset(name)[1]
    assert from_dict(type(cfg), json.loads(json.dumps(to_dict(cfg)))) == cfg


@pytest.mark.parametrize("fov, ok", [(0.0, False), (-12.0, False), (180.0, False), (1e-3, True), (179.0, True)])
def test_fov_must_lie_in_0_180(fov, ok):
    for _, f in sorted(families().items()):
        cfg = get_preset(f.tiny.model)[1]
        if ok:
            assert dataclasses.replace(cfg, fov_deg=fov).fov_deg == fov
        else:
            with pytest.raises(ConfigError, match=r"fov_deg must be a finite number in \(0, 180\)"):
                dataclasses.replace(cfg, fov_deg=fov)


def test_render_ray_bounds():
    with pytest.raises(ConfigError, match="far must be > near"):
        RenderConfig(near=1.0, far=1.0)
    with pytest.raises(ConfigError, match="near must be a finite number >= 0"):
        RenderConfig(near=-0.5, far=1.0)
    with pytest.raises(ConfigError, match="disparity spacing needs near > 0"):
        RenderConfig(near=0.0, far=1.0, spacing="disparity")
    assert RenderConfig(near=0.0, far=1.0, num_importance=0).num_importance == 0  # 0: no fine samples


def test_family_specific_checks():
    shade = get_preset(families()["shadegan"].tiny.model)[1]
    with pytest.raises(ConfigError, match="tracker_channels must be a multiple of 16"):
        dataclasses.replace(shade, tracker_channels=40)
    with pytest.raises(ConfigError, match="light_ratio"):
        dataclasses.replace(shade, light_ratio=1.5)
    epi = get_preset(families()["epigraf"].tiny.model)[1]
    with pytest.raises(ConfigError, match="last delta"):  # compositing must match the background model
        dataclasses.replace(epi, background="plane")
    eg3d = get_preset(families()["eg3d"].tiny.model)[1]
    with pytest.raises(ConfigError, match="plane_resolution must be a power of two"):
        dataclasses.replace(eg3d, plane_resolution=48)
    with pytest.raises(ConfigError, match="decoder_output_dim"):
        dataclasses.replace(eg3d, decoder_output_dim=2)


@pytest.mark.parametrize("kwargs", [{"resolution": 0}, {"resolution": -4}, {"num_samples": 0}])
def test_python_render_refuses_impossible_sizes(kwargs):
    """``aware3d.render`` from Python: 0 must not silently mean the model's resolution (None does)."""
    import aware3d

    G = build_generator(families()["pigan"].tiny.model)
    with pytest.raises(OptionError, match=next(iter(kwargs))):
        aware3d.render(G, [0], **kwargs)
    assert aware3d.render(G, [0], resolution=4).image.shape[-1] == 4
