"""EG3D trained by the shared trainer: the official recipe's schedules and losses, lazy phases, dataset cameras,
exact resume, DDP, zip datasets with EG3D labels, and the errors of bad set-ups."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import aware3d
from aware3d.losses.base import Chunk, Phase, StageState
from aware3d.config import apply_overrides
from aware3d.data import open_dataset
from aware3d.errors import ConfigError
from aware3d.losses.gan import gaussian_blur
from aware3d.models.eg3d.loss import EG3DLoss, EG3DLossConfig, swap_conditioning
from aware3d.models.eg3d import EG3D_PRESETS, EG3DGenerator
from aware3d.models.eg3d.discriminator import DualDiscriminator
from aware3d.nn.stylegan2.layers import upfirdn2d
from aware3d.tools.dataset import DatasetOptions, run as build_dataset
from aware3d.training.config import TrainOptions, resolve_run_config
from aware3d.training.presets import get_train_preset
from aware3d.training.state import read_training_meta
from aware3d.training.stats import read_stats
from aware3d.training.trainer import Trainer

from .conftest import require_reference

REPO = Path(__file__).resolve().parents[1]


def options(out: Path, **kw) -> TrainOptions:
    base = dict(preset="eg3d-tiny", out=str(out), log_every=1, sample_every=0, checkpoint_every=100, progress=False,
                tensorboard=False, steps=2, device="cpu")
    base.update(kw)
    return TrainOptions(**base)


def weights(run: Path, name: str) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoint" / f"{name}.safetensors"))


# ------------------------------------------------------------------------------------------- schedules
def test_official_schedules_hand_computed():
    cfg = EG3DLossConfig(gpc_reg_prob=0.5, gpc_reg_fade_kimg=1.0, blur_init_sigma=10, blur_fade_kimg=2.0,
                         neural_rendering_resolution_initial=64, neural_rendering_resolution_final=128,
                         neural_rendering_resolution_fade_kimg=1.0)
    # GPC: 1 at the start, halfway (0.75) after 500 images, gpc_reg_prob from 1000 images on.
    assert cfg.swapping_prob(0) == 1.0 and cfg.swapping_prob(500) == 0.75 and cfg.swapping_prob(5000) == 0.5
    assert replace(cfg, gpc_reg_prob=None).swapping_prob(0) is None
    # Blur: 10 px fading linearly to 0 over 2000 images.
    assert cfg.blur_sigma(0) == 10 and cfg.blur_sigma(500) == 7.5 and cfg.blur_sigma(2000) == 0 == cfg.blur_sigma(9999)
    assert replace(cfg, blur_fade_kimg=0).blur_sigma(0) == 0
    # Neural rendering resolution: 64 -> 128 over 1000 images, rounded.
    assert [cfg.neural_rendering_resolution(n) for n in (0, 250, 500, 1000, 10 ** 6)] == [64, 80, 96, 128, 128]
    assert replace(cfg, neural_rendering_resolution_final=None).neural_rendering_resolution(10 ** 6) == 64
    with pytest.raises(ValueError, match="gpc_reg_prob"):
        EG3DLossConfig(gpc_reg_prob=1.5)
    with pytest.raises(ValueError, match="r1_interval"):
        EG3DLossConfig(r1_interval=0)


def test_gaussian_blur_is_the_normalised_separable_kernel():
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    sigma = 1.3
    half = math.floor(3 * sigma)
    taps = torch.tensor([2 ** -((i / sigma) ** 2) for i in range(-half, half + 1)])
    taps = taps / taps.sum()
    expected = upfirdn2d(x, torch.outer(taps, taps), padding=half)  # the same blur as a 2-D FIR, zero padding
    assert torch.allclose(gaussian_blur(x, sigma), expected, atol=1e-6)
    # A constant image keeps its value away from the (zero-padded) border; tiny sigmas do nothing.
    flat = gaussian_blur(torch.ones(1, 1, 16, 16), 1.0)
    assert torch.allclose(flat[..., 3:-3, 3:-3], torch.ones(1, 1, 10, 10), atol=1e-6)
    assert gaussian_blur(x, 0.2) is x


def test_generator_pose_conditioning_swaps_with_the_previous_sample():
    c = torch.arange(4 * 25, dtype=torch.float32).reshape(4, 25)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(swap_conditioning(c, 1.0, g), torch.roll(c, 1, 0))
    assert torch.equal(swap_conditioning(c, 0.0, g), c)
    assert torch.equal(swap_conditioning(c, None, g), torch.zeros_like(c))
    swapped = swap_conditioning(c.repeat(250, 1), 0.3, g)
    fraction = (swapped != c.repeat(250, 1)).any(1).float().mean().item()
    assert 0.25 < fraction < 0.35
    # One draw for the whole batch: all rows swapped or none.
    outcomes = set()
    for _ in range(20):
        changed = (swap_conditioning(c, 0.5, g, per_sample=False) != c).any(1)
        assert bool(changed.all()) or not bool(changed.any())
        outcomes.add(bool(changed.all()))
    assert outcomes == {True, False}


# ------------------------------------------------------------------------------------------- the recipe
@pytest.fixture(scope="module")
def recipe_and_chunk():
    """A fresh eg3d-tiny G and D as the training preset builds them, 4 real heads and 4 generated cameras."""
    preset = get_train_preset("eg3d-tiny")
    torch.manual_seed(0)
    G = EG3DGenerator(apply_overrides(EG3D_PRESETS["eg3d-tiny"], list(preset.model_overrides)))
    D = DualDiscriminator(preset.discriminator)
    data = open_dataset("synthetic-heads", 32)
    batch = data.get_batch(list(range(4)))
    cams = G.sample_cameras(4, torch.Generator().manual_seed(1))
    chunk = Chunk(batch.image, batch.label, torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(2)),
                  cams, torch.zeros(4, 2), torch.Generator().manual_seed(3))
    stage = StageState(step=0, resolution=32, render=G.config.render, alpha=1.0, images_seen=0)
    return G, D, preset.loss, chunk, stage


def test_silhouette_gives_both_images_an_opacity_channel(recipe_and_chunk):
    """loss.silhouette (issue 19): D's final and raw images each get a 4th channel, the real masks and the
    generated opacity; D must be built for it, and a dataset without masks is a config error."""
    G, D, cfg, chunk, stage = recipe_and_chunk
    with pytest.raises(ValueError, match="img_channels=4"):
        EG3DLoss(G, D, replace(cfg, silhouette=True))
    torch.manual_seed(0)
    D4 = DualDiscriminator(replace(D.config, img_channels=4))
    recipe = EG3DLoss(G, D4, replace(cfg, silhouette=True))
    with torch.no_grad():
        fake = recipe._generate(chunk, stage)
    image, raw = recipe._fake_pair(fake)
    assert image.shape == (4, 4, 32, 32) and raw.shape == (4, 4, 16, 16)
    assert torch.equal(raw[:, 3:], fake.opacity * 2 - 1) and torch.equal(raw[:, :3], fake.image_raw)
    with pytest.raises(ConfigError, match="loss.silhouette"):
        recipe.loss(Phase("D_main", "D"), chunk, stage)
    mask = torch.zeros(4, 1, 32, 32)
    mask[..., 8:24, 10:22] = 1.0
    loss, stats = recipe.loss(Phase("D_main", "D"), replace(chunk, real_extras={"mask": mask}), stage)
    loss.backward()
    # D's input layer sees both silhouette channels (final: 3, raw: 7) and learns from them.
    grad = D4.b32.fromrgb.weight.grad
    assert grad.shape[1] == 8 and float(grad[:, 3].abs().sum()) > 0 and float(grad[:, 7].abs().sum()) > 0
    assert torch.isfinite(loss)


def test_phases_and_lazy_scaling(recipe_and_chunk):
    G, D, cfg, _, _ = recipe_and_chunk
    names = [(p.name, p.module, p.interval) for p in EG3DLoss(G, D, cfg).phases()]
    assert names == [("G_main", "G", 1), ("G_reg", "G", cfg.density_reg_interval), ("D_main", "D", 1),
                     ("D_reg", "D", cfg.r1_interval)]
    no_regs = EG3DLoss(G, D, replace(cfg, density_reg=0, r1_gamma=0)).phases()
    assert [p.name for p in no_regs] == ["G_main", "D_main"]


def test_r1_penalises_both_the_final_and_the_raw_image(recipe_and_chunk):
    G, D, cfg, chunk, stage = recipe_and_chunk
    recipe = EG3DLoss(G, D, replace(cfg, r1_gamma=2.0, r1_interval=4))
    loss, stats = recipe.loss(Phase("D_reg", "D", 4), replace(chunk, generator=torch.Generator().manual_seed(5)), stage)
    # By hand: gradients of sum D(blur(image), blur(raw image), c) with respect to both inputs.
    image = chunk.real_images.clone().requires_grad_(True)
    raw = recipe.real_raw(chunk.real_images, stage).requires_grad_(True)
    logits = D(gaussian_blur(image, cfg.blur_sigma(0)), raw, chunk.real_labels)
    g_img, g_raw = torch.autograd.grad(logits.sum(), [image, raw])
    by_hand = (g_img.square().flatten(1).sum(1) + g_raw.square().flatten(1).sum(1)).mean()
    assert torch.allclose(stats["D/r1"], by_hand, rtol=1e-5)
    assert g_raw.abs().sum() > 0 and g_img.abs().sum() > 0
    assert torch.allclose(loss, by_hand * (2.0 / 2) * 4, rtol=1e-5)
    loss.backward()  # the penalty is differentiable with respect to D's weights
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in D.parameters())
    D.zero_grad(set_to_none=True)


def test_density_regularizer_vanishes_without_perturbation_and_trains_the_backbone(recipe_and_chunk):
    G, D, cfg, chunk, stage = recipe_and_chunk
    still = EG3DLoss(G, D, replace(cfg, density_reg_p_dist=0.0))
    assert still.density_regularizer(replace(chunk, generator=torch.Generator().manual_seed(0)), stage).item() == 0
    recipe = EG3DLoss(G, D, cfg)
    loss, stats = recipe.loss(Phase("G_reg", "G", 4), replace(chunk, generator=torch.Generator().manual_seed(0)), stage)
    assert stats["G/density_tv"] > 0
    assert torch.allclose(loss, stats["G/density_tv"] * cfg.density_reg * 4)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in G.backbone.parameters())
    G.zero_grad(set_to_none=True)


def test_real_images_must_match_the_final_resolution_and_have_cameras(recipe_and_chunk):
    G, D, cfg, chunk, stage = recipe_and_chunk
    recipe = EG3DLoss(G, D, cfg)
    small = replace(chunk, real_images=chunk.real_images[..., :16, :16])
    with pytest.raises(ValueError, match="resolution to 32"):
        recipe.loss(Phase("D_main", "D"), small, stage)
    unlabelled = replace(chunk, real_labels=torch.zeros_like(chunk.real_labels))
    with pytest.raises(ValueError, match="camera label"):
        recipe.loss(Phase("D_main", "D"), unlabelled, stage)


# ------------------------------------------------------------------------------------------- training runs
def test_lazy_phases_run_on_their_steps_and_cameras_come_from_the_dataset(tmp_path):
    trainer = Trainer(options(tmp_path / "run", steps=4, override=("loss.r1_interval=2", "loss.density_reg_interval=4")))
    data = trainer.dataset(32)
    labels, _ = data.get_labels(list(range(len(data))))
    real = data.get_batch(list(range(8)))
    chunk = next(trainer._chunks(0, 0, real, 8, 1, data))
    # Each generated camera is one of the dataset's cameras (EG3D draws them from the labels).
    match = (chunk.cameras.eg3d_label()[:, None, :] - labels[None]).abs().amax(-1).min(1).values
    assert match.max() < 1e-6
    trainer.train()
    stats = read_stats(tmp_path / "run")
    assert ["D/r1" in s for s in stats] == [True, False, True, False]
    assert ["G/density_tv" in s for s in stats] == [True, False, False, False]
    assert all(math.isfinite(s["G/adv"]) and math.isfinite(s["D/adv"]) for s in stats)
    assert stats[0]["render_resolution"] == 16 and stats[0]["resolution"] == 32
    # w_avg is tracked by the mapping network during training, copied to the EMAs and exported as is.
    w_avg = trainer.G.w_avg
    assert w_avg.abs().sum() > 0
    for ema in trainer.G_emas.values():
        assert torch.equal(ema.w_avg, w_avg)
    exported = aware3d.load(str(tmp_path / "run" / "generator"))
    assert torch.equal(exported.w_avg, w_avg)


def test_resume_is_bit_exact(tmp_path):
    Trainer(options(tmp_path / "a", steps=4)).train()
    Trainer(options(tmp_path / "b", steps=2)).train()
    Trainer(options(tmp_path / "ignored", resume=str(tmp_path / "b"), steps=4)).train()
    assert read_training_meta(tmp_path / "b" / "checkpoint")["state"]["step"] == 4
    for name in ("G", "D", "G_ema_0.999", "G_ema_0.9999", "optim_G", "optim_D", "rng"):
        a, b = weights(tmp_path / "a", name), weights(tmp_path / "b", name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}.{k} differs after resume"
    Trainer(options(tmp_path / "c", steps=4, seed=1)).train()
    assert not torch.equal(weights(tmp_path / "a", "G")["backbone.mapping.fc0.weight"],
                           weights(tmp_path / "c", "G")["backbone.mapping.fc0.weight"])


def test_ddp_two_processes_match_one_process(tmp_path):
    """torchrun, 2 gloo processes x batch_split 1 == 1 process x batch_split 2, through the CLI."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    common = ["--preset", "eg3d-tiny", "--steps", "2", "--log-every", "1", "--sample-every", "0", "--no-progress",
              "--no-tensorboard", "--device", "cpu"]
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                    "-m", "aware3d", "train", "--out", str(tmp_path / "ddp"), *common],
                   check=True, env=env, capture_output=True, timeout=300)
    Trainer(options(tmp_path / "single", override=(_stage_override(split=2),))).train()
    assert len(read_stats(tmp_path / "ddp")) == 2
    stage = get_train_preset("eg3d-tiny").curriculum.stages[0]
    lr = max(stage.g_lr, stage.d_lr)
    for name in ("G", "D", "G_ema_0.999"):
        a, b = weights(tmp_path / "ddp", name), weights(tmp_path / "single", name)
        for k in a:
            if k.endswith("w_avg"):
                # The running mean of w is updated once per chunk, as the official loop does: twice per step
                # with batch_split 2, once per process (then averaged) under DDP. Not a weight.
                assert a[k].abs().sum() > 0 and b[k].abs().sum() > 0
                continue
            diff = (a[k] - b[k]).abs()
            # Adam's first steps are ~sign(grad) * lr, so a near-zero gradient component may round either way.
            assert diff.max() <= 2 * 2 * lr + 1e-6, f"{name}.{k}"
            assert (diff > 1e-5).float().mean() < 0.01, f"{name}.{k}: many elements differ"


