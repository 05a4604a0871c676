"""Parity with the official ShadeGAN code (fixtures in $AWARE3D_REFERENCE/shadegan, see its README).

One imported model per module (EMA, raw and the derived no-view model). Render cases inject the stored
jitter and importance draws and the stored truncation centre; tolerances are the fixture README's: mapping,
tracker, shading and albedo at the samples atol 1e-5; sigma / normals at the samples rtol 1e-4 of the
tensor's max; images, albedo, shading and normal maps mean abs < 1e-4, at most 0.5% of values above 1e-3
and 0.1% above 1e-2; depth and tracker depth the same outlier allowance above 1e-4.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from aware3d.models.base import Condition
from aware3d.models.shadegan import ShadeGANGenerator
from aware3d.models.shadegan.convert import import_official_shadegan
from aware3d.models.shadegan.generator import resize_depth
from aware3d.models.shadegan.light import lambertian_shading, load_official_light_prior
from aware3d.rendering import RandomDraws

from .conftest import require_reference


@pytest.fixture(scope="module")
def fixture():
    return torch.load(require_reference("shadegan", "fixture.pt"), weights_only=True)


@pytest.fixture(scope="module")
def models():
    path = require_reference("shadegan", "generator.pth")
    ema = import_official_shadegan(path, preset="shadegan-celeba-view")  # the curriculum its README names
    raw = import_official_shadegan(path, ema_path=None, preset="shadegan-celeba-view")
    # The fixture's derived no-view model: the EMA state without the view-direction columns of the colour layer.
    nv = ShadeGANGenerator(replace(ema.config, view_condition=False, delta=0.06491)).eval()
    state = ema.state_dict()
    state["field.color_film.linear.weight"] = state["field.color_film.linear.weight"][:, 3:]
    nv.load_state_dict(state)
    return {"ema": ema, "raw": raw, "nv": nv}


def assert_map_close(ours: torch.Tensor, ref: torch.Tensor, name: str, atol: float = 1e-3) -> None:
    """The README's image criterion (outliers allowed, no max-abs bound); ``atol`` is the per-value threshold."""
    assert ours.shape == ref.shape, f"{name}: shape {tuple(ours.shape)} vs {tuple(ref.shape)}"
    d = (ours.double() - ref.double()).abs()
    assert torch.isfinite(ours).all(), name
    assert d.mean() < 1e-4, f"{name}: mean abs diff {d.mean():.2e}"
    assert (d > atol).double().mean() <= 0.005, f"{name}: {(d > atol).double().mean():.4f} of values above {atol}"
    assert (d > 1e-2).double().mean() <= 0.001, f"{name}: {(d > 1e-2).double().mean():.4f} of values above 1e-2"


def assert_rel_close(ours: torch.Tensor, ref: torch.Tensor, name: str, rtol: float = 1e-4) -> None:
    scale = ref.abs().max()
    err = (ours - ref).abs().max()
    assert err <= rtol * scale, f"{name}: max abs diff {err:.3e} > {rtol} x {scale:.3e}"


# ------------------------------------------------------------------------------------ building blocks
def test_import_reads_state_dict_ema_and_light_prior(models, fixture):
    G = models["ema"]
    assert G.config.view_condition and G.config.light_condition and G.config.surface_tracker
    assert sum(p.numel() for p in G.parameters()) == 7_068_628
    assert torch.equal(G.light_mean, fixture["light.mvn_mean"]) and torch.equal(G.light_cov, fixture["light.mvn_cov"])
    assert set(G.source) == {"official", "generator", "ema", "light_prior"} and "ema" not in models["raw"].source


