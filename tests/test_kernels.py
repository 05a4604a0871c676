"""The optimized kernels against the reference (official-arithmetic) ones, in one process: the same
functions, the same gradients, and the reference path still selectable."""

import itertools

import pytest
import torch
import torch.nn.functional as F

import aware3d
from aware3d.nn.kernels import reference_kernels, using_reference_kernels
from aware3d.nn.stylegan2.layers import SynthesisBlock, bias_act, conv2d_resample, setup_filter, upfirdn2d
from aware3d.nn.triplane import mean_plane_features, plane_grid, plane_table, sample_from_planes


def test_reference_kernels_is_scoped_and_restored_after_errors():
    assert not using_reference_kernels()
    with reference_kernels():
        assert using_reference_kernels()
        with reference_kernels(False):
            assert not using_reference_kernels()
        assert using_reference_kernels()
    with pytest.raises(RuntimeError):
        with reference_kernels():
            raise RuntimeError("boom")
    assert not using_reference_kernels()


@pytest.mark.parametrize("taps", ["standard", "odd3x3"])
@pytest.mark.parametrize("up", [2, 3])
def test_polyphase_upsampling_equals_zero_insertion(taps, up):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64, generator=g)
    f = setup_filter().double() if taps == "standard" else torch.rand(3, 3, dtype=torch.float64, generator=g)
    for pads in itertools.product(range(-1, 4), repeat=4):
        for flip in (False, True):
            with reference_kernels():
                ref = upfirdn2d(x, f, up=up, padding=pads, flip_filter=flip, gain=2.0)
            out = upfirdn2d(x, f, up=up, padding=pads, flip_filter=flip, gain=2.0)
            assert out.shape == ref.shape, pads
            torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


def test_folded_padding_and_downsampling_equal_the_reference():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64, generator=g)
    w = torch.randn(5, 4, 3, 3, dtype=torch.float64, generator=g)
    f = setup_filter().double()
    for kwargs in (dict(down=2, padding=1), dict(up=2, padding=1), dict(padding=1)):
        with reference_kernels():
            ref = conv2d_resample(x, w, f, flip_weight=kwargs.get("up", 1) == 1, **kwargs)
        out = conv2d_resample(x, w, f, flip_weight=kwargs.get("up", 1) == 1, **kwargs)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


def test_bias_act_in_place_only_on_its_own_tensors():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 4, 4, generator=g)
    b = torch.randn(3, generator=g)
    keep = x.clone()
    with torch.no_grad():
        for kw in (dict(b=b, act="lrelu", clamp=0.5), dict(act="lrelu"), dict(act="linear", gain=3.0, clamp=1.0)):
            with reference_kernels():
                ref = bias_act(x, **kw)
            out = bias_act(x, **kw)
            assert torch.equal(out, ref) and torch.equal(x, keep)  # the caller's tensor is untouched
        scratch = x.clone()
        out = bias_act(scratch, b, act="lrelu", overwrite_input=True)
        assert out.data_ptr() == scratch.data_ptr() and torch.equal(out, ref_lrelu := bias_act(x, b, act="lrelu"))
    assert torch.equal(ref_lrelu, F.leaky_relu(x + b.reshape(1, 3, 1, 1), 0.2) * 2 ** 0.5)
    # With gradients recorded nothing is done in place, and the gradient is the reference one.
    xg = x.clone().requires_grad_(True)
    grad = torch.autograd.grad(bias_act(xg, b, act="lrelu", clamp=0.5, overwrite_input=True).sum(), xg)[0]
    with reference_kernels():
        ref_grad = torch.autograd.grad(bias_act(xg, b, act="lrelu", clamp=0.5).sum(), xg)[0]
    assert torch.equal(grad, ref_grad)


@pytest.mark.parametrize("batch", [1, 3])
def test_channels_last_synthesis_block_matches_the_reference(batch):
    torch.manual_seed(3)
    block = SynthesisBlock(16, 8, 32, 16, 3, is_last=True).eval()
    x = torch.randn(batch, 16, 8, 8)
    img = torch.randn(batch, 3, 8, 8)
    ws = torch.randn(batch, 3, 32)
    with torch.no_grad():
        with reference_kernels():
            ref_x, ref_img = block(x, img, ws, noise_mode="const")
        out_x, out_img = block(x, img, ws, noise_mode="const")
    assert out_x.is_contiguous(memory_format=torch.channels_last) or batch > 1
    torch.testing.assert_close(out_x, ref_x, rtol=0, atol=1e-5)
    torch.testing.assert_close(out_img, ref_img, rtol=0, atol=1e-5)
    # Training mode (gradients, unfused modulation) agrees too, gradients included.
    block.train()
    wsg = ws.clone().requires_grad_(True)
    grads = []
    for ctx in (reference_kernels(), reference_kernels(False)):
        with ctx:
            grads.append(torch.autograd.grad(block(x, img, wsg, noise_mode="const")[1].square().sum(), wsg)[0])
    # Float32 sums in another order: compare at the gradient's own scale.
    torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=1e-5 * float(grads[0].abs().max()))