def _stage_override(split: int) -> str:
    stage = get_train_preset("eg3d-tiny").curriculum.stages[0]
    fields = {k: getattr(stage, k) for k in stage.__dataclass_fields__}
    return "curriculum.stages=" + json.dumps([{**fields, "batch_split": split}])


def test_trains_on_a_zip_with_eg3d_labels_and_refuses_unlabelled_images(tmp_path):
    build_dataset(DatasetOptions(source="synthetic-heads", out=str(tmp_path / "heads.zip"), resolution=32, count=16))
    run = tmp_path / "zip_run"
    result = Trainer(options(run, data=str(tmp_path / "heads.zip"))).train()
    assert result.step == 2
    assert all(math.isfinite(s["D/adv"]) for s in read_stats(run))
    # A folder of plain pictures has no cameras: EG3D's discriminator cannot be conditioned.
    folder = tmp_path / "plain"
    folder.mkdir()
    for i in range(8):
        Image.new("RGB", (32, 32), (20 * i, 100, 50)).save(folder / f"{i}.png")
    with pytest.warns(UserWarning, match="no camera labels"), pytest.raises(ValueError, match="camera label"):
        Trainer(options(tmp_path / "plain_run", data=str(folder))).train()


def test_official_presets_need_data_and_build_the_official_discriminator():
    with pytest.raises(ValueError, match="--data"):
        resolve_run_config(TrainOptions(preset="eg3d-ffhq"))
    ffhq = get_train_preset("eg3d-ffhq")
    assert ffhq.discriminator.img_resolution == 512 and ffhq.loss.r1_gamma == 1.0 and ffhq.loss.gpc_reg_prob == 0.5
    assert ffhq.curriculum.stages[0].batch_size == 32 and ffhq.loss.neural_rendering_resolution_final == 128
    assert get_train_preset("eg3d-afhq").loss.r1_gamma == 5.0
    assert get_train_preset("eg3d-shapenet").loss.gpc_reg_prob is None


