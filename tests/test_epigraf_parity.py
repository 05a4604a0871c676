"""Parity with the official EpiGRAF code: every generator-side case of $AWARE3D_REFERENCE/epigraf (README, 5-7).

Tolerances are the README's (section 7): ws 1e-5; cameras and rays 1e-6; planes, features and colours of points
1e-4; raw sigma 2e-3 or 1e-5 relative (values up to ~450); INR / background 1e-4; renders (image, depth,
transmittance, weight sums): 99 % of the values within 2e-4 and all within 0.05 (the importance sampler is
discontinuous and the densities are sharp: an importance sample that crosses a cdf bin edge moves a pixel by up to
~0.03, which the official code shows between 1 and 2 threads). The decoder's density output is checked relative to
its range (2e-6 of max |sigma|, ~350 here, where 1e-5 is below one float32 step; the rounding of its 64-term dot
products depends on the CPU's matmul kernels: on the reference CPU the official runs agree bitwise, on others not).

Not reproduced here (they belong to the discriminator / training side): D logits and intermediates, the patch
sampler's draws, real-patch extraction and the training step.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from aware3d.cameras import Cameras, rotate_to_world
from aware3d.models.epigraf import PatchParams
from aware3d.models.epigraf.background import background_points, depth2pts_outside, render_sphere_background
from aware3d.models.epigraf.cameras import (
    camera_directions,
    camera_origins,
    cameras_from_epigraf_angles,
    clamp_pitch,
    epigraf_angles_from_cameras,
    epigraf_cam2world,
    our_c2w_to_epigraf,
    voxel_coords,
)
from aware3d.models.epigraf.convert import (
    import_generator_state_dict,
    import_official_epigraf,
    official_name,
)
from aware3d.nn.triplane import project_onto_planes
from aware3d.rendering import CameraFrameRays, RandomDraws, composite, jitter_in_bins, render_rays, sample_importance

from .conftest import require_reference

pytestmark = pytest.mark.usefixtures("one_thread")


def maxdiff(a, b) -> float:
    return (a.double() - b.double()).abs().max().item()


def assert_render_close(ours, official, what: str, within: float = 2e-4, share: float = 0.99, cap: float = 0.05):
    """The README's render criterion: ``share`` of the values within ``within`` and all within ``cap``."""
    err = (ours.double() - official.double()).abs().flatten()
    assert not err.isnan().any(), f"{what}: NaN where the official render has none"
    close = (err <= within).double().mean().item()
    assert close >= share and err.max().item() <= cap, f"{what}: {close:.4f} within {within}, max {err.max():.3g}"


def assert_sigma_close(ours, official, atol: float = 2e-3, rtol: float = 1e-5):
    assert bool(((ours.double() - official.double()).abs() <= atol + rtol * official.double().abs()).all()), \
        f"raw sigma off by {maxdiff(ours, official):.3g}"


@pytest.fixture(scope="module")
def ref():
    root = require_reference("epigraf")
    return {
        "root": root,
        "fx": torch.load(root / "fixture.pt", weights_only=True),
        "json": json.loads((root / "fixture.json").read_text()),
        "layout": json.loads((root / "pickle_layout.json").read_text()),
        "build": json.loads((root / "network-snapshot.build.json").read_text()),
    }


@pytest.fixture(scope="module")
def G(ref):
    return import_official_epigraf(ref["root"] / "network-snapshot.pkl")


@pytest.fixture(scope="module")
def planes(ref, G):
    with torch.no_grad():
        return G.planes(ref["fx"]["ws_psi07"])


@pytest.fixture(scope="module")
def sphere(ref):
    G = import_generator_state_dict(ref["root"] / "sphere_G_ema.pt")
    with torch.no_grad():
        return G, G.planes(ref["fx"]["sphere_ws_psi07"])


