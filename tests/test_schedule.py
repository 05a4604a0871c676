"""Schedules as data: the Schedule type, the schedules the curriculum and the recipes derive from their
official options (bit-identical to the closed-form formulas they replace), and ``aware3d presets --show``."""

from __future__ import annotations

import json
import random
import struct
from dataclasses import replace

import pytest

from aware3d.config import from_dict, to_dict
from aware3d.losses.pigan import PiGANLossConfig
from aware3d.models.eg3d.loss import EG3DLossConfig
from aware3d.training.curriculum import Curriculum, Stage
from aware3d.training.presets import train_presets
from aware3d.training.schedule import NamedSchedule, NoSchedules, Piece, Schedule


def same_bits(a, b) -> bool:
    """Equal values of the same type; floats equal bit for bit (sign of zero included)."""
    if type(a) is not type(b):
        return False
    return struct.pack("<d", a) == struct.pack("<d", b) if isinstance(a, float) else a == b


# ----------------------------------------------------------------- the formulas before schedules (by hand)
def old_swapping_prob(cfg: EG3DLossConfig, n: int):
    if cfg.gpc_reg_prob is None:
        return None
    alpha = min(n / (cfg.gpc_reg_fade_kimg * 1e3), 1.0) if cfg.gpc_reg_fade_kimg > 0 else 1.0
    return (1 - alpha) * 1.0 + alpha * cfg.gpc_reg_prob


def old_blur_sigma(cfg: EG3DLossConfig, n: int) -> float:
    if cfg.blur_fade_kimg <= 0:
        return 0.0
    return max(1 - n / (cfg.blur_fade_kimg * 1e3), 0.0) * cfg.blur_init_sigma


def old_resolution(cfg: EG3DLossConfig, n: int) -> int:
    if cfg.neural_rendering_resolution_final is None:
        return cfg.neural_rendering_resolution_initial
    alpha = min(n / (cfg.neural_rendering_resolution_fade_kimg * 1e3), 1.0)
    res = cfg.neural_rendering_resolution_initial * (1 - alpha) + cfg.neural_rendering_resolution_final * alpha
    return int(round(res))


def old_alpha(cur: Curriculum, step: int) -> float:
    if cur.fade_steps <= 0:
        return 1.0
    return min(1.0, (step - cur.resolution_start(step)) / cur.fade_steps)


def old_noise(cur: Curriculum, step: int) -> float:
    if cur.density_noise_steps <= 0:
        return 0.0
    return max(0.0, cur.density_noise * (1 - step / cur.density_noise_steps))


def old_topk(cfg: PiGANLossConfig, step: int) -> float:
    return min(1.0, max(0.99 ** (step / cfg.topk_interval), cfg.topk_v))


def eg3d_configs() -> list[EG3DLossConfig]:
    rng = random.Random(0)
    cfgs = [p.loss for p in train_presets().values() if isinstance(p.loss, EG3DLossConfig)]
    for _ in range(12):
        cfgs.append(EG3DLossConfig(
            gpc_reg_prob=rng.choice([None, 0.0, 1.0, rng.random()]), gpc_reg_fade_kimg=rng.choice([0, 0.3, 7.77, 1000]),
            blur_init_sigma=rng.choice([0.0, 10.0, rng.uniform(0, 20)]), blur_fade_kimg=rng.choice([0, 0.137, 200]),
            neural_rendering_resolution_initial=rng.choice([16, 64]),
            neural_rendering_resolution_final=rng.choice([None, 37, 128]),
            neural_rendering_resolution_fade_kimg=rng.choice([0.25, 3.3, 1000])))
    return cfgs


def image_counts(cfg: EG3DLossConfig) -> list[int]:
    ends = [k * 1e3 for k in (cfg.gpc_reg_fade_kimg, cfg.blur_fade_kimg, cfg.neural_rendering_resolution_fade_kimg)]
    around = [int(e) + d for e in ends for d in (-2, -1, 0, 1, 2) if int(e) + d >= 0]
    return sorted(set(range(0, 40_000, 37)) | set(range(0, 2_100_000, 9_973)) | set(around))


def test_eg3d_schedules_are_bit_identical_to_the_closed_forms():
    for cfg in eg3d_configs():
        for n in image_counts(cfg):
            assert same_bits(cfg.swapping_prob(n), old_swapping_prob(cfg, n)) or (
                cfg.swapping_prob(n) is None is old_swapping_prob(cfg, n)), (cfg, n)
            assert same_bits(cfg.blur_sigma(n), old_blur_sigma(cfg, n)), (cfg, n)
            assert same_bits(cfg.neural_rendering_resolution(n), old_resolution(cfg, n)), (cfg, n)


