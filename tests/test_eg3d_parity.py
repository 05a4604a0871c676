"""Parity with the official EG3D code: every case of $AWARE3D_REFERENCE/eg3d (see its README, section 5).

Tolerances: the issue's where they are stricter than the README's (mapping and tri-planes 1e-5, raw image
and depth 1e-4 max-abs in float32), the README's elsewhere, and the final image to the precision it is
stored in (float16: half a float16 step). On the reference CPU most cases are bitwise equal; the renders
differ by ~1e-5 because the shared renderer forms the jitter step as ``t[1] - t[0]`` in float32 while EG3D
multiplies by the Python float ``(far - near) / (S - 1)`` (one float32 ulp on the coarse depths).
"""

import json

import numpy as np
import pytest
import torch

from aware3d.models.eg3d import eg3d_focal, eg3d_lookat_cameras
from aware3d.models.eg3d.convert import convert_snapshot, load_official_snapshot
from aware3d.models.eg3d.shapes import official_shape_points, official_sigma_volume
from aware3d.models.eg3d.rays import eg3d_rays
from aware3d.nn.triplane import project_onto_planes, sample_from_planes
from aware3d.rendering import RandomDraws, composite, render_rays, sample_importance, stratified_parts

from .conftest import require_reference


def maxdiff(a, b) -> float:
    return (a.double() - b.double()).abs().max().item()


@pytest.fixture(scope="module")
def ref():
    root = require_reference("eg3d")
    return {
        "root": root,
        "fx": torch.load(root / "fixture.pt", weights_only=True),
        "json": json.loads((root / "fixture.json").read_text()),
        "layout": json.loads((root / "pickle_layout.json").read_text()),
    }


@pytest.fixture(scope="module")
def networks(ref):
    """G_ema, G and D of the snapshot, read once (restricted unpickler, nothing executed)."""
    return convert_snapshot(load_official_snapshot(ref["root"] / "network-snapshot.pkl"))


@pytest.fixture(scope="module")
def G(networks):
    return networks["G_ema"]


@pytest.fixture(scope="module")
def planes(ref, G):
    with torch.no_grad():
        return G.planes(ref["fx"]["ws_psi"], noise_mode="const")


def recorded_draws(batch: int, rays: int, samples: int = 48) -> RandomDraws:
    """The README's recipe: the two uniform tensors EG3D draws right after torch.manual_seed(1234)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        u_strat = torch.rand([batch, rays, samples, 1])
        u_pdf = torch.rand([batch * rays, samples])
    return RandomDraws(u_strat.reshape(batch, rays, samples), u_pdf.reshape(batch, rays, samples))


@pytest.fixture(scope="module")
def render(ref, G):
    """The fixture's main call: G.synthesis(ws_psi, c_render, noise_mode='const') at resolution 64."""
    fx = ref["fx"]
    with torch.no_grad():
        return G.synthesis(fx["ws_psi"], fx["c_render"], noise_mode="const", draws=recorded_draws(2, 64 * 64))


def test_import_reads_every_tensor(ref, G):
    layout = ref["layout"]["networks"]["G_ema"]
    assert G.config.channel_base == 2048 and G.config.channel_max == 32
    assert G.config.neural_rendering_resolution == 64 and G.config.sr_module == "SuperresolutionHybrid8XDC"
    assert G.config.render.near == 2.25 and G.config.render.far == 3.3 and G.config.render.num_samples == 48
    assert sum(p.numel() for p in G.parameters()) == 2_844_456
    # Every official parameter/buffer has a counterpart of the same shape (filters are constants here).
    ours = {k: list(v.shape) for k, v in G.state_dict().items()}
    official = {**layout["param_names_shapes"], **layout["buffer_names_shapes"]}
    renamed = {k.replace("decoder.net.0.", "decoder.hidden.").replace("decoder.net.2.", "decoder.output."): v
               for k, v in official.items() if not k.endswith("resample_filter")}
    assert ours == renamed
    assert torch.equal(G.w_avg, ref["fx"]["w_avg"])
    assert G.dataset_label_std.abs().sum() > 0


