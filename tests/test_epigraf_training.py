"""EpiGRAF's training recipe: phases and lazy R1, patches per group with real patches cut at the fake windows,
GPC spoofing, the blur, the presets, and a few CPU training steps."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from aware3d.losses.base import Chunk, Phase, StageState
from aware3d.models.epigraf.cameras import ndc_coordinates
from aware3d.models.epigraf.discriminator import PatchDiscriminator
from aware3d.losses.gan import gaussian_blur as blur_patches
from aware3d.models.epigraf.loss import EpiGRAFLoss, spoof_cameras
from aware3d.models.registry import build_generator
from aware3d.rendering.patches import extract_patches, patch_grid
from aware3d.training.config import TrainOptions
from aware3d.training.presets import get_train_preset
from aware3d.training.stats import read_stats
from aware3d.training.trainer import Trainer

TINY = get_train_preset("epigraf-tiny")


def tiny_recipe(overrides: tuple[str, ...] = (), **loss_changes) -> EpiGRAFLoss:
    G = build_generator("epigraf-tiny", seed=0, overrides=list(overrides)).train()
    D = PatchDiscriminator(replace(TINY.discriminator, c_dim=G.config.c_dim)).train()
    return EpiGRAFLoss(G, D, replace(TINY.loss, **loss_changes))


def tiny_chunk(recipe: EpiGRAFLoss, seed: int = 0, batch: int = 8, extras: dict | None = None) -> Chunk:
    """A chunk as the trainer builds it: random real images with the cameras' labels, z, cameras, a generator."""
    G = recipe.G
    g = torch.Generator().manual_seed(seed)
    yaw, pitch = G.config.pose.sample(batch, generator=g)
    cams = G.cameras(yaw, pitch)
    real = torch.rand(batch, 3, 32, 32, generator=g) * 2 - 1
    return Chunk(real, cams.eg3d_label(), torch.randn(batch, G.z_dim, generator=g), cams,
                 torch.stack([yaw, pitch], -1), torch.Generator().manual_seed(seed + 100), real_extras=extras or {})


def stage_at(images_seen: int = 0) -> StageState:
    return StageState(0, 32, TINY.curriculum.render_config(build_generator("epigraf-tiny").config.render, 0), 1.0,
                      images_seen)


# ------------------------------------------------------------------------------------------ phases
def test_phases_and_lazy_r1_scaled_by_its_interval():
    recipe = tiny_recipe()
    assert [(p.name, p.module, p.interval) for p in recipe.phases()] == [
        ("G_main", "G", 1), ("D_main", "D", 1), ("D_reg", "D", TINY.loss.r1_interval)]
    assert [p.name for p in tiny_recipe(r1_gamma=0.0).phases()] == ["G_main", "D_main"]
    assert get_train_preset("epigraf-ffhq-512").loss.r1_interval == 16
    stage = stage_at()
    losses = {}
    for interval in (1, 16):
        chunk = recipe.prepare(tiny_chunk(recipe), stage)
        losses[interval], stats = recipe.loss(Phase("D_reg", "D", interval), chunk, stage)
        assert torch.allclose(losses[interval], stats["D/r1"] * recipe.config.r1_gamma / 2 * interval)
    assert losses[1] > 0 and torch.allclose(losses[16], 16 * losses[1])


