"""Snapshots of a run at each metrics evaluation, and choosing the best one (``--checkpoint RUN --best NAME``)."""

from __future__ import annotations

import json

import pytest
import torch

from aware3d import load
from aware3d.cli.main import main
from aware3d.io.checkpoint import save_generator
from aware3d.models.registry import build_generator
from aware3d.training.trainer import Trainer
from aware3d.training.snapshots import (best_snapshot, is_run_dir, list_snapshots, prune_snapshots, run_generator,
                                        write_snapshot)
from tests.test_training import options


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Three steps of pigan-tiny with SWD on 16 images after every step."""
    out = tmp_path_factory.mktemp("snap") / "run"
    Trainer(options(out, steps=3, metrics=("swd",), metrics_every=1, metrics_num_gen=16)).train()
    return out


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_every_evaluation_keeps_its_generator_and_numbers(run):
    snaps = list_snapshots(run)
    assert [s.step for s in snaps] == [1, 2, 3]
    stats = {json.loads(line)["step"]: json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()
             if "metrics/swd" in line}
    for s in snaps:
        assert s.results["swd"] == pytest.approx(stats[s.step]["metrics/swd"]) and s.higher_is_better == {"swd": False}
        assert (s.path / "generator.safetensors").is_file()
        assert json.loads((s.path / "config.json").read_text())["source"]["step"] == s.step
    # The snapshots are different generators (training moved the EMA between evaluations).
    assert not same_weights(load(snaps[0].path), load(snaps[-1].path))


def test_best_picks_the_lowest_recorded_value_and_load_follows(run):
    snaps = list_snapshots(run)
    lowest = min(snaps, key=lambda s: s.results["swd"])
    assert best_snapshot(run, "swd").path == lowest.path
    assert same_weights(load(run, best="swd"), load(lowest.path))
    # Without --best a run folder means its latest exported generator.
    assert is_run_dir(run) and run_generator(run) == run / "generator"
    assert same_weights(load(run), load(run / "generator"))


def test_tools_take_a_run_and_best(run, tmp_path):
    out = tmp_path / "render"
    assert main(["render", "--checkpoint", str(run), "--best", "swd", "--out", str(out), "--resolution", "16",
                 "--num-samples", "4", "--no-progress"]) == 0
    record = json.loads(next(out.glob("*.json")).read_text())
    assert record["options"]["best"] == "swd"
    assert record["model"]["source"]["step"] == best_snapshot(run, "swd").step


def test_best_errors_name_what_was_recorded(run, tmp_path, capsys):
    with pytest.raises(ValueError, match="recorded: swd"):
        best_snapshot(run, "fid2k_full")
    with pytest.raises(ValueError, match="not .*run folder"):
        load("pigan-tiny", best="swd")
    with pytest.raises(ValueError, match="no evaluated snapshots"):
        best_snapshot(tmp_path, "swd")
    assert main(["render", "--checkpoint", str(run), "--best", "fid50k_full", "--out", str(tmp_path / "r")]) == 2
    assert "recorded: swd" in capsys.readouterr().err
    # A best metric the run would record under another name is refused before training starts.
    with pytest.raises(ValueError, match="fid2k_full@16"):
        Trainer(options(tmp_path / "bad", metrics=("fid2k_full",), metrics_every=1, metrics_num_gen=16,
                        best_metric="fid2k_full"))


def _fake_snapshot(run, step, value, higher):
    G = build_generator("pigan-tiny")
    report = {"results": {"m": value}, "metrics": {"m": {"higher_is_better": higher}}}
    return write_snapshot(run, G, step, step * 4, report, {"step": step})


@pytest.mark.parametrize("higher", [False, True])
def test_direction_ties_and_pruning(tmp_path, higher):
    run = tmp_path / "run"
    for step, value in [(10, 3.0), (20, 1.0), (30, 2.0), (40, 1.0), (50, float("nan"))]:
        _fake_snapshot(run, step, value, higher)
    best = best_snapshot(run, "m")
    assert best.step == (10 if higher else 40)  # a tie goes to the later step; NaN never wins
    removed = prune_snapshots(run, 2, "m")
    assert sorted(s.step for s in list_snapshots(run)) == sorted({50, best.step})
    assert len(removed) == 3 and not any(p.exists() for p in removed)


def test_a_half_written_snapshot_is_ignored(tmp_path):
    run = tmp_path / "run"
    _fake_snapshot(run, 1, 1.0, False)
    save_generator(build_generator("pigan-tiny"), run / "snapshots" / "step-0000002")  # no metrics.json yet
    assert [s.step for s in list_snapshots(run)] == [1]


def test_keep_snapshots_during_training(tmp_path):
    out = tmp_path / "run"
    Trainer(options(out, steps=3, metrics=("swd",), metrics_every=1, metrics_num_gen=16, keep_snapshots=1)).train()
    assert [s.step for s in list_snapshots(out)] == [3]


def test_runs_verb_lists_and_picks_the_best(run, capsys):
    assert main(["runs", "list", str(run)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:2] == ["step", "swd"] and len(table.splitlines()) >= 4
    assert main(["runs", "best", str(run), "--metric", "swd"]) == 0
    out = capsys.readouterr().out
    assert str(best_snapshot(run, "swd").path) in out
    assert main(["runs", "best", str(run), "--metric", "fid2k_full"]) == 2
    assert "recorded: swd" in capsys.readouterr().err
    assert main(["runs", "best", str(run / "snapshots")]) == 2