@pytest.mark.parametrize("case", ["ws_psi1", "ws_psi", "ws_psi_cutoff7", "ws_psi1_cond_render"])
def test_mapping(ref, G, case):
    fx = ref["fx"]
    kwargs = {"ws_psi1": {}, "ws_psi": {"truncation_psi": 0.7}, "ws_psi_cutoff7": {"truncation_psi": 0.7, "truncation_cutoff": 7},
              "ws_psi1_cond_render": {}}[case]
    c = fx["c_render"] if case == "ws_psi1_cond_render" else fx["c_cond"]
    with torch.no_grad():
        ws = G.mapping(fx["z"], c, **kwargs)
    assert ws.shape == (2, 14, 512)
    assert maxdiff(ws, fx[case]) <= 1e-5
    if case == "ws_psi":  # gen_samples' cutoff 14 truncates every w: the same result
        assert torch.equal(G.mapping(fx["z"], c, truncation_psi=0.7, truncation_cutoff=14), ws)


def test_triplanes(ref, G, planes):
    fx = ref["fx"]
    assert planes.shape == (2, 3, 32, 256, 256)
    flat = planes.reshape(2, 96, 256, 256)
    assert maxdiff(flat[:, :, ::8, ::8], fx["planes_sub8"]) <= 1e-5
    assert maxdiff(flat[:, :, 124:132, 60:68], fx["planes_crop"]) <= 1e-5
    assert maxdiff(flat.double().mean((2, 3)), fx["planes_channel_mean"]) <= 1e-5
    assert maxdiff(flat.double().std((2, 3)), fx["planes_channel_std"]) <= 1e-5
    # Const noise matters: without it the planes change (noise_strength is non-zero in this pickle).
    with torch.no_grad():
        assert maxdiff(G.planes(fx["ws_psi"], noise_mode="none"), planes) > 1e-3


def test_projection_features_and_decoder(ref, G, planes):
    fx = ref["fx"]
    assert torch.equal(project_onto_planes(fx["points"], "official"), fx["points_projected"])
    # The corrected layout differs only in the third plane, which reads (y, z).
    corrected = project_onto_planes(fx["points"], "corrected").reshape(2, 3, 512, 2)
    assert torch.equal(corrected[:, 2], fx["points"][..., [1, 2]])
    assert torch.equal(corrected[:, :2], fx["points_projected"].reshape(2, 3, 512, 2)[:, :2])
    with torch.no_grad():
        feats = sample_from_planes(planes, fx["points"], box_warp=1.0)
        rgb, sigma = G.sample_planes(planes, fx["points"])
        drgb, dsigma = G.decoder(fx["decoder_in"])
    assert maxdiff(feats, fx["points_features"]) <= 1e-5
    assert maxdiff(rgb, fx["points_rgb"]) <= 1e-5 and maxdiff(sigma, fx["points_sigma"]) <= 1e-4
    assert maxdiff(drgb, fx["decoder_rgb"]) <= 1e-5 and maxdiff(dsigma, fx["decoder_sigma"]) <= 1e-5


def test_rays_and_cameras(ref):
    fx, meta = ref["fx"], ref["json"]["cameras"]
    c = fx["c_render"]
    origins, dirs = eg3d_rays(c[:, :16].reshape(-1, 4, 4), c[:, 16:].reshape(-1, 3, 3), 64)
    assert torch.equal(origins[:, 0], fx["ray_origins"]) and (origins == origins[:, :1]).all()
    assert maxdiff(dirs, fx["ray_directions"]) <= 1e-6
    # Our re-implementation of LookAtPoseSampler + FOV_to_intrinsics reproduces the labels.
    f = eg3d_focal(18.837)
    assert f == pytest.approx(meta["intrinsics"][0][0], abs=1e-6)
    (yaw0, pitch0), (yaw1, pitch1) = meta["render_yaw_pitch"]
    cams = eg3d_lookat_cameras([yaw0, yaw1], [pitch0, pitch1], 2.7, meta["avg_camera_pivot"], f)
    assert maxdiff(cams.eg3d_label(), c) <= 1e-6
    assert maxdiff(eg3d_lookat_cameras(0.0, 0.0, 2.7, meta["avg_camera_pivot"], f).eg3d_label(), fx["c_cond"][:1]) <= 1e-6


