"""Scale-out: torchrun across two "nodes" with a rendezvous endpoint, and a scheduler's SIGTERM to a torchrun
group (checkpoint, then an exact resume)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from aware3d.training.state import read_training_meta
from aware3d.training.trainer import Trainer
from tests.test_training import options, read_stats, tiny_stage, weights

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
TRAIN = ["-m", "aware3d", "train", "--preset", "pigan-tiny", "--log-every", "1", "--sample-every", "0",
         "--no-progress", "--no-tensorboard", "--device", "cpu"]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="torchrun groups and POSIX signals")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args]


def test_two_nodes_with_a_rendezvous_endpoint_match_one_process(tmp_path):
    """`torchrun --nnodes 2 --rdzv-backend c10d --rdzv-endpoint HOST:PORT` on each node, one process per node, gives
    the weights of one process evaluating the same global batch in two chunks."""
    endpoint = f"127.0.0.1:{free_port()}"
    node = ["--nnodes", "2", "--nproc_per_node", "1", "--rdzv_backend", "c10d", "--rdzv_endpoint", endpoint,
            "--rdzv_id", "aware3d-test", "--max_restarts", "0"]
    cmd = torchrun(*node, *TRAIN, "--out", str(tmp_path / "nodes"), "--steps", "2",
                   "--override", tiny_stage(batch=4, split=1))
    nodes = [subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0].decode(errors="replace") for p in nodes]
    assert all(p.returncode == 0 for p in nodes), outputs
    Trainer(options(tmp_path / "single", override=(tiny_stage(batch=4, split=2),))).train()
    assert len(read_stats(tmp_path / "nodes")) == 2  # one writer across both nodes
    for name in ("G", "D", "G_ema_0.999"):
        a, b = weights(tmp_path / "nodes", name), weights(tmp_path / "single", name)
        for k in a:
            diff = (a[k] - b[k]).abs()
            # As in the one-node DDP test: Adam's first steps are ~sign(grad) * lr.
            assert diff.max() <= 2 * 2 * 4e-4 + 1e-6, f"{name}.{k}"
            assert (diff > 1e-5).float().mean() < 0.01, f"{name}.{k}: many elements differ"


def _wait_for_step(run: Path, step: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if (run / "stats.jsonl").is_file() and any(s.get("step", 0) >= step for s in read_stats(run)):
            return
        if proc.poll() is not None:
            raise AssertionError(f"torchrun ended before step {step}: {proc.stdout.read().decode(errors='replace')}")
        time.sleep(0.2)
    raise AssertionError(f"no step {step} within {timeout} s")


def test_sigterm_to_a_torchrun_group_checkpoints_and_the_requeued_job_resumes_exactly(tmp_path):
    """What a preempting scheduler does: SIGTERM to torchrun, which forwards it to its workers; they finish the step,
    agree to stop, write a checkpoint and exit; the requeued job (--resume) ends with the weights of a run that was
    never stopped."""
    total, common = 30, ["--nproc_per_node", "2", "--standalone"]
    stage = ["--override", tiny_stage(batch=4, split=1)]
    run = tmp_path / "preempted"
    first = subprocess.Popen(torchrun(*common, *TRAIN, "--out", str(run), "--steps", str(total),
                                      "--checkpoint-every", "1000", *stage),
                             env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    _wait_for_step(run, 2, first)
    first.send_signal(signal.SIGTERM)
    out = first.communicate(timeout=120)[0].decode(errors="replace")
    stopped_at = read_training_meta(run / "checkpoint")["state"]["step"]
    assert 2 <= stopped_at < total, out
    assert "saving a checkpoint" in out

    subprocess.run(torchrun(*common, *TRAIN, "--resume", str(run), "--steps", str(total)), env=ENV, check=True,
                   capture_output=True, timeout=300)
    subprocess.run(torchrun(*common, *TRAIN, "--out", str(tmp_path / "straight"), "--steps", str(total), *stage),
                   env=ENV, check=True, capture_output=True, timeout=300)
    assert read_training_meta(run / "checkpoint")["state"]["step"] == total
    for name in ("G", "D", "G_ema_0.999", "optim_G", "optim_D"):
        a, b = weights(run, name), weights(tmp_path / "straight", name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f"{name} differs after the requeue"
