"""``aware3d demo``'s recipe learns depth (issue 19): a tiny budget of its training moves the generated heads'
foreground depth toward the data's true depth, and the same run with the discriminator frozen does not (so
the first test can fail: the density prior alone, which fades out before the end, does not make the heads).

The generated heads are not the dataset's heads, but every synthetic head is about the same shape at the same
place, so the generator's depth rendered from a dataset item's camera is scored against that item's true depth
on its true mask (:func:`aware3d.metrics.depth.foreground_depth_scores`): a flat sheet has separation ~0 and a
depth error of about the head's depth (~0.1).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from aware3d.data.synthetic.dataset import make_synthetic
from aware3d.metrics.depth import foreground_depth_scores
from aware3d.training.config import TrainOptions
from aware3d.training.trainer import Trainer

STEPS, PRIOR_STEPS, RES = 160, 80, 32
"""The tiny budget: the demo preset's stage at its 32 px, the density prior fading out over the first half."""


def _demo_run(tmp_path: Path, d_lr: float) -> Trainer:
    stage = {"start": 0, "resolution": RES, "batch_size": 8, "batch_split": 1, "num_samples": 12,
             "num_importance": 0, "g_lr": 3e-4, "d_lr": d_lr}
    opts = TrainOptions(preset="pigan-demo", data="synthetic-heads:256", out=str(tmp_path / "run"), steps=STEPS,
                        log_every=50, sample_every=0, checkpoint_every=10 ** 6, progress=False, tensorboard=False,
                        override=("curriculum.stages=" + json.dumps([stage]),
                                  f"curriculum.density_prior_steps={PRIOR_STEPS}", "curriculum.density_noise_steps=80"))
    return Trainer(opts)


@torch.no_grad()
def _depth_scores(G) -> dict[str, float]:
    """Mean depth error on the true heads' masks and median separation, over 16 dataset views (the raw G, not an
    EMA: 160 steps barely move a 0.999 average)."""
    data = make_synthetic("synthetic-heads", resolution=RES)
    idx = list(range(16))
    truth, cameras = data.get_batch(idx), data.cameras(idx)
    z = torch.randn(16, G.z_dim, generator=torch.Generator().manual_seed(7))
    out = G(z, cameras, resolution=RES, render=replace(G.config.eval_render, perturb=False))
    scores = foreground_depth_scores(out.surface_depth, truth.depth, truth.mask, cameras.intrinsics)
    return {"abs": scores["abs"].mean().item(), "separation": scores["separation"].median().item()}


def _learned_depth(scores: dict[str, float]) -> bool:
    # Measured (seeded, 1 thread): the untrained field 0.046 from the truth (separation 0.004), after the
    # 160 steps 0.017, and after the same run with D frozen 0.067. The head/background separation is not
    # asked of so tiny a budget: it comes later in training (0.15-0.16 after ~670 steps, every seed).
    return scores["abs"] < 0.03


def test_demo_training_moves_the_foreground_depth_toward_the_truth(tmp_path):
    trainer = _demo_run(tmp_path, d_lr=4e-4)
    before = _depth_scores(trainer.G)
    trainer.train()
    after = _depth_scores(trainer.G)
    assert not _learned_depth(before), before
    assert _learned_depth(after), f"after {STEPS} demo steps {after}; before training {before}"
    assert after["abs"] < before["abs"] - 0.015, (before, after)


@pytest.mark.slow
def test_demo_depth_needs_the_discriminator(tmp_path):
    """The same run with D's learning rate at 0: G follows a random critic, and the heads' depth is not learnt."""
    trainer = _demo_run(tmp_path, d_lr=0.0)
    trainer.train()
    after = _depth_scores(trainer.G)
    assert not _learned_depth(after), after
