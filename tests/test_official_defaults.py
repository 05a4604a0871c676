"""Official checkpoints rendered the way the official scripts render them, by default.

* An official file whose content fits several presets (pi-GAN's CelebA and Cats share SPATIALSIRENBASELINE, ShadeGAN's
  CelebA-view and Cats share one architecture) is refused without ``--preset``, with the candidates listed, in
  ``aware3d.load``, ``convert`` and the tools; what a file carries (a TALLSIREN, EG3D's camera settings, the name
  of ShadeGAN's light prior beside it) picks the preset when it can.
* The tools' central camera is each pose distribution's official frontal camera (pi-GAN CARLA's spherical_uniform:
  ``arccos(1 - 2 v_mean / pi)``, not ``v_mean``; EG3D ShapeNet: the equator, as gen_samples).
* pi-GAN's ``last_back`` and ``white_back`` together (the ``last_sample+white`` background) follow the official
  formula, written out below.
* Each official preset's tool defaults are the official scripts' (one case per preset).
"""

from __future__ import annotations

import math
import shutil
import sys
import types
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import aware3d
from aware3d.cameras import get_camera_path
from aware3d.cli.main import main
from aware3d.config import from_dict
from aware3d.models.registry import PresetChoiceError, build_generator, families, get_preset
from aware3d.rendering import RenderConfig, composite
from aware3d.tools.render import RenderOptions, view_list

from .conftest import require_reference

FRONT = (math.pi / 2, math.pi / 2)
CARLA_V_MEAN = math.pi / 4 * 85 / 90
CARLA_FRONT = (math.pi / 2, math.acos(1 - 2 * CARLA_V_MEAN / math.pi))  # 1.0148 rad, not v_mean = 0.7418


def _defaults(samples, background, near, far, psi, fov, frontal=FRONT, **extra):
    return dict(samples=samples, background=background, near=near, far=far, psi=psi, fov=fov, frontal=frontal,
                **extra)


# The official scripts' render settings. pi-GAN: render_multiview_images.py / render_video.py take the curriculum's
# stage-0 num_steps times --ray_step_multiplier 2 (as many importance samples: hierarchical_sample), psi 0.7,
# last_back = the curriculum's eval_last_back (CelebA, Cats; CARLA has none) and CARLA's white_back, and the camera
# of staged_forward with zero spread. ShadeGAN: scripts/render.sh (num_steps 12, psi 0.5, sample_dist fixed at
# (pi/2, pi/2), the curricula's last_back False) and weights/pretrain/delta.txt; Cats has no released command: the
# curriculum's 20 steps and its final band delta_min. EG3D: the train.py rendering_kwargs of each --cfg, gen_samples'
# fov 18.837 and the README's --trunc=0.7, cameras around the equator. EpiGRAF: the dataset configs, inference.py's
# truncation_psi 0.7 (its ray_step_multiplier only reaches the background: 48 stays 48).
OFFICIAL = {
    "pigan-celeba": _defaults(24, "last_sample", 0.88, 1.12, 0.7, 12.0),
    "pigan-cats": _defaults(48, "last_sample", 0.8, 1.2, 0.7, 12.0),
    "pigan-carla": _defaults(96, "white", 0.7, 1.3, 0.7, 30.0, CARLA_FRONT),
    "shadegan-celeba-view": _defaults(12, "black", 0.88, 1.12, 0.5, 12.0, delta=0.06423),
    "shadegan-celeba-noview": _defaults(12, "black", 0.88, 1.12, 0.5, 12.0, delta=0.06491),
    "shadegan-cats": _defaults(20, "black", 0.8, 1.2, 0.5, 12.0, delta=0.06),
    "shadegan-bfm": _defaults(12, "black", 0.88, 1.12, 0.5, 12.0, delta=-1.0),
    "eg3d-ffhq": _defaults(48, "black", 2.25, 3.3, 0.7, 18.837, camera_radius=2.7, camera_pivot=(0, 0, 0.2)),
    "eg3d-afhq": _defaults(48, "black", 2.25, 3.3, 0.7, 18.837, camera_radius=2.7, camera_pivot=(0, 0, -0.06)),
    "eg3d-shapenet": _defaults(64, "white", 0.1, 2.6, 0.7, None, camera_radius=1.7, camera_pivot=(0, 0, 0)),
    "epigraf-ffhq-512": _defaults(48, "black", 0.88, 1.12, 0.7, 12.0),
    "epigraf-cats-256": _defaults(48, "black", 0.88, 1.12, 0.7, 12.0),
    "epigraf-plants-256": _defaults(48, "white", 0.75, 1.25, 0.7, 30.0),
    "epigraf-food-256": _defaults(48, "white", 0.75, 1.25, 0.7, 30.0),
    # cGOF v1 tools/eval/render/*.py: the curriculum's 12 steps x --ray_step_multiplier 2, psi 0.7, --last_back.
    "cgof-celeba": _defaults(24, "last_sample", 0.88, 1.12, 0.7, 12.0),
}


