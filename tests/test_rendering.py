"""The shared renderer on analytic scenes with hand-computed answers."""

import math

import pytest
import torch

from aware3d.cameras import Cameras, generate_rays
from aware3d.rendering import (
    RenderConfig, composite, density_normals, render_rays, sample_importance, sample_pdf, sample_stratified,
    stratified_parts, surface_depth,
)


def slab_field(sigma: float, z0: float, z1: float, color=(1.0, 0.5, 0.25)):
    """Constant density between planes z0 < z < z1 (world z), coloured."""
    col = torch.tensor(color)

    def field(points, dirs):
        inside = (points[..., 2] > z0) & (points[..., 2] < z1)
        return col.expand(*points.shape[:-1], 3), torch.where(inside, torch.tensor(sigma), torch.tensor(0.0))
    return field


def straight_rays(n=4):
    o = torch.zeros(1, n, 3)
    d = torch.zeros(1, n, 3)
    d[..., 2] = 1.0
    return o, d


def test_composite_slab_transmittance_is_exponential():
    # Samples 0.01 apart over [0, 2]; density 3 on (0.5, 1.0]: opacity = 1 - exp(-3 * 0.5).
    t = torch.linspace(0, 2, 201)[None]
    sigma = torch.where((t > 0.5 + 1e-6) & (t < 1.0 + 1e-6), 3.0, 0.0)
    out = composite(torch.ones(1, 201, 3), sigma, t, last_delta=0.01)
    assert float(out.opacity) == pytest.approx(1 - math.exp(-3 * 0.5), abs=1e-4)
    # Expected depth of a homogeneous slab: z0 + 1/sigma - d e^{-sigma d} / (1 - e^{-sigma d}), shifted by a step.
    a = 3 * 0.5
    mean_in_slab = 0.5 + (1 / 3 - 0.5 * math.exp(-a) / (1 - math.exp(-a)))
    assert float(out.depth / out.opacity) == pytest.approx(mean_in_slab, abs=0.011)


def test_render_slab_through_renderer():
    o, d = straight_rays()
    cfg = RenderConfig(near=0.0, far=2.0, num_samples=401, num_importance=0, perturb=False, background="black")
    out = render_rays(slab_field(2.0, 0.4, 1.4), o, d, cfg)
    assert torch.allclose(out.opacity, torch.full((1, 4), 1 - math.exp(-2.0)), atol=2e-3)
    assert torch.allclose(out.features, torch.tensor([1.0, 0.5, 0.25]) * out.opacity[..., None], atol=1e-6)


def test_opaque_surface_depth_and_white_background():
    o, d = straight_rays()
    d[0, 2:] = torch.tensor([1.0, 0.0, 0.0])  # two rays miss the wall
    cfg = RenderConfig(near=0.0, far=2.0, num_samples=64, num_importance=64, perturb=False, importance_det=True,
                       background="white", depth_mode="normalized")
    out = render_rays(slab_field(1e4, 0.75, 5.0, color=(0.0, 0.0, 0.0)), o, d, cfg)
    assert torch.allclose(out.depth[0, :2], torch.tensor([0.75, 0.75]), atol=2e-3)
    assert torch.allclose(out.opacity[0, :2], torch.ones(2), atol=1e-5)
    assert torch.allclose(out.features[0, :2], torch.zeros(2, 3), atol=1e-4)  # black wall
    assert torch.allclose(out.features[0, 2:], torch.ones(2, 3))  # empty rays show the white background
    assert torch.allclose(out.opacity[0, 2:], torch.zeros(2))


def test_last_sample_background_fills_remaining_weight():
    t = torch.linspace(0.5, 1.5, 10)[None]
    out = composite(torch.rand(1, 10, 3), torch.zeros(1, 10), t, background="last_sample")
    assert float(out.weights.sum()) == pytest.approx(1.0)
    assert float(out.depth) == pytest.approx(1.5)


