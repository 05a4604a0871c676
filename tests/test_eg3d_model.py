"""The EG3D model in pure PyTorch: hand-computed layer cases, API properties on the tiny preset, the dual
discriminator, presets/registry, checkpoints and the shared tools on EG3D models."""

import json
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import aware3d
from aware3d.export.shapes import read_mrc
from aware3d.io.checkpoint import save_generator
from aware3d.models.eg3d import EG3D_PRESETS, EG3DGenerator, eg3d_focal, eg3d_lookat_cameras
from aware3d.nn.stylegan2.networks import MappingNetwork
from aware3d.models.eg3d.discriminator import DualDiscriminator, DualDiscriminatorConfig
from aware3d.nn.stylegan2.discriminator import MinibatchStdLayer, filtered_resizing
from aware3d.nn.stylegan2.layers import (
    FullyConnectedLayer,
    bias_act,
    conv2d_resample,
    downsample2d,
    modulated_conv2d,
    setup_filter,
    upfirdn2d,
    upsample2d,
)
from aware3d.nn.triplane import sample_from_planes
from aware3d.models.registry import all_presets, build_generator
from aware3d.rendering import RandomDraws
from aware3d.training.presets import get_train_preset

from .conftest import require_reference

TINY = EG3D_PRESETS["eg3d-tiny"]


@pytest.fixture(scope="module")
def tiny():
    return build_generator("eg3d-tiny", seed=3).eval()


# ------------------------------------------------------------------------------------- layers, by hand
def test_filter_and_upsampling_by_hand():
    f = setup_filter()
    assert torch.equal(f, torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64)
    x = torch.zeros(1, 1, 2, 2)
    x[0, 0, 0, 0] = 1
    up = upsample2d(x, f)
    # Zero insertion then the filter times up^2 = 4: a lone pixel spreads as 4 * (3/8, 3/8, 1/8) per axis.
    assert up.shape == (1, 1, 4, 4)
    assert up[0, 0, :, 0].tolist() == [9 / 16, 9 / 16, 3 / 16, 0.0]
    assert up[0, 0, 0, :3].tolist() == [9 / 16, 9 / 16, 3 / 16]
    # A constant image stays constant away from the border (up: gain 4 keeps the mean; down: gain 1).
    c = torch.full((1, 2, 8, 8), 2.5)
    assert torch.allclose(upsample2d(c, f)[..., 2:-2, 2:-2], torch.tensor(2.5))
    assert torch.allclose(downsample2d(c, f)[..., 1:-1, 1:-1], torch.tensor(2.5))
    assert downsample2d(c, f).shape == (1, 2, 4, 4)
    with pytest.raises(ValueError, match="2-D filter"):
        upfirdn2d(c, torch.ones(4))


def test_bias_act_and_fully_connected_by_hand():
    x = torch.tensor([[-1.0, 2.0]])
    y = bias_act(x, torch.tensor([0.5, 0.5]), act="lrelu", clamp=3.0)
    assert y[0, 0].item() == pytest.approx(-0.1 * math.sqrt(2))
    assert y[0, 1].item() == 3.0  # 2.5 * sqrt(2) = 3.54 clamped
    assert bias_act(x, act="linear", gain=2.0).tolist() == [[-2.0, 4.0]]
    with pytest.raises(ValueError, match="unknown activation"):
        bias_act(x, act="swish")
    fc = FullyConnectedLayer(4, 2, lr_mul=0.01, bias_init=1.0)
    with torch.no_grad():
        fc.weight.copy_(torch.tensor([[100.0, 0, 0, 0], [0, 0, 0, 200.0]]))
    # Stored weights are divided by lr_mul: effective W = weight * 0.01 / sqrt(4); effective bias = 1 * 0.01.
    out = fc(torch.tensor([[2.0, 0, 0, 1.0]]))
    assert out[0].tolist() == pytest.approx([1.0 + 0.01, 1.0 + 0.01])


