"""The fast mode: band sampling around the surface a sparse probe finds (``RenderConfig.bands``), and bfloat16
kernels inside ``low_precision()``; their pure functions, their error against the exact mode on analytic
scenes, and the wiring into the tools, the API and the viewer."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

import aware3d
from aware3d.cameras import Cameras
from aware3d.cameras.rays import generate_rays
from aware3d.cli.main import main
from aware3d.errors import ConfigError
from aware3d.models.registry import build_generator
from aware3d.nn.kernels import device_has_fast_bfloat16, low_precision, low_precision_dtype, reference_kernels
from aware3d.nn.stylegan2.layers import SynthesisBlock
from aware3d.rendering import RenderConfig, render_rays
from aware3d.rendering.bands import SurfaceBands, band_limits, probe_pixels, spread_bands, weight_interval

needs_bf16 = pytest.mark.skipif(not device_has_fast_bfloat16(torch.device("cpu")),
                                reason="this CPU has no fast bfloat16 (AMX / AVX512-BF16): low_precision() is a no-op")


# ------------------------------------------------------------------------------------ pure functions
def test_probe_pixels_sit_at_cell_centres_and_stay_inside_the_image():
    index, hp, wp = probe_pixels(10, 7, 4)
    assert (hp, wp) == (3, 2)
    rows, cols = index // 7, index % 7
    assert rows.tolist() == [2, 2, 6, 6, 9, 9] and cols.tolist() == [2, 6] * 3


def test_weight_interval_holds_the_mass_and_widens_for_empty_rays():
    t = torch.linspace(1.0, 2.0, 11).expand(3, 11)
    weights = torch.zeros(3, 11)
    weights[0, 4] = 1.0                        # all weight on sample 4: the interval [t4, t5]
    weights[1, 2], weights[1, 7] = 0.5, 0.5   # two lumps: from the first to the end of the second
    # row 2 is empty: the whole ray
    start, end = weight_interval(t, weights, mass=0.99)
    torch.testing.assert_close(start, torch.tensor([1.4, 1.2, 1.0]))
    torch.testing.assert_close(end, torch.tensor([1.5, 1.8, 2.0]))
    # Midpoint compositing: S - 1 weights, weight i on [t_i, t_i+1].
    start, end = weight_interval(t, weights[:, :10], mass=0.99)
    torch.testing.assert_close(start[:2], torch.tensor([1.4, 1.2]))
    torch.testing.assert_close(end[:2], torch.tensor([1.5, 1.8]))


def test_weight_interval_leaves_out_the_tails_beyond_the_mass():
    t = torch.linspace(0.0, 1.0, 101)[None]
    weights = torch.full((1, 101), 1.0)
    start, end = weight_interval(t, weights, mass=0.9)
    assert start.item() == pytest.approx(0.05, abs=0.011) and end.item() == pytest.approx(0.96, abs=0.011)


def test_spread_bands_cover_every_probe_band_in_the_neighbourhood():
    g = torch.Generator().manual_seed(0)
    start = torch.rand(2, 3 * 4, generator=g)
    end = start + torch.rand(2, 3 * 4, generator=g)
    near, far = spread_bands(start, end, (3, 4), (12, 16), stride=4, reach=1.0)
    assert near.shape == far.shape == (2, 12 * 16)
    s, e = start.reshape(2, 3, 4), end.reshape(2, 3, 4)
    n, f = near.reshape(2, 12, 16), far.reshape(2, 12, 16)
    for i, j in [(0, 0), (5, 9), (11, 15), (7, 3)]:
        a, b = i // 4, j // 4
        block = (slice(None), slice(max(a - 1, 0), a + 2), slice(max(b - 1, 0), b + 2))
        torch.testing.assert_close(n[:, i, j], s[block].amin((1, 2)))
        torch.testing.assert_close(f[:, i, j], e[block].amax((1, 2)))
    near0, far0 = spread_bands(start, end, (3, 4), (12, 16), stride=4, reach=0.0)
    half, _ = spread_bands(start, end, (3, 4), (12, 16), stride=4, reach=0.5)
    torch.testing.assert_close(half, (near0 + near) / 2)
    torch.testing.assert_close(near0.reshape(2, 12, 16)[:, 5, 9], s[:, 1, 2])


def test_band_limits_stay_inside_the_rays_bounds_and_add_the_margin():
    t = torch.linspace(1.0, 2.0, 11).expand(1, 4, 11)
    weights = torch.zeros(1, 4, 11)
    weights[..., 5] = 1.0
    bands = SurfaceBands(probe_stride=1, margin=1.0, reach=0.0)
    near, far = band_limits(bands, t, weights, 10, (2, 2), (2, 2), 1.0, 2.0)
    torch.testing.assert_close(near, torch.full((1, 4), 1.4))
    torch.testing.assert_close(far, torch.full((1, 4), 1.7))
    near, far = band_limits(bands, t, weights, 10, (2, 2), (2, 2), torch.full((1, 4), 1.45), 1.6)
    torch.testing.assert_close(near, torch.full((1, 4), 1.45))
    torch.testing.assert_close(far, torch.full((1, 4), 1.6))


def test_surface_bands_refuse_impossible_settings():
    for bad in (dict(probe_stride=0), dict(samples=1), dict(mass=0.0), dict(mass=1.5), dict(margin=-1.0)):
        with pytest.raises(ConfigError):
            SurfaceBands(**bad)


# ------------------------------------------------------------------------------------ the renderer
def sphere_field(points: torch.Tensor, view_dirs: torch.Tensor):
    """An opaque textured ball of radius 0.1 at the origin (a soft 1/300 edge)."""
    r = points.norm(dim=-1)
    sigma = 200.0 * torch.sigmoid((0.1 - r) * 300)
    color = torch.stack([0.5 + 0.5 * torch.sin(20 * points[..., 0]), 0.5 + 0.5 * torch.cos(15 * points[..., 1]),
                         (points[..., 2] + 0.2).clamp(0, 1)], -1)
    return color, sigma


def counting(field):
    calls = []

    def fn(points, view_dirs):
        calls.append(points.shape[1])
        return field(points, view_dirs)
    return fn, calls


@pytest.fixture(scope="module")
def ball_rays():
    cams = Cameras.from_angles([0.3, -0.2], [1.4, 1.6], 12.0, radius=1.0)
    return generate_rays(cams, 64, 64)[:2]


@pytest.mark.parametrize("background", ["black", "white", "last_sample"])
def test_band_sampling_renders_the_ball_like_the_exact_mode_with_far_fewer_samples(ball_rays, background):
    rays_o, rays_d = ball_rays
    cfg = RenderConfig(near=0.85, far=1.15, num_samples=24, num_importance=24, perturb=False, importance_det=True,
                       background=background)
    field, exact_calls = counting(sphere_field)
    exact = render_rays(field, rays_o, rays_d, cfg)
    field, fast_calls = counting(sphere_field)
    fast = render_rays(field, rays_o, rays_d, replace(cfg, bands=SurfaceBands()), grid=(64, 64))
    assert sum(fast_calls) < sum(exact_calls) / 2  # probe 1/16, bands 16 of 48, silhouette rays again exactly
    # colour in [0, 1]: 2.5e-3 is the fast mode's 5e-3 in images in [-1, 1]
    assert (fast.features - exact.features).abs().mean() < 2.5e-3
    assert (fast.opacity - exact.opacity).abs().mean() < 1e-3
    hit = exact.opacity > 0.99
    assert (fast.depth - exact.depth)[hit].abs().mean() < 2e-3
    # Every ray's samples lie inside [near, far]; where the surface's depth varies slowly (the 3 x 3 probe
    # neighbourhood agrees) they are packed around it.
    assert fast.t.min() >= cfg.near - 1e-6 and fast.t.max() <= cfg.far + 1e-6
    span = (fast.t[..., -1] - fast.t[..., 0])[hit]
    assert span.quantile(0.1) < 0.35 * (cfg.far - cfg.near) and span.median() < 0.9 * (cfg.far - cfg.near)


def test_band_sampling_keeps_gradients_and_refuses_what_it_cannot_honour(ball_rays):
    rays_o, rays_d = ball_rays
    cfg = RenderConfig(near=0.85, far=1.15, num_samples=12, num_importance=12, perturb=False,
                       bands=SurfaceBands(samples=4))
    scale = torch.tensor(1.0, requires_grad=True)

    def field(points, dirs):
        color, sigma = sphere_field(points, dirs)
        return color * scale, sigma
    out = render_rays(field, rays_o, rays_d, cfg, grid=(64, 64))
    out.features.sum().backward()
    assert scale.grad is not None and scale.grad > 0
    with pytest.raises(ValueError, match="grid"):
        render_rays(sphere_field, rays_o, rays_d, cfg)
    with pytest.raises(ValueError, match="grid"):
        render_rays(sphere_field, rays_o, rays_d, cfg, grid=(16, 16))
    with pytest.raises(ValueError, match="draws"):
        from aware3d.rendering import RandomDraws
        render_rays(sphere_field, rays_o, rays_d, cfg, grid=(64, 64), draws=RandomDraws())


def test_band_sampling_respects_per_ray_bounds(ball_rays):
    rays_o, rays_d = ball_rays
    cfg = RenderConfig(near=0.8, far=1.2, num_samples=16, num_importance=16, perturb=False, bands=SurfaceBands())
    near = torch.full(rays_o.shape[:2], 0.95)
    out = render_rays(sphere_field, rays_o, rays_d, cfg, grid=(64, 64), near=near, far=1.05)
    assert out.t.min() >= 0.95 - 1e-6 and out.t.max() <= 1.05 + 1e-6


# ------------------------------------------------------------------------------------ bfloat16 kernels
def test_low_precision_is_scoped_and_yields_to_gradients_and_the_reference():
    x = torch.zeros(1)
    with torch.no_grad():
        assert low_precision_dtype(x) is None
        with low_precision():
            expected = torch.bfloat16 if device_has_fast_bfloat16(x.device) else None
            assert low_precision_dtype(x) is expected
            with reference_kernels():
                assert low_precision_dtype(x) is None
            with low_precision(False):
                assert low_precision_dtype(x) is None
        assert low_precision_dtype(x) is None
    with low_precision():
        assert low_precision_dtype(x) is None  # gradients recorded: float32


@needs_bf16
def test_folded_siren_in_bfloat16_stays_close_to_float32():
    G = build_generator("pigan-tiny", seed=0).eval()
    siren, w = G.field, G.mapping(G.z_from_seeds([0, 1]), 1.0).detach()
    points = (torch.rand(2, 500, 3) - 0.5) * 0.3
    dirs = torch.nn.functional.normalize(torch.randn(2, 500, 3), dim=-1)
    with torch.no_grad():
        color, sigma = siren.fold(w)(points, dirs)
        with low_precision():
            folded = siren.fold(w)
            color_bf, sigma_bf = folded(points, dirs)
    assert folded.dtype == torch.bfloat16 and color_bf.dtype == sigma_bf.dtype == torch.float32
    assert 0 < (color_bf - color).abs().mean() < 5e-3
    assert (sigma_bf - sigma).abs().mean() < 0.05 * sigma.abs().mean()


@needs_bf16
def test_synthesis_block_in_bfloat16_keeps_float32_skip_images():
    torch.manual_seed(0)
    block = SynthesisBlock(16, 16, 32, 16, 3, is_last=True).eval()
    x, ws = torch.randn(1, 16, 8, 8), torch.randn(1, 3, 32)
    with torch.no_grad():
        ref_x, ref_img = block(x, None, ws, noise_mode="const")
        with low_precision():
            out_x, out_img = block(x, None, ws, noise_mode="const")
    assert out_x.dtype == torch.bfloat16 and out_img.dtype == torch.float32
    assert 0 < (out_img - ref_img).abs().mean() < 2e-2 * ref_img.abs().mean()


# ------------------------------------------------------------------------------------ wiring
def test_eval_render_config_fast_sets_the_bands_and_the_api_uses_them():
    G = build_generator("pigan-tiny", seed=0).eval()
    assert G.eval_render_config().bands is None
    assert G.eval_render_config(fast=True).bands == SurfaceBands()
    exact = aware3d.render(G, seeds=[0], resolution=16)
    fast = aware3d.render(G, seeds=[0], resolution=16, fast=True)
    assert fast.image.shape == exact.image.shape and torch.isfinite(fast.image).all()
    assert not torch.equal(fast.image, exact.image)


def test_render_tool_fast_flag_reaches_the_renderer_and_is_recorded(tmp_path):
    main(["render", "--checkpoint", "pigan-tiny", "--out", str(tmp_path), "--seeds", "0", "--resolution", "16",
          "--fast", "--no-progress"])
    record = json.loads((tmp_path / "render.json").read_text())
    assert record["options"]["fast"] is True and record["render"]["bands"]["probe_stride"] == 4
    assert (tmp_path / "grid.png").exists()


def test_fast_samples_choose_the_band_samples_and_need_fast(tmp_path, capsys):
    main(["render", "--checkpoint", "pigan-tiny", "--out", str(tmp_path), "--seeds", "0", "--resolution", "16",
          "--fast", "--fast-samples", "6", "2", "--no-progress"])
    bands = json.loads((tmp_path / "render.json").read_text())["render"]["bands"]
    assert (bands["samples"], bands["importance"]) == (6, 2)
    status = main(["render", "--checkpoint", "pigan-tiny", "--out", str(tmp_path), "--fast-samples", "6", "2"])
    assert status != 0 and "give it with --fast" in capsys.readouterr().err


def test_viewer_state_fast_toggles_the_render_settings():
    from aware3d.viewer import ViewState, home_view
    from aware3d.viewer.frames import FrameRenderer

    G = build_generator("pigan-tiny", seed=0).eval()
    renderer = FrameRenderer(G)
    state = ViewState(view=home_view(G), resolution=16, num_samples=8)
    exact = renderer.render(state)
    fast = renderer.render(replace(state, fast=True))
    assert fast.picture.shape == exact.picture.shape
    assert (fast.output.image - exact.output.image).abs().max() > 0


def test_empty_pixels_take_two_samples_and_keep_the_background(ball_rays):
    rays_o, rays_d = ball_rays
    cfg = RenderConfig(near=0.85, far=1.15, num_samples=24, num_importance=24, perturb=False, importance_det=True,
                       background="white")

    def small_ball(points, dirs):  # radius 0.04: most of the 64 x 64 image sees only the white background
        color, _ = sphere_field(points, dirs)
        return color, ((0.04 - points.norm(dim=-1)) * 1e4).clamp(0, 200)  # exactly 0 outside
    field, exact_calls = counting(small_ball)
    exact = render_rays(field, rays_o, rays_d, cfg, return_samples=True)
    field, fast_calls = counting(small_ball)
    fast = render_rays(field, rays_o, rays_d, replace(cfg, bands=SurfaceBands()), grid=(64, 64), return_samples=True)
    assert sum(fast_calls) < sum(exact_calls) / 4
    # A small ball: many pixels graze it, where 16 band samples resolve its thin chords less well than 48.
    assert (fast.features - exact.features).abs().mean() < 4e-3
    assert (fast.opacity - exact.opacity).abs().mean() < 4e-3
    # Per-sample fields are padded to the most samples any ray took (the exact sampling of re-rendered rays).
    samples = fast.t.shape[-1]
    assert samples in (SurfaceBands().samples + SurfaceBands().importance, 48)
    assert fast.t.shape == fast.sample_density.shape == fast.weights.shape == fast.transmittance.shape
    assert fast.sample_features.shape == (2, 64 * 64, samples, 3)
    two = (fast.t[..., 1:] == cfg.far).all(-1)  # the rays that took two samples: near, far, far repeated
    assert two.float().mean() > 0.4 and torch.allclose(fast.t[two][:, 0], torch.tensor(cfg.near))
    assert (fast.weights[two][:, 2:] == 0).all()
    torch.testing.assert_close(fast.features[two], exact.features[two], atol=1e-5, rtol=0)


def test_bracket_footprint_merges_the_probes_around_each_pixel():
    start = torch.arange(4.0).reshape(1, 4)  # probe 2 x 2: bands [k, k + 1]
    near, far = spread_bands(start, start + 1, (2, 2), (4, 4), stride=2, reach=0.0, footprint="bracket")
    near_n, far_n = spread_bands(start, start + 1, (2, 2), (4, 4), stride=2, reach=0.0, footprint="nearest")
    # Probe centres at pixels 1 and 3: pixel 2 lies between them and merges all four; pixel 0 only the first.
    assert near.reshape(4, 4)[2, 2] == 0 and far.reshape(4, 4)[2, 2] == 4
    assert near.reshape(4, 4)[0, 0] == 0 and far.reshape(4, 4)[0, 0] == 1
    assert near_n.reshape(4, 4)[2, 2] == 3 and far_n.reshape(4, 4)[0, 3] == 2


def ball_before_a_wall(points, view_dirs):
    """The textured ball in front of a red wall (the plane 0.17 behind the origin, seen from the cameras)."""
    color, sigma = sphere_field(points, view_dirs)
    wall = (points[..., :1] * 0 + torch.tensor([0.9, 0.1, 0.1])).expand_as(color)
    behind = ((-points * WALL_NORMAL).sum(-1) - 0.17).clamp(0, 0.01) * 2e4  # 200 beyond the plane
    return torch.where((sigma > behind)[..., None], color, wall), torch.maximum(sigma, behind)


WALL_NORMAL = torch.nn.functional.normalize(torch.tensor([0.3, 0.2, 1.0]), dim=0)


def test_rays_whose_band_missed_their_surface_are_rendered_again_exactly(ball_rays):
    rays_o, rays_d = ball_rays
    cfg = RenderConfig(near=0.8, far=1.2, num_samples=24, num_importance=24, perturb=False, importance_det=True)
    exact = render_rays(ball_before_a_wall, rays_o, rays_d, cfg)
    field, calls = counting(ball_before_a_wall)
    fast = render_rays(field, rays_o, rays_d, replace(cfg, bands=SurfaceBands()), grid=(64, 64))
    field, calls_off = counting(ball_before_a_wall)
    blind = render_rays(field, rays_o, rays_d, replace(cfg, bands=SurfaceBands(fallback=0.0)), grid=(64, 64))
    error, blind_error = ((o.features - exact.features).abs().amax(-1) for o in (fast, blind))
    assert sum(calls) > sum(calls_off)  # some rays were rendered twice
    # The silhouettes against the wall: pixels that see the wall next to probe rays that hit the ball.
    assert error.mean() < blind_error.mean() and error.max() < 0.7 * blind_error.max()
    assert error.mean() < 2e-3 and (error > 0.02).sum() < 0.7 * (blind_error > 0.02).sum()


def test_weight_at_a_rays_end_opens_its_band_to_each_pixels_own_bound():
    t = torch.linspace(1.0, 2.0, 11).expand(2, 11)
    weights = torch.zeros(2, 11)
    weights[0, 10] = 1.0  # all on the last sample (a backdrop at far)
    weights[1, 0] = 1.0   # all in the first interval
    start, end = weight_interval(t, weights, 0.99, open_ends=True)
    assert end[0] == torch.inf and start[0] == 2.0 and start[1] == -torch.inf and end[1] == pytest.approx(1.1)
    bands = SurfaceBands(probe_stride=1, reach=0.0, margin=0.0)
    near, far = band_limits(bands, t[None, :1], weights[None, :1], 10, (1, 1), (1, 1), torch.full((1, 1), 1.5),
                            torch.full((1, 1), 2.5))
    assert near.item() == pytest.approx(2.0) and far.item() == pytest.approx(2.5)  # this pixel's own far


def test_a_batch_row_without_empty_rays_beside_one_with_them():
    cams = Cameras.from_angles([0.0, 0.0], [1.5708, 1.5708], 12.0, radius=1.0)
    rays_o, rays_d = generate_rays(cams, 16, 16)[:2]
    cfg = RenderConfig(near=0.85, far=1.15, num_samples=8, num_importance=8, perturb=False, importance_det=True,
                       bands=SurfaceBands(probe_stride=2))

    def field(points, dirs):  # batch row 0 holds a ball, row 1 nothing at all
        color, sigma = sphere_field(points, dirs)
        return color, sigma * torch.tensor([1.0, 0.0])[:, None]
    out = render_rays(field, rays_o, rays_d, cfg, grid=(16, 16))
    exact = render_rays(field, rays_o, rays_d, replace(cfg, bands=None))
    assert torch.isfinite(out.features).all() and out.features.shape == (2, 256, 3)
    assert (out.opacity[1] == 0).all() and (out.opacity[0] - exact.opacity[0]).abs().mean() < 1e-2