def test_midpoint_softplus_mode_eg3d_style():
    t = torch.linspace(2.25, 3.3, 48)[None]
    sigma = torch.full((1, 48), 1.0)
    out = composite(torch.zeros(1, 48, 3), sigma, t, density_activation="softplus", density_bias=-1.0,
                    midpoint=True, depth_mode="normalized")
    assert out.weights.shape == (1, 47)
    # softplus(0) = ln 2 over the whole span 1.05.
    assert float(out.opacity) == pytest.approx(1 - math.exp(-math.log(2) * 1.05), abs=1e-5)


def test_sample_pdf_hand_values():
    bins = torch.tensor([[0.0, 1.0, 2.0]])
    w = torch.tensor([[1.0, 3.0]])
    u = torch.tensor([[0.0, 0.125, 0.25, 0.5, 1.0]])
    s = sample_pdf(bins, w, 5, u=u)  # eps=1e-5 also guards the zero-width bin at u=0
    # cdf = [0, .25, 1]: u=.125 -> 0.5, u=.25 -> 1.0, u=.5 -> 1 + .25/.75.
    assert torch.allclose(s, torch.tensor([[0.0, 0.5, 1.0, 1 + 1 / 3, 2.0]]), atol=1e-4)


def test_importance_samples_concentrate_at_the_surface():
    t = torch.linspace(0, 2, 33).expand(1, 1, 33)
    w = torch.zeros(1, 1, 33)
    w[..., 20] = 1.0  # all mass at t = 1.25
    fine = sample_importance(t, w, 64, weight_eps=0.0, det=True)
    assert ((fine > 1.1) & (fine < 1.35)).float().mean() > 0.95


def test_stratified_jitter_modes():
    g = torch.Generator().manual_seed(0)
    c = sample_stratified(1.0, 2.0, 11, (3,), jitter="centered", generator=g)
    f = sample_stratified(1.0, 2.0, 11, (3,), jitter="forward", u=torch.full((3, 11), 0.999))
    assert (c >= 0.95).all() and (c <= 2.05).all()
    assert torch.allclose(f - torch.linspace(1, 2, 11), torch.full((3, 11), 0.0999), atol=1e-5)
    assert torch.equal(sample_stratified(1.0, 2.0, 5, (2,), perturb=False), torch.linspace(1, 2, 5).expand(2, 5))


def sphere_field(radius=0.5):
    def field(points, dirs):
        sigma = 5000.0 * (radius - points.norm(dim=-1))
        return (points * 0.5 + 0.5), sigma
    return field