@pytest.mark.parametrize("align_corners", [False, True])
def test_one_gather_over_stacked_planes_equals_three_grid_samples(align_corners):
    g = torch.Generator().manual_seed(4)
    planes = torch.randn(2, 3, 5, 7, 9, dtype=torch.float64, generator=g).requires_grad_(True)
    # Points inside and outside the box (zeros there), including the edges' half texels.
    points = (torch.rand(2, 200, 3, dtype=torch.float64, generator=g) * 2.6 - 1.3).requires_grad_(True)
    grid = plane_grid(points)  # the box is [-1, 1]^3
    N, M, P, _ = grid.shape
    per_plane = grid.transpose(1, 2).reshape(N * P, 1, M, 2)
    ref = F.grid_sample(planes.reshape(N * P, 5, 7, 9), per_plane, align_corners=align_corners)
    ref = ref.reshape(N, P, 5, M).mean(1).transpose(1, 2)
    out = mean_plane_features(plane_table(planes), grid, align_corners)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    if not align_corners:
        eg3d_way = sample_from_planes(planes.float(), points.float(), box_warp=2.0).mean(1)
        torch.testing.assert_close(out.float(), eg3d_way, rtol=0, atol=1e-5)
    ref_grads = torch.autograd.grad(ref.square().sum(), [planes, points], retain_graph=True)
    out_grads = torch.autograd.grad(out.square().sum(), [planes, points])
    assert ref_grads[1].abs().sum() > 0
    for a, b in zip(out_grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("preset", ["eg3d-tiny", "epigraf-tiny"])
def test_optimized_model_render_matches_the_reference_path(preset):
    G = aware3d.load(preset, seed=0).eval()
    z = G.z_from_seeds([1, 2])
    cams = G.cameras([1.3, 1.8], [1.5, 1.6])
    with torch.no_grad():
        out = G(z, cams, generator=torch.Generator().manual_seed(0))
        with reference_kernels():
            ref = G(z, cams, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.image, ref.image, rtol=0, atol=1e-4)
    torch.testing.assert_close(out.depth, ref.depth, rtol=0, atol=1e-3)


def test_the_optimized_kernels_are_chosen_per_device():
    from aware3d.nn.kernels import OPTIMIZED_DEVICE_TYPES, use_optimized_kernels

    assert "cpu" in OPTIMIZED_DEVICE_TYPES and "cuda" not in OPTIMIZED_DEVICE_TYPES
    assert use_optimized_kernels(torch.zeros(1))
    assert not use_optimized_kernels(torch.zeros(1, device="meta"))
    with reference_kernels():
        assert not use_optimized_kernels(torch.zeros(1))


@pytest.mark.parametrize("midpoint", [False, True])
@pytest.mark.parametrize("background", ["black", "last_sample"])
def test_weighted_sum_compositing_of_unsorted_features_equals_the_reference(midpoint, background):
    from aware3d.rendering import composite

    g = torch.Generator().manual_seed(5)
    B, R, S, C = 2, 7, 9, 4
    t, order = torch.sort(torch.rand(B, R, S, dtype=torch.float64, generator=g) + 1, -1)
    sigma = torch.randn(B, R, S, dtype=torch.float64, generator=g) * 3
    unsorted = torch.randn(B, R, S, C, dtype=torch.float64, generator=g).requires_grad_(True)
    kw = dict(density_activation="softplus", midpoint=midpoint, background=background, last_delta=0.05)
    out = composite(unsorted, sigma, t, color_order=order, **kw)
    with reference_kernels():
        ref = composite(unsorted, sigma, t, color_order=order, **kw)
        by_hand = composite(unsorted.gather(-2, order[..., None].expand(B, R, S, C)), sigma, t, **kw)
    torch.testing.assert_close(out.color, ref.color, rtol=0, atol=1e-12)
    torch.testing.assert_close(ref.color, by_hand.color, rtol=0, atol=0)
    assert torch.equal(out.weights, ref.weights) and torch.equal(out.depth, ref.depth)
    grads = [torch.autograd.grad(o.color.square().sum(), unsorted)[0] for o in (out, ref)]
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-12)


def test_film_layer_with_gradients_folds_the_scale_into_the_weight():
    from aware3d.nn.siren import FiLMLayer

    torch.manual_seed(6)
    layer = FiLMLayer(5, 7).double()
    x = torch.randn(2, 11, 5, dtype=torch.float64, requires_grad=True)
    freq = (torch.randn(2, 7, dtype=torch.float64) * 15 + 30).requires_grad_(True)
    phase = torch.randn(2, 7, dtype=torch.float64, requires_grad=True)
    inputs = [x, freq, phase, layer.linear.weight, layer.linear.bias]
    out = layer(x, freq, phase)
    with reference_kernels():
        ref = layer(x, freq, phase)
    assert "Baddbmm" in str(out.grad_fn.next_functions) and "Baddbmm" not in str(ref.grad_fn.next_functions)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-9)
    g = torch.randn(out.shape, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(out, inputs, g), torch.autograd.grad(ref, inputs, g)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-8)
    with torch.no_grad():  # inference folds too (in place); the reference keeps the official arithmetic
        torch.testing.assert_close(layer(x, freq, phase), ref.detach(), rtol=0, atol=1e-9)
        with reference_kernels():
            assert torch.equal(layer(x, freq, phase), ref.detach())