# ------------------------------------------------------------------------------------------ patches
def test_patches_are_drawn_per_group_reproducibly_without_the_global_numpy_rng():
    recipe = tiny_recipe()
    late = stage_at(images_seen=10_000)  # past the tiny preset's 1 kimg annealing: patches smaller than the image
    before = np.random.get_state()[1].copy()
    a = recipe.prepare(tiny_chunk(recipe, seed=3), late).patch
    b = recipe.prepare(tiny_chunk(recipe, seed=3), late).patch
    assert np.array_equal(before, np.random.get_state()[1])
    assert torch.equal(a.scales, b.scales) and torch.equal(a.offsets, b.offsets)
    c = recipe.prepare(tiny_chunk(recipe, seed=4), late).patch
    assert not torch.equal(a.offsets, c.offsets)
    for group in range(2):  # batch 8, groups of 4
        rows = slice(4 * group, 4 * group + 4)
        assert (a.scales[rows] == a.scales[rows][:1]).all() and (a.offsets[rows] == a.offsets[rows][:1]).all()
    assert not torch.equal(a.offsets[0], a.offsets[4])
    assert torch.equal(a.scales[:, 0], a.scales[:, 1])
    assert ((a.scales >= 0.5) & (a.scales <= 1)).all() and a.scales.min() < 1
    assert ((a.offsets >= 0) & (a.offsets <= 1 - a.scales + 1e-6)).all()
    early = recipe.prepare(tiny_chunk(recipe, seed=3), stage_at(0)).patch
    assert early.scales.min() > 0.99  # Beta(1, 0.001): whole images at the start


def test_real_patches_are_cut_at_the_fake_patch_windows():
    """D sees the real patch cut from the same (scale, offset) the fakes are rendered over, and the cut samples
    exactly the NDC points the patch render shoots its rays through."""
    recipe = tiny_recipe(blur_init_sigma=0.0)
    stage = stage_at(images_seen=10_000)
    chunk = recipe.prepare(tiny_chunk(recipe, seed=5), stage)
    calls = []
    hook = recipe.D.register_forward_pre_hook(lambda module, args: calls.append([a.detach().clone() for a in args[:3]]))
    try:
        recipe.loss(Phase("D_main", "D"), chunk, stage)
    finally:
        hook.remove()
    (real, real_s, real_o), (fake, fake_s, fake_o) = calls
    assert torch.equal(real_s, fake_s) and torch.equal(real_o, fake_o) and torch.equal(real_s, chunk.patch.scales)
    assert real.shape == fake.shape == (8, 3, 16, 16)
    assert torch.equal(real, extract_patches(chunk.real_images, real_s, real_o, 16))
    grid = patch_grid(real_s, real_o, 16).reshape(8, -1, 2)
    ray_x, ray_y = ndc_coordinates(8, 16, chunk.patch)
    assert torch.allclose(grid[..., 0], ray_x, atol=1e-6) and torch.allclose(grid[..., 1], -ray_y, atol=1e-6)


def test_camera_conditioned_D_sees_real_cameras_for_reals_and_render_cameras_for_fakes():
    recipe = tiny_recipe()
    stage = stage_at()
    chunk = recipe.prepare(tiny_chunk(recipe, seed=6), stage)
    chunk = replace(chunk, real_labels=chunk.real_labels.flip(0))  # reals from other cameras than the fakes
    calls = []
    hook = recipe.D.register_forward_pre_hook(lambda module, args: calls.append(args[3].clone()))
    try:
        recipe.loss(Phase("D_main", "D"), chunk, stage)
    finally:
        hook.remove()
    real_angles, fake_angles = calls
    assert torch.allclose(fake_angles, recipe.real_camera_angles(replace(chunk, real_labels=chunk.cameras.eg3d_label())),
                          atol=1e-5)
    assert torch.allclose(real_angles, fake_angles.flip(0), atol=1e-5)
    with pytest.raises(ValueError, match="without a camera label"):
        recipe.loss(Phase("D_main", "D"), replace(chunk, real_labels=torch.zeros_like(chunk.real_labels)), stage)


