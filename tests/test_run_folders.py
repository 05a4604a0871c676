"""Run folders that never trap their user: options checked before anything is written, folders without a checkpoint
that restart, signals from the start of set-up with a distinct exit status, stats without replayed steps, resume
changes that are honoured or refused, exports never behind their checkpoint, tidy temporaries, umask permissions,
and divergence that names a checkpoint written before the bad streak."""

from __future__ import annotations

import errno
import io
import json
import math
import os
import shutil
import signal
import stat
import warnings
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

import aware3d
from aware3d.io.atomic import DiskFullError, atomic_folder, atomic_write_bytes
from aware3d.training import guard
from aware3d.training import state as state_module
from aware3d.training import trainer as trainer_module
from aware3d.training.progress import RunProgress
from aware3d.training.run_folder import checkpoint_step, export_step
from aware3d.training.signals import TrainingAborted
from aware3d.training.stats import read_stats
from aware3d.training.trainer import Trainer, TrainingDiverged, train

from .ball_scene import ImagePool
from .test_training import options, tiny_stage, weights

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def guarded_signals():
    """A SIGINT/SIGTERM that the trainer fails to catch fails the test instead of killing pytest."""
    def not_caught(signum, frame):
        raise AssertionError(f"{signal.Signals(signum).name} was not caught by the trainer")

    previous = {s: signal.signal(s, not_caught) for s in (signal.SIGINT, signal.SIGTERM)}
    yield not_caught
    for s, h in previous.items():
        signal.signal(s, h)


def stats_steps(run: Path) -> list[int]:
    return [s["step"] for s in read_stats(run) if "event" not in s]


def same_weights(a: Path, b: Path, names=("G", "D", "G_ema_0.999", "optim_G", "optim_D")) -> bool:
    for name in names:
        x, y = weights(a, name), weights(b, name)
        if x.keys() != y.keys() or not all(torch.equal(x[k], y[k]) for k in x):
            return False
    return True


# ------------------------------------------------------------------------------------------- options
@pytest.mark.parametrize("change, flag", [
    ({"checkpoint_every": 0}, "--checkpoint-every"), ({"log_every": 0}, "--log-every"),
    ({"sample_seeds": 0}, "--sample-seeds"), ({"steps": 0}, "--steps"), ({"minutes": 0.0}, "--minutes"),
    ({"minutes": -1.0}, "--minutes"), ({"minutes": math.nan}, "--minutes"), ({"max_bad_steps": 0}, "--max-bad-steps"),
    ({"max_update_ratio": 0.5}, "--max-update-ratio"), ({"sample_every": -1}, "--sample-every"),
])
def test_bad_options_are_refused_before_anything_is_written(tmp_path, change, flag):
    with pytest.raises(ValueError, match=flag):
        Trainer(options(tmp_path / "run", **change))
    assert not (tmp_path / "run").exists()


def test_a_wrong_data_is_found_before_the_folder_is_created(tmp_path):
    with pytest.raises((ValueError, OSError), match="nowhere"):
        Trainer(options(tmp_path / "run", data=str(tmp_path / "nowhere")))
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------- no checkpoint yet
def test_a_folder_without_a_checkpoint_restarts_or_resumes_from_step_0(tmp_path, monkeypatch):
    """A full disk at the first checkpoint (safetensors' own error, as the promised DiskFullError) leaves config.json
    and stats but no checkpoint: the same --out starts it again, and --resume continues it from step 0 exactly as
    a fresh run."""
    run = tmp_path / "run"

    def full_disk(tensors, path, *args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(state_module, "save_file", full_disk)
    with pytest.raises(DiskFullError, match="previous version .* is intact"):
        Trainer(options(run, steps=2)).train()
    monkeypatch.undo()
    assert (run / "config.json").is_file() and checkpoint_step(run / "checkpoint") is None
    assert stats_steps(run) == [1, 2] and not [p for p in run.iterdir() if ".tmp." in p.name]

    Trainer(options(run, steps=2))  # the same command again: accepted (it used to say "already holds a run")
    result = Trainer(options(tmp_path / "ignored", resume=str(run))).train()
    assert result.step == 2 and result.stopped_by == "finished"
    assert stats_steps(run) == [1, 2]  # the failed attempt's lines are gone
    Trainer(options(tmp_path / "fresh", steps=2)).train()
    assert same_weights(run, tmp_path / "fresh")
    with pytest.raises(ValueError, match="checkpoint is at step 2.*--resume"):
        Trainer(options(run, steps=2))
    with pytest.raises(FileNotFoundError, match="--out"):
        Trainer(options(tmp_path / "x", resume=str(tmp_path / "nothing")))


# ------------------------------------------------------------------------------------------- signals
class SignalsWhenOpened(ImagePool):
    """A dataset that sends this process SIGTERM when the trainer first asks its length (during set-up)."""

    sent = False

    @property
    def base_length(self) -> int:
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)
        return len(self.images)


