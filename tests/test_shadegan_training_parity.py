"""One official ShadeGAN training iteration (fixture README, "Optional: one training iteration"), through OUR
recipe's loss code (:class:`ShadeGANLoss` ``loss(phase, chunk, stage)``) and our trainer's optimiser,
clipping and learning-rate rules, with the official run's draws injected.

Step 6000 of ``CelebA_ShadeGAN_view`` at 32 px, batch 2: the raw generator weights, the seeded official
discriminator, ``train_step.real_imgs``; the stored z, light codes and poses become the chunks, the stored
ray jitter and importance u the chunks' ``draws``. The D step (loss, clipping, Adam) runs first, then the G
step against the updated D. Tolerances: the README's (images as ``assert_map_close``, scalars rtol 1e-4,
gradient norms rtol 1e-3). The official depth loss also has an LPIPS term, left out of the fixture's G
gradient norm as out of ours.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from aware3d.losses.base import Chunk, Phase, StageState
from aware3d.models.base import Condition
from aware3d.models.shadegan.convert import import_official_shadegan
from aware3d.models.shadegan.loss import ShadeGANLoss, ShadeGANLossConfig, rendered_depth_at_tracker
from aware3d.models.shadegan.official_discriminator import discriminator_from_official_state
from aware3d.models.shadegan.training import shadegan_train_presets
from aware3d.rendering import RandomDraws
from aware3d.training.trainer import build_optimizer

from .conftest import require_reference
from .test_shadegan_discriminator import seeded_official_state
from .test_shadegan_parity import assert_map_close

STEP = 6000


@pytest.fixture(scope="module")
def fixture():
    return torch.load(require_reference("shadegan", "fixture.pt"), weights_only=True)


@pytest.fixture(scope="module")
def record():
    return json.loads(require_reference("shadegan", "fixture_settings.json").read_text())["train_step"]


def make_chunk(G, fixture, phase: str, jitter: int, pdf_u: int) -> Chunk:
    """The official batch of one phase: z, light codes and (pitch, yaw) poses as stored, plus its draws."""
    c = f"train_step.{phase}."
    pose = fixture[c + ("gen_positions" if phase == "d" else "pose")]  # (pitch, yaw)
    yaw, pitch = pose[:, 1], pose[:, 0]
    draws = RandomDraws(fixture[f"train_step.draw{jitter}_rand"].reshape(2, 1024, 12),
                        fixture[f"train_step.draw{pdf_u}_rand"].reshape(2, 1024, 12))
    return Chunk(fixture["train_step.real_imgs"], torch.zeros(2, 25), fixture[c + "z"], G.cameras(yaw, pitch),
                 torch.stack([yaw, pitch], -1), torch.Generator().manual_seed(0),
                 condition=Condition(light=fixture[c + "l"]), draws=draws)


@pytest.fixture(scope="module")
def iteration(fixture):
    """Runs the iteration once: returns our values by name (scalars as floats, maps as tensors)."""
    G = import_official_shadegan(require_reference("shadegan", "generator.pth"), ema_path=None,
                                 preset="shadegan-celeba-view").train()
    D = discriminator_from_official_state(seeded_official_state()).train()
    preset = shadegan_train_presets()["shadegan-celeba-view"]
    # The fixture's iteration leaves the LPIPS term out (it needs ImageNet VGG weights).
    recipe = ShadeGANLoss(G, D, replace(preset.loss, depth_lpips_lambda=0.0))
    cur = preset.curriculum
    stage = StageState(STEP, cur.stage(STEP).resolution, cur.render_config(G.config.render, STEP), cur.alpha(STEP))
    got: dict = {"alpha": stage.alpha, "delta": recipe.delta(STEP), "num_samples": recipe.render_config(stage).num_samples,
                 "light_ratio": recipe.light_ratio(STEP), "noise": stage.render.noise_std,
                 "lr_factor": {g: recipe.lr_factor(g, stage) for g in ("G", "G.mapping", "G.tracker", "D")}}

    # D step, as the trainer runs a phase: G frozen, the loss, backward, clip, Adam.
    d_chunk = make_chunk(G, fixture, "d", 4, 6)
    G.requires_grad_(False)
    D.requires_grad_(True)
    d_loss, d_logs = recipe.loss(Phase("D_both", "D"), d_chunk, stage)
    with torch.no_grad():
        fake = recipe._generate(d_chunk, stage)
        real_out, fake_out = D(d_chunk.real_images, stage.alpha), D(fake, stage.alpha)
    got["d"] = {"gen_imgs": fake, "r_preds": real_out.logits, "g_preds": fake_out.logits,
                "g_pred_position": fake_out.pose, "d_loss": d_loss.item(),
                "softplus_fake": F.softplus(fake_out.logits).mean().item(),
                "softplus_real": F.softplus(-real_out.logits).mean().item(), "adv": d_logs["D/adv"].item(),
                "grad_penalty": d_logs["D/r1"].item() * preset.loss.r1_gamma / 2,
                "position_penalty": d_logs["D/pose"].item() * preset.loss.pos_lambda}
    d_loss.backward()
    d_opt = build_optimizer(recipe, "D", D, cur.stage(STEP).d_lr, tuple(cur.betas), cur.weight_decay)
    params = [p for p in D.parameters() if p.requires_grad]
    got["d"]["grad_norm"] = torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip("D")).item()
    d_opt.step()
    D.requires_grad_(False)

    # G step against the updated D.
    g_chunk = make_chunk(G, fixture, "g", 12, 14)
    G.requires_grad_(True)
    g_loss, g_logs = recipe.loss(Phase("G_main", "G"), g_chunk, stage)
    g_loss.backward()
    params = [p for p in G.parameters() if p.requires_grad]
    got["g"] = {"loss": g_loss.item(), "softplus_adv": g_logs["G/adv"].item(),
                "position_penalty": g_logs["G/pose"].item() * preset.loss.pos_lambda,
                "depth_l1": g_logs["G/tracker_depth"].item(),
                "grad_norm": torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip("G")).item()}
    out = recipe._render(g_chunk, stage)  # the same render (same draws), for its maps
    with torch.no_grad():
        got["g"].update(gen_imgs=out.image.detach(), g_preds=D(out.image, stage.alpha).logits,
                        depth_pred=out.maps["tracker_depth_full"][:, 0].detach(),
                        depth=rendered_depth_at_tracker(out, recipe.render_config(stage)).detach())
    return got


def close(ours: float, ref: float, rtol: float = 1e-4) -> bool:
    return math.isclose(ours, ref, rel_tol=rtol)


def test_step_settings_are_the_official_ones(iteration, record):
    meta = record["metadata"]
    assert iteration["alpha"] == pytest.approx(record["alpha"], abs=1e-12)
    assert iteration["delta"] == pytest.approx(meta["delta"], abs=1e-12)
    assert iteration["num_samples"] == meta["num_steps"] and iteration["light_ratio"] == meta["l_ratio"]
    assert iteration["noise"] == meta["nerf_noise"] == 0
    assert iteration["lr_factor"] == {"G": record["lr_ratio"], "G.mapping": record["lr_ratio"], "G.tracker": 1.0,
                                      "D": 1.0}


def test_discriminator_step_terms(iteration, record, fixture):
    ours, ref = iteration["d"], record["d"]
    assert_map_close(ours["gen_imgs"], fixture["train_step.d.gen_imgs"], "d.gen_imgs")
    for key in ("r_preds", "g_preds", "g_pred_position"):
        torch.testing.assert_close(ours[key], fixture[f"train_step.d.{key}"], atol=1e-5, rtol=0)
    for key in ("softplus_fake", "softplus_real", "grad_penalty", "position_penalty", "d_loss"):
        assert close(ours[key], ref[key]), f"{key}: ours {ours[key]:.7g}, official {ref[key]:.7g}"
    assert close(ours["adv"], ref["softplus_fake"] + ref["softplus_real"])
    assert ref["latent_penalty"] == 0  # z_lambda 0: no latent term in either
    assert close(ours["grad_norm"], ref["grad_norm_before_clip"], 1e-3), (ours["grad_norm"], ref["grad_norm_before_clip"])


def test_generator_step_terms(iteration, record, fixture):
    ours, ref = iteration["g"], record["g"]
    assert ref["topk_num"] == 2  # ceil(0.970299 * 2): every fake is kept, as in ours
    for key in ("softplus_adv", "position_penalty", "depth_l1"):
        assert close(ours[key], ref[key]), f"{key}: ours {ours[key]:.7g}, official {ref[key]:.7g}"
    assert close(ours["loss"] - ours["depth_l1"], ref["g_loss"])
    assert close(ours["loss"], ref["g_loss"] + ref["depth_l1"])
    assert close(ours["grad_norm"], ref["grad_norm_before_clip_without_lpips"], 1e-3), \
        (ours["grad_norm"], ref["grad_norm_before_clip_without_lpips"])


def test_generator_step_maps(iteration, fixture):
    ours = iteration["g"]
    assert_map_close(ours["gen_imgs"], fixture["train_step.g.gen_imgs"], "g.gen_imgs")
    assert_map_close(ours["depth_pred"], fixture["train_step.g.depth_pred"], "g.depth_pred", atol=1e-4)
    assert_map_close(ours["depth"], fixture["train_step.g.depth"], "g.depth", atol=1e-4)
    # D's scores of these fakes after its Adam step: checks the D update as the trainer applies it.
    torch.testing.assert_close(ours["g_preds"], fixture["train_step.g.g_preds"], atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------ presets and the lr hook
def test_presets_use_the_official_discriminators_and_schedules():
    from aware3d.models.registry import build_generator

    presets = shadegan_train_presets()
    for name in ("shadegan-celeba-view", "shadegan-celeba-noview", "shadegan-bfm"):
        assert presets[name].discriminator.downsample == "avgpool", name
    cats, bfm = presets["shadegan-cats"], presets["shadegan-bfm"]
    assert cats.discriminator.pose_dim == 0 and cats.loss.pos_lambda == 0 and cats.total_steps == 30_000
    assert [(s.start, s.resolution) for s in bfm.curriculum.stages] == [(0, 32), (20_000, 64), (40_000, 64),
                                                                       (50_000, 128)]
    assert bfm.total_steps == 81_000
    G = build_generator("shadegan-bfm", seed=0)
    with pytest.raises(ValueError, match="surface_tracking=false"):
        ShadeGANLoss(G, None, ShadeGANLossConfig())
    recipe = ShadeGANLoss(G, None, bfm.loss)
    stage = StageState(60_000, 128, bfm.curriculum.render_config(G.config.render, 60_000), 1.0)
    assert recipe.delta(60_000) == -1 and recipe.render_config(stage) == stage.render
    assert recipe.lr_factor("G", stage) == 1.0
    # Cats: one official parameter group, so the tracker follows G's factor too (20 -> 10 samples, beta 1e-4).
    recipe = ShadeGANLoss(None, None, cats.loss)
    stage = StageState(15_000, 64, cats.curriculum.render_config(G.config.render, 15_000), 1.0)
    expected = round(10 * math.exp(-1e-4 * 10_000) + 10) / 20
    assert recipe.lr_factor("G.tracker", stage) == recipe.lr_factor("G", stage) == expected < 1


def test_trainer_applies_the_recipe_learning_rate_factor(tmp_path):
    """After track_start, G's groups train at stage lr x lr_scale x (annealed / stage samples); D unchanged."""
    from aware3d.training.config import TrainOptions
    from aware3d.training.trainer import Trainer

    stage = {"start": 0, "resolution": 16, "batch_size": 2, "batch_split": 1, "num_samples": 12,
             "num_importance": 12, "g_lr": 2e-4, "d_lr": 4e-4}
    opts = TrainOptions(preset="shadegan-tiny", out=str(tmp_path / "run"), log_every=1, sample_every=0,
                        checkpoint_every=100, progress=False, tensorboard=False, steps=2,
                        override=("curriculum.stages=" + json.dumps([stage]), "loss.track_beta=0.5"))
    trainer = Trainer(opts)
    factor = round(8 * math.exp(-0.5) + 4) / 12  # step 1: 9 of 12 samples (num_samples_min 4)
    for step, expected in ((0, 1.0), (1, factor)):
        trainer.step()
        lrs = {g["name"]: g["lr"] for opt in trainer.opt.values() for g in opt.param_groups}
        assert lrs == pytest.approx({"G": 2e-4 * expected, "G.mapping": 2e-4 * 0.05 * expected,
                                     "G.tracker": 2e-4 * 10, "D": 4e-4}), step