# ------------------------------------------------------------------------------ tool defaults, per preset
def test_every_preset_is_an_official_one_or_a_cpu_preset():
    tiny = {f.tiny.model for f in families().values()}
    for family in families().values():
        for name in family.presets:
            assert name in OFFICIAL or name in tiny, f"{name}: add its official tool defaults to OFFICIAL"


@pytest.mark.parametrize("preset", sorted(OFFICIAL))
def test_tool_defaults_are_the_official_scripts(preset):
    want, (_, cfg) = OFFICIAL[preset], get_preset(preset)
    r = cfg.eval_render
    assert (r.num_samples, r.num_importance) == (want["samples"], want["samples"])
    assert r.background == want["background"]
    assert (r.near, r.far) == pytest.approx((want["near"], want["far"]))
    assert cfg.eval_truncation_psi == want["psi"]
    if want["fov"] is not None:
        assert cfg.fov_deg == pytest.approx(want["fov"])
    for key in ("delta", "camera_radius", "camera_pivot"):
        if key in want:
            assert getattr(cfg, key) == pytest.approx(want[key]), key


@pytest.mark.parametrize("preset", sorted(OFFICIAL))
def test_tools_look_from_the_official_frontal_camera(preset):
    _, cfg = get_preset(preset)
    yaw, pitch = OFFICIAL[preset]["frontal"]
    assert cfg.pose.frontal() == pytest.approx((yaw, pitch))
    # aware3d render's view list (yaw/pitch offsets 0) and a camera path's main view.
    assert view_list(SimpleNamespace(config=cfg), RenderOptions(yaw=[0.0], pitch=[0.0]))[0] == pytest.approx(
        (yaw, pitch, 1.0))
    p = get_camera_path("points", cfg.pose, 3)
    assert (float(p.yaw[0]), float(p.pitch[0])) == pytest.approx((yaw, pitch))


