"""CGOF's loss terms (aware3d.models.cgof.losses) and the near-mesh sampler (rendering.sampling.blend_toward_band):
hand-computed cases with known answers, and gradient checks that each term pulls what it is meant to pull."""

from __future__ import annotations

import math

import pytest
import torch

from aware3d.cameras import Cameras
from aware3d.faces.model import FaceCoefficients
from aware3d.models.cgof.losses import (
    CGOFLossWeights,
    background_prior,
    background_prior_bounds,
    band_thickness,
    charbonnier,
    coefficient_loss,
    depth_prior,
    depth_smoothness,
    gaussian_blur_reflect,
    landmark_loss,
    lift_landmarks,
    near_mesh_ramp,
    normal_smoothness,
    warp3d_loss,
)
from aware3d.rendering.compositing import composite
from aware3d.rendering.rasterize import project_points, rasterize
from aware3d.rendering.sampling import blend_toward_band

pytestmark = pytest.mark.usefixtures("one_thread")

NEAR, FAR = 0.88, 1.12


# ----------------------------------------------------------------------------- blend_toward_band

def _rays(seed: int = 0, B: int = 2, R: int = 5, S: int = 6):
    g = torch.Generator().manual_seed(seed)
    t = torch.sort(NEAR + (FAR - NEAR) * torch.rand(B, R, S, generator=g), -1).values
    guide = 0.95 + 0.1 * torch.rand(B, R, generator=g)
    mask = torch.rand(B, R, generator=g) > 0.4
    mask[0, 0], mask[0, 1] = True, False
    return t, guide, mask


def test_blend_toward_band_endpoints_mask_and_gradients():
    t, guide, mask = _rays()
    w = 0.02
    assert torch.equal(blend_toward_band(t, guide, mask, w, 0.0), t)
    band = blend_toward_band(t, guide, mask, w, 1.0)
    even = guide[..., None] + w * torch.linspace(-0.5, 0.5, t.shape[-1])
    assert torch.equal(band[mask], even[mask])  # exactly the even band
    torch.testing.assert_close(band[..., 0][mask], (guide - w / 2)[mask], rtol=0, atol=1e-7)
    torch.testing.assert_close(band[..., -1][mask], (guide + w / 2)[mask], rtol=0, atol=1e-7)
    torch.testing.assert_close(band.diff(dim=-1)[mask], torch.full_like(band.diff(dim=-1)[mask], w / 5))
    for ratio in (0.0, 0.3, 1.0):
        assert torch.equal(blend_toward_band(t, guide, mask, w, ratio)[~mask], t[~mask])  # untouched
    half = blend_toward_band(t, guide, mask, w, 0.3)
    torch.testing.assert_close(half[mask], (0.7 * t + 0.3 * even)[mask])

    t_, g_ = t.clone().requires_grad_(), guide.clone().requires_grad_()
    blend_toward_band(t_, g_, mask, w, 0.3).sum().backward()
    torch.testing.assert_close(t_.grad, torch.where(mask[..., None], 0.7, 1.0).expand_as(t))
    torch.testing.assert_close(g_.grad, torch.where(mask, 0.3 * t.shape[-1], 0.0))


def test_blend_toward_band_per_ray_width_single_sample_and_shape_errors():
    t, guide, mask = _rays(1)
    widths = torch.linspace(0.01, 0.05, t.shape[1]).expand(t.shape[0], -1)
    band = blend_toward_band(t, guide, mask, widths, 1.0)
    torch.testing.assert_close((band[..., -1] - band[..., 0])[mask], widths[mask])
    one = blend_toward_band(t[..., :1], guide, mask, 0.02, 1.0)
    assert torch.equal(one[..., 0][mask], guide[mask])
    with pytest.raises(ValueError, match="guide_depth"):
        blend_toward_band(t, guide[:, :-1], mask[:, :-1], 0.02, 1.0)


# ----------------------------------------------------------------------------- depth prior