def test_chunking_and_generator_make_renders_reproducible():
    cam = Cameras.from_angles([1.2, 2.0], [1.3, 1.6], 40.0, radius=2.0)
    o, d = generate_rays(cam, 16, 16)
    cfg = RenderConfig(near=1.0, far=3.0, num_samples=16, num_importance=16, max_points=None)
    a = render_rays(sphere_field(), o, d, cfg, generator=torch.Generator().manual_seed(3))
    b = render_rays(sphere_field(), o, d, RenderConfig(**{**cfg.__dict__, "max_points": 1000}),
                    generator=torch.Generator().manual_seed(3))
    assert torch.allclose(a.features, b.features, atol=1e-6) and torch.allclose(a.depth, b.depth, atol=1e-6)
    c = render_rays(sphere_field(), o, d, cfg, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(a.depth, c.depth)


def test_sphere_depth_and_normals():
    cam = Cameras.from_angles(math.pi / 2, math.pi / 2, 30.0, radius=2.0)
    o, d = generate_rays(cam, 9, 9)
    cfg = RenderConfig(near=1.0, far=3.0, num_samples=64, num_importance=64, perturb=False, importance_det=True,
                       depth_mode="normalized", density_activation="relu")
    out = render_rays(sphere_field(), o, d, cfg)
    centre = 4 * 9 + 4
    assert float(out.depth[0, centre]) == pytest.approx(1.5, abs=0.02)  # camera at 2, sphere radius .5
    pts = o + d * out.depth[..., None]
    fn = sphere_field()
    n = density_normals(lambda p: fn(p, p)[1], pts)
    hit = out.opacity[0] > 0.99
    radial = torch.nn.functional.normalize(pts[0, hit], dim=-1)
    assert torch.allclose(n[0, hit], radial, atol=1e-4)


def test_gradients_reach_the_field():
    cam = Cameras.from_angles(math.pi / 2, math.pi / 2, 30.0, radius=2.0)
    o, d = generate_rays(cam, 4, 4)
    scale = torch.tensor(1.0, requires_grad=True)

    def field(points, dirs):
        return points.abs().clamp(max=1) * scale, 50 * (0.5 - points.norm(dim=-1)) * scale
    out = render_rays(field, o, d, RenderConfig(near=1.0, far=3.0, num_samples=8, num_importance=8, max_points=None))
    out.features.sum().backward()
    assert scale.grad is not None and float(scale.grad.abs()) > 0


def test_pigan_fast_path_matches_exact_path():
    import aware3d
    G = aware3d.load("pigan-tiny", seed=1)
    w = G.mapping(G.z_from_seeds([0, 1]), 0.7)
    cams = G.cameras([1.3, 1.9], [1.5, 1.4])
    cfg = G.eval_render_config(8)
    with torch.no_grad():
        a = G.synthesis(w, cams, resolution=16, render=cfg)
        b = G.synthesis(w, cams, resolution=16, render=cfg, fast=True)
    assert torch.allclose(a.image, b.image, atol=1e-5) and torch.allclose(a.depth, b.depth, atol=1e-5)


# ----------------------------------------------------------------- surface depth, spacing, per-ray inputs

def half_opacity_slab(midpoint: bool, background: str = "black", n: int = 2001):
    """A ray sampled on [0, 2] through density ln 2 / 0.5 on [0.5, 1.0]: opacity 1/2, closed-form depth."""
    t = torch.linspace(0, 2, n)[None]
    sigma = torch.where((t > 0.5) & (t < 1.0), math.log(2) / 0.5, 0.0)
    out = composite(torch.ones(1, n, 3), sigma, t, midpoint=midpoint, last_delta=2 / (n - 1), background=background)
    # Homogeneous slab [a, a + L], optical depth s L: E[t | hit] = a + 1/s - L e^{-sL} / (1 - e^{-sL}).
    s, L = math.log(2) / 0.5, 0.5
    return out, 0.5 + 1 / s - L * math.exp(-s * L) / (1 - math.exp(-s * L))


@pytest.mark.parametrize("midpoint", [False, True])
def test_surface_depth_of_a_semi_transparent_slab_is_the_analytic_expectation(midpoint):
    out, expected = half_opacity_slab(midpoint)
    assert float(out.opacity) == pytest.approx(0.5, abs=2e-3)
    assert float(out.surface_depth) == pytest.approx(expected, abs=2e-3)  # not 0.5 * expected
    assert float(surface_depth(out.weights, torch.linspace(0, 2, 2001)[None])) == pytest.approx(expected, abs=2e-3)
    # Transmittance: 1 in front of the slab, e^{-ln 2} = 1/2 behind it; weights = alpha * T.
    T = out.transmittance[0]
    assert float(T[0]) == 1.0 and float(T[-1]) == pytest.approx(0.5, abs=2e-3)
    assert torch.all(out.weights <= T + 1e-7)


def test_surface_depth_ignores_the_last_sample_fill_while_depth_keeps_it():
    out, expected = half_opacity_slab(False, background="last_sample")
    assert float(out.surface_depth) == pytest.approx(expected, abs=2e-3)
    # The family's depth (pi-GAN parity) is unchanged: the fill puts the other half of the weight at t = 2.
    assert float(out.depth) == pytest.approx(0.5 * expected + 0.5 * 2.0, abs=2e-3)
    assert float(out.weights.sum()) == pytest.approx(1.0)


def test_surface_depth_of_an_empty_ray_is_far():
    t = torch.linspace(0.5, 1.5, 10).expand(2, 10)
    for midpoint in (False, True):
        out = composite(torch.rand(2, 10, 3), torch.zeros(2, 10), t, midpoint=midpoint, background="last_sample")
        assert torch.equal(out.surface_depth, torch.full((2,), 1.5))  # the last sample, not a midpoint
    w = torch.zeros(2, 10)
    assert torch.equal(surface_depth(w, t, far=torch.tensor([3.0, 4.0])), torch.tensor([3.0, 4.0]))
    with pytest.raises(ValueError, match="samples per ray"):
        surface_depth(w, t[:, :5])


def test_disparity_spacing_is_uniform_in_inverse_distance():
    t = sample_stratified(1.0, 4.0, 5, (2,), perturb=False, spacing="disparity")
    assert torch.allclose(1 / t, torch.tensor([1.0, 0.8125, 0.625, 0.4375, 0.25]).expand(2, 5), atol=1e-6)
    assert float(t[0, 0]) == pytest.approx(1.0) and float(t[0, -1]) == pytest.approx(4.0)
    # The jitter moves samples in 1/t: forward by u steps of (1/far - 1/near) / (S - 1).
    f = sample_stratified(1.0, 4.0, 5, (2,), jitter="forward", u=torch.full((2, 5), 0.5), spacing="disparity")
    assert torch.allclose(1 / f, torch.tensor([1.0, 0.8125, 0.625, 0.4375, 0.25]) - 0.5 * 0.1875, atol=1e-6)
    # Per-ray bounds: each row spans its own [near, far] in 1/t.
    near, far = torch.tensor([1.0, 2.0]), torch.tensor([4.0, 3.0])
    r = sample_stratified(near, far, 3, (2,), perturb=False, spacing="disparity")
    assert torch.allclose(1 / r, torch.tensor([[1.0, 0.625, 0.25], [0.5, (0.5 + 1 / 3) / 2, 1 / 3]]), atol=1e-6)
    with pytest.raises(ValueError, match="near > 0"):
        sample_stratified(0.0, 1.0, 4, (1,), spacing="disparity")


def test_float_bounds_keep_the_exact_linspace_lattice_and_jitter():
    u = torch.rand(3, 7, generator=torch.Generator().manual_seed(0))
    lattice, offset = stratified_parts(0.88, 1.12, 7, (3,), u=u)
    base = torch.linspace(0.88, 1.12, 7)
    assert torch.equal(lattice, base.expand(3, 7)) and torch.equal(offset, (u - 0.5) * (base[1] - base[0]))
    tensor_bounds = sample_stratified(torch.full((3,), 0.88), torch.full((3,), 1.12), 7, (3,), u=u)
    assert torch.allclose(tensor_bounds, lattice + offset, atol=1e-6)


def test_per_ray_bounds_keep_each_ray_s_samples_inside_its_own_range():
    o, d = straight_rays(2)
    near, far = torch.tensor([[0.2, 1.0]]), torch.tensor([[0.6, 1.9]])
    cfg = RenderConfig(near=0.0, far=5.0, num_samples=16, num_importance=16, perturb=False, importance_det=True)
    out = render_rays(slab_field(5.0, 0.4, 1.4), o, d, cfg, near=near, far=far)
    assert torch.all(out.t >= near[..., None] - 1e-6) and torch.all(out.t <= far[..., None] + 1e-6)
    assert torch.equal(out.t[..., 0], near) and torch.allclose(out.t[..., -1], far)
    # One bound may stay the config's float; a (B, 1) tensor broadcasts over the rays.
    half = render_rays(slab_field(5.0, 0.4, 1.4), o, d, cfg, far=torch.tensor([[0.6]]))
    assert torch.all(half.t >= 0.0) and torch.all(half.t <= 0.6 + 1e-6)
    with pytest.raises(ValueError, match="near has shape"):
        render_rays(slab_field(5.0, 0.4, 1.4), o, d, cfg, near=torch.zeros(3))


def test_background_tensor_shows_on_empty_rays_and_through_semi_transparent_ones():
    o, d = straight_rays(3)
    d[0, 2] = torch.tensor([1.0, 0.0, 0.0])  # misses the slab
    cfg = RenderConfig(near=0.0, far=2.0, num_samples=64, num_importance=0, perturb=False, background="last_sample")
    bg = torch.tensor([[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]]])
    out = render_rays(slab_field(1.0, 0.5, 1.0), o, d, cfg, background=bg)
    assert torch.equal(out.features[0, 2], bg[0, 2])  # empty ray: exactly the background
    col = torch.tensor([1.0, 0.5, 0.25])
    op = out.opacity[0, :2, None]
    assert torch.allclose(out.features[0, :2], op * col + (1 - op) * bg[0, :2], atol=1e-6)
    assert float(out.opacity[0, 0]) < 0.5  # semi-transparent, so the background is really blended
    one = render_rays(slab_field(1.0, 0.5, 1.0), o, d, cfg, background=torch.tensor([0.1, 0.2, 0.3]))
    assert torch.equal(one.features[0, 2], torch.tensor([0.1, 0.2, 0.3]))


