"""The shared renderer on analytic scenes with hand-computed answers."""

import math

import pytest
import torch

from aware3d.cameras import Cameras, generate_rays
from aware3d.rendering import (
    RenderConfig, composite, density_normals, render_rays, sample_importance, sample_pdf, sample_stratified,
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
