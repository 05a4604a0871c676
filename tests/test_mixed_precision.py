"""Mixed precision's configuration paths, checked without a GPU: which recipes autocast, that --amp changes nothing
on CPU, and that the StyleGAN-family float16 blocks stay float32 off CUDA. (A float16 vs float32 run on a GPU is a
device check, run when one is lent.)"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from aware3d.models.registry import build_generator, families
from aware3d.training.trainer import Trainer, uses_autocast
from tests.test_training import options, weights


def test_who_autocasts():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert uses_autocast(True, cuda, True) is True
    assert uses_autocast(False, cuda, True) is False  # --no-amp
    assert uses_autocast(True, cpu, True) is False  # CPU: never
    assert uses_autocast(True, cuda, False) is False  # families with their own float16 layers
    recipes = {name: fam.training.loss_cls.autocast for name, fam in families().items() if fam.training}
    assert recipes["pigan"] and recipes["shadegan"]  # the seeds' torch.cuda.amp
    assert not recipes["eg3d"] and not recipes["epigraf"]  # num_fp16_res blocks instead


def test_amp_on_cpu_is_a_no_op(tmp_path):
    a = Trainer(options(tmp_path / "amp", amp=True))
    assert a.amp is False and not any(s.is_enabled() for s in a.scalers.values())
    a.train()
    Trainer(options(tmp_path / "fp32", amp=False)).train()
    for name in ("G", "D"):
        x, y = weights(tmp_path / "amp", name), weights(tmp_path / "fp32", name)
        assert all(torch.equal(x[k], y[k]) for k in x), name


@pytest.mark.parametrize("preset, override", [("eg3d-tiny", {"num_fp16_res": 2, "sr_num_fp16_res": 2})])
def test_float16_generator_blocks_stay_float32_off_cuda(preset, override):
    """The same weights with and without float16 blocks give the same image on CPU (the blocks fall back)."""
    plain = build_generator(preset, seed=0)
    config = plain.config.__class__(**{**plain.config.__dict__, **override})
    half = plain.__class__(config)
    half.load_state_dict(plain.state_dict())
    half.eval(), plain.eval()
    z = plain.z_from_seeds([0])
    cams = plain.cameras([plain.config.pose.yaw_mean], [plain.config.pose.pitch_mean])
    with torch.no_grad():  # the renderer's jitter from one seed for both
        ws = plain.mapping(z, 1.0, cameras=cams)
        a = plain.synthesis(ws, cams, resolution=16, generator=torch.Generator().manual_seed(0)).image
        b = half.synthesis(ws, cams, resolution=16, generator=torch.Generator().manual_seed(0)).image
    assert b.dtype == torch.float32 and torch.equal(a, b)


@pytest.mark.parametrize("preset", ["eg3d-tiny", "epigraf-tiny"])
def test_float16_discriminator_blocks_stay_float32_off_cuda(preset, tmp_path):
    """The training preset's D with and without float16 blocks: the same logits on CPU."""
    trainer = Trainer(options(tmp_path / "run", preset=preset, override=()))
    plain = trainer.D.eval()
    cfg = dataclasses.replace(plain.config, num_fp16_res=2)
    half = plain.__class__(cfg).eval()
    half.load_state_dict(plain.state_dict())
    trainer.D = half
    from aware3d.losses.base import StageState

    stage = trainer.cfg.curriculum.stage(0)
    state = StageState(0, stage.resolution, trainer.cfg.curriculum.render_config(trainer.G.config.render, 0), 1.0, 0)
    data = trainer.dataset(stage.resolution)
    real = trainer._my_real_batch(trainer.real_indices(0, stage.batch_size, len(data)), data, stage.batch_split)
    phase = next(p for p in trainer.recipe.phases() if p.name == "D_main")
    losses = []
    for D in (plain, half):
        trainer.recipe.D = D
        chunk = trainer.recipe.prepare(next(trainer._chunks(0, 0, real, stage.batch_size, stage.batch_split, data)),
                                       state)
        with torch.no_grad():
            losses.append(trainer.recipe.loss(phase, chunk, state)[0])
    assert losses[0].dtype == torch.float32 and torch.equal(losses[0], losses[1])