def recorded_draws(seed: int, batch: int, rays: int, samples: int = 48) -> RandomDraws:
    """The README's recipe: the two uniform tensors the official eval-mode synthesis draws after manual_seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        u_strat = torch.rand([batch, rays, samples, 1])
        u_pdf = torch.rand([batch * rays, samples])
    return RandomDraws(u_strat.reshape(batch, rays, samples), u_pdf.reshape(batch, rays, samples))


def crop_draws(draws: RandomDraws, side: int, row: int, col: int, size: int = 64) -> RandomDraws:
    """The draws of the rays of a ``size`` x ``size`` window of a ``side`` x ``side`` render (sample 0)."""
    def crop(u):
        return u[:1].reshape(1, side, side, -1)[:, row:row + size, col:col + size].reshape(1, size * size, -1)
    return RandomDraws(crop(draws.stratified), crop(draws.importance))


# ------------------------------------------------------------------------------------------------ import
def test_import_reads_every_tensor_and_the_config(ref, G):
    layout = ref["layout"]["networks"]["G_ema"]
    official = {**layout["param_names_shapes"], **layout["buffer_names_shapes"]}
    ours = {official_name(k): list(v.shape) for k, v in G.state_dict().items()}
    assert ours == {k: v for k, v in official.items() if not k.endswith("resample_filter")}
    assert sum(p.numel() for p in G.parameters()) == layout["n_param_values"] == 1_190_347
    fx = ref["fx"]
    assert torch.equal(G.w_avg, fx["w_avg"]) and torch.equal(G.mean_camera_pose, fx["mean_camera_pose"])
    c = G.config
    assert (c.channel_base, c.channel_max, c.plane_resolution, c.plane_channels, c.decoder_hidden) == (2048, 32, 512, 32, 64)
    assert (c.fov_deg, c.cube_scale, c.camera_radius, c.img_resolution, c.patch_resolution) == (12.0, 0.2, 1.0, 512, 64)
    assert (c.render.near, c.render.far, c.render.num_samples, c.render.num_importance) == (0.88, 1.12, 48, 48)
    assert c.camera_cond and c.background == "none" and c.render.last_delta == 1e10 and G.num_ws == 16
    # The omegaconf tree, rebuilt from the pickle's nodes and resolved by our resolver, is the official resolved config
    # (nested interpolations, string concatenations with None, the ${dataset} node itself).
    assert G.source["config"] == ref["build"]["experiment_config_resolved"]["model"]["generator"]
    assert G.source["synthesis_state"]["test_resolution"] == 512 and not G.source["pickled_in_training_mode"]


def test_training_copy_is_G_not_G_ema(ref, G):
    G_train = import_official_epigraf(ref["root"] / "network-snapshot.pkl", network="G")
    assert G_train.source["pickled_in_training_mode"]
    ours, ema = G_train.state_dict(), G.state_dict()
    assert max(maxdiff(ours[k], ema[k]) for k in ours) == pytest.approx(ref["layout"]["G_vs_G_ema_max_param_diff"])
    fx = ref["fx"]
    with torch.no_grad():
        ws = G_train.train().mapping(fx["z"], cameras=fx["cond_angles"])
    assert maxdiff(ws[:, 0], fx["G_train_copy_ws_psi1_cond_row0"]) <= 1e-5


# ------------------------------------------------------------------------------------------------ mapping
@pytest.mark.parametrize("case", ["ws_psi1_row0", "ws_psi1_cond_row0", "ws_psi07_cond_row0", "ws_psi07_cutoff8",
                                  "ws_psi07"])
def test_mapping(ref, G, case):
    fx = ref["fx"]
    cond = fx["cond_angles"] if "cond" in case else None  # no camera in eval mode: the dataset-mean pose
    psi = 1.0 if "psi1" in case else 0.7
    with torch.no_grad():
        ws = G.mapping(fx["z"], psi, cameras=cond, truncation_cutoff=8 if "cutoff" in case else None)
    assert ws.shape == (3, 16, 512)
    assert maxdiff(ws[:, 0] if case.endswith("row0") else ws, fx[case]) <= 1e-5
    if case.endswith("row0"):
        assert torch.equal(ws, ws[:, :1].expand_as(ws))


def test_random_draw_recipe(ref):
    rec = ref["json"]["rng"]["render64"]["draws"]
    draws = recorded_draws(1234, 3, 4096)
    for tensor, record in zip((draws.stratified, draws.importance), rec):
        assert tensor.flatten()[:4].tolist() == record["first"]
        assert tensor.double().sum().item() == pytest.approx(record["sum"], rel=1e-9)


# ---------------------------------------------------------------------------------------------- tri-planes
def test_triplanes(ref, planes):
    fx = ref["fx"]
    assert planes.shape == (3, 96, 512, 512)
    assert maxdiff(planes[:, :, ::32, ::32], fx["planes_sub32"]) <= 1e-4
    assert maxdiff(planes[:, :, 248:264, 248:264], fx["planes_center16"]) <= 1e-4
    assert maxdiff(planes[:, :, :4, :4], fx["planes_corner_tl"]) <= 1e-4
    assert maxdiff(planes[:, :, -4:, -4:], fx["planes_corner_br"]) <= 1e-4
    assert maxdiff(planes.double().mean((2, 3)), fx["planes_channel_mean"]) <= 1e-5
    assert maxdiff(planes.double().std((2, 3)), fx["planes_channel_std"]) <= 1e-5


@pytest.mark.slow
def test_triplanes_untruncated(ref, G):
    fx = ref["fx"]
    with torch.no_grad():
        planes = G.planes(G.mapping(fx["z"], 1.0))
    assert maxdiff(planes[:, :, 254:258, 254:258], fx["planes_psi1_center4"]) <= 1e-4
    assert maxdiff(planes.double().mean((2, 3)), fx["planes_psi1_channel_mean"]) <= 1e-5


def test_projection_features_decoder_and_densities(ref, G, planes):
    fx = ref["fx"]
    points = fx["points"]
    grid = project_onto_planes(points / G.config.cube_scale, "corrected").reshape(3, 3, 512, 2)
    assert torch.equal(grid, fx["points_projected"])
    with torch.no_grad():
        from aware3d.models.epigraf.generator import sample_triplanes
        feats = sample_triplanes(G.triplanes(planes), points, G.config.cube_scale)
        out = G.sample_planes(planes, points)
        sigma = G.compute_densities(fx["ws_psi07"], points, planes=planes)
        dec = G.decoder(fx["decoder_in"])
    assert maxdiff(feats[:, :, :192], fx["points_features_first192"]) <= 1e-4
    assert maxdiff(out[..., :3], fx["points_rgb"]) <= 1e-4
    assert_sigma_close(out[..., 3:], fx["points_sigma"])
    assert torch.equal(sigma, out[..., 3:])  # compute_densities is the decoder's last channel
    assert_sigma_close(sigma, fx["points_compute_densities"])
    assert maxdiff(dec[..., :3], fx["decoder_out"][..., :3]) <= 1e-5
    assert maxdiff(dec[..., 3], fx["decoder_out"][..., 3]) <= 2e-6 * fx["decoder_out"][..., 3].abs().max()


def test_voxel_grid_densities(ref, G, planes):
    fx = ref["fx"]
    coords = voxel_coords(32, (0.0, 0.0, 0.0), 0.3)
    assert torch.equal(coords[:8], fx["voxel32_coords_first8"]) and torch.equal(coords[-4:], fx["voxel32_coords_last4"])
    with torch.no_grad():
        sigma = G.compute_densities(fx["ws_psi07"][:1], coords[None], planes=planes[:1])
    assert_sigma_close(sigma.reshape(32, 32, 32), fx["voxel32_sigma"])


# ------------------------------------------------------------------------------------------- cameras, rays
def test_cameras_and_rays(ref):
    fx = ref["fx"]
    angles = fx["cam_angles"]
    assert torch.equal(camera_origins(angles, 1.0), fx["cam_origins"])
    c2w = epigraf_cam2world(angles, 1.0)
    assert torch.equal(c2w, fx["cam2world"])  # incl. roll 0.4 (ignored) and pitch 1e-5
    assert torch.equal(epigraf_cam2world(angles[:3], 2.7), fx["cam2world_radius2p7"])
    dirs = camera_directions(8, 8, 12.0)
    assert torch.equal(dirs, fx["rays8_d_cam"])
    assert maxdiff(rotate_to_world(c2w, dirs), fx["rays8_d_world"]) <= 1e-6
    assert torch.equal(c2w[:, None, :3, 3].expand(8, 64, 3), fx["rays8_o_world"])
    lattice = torch.linspace(0.88, 1.12, 48)
    assert torch.equal(lattice, fx["rays8_z_vals_lin"])
    homo = torch.cat([dirs[:, :, None] * lattice[:, None], torch.ones(8, 64, 48, 1)], -1).reshape(8, -1, 4)
    points = torch.bmm(c2w, homo.permute(0, 2, 1)).permute(0, 2, 1)[..., :3].reshape(8, 64, 48, 3)
    assert maxdiff(points[:, :, ::8], fx["rays8_points_world_unperturbed"]) <= 1e-6
    patch = PatchParams(torch.tensor([[0.25, 0.25], [0.5, 0.5], [1.0, 1.0]]),
                        torch.tensor([[0.0, 0.0], [0.75, 0.75], [0.0, 0.0]]))
    assert torch.equal(camera_directions(3, 8, torch.tensor([12.0, 10.0, 14.0]), patch), fx["rays8_patch_d_cam"])
    torch.manual_seed(99)
    u = torch.rand([2, 64, 48, 1])
    assert torch.equal(u, fx["rays8_perturb_u"])
    jittered = jitter_in_bins(lattice.expand(2, 64, 48), u[..., 0])
    assert maxdiff(jittered, fx["rays8_z_vals_perturbed"][..., 0]) <= 1e-6


def test_camera_conversion_end_to_end(ref, G, planes):
    """EpiGRAF camera_angles -> our Cameras -> EpiGRAF's cam2world is exact, our frontal camera is EpiGRAF's frontal
    one, and rendering from our Cameras or from the angles is the same render."""
    fx = ref["fx"]
    angles = fx["render_angles"]
    cams = cameras_from_epigraf_angles(angles, 1.0, 12.0)
    assert torch.equal(our_c2w_to_epigraf(cams.cam2world), epigraf_cam2world(clamp_pitch(angles), 1.0))
    assert maxdiff(epigraf_angles_from_cameras(cams)[:, :2], angles[:, :2]) <= 1e-5
    ours_frontal = Cameras.from_angles(math.pi / 2, math.pi / 2, 12.0)
    assert maxdiff(our_c2w_to_epigraf(ours_frontal.cam2world), fx["cam2world"][:1]) <= 1e-6
    draws = recorded_draws(7, 3, 16 * 16)
    with torch.no_grad():
        a = G.render_planes(planes, fx["ws_psi07"], angles, resolution=16, draws=draws)
        b = G.render_planes(planes, fx["ws_psi07"], cams, resolution=16, draws=draws)
        ws_cams = G.mapping(fx["z"], cameras=cameras_from_epigraf_angles(fx["cond_angles"], 1.0, 12.0))
    assert torch.equal(a.image, b.image) and torch.equal(a.depth, b.depth)
    assert maxdiff(ws_cams[:, 0], fx["ws_psi1_cond_row0"]) <= 1e-5


# ------------------------------------------------------------------------------------------------ renders
@pytest.fixture(scope="module")
def render64(ref, G, planes):
    torch.manual_seed(1234)  # the official recipe: the renderer's two draws come from the global RNG
    with torch.no_grad():
        return G.render_planes(planes, ref["fx"]["ws_psi07"], ref["fx"]["render_angles"], resolution=64)


def test_render64(ref, render64):
    fx = ref["fx"]
    assert render64.image.shape == (3, 3, 64, 64) and render64.depth.shape == (3, 1, 64, 64)
    assert_render_close(render64.image, fx["render64_image"], "image")
    assert_render_close(render64.depth, fx["render64_depth"], "depth")
    assert_render_close(render64.final_transmittance[:, 0], fx["render64_final_transmittance"], "transmittance")
    assert_render_close(render64.opacity[:, 0], fx["render64_weight_sum"], "weight sum")
    assert torch.equal(camera_directions(1, 64, 12.0)[0, :64], fx["render64_rays_d_cam_row0"])


def test_render_internals_on_debug_rays(ref, G, planes):
    """The README's per-ray dump through the shared sampling / compositing functions: coarse quantities tightly, the
    fine and final ones (downstream of the discontinuous importance sampler) loosely."""
    fx = ref["fx"]
    idx = fx["dbg_ray_index"]
    full = recorded_draws(1234, 3, 4096)
    draws = RandomDraws(full.stratified[:, idx], full.importance[:, idx])
    c2w = epigraf_cam2world(clamp_pitch(fx["render_angles"]), 1.0)
    dirs = camera_directions(3, 64, 12.0)[:, idx]
    d = rotate_to_world(c2w, dirs)
    o = c2w[:, None, :3, 3].expand_as(d)
    t = jitter_in_bins(torch.linspace(0.88, 1.12, 48).expand(3, 8, 48), draws.stratified)
    field = G.field_fn(planes)
    with torch.no_grad():
        homo = torch.cat([dirs[:, :, None] * t[..., None], torch.ones(3, 8, 48, 1)], -1).reshape(3, -1, 4)
        pts = torch.bmm(c2w, homo.permute(0, 2, 1)).permute(0, 2, 1)[..., :3]
        rgb, sigma = field(pts, None)
        coarse = composite(rgb.reshape(3, 8, 48, 3), sigma.reshape(3, 8, 48), t, density_activation="softplus")
        fine = sample_importance(t, coarse.weights, 48, weight_eps=1e-5, u=draws.importance)
        out = render_rays(field, o, d, G.config.render, draws=draws, camera_frame=CameraFrameRays(c2w, dirs),
                          return_samples=True)
        # The merged samples' raw sigma as the official merge forms it: fine ones at o + d t, coarse ones as above.
        _, sigma_fine = field((o[:, :, None] + d[:, :, None] * fine[..., None]).reshape(3, -1, 3), None)
        order = torch.sort(torch.cat([fine, t], -1), -1)[1]
        sigma_all = torch.cat([sigma_fine.reshape(3, 8, 48), sigma.reshape(3, 8, 48)], -1).gather(-1, order)
    assert maxdiff(t, fx["dbg_z_coarse"]) <= 1e-6
    assert maxdiff(rgb.reshape(3, 8, 48, 3), fx["dbg_coarse_rgb_sigma"][..., :3]) <= 1e-4
    assert_sigma_close(sigma.reshape(3, 8, 48), fx["dbg_coarse_rgb_sigma"][..., 3], atol=1e-3)
    assert maxdiff(coarse.weights, fx["dbg_coarse_weights"]) <= 1e-4
    # Fine depths move by float rounding (~1e-6 through the cdf inversion); at |d sigma / dt| ~ 5e4 that is up to
    # ~0.1 of raw sigma (values up to ~450) for the fine samples.
    assert maxdiff(fine, fx["dbg_fine_z_unsorted"]) <= 1e-5
    assert maxdiff(out.t, fx["dbg_all_z_sorted"]) <= 1e-5
    assert maxdiff(out.sample_features, fx["dbg_all_rgb_sigma"][..., :3]) <= 1e-3
    assert_sigma_close(sigma_all, fx["dbg_all_rgb_sigma"][..., 3], atol=0.25)
    assert maxdiff(out.weights, fx["dbg_final_weights"]) <= 1e-3
    assert maxdiff(out.transmittance[..., -1], fx["dbg_final_transmittance"]) <= 1e-3


def test_patch_renders(ref, G, planes):
    fx = ref["fx"]
    patch = PatchParams(fx["patch_scales"], fx["patch_offsets"])
    torch.manual_seed(1235)
    with torch.no_grad():
        out = G.render_planes(planes[:1], fx["ws_psi07"][:1], fx["render_angles"][:1].expand(4, 3), resolution=64,
                              patch=patch)
    assert_render_close(out.image, fx["patch64_image"], "patch image")
    assert_render_close(out.depth, fx["patch64_depth"], "patch depth")


# Official render (side, crop row, crop col) each patch is cut from (README, section 6; patch 3 is not aligned).
PATCH_CROPS = [(64, 0, 0), (253, 189, 0), (253, 0, 189), (253, 38, 76)]


@pytest.mark.parametrize("i", range(4))
def test_patch_with_the_draws_of_a_full_render_crop(ref, G, planes, i):
    """Patch i rendered alone with the draws of the matching crop of the full render (the official fixture's
    injected case): our patch equals the official patch, and for the aligned windows the official full render's
    crop up to the README's rounding (rays and coarse depths equal, a few % of the pixels moved by the sampler)."""
    fx = ref["fx"]
    side, row, col = PATCH_CROPS[i]
    full = recorded_draws(1234, 3, 4096) if side == 64 else recorded_draws(4321, 1, side * side)
    draws = crop_draws(full, side, row, col)
    patch = PatchParams(fx["patch_scales"][i:i + 1], fx["patch_offsets"][i:i + 1])
    with torch.no_grad():
        out = G.render_planes(planes[:1], fx["ws_psi07"][:1], fx["render_angles"][:1], resolution=64, patch=patch,
                              draws=draws)
    assert_render_close(out.image, fx[f"patch64_injected_image_{i}"], "injected patch image")
    assert_render_close(out.depth, fx[f"patch64_injected_depth_{i}"], "injected patch depth")
    if side == 253 and i < 3:
        # The full render's rays at the crop are the patch's up to the rounding of the patch formula.
        full_dirs = camera_directions(1, 253, 12.0).reshape(1, 253, 253, 3)[:, row:row + 64, col:col + 64]
        assert maxdiff(camera_directions(1, 64, 12.0, patch), full_dirs.reshape(1, -1, 3)) <= 2e-7
        crop = "bl" if row else "tr"
        assert_render_close(out.image, fx[f"render253_image_crop_{crop}"], "patch vs full-render crop",
                            within=1e-3, share=0.95)