def test_random_draw_recipe(ref):
    draws = recorded_draws(2, 4096)
    rec = ref["json"]["rng_draws_during_synthesis"]
    assert draws.stratified.flatten()[:4].tolist() == pytest.approx(rec[0]["first4"], abs=0)
    assert draws.importance.flatten()[:4].tolist() == pytest.approx(rec[1]["first4"], abs=0)
    assert draws.stratified.double().sum().item() == pytest.approx(rec[0]["sum"], rel=1e-9)
    assert draws.importance.double().sum().item() == pytest.approx(rec[1]["sum"], rel=1e-9)


def test_render_internals_on_debug_rays(ref, G, planes):
    """The README's per-ray dump: coarse depths, coarse sigma/weights, importance samples, merged samples,
    final weights and composites of 8 rays, through the shared sampling/compositing functions."""
    fx = ref["fx"]
    idx = fx["dbg_ray_index"]
    draws = recorded_draws(2, 4096)
    c = fx["c_render"]
    cfg = G.config.render
    with torch.no_grad():
        field = G.field_fn(planes)
        o, d = eg3d_rays(c[:, :16].reshape(-1, 4, 4), c[:, 16:].reshape(-1, 3, 3), 64)
        o, d = o[:, idx], d[:, idx]
        lattice, offset = stratified_parts(2.25, 3.3, 48, (2, 8), jitter="forward", u=draws.stratified[:, idx])
        t = lattice + offset
        feats, sigma = field((o[:, :, None] + d[:, :, None] * t[..., None]).reshape(2, -1, 3), None)
        coarse = composite(feats.reshape(2, 8, 48, -1), sigma.reshape(2, 8, 48), t, density_activation="softplus",
                           density_bias=-1.0, midpoint=True, depth_mode="normalized")
        fine = sample_importance(t, coarse.weights, 48, smoothing="maxblur", weight_eps=0.01, right=True,
                                 u=draws.importance[:, idx])
        out = render_rays(field, o, d, cfg, draws=RandomDraws(draws.stratified[:, idx], draws.importance[:, idx]))
        _, sigma_all = field((o[:, :, None] + d[:, :, None] * out.t[..., None]).reshape(2, -1, 3), None)
        rgb_all, _ = field((o[:, :, None] + d[:, :, None] * out.t[..., None]).reshape(2, -1, 3), None)
    assert maxdiff(t, fx["dbg_depths_coarse"]) <= 1e-6
    assert maxdiff(sigma.reshape(2, 8, 48), fx["dbg_sigma_coarse"]) <= 1e-3
    assert maxdiff(coarse.weights, fx["dbg_weights_coarse"]) <= 1e-5
    assert maxdiff(fine, fx["dbg_depths_fine"]) <= 1e-4
    assert maxdiff(out.t, fx["dbg_depths_all_sorted"]) <= 1e-4
    assert maxdiff(sigma_all.reshape(2, 8, 96), fx["dbg_sigma_all"]) <= 1e-3
    assert maxdiff(rgb_all.reshape(2, 8, 96, 32), fx["dbg_rgb_all"]) <= 1e-4
    assert maxdiff(out.weights, fx["dbg_weights_all"]) <= 1e-4
    assert maxdiff(out.features * 2 - 1, fx["dbg_composite_feat"]) <= 1e-4
    assert maxdiff(out.depth, fx["dbg_composite_depth"]) <= 1e-4


def test_full_render_raw_depth_and_features(ref, render):
    fx = ref["fx"]
    assert render.image_raw.shape == (2, 3, 64, 64) and render.depth.shape == (2, 1, 64, 64)
    assert maxdiff(render.features, fx["feature_image"]) <= 1e-4
    assert maxdiff(render.image_raw, fx["image_raw"]) <= 1e-4
    assert maxdiff(render.depth, fx["image_depth"]) <= 1e-4
    # EG3D-style access to the same tensors.
    assert render["image_depth"] is render.depth and render["image_raw"] is render.image_raw