def test_metrics_during_training_score_the_final_image(tmp_path):
    """SWD of the EMA every step: finite, into stats.jsonl, best kept; it scores the 32 px final image (two
    pyramid levels), not the 16 px neural rendering. (Reprojection is undefined this early: a fresh EG3D
    renders empty space, so no pixel is co-visible.)"""
    run = tmp_path / "run"
    Trainer(options(run, steps=2, metrics=("swd",), metrics_every=1, metrics_num_gen=16)).train()
    lines = [s for s in read_stats(run) if "metrics/swd" in s]
    assert [s["step"] for s in lines] == [1, 2]
    assert all(math.isfinite(s["metrics/swd"]) for s in lines)
    assert sorted(k for k in lines[0] if k.startswith("metrics/swd_")) == ["metrics/swd_16", "metrics/swd_32"]
    assert (run / "best" / "config.json").is_file()


def test_ffhq_preset_matches_the_official_train_py_config():
    """The eg3d-ffhq training preset against the config the official train.py built for the reference
    snapshot (--cfg=ffhq --batch=4 --gamma=1 --gen_pose_cond=True --cbase=2048 --cmax=32)."""
    root = require_reference("eg3d")
    official = json.loads((root / "network-snapshot.build.json").read_text())["train_py_config"]
    ok, od, rk = official["loss_kwargs"], official["D_kwargs"], official["G_kwargs"]["rendering_kwargs"]
    preset = get_train_preset("eg3d-ffhq")
    loss, D, stage = preset.loss, preset.discriminator, preset.curriculum.stages[0]
    assert loss.r1_gamma == ok["r1_gamma"] and loss.filter_mode == ok["filter_mode"]
    assert loss.gpc_reg_prob == ok["gpc_reg_prob"] == rk["gpc_reg_prob"]
    assert loss.gpc_reg_fade_kimg == ok["gpc_reg_fade_kimg"]
    assert loss.blur_init_sigma == ok["blur_init_sigma"]
    # train.py scales the blur fade by batch / 32: 25 kimg at batch 4 is 200 kimg at the preset's batch 32.
    assert loss.blur_fade_kimg == ok["blur_fade_kimg"] * stage.batch_size / official["batch_size"]
    assert loss.neural_rendering_resolution_initial == ok["neural_rendering_resolution_initial"]
    assert loss.neural_rendering_resolution_fade_kimg == ok["neural_rendering_resolution_fade_kimg"]
    # (The preset then moves to 128, as the released ffhq512-128 was fine-tuned; train.py's default is None.)
    assert loss.density_reg == rk["density_reg"] and loss.density_reg_p_dist == rk["density_reg_p_dist"]
    assert rk["reg_type"] == "l1" and loss.density_reg_interval == official["G_reg_interval"]
    assert D.mbstd_group_size == od["epilogue_kwargs"]["mbstd_group_size"] and D.disc_c_noise == od["disc_c_noise"]
    assert D.num_fp16_res == od["num_fp16_res"] and D.conv_clamp == od["conv_clamp"] and D.freeze_layers == 0
    assert preset.curriculum.betas == tuple(official["G_opt_kwargs"]["betas"]) == tuple(official["D_opt_kwargs"]["betas"])
    # Lazy regularisation scales the learning rates by interval / (interval + 1), as training_loop.py does.
    assert stage.g_lr == pytest.approx(official["G_opt_kwargs"]["lr"] * 4 / 5)
    assert stage.d_lr == pytest.approx(official["D_opt_kwargs"]["lr"] * 16 / 17)
    # With the snapshot's channel widths, the preset's discriminator has the official D's parameter count.
    small = DualDiscriminator(replace(D, channel_base=od["channel_base"], channel_max=od["channel_max"]))
    assert sum(p.numel() for p in small.parameters()) == 124_224


def test_demo_trains_eg3d_too(tmp_path):
    """`aware3d demo --preset eg3d-tiny`: the sample grid pairs each 32 px final image with its depth (rendered
    at 16 px and enlarged), and the video and mesh are written."""
    from aware3d.cli.main import main

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--preset", "eg3d-tiny", "--minutes", "0.001", "--no-metrics",
                 "--no-progress", "--resolution", "16", "--video-frames", "2", "--mesh-grid", "16"]) == 0
    grid = Image.open(out / "samples.png")
    assert grid.size[0] > 5 * 32 and grid.size[1] > 8 * 32  # 4 seeds x (image + depth) rows, 5 yaws, 32 px
    assert (out / "seed0000.ply").is_file() and json.loads((out / "demo.json").read_text())["steps"] >= 1