def test_resampling_convolutions_match_their_definitions():
    g = torch.Generator().manual_seed(0)
    x, w, f = torch.randn(2, 3, 6, 6, generator=g), torch.randn(4, 3, 3, 3, generator=g), setup_filter()
    # Upsampling conv (transposed-convolution route) = zero insertion + filter, then a true convolution.
    ref_up = F.conv2d(upfirdn2d(x, f, up=2, padding=[3, 2, 3, 2], gain=4), w.flip([2, 3]))
    assert torch.allclose(conv2d_resample(x, w, f, up=2, padding=1, flip_weight=False), ref_up, atol=1e-5)
    # Downsampling conv = filter, correlate, keep every other pixel.
    ref_down = F.conv2d(upfirdn2d(x, f, padding=2), w)[:, :, ::2, ::2]
    assert torch.allclose(conv2d_resample(x, w, f, down=2, padding=1), ref_down, atol=1e-5)
    # Grouped weights (the fused modulated conv) upsample per group.
    xg = x.reshape(1, 6, 6, 6)
    wg = torch.randn(8, 3, 3, 3, generator=g)
    grouped = conv2d_resample(xg, wg, f, up=2, padding=1, groups=2, flip_weight=False)
    separate = torch.cat([conv2d_resample(x[i:i + 1], wg[4 * i:4 * i + 4], f, up=2, padding=1, flip_weight=False)
                          for i in range(2)], 1)
    assert torch.allclose(grouped, separate, atol=1e-5)


@pytest.mark.parametrize("up", [1, 2])
def test_modulated_conv_fused_equals_unfused_and_demodulates(up):
    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(2, 4, 8, 8, generator=g), torch.randn(5, 4, 3, 3, generator=g)
    s, noise = torch.randn(2, 4, generator=g), torch.randn(1, 1, 8 * up, 8 * up, generator=g)
    kw = dict(up=up, padding=1, resample_filter=setup_filter(), flip_weight=(up == 1))
    fused = modulated_conv2d(x, w, s, noise=noise, fused_modconv=True, **kw)
    unfused = modulated_conv2d(x, w, s, noise=noise, fused_modconv=False, **kw)
    assert fused.shape == (2, 5, 8 * up, 8 * up)
    assert torch.allclose(fused, unfused, atol=1e-5)
    # Demodulation makes the output invariant to the scale of the styles.
    assert torch.allclose(modulated_conv2d(x, w, 7 * s, **kw), modulated_conv2d(x, w, s, **kw), atol=1e-5)
    # float16 inputs take the pre-normalised path and stay close to float32.
    half = modulated_conv2d(x.half(), w, s, **kw)
    assert half.dtype == torch.float16 and torch.allclose(half.float(), modulated_conv2d(x, w, s, **kw), atol=2e-2)


def test_mapping_truncation_and_cutoff():
    torch.manual_seed(0)
    m = MappingNetwork(8, 3, 6, num_ws=5, num_layers=2)
    m.w_avg.copy_(torch.arange(6.0))
    z, c = torch.randn(4, 8), torch.randn(4, 3)
    ws = m(z, c)
    assert ws.shape == (4, 5, 6) and torch.equal(ws[:, 0], ws[:, 4])
    assert torch.allclose(m(z, c, truncation_psi=0.5), m.w_avg + 0.5 * (ws - m.w_avg), atol=1e-6)
    cut = m(z, c, truncation_psi=0.0, truncation_cutoff=2)
    assert torch.equal(cut[:, :2], m.w_avg.expand(4, 2, 6)) and torch.equal(cut[:, 2:], ws[:, 2:])
    # Training tracks the average w with decay 0.998.
    before = m.w_avg.clone()
    w = m(z, c, update_emas=True)[:, 0]
    assert torch.allclose(m.w_avg, w.mean(0) + 0.998 * (before - w.mean(0)), atol=1e-6)
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        m(z, None)