def test_chunked_render_with_per_ray_bounds_and_background_equals_unchunked():
    cam = Cameras.from_angles([1.2, 2.0], [1.3, 1.6], 40.0, radius=2.0)
    o, d = generate_rays(cam, 8, 8)
    g = torch.Generator().manual_seed(5)
    near = 1.0 + 0.3 * torch.rand(2, 64, generator=g)
    far = 2.5 + 0.5 * torch.rand(2, 64, generator=g)
    bg = torch.rand(2, 64, 3, generator=g)
    cfg = RenderConfig(near=1.0, far=3.0, num_samples=12, num_importance=12, max_points=None, spacing="disparity")
    kw = {"near": near, "far": far, "background": bg, "return_samples": True}
    a = render_rays(sphere_field(), o, d, cfg, generator=torch.Generator().manual_seed(3), **kw)
    b = render_rays(sphere_field(), o, d, RenderConfig(**{**cfg.__dict__, "max_points": 500}),
                    generator=torch.Generator().manual_seed(3), **kw)
    for name in ("features", "depth", "opacity", "weights", "t", "transmittance", "surface_depth",
                 "sample_features", "sample_density"):
        assert torch.allclose(getattr(a, name), getattr(b, name), atol=1e-6), name
    assert a.sample_features.shape == (2, 64, 24, 3) and a.sample_density.shape == (2, 64, 24)
    assert torch.all(a.sample_density >= 0)
    plain = render_rays(sphere_field(), o, d, cfg, generator=torch.Generator().manual_seed(3))
    assert plain.sample_features is None and plain.sample_density is None