def test_depth_prior_zero_inside_band_and_closed_form_outside():
    B, R, S = 1, 3, 4
    thickness = 0.1
    tau = (FAR - NEAR) * thickness  # 0.024: band [d - 0.012, d + 0.012]
    d = torch.tensor([[1.0, 0.97, 1.03]])
    mask = torch.tensor([[True, True, False]])
    offsets = torch.tensor([-0.011, -0.004, 0.005, 0.0119])
    t = d[..., None] + offsets
    t[0, 2] = torch.tensor([0.89, 0.9, 0.91, 0.92])  # far from its mesh depth, but outside the mask
    weights = torch.full((B, R, S), 0.25)
    assert depth_prior(t, weights, d, mask, thickness, NEAR, FAR).item() == 0.0
    t[0, 1, 2] = 0.97 + tau / 2 + 0.03  # one sample 0.03 beyond the band
    weights[0, 1, 2] = 0.4
    expected = 0.4 * (math.exp(20 * 0.03) - 1) / (2 * S)  # mean over the 2 masked rays' 8 samples
    assert depth_prior(t, weights, d, mask, thickness, NEAR, FAR).item() == pytest.approx(expected, rel=1e-5)
    assert depth_prior(t, weights, d, torch.zeros_like(mask), thickness, NEAR, FAR).item() == 0.0
    # Only the weights get gradient; d loss / d w is the per-sample penalty / count (0 in the band).
    w_ = weights.clone().requires_grad_()
    t_ = t.clone().requires_grad_()
    depth_prior(t_, w_, d, mask, thickness, NEAR, FAR).backward()
    assert t_.grad is None
    grad = torch.zeros(B, R, S)
    grad[0, 1, 2] = (math.exp(20 * 0.03) - 1) / (2 * S)
    torch.testing.assert_close(w_.grad, grad)


def test_depth_prior_gradient_moves_the_rendered_weight_into_the_mesh_band():
    S = 32
    t = torch.linspace(NEAR, FAR, S).expand(1, 1, S).contiguous()
    mesh = torch.tensor([[1.0]])
    band = (t - 1.0).abs() <= 0.012
    # Haze everywhere (ReLU density, so every sample has gradient) and a surface 0.05 in front of the mesh.
    sigma = (5.0 + torch.where((t - 0.95).abs() < 0.01, 40.0, 0.0)).requires_grad_()
    opt = torch.optim.Adam([sigma], lr=3.0)

    def weights():
        return composite(torch.zeros(1, 1, S, 3), sigma, t, background="last_sample").weights

    before = weights()[band].sum().item()
    for _ in range(120):
        opt.zero_grad()
        depth_prior(t, weights(), mesh, torch.ones(1, 1, dtype=torch.bool), 0.1, NEAR, FAR).backward()
        opt.step()
    after = weights()
    assert before < 0.05 and after[band].sum().item() > 0.9
    assert (after * t).sum().item() == pytest.approx(1.0, abs=0.01)


# ----------------------------------------------------------------------------- background prior

def test_background_prior_known_answer_and_only_off_the_mask():
    # near 0.88, nearest face depth 1.0: background samples nearer than 0.88 + 0.9 * 0.12 = 0.988 pay.
    t = torch.tensor([[[0.90, 0.95, 1.05], [0.89, 0.90, 0.91]]])
    z = torch.tensor([[[0.12, 0.05, -0.10], [0.5, 0.5, 0.5]]])
    w = torch.tensor([[[0.2, 0.3, 0.5], [0.9, 0.05, 0.05]]])
    mask = torch.tensor([[False, True]])  # the second ray is a face ray: never penalised
    near_part = (0.2 * (0.988 - 0.90) + 0.3 * (0.988 - 0.95)) / 2
    z_part = 0.2 * (0.12 - 0.10) / 1  # face max z 0.1: only the first sample lies in front of it
    got = background_prior(t, w, z, mask, NEAR, torch.tensor([1.0]), torch.tensor([0.10]))
    assert got.item() == pytest.approx(near_part + z_part, rel=1e-5)
    assert background_prior(t, w, z, torch.ones_like(mask), NEAR, 1.0, 0.1).item() == 0.0
    w_ = w.clone().requires_grad_()
    t_ = t.clone().requires_grad_()
    background_prior(t_, w_, z, mask, NEAR, 1.0, 0.1).backward()
    assert t_.grad is None
    expected = torch.zeros_like(w)
    expected[0, 0, 0] = (0.988 - 0.90) / 2 + 0.02
    expected[0, 0, 1] = (0.988 - 0.95) / 2
    torch.testing.assert_close(w_.grad, expected)