@pytest.mark.slow
def test_render253(ref, G, planes):
    """The full 253 x 253 render (every 4th pixel and its two corner crops)."""
    fx = ref["fx"]
    torch.manual_seed(4321)
    with torch.no_grad():
        out = G.render_planes(planes[:1], fx["ws_psi07"][:1], fx["render_angles"][:1], resolution=253)
    assert_render_close(out.image[:, :, ::4, ::4], fx["render253_image_sub4"], "image")
    assert_render_close(out.depth[:, :, ::4, ::4], fx["render253_depth_sub4"], "depth")
    for crop, (row, col) in {"bl": (189, 0), "tr": (0, 189)}.items():
        assert_render_close(out.image[:, :, row:row + 64, col:col + 64], fx[f"render253_image_crop_{crop}"], crop)
        assert_render_close(out.depth[:, :, row:row + 64, col:col + 64], fx[f"render253_depth_crop_{crop}"], crop)


# ------------------------------------------------------------------------------------------ sphere background
def test_sphere_model_import_and_mapping(ref, sphere):
    G, _ = sphere
    fx = ref["fx"]
    meta = json.loads((ref["root"] / "sphere_G_ema.json").read_text())
    assert {official_name(k): list(v.shape) for k, v in G.state_dict().items()} == \
        {k: v for k, v in meta["names_shapes"].items() if not k.endswith("resample_filter")}
    assert G.config.background == "sphere" and not G.config.camera_cond and G.num_ws == meta["num_ws"] == 20
    assert G.config.render.last_delta == 1e-3 and G.config.bg_num_steps == 8
    assert torch.equal(G.w_avg, fx["sphere_w_avg"])
    with torch.no_grad():
        assert maxdiff(G.mapping(fx["sphere_z"], 0.7), fx["sphere_ws_psi07"]) <= 1e-5


