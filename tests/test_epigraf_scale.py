"""EpiGRAF at scale and on the built-in data: torchrun DDP gives the weights of one process evaluating the same
chunks, the synthetic sets' cameras reach EpiGRAF's camera conditioning in its own angles, and the
class-conditional Megascans presets say which dataset they need."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from aware3d.cameras import from_eg3d_label
from aware3d.cli.main import main as cli_main
from aware3d.data.base import open_dataset
from aware3d.models.epigraf.cameras import camera_origins, our_points_to_epigraf
from aware3d.models.epigraf.generator import EpiGRAFGenerator
from aware3d.training.config import TrainOptions
from aware3d.training.presets import get_train_preset
from aware3d.training.stats import read_stats
from aware3d.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
TINY = get_train_preset("epigraf-tiny")
SMALL_PATCHES = "loss.patch.anneal_kimg=0"
"""Patch scales from Beta(1, beta_end = 0.8) from step 0 instead of whole images early on."""


def options(out: Path, **kw) -> TrainOptions:
    base = dict(preset="epigraf-tiny", out=str(out), log_every=1, sample_every=0, checkpoint_every=100, progress=False,
                tensorboard=False, steps=2, device="cpu")
    return TrainOptions(**{**base, **kw})


def weights(run: Path, name: str) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoint" / f"{name}.safetensors"))


def stage_override(split: int) -> str:
    stage = TINY.curriculum.stages[0]
    fields = {k: getattr(stage, k) for k in stage.__dataclass_fields__}
    return "curriculum.stages=" + json.dumps([{**fields, "batch_split": split}])


@pytest.mark.skipif(sys.platform == "win32", reason="torchrun with gloo")
def test_ddp_two_processes_match_one_process_with_patches(tmp_path):
    """torchrun, 2 gloo processes x batch_split 1 == 1 process x batch_split 2: each chunk (4 images = one patch
    group) draws its patch, classes and noise from its own generator, whichever process evaluates it.

    The patch scales are drawn from Beta(1, 0.8) from the start (no annealing), so the patches are smaller than
    the image. Measured with one thread everywhere: the weights agree bit for bit (max difference 0; with 2 threads in
    the single process, GEMM blocking changes the last bits, up to 3e-6); against 1 process x batch_split 1
    (one chunk of two patch groups: other draws) G differs by up to 0.012 in 90% of its elements.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    common = ["--preset", "epigraf-tiny", "--steps", "2", "--log-every", "1", "--sample-every", "0", "--no-progress",
              "--no-tensorboard", "--device", "cpu", "--override", SMALL_PATCHES]
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "aware3d", "train", "--out", str(tmp_path / "ddp"), *common],
                          check=False, env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the torchrun workers (OMP_NUM_THREADS=1): the same GEMM blocking, the same bits
    try:
        Trainer(options(tmp_path / "single", override=(stage_override(split=2), SMALL_PATCHES))).train()
    finally:
        torch.set_num_threads(threads)
    ddp, single = read_stats(tmp_path / "ddp"), read_stats(tmp_path / "single")
    assert len(ddp) == len(single) == 2
    for a, b in zip(ddp, single):  # the same patches and losses
        assert a["patch/scale"] < 0.95
        for key in ("patch/scale", "G/adv", "D/adv"):
            assert a[key] == pytest.approx(b[key], abs=1e-6), key
    for name in ("G", "D", "G_ema_0.999"):
        a, b = weights(tmp_path / "ddp", name), weights(tmp_path / "single", name)
        assert a.keys() == b.keys()
        for k in a:
            if k.endswith("w_avg"):  # updated once per chunk (twice per step) vs once per process, then averaged
                continue
            assert (a[k] - b[k]).abs().max() <= 1e-6, f"{name}.{k}"


