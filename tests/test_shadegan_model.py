"""ShadeGAN model tests without the official fixtures: analytic shading, normals, the band, the light prior,
conditions, and the importer's identification of official files (with the fixtures)."""

from __future__ import annotations

import math
import shutil
from dataclasses import replace

import pytest
import torch

import aware3d
from aware3d.io.sniff import summarize_file
from aware3d.models.base import Condition
from aware3d.models.registry import build_generator, find_importer
from aware3d.models.shadegan.convert import is_official_generator
from aware3d.models.shadegan.generator import surface_band
from aware3d.models.shadegan.light import (
    LightPrior,
    lambertian_shading,
    light_coefficients,
    light_direction,
)

from .conftest import require_reference

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    return build_generator("shadegan-tiny", seed=1).eval()


# ------------------------------------------------------------------------------------ light and shading
def test_light_code_mapping():
    light = torch.tensor([[0.17, 0.42, 0.0, 0.3], [-1.0, 1.0, 3.0, -4.0]])
    k_a, k_d = light_coefficients(light)
    torch.testing.assert_close(k_a[:, 0], torch.tensor([0.585, 0.0]))
    torch.testing.assert_close(k_d[:, 0], torch.tensor([0.71, 1.0]))
    d = light_direction(light)
    torch.testing.assert_close(d[1], torch.tensor([3.0, -4.0, 1.0]) / math.sqrt(26), atol=1e-6, rtol=0)
    torch.testing.assert_close(d.norm(dim=-1), torch.ones(2), atol=1e-6, rtol=0)


def test_lambertian_shading_of_a_sphere_under_a_known_light():
    # Normals of a unit sphere seen from +z; light from the right (dx = 1, dy = 0: direction (1, 0, 1)/sqrt 2).
    theta = torch.linspace(0, math.pi, 9)
    normals = torch.stack([torch.cos(theta), torch.zeros_like(theta), torch.sin(theta)], -1)[None]
    light = torch.tensor([[0.0, 0.0, 1.0, 0.0]])  # k_a = k_d = 0.5
    s = lambertian_shading(normals, light)[0, :, 0]
    expected = 0.5 + 0.5 * (torch.cos(theta - math.pi / 4)).clamp(0, 1)
    torch.testing.assert_close(s, expected, atol=1e-6, rtol=0)
    assert s[2] > s[6]  # the right side (theta < pi/2, +x) is brighter
    # the phase-in: ratio 0 is no shading at all, 0.5 half way
    assert torch.equal(lambertian_shading(normals, light, 0.0), torch.ones_like(s)[None, :, None])
    torch.testing.assert_close(lambertian_shading(normals, light, 0.5)[0, :, 0], 0.5 * expected + 0.5)


def test_shading_is_nan_safe_and_dark_normals_get_ambient():
    normals = torch.tensor([[[float("nan"), 0, 0], [0, 0, 0], [0, 0, -1.0]]])
    s = lambertian_shading(normals, torch.tensor([[0.2, 0.4, 0.0, 0.0]]))[0, :, 0]
    torch.testing.assert_close(s, torch.tensor([0.6 + 0.7, 0.6, 0.6]))  # NaN: fully lit; 0 and back-facing: ambient