def curricula() -> list[Curriculum]:
    cur = [p.curriculum for p in train_presets().values()]
    tight = Curriculum((Stage(0, 32, 8), Stage(100, 64, 4, 2), Stage(150, 64, 4, 2, g_lr=1e-5), Stage(170, 128, 2)),
                       fade_steps=93, density_noise=0.37, density_noise_steps=211)  # fades cut short by the next
    return cur + [tight, replace(tight, fade_steps=0, density_noise_steps=0), replace(tight, density_noise=0.0)]


def test_curriculum_schedules_are_bit_identical_to_the_closed_forms():
    for cur in curricula():
        starts = cur.boundaries() + [cur.fade_steps, cur.density_noise_steps]
        steps = set(range(0, 3000, 7)) | set(range(0, 200_001, 997)) | {s + d for s in starts for d in (-1, 0, 1)}
        for step in sorted(s for s in steps if s >= 0):
            assert same_bits(cur.alpha(step), old_alpha(cur, step)), (cur, step)
            assert same_bits(cur.noise_std(step), old_noise(cur, step)), (cur, step)


def test_topk_schedule_is_bit_identical_to_the_closed_form():
    cfgs = [p.loss for p in train_presets().values() if isinstance(p.loss, PiGANLossConfig)]
    cfgs += [PiGANLossConfig(topk_v=v, topk_interval=i) for v in (0.0, 0.13, 0.6, 0.99, 1.0, 1.5) for i in (1, 7, 2000)]
    for cfg in cfgs:
        for step in [*range(0, 5000, 3), *range(0, 400_000, 1009)]:
            assert same_bits(cfg.topk_fraction(step), old_topk(cfg, step)), (cfg, step)


# ------------------------------------------------------------------------------------------ the type
def test_schedule_shapes_analytic():
    stages = Schedule("step", (Piece(0, 3.0), Piece(10, 5.0), Piece(20, 1.0)))
    assert [stages.value_at(x) for x in (0, 9, 10, 19.5, 20, 10 ** 9)] == [3.0, 3.0, 5.0, 5.0, 1.0, 1.0]
    ramp = Schedule.ramp(2.0, 6.0, 8, "image")
    assert [ramp.value_at(x) for x in (0, 2, 4, 8, 100)] == [2.0, 3.0, 4.0, 6.0, 6.0]
    assert Schedule.ramp(16, 32, 4, "image", integer=True).value_at(1) == 20
    assert Schedule.ramp(1, 2, 4, "step", integer=True).value_at(2) == 2  # round(1.5): halves to even
    decay = Schedule("step", (Piece(0, 1.0, "exponential", 0.25, 10, 0.5),))
    assert [decay.value_at(x) for x in (0, 10, 20, 30)] == [1.0, 0.5, 0.25, 0.25]
    # A ramp cut short by the next piece restarts there; the key points are the starts and the ends reached.
    cut = Schedule("step", (Piece(0, 0.0, "linear", 1.0, 100), Piece(50, 0.0, "linear", 1.0, 10), Piece(200, 7.0)))
    assert cut.value_at(49) == 0.49 and cut.value_at(50) == 0 and cut.value_at(60) == 1
    assert cut.key_points() == [0, 50, 60, 200] and cut.key_points(until=100) == [0, 50, 60]
    assert decay.key_points() == [0, 20]
    assert cut.table([60, 0, 60, 55]) == [(0, 0.0), (55, 0.5), (60, 1.0)]
    assert Schedule.constant(4).is_constant() and not ramp.is_constant()