def test_pigan_output_carries_the_surface_depth():
    import aware3d
    G = aware3d.load("pigan-tiny", seed=1)
    w = G.mapping(G.z_from_seeds([0]), 0.7)
    cfg = G.eval_render_config(8)
    with torch.no_grad():
        out = G.synthesis(w, G.cameras([1.5], [1.5]), resolution=8, render=cfg)
    assert out.surface_depth.shape == out.depth.shape == (1, 1, 8, 8)
    assert torch.all(out.surface_depth >= cfg.near - 0.05) and torch.all(out.surface_depth <= cfg.far + 0.05)


def test_eg3d_surface_depth_is_its_normalised_depth_on_covered_pixels():
    import aware3d
    G = aware3d.load("eg3d-tiny", seed=3).eval()
    ws = G.mapping(G.z_from_seeds([0]), 0.7, cameras=G.cameras([1.5], [1.5]))
    with torch.no_grad():
        out = G.synthesis(ws, G.cameras([1.5], [1.5]), resolution=8, superresolution=False,
                          render=G.eval_render_config(), generator=torch.Generator().manual_seed(0))
    assert out.surface_depth.shape == out.depth.shape == (1, 1, 8, 8)
    covered = out.opacity > 1e-3  # EG3D's depth is already the normalised expectation there
    assert covered.any() and torch.allclose(out.surface_depth[covered], out.depth[covered], atol=1e-5)