def test_light_prior_sampling_and_json_round_trip(tmp_path):
    mean = torch.tensor([0.2, 0.4, 0.0, 0.1])
    std = torch.tensor([0.1, 0.2, 0.3, 0.4])
    prior = LightPrior(mean, torch.diag(std ** 2))
    codes = prior.sample(20000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(codes.mean(0), mean, atol=0.01, rtol=0)
    torch.testing.assert_close(codes.std(0), std, atol=0.01, rtol=0)
    loaded = LightPrior.load(prior.save(tmp_path / "light_prior.json"))
    assert torch.equal(loaded.mean, prior.mean) and torch.equal(loaded.cov, prior.cov)
    with pytest.raises(ValueError, match="mean \\(4,\\) and cov \\(4, 4\\)"):
        LightPrior(torch.zeros(3), torch.eye(3))


# ------------------------------------------------------------------------------------ the model
def test_normals_are_the_negative_density_gradient_of_the_warped_point(tiny):
    w = tiny.mapping(tiny.z_from_seeds([0]), 1.0).detach()
    points = torch.rand(1, 50, 3) * 0.2 - 0.1
    _, sigma, normal = tiny.field.shade_forward(points, torch.zeros_like(points), torch.zeros(1, 4), w)
    p = points.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(tiny.density(w)(p).sum(), p)
    torch.testing.assert_close(normal, -grad / tiny.field.box_scale, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(sigma, tiny.density(w)(points), atol=1e-6, rtol=0)


def test_normals_are_differentiable_in_training_mode(tiny):
    w = tiny.mapping(tiny.z_from_seeds([0]), 1.0)
    points = torch.rand(1, 20, 3) * 0.2 - 0.1
    _, _, normal = tiny.field.shade_forward(points, torch.zeros_like(points), torch.zeros(1, 4), w)
    (g,) = torch.autograd.grad(normal.square().sum(), tiny.field.sigma_head.weight)
    assert g.abs().sum() > 0  # double backward through the SIREN


def test_surface_band_is_inside_near_far_and_delta_wide():
    depth = torch.tensor([[[0.80, 1.00], [1.05, 1.20]]])
    near, far = surface_band(depth, 2, 0.88, 1.12, 0.1)
    torch.testing.assert_close(far - near, torch.full((1, 4), 0.1), atol=1e-6, rtol=0)
    assert (near >= 0.88 - 1e-6).all() and (far <= 1.12 + 1e-6).all()
    torch.testing.assert_close((near + far)[0] / 2, torch.tensor([0.93, 1.0, 1.05, 1.07]), atol=1e-6, rtol=0)


def test_light_condition_relights_without_moving_the_geometry(tiny):
    w = tiny.mapping(tiny.z_from_seeds([0, 1]), 0.7)
    cams = tiny.cameras([math.pi / 2] * 2, [math.pi / 2] * 2)
    cfg = tiny.eval_render_config()
    outs = [tiny.synthesis(w, cams, condition=Condition(light=torch.tensor([[0.0, 0.5, dx, 0.0]])), render=cfg,
                           resolution=8) for dx in (-1.0, 1.0)]
    assert outs[0].maps["albedo"].shape == (2, 3, 8, 8) and outs[0].maps["shading"].shape == (2, 1, 8, 8)
    assert torch.equal(outs[0].normals, outs[1].normals) and torch.equal(outs[0].depth, outs[1].depth)
    assert not torch.equal(outs[0].maps["shading"], outs[1].maps["shading"])
    # The default light is the prior's mean.
    default = tiny.synthesis(w, cams, render=cfg, resolution=8)
    explicit = tiny.synthesis(w, cams, render=cfg, resolution=8, condition=Condition(light=tiny.light_mean[None]))
    assert torch.equal(default.image, explicit.image)
    with pytest.raises(ValueError, match="light condition is \\(B, 4\\)"):
        tiny.synthesis(w, cams, render=cfg, resolution=8, condition=Condition(light=torch.zeros(2, 3)))


def test_no_view_model_ignores_the_view_direction():
    G = build_generator("shadegan-tiny", seed=2, overrides=["view_condition=false"]).eval()
    assert G.field.color_film.linear.in_features == G.config.hidden_dim + 4
    w = G.mapping(G.z_from_seeds([0]), 1.0)
    f = G.field_fn(w, torch.zeros(1, 4))
    p = torch.rand(1, 10, 3) * 0.1
    a = f(p, torch.nn.functional.normalize(torch.randn(1, 10, 3), dim=-1))[0]
    b = f(p, torch.nn.functional.normalize(torch.randn(1, 10, 3), dim=-1))[0]
    assert torch.equal(a, b)


# ------------------------------------------------------------------------------------ import by content
def test_official_generator_is_identified_by_content(tmp_path):
    path = require_reference("shadegan", "generator.pth")
    assert is_official_generator(summarize_file(path))
    for other in ("ema.pth", "celeba_light_mvn.pth"):
        assert not is_official_generator(summarize_file(require_reference("shadegan", other)))
    renamed = tmp_path / "weights.bin"
    shutil.copy(path, renamed)
    assert find_importer(renamed)[0].name == "shadegan"
    # Nothing beside it: raw weights, the preset's default light; the preset its README names (the file fits Cats too).
    G = aware3d.load(renamed, ema=False, preset="shadegan-celeba-view")
    assert G.family == "shadegan" and G.preset == "shadegan-celeba-view" and "ema" not in G.source
    assert torch.equal(G.light_mean, torch.tensor(G.config.light_mean))


# ------------------------------------------------------------------------------------ the training recipe
def test_recipe_groups_lights_and_tracker_loss():
    from aware3d.losses.base import Chunk, Phase, StageState
    from aware3d.models.shadegan.loss import ShadeGANLoss, ShadeGANLossConfig
    from aware3d.nn.progressive_discriminator import (
        ProgressiveDiscriminator,
        ProgressiveDiscriminatorConfig,
    )

    G = build_generator("shadegan-tiny", seed=0)
    D = ProgressiveDiscriminator(ProgressiveDiscriminatorConfig(max_resolution=64, channel_base=256, channel_max=32,
                                                                latent_dim=0))
    recipe = ShadeGANLoss(G, D, ShadeGANLossConfig(shading_start=0, track_start=0))
    groups = recipe.param_groups("G", G)
    assert [g.name for g in groups] == ["G", "G.mapping", "G.tracker"]
    assert [g.lr_scale for g in groups] == [1.0, 0.05, 10.0]
    ids = [id(p) for g in groups for p in g.params]
    assert sorted(ids) == sorted(id(p) for p in G.parameters()) and len(set(ids)) == len(ids)

    yaw, pitch = G.config.pose.sample(2, generator=torch.Generator().manual_seed(0))
    chunk = Chunk(torch.zeros(2, 3, 16, 16), torch.zeros(2, 25), G.z_from_seeds([0, 1]), G.cameras(yaw, pitch),
                  torch.stack([yaw, pitch], -1), torch.Generator().manual_seed(1))
    stage = StageState(10, 16, replace(G.config.render, num_samples=4, num_importance=4), 1.0)
    chunk = recipe.prepare(chunk, stage)
    assert chunk.condition.light.shape == (2, 4)
    loss, logs = recipe.loss(Phase("G_main", "G"), chunk, stage)
    loss.backward()
    assert "G/tracker_depth" in logs and torch.isfinite(loss)
    assert G.tracker.linear.weight.grad.abs().sum() > 0  # the depth loss trains the tracker
    assert G.mapping_network.layers[0].weight.grad.abs().sum() > 0


def test_convert_writes_a_checkpoint_with_the_ema_weights_and_light_prior(tmp_path):
    from aware3d.cli.main import main

    folder = tmp_path / "official"
    folder.mkdir()
    for name in ("generator.pth", "ema.pth", "celeba_light_mvn.pth"):
        (folder / name).symlink_to(require_reference("shadegan", name))
    assert main(["convert", str(folder / "generator.pth"), str(tmp_path / "ckpt")]) == 0
    G, converted = aware3d.load(folder / "generator.pth"), aware3d.load(tmp_path / "ckpt")
    assert G.source["ema"].endswith("ema.pth") and G.source["light_prior"].endswith("celeba_light_mvn.pth")
    a, b = G.state_dict(), converted.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(converted.light_mean, torch.tensor([0.2, 0.45, -0.05, 0.25]))


def test_a_state_dict_without_the_tracker_is_recognised_and_imported(tmp_path):
    """The BFM models train without surface tracking: their generator.pth has no ``surfacenet.*`` keys."""
    state = torch.load(require_reference("shadegan", "generator.pth"), weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("surfacenet.")}
    state["siren.color_layer_sine.layer.weight"] = state["siren.color_layer_sine.layer.weight"][:, 3:]  # no view
    path = tmp_path / "bfm_noview" / "generator.pth"
    path.parent.mkdir()
    torch.save(state, path)
    assert is_official_generator(summarize_file(path)) and find_importer(path)[0].name == "shadegan"
    G = aware3d.load(path, ema=False)
    assert G.tracker is None and G.preset == "shadegan-bfm" and not G.config.view_condition
    assert torch.equal(G.field.color_film.linear.weight, state["siren.color_layer_sine.layer.weight"])
    with torch.no_grad():
        out = G(G.z_from_seeds([0]), G.cameras([math.pi / 2], [math.pi / 2]), resolution=8,
                render=G.eval_render_config(num_samples=4))
    assert torch.isfinite(out.image).all() and "tracker_depth" not in out.maps


def test_tracker_loss_lpips_term_needs_the_users_files_and_adds_to_the_l1(tmp_path, monkeypatch):
    from aware3d.losses.base import Chunk, StageState
    from aware3d.models.shadegan.loss import ShadeGANLoss, ShadeGANLossConfig
    from aware3d.nn.lpips import TAP_CHANNELS, LPIPSConfig, LPIPSWeightsNotFound, lin_head_key, vgg16_feature_shapes

    monkeypatch.delenv("AWARE3D_LPIPS_VGG16", raising=False)
    monkeypatch.delenv("AWARE3D_LPIPS_LIN", raising=False)
    G = build_generator("shadegan-tiny", seed=0)
    with pytest.raises(LPIPSWeightsNotFound, match="(?s)vgg16-397923af.pth.*depth_lpips_lambda=0"):
        ShadeGANLoss(G, None, ShadeGANLossConfig(depth_lpips_lambda=1.0))

    # Stand-in weight files in the published layouts (random values), through the same loader.
    g = torch.Generator().manual_seed(0)
    vgg = {k: torch.randn(s, generator=g) * (2 / max(1, math.prod(s[1:]))) ** 0.5
           for k, s in vgg16_feature_shapes().items()}
    torch.save(vgg, tmp_path / "vgg16-397923af.pth")
    torch.save({lin_head_key(i): torch.rand(1, c, 1, 1, generator=g) for i, c in enumerate(TAP_CHANNELS)},
               tmp_path / "vgg.pth")
    files = LPIPSConfig(str(tmp_path / "vgg16-397923af.pth"), str(tmp_path / "vgg.pth"))
    l1_only = ShadeGANLoss(G, None, ShadeGANLossConfig(track_start=0))
    both = ShadeGANLoss(G, None, ShadeGANLossConfig(track_start=0, depth_lpips_lambda=1.0, lpips=files))
    yaw, pitch = G.config.pose.sample(2, generator=torch.Generator().manual_seed(0))
    chunk = Chunk(torch.zeros(2, 3, 16, 16), torch.zeros(2, 25), G.z_from_seeds([0, 1]), G.cameras(yaw, pitch),
                  torch.stack([yaw, pitch], -1), torch.Generator().manual_seed(1))
    stage = StageState(10, 16, replace(G.config.render, num_samples=4, num_importance=4, perturb=False), 1.0)
    out = G(chunk.z, chunk.cameras, resolution=16, render=stage.render, delta=both.delta(10))
    a, b = l1_only._depth_loss(out, stage.render), both._depth_loss(out, stage.render)
    assert b > a > 0  # the perceptual term adds a positive distance
    G.zero_grad()
    (b - a).backward()
    assert G.tracker.linear.weight.grad.abs().sum() > 0  # and it trains the tracker
