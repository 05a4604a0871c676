"""EMAs of G: the StyleGAN-family half-life with ramp-up (decay by hand, in the trainer, in the run config,
across a resume, in the presets and the CLI) and the fixed per-step decays left as they were."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from aware3d.cli.args import add_dataclass_arguments, dataclass_from_args
from aware3d.io.checkpoint import CONFIG, WEIGHTS
from aware3d.training.config import DEFAULT_EMA_DECAYS, RunConfig, TrainOptions, resolve_run_config
from aware3d.training.ema import HalfLifeEMA, half_life_beta, update_ema, update_half_life_ema
from aware3d.training.presets import get_train_preset
from aware3d.training.trainer import Trainer


def options(out: Path, **kw) -> TrainOptions:
    base = dict(preset="eg3d-tiny", out=str(out), log_every=1, sample_every=0, checkpoint_every=100, progress=False,
                tensorboard=False, steps=2, device="cpu")
    base.update(kw)
    return TrainOptions(**base)


def weights(run: Path, name: str) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoint" / f"{name}.safetensors"))


def params(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


# ------------------------------------------------------------------------------------------- the decay by hand
def test_half_life_decay_hand_computed_in_ramp_up_and_plateau():
    ema = HalfLifeEMA(half_life_kimg=10.0, rampup=0.05)
    # The first step (no image seen yet): half-life 0, the average becomes G.
    assert half_life_beta(ema, 0, 32) == 0.0
    # Ramp-up: 3200 images seen -> half-life min(10000, 0.05 * 3200) = 160 images; beta = 2 ** (-32 / 160).
    assert half_life_beta(ema, 3200, 32) == pytest.approx(0.8705505632961241, abs=1e-15)
    # Plateau from 10000 / 0.05 = 200000 images on: beta = 2 ** (-32 / 10000) whatever the count.
    for seen in (200_000, 10 ** 7):
        assert half_life_beta(ema, seen, 32) == pytest.approx(0.9977843871238888, abs=1e-15)
    assert half_life_beta(ema, 199_000, 32) < half_life_beta(ema, 200_000, 32)
    # Without ramp-up the plateau holds from the first step; the decay depends on the batch, not the step.
    flat = HalfLifeEMA(half_life_kimg=10.0, rampup=None)
    assert half_life_beta(flat, 0, 32) == half_life_beta(flat, 10 ** 6, 32) == half_life_beta(ema, 200_000, 32)
    assert half_life_beta(flat, 0, 64) == pytest.approx(0.9977843871238888 ** 2, abs=1e-15)


def test_half_life_means_the_old_average_weighs_half_after_that_many_images():
    """h = 1000 images at batch 10: after 100 updates toward a constant 0 an average that was 1 is 0.5."""
    schedule = HalfLifeEMA(half_life_kimg=1.0, rampup=None)
    G, ema = nn.Linear(3, 2), nn.Linear(3, 2)
    G.register_buffer("w_avg", torch.full((2,), 7.0))
    ema.register_buffer("w_avg", torch.zeros(2))
    with torch.no_grad():
        for p in G.parameters():
            p.zero_()
        for p in ema.parameters():
            p.fill_(1.0)
    seen = 0
    for _ in range(100):
        update_half_life_ema(ema, G, half_life_beta(schedule, seen, 10))
        seen += 10
    for p in ema.parameters():
        assert torch.allclose(p, torch.full_like(p, 0.5), atol=1e-6), p
    assert torch.equal(ema.w_avg, G.w_avg)  # buffers are copied, not averaged


def test_half_life_update_is_the_lerp_toward_the_old_average():
    G, ema = nn.Linear(4, 3), nn.Linear(4, 3)
    before = params(ema)
    update_half_life_ema(ema, G, 0.25)
    for e, old, g in zip(ema.parameters(), before, G.parameters()):
        assert torch.allclose(e, g + 0.25 * (old - g), atol=1e-7, rtol=0)
    update_half_life_ema(ema, G, 0.0)  # beta 0: G exactly
    for e, g in zip(ema.parameters(), G.parameters()):
        assert torch.equal(e, g)


@pytest.mark.parametrize("field, value, message", [("half_life_kimg", 0.0, "half_life_kimg must be > 0"),
                                                   ("rampup", -0.1, "rampup must be > 0 or null")])
def test_half_life_schedule_rejects_bad_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        HalfLifeEMA(**{field: value})


def test_fixed_decays_keep_the_torch_ema_warm_up():
    """d = min(decay, (1 + n) / (10 + n)): 0.1 at the first update, 2/11 at the second, then the decay."""
    G, ema = nn.Linear(2, 2), nn.Linear(2, 2)
    old = params(ema)
    assert update_ema(ema, G, 0.999, 0) == pytest.approx(0.1)
    for e, o, g in zip(ema.parameters(), old, G.parameters()):
        assert torch.allclose(e, 0.1 * o + 0.9 * g, atol=1e-7, rtol=0)
    assert update_ema(ema, G, 0.999, 1) == pytest.approx(2 / 11)
    assert update_ema(ema, G, 0.5, 10 ** 6) == 0.5


# ------------------------------------------------------------------------------------------- presets, config, CLI
def test_official_presets_use_the_official_half_life():
    for name, kimg in [("eg3d-ffhq", 10.0), ("eg3d-afhq", 10.0), ("eg3d-shapenet", 10.0),
                       ("epigraf-ffhq-512", 20.0), ("epigraf-cats-256", 20.0), ("epigraf-plants-256", 20.0),
                       ("epigraf-food-256", 20.0)]:
        p = get_train_preset(name)
        assert p.ema == HalfLifeEMA(half_life_kimg=kimg, rampup=0.05), name
        # train.py: ema_kimg = batch x 10 / 32
        assert p.ema.half_life_kimg == p.curriculum.stages[0].batch_size * 10 / 32, name
    for name in ("pigan-tiny", "eg3d-tiny", "epigraf-tiny"):
        assert get_train_preset(name).ema is None, name


def test_run_config_round_trip_and_overrides():
    cfg = resolve_run_config(TrainOptions(preset="epigraf-ffhq-512"))
    assert cfg.ema == HalfLifeEMA(20.0, 0.05) and cfg.ema_decays == ()  # the half-life EMA replaces the decays
    doc = json.loads(json.dumps(cfg.to_json()))
    assert doc["ema"] == {"half_life_kimg": 20.0, "rampup": 0.05}
    back = RunConfig.from_json(doc, "config.json")
    assert back.ema == cfg.ema and back.ema_decays == ()
    # Overrides: drop the ramp-up, change the half-life, keep fixed decays beside it when asked for.
    cfg = resolve_run_config(TrainOptions(preset="eg3d-ffhq", data="x.zip", ema_decays=(0.999,),
                                          override=("ema.rampup=null", "ema.half_life_kimg=5")))
    assert cfg.ema == HalfLifeEMA(5.0, None) and cfg.ema_decays == (0.999,)
    assert RunConfig.from_json(json.loads(json.dumps(cfg.to_json())), "c").ema == HalfLifeEMA(5.0, None)
    # A preset without one gets the StyleGAN EMA once a field of it is set.
    cfg = resolve_run_config(TrainOptions(preset="pigan-tiny", override=("ema.half_life_kimg=2",)))
    assert cfg.ema == HalfLifeEMA(2.0, 0.05) and cfg.ema_decays == ()
    with pytest.raises(ValueError, match="half_life_kimg must be > 0"):
        resolve_run_config(TrainOptions(preset="eg3d-ffhq", data="x.zip", override=("ema.half_life_kimg=0",)))
    with pytest.raises(ValueError, match="no field 'halflife'"):
        resolve_run_config(TrainOptions(preset="eg3d-ffhq", data="x.zip", override=("ema.halflife=1",)))


def test_fixed_decays_stay_the_default_and_old_configs_still_load():
    cfg = resolve_run_config(TrainOptions(preset="pigan-tiny"))
    assert cfg.ema is None and cfg.ema_decays == DEFAULT_EMA_DECAYS == (0.999, 0.9999)
    doc = cfg.to_json()
    assert doc["ema"] is None
    del doc["ema"]  # a config.json written before the half-life EMA existed
    assert RunConfig.from_json(doc, "old config.json").ema is None
    with pytest.raises(ValueError, match="no EMA of G"):
        resolve_run_config(TrainOptions(preset="pigan-tiny", ema_decays=()))
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        resolve_run_config(TrainOptions(preset="pigan-tiny", ema_decays=(1.0,)))


def test_cli_sets_the_half_life_and_the_decays():
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, TrainOptions)
    ns = parser.parse_args(["--preset", "eg3d-ffhq", "--data", "x.zip", "--override", "ema.half_life_kimg=2.5",
                            "--ema-decays", "0.99"])
    cfg = resolve_run_config(dataclass_from_args(TrainOptions, ns))
    assert cfg.ema == HalfLifeEMA(2.5, 0.05) and cfg.ema_decays == (0.99,)
    assert dataclass_from_args(TrainOptions, parser.parse_args([])).ema_decays is None


# ------------------------------------------------------------------------------------------- in the trainer
def test_trainer_applies_the_half_life_ema_after_each_step(tmp_path):
    """Ramp-up 1 at batch 8: step 0 starts with 0 images (beta 0: the EMA is G), step 1 with 8 images (half-life
    min(10000, 8) = 8 images, beta 0.5). Counting the batch before the update would give 0.5 and 2 ** -0.5."""
    trainer = Trainer(options(tmp_path / "run", override=("ema.half_life_kimg=10", "ema.rampup=1")))
    assert trainer.G_emas == {} and trainer.primary_ema is trainer.G_ema_half_life
    betas, after = [], []
    for _ in range(2):
        betas.append(trainer.step()["ema/beta"])
        after.append(params(trainer.G))
    assert betas == [0.0, 0.5]
    ema = list(trainer.G_ema_half_life.parameters())
    assert not torch.equal(after[0][0], after[1][0])  # G moved, so the check below can fail
    for e, g1, g2 in zip(ema, *after):
        assert torch.allclose(e, g2 + 0.5 * (g1 - g2), atol=1e-6, rtol=1e-6)
    for b_ema, b in zip(trainer.G_ema_half_life.buffers(), trainer.G.buffers()):  # w_avg copied
        assert torch.equal(b_ema, b)
    # The exported generator is the half-life EMA (EG3D tracks w_avg, so nothing is refreshed on export).
    trainer.save_checkpoint()
    exported = load_file(str(tmp_path / "run" / "generator" / WEIGHTS))
    own = trainer.G_ema_half_life.state_dict()
    assert exported.keys() == own.keys()
    assert all(torch.equal(exported[k], own[k]) for k in exported)
    source = json.loads((tmp_path / "run" / "generator" / CONFIG).read_text())["source"]
    assert source["ema_half_life_kimg"] == 10.0 and source["ema_rampup"] == 1.0 and "ema_decay" not in source


def test_resume_is_bit_exact_with_the_half_life_ema(tmp_path):
    ema = ("ema.half_life_kimg=0.02", "ema.rampup=0.5")
    Trainer(options(tmp_path / "a", steps=4, override=ema)).train()
    Trainer(options(tmp_path / "b", steps=2, override=ema)).train()
    Trainer(options(tmp_path / "ignored", resume=str(tmp_path / "b"), steps=4)).train()
    assert json.loads((tmp_path / "b" / "config.json").read_text())["ema"] == {"half_life_kimg": 0.02, "rampup": 0.5}
    names = sorted(p.stem for p in (tmp_path / "a" / "checkpoint").glob("*.safetensors"))
    assert names == ["D", "G", "G_ema", "optim_D", "optim_G", "rng"]
    for name in names:
        a, b = weights(tmp_path / "a", name), weights(tmp_path / "b", name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}.{k} differs after resume"
    G, G_ema = weights(tmp_path / "a", "G"), weights(tmp_path / "a", "G_ema")
    assert not all(torch.equal(G[k], v) for k, v in G_ema.items())  # the EMA lags G


def test_fixed_decay_run_is_unchanged(tmp_path):
    """Without a half-life EMA: the two default decays, updated after each G phase with the warm-up (n = the step),
    the first exported. (Without density regularisation, so each step has one G phase.)"""
    trainer = Trainer(options(tmp_path / "run", override=("loss.density_reg=0",)))
    assert trainer.G_ema_half_life is None and sorted(trainer.G_emas) == [0.999, 0.9999]
    assert sorted(trainer._modules()) == ["D", "G", "G_ema_0.999", "G_ema_0.9999"]
    start, after = params(trainer.G), []
    for _ in range(2):
        assert "ema/beta" not in trainer.step()
        after.append(params(trainer.G))
    for e, g0, g1, g2 in zip(trainer.G_emas[0.999].parameters(), start, *after):
        e1 = 0.1 * g0 + 0.9 * g1
        assert torch.allclose(e, 2 / 11 * e1 + 9 / 11 * g2, atol=1e-6, rtol=1e-6)  # rtol: large biases
    assert trainer.primary_ema is trainer.G_emas[0.999]
    assert trainer.primary_ema_source() == {"ema_decay": 0.999}