@pytest.mark.parametrize("coarse", [1, 2])
def test_importance_sampling_with_too_few_coarse_samples_is_a_clear_error(coarse):
    """Two coarse samples leave no interior bin for the pdf: a config error naming num_samples, not an index error."""
    from aware3d.errors import ConfigError
    from aware3d.rendering.sampling import sample_importance

    t = torch.linspace(0.9, 1.1, coarse).expand(4, coarse)
    with pytest.raises(ConfigError, match="num_samples >= 3"):
        sample_importance(t, torch.ones(4, coarse), 6)
    assert sample_importance(torch.linspace(0.9, 1.1, 3).expand(4, 3), torch.ones(4, 3), 6).shape == (4, 6)


def test_ball_density_prior_makes_an_empty_field_a_ball_of_its_radius():
    # An empty field plus the prior: a camera at 2 sees the ball's front at 2 - r (r = 0.5); rays that miss it
    # stay empty, and the prior's zero crossing is the radius.
    from aware3d.rendering.renderer import ball_density_prior

    pts = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 2.0, 0.0]])
    vals = ball_density_prior(pts, 10.0, 0.5)
    assert vals[0] == pytest.approx(10 * math.tanh(4)) and vals[1] == pytest.approx(0.0, abs=1e-6) and vals[2] < -9.9

    def empty(points, dirs):
        return torch.ones(*points.shape[:-1], 3), torch.zeros(points.shape[:-1])

    o = torch.tensor([[[0.0, 0.0, 2.0], [0.0, 0.7, 2.0]]])
    d = torch.tensor([[[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]]])
    cfg = RenderConfig(near=1.0, far=3.0, num_samples=400, num_importance=0, perturb=False, density_prior=1000.0,
                       density_prior_radius=0.5, depth_mode="normalized")
    out = render_rays(empty, o, d, cfg)
    assert float(out.opacity[0, 0]) == pytest.approx(1.0, abs=1e-4)
    assert float(out.depth[0, 0]) == pytest.approx(1.5, abs=0.02)
    assert float(out.opacity[0, 1]) == pytest.approx(0.0, abs=1e-6)
    # Without the prior the same field renders nothing.
    plain = render_rays(empty, o, d, RenderConfig(**{**cfg.__dict__, "density_prior": 0.0}))
    assert float(plain.opacity.abs().max()) == 0.0


def test_density_scale_multiplies_the_raw_density_before_the_activation():
    # A uniform raw density 0.5 over a slab of length L = 0.2 (camera at 2, samples 1.9..2.1 on the z axis): the
    # opacity is 1 - exp(-s * 0.5 * L) for scale s, so scale 20 makes the same field ~87% opaque instead of ~10%.
    def fog(points, dirs):
        inside = (points[..., 2].abs() < 0.1).float()
        return torch.ones(*points.shape[:-1], 3), inside * 0.5

    o = torch.tensor([[[0.0, 0.0, 2.0]]])
    d = torch.tensor([[[0.0, 0.0, -1.0]]])
    base = dict(near=1.5, far=2.5, num_samples=2001, num_importance=0, perturb=False)
    for scale in (1.0, 20.0):
        out = render_rays(fog, o, d, RenderConfig(**base, density_scale=scale))
        assert float(out.opacity[0, 0]) == pytest.approx(1 - math.exp(-scale * 0.5 * 0.2), abs=2e-3)
    from aware3d.errors import ConfigError

    with pytest.raises(ConfigError, match="density_scale"):
        RenderConfig(density_scale=0.0)