@pytest.mark.parametrize("preset", sorted(OFFICIAL))
def test_frontal_is_where_the_sampler_puts_a_camera_without_spread(preset):
    """The official scripts render the training prior with zero spread (h_stddev = v_stddev = 0): our sampler with
    zero spread gives the frontal camera, unless the preset names another one (EG3D ShapeNet's equator, away from
    its hemisphere prior's centre)."""
    pose = get_preset(preset)[1].pose
    yaw, pitch = replace(pose, yaw_std=0.0, pitch_std=0.0).sample(3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(yaw, torch.full((3,), pose.frontal()[0]), rtol=0, atol=1e-6)
    if pose.frontal_pitch is None:
        torch.testing.assert_close(pitch, torch.full((3,), pose.frontal()[1]), rtol=0, atol=1e-6)
    else:
        assert (pitch - pose.frontal_pitch).abs().min() > 0.1


def test_carla_frontal_pitch_is_not_its_pitch_mean():
    pose = get_preset("pigan-carla")[1].pose
    assert pose.frontal()[1] == pytest.approx(1.01481, abs=1e-5) and pose.pitch_mean == pytest.approx(0.74176, abs=1e-5)


def test_api_render_uses_the_frontal_camera():
    """aware3d.render(G, yaw=0, pitch=0) renders what a camera at the official frontal pose renders (a tiny model
    given CARLA's pose prior), not a camera at pitch_mean."""
    G = build_generator("pigan-tiny", seed=2, overrides=[
        "pose.dist=spherical_uniform", f"pose.pitch_mean={CARLA_V_MEAN}", f"pose.pitch_std={CARLA_V_MEAN}",
        f"pose.yaw_std={math.pi}"]).eval()
    kw = dict(seeds=[0], resolution=8, num_samples=4)
    default = aware3d.render(G, **kw).image
    frontal = aware3d.render(G, cameras=G.cameras([CARLA_FRONT[0]], [CARLA_FRONT[1]]), **kw).image
    at_mean = aware3d.render(G, cameras=G.cameras([math.pi / 2], [CARLA_V_MEAN]), **kw).image
    assert torch.equal(default, frontal)
    assert not torch.allclose(default, at_mean)


# ------------------------------------------------------------------------------ last_sample + white
def _official_last_back_white_back(rgb, sigma, z):
    """pi-GAN's fancy_integration with last_back and white_back both on (relu, no noise), from its description:
    alpha_i = 1 - exp(-delta_i relu(sigma_i)) with the last delta 1e10, w_i = alpha_i prod_{j<i} (1 - alpha_j + 1e-10),
    S = sum_i w_i; then the last weight is raised by 1 - S, the colour is sum_i w_i c_i over the raised weights and
    the depth sum_i w_i z_i, and finally white is added with the weight 1 - S of the weights *before* the raise."""
    delta = torch.cat([z[..., 1:] - z[..., :-1], torch.full_like(z[..., :1], 1e10)], -1)
    alpha = 1 - torch.exp(-delta * sigma.clamp_min(0))
    weights = torch.zeros_like(alpha)
    through = torch.ones_like(alpha[..., 0])
    for i in range(alpha.shape[-1]):
        weights[..., i] = alpha[..., i] * through
        through = through * (1 - alpha[..., i] + 1e-10)
    total = weights.sum(-1)
    filled = weights.clone()
    filled[..., -1] = filled[..., -1] + (1 - total)
    color = (filled[..., None] * rgb).sum(-2) + (1 - total)[..., None]
    return color, (filled * z).sum(-1), filled


def test_last_sample_and_white_background_follow_the_official_formula():
    g = torch.Generator().manual_seed(3)
    B, R, S = 2, 64, 6
    rgb = torch.rand(B, R, S, 3, generator=g)
    sigma = torch.randn(B, R, S, generator=g) * 3
    sigma[:, ::2, -1] = -1.0  # half of the rays: an empty last sample, so some weight is left over
    z = torch.linspace(0.7, 1.3, S).expand(B, R, S) + 0.01 * torch.rand(B, R, S, generator=g)
    want_color, want_depth, want_weights = _official_last_back_white_back(rgb, sigma, z)
    out = composite(rgb, sigma, z, background="last_sample+white")
    assert (1 - out.opacity[:, ::2]).max() > 0.05  # the case is not trivial: rays with leftover weight
    torch.testing.assert_close(out.color, want_color, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.depth, want_depth, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.weights, want_weights, rtol=0, atol=1e-6)
    # Neither background alone gives it: the leftover weight counts twice (farthest colour and white).
    for alone in ("last_sample", "white"):
        assert (composite(rgb, sigma, z, background=alone).color - want_color).abs().max() > 0.05
    assert out.color.max() > 1.0  # as the official renderer, the sum can pass 1 where the last sample is empty


def test_last_sample_and_white_background_is_a_render_setting():
    cfg = from_dict(RenderConfig, {"near": 0.7, "far": 1.3, "background": "last_sample+white"})
    assert cfg.background == "last_sample+white"
    G = build_generator("pigan-tiny", seed=1, overrides=["eval_render.background=last_sample+white"]).eval()
    both = aware3d.render(G, seeds=[0], resolution=8, num_samples=4)
    last = aware3d.render(build_generator("pigan-tiny", seed=1).eval(), seeds=[0], resolution=8, num_samples=4)
    # Same weights as last_sample alone; white adds the leftover (1 - opacity) to every channel (x2 in [-1, 1]).
    torch.testing.assert_close(both.image, last.image + 2 * (1 - last.opacity), rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------ which preset an official file gets
def _fake_pigan(path, siren_class: str, hidden: int = 8, layers: int = 2, z_dim: int = 4) -> None:
    """torch.save of a module tree shaped and named like the official ImplicitGenerator3d with ``siren_class``."""
    mods = {n: types.ModuleType(n) for n in ["generators", "generators.generators", "siren", "siren.siren"]}

    def film(i, o):
        m = nn.Module()
        m.layer = nn.Linear(i, o)
        return m

    siren = nn.Module()
    siren.hidden_dim = hidden
    siren.network = nn.ModuleList([film(3 if i == 0 else hidden, hidden) for i in range(layers)])
    siren.final_layer = nn.Linear(hidden, 1)
    siren.color_layer_sine = film(hidden + 3, hidden)
    siren.color_layer_linear = nn.Sequential(nn.Linear(hidden, 3))
    mapping = nn.Module()
    mapping.network = nn.Sequential(nn.Linear(z_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 2 * (layers + 1) * hidden))
    siren.mapping_network = mapping
    if siren_class == "SPATIALSIRENBASELINE":
        warp = nn.Module()
        warp.scale_factor = 2 / 0.24
        siren.gridwarper = warp
    root = nn.Module()
    root.z_dim = z_dim
    root.siren = siren
    # Give every module the official class name (module pickles record it).
    classes = {}
    for obj, mod, name in [(root, "generators.generators", "ImplicitGenerator3d"), (siren, "siren.siren", siren_class),
                           (mapping, "siren.siren", "CustomMappingNetwork"),
                           *((m, "siren.siren", "FiLMLayer") for m in [*siren.network, siren.color_layer_sine]),
                           *(((siren.gridwarper, "siren.siren", "UniformBoxWarp"),) if hasattr(siren, "gridwarper")
                             else ())]:
        cls = classes.get(name) or type(name, (nn.Module,), {"__module__": mod})
        classes[name] = cls
        setattr(mods[mod], name, cls)
        obj.__class__ = cls
    sys.modules.update(mods)
    try:
        torch.save(root, path)
    finally:
        for name in mods:
            sys.modules.pop(name, None)


def _pigan_reference_alone(tmp_path):
    path = tmp_path / "generator.pth"
    shutil.copy(require_reference("pigan", "generator.pth"), path)
    return path


def test_official_pigan_file_of_several_curricula_needs_a_preset(tmp_path):
    path = _pigan_reference_alone(tmp_path)
    with pytest.raises(PresetChoiceError) as err:
        aware3d.load(path)
    text = str(err.value)
    assert str(path) in text and "pigan-celeba" in text and "pigan-cats" in text and "--preset" in text
    assert "pigan-carla" not in text  # a SPATIALSIRENBASELINE is never CARLA's TALLSIREN
    cats = aware3d.load(path, preset="pigan-cats")
    assert cats.preset == "pigan-cats" and (cats.config.eval_render.near, cats.config.eval_render.far) == (0.8, 1.2)
    assert cats.config.pose.dist == "uniform"


def test_convert_and_the_tools_refuse_an_ambiguous_official_file(tmp_path, capsys):
    path = _pigan_reference_alone(tmp_path)
    assert main(["convert", str(path), str(tmp_path / "ckpt")]) == 2
    assert "pigan-celeba" in capsys.readouterr().err and not (tmp_path / "ckpt").exists()
    assert main(["render", "--checkpoint", str(path), "--out", str(tmp_path / "r"), "--seeds", "0", "--yaw", "0",
                 "--resolution", "8", "--num-samples", "4", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "pigan-cats" in err and "--preset" in err
    assert main(["convert", str(path), str(tmp_path / "ckpt"), "--preset", "pigan-cats", "--no-ema"]) == 0
    assert aware3d.load(tmp_path / "ckpt").preset == "pigan-cats"


def test_a_preset_of_another_family_is_refused(tmp_path):
    path = tmp_path / "generator.pth"
    _fake_pigan(path, "SPATIALSIRENBASELINE")
    with pytest.raises(ValueError, match="eg3d-ffhq.*pigan-celeba"):
        aware3d.load(path, preset="eg3d-ffhq")


def test_a_tallsiren_file_is_carla(tmp_path):
    path = tmp_path / "generator.pth"
    _fake_pigan(path, "TALLSIREN")
    G = aware3d.load(path)
    assert G.preset == "pigan-carla" and G.config.box_warp is None and G.config.eval_render.num_samples == 96
    _fake_pigan(path, "SPATIALSIRENBASELINE")
    with pytest.raises(PresetChoiceError, match="pigan-celeba.*pigan-cats"):
        aware3d.load(path)


def test_shadegan_light_prior_beside_the_file_names_the_dataset(tmp_path):
    src = require_reference("shadegan")
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "generator.pth").symlink_to(src / "generator.pth")
    with pytest.raises(PresetChoiceError) as err:
        aware3d.load(alone / "generator.pth", ema=False)
    assert "shadegan-celeba-view" in str(err.value) and "shadegan-cats" in str(err.value)
    assert "shadegan-celeba-noview" not in str(err.value)  # the file is view-conditioned
    for prior, preset in (("cat_light_mvn.pth", "shadegan-cats"), ("celeba_light_mvn.pth", "shadegan-celeba-view")):
        folder = tmp_path / preset
        folder.mkdir()
        (folder / "generator.pth").symlink_to(src / "generator.pth")
        (folder / prior).symlink_to(src / "celeba_light_mvn.pth")
        G = aware3d.load(folder / "generator.pth", ema=False)
        assert G.preset == preset and G.source["light_prior"].endswith(prior)
    assert aware3d.load(alone / "generator.pth", ema=False, preset="shadegan-cats").config.eval_render.near == 0.8


@pytest.mark.parametrize("rendering, resolution, want", [
    ({"avg_camera_radius": 2.7, "avg_camera_pivot": [0, 0, 0.2]}, 512, "eg3d-ffhq"),
    ({"avg_camera_radius": 2.7, "avg_camera_pivot": [0, 0, -0.06]}, 512, "eg3d-afhq"),
    ({"avg_camera_radius": 1.7, "avg_camera_pivot": [0, 0, 0], "white_back": True}, 128, "eg3d-shapenet"),
])
def test_eg3d_pickles_name_their_preset_by_their_camera(rendering, resolution, want):
    from aware3d.models.eg3d.convert import candidate_presets

    assert list(candidate_presets(rendering, resolution)) == [want]


def test_an_eg3d_pickle_with_an_unknown_camera_needs_a_preset():
    from aware3d.models.eg3d.convert import candidate_presets
    from aware3d.models.registry import choose_import_preset

    found = candidate_presets({"avg_camera_radius": 3.0, "avg_camera_pivot": [0, 0.1, 0]}, 512)
    assert {"eg3d-ffhq", "eg3d-afhq", "eg3d-shapenet"} <= set(found)
    with pytest.raises(PresetChoiceError, match="eg3d-afhq"):
        choose_import_preset("x.pkl", "eg3d", get_preset("eg3d-ffhq")[0].presets, found, None, "an EG3D pickle")
    assert choose_import_preset("x.pkl", "eg3d", get_preset("eg3d-ffhq")[0].presets, found, "eg3d-afhq", "") == \
        "eg3d-afhq"


def test_epigraf_last_back_with_white_back_imports_as_both():
    """EpiGRAF's renderer (pi-GAN's fancy_integration) fills the last weight and adds white with the weight left
    before the fill: the same background, which used to be refused on import."""
    from aware3d.models.epigraf.convert import config_from_official, generator_config_tree, load_snapshot_networks

    root = load_snapshot_networks(require_reference("epigraf", "network-snapshot.pkl"))[0]["G_ema"]
    cfg = generator_config_tree(root.get("cfg"), "cfg")
    cfg["dataset"].update(white_back=True, last_back=True)
    config, _ = config_from_official(root.get("_init_kwargs"), cfg, {}, "test")
    assert config.render.background == config.eval_render.background == "last_sample+white"


def test_training_sample_grid_centres_on_the_frontal_camera(tmp_path, monkeypatch):
    """The trainer's sample grid looks from the same central camera as the tools (a spherical_uniform pose
    distribution's frontal pitch is arccos(1 - 2 v_mean / pi), not pitch_mean)."""
    from aware3d.training.trainer import Trainer

    from .test_training import options

    trainer = Trainer(options(tmp_path / "run", override=(options(tmp_path).override[0], "model.pose.dist=spherical_uniform",
                                                           "model.pose.pitch_mean=0.742")))
    G = trainer.primary_ema
    seen = []
    original = type(G).cameras

    def recording(self, yaw, pitch, *args, **kwargs):
        seen.append((list(yaw), list(pitch)))
        return original(self, yaw, pitch, *args, **kwargs)

    monkeypatch.setattr(type(G), "cameras", recording)
    trainer.sample_grid(tmp_path / "grid.png", 8)
    yaw0, pitch0 = G.config.pose.frontal()
    assert abs(pitch0 - math.acos(1 - 2 * 0.742 / math.pi)) < 1e-9
    yaws, pitches = seen[0]
    assert set(pitches) == {pitch0} and sorted(set(yaws)) == [yaw0 - 0.4, yaw0, yaw0 + 0.4]