@pytest.mark.parametrize("weights", ["raw", "ema"])
def test_mapping(models, fixture, weights):
    with torch.no_grad():
        w = models[weights].mapping_network(fixture["z"])
    torch.testing.assert_close(w[:, :2304], fixture[f"mapping.{weights}.frequencies"], atol=1e-5, rtol=0)
    torch.testing.assert_close(w[:, 2304:], fixture[f"mapping.{weights}.phase_shifts"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("weights", ["raw", "ema", "nv_ema"])
def test_siren_albedo_sigma_and_normals(models, fixture, weights):
    G = models["nv" if weights == "nv_ema" else weights]
    with torch.no_grad():
        w = G.mapping_network(fixture["z"])
        albedo, sigma, normal = G.field.shade_forward(fixture["siren.points"], fixture["siren.ray_directions"],
                                                      fixture["siren.l"], w)
    torch.testing.assert_close(albedo, fixture[f"siren.{weights}.rgb"], atol=1e-5, rtol=0)
    assert_rel_close(sigma[..., None], fixture[f"siren.{weights}.sigma"], "sigma")
    assert_rel_close(normal, fixture[f"siren.{weights}.normal"], "normal")


def test_surface_tracker_and_resize(models, fixture):
    G = models["ema"]
    pose = fixture["surfacenet.in.pose_pitch_yaw"]
    with torch.no_grad():
        pred = G.tracker(fixture["surfacenet.in.freq_phase"] * 10, pose[:, 0], pose[:, 1])
    torch.testing.assert_close(pred, fixture["surfacenet.out.pred"], atol=1e-5, rtol=0)
    depth = 0.88 + 0.24 * fixture["surfacenet.out.pred"][:, 0]
    for key, sizes in (("32", (32,)), ("64", (64,)), ("32_then_48", (32, 48))):
        d = depth
        for s in sizes:
            d = resize_depth(d, s)
        torch.testing.assert_close(d, fixture[f"resize.depth_pred_to_{key}"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("ratio", ["1.0", "0.3"])
def test_lambertian_shading(fixture, ratio):
    shading = lambertian_shading(fixture["lamb.in.normal"], fixture["lamb.in.l"], float(ratio))
    torch.testing.assert_close(shading, fixture[f"lamb.l_ratio{ratio}.shading"], atol=1e-5, rtol=0)
    rgb = (fixture["lamb.in.albedo"] * shading).clamp(0, 1)
    torch.testing.assert_close(rgb, fixture[f"lamb.l_ratio{ratio}.rgb"], atol=1e-5, rtol=0)
    assert torch.equal(fixture["lamb.cam2world_fixed"][0, :3, :3], torch.eye(3))  # the light frame is the world's


def test_light_prior_file_and_sampling(fixture):
    prior = load_official_light_prior(require_reference("shadegan", "celeba_light_mvn.pth"))
    assert torch.equal(prior.mean, fixture["light.mvn_mean"]) and torch.equal(prior.cov, fixture["light.mvn_cov"])
    torch.testing.assert_close(prior.transform(fixture["light.sample.eps"]), fixture["light.sample.l"], atol=1e-6, rtol=0)
    torch.manual_seed(190)  # LSampler.sample: one (n, 4) normal_ draw from the global stream
    torch.testing.assert_close(prior.sample(4), fixture["light.sample.l"], atol=1e-6, rtol=0)
    torch.manual_seed(180)
    torch.testing.assert_close(prior.sample(2), fixture["train_l"], atol=1e-6, rtol=0)


def test_density_grid_of_extract_shapes(models, fixture):
    G = models["ema"]
    G.w_avg.copy_(torch.cat([fixture["shapes.avg_frequencies"], fixture["shapes.avg_phase_shifts"]], -1))
    n, cube = 24, 0.3
    # create_samples' flat index i: z = i % N, y = (i / N) % N, x = (i / N / N) % N with FLOAT division (the
    # official code on current torch), so y and x are not on the integer lattice: reproduced as such.
    i = torch.arange(n ** 3)
    index = torch.stack([((i.float() / n) / n) % n, (i.float() / n) % n, (i % n).float()], -1)
    points = (index * (cube / (n - 1)) - cube / 2)[None]
    with torch.no_grad():
        sigma = G.density(G.mapping(fixture["shapes.z"], 0.5))(points).reshape(n, n, n)
    assert_rel_close(sigma, fixture["shapes.sigma_grid"], "sigma grid")


# ------------------------------------------------------------------------------------ renders
# name: (model, resolution, samples, hierarchical, yaw offset, pitch offset, delta, lock view, psi)
BASE = {"model": "ema", "res": 32, "samples": 12, "hier": True, "yaw": 0.0, "pitch": 0.0, "delta": 0.06423, "lock": False, "psi": 0.5}
CASES = {
    "st_front": {}, "st_front_dx-1.5": {}, "st_front_dx-1": {}, "st_front_dx+1": {}, "st_front_dx+1.5": {},
    "st_front_nodelta": {"delta": -1}, "st_yaw-0.5": {"yaw": -0.5}, "st_yaw+0.25": {"yaw": 0.25},
    "st_yaw+0.5_nodelta": {"delta": -1, "yaw": 0.5}, "st_pitch_yaw": {"yaw": 0.3, "pitch": -0.15},
    "st_front_lockview": {"lock": True}, "st_yaw+0.5_lockview": {"lock": True, "yaw": 0.5},
    "st_front_psi1": {"psi": 1.0}, "st_sampledlight": {"yaw": -0.25}, "st_steps6_delta0.06": {"samples": 6, "delta": 0.06},
    "st_nohier": {"hier": False}, "st_B2": {"yaw": 0.25}, "st_64_front": {"res": 64},
    "st_64_yaw-0.25_nodelta": {"res": 64, "delta": -1, "yaw": -0.25},
    "raw_st_front": {"model": "raw"}, "raw_st_yaw-0.5_nodelta": {"model": "raw", "delta": -1, "yaw": -0.5},
    "nv_st_front": {"model": "nv", "delta": 0.06491}, "nv_st_yaw+0.5_dx+1": {"model": "nv", "delta": 0.06491, "yaw": 0.5},
    "st_front_fixeddraws": {}, **{f"script_relight_light{i}": {} for i in range(5)},
}


def render_group(models, fixture, names: list[str]) -> dict[str, tuple]:
    """Our renders of ``staged_forward`` cases that share every render setting, in one batch (rays are
    independent, so each row is its case's render), with each case's stored draws and truncation centre."""
    o = {**BASE, **CASES[names[0]]}
    G = models[o["model"]]
    R, S = o["res"] ** 2, o["samples"]
    ws, lights, yaws, pitches, strat, imp, rows = [], [], [], [], [], [], []
    for name in names:
        c, opts = f"case.{name}.", {**BASE, **CASES[name]}
        z = fixture[c + "z"]
        avg = torch.cat([fixture[c + "avg_frequencies"], fixture[c + "avg_phase_shifts"]], -1)
        G.w_avg.copy_(avg)
        with torch.no_grad():
            ws.append(G.mapping(z, opts["psi"]))
        lights.append(fixture[c + "l"])
        yaws += [math.pi / 2 + opts["yaw"]] * len(z)
        pitches += [math.pi / 2 + opts["pitch"]] * len(z)
        strat.append(fixture[c + "draw1_rand"].reshape(len(z), R, S))
        if o["hier"]:
            imp.append(fixture[c + "draw3_rand"].reshape(len(z), R, S))
        rows.append(len(z))
    cameras = G.cameras(yaws, pitches)
    cfg = replace(G.config.render, num_samples=S, num_importance=S if o["hier"] else 0)
    draws = RandomDraws(torch.cat(strat), torch.cat(imp) if imp else None)
    w = torch.cat(ws)
    with torch.no_grad():
        out = G.synthesis(w, cameras, condition=Condition(light=torch.cat(lights)), resolution=o["res"], render=cfg,
                          draws=draws, delta=o["delta"], lock_view_dependence=o["lock"])
        tracked = G.tracker_depth(w, cameras)
    maps = {"rgb": out.image, "albedo": out.maps["albedo"], "shading": out.maps["shading"][:, 0],
            "normal": out.normals, "depth": out.depth[:, 0], "depth_pred": tracked}
    results, start = {}, 0
    for name, n in zip(names, rows):
        results[name] = {k: v[start:start + n] for k, v in maps.items()}
        start += n
    return results


FAST = ("st_front", "st_front_dx+1.5", "st_front_nodelta", "st_pitch_yaw", "st_yaw+0.5_lockview", "st_sampledlight",
        "st_steps6_delta0.06", "st_nohier", "st_B2", "raw_st_front", "nv_st_yaw+0.5_dx+1", "st_front_fixeddraws")
"""One case per feature in the default run; the others repeat a feature with other values (marked slow)."""


def group_key(name: str) -> tuple:
    o = {**BASE, **CASES[name]}
    return o["model"], o["res"], o["samples"], o["hier"], o["delta"], o["lock"]


@pytest.fixture(scope="module")
def renders(models, fixture):
    """name -> our maps; each batch of cases that share their settings is rendered when first asked for
    (among the cases selected in this run)."""
    cache: dict[str, dict] = {}

    def get(name: str, selected: list[str]) -> dict:
        if name not in cache:
            cache.update(render_group(models, fixture, [n for n in selected if group_key(n) == group_key(name)]))
        return cache[name]
    return get


def case_params():
    return [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in CASES]


@pytest.mark.parametrize("name", case_params())
def test_staged_forward_cases(renders, fixture, name, request):
    selected = [item.callspec.params["name"] for item in request.session.items
                if getattr(item, "originalname", None) == "test_staged_forward_cases" and hasattr(item, "callspec")]
    ours = renders(name, selected or [name])
    for key in ("rgb", "albedo", "shading", "normal", "depth", "depth_pred"):
        assert_map_close(ours[key], fixture[f"case.{name}.{key}"], key, atol=1e-4 if "depth" in key else 1e-3)


FORWARD_CASES = ("fwd_fixeddraws", "fwd_step0", "fwd_step6000", "fwd_step20000")


def settings_case(name: str) -> dict:
    with open(require_reference("shadegan", "fixture_settings.json")) as fh:
        return json.load(fh)["cases"][name]


def training_forward(G, fixture, name: str):
    """Our ``forward()`` (grad enabled: differentiable normals, untruncated w) of a training-path case with its
    stored draws: the camera (or the given pose), the jitter, the importance u and, where the density noise is
    on, its normals; the case's exact options (delta, samples, noise, shading ratio) from the settings."""
    c, opts = f"case.{name}.", settings_case(name)["opts"]
    S = opts["num_steps"]
    if name == "fwd_fixeddraws":
        pitch, yaw = fixture[c + "pose"][:, 0], fixture[c + "pose"][:, 1]
        jitter, pdf_u, noise = fixture[c + "draw0_rand"], fixture[c + "draw2_rand"], (None, None)
    else:  # sample_camera_positions' gaussian draws (yaw first), in float32 as officially
        yaw = (fixture[c + "draw0_randn"] * opts["h_stddev"] + opts["h_mean"])[:, 0]
        pitch = (fixture[c + "draw1_randn"] * opts["v_stddev"] + opts["v_mean"]).clamp(1e-5, math.pi - 1e-5)[:, 0]
        jitter, pdf_u = fixture[c + "draw2_rand"], fixture[c + "draw4_rand"]
        noise = (fixture.get(c + "draw3_randn"), fixture.get(c + "draw5_randn"))
    B = len(yaw)
    draws = RandomDraws(jitter.reshape(B, 1024, S), pdf_u.reshape(B, 1024, S),
                        *(None if n is None else n.reshape(B, 1024, -1) for n in noise))
    cameras = G.cameras(yaw, pitch)
    cfg = replace(G.config.render, num_samples=S, num_importance=S, max_points=None, noise_std=opts["nerf_noise"])
    w = G.mapping(fixture[c + "z"], 1.0)
    out = G.synthesis(w, cameras, condition=Condition(light=fixture[c + "l"]), resolution=opts["img_size"],
                      render=cfg, draws=draws, delta=opts["delta"], light_ratio=opts["l_ratio"])
    return out, torch.stack([pitch, yaw], -1), cfg


@pytest.mark.parametrize("name", FORWARD_CASES)
def test_training_forward_cases(models, fixture, name):
    """``forward()``'s outputs in its own layout: albedo (B, HW, 3) in [0, 1], shading (B, HW, 1), the depth
    resized to the tracker's 128 px before its clamp, the tracker's 128 px depth, the pose (pitch, yaw)."""
    from aware3d.models.shadegan.loss import rendered_depth_at_tracker

    G, c = models["ema"], f"case.{name}."
    out, pose, cfg = training_forward(G, fixture, name)
    assert out.image.requires_grad and out.normals.requires_grad
    flat = lambda x: x.detach().permute(0, 2, 3, 1).reshape(len(x), 1024, -1)
    torch.testing.assert_close(pose, fixture[c + "pose"], atol=1e-6, rtol=0)
    assert_map_close(out.image.detach(), fixture[c + "rgb"], "rgb")
    assert_map_close(out.normals.detach(), fixture[c + "normal"], "normal")
    assert_map_close(flat((out.maps["albedo"] + 1) / 2), fixture[c + "albedo"], "albedo")
    assert_map_close(flat(out.maps["shading"]), fixture[c + "shading"], "shading")
    assert_map_close(rendered_depth_at_tracker(out, cfg).detach(), fixture[c + "depth"], "depth", atol=1e-4)
    assert_map_close(out.maps["tracker_depth_full"][:, 0].detach(), fixture[c + "depth_pred"], "depth_pred", atol=1e-4)


def test_training_forward_gradients(models, fixture):
    """Gradients of ``mean(rgb * w_rgb) + mean(depth_pred * w_dp)`` through the density, the normals (double
    backward), the shading and the tracker, for the 10 parameters the fixture lists: rtol 1e-3 of each max."""
    from aware3d.models.shadegan.convert import shadegan_key_map

    G, c = models["ema"], "case.fwd_fixeddraws."
    out, _, _ = training_forward(G, fixture, "fwd_fixeddraws")
    loss = ((out.image * fixture[c + "grad_loss_w_rgb"]).mean()
            + (out.maps["tracker_depth_full"][:, 0] * fixture[c + "grad_loss_w_depth_pred"]).mean())
    assert loss.item() == pytest.approx(fixture[c + "grad_loss"].item(), rel=1e-4)
    names = settings_case("fwd_fixeddraws")["gradient_check"]["params"]
    state = torch.load(require_reference("shadegan", "generator.pth"), weights_only=True)
    ours = dict(G.named_parameters())
    key_map = shadegan_key_map(state, G.config.num_film_layers, G.config.mapping_layers + 1)
    grads = torch.autograd.grad(loss, [ours[key_map[n]] for n in names])
    for n, g in zip(names, grads):
        assert_rel_close(g, fixture[c + "grad." + n], n, rtol=1e-3)


def test_training_schedules(fixture):
    """Shading phase-in, band width and samples per ray (``act_scheduler``, ``rendering_scheduler``), and top-k."""
    from aware3d.losses.base import StageState
    from aware3d.models.shadegan.loss import ShadeGANLoss, ShadeGANLossConfig
    from aware3d.rendering import RenderConfig

    recipe = ShadeGANLoss(None, None, ShadeGANLossConfig(topk_v=0.6, topk_interval=2000))
    for i, step in enumerate(fixture["sched.step"].tolist()):
        step = int(step)
        assert recipe.light_ratio(step) == pytest.approx(fixture["sched.l_ratio"][i].item(), abs=1e-12), step
        assert recipe.delta(step) == pytest.approx(fixture["sched.delta"][i].item(), abs=1e-12), step
        stage = StageState(step, 32, RenderConfig(num_samples=12, num_importance=12), 1.0)
        assert recipe.render_config(stage).num_samples == int(fixture["sched.num_steps"][i]), step
        assert recipe.config.topk_fraction(step) == pytest.approx(fixture["sched.topk_fraction"][i].item(), abs=1e-9)