# ------------------------------------------------------------------------------------------ synthetic data
def _angle_error(angles: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N, M) largest |difference| of (yaw, pitch) between every row of ``angles`` (N, 3) and of ``target``
    (M, 3), yaw differences wrapped to [-pi, pi)."""
    d = angles[:, None, :2] - target[None, :, :2]
    d[..., 0] = torch.remainder(d[..., 0] + math.pi, 2 * math.pi) - math.pi
    return d.abs().amax(-1)


@pytest.mark.parametrize("data", ["synthetic-heads", "synthetic-objects"])
def test_synthetic_cameras_reach_the_camera_conditioning_as_official_angles(tmp_path, data):
    """One training step on each synthetic set: D's camera input for real patches is each real item's official
    EpiGRAF [yaw, pitch] (its SyntheticSample.camera_angles; the official camera_origins of those angles is the
    item's camera position in EpiGRAF's world), and G's GPC label and D's fake-camera input are cameras of dataset
    items (EpiGRAF renders from the dataset's poses)."""
    pool = f"{data}:16"
    items = open_dataset(pool, 32)
    truth = items.ground_truth(range(len(items)))
    item_labels = truth.eg3d_label.to(torch.float32)
    trainer = Trainer(options(tmp_path / "run", data=pool, steps=1))
    d_cameras, g_cameras, reals = [], [], []
    trainer.D.register_forward_pre_hook(lambda module, args: d_cameras.append(args[3].detach().clone()))
    mapping, real_angles = trainer.G.mapping, trainer.recipe.real_camera_angles

    def spy_mapping(z, *args, cameras=None, **kw):
        g_cameras.append(cameras.detach().clone())
        return mapping(z, *args, cameras=cameras, **kw)

    def spy_real(chunk):
        reals.append((chunk.real_labels.clone(), real_angles(chunk)))
        return reals[-1][1]

    trainer.G.mapping, trainer.recipe.real_camera_angles = spy_mapping, spy_real
    assert trainer.train().step == 1
    assert reals and d_cameras and g_cameras
    for labels, angles in reals:
        which = (labels[:, None] - item_labels[None]).abs().amax(-1).argmin(1)
        assert torch.allclose(labels, item_labels[which], atol=1e-6)  # every real is a dataset item
        assert _angle_error(angles, truth.camera_angles[which]).diagonal().max() < 1e-4
        c2w, _ = from_eg3d_label(labels)
        assert torch.allclose(camera_origins(angles, 1.0), our_points_to_epigraf(c2w[:, :3, 3]), atol=1e-4)
    for seen in (torch.cat(d_cameras), torch.cat(g_cameras)):
        assert _angle_error(seen, truth.camera_angles).amin(1).max() < 1e-4
    assert float(truth.camera_angles[:, 0].abs().max()) > 0.05  # not all frontal: the check means something


# ------------------------------------------------------------------------------------------ Megascans presets
@pytest.mark.parametrize("preset", ["epigraf-plants-256", "epigraf-food-256"])
def test_megascans_presets_without_data_are_a_clear_error(preset, capsys):
    assert get_train_preset(preset).data == ""
    assert cli_main(["train", "--preset", preset, "--out", "unused", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"aware3d train: error: training preset {preset!r} has no default dataset: pass --data")
    classes = get_train_preset(preset).discriminator.c_dim
    assert f"with {classes} classes" in err and "--labels-from-folders" in err and "model.c_dim=0" in err
    assert "Traceback" not in err


def test_class_conditional_model_on_data_without_classes_fails_before_rendering(tmp_path, capsys, monkeypatch):
    """The recipe checks the real images' classes in prepare(), before any render (a Megascans preset on CPU would
    otherwise render a whole step first), and says how to build a dataset with classes."""
    args = ["train", "--preset", "epigraf-tiny", "--data", "synthetic-objects:8", "--out", str(tmp_path / "run"),
            "--steps", "1", "--device", "cpu", "--no-progress", "--no-tensorboard", "--sample-every", "0",
            "--override", "model.c_dim=3", "discriminator.c_dim=3"]
    calls = []
    synthesis = EpiGRAFGenerator.synthesis
    monkeypatch.setattr(EpiGRAFGenerator, "synthesis",
                        lambda self, *a, **kw: calls.append(1) or synthesis(self, *a, **kw))
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "class-conditional (3 classes) but the dataset has no class labels" in err
    assert "--labels-from-folders" in err and "Traceback" not in err and not calls