def test_background_prior_bounds_per_image():
    depth = torch.tensor([[1.0, 0.97, 0.0], [1.0, 1.0, 1.0]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    z = torch.tensor([[[0.0, 0.05], [0.08, 0.01], [0.3, 0.3]], [[0.2, 0.2], [0.2, 0.2], [0.2, 0.2]]])
    nearest, max_z = background_prior_bounds(depth, mask, z, NEAR)
    torch.testing.assert_close(nearest, torch.tensor([0.97, NEAR]))
    assert max_z[0].item() == pytest.approx(0.08) and max_z[1].item() == math.inf


# ----------------------------------------------------------------------------- smoothness

def test_normal_smoothness_known_value_and_pull():
    n = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    m = torch.tensor([[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])
    assert normal_smoothness(n, m).item() == pytest.approx(2 / 6)
    assert normal_smoothness(n, n).item() == 0.0
    n_ = n.clone().requires_grad_()
    normal_smoothness(n_, m).backward()
    torch.testing.assert_close(n_.grad, 2 * (n - m) / 6)  # descent moves each normal toward its neighbour's


def test_depth_smoothness_flat_ramp_and_background_step():
    flat = torch.full((2, 5, 6), 0.97)
    bg = torch.zeros(2, 5, 6, dtype=torch.bool)
    bg[:, :, :2] = True
    assert depth_smoothness(flat, bg).item() == 0.0
    a, b = 0.01, -0.02
    i, j = torch.meshgrid(torch.arange(5.0), torch.arange(6.0), indexing="ij")
    ramp = (1.0 + a * j + b * i).expand(2, 5, 6)
    assert depth_smoothness(ramp, bg).item() == pytest.approx(2 * (a * a + b * b), rel=1e-4)  # image + background
    assert depth_smoothness(ramp, torch.zeros_like(bg)).item() == pytest.approx(a * a + b * b, rel=1e-4)
    # A unit step between columns 2 and 3 of a 4 x 4 map: cost 1 at the 3 pixels (i < 3, j = 2) of 9; the
    # background (columns 2-3) holds 3 of them among its 3 cropped pixels.
    step = torch.zeros(1, 4, 4)
    step[..., 3] = 1.0
    bg = torch.zeros(1, 4, 4, dtype=torch.bool)
    bg[..., 2:] = True
    assert depth_smoothness(step, bg).item() == pytest.approx(1 / 3 + 1.0, rel=1e-6)
    # Its gradient flattens a bumpy map: one descent step lowers the cost.
    no_bg = torch.zeros(1, 5, 6, dtype=torch.bool)
    bumpy = (ramp[:1] + 0.01 * torch.randn(1, 5, 6, generator=torch.Generator().manual_seed(0))).requires_grad_()
    loss = depth_smoothness(bumpy, no_bg)
    loss.backward()
    with torch.no_grad():
        assert depth_smoothness(bumpy - 2.0 * bumpy.grad, no_bg) < 0.7 * loss


# ----------------------------------------------------------------------------- warping

def test_charbonnier_equal_inputs_and_mask_semantics():
    a = torch.randn(2, 7, 4, generator=torch.Generator().manual_seed(0))
    assert charbonnier(a, a).item() == pytest.approx(1e-4, rel=1e-6)  # sqrt(1e-8), not 0
    assert charbonnier(a, a + 0.01).item() == pytest.approx(math.sqrt(1e-4 + 1e-8), rel=1e-4)
    mask = torch.zeros(2, 7, 1)
    mask[0, :3] = 1
    b = a.clone()
    b[1] += 5.0  # off the mask: ignored
    # A per-sample mask against 4 channels: per masked sample, the sum over its channels.
    assert charbonnier(a, b, mask=mask).item() == pytest.approx(4e-4, rel=1e-5)
    assert charbonnier(a, b, mask=torch.zeros(2, 7, 1)).item() == 0.0


def test_gaussian_blur_reflect_kernel_and_constants():
    delta = torch.zeros(1, 1, 9, 9)
    delta[..., 4, 4] = 1.0
    taps = torch.exp(-torch.arange(-2.0, 3.0).square() / 8.0)
    taps = taps / taps.sum()
    out = gaussian_blur_reflect(delta)
    expected = torch.zeros(9, 9)
    expected[2:7, 2:7] = taps[:, None] * taps[None, :]
    torch.testing.assert_close(out[0, 0], expected)
    const = torch.full((2, 3, 6, 6), 0.3)
    torch.testing.assert_close(gaussian_blur_reflect(const), const)  # reflect padding keeps constants


def test_warp3d_loss_known_answer_masks_and_gradient():
    g = torch.Generator().manual_seed(1)
    o1 = [torch.rand(1, 10, 4, generator=g) for _ in range(2)]
    vmask = torch.zeros(1, 10, dtype=torch.bool)
    vmask[0, :6] = True
    o0 = [o.clone() for o in o1]
    o0[0][0, :6, 3] += 0.1  # inside the volume: one channel off by 0.1
    o0[1][0, 6:] -= 3.0  # outside the volume: ignored
    img1 = torch.rand(1, 3, 8, 8, generator=g)
    img0 = img1 + 0.2  # blurring keeps a constant offset
    img0[..., :2, :] += 5.0
    pmask = torch.ones(1, 8, 8, dtype=torch.bool)
    pass_0 = math.sqrt(0.01 + 1e-8) + 3e-4
    pass_1 = 4e-4
    pixel = math.sqrt(0.04 + 1e-8)
    # Rows 2-3 of the blurred difference see the +5 rows through the 5 x 5 kernel: compare rows 4 on.
    pmask[:, :4, :] = False
    got = warp3d_loss(o1, o0, vmask, img1, img0, pmask)
    assert got.item() == pytest.approx(pass_0 + pass_1 + pixel, rel=1e-4)
    same = warp3d_loss(o1[0], o1[0].clone(), vmask.unsqueeze(-1), img1, img1.clone())
    assert same.item() == pytest.approx(4e-4 + 1e-4, rel=1e-4)
    o0_ = o0[0].clone().requires_grad_()
    warp3d_loss(o1[0], o0_, vmask, img1, img0, pmask).backward()
    assert (o0_.grad[0, :6, 3] > 0).all() and (o0_.grad[0, 6:] == 0).all()  # pulled toward code 1's outputs
    with pytest.raises(ValueError, match="volume_mask"):
        warp3d_loss(o1, o0, vmask[:, :5], img1, img0)


# ----------------------------------------------------------------------------- landmarks

def _cameras(B: int = 2) -> Cameras:
    return Cameras.from_angles(torch.tensor([math.pi / 2 + 0.2, math.pi / 2 - 0.1])[:B],
                               torch.tensor([math.pi / 2 - 0.1, math.pi / 2 + 0.05])[:B], fov_deg=12.0)


@pytest.mark.parametrize("grid", ["pixel_centers", "edge_aligned"])
def test_lift_then_project_is_the_identity(grid):
    g = torch.Generator().manual_seed(0)
    cams = _cameras()
    depth = 0.9 + 0.2 * torch.rand(2, 64, 64, generator=g)  # a render at 64 px, landmarks in a 256-px frame
    xy = 255 * torch.rand(2, 68, 2, generator=g)
    points = lift_landmarks(xy, depth, cams, 256, 256, grid=grid)
    back, distance = project_points(points, cams, 256, 256, grid)
    torch.testing.assert_close(back, xy, rtol=0, atol=5e-4)
    # The distance is the depth map read at the landmark: exactly the constant of a constant map.
    flat = lift_landmarks(xy, torch.full((2, 64, 64), 1.02), cams, 256, grid=grid)
    torch.testing.assert_close(project_points(flat, cams, 256, grid=grid)[1], torch.full((2, 68), 1.02))
    # A depth map linear in its pixel coordinates is read exactly by bilinear interpolation: this checks the
    # 256-px -> 64-px position mapping of each grid.
    i, j = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    linear = (1.0 + 0.001 * j + 0.002 * i).expand(2, 64, 64)
    xy_64 = ((xy + 0.5) / 4 - 0.5 if grid == "pixel_centers" else xy * 63 / 255).clamp(0, 63)  # border: clamped
    expected = 1.0 + 0.001 * xy_64[..., 0] + 0.002 * xy_64[..., 1]
    read = project_points(lift_landmarks(xy, linear, cams, 256, grid=grid), cams, 256, grid=grid)[1]
    torch.testing.assert_close(read, expected, rtol=0, atol=1e-5)
    assert ((distance - 0.9) * (1.1 - distance) >= -1e-6).all()


def test_lifted_landmarks_land_on_a_rasterised_plane_and_pull_the_depth():
    # A square at world z = 0.02 facing a frontal camera, rasterised at 16 px; landmarks at pixel centres.
    verts = torch.tensor([[[-0.1, -0.1, 0.02], [0.1, -0.1, 0.02], [0.1, 0.1, 0.02], [-0.1, 0.1, 0.02]]])
    tris = torch.tensor([[0, 1, 2], [0, 2, 3]])
    cams = Cameras.from_angles(math.pi / 2 + 0.15, math.pi / 2, fov_deg=12.0)
    frags = rasterize(verts, tris, cams, 16, grid="edge_aligned")
    rows, cols = torch.nonzero(frags.mask[0], as_tuple=True)
    xy = torch.stack([cols, rows], -1).float()[None, ::7]
    for mode in ("nearest", "bilinear"):
        points = lift_landmarks(xy, frags.depth, cams, 16, grid="edge_aligned", interpolation=mode)
        torch.testing.assert_close(points[..., 2], torch.full_like(points[..., 2], 0.02), rtol=0, atol=1e-5)
    # The 3-D term pulls the generated depth at the landmark toward the mesh landmark.
    depth = torch.full((1, 16, 16), 1.0, requires_grad=True)
    target = lift_landmarks(xy[:, :1], frags.depth, cams, 16, grid="edge_aligned")
    _, loss_3d = landmark_loss(xy[:, :1], xy[:, :1], lift_landmarks(xy[:, :1], depth, cams, 16, grid="edge_aligned"),
                               target, indices=[0])
    loss_3d.backward()
    r, c = int(xy[0, 0, 1]), int(xy[0, 0, 0])
    true_depth = frags.depth[0, r, c].item()
    assert math.copysign(1, -depth.grad[0, r, c].item()) == math.copysign(1, true_depth - 1.0)
    assert depth.grad.abs().sum().item() == pytest.approx(depth.grad[0, r, c].abs().item())


def test_landmark_loss_known_values():
    g = torch.Generator().manual_seed(3)
    target = 256 * torch.rand(2, 68, 2, generator=g)
    pred = target + torch.tensor([2.0, 0.0])
    mesh3d = torch.randn(2, 68, 3, generator=g)
    lifted = mesh3d.clone()
    lifted[:, :17] += 1.0  # the jaw contour does not count
    lifted[:, 30, 0] += 0.01
    loss_2d, loss_3d = landmark_loss(pred, target, lifted, mesh3d)
    assert loss_2d.item() == pytest.approx(1.0, rel=1e-5)
    assert loss_3d.item() == pytest.approx(0.01 / (51 * 3), rel=1e-3)
    assert landmark_loss(pred, target, lifted, mesh3d, scale_2d=4.0)[0].item() == pytest.approx(4.0, rel=1e-5)


# ----------------------------------------------------------------------------- coefficients, schedule, weights

def test_coefficient_loss_groups():
    g = torch.Generator().manual_seed(4)
    target = FaceCoefficients.from_vector(torch.randn(3, 257, generator=g))
    assert coefficient_loss(target, target).item() == 0.0
    pred = FaceCoefficients(target.identity + 1.0, target.expression, target.texture, target.lighting,
                            target.pose + 7.0)  # pose is not compared
    assert coefficient_loss(pred, target).item() == pytest.approx(0.25)
    assert coefficient_loss(pred, target, groups=("identity",)).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="gamma"):
        coefficient_loss(pred, target, groups=("gamma",))
    ident = pred.identity.clone().requires_grad_()
    moved = FaceCoefficients(ident, pred.expression, pred.texture, pred.lighting, pred.pose)
    coefficient_loss(moved, target).backward()
    torch.testing.assert_close(ident.grad, torch.full_like(ident, 0.25 / ident.numel()))


def test_ramps_and_weights():
    assert [near_mesh_ramp(s) for s in (0, 50, 100, 200, 10_000)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert near_mesh_ramp(0, shrink_steps=0) == 1.0
    assert band_thickness(0) == 1.0 and band_thickness(200) == pytest.approx(0.005)
    assert band_thickness(100) == pytest.approx(0.5025)
    w = CGOFLossWeights()
    assert (w.recon, w.lm3d, w.warp3d, w.depth_prior, w.bg_prior, w.normal, w.geo, w.r1, w.pos) == (
        4.0, 10.0, 10.0, 1e4, 1e4, 1000.0, 500.0, 0.2, 15.0)
    with pytest.raises(ValueError, match="geo"):
        CGOFLossWeights(geo=-1.0)