def test_sigterm_during_set_up_or_the_step_0_grid_leaves_a_restartable_folder(tmp_path, guarded_signals,
                                                                              monkeypatch):
    data = SignalsWhenOpened(torch.zeros(8, 3, 16, 16))
    result = train(options(tmp_path / "a"), dataset=data)
    assert (result.stopped_by, result.step, result.stop_signal) == ("signal", 0, signal.SIGTERM)
    assert not (tmp_path / "a").exists()  # nothing written
    assert signal.getsignal(signal.SIGTERM) is guarded_signals  # handlers restored

    original, sent = Trainer.sample_grid, []

    def grid_then_signal(self, path, resolution):
        if not sent:
            sent.append(path)
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, path, resolution)

    monkeypatch.setattr(Trainer, "sample_grid", grid_then_signal)
    run = tmp_path / "b"
    result = train(options(run, sample_every=100, steps=1))
    monkeypatch.undo()
    assert (result.stopped_by, result.step) == ("signal", 0)
    assert (run / "samples" / "step-0000000.png").is_file() and not (run / "samples" / "final.png").exists()
    assert checkpoint_step(run / "checkpoint") is None
    assert Trainer(options(tmp_path / "ignored", resume=str(run), steps=None)).train().step == 1  # from step 0


def test_a_second_signal_aborts_at_once_unless_the_checkpoint_is_being_written(tmp_path, guarded_signals,
                                                                              monkeypatch):
    trainer = Trainer(options(tmp_path / "a", steps=50, checkpoint_every=1))
    loss = trainer.recipe.loss

    def twice_in_step_3(phase, chunk, stage):  # (the first of its two chunks)
        if stage.step == 2 and phase.module == "G":
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
        return loss(phase, chunk, stage)

    trainer.recipe.loss = twice_in_step_3
    with pytest.raises(TrainingAborted) as info:
        trainer.train()
    assert isinstance(info.value, SystemExit) and info.value.code == 128 + signal.SIGTERM
    assert checkpoint_step(tmp_path / "a" / "checkpoint") == 2  # the one before the abort, intact
    assert signal.getsignal(signal.SIGTERM) is guarded_signals

    trainer = Trainer(options(tmp_path / "b", steps=50, checkpoint_every=100))
    loss_b, save, sent = trainer.recipe.loss, trainer_module.save_training_checkpoint, []

    def first_in_step_2(phase, chunk, stage):
        if stage.step == 1 and phase.module == "G" and not sent:
            sent.append(stage.step)
            os.kill(os.getpid(), signal.SIGTERM)
        return loss_b(phase, chunk, stage)

    def second_while_saving(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return save(*args, **kwargs)

    trainer.recipe.loss = first_in_step_2
    monkeypatch.setattr(trainer_module, "save_training_checkpoint", second_while_saving)
    result = trainer.train()
    assert (result.stopped_by, result.step) == ("signal", 2)
    assert checkpoint_step(tmp_path / "b" / "checkpoint") == 2


def test_the_command_exits_143_after_a_sigterm_with_a_checkpoint(tmp_path, guarded_signals, monkeypatch, capsys):
    """`aware3d train` stopped by SIGTERM ends with status 143 (a SystemExit, which `python -m aware3d` turns into the
    process's status with no traceback), not 0, and says how to continue."""
    from aware3d.cli.main import main

    step = Trainer.step

    def step_then_sigterm(self):
        record = step(self)
        if self.state.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return record

    monkeypatch.setattr(Trainer, "step", step_then_sigterm)
    run = tmp_path / "run"
    try:
        status = main(["train", "--preset", "pigan-tiny", "--out", str(run), "--steps", "1000", "--log-every", "1",
                       "--sample-every", "0", "--checkpoint-every", "1000", "--no-progress", "--no-tensorboard",
                       "--device", "cpu", "--override", tiny_stage()])
    except SystemExit as e:  # what python -m aware3d exits with
        status = e.code
    assert status == 128 + signal.SIGTERM
    assert checkpoint_step(run / "checkpoint") == 2
    assert f"--resume {run}" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------- resume
class Killed(BaseException):
    """What a SIGKILL does to the loop, as an exception."""


def test_resume_drops_replayed_stats_and_stale_temporaries_and_files_follow_the_umask(tmp_path):
    old_umask = os.umask(0o022)
    try:
        run = tmp_path / "run"
        trainer = Trainer(options(run, steps=4, checkpoint_every=2))
        loss = trainer.recipe.loss

        def killed_in_step_4(phase, chunk, stage):
            if stage.step == 3:
                raise Killed
            return loss(phase, chunk, stage)

        trainer.recipe.loss = killed_in_step_4
        with pytest.raises(Killed):
            trainer.train()
        assert stats_steps(run) == [1, 2, 3] and checkpoint_step(run / "checkpoint") == 2
        stale = [run / ".checkpoint.tmp.dead", run / ".generator.tmp.dead", run / ".stats.jsonl.tmp.dead",
                 run / ".config.json.x1y2.tmp"]
        for p in stale[:2]:
            p.mkdir()
            (p / "G.safetensors").write_bytes(b"\0" * 100)
        for p in stale[2:]:
            p.write_text("torn")
        Trainer(options(tmp_path / "ignored", resume=str(run), steps=4)).train()
        assert stats_steps(run) == [1, 2, 3, 4]
        assert not any(p.exists() for p in stale)
        for folder in ("checkpoint", "generator"):
            assert stat.S_IMODE((run / folder).stat().st_mode) == 0o755, folder
            for f in (run / folder).iterdir():
                assert stat.S_IMODE(f.stat().st_mode) == 0o644, f
    finally:
        os.umask(old_umask)


def test_atomic_writes_follow_the_umask_and_report_any_full_disk(tmp_path):
    old_umask = os.umask(0o002)
    try:
        with atomic_folder(tmp_path / "folder") as tmp:
            (tmp / "a.txt").write_text("x")
        atomic_write_bytes(tmp_path / "file.bin", b"x")
        assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o775
        assert stat.S_IMODE((tmp_path / "file.bin").stat().st_mode) == 0o664
    finally:
        os.umask(old_umask)
    for error in (SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"),
                  OSError(errno.EDQUOT, "Disk quota exceeded")):
        with pytest.raises(DiskFullError, match="folder"):
            with atomic_folder(tmp_path / "folder") as tmp:
                raise error
        assert (tmp_path / "folder" / "a.txt").read_text() == "x"
    with pytest.raises(SafetensorError, match="header"):  # other errors pass unchanged
        with atomic_folder(tmp_path / "folder"):
            raise SafetensorError("invalid header")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin", "folder"]


def stage_dict(**changes) -> dict:
    return json.loads(tiny_stage().partition("=")[2])[0] | changes


def test_resume_honours_permitted_changes_records_them_and_refuses_the_rest(tmp_path):
    run = tmp_path / "run"
    Trainer(options(run, steps=2)).train()
    before = (run / "config.json").read_text()
    refused = [({"override": ("model.hidden_dim=16",)}, "model.hidden_dim"),
               ({"override": (tiny_stage(res=32),)}, "curriculum.stages.0.resolution"),
               ({"preset": "pigan-demo"}, "--preset pigan-demo"), ({"steps": 1}, "--steps 1"),
               ({"seed": 3}, "--seed 3")]
    for change, text in refused:
        with pytest.raises(ValueError, match=text):
            Trainer(options(tmp_path / "x", resume=str(run), **change))
        assert (run / "config.json").read_text() == before, change

    stage = stage_dict(g_lr=1e-4, d_lr=3e-4)
    override = ("curriculum.stages=" + json.dumps([stage]), "loss.r1_gamma=3")
    trainer = Trainer(options(tmp_path / "x", resume=str(run), steps=3, mirror=True, override=override))
    trainer.train()
    doc = json.loads((run / "config.json").read_text())
    assert doc["loss"]["r1_gamma"] == 3 and doc["mirror"] is True and doc["total_steps"] == 3
    assert doc["curriculum"]["stages"][0]["g_lr"] == 1e-4 and trainer.recipe.config.r1_gamma == 3
    [entry] = doc["history"]
    assert entry["step"] == 2 and set(entry["changes"]) == {
        "curriculum.stages.0.g_lr", "curriculum.stages.0.d_lr", "loss.r1_gamma", "mirror", "total_steps"}
    assert entry["changes"]["curriculum.stages.0.g_lr"] == [2e-4, 1e-4]
    last = read_stats(run)[-1]
    assert last["step"] == 3 and last["lr/G"] == pytest.approx(1e-4) and last["lr/D"] == pytest.approx(3e-4)


# ------------------------------------------------------------------------------------------- exports
def test_the_export_is_never_behind_its_checkpoint_and_load_recovers_a_half_renamed_folder(tmp_path, monkeypatch):
    run = tmp_path / "run"
    trainer = Trainer(options(run, steps=2, checkpoint_every=1))
    save = trainer_module.save_training_checkpoint

    def killed_in_the_final_checkpoint(path, state, *args, **kwargs):
        if state.step == 2:
            raise Killed
        return save(path, state, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "save_training_checkpoint", killed_in_the_final_checkpoint)
    with pytest.raises(Killed):
        trainer.train()
    monkeypatch.undo()
    assert export_step(run / "generator") == 2 and checkpoint_step(run / "checkpoint") == 1  # ahead, not behind
    shutil.copytree(run / "generator", tmp_path / "generator-2")
    assert Trainer(options(tmp_path / "x", resume=str(run))).train().stopped_by == "finished"
    assert export_step(run / "generator") == checkpoint_step(run / "checkpoint") == 2
    same = load_file(str(tmp_path / "generator-2" / "generator.safetensors"))
    assert all(torch.equal(v, same[k]) for k, v in load_file(str(run / "generator" / "generator.safetensors")).items())

    # An export behind its checkpoint (what writing the checkpoint first left after a kill): load warns, and
    # resuming the finished run exports it again.
    generator = json.loads((run / "generator" / "config.json").read_text())
    generator["source"]["step"] = 1
    (run / "generator" / "config.json").write_text(json.dumps(generator))
    with pytest.warns(UserWarning, match="step 1.*--resume"):
        aware3d.load(str(run))
    assert Trainer(options(tmp_path / "x", resume=str(run))).train().stopped_by == "finished"
    assert export_step(run / "generator") == 2

    # A kill between the two renames of an export: generator/ is missing, .generator.old holds it.
    os.replace(run / "generator", run / ".generator.old")
    assert aware3d.load(str(run / "generator")).family == "pigan"
    os.replace(run / "generator", run / ".generator.old")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert aware3d.load(str(run)).family == "pigan"


# ------------------------------------------------------------------------------------------- divergence
def test_absurd_is_relative_to_the_running_median_after_a_warm_up():
    history = [float(v) for v in range(1, guard.WARMUP + 1)]
    median = guard.running_median(history)
    assert not guard.is_absurd(1e3 * median * 0.999, history, 1e3)
    assert guard.is_absurd(1e3 * median * 1.001, history, 1e3)
    assert not guard.is_absurd(1e9, history[:-1], 1e3) and not guard.is_absurd(1e9, history, 0)
    tiny = [1e-4] * guard.WARMUP  # the floor: a loss that fell toward 0 does not make 999 absurd
    assert not guard.is_absurd(999.0, tiny, 1e3) and guard.is_absurd(1001.0, tiny, 1e3)
    assert not guard.judge({"loss": math.inf}, True, {}, "G_main", 1e3).finite


def test_a_learning_rate_blow_up_stops_the_run_naming_a_checkpoint_from_before_it(tmp_path):
    """At step 12 the learning rates jump to 1: D's weights explode in that step while every number stays finite,
    the next updates are absurd (loss and gradient norm ~1e15 x their median), then non-finite. The run stops naming
    checkpoint-good/, whose weights are sane, not the checkpoint written during the streak; resuming from it
    with the old rates starts a new streak and trains on."""
    run = tmp_path / "run"
    blow_up = [stage_dict(batch_split=1), stage_dict(start=12, g_lr=1.0, d_lr=1.0, batch_split=1)]
    override = ("curriculum.stages=" + json.dumps(blow_up),)
    with pytest.raises(TrainingDiverged, match="5 consecutive") as info:
        Trainer(options(run, steps=40, checkpoint_every=4, max_bad_steps=5, override=override)).train()
    good = run / "checkpoint-good"
    good_step = checkpoint_step(good)
    assert good_step is not None and good_step <= 12 and f"{good} (step {good_step}" in str(info.value)
    assert checkpoint_step(run / "checkpoint") == 16  # written in the streak
    assert any(s.get("event") == "absurd_update_skipped" for s in read_stats(run))
    assert max(v.abs().max().item() for v in load_file(str(good / "D.safetensors")).values()) < 10
    assert Trainer(options(tmp_path / "x", resume=str(run), steps=40, override=override)).state.consecutive_bad == 0

    calm = ("curriculum.stages=" + json.dumps([stage_dict(batch_split=1), stage_dict(start=12, batch_split=1)]),)
    result = Trainer(options(tmp_path / "x", resume=str(good), steps=good_step + 2, override=calm)).train()
    assert (result.step, result.stopped_by) == (good_step + 2, "finished")
    assert checkpoint_step(run / "checkpoint") == good_step + 2
    assert stats_steps(run)[-3:] == [good_step, good_step + 1, good_step + 2]
    assert json.loads((run / "config.json").read_text())["history"][-1]["step"] == good_step


# ------------------------------------------------------------------------------------------- progress
def test_training_by_time_shows_time_not_a_billion_steps(tmp_path, capsys):
    text = io.StringIO()
    bar = RunProgress(10 ** 9, 0, minutes=2.0, enabled=True, file=text)
    bar.update(3, 30.0, {"advG": "0.7"})
    bar.close()
    assert "00:30/02:00" in text.getvalue() and "step 3" in text.getvalue()
    assert "1000000000" not in text.getvalue()
    Trainer(options(tmp_path / "run", steps=10 ** 9, minutes=1e-6, progress=True)).train()
    err = capsys.readouterr().err
    assert "train time" in err and "1000000000" not in err