def test_gpc_spoofing_rolls_the_chosen_rows_among_themselves():
    angles = torch.arange(24, dtype=torch.float32).view(8, 3)
    assert torch.equal(spoof_cameras(angles, 0.0, torch.Generator().manual_seed(0)), angles)
    assert torch.equal(spoof_cameras(angles, 1.0, torch.Generator().manual_seed(0)), torch.roll(angles, 1, 0))
    chosen = torch.rand(8, generator=torch.Generator().manual_seed(1)) < 0.5
    out = spoof_cameras(angles, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(out[~chosen], angles[~chosen]) and torch.equal(out[chosen], torch.roll(angles[chosen], 1, 0))
    cfg = TINY.loss
    assert cfg.spoofing_prob(0) == 1.0 and cfg.spoofing_prob(10_000) == cfg.gpc_reg_prob
    assert get_train_preset("epigraf-ffhq-512").loss.spoofing_prob(500_000) == pytest.approx(0.75)


def test_blur_fades_and_keeps_the_mean():
    cfg = get_train_preset("epigraf-ffhq-512").loss
    assert cfg.blur_sigma(0) == 10.0 and cfg.blur_sigma(100_000) == pytest.approx(5.0) and cfg.blur_sigma(200_000) == 0
    x = torch.zeros(1, 3, 21, 21)
    assert torch.equal(blur_patches(x + 1, 0.3), x + 1)
    x[..., 10, 10] = 1.0
    y = blur_patches(x, 1.5)
    assert y.shape == x.shape and y.sum().item() == pytest.approx(3.0, abs=1e-5) and y[..., 10, 10].max() < 0.2
    assert torch.allclose(y[0, :, 10, 9], y[0, :, 10, 11]) and torch.allclose(y[0, :, 9, 10], y[0, :, 10, 9])


def test_class_conditional_fakes_get_random_classes_and_reals_need_labels():
    recipe = tiny_recipe(overrides=("c_dim=3",))
    stage = stage_at()
    chunk = recipe.prepare(tiny_chunk(recipe, extras={"class_label": torch.arange(8) % 3}), stage)
    labels = chunk.condition.class_label
    assert labels.shape == (8,) and ((labels >= 0) & (labels < 3)).all()
    loss, _ = recipe.loss(Phase("D_main", "D"), chunk, stage)
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="no class labels"):
        recipe.loss(Phase("D_main", "D"), replace(chunk, real_extras={}), stage)


def test_official_presets_and_mismatched_discriminator():
    ffhq = get_train_preset("epigraf-ffhq-512")
    assert ffhq.loss.r1_gamma == 0.1 and ffhq.loss.patch.min_scale == 0.125 and ffhq.loss.patch.anneal_kimg == 10_000
    assert ffhq.discriminator.image_resolution == 512 and ffhq.discriminator.patch_resolution == 64
    assert ffhq.curriculum.stages[0].batch_size == 64 and ffhq.total_steps == 50_000_000 // 64
    for name, classes in (("epigraf-cats-256", 0), ("epigraf-plants-256", 198), ("epigraf-food-256", 10)):
        p = get_train_preset(name)
        assert p.loss.r1_gamma == 0.05 and p.loss.patch.min_scale == 0.25 and p.discriminator.c_dim == classes
    G = build_generator("epigraf-tiny").train()
    with pytest.raises(ValueError, match="patch_resolution"):
        EpiGRAFLoss(G, PatchDiscriminator(replace(TINY.discriminator, patch_resolution=8)), TINY.loss)


# ------------------------------------------------------------------------------------------ training
def test_a_few_training_steps_have_finite_losses(tmp_path):
    opts = TrainOptions(preset="epigraf-tiny", out=str(tmp_path / "run"), steps=3, log_every=1, sample_every=0,
                        checkpoint_every=100, progress=False, tensorboard=False)
    assert Trainer(opts).train().step == 3
    stats = read_stats(tmp_path / "run")
    assert [s["step"] for s in stats] == [1, 2, 3]
    for s in stats:
        assert all(math.isfinite(s[k]) for k in ("G/adv", "D/adv", "D/real", "D/fake", "patch/scale"))
    assert "D/r1" in stats[0] and math.isfinite(stats[0]["D/r1"])  # lazy R1 runs at step 0