@pytest.mark.parametrize("make, message", [
    (lambda: Schedule("step", ()), "first starting at 0"),
    (lambda: Schedule("step", (Piece(5, 1.0),)), "first starting at 0"),
    (lambda: Schedule("step", (Piece(0, 1.0), Piece(3, 2.0), Piece(3, 4.0))), "strictly increasing"),
    (lambda: Schedule("kimg", (Piece(0, 1.0),)), "'step' or 'image'"),
    (lambda: Piece(0, 1.0, "cosine"), "unknown shape"),
    (lambda: Piece(0, 1.0, "exponential", 0.5, 0, 0.9), "length > 0"),
    (lambda: Schedule.constant(1.0).value_at(-1), "start at 0"),
    (lambda: PiGANLossConfig(topk_v=0.5, topk_interval=0).topk_fraction(3), "topk_interval"),
])
def test_schedule_rejects_impossible_definitions(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_schedules_round_trip_through_json():
    named = [n for p in train_presets().values() for n in (*p.curriculum.schedules(), *p.loss.schedules())]
    assert {n.name for n in named} >= {"alpha", "noise_std", "topk_fraction", "swapping_prob", "blur_sigma",
                                       "neural_rendering_resolution"}
    for n in named:
        back = from_dict(NamedSchedule, json.loads(json.dumps(to_dict(n))))
        assert back == n
        for x in n.schedule.key_points() + [0, 1, 333, 10 ** 6]:
            assert same_bits(back.schedule.value_at(x), n.schedule.value_at(x)), (n.name, x)


def test_every_loss_config_and_curriculum_names_its_schedules():
    for name, p in train_presets().items():
        for n in (*p.curriculum.schedules(), *p.loss.schedules()):
            assert isinstance(n, NamedSchedule) and n.name and n.about, name
    assert EG3DLossConfig(gpc_reg_prob=None).swapping_prob_schedule() is None
    assert "swapping_prob" not in {n.name for n in EG3DLossConfig(gpc_reg_prob=None).schedules()}
    assert NoSchedules().schedules() == ()


def test_curriculum_images_and_steps():
    cur = Curriculum((Stage(0, 32, 8), Stage(10, 64, 4), Stage(20, 64, 2)))
    shown, seen = 0, []
    for step in range(40):  # as the trainer counts: each step adds its stage's batch
        seen.append(shown)
        shown += cur.stage(step).batch_size
    assert [cur.images_seen(s) for s in range(40)] == seen
    for n in range(seen[-1]):
        s = cur.step_at_images(n)
        assert seen[s] >= n and (s == 0 or seen[s - 1] < n), n


# ------------------------------------------------------------------------------------------ the CLI
def test_presets_show_prints_stages_schedules_and_settings(capsys):
    from aware3d.cli.main import main

    assert main(["presets", "--show", "pigan-celeba"]) == 0
    out = capsys.readouterr().out
    assert "family pigan" in out and "total steps: 150000" in out and "data: synthetic-heads" in out
    rows = {tuple(line.split()) for line in out.splitlines()}
    # stages: start, kimg, resolution, batch, split, samples, importance, g_lr, d_lr
    assert ("100000", "1900", "128", "4", "2", "4", "4", "2e-06", "2e-05") in rows
    assert ("10000", "260", "1") in rows and ("30000", "780", "0") in rows  # alpha: faded in, then a new block
    assert ("5000", "130", "0") in rows  # the density noise has decayed
    assert "topk_fraction" in out and ("101654", "1906.62", "0.6") in rows  # top-k reaches its floor
    assert "r1_gamma=0.2" in out and "coord_conv=True" in out and "hidden_dim=256" in out

    assert main(["presets", "--show", "eg3d-ffhq"]) == 0
    out = capsys.readouterr().out
    rows = {tuple(line.split()) for line in out.splitlines()}
    assert ("31250", "1000", "0.5") in rows and ("6250", "200", "0") in rows and ("31250", "1000", "128") in rows
    assert "alpha = 1 throughout" in out and "by images shown" in out


def test_presets_show_model_unknown_and_list(capsys):
    from aware3d.cli.main import main

    assert main(["presets", "--show", "eg3d-tiny", "--model"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("model preset eg3d-tiny") and "  render.num_samples=" in out
    assert main(["presets", "--show", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown preset 'nope'" in err and "pigan-demo" in err and "eg3d-ffhq" in err
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "training presets" in out and "pigan-celeba-64" in out and "model presets" in out


def test_presets_show_prints_the_ema_and_the_augmentation(capsys):
    from aware3d.cli.main import main

    assert main(["presets", "--show", "epigraf-ffhq-512"]) == 0
    out = capsys.readouterr().out
    assert "EMA of G: half-life 20 kimg, ramp-up 0.05" in out
    assert "D-input augmentation: mode=ada" in out and "pipe.xflip=0" in out and "target=0.6" in out
    assert main(["presets", "--show", "pigan-tiny"]) == 0
    out = capsys.readouterr().out
    assert "EMA of G: fixed per-step decays" in out and "D-input augmentation: mode=noaug" in out