def test_minibatch_std_by_hand():
    x = torch.zeros(2, 1, 2, 2)
    x[1] = 2.0
    y = MinibatchStdLayer(group_size=4)(x)  # group = min(4, 2): std of {0, 2} is 1 everywhere
    assert y.shape == (2, 2, 2, 2) and torch.allclose(y[:, 1], torch.ones(2, 2, 2))
    with pytest.raises(ValueError, match="multiple of 2"):
        MinibatchStdLayer(group_size=2)(torch.zeros(3, 1, 2, 2))


def test_plane_axes_official_and_corrected():
    """Plane 2 holds features that depend on the texel row only: officially the row is world x; in the
    corrected layout (y, z) it is world z."""
    planes = torch.zeros(1, 3, 1, 8, 8)
    planes[0, 2, 0] = torch.arange(8.0)[:, None].expand(8, 8)
    along_x = torch.tensor([[[-0.4, 0.1, 0.2], [0.0, 0.1, 0.2], [0.4, 0.1, 0.2]]])
    along_z = along_x[..., [1, 2, 0]].clone()
    along_z[..., 0] = 0.1
    off = sample_from_planes(planes, along_x, 1.0, "official")[0, 2, :, 0]
    cor = sample_from_planes(planes, along_x, 1.0, "corrected")[0, 2, :, 0]
    assert off[0] < off[1] < off[2] and torch.allclose(cor, cor[0].expand(3))
    cor_z = sample_from_planes(planes, along_z, 1.0, "corrected")[0, 2, :, 0]
    assert cor_z[0] < cor_z[1] < cor_z[2]
    # Outside the box of side box_warp the planes read zeros.
    assert sample_from_planes(planes + 1, torch.tensor([[[0.6, 0.0, 0.0]]]), 1.0).abs().sum() == 0


# ------------------------------------------------------------------------------------- the generator
def test_cameras_and_conditioning(tiny):
    cams = tiny.cameras([math.pi / 2], [math.pi / 2])
    assert torch.allclose(cams.origins, torch.tensor([[0.0, 0.0, 2.7]]), atol=1e-6)
    assert torch.allclose(cams.cam2world[0, :3, 2], torch.tensor([0.0, 0.0, -1.0]), atol=1e-6)  # looks at the pivot
    assert cams.intrinsics[0, 0, 0].item() == pytest.approx(eg3d_focal(18.837), rel=1e-6)
    # EG3D's yaw +0.4 (toward +x) is pi-GAN's yaw pi/2 - 0.4.
    eg = eg3d_lookat_cameras(0.4, 0.0, 2.7, (0, 0, 0.2), eg3d_focal(18.837))
    ours = tiny.cameras([math.pi / 2 - 0.4], [math.pi / 2])
    assert torch.allclose(eg.cam2world, ours.cam2world, atol=1e-5) and eg.origins[0, 0] > 0
    z = torch.randn(2, TINY.z_dim)
    # Our positional order and EG3D's keyword order give the same ws.
    assert torch.equal(tiny.mapping(z, 0.6, ours), tiny.mapping(z, ours, truncation_psi=0.6))
    assert torch.equal(tiny.mapping(z, ours.eg3d_label(), truncation_psi=0.6), tiny.mapping(z, 0.6, cameras=ours))
    assert torch.equal(tiny.mapping(z, 0.6), tiny.mapping(z, tiny.default_conditioning(2), truncation_psi=0.6))
    assert not torch.equal(tiny.mapping(z, ours), tiny.mapping(z))
    assert torch.allclose(tiny.mapping(z, cams), tiny.mapping(z), atol=1e-5)  # the default label is the frontal camera
    with pytest.raises(ValueError, match=r"\(B, 25\)"):
        tiny.mapping(z, torch.zeros(2, 24))
    blind = EG3DGenerator(replace(TINY, c_gen_conditioning_zero=True))
    assert torch.equal(blind.mapping(z, cams), blind.mapping(z, ours))