def test_full_render_final_image(ref, render):
    fx = ref["fx"]
    image = render["image"]
    assert image.shape == (2, 3, 512, 512)
    assert maxdiff(image[:, :, 192:320, 192:320], fx["image_crop_fp32"]) <= 1e-4
    # The stored image is float16: ours must agree to half a float16 step (plus our ~1e-5 render difference).
    stored = fx["image_fp16"].float()
    half_step = torch.from_numpy(np.spacing(np.abs(fx["image_fp16"].numpy()))).float() / 2
    assert ((image - stored).abs() <= half_step + 2e-5).all()


def test_superresolution_alone_is_exact(ref, G):
    """README 6.7: the SR module on the stored feature image reproduces the stored final image."""
    fx = ref["fx"]
    feats = fx["feature_image"][:1]
    with torch.no_grad():
        image, alias = G.superresolution(feats[:, :3], feats, fx["ws_psi"][:1])
    assert alias is None  # 8XDC upsamples in its first block: image_raw is never touched
    assert maxdiff(image[:, :, 192:320, 192:320], fx["image_crop_fp32"][:1]) <= 1e-5


def test_neural_rendering_resolution_128(ref, G):
    fx = ref["fx"]
    with torch.no_grad():
        out = G.synthesis(fx["ws_psi"][:1], fx["c_render"][:1], neural_rendering_resolution=128, noise_mode="const",
                          draws=recorded_draws(1, 128 * 128), superresolution=False)
    assert out.image_raw.shape == (1, 3, 128, 128)
    assert maxdiff(out.image_raw, fx["nrr128_image_raw"]) <= 1e-4
    assert maxdiff(out.depth, fx["nrr128_image_depth"]) <= 1e-4
    assert G.config.neural_rendering_resolution == 64  # an argument, never stored


def test_shape_extraction(ref, G):
    fx = ref["fx"]
    assert torch.equal(official_shape_points(32)[:5], fx["shape32_samples_first5"])
    with torch.no_grad():
        ws = G.mapping(fx["z"][:1], fx["c_cond"][:1], truncation_psi=0.7, truncation_cutoff=14)
        shape_planes = G.planes(ws, noise_mode="const")  # batch 1, as gen_samples (batching changes the last bits)
    assert maxdiff(official_sigma_volume(G, ws, 32, raw=True, planes=shape_planes), fx["shape32_sigma_raw"]) <= 1e-3
    assert maxdiff(official_sigma_volume(G, ws, 32, planes=shape_planes), fx["shape32_sigma_final"]) <= 1e-3
    # N = 128 at the fixture's [::4, ::4, ::4] voxels only (evaluating those points is enough).
    a = torch.arange(0, 128, 4)
    ix, iy, iz = (g.reshape(-1) for g in torch.meshgrid(a, a, a, indexing="ij"))
    sub = official_sigma_volume(G, ws, 128, index=(ix, iy, iz), planes=shape_planes).reshape(32, 32, 32)
    assert maxdiff(sub, fx["shape128_sigma_final_sub4"]) <= 1e-3
    # The sheared grid passes the box in x (README: up to ~0.508 at N = 128).
    assert official_shape_points(128)[:, 0].max().item() == pytest.approx(0.5079, abs=1e-3)


def test_training_copy_and_discriminator(ref, G, networks):
    G_train, D = networks["G"], networks["D"]
    diffs = [maxdiff(a, b) for a, b in zip(G_train.parameters(), G.parameters())]
    assert min(diffs) > 0  # every parameter perturbed in the training copy (README 1.4C)
    assert all(torch.equal(a, b) for a, b in zip(G_train.buffers(), G.buffers()))
    assert sum(p.numel() for p in D.parameters()) == 124_224
    assert D.block_resolutions == [512, 256, 128, 64, 32, 16, 8]
    fx = ref["fx"]
    image = fx["image_fp16"].float()
    with torch.no_grad():
        logits = D(image, fx["image_raw"], fx["c_render"])
        as_dict = D({"image": image, "image_raw": fx["image_raw"]}, fx["c_render"])
        other_raw = D(image, fx["image_raw"].flip(-1), fx["c_render"])
        other_cam = D(image, fx["image_raw"], fx["c_cond"])
    assert logits.shape == (2, 1) and torch.isfinite(logits).all()
    assert torch.equal(logits, as_dict)
    assert maxdiff(logits, other_raw) > 0 and maxdiff(logits, other_cam) > 0