def test_sphere_background_points_inr_and_colours(ref, sphere):
    G, _ = sphere
    fx = ref["fx"]
    ws_bg = fx["sphere_ws_psi07"][:, 16:]
    o, d = fx["sphere_rays_o"], fx["sphere_rays_d"]
    c2w = epigraf_cam2world(clamp_pitch(fx["sphere_render_angles"]), 1.0)
    assert maxdiff(rotate_to_world(c2w, camera_directions(2, 16, 12.0)), d) <= 1e-6
    assert torch.equal(c2w[:, None, :3, 3].expand_as(o), o)
    with torch.no_grad():
        pts, z = background_points(o, d, 8, 1.0)
        inr = G.background_inr(fx["sphere_bg_points"].permute(0, 2, 1), ws_bg).permute(0, 2, 1)
        feats = render_sphere_background(G.background_inr, ws_bg, o, d, 8, 1.0)
    assert maxdiff(pts, fx["sphere_bg_points"]) <= 1e-6 and torch.equal(z, fx["sphere_bg_z_vals"])
    assert maxdiff(inr, fx["sphere_inr_out"]) <= 1e-4
    assert maxdiff(feats, fx["sphere_bg_feats"]) <= 1e-4
    n = fx["sphere_special_depth"].shape[1]
    p, depth = depth2pts_outside(fx["sphere_special_rays_o"][:, None].expand(-1, n, 3),
                                 fx["sphere_special_rays_d"][:, None].expand(-1, n, 3), fx["sphere_special_depth"])
    assert torch.equal(p.isnan(), fx["sphere_special_pts"].isnan()) and p.isnan().any()  # centre / tangent rays
    assert torch.allclose(p, fx["sphere_special_pts"], atol=1e-6, equal_nan=True)
    assert torch.allclose(depth, fx["sphere_special_depth_real"], atol=1e-5, rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("case", ["image", "image_nobg", "image_bgonly"])
def test_sphere_renders(ref, sphere, case):
    """G.synthesis as the official call (8 background steps), with the background, without it, and alone."""
    G, planes = sphere
    fx = ref["fx"]
    kwargs = {"image": {}, "image_nobg": {"ignore_bg": True}, "image_bgonly": {"bg_only": True}}[case]
    torch.manual_seed(1241)
    with torch.no_grad():
        out = G.render_planes(planes, fx["sphere_ws_psi07"], fx["sphere_render_angles"], resolution=64,
                              bg_num_steps=G.config.bg_num_steps, **kwargs)
    assert_render_close(out.image, fx[f"sphere_render64_{case}"], case)
    if case == "image":
        assert_render_close(out.depth, fx["sphere_render64_depth"], "depth")
        assert torch.allclose(out.image, fx["sphere_render64_image_nobg"] + out.background * out.final_transmittance,
                              atol=0.05)


def test_sphere_render_as_the_inference_script_and_nan_at_the_centre(ref, sphere):
    """Eval-mode defaults follow scripts/inference.py (ray_step_multiplier 2: 16 background steps, 48 foreground);
    an odd resolution puts a ray through the sphere's centre, which is NaN in the official code too."""
    G, planes = sphere
    fx = ref["fx"]
    ws, angles = fx["sphere_ws_psi07"], fx["sphere_render_angles"]
    with torch.no_grad():
        torch.manual_seed(1242)
        out = G.render_planes(planes, ws, angles, resolution=64)
        torch.manual_seed(1243)
        odd = G.render_planes(planes, ws, angles, resolution=65, bg_num_steps=8)
    assert_render_close(out.image, fx["sphere_render64_inference_py_settings"], "inference.py settings")
    centre = odd.image[:, :, 31:34, 31:34]
    official = fx["sphere_render65_center3x3"]
    assert torch.equal(centre.isnan(), official.isnan()) and centre[0, :, 1, 1].isnan().all()
    assert maxdiff(centre.nan_to_num(), official.nan_to_num()) <= 0.05