def test_synthesis_outputs_and_plane_cache(tiny):
    g = torch.Generator().manual_seed(5)
    ws = tiny.mapping(torch.randn(2, TINY.z_dim, generator=g), 0.7)
    cams = tiny.cameras([1.4, 1.8], [1.5, 1.6])
    R, S = 16, TINY.render.num_samples
    draws = RandomDraws(torch.rand(2, R * R, S, generator=g), torch.rand(2, R * R, S, generator=g))
    with torch.no_grad():
        out = tiny.synthesis(ws, cams, draws=draws)
        cached = tiny.render_planes(tiny.planes(ws), ws, cams, draws=draws)
        big = tiny.synthesis(ws, cams, resolution=24, superresolution=False)
    assert out.image.shape == (2, 3, 32, 32) and out.image_raw.shape == (2, 3, 16, 16)
    assert out.depth.shape == out.opacity.shape == (2, 1, 16, 16) and out.features.shape == (2, 8, 16, 16)
    assert torch.equal(out.image, cached.image) and torch.equal(out.depth, cached.depth)
    near, far = TINY.render.near, TINY.render.far
    assert out.depth.min() >= near and out.depth.max() <= far + (far - near) / (S - 1)
    assert 0 <= out.opacity.min() and out.opacity.max() <= 1
    assert out.features.abs().max() <= 1.002 and big.image_raw.abs().max() <= 1.002
    assert big.image_raw.shape == (2, 3, 24, 24) and torch.equal(big.image, big.image_raw)
    assert tiny.config.neural_rendering_resolution == 16
    # Random draws are what make renders differ: other uniforms, other pixels.
    with torch.no_grad():
        other = tiny.synthesis(ws, cams, draws=RandomDraws(draws.stratified.flip(1), draws.importance))
    assert not torch.equal(other.depth, out.depth)


def test_same_size_superresolution_block_feeds_back_into_image_raw(tiny):
    """EG3D quirk (SuperresolutionHybrid2X/4X without resize): the first block adds its ToRGB output in place
    to the RGB it got, which is the returned image_raw."""
    ws = tiny.mapping(torch.randn(1, TINY.z_dim), 0.7)
    cams = tiny.cameras([1.5], [1.5])
    draws = RandomDraws(torch.rand(1, 256, 12), torch.rand(1, 256, 12))
    with torch.no_grad():
        with_sr = tiny.synthesis(ws, cams, draws=draws)
        without = tiny.synthesis(ws, cams, draws=draws, superresolution=False)
        at_other_size = tiny.synthesis(ws, cams, resolution=8, superresolution=True)
    assert torch.equal(with_sr.features, without.features)
    assert torch.equal(without.image_raw, without.features[:, :3])
    assert not torch.allclose(with_sr.image_raw, without.image_raw)
    assert torch.equal(at_other_size.image_raw, at_other_size.features[:, :3])  # resized input: no alias


def test_training_mode_backpropagates_everywhere():
    G = build_generator("eg3d-tiny", seed=1).train()
    z = torch.randn(2, TINY.z_dim)
    cams = G.cameras([1.5, 1.6], [1.5, 1.5])
    out = G(z, cams, generator=torch.Generator().manual_seed(0))
    (out.image.square().mean() + out.image_raw.mean()).backward()
    for name in ("backbone.mapping.fc0.weight", "backbone.synthesis.b4.const", "decoder.hidden.weight",
                 "superresolution.block0.conv0.weight", "superresolution.block1.torgb.bias"):
        grad = G.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    # Random noise in training: two calls differ (once the noise strengths are not zero, their init).
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.1)
        a = G.planes(G.mapping(z, 1.0))
        b = G.planes(G.mapping(z, 1.0))
    assert not torch.equal(a, b)


def test_density_color_and_normals(tiny):
    ws = tiny.mapping(torch.randn(1, TINY.z_dim), 0.7)
    pts = torch.rand(1, 50, 3) - 0.5
    with torch.no_grad():
        sigma = tiny.density(ws)(pts)
        rgb = tiny.color(ws)(pts)
        _, raw_sigma = tiny.sample_planes(tiny.planes(ws), pts)
    assert sigma.shape == (1, 50) and torch.equal(sigma, raw_sigma[..., 0])
    assert rgb.shape == (1, 50, 3) and rgb.min() >= -0.001 and rgb.max() <= 1.001
    out = tiny.synthesis(ws, tiny.cameras([1.5], [1.5]), resolution=8, normals=True, superresolution=False)
    n = out.normals[0].reshape(3, -1)
    lengths = n.norm(dim=0)
    assert out.normals.shape == (1, 3, 8, 8)
    assert torch.allclose(lengths[lengths > 0], torch.ones(1), atol=1e-4)


def test_w_avg_of_a_fresh_model(tiny):
    G = EG3DGenerator(TINY)
    assert G.w_avg.abs().sum() == 0
    G.update_w_avg(num_samples=64, seed=2)
    g = torch.Generator().manual_seed(2)
    z = torch.randn(64, TINY.z_dim, generator=g)
    with torch.no_grad():
        expected = G.backbone.mapping(z, G.default_conditioning(64))[:, 0].mean(0)
    assert torch.allclose(G.w_avg, expected, atol=1e-5)


# ------------------------------------------------------------------------------------- discriminator
def test_dual_discriminator():
    cfg = DualDiscriminatorConfig(img_resolution=32, channel_base=256, channel_max=16, mbstd_group_size=2)
    torch.manual_seed(0)
    D = DualDiscriminator(cfg)
    assert D.block_resolutions == [32, 16, 8] and D.b32.fromrgb.weight.shape[1] == 6
    image, raw, c = torch.randn(4, 3, 32, 32, requires_grad=True), torch.randn(4, 3, 16, 16), torch.randn(4, 25)
    logits = D(image, raw, c)
    assert logits.shape == (4, 1)
    logits.sum().backward()
    assert image.grad.abs().sum() > 0 and D.mapping.embed.weight.grad.abs().sum() > 0
    with torch.no_grad():
        assert not torch.equal(D(image, raw.flip(-1), c), logits)
        assert not torch.equal(D(image, raw, c.flip(0)), logits)
        # The label embedding is normalised to unit RMS: scaling the label (zero-bias embed) changes nothing.
        assert torch.allclose(D(image, raw, c * 2), logits, atol=1e-6)
    # The raw image reaches the discriminator upsampled with antialiased bilinear resizing.
    assert torch.equal(filtered_resizing(raw, 32, D.resample_filter), F.interpolate(
        raw, size=(32, 32), mode="bilinear", align_corners=False, antialias=True))
    assert filtered_resizing(raw, 32, D.resample_filter, "classic").shape == (4, 3, 32, 32)
    noisy = DualDiscriminator(replace(cfg, disc_c_noise=1.0))
    noisy.load_state_dict(D.state_dict())
    with torch.no_grad():
        a = noisy(image, raw, c, generator=torch.Generator().manual_seed(0))
        b = noisy(image, raw, c, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and not torch.equal(a, logits)
    with pytest.raises(ValueError, match="pass c"):
        D(image, raw)


# ------------------------------------------------------------------------------------- presets, files, tools
def test_presets_and_registry():
    presets = all_presets()
    for name in ("eg3d-ffhq", "eg3d-afhq", "eg3d-shapenet", "eg3d-tiny"):
        assert presets[name][0].name == "eg3d" and get_train_preset(name).family == "eg3d"
    with torch.device("meta"):  # structure only, no memory
        ffhq = EG3DGenerator(EG3D_PRESETS["eg3d-ffhq"])
        shapenet = EG3DGenerator(EG3D_PRESETS["eg3d-shapenet"])
    assert sum(p.numel() for p in ffhq.parameters()) == 30_662_136  # the official FFHQ-512 count (README)
    assert ffhq.num_ws == 14 and ffhq.superresolution.input_resolution == 128
    assert shapenet.superresolution.input_resolution == 64 and shapenet.superresolution.block0.up == 1
    assert EG3D_PRESETS["eg3d-shapenet"].render.background == "white"
    assert EG3D_PRESETS["eg3d-afhq"].camera_pivot == (0.0, 0.0, -0.06)
    with pytest.raises(ValueError, match="valid: official, corrected"):
        sample_from_planes(torch.zeros(1, 3, 1, 2, 2), torch.zeros(1, 1, 3), 1.0, "diagonal")


def test_checkpoint_round_trip(tmp_path, tiny):
    save_generator(tiny, tmp_path / "ckpt")
    meta = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert meta["family"] == "eg3d" and meta["preset"] == "eg3d-tiny"
    G2 = aware3d.load(tmp_path / "ckpt")
    assert G2.config == tiny.config
    a = aware3d.render(tiny, [3], yaw=0.2, resolution=8)
    b = aware3d.render(G2, [3], yaw=0.2, resolution=8)
    assert a.image.shape == (1, 3, 32, 32) and a.depth.shape == (1, 1, 8, 8)
    assert not torch.equal(a.image, b.image)  # the tools sample randomly (as EG3D does) from the global RNG
    torch.manual_seed(0)
    a = aware3d.render(tiny, [3], yaw=0.2, resolution=8)
    torch.manual_seed(0)
    b = aware3d.render(G2, [3], yaw=0.2, resolution=8)
    assert torch.equal(a.image, b.image) and torch.equal(a.depth, b.depth)


def test_tools_on_an_eg3d_model(tmp_path):
    from aware3d.tools import interpolate, render, shapes, video

    render.run(render.RenderOptions(checkpoint="eg3d-tiny", out=str(tmp_path / "r"), seeds=[0], yaw=[0.0, 0.3],
                                    resolution=12, num_samples=6))
    assert Image.open(tmp_path / "r" / "seed0000_view01.png").size == (32, 32)
    assert Image.open(tmp_path / "r" / "seed0000_view01_depth.png").size == (12, 12)
    assert Image.open(tmp_path / "r" / "seed0000_view00_normal.png").size == (12, 12)
    assert json.loads((tmp_path / "r" / "render.json").read_text())["model"]["family"] == "eg3d"
    video.run(video.VideoOptions(checkpoint="eg3d-tiny", out=str(tmp_path / "v"), frames=2, resolution=8,
                                 num_samples=4, name="v.gif"))
    interpolate.run(interpolate.InterpolateOptions(checkpoint="eg3d-tiny", out=str(tmp_path / "i"), seeds=[0, 1],
                                                   frames_per_seed=1, resolution=8, num_samples=4, name="i.gif"))
    assert (tmp_path / "v" / "v.gif").stat().st_size > 0 and (tmp_path / "i" / "i.gif").stat().st_size > 0
    shapes.run(shapes.ShapesOptions(checkpoint="eg3d-tiny", out=str(tmp_path / "s"), grid=12, level="mean"))
    vol, _ = read_mrc(tmp_path / "s" / "seed0000.mrc")
    G = aware3d.load("eg3d-tiny")
    with torch.no_grad():
        corner = G.density(G.mapping(G.z_from_seeds([0]), 0.7))(torch.tensor([[[-0.5, -0.5, -0.5]]]))
    assert vol.shape == (12, 12, 12) and float(vol[0, 0, 0]) == pytest.approx(float(corner), rel=1e-4, abs=1e-5)


def test_convert_tool_and_load_of_an_official_pickle(tmp_path):
    from aware3d.models.eg3d.convert import load_discriminator
    from aware3d.tools import convert

    pkl = require_reference("eg3d", "network-snapshot.pkl")
    info = convert.run(convert.ConvertOptions(source=str(pkl), out=str(tmp_path / "ck")))
    assert info["family"] == "eg3d" and info["networks"] == ["D", "G", "G_ema"] and info["preset"] == "eg3d-ffhq"
    G = aware3d.load(tmp_path / "ck")
    assert G.source["network"] == "G_ema" and G.config.neural_rendering_resolution == 64
    D = load_discriminator(tmp_path / "ck")
    assert sum(p.numel() for p in D.parameters()) == 124_224
    G_train = aware3d.load(pkl, ema=False)  # the training copy, through the API
    assert G_train.source["network"] == "G"
    assert not torch.equal(G_train.decoder.output.weight, G.decoder.output.weight)
    assert torch.equal(G_train.w_avg, G.w_avg)
