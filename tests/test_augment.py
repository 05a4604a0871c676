"""ADA (aware3d.augment): each transform against a hand-computed case, p = 0, determinism, gradients, the
adaptive p, exact resume, and the import of an official augment_pipe (hand-made stand-in and the reference pickle)."""

from __future__ import annotations

import math
from dataclasses import asdict, replace

import pytest
import torch
import torch.nn.functional as F

from aware3d.augment import (
    AUGMENT_PRESETS,
    AdaConfig,
    AdaptiveP,
    AugmentConfig,
    AugmentImportError,
    AugmentPipe,
    ColorParams,
    GeometricParams,
    ada_adjustment,
    augment_pipe_from_official,
    augment_pipe_from_snapshot,
)
from aware3d.augment import matrices as M
from aware3d.augment.pipe import COLOR_MULTIPLIERS, GEOMETRIC_MULTIPLIERS, downsample_2x, upsample_2x
from aware3d.io.safe_unpickle import PickledObject
from aware3d.nn.stylegan2.layers import downsample2d, upsample2d

from .conftest import require_reference

pytestmark = pytest.mark.usefixtures("one_thread")

OFFICIAL = AugmentPipe(AugmentConfig(), p=1.0)  # the official PyTorch resampling of the composed matrix
EXACT = AugmentPipe(AugmentConfig(exact_blit=True), p=1.0)
FILTER_DELAY_PX = 0.049
"""The official resampling (2x up, sample, 2x down with the asymmetric sym6 low-pass) acts as if output pixel x
read the input at G_inv (x + d) - d with d = (0.049, 0.049) px: invisible for translations (d cancels), a
shift of -2 d for a mirror, (s - 1) d for a scale s."""


def grid(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, x) pixel index grids, float32."""
    return torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")


def blob(h: int, w: int, cx: float, cy: float, sigma: float) -> torch.Tensor:
    """(1, 3, h, w) Gaussian blob of three different amplitudes on a 0 background."""
    y, x = grid(h, w)
    b = torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))
    return torch.stack([b, 0.5 * b, -b])[None]


def centroid(img: torch.Tensor) -> tuple[float, float]:
    """(x, y) centre of mass of channel 0 of the first image."""
    a = img[0, 0]
    y, x = grid(*a.shape)
    return float((a * x).sum() / a.sum()), float((a * y).sum() / a.sum())


def geometric(batch: int = 1, **values: float | list) -> GeometricParams:
    g = GeometricParams.identity(batch)
    for name, v in values.items():
        setattr(g, name, torch.tensor(v, dtype=torch.float32).expand_as(getattr(g, name)).clone())
    return g


def color(batch: int = 1, **values: float) -> ColorParams:
    c = ColorParams.identity(batch)
    for name, v in values.items():
        setattr(c, name, torch.full((batch,), float(v)))
    return c


def only_geometric(pipe: AugmentPipe, img: torch.Tensor, **values) -> torch.Tensor:
    return pipe.transform(img, geometric(img.shape[0], **values), ColorParams.identity(img.shape[0]))


def only_color(img: torch.Tensor, **values) -> torch.Tensor:
    return OFFICIAL.transform(img, GeometricParams.identity(img.shape[0]), color(img.shape[0], **values))


def reflect_shift(img: torch.Tensor, tx: int, ty: int) -> torch.Tensor:
    """The content moved by (tx, ty) pixels, the uncovered border filled by reflection (hand-made)."""
    m = max(abs(tx), abs(ty))
    padded = F.pad(img, [m, m, m, m], mode="reflect")
    H, W = img.shape[-2:]
    return padded[..., m - ty: m - ty + H, m - tx: m - tx + W]


# ---------------------------------------------------------------------------------------------------
# Geometric transforms
# ---------------------------------------------------------------------------------------------------
def test_quarter_turn_matrices_are_exact():
    R = M.rotate90_2d(torch.tensor([0.0, 1.0, 2.0, 3.0]))
    assert torch.equal(R[1, :2, :2], torch.tensor([[0.0, -1.0], [1.0, 0.0]]))
    assert torch.equal(R[2, :2, :2], -torch.eye(2))
    assert torch.equal(R[0] @ R[1] @ R[3], torch.eye(3))
    assert torch.equal(M.xflip_inverse(torch.ones(1))[0], torch.diag(torch.tensor([-1.0, 1.0, 1.0])))


def test_xflip_mirrors():
    img = torch.rand(2, 3, 12, 10) * 2 - 1
    assert torch.equal(only_geometric(EXACT, img, xflip=1.0), img.flip(-1))
    # The official resampling mirrors too, up to the filter's sub-pixel delay.
    b = blob(24, 20, cx=7.0, cy=8.0, sigma=2.0)
    out = only_geometric(OFFICIAL, b, xflip=1.0)
    (cx, cy), (mx, my) = centroid(out), centroid(b.flip(-1))
    assert cx == pytest.approx(mx - 2 * FILTER_DELAY_PX, abs=3e-3) and cy == pytest.approx(my, abs=1e-3)
    assert (out - b.flip(-1)).abs().max() < 0.05


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_rotate90_rotates(turns):
    img = torch.rand(2, 6, 10, 10)
    expected = torch.rot90(img, turns, dims=(-2, -1))
    assert torch.equal(only_geometric(EXACT, img, rotate90=float(turns)), expected)
    b = blob(20, 20, cx=6.0, cy=8.0, sigma=3.0)
    out = only_geometric(OFFICIAL, b, rotate90=float(turns))
    assert (out - torch.rot90(b, turns, dims=(-2, -1))).abs().max() < 0.03


def test_rotate90_needs_square_images_when_exact():
    with pytest.raises(ValueError, match="square"):
        only_geometric(EXACT, torch.zeros(1, 3, 8, 6), rotate90=1.0)


def test_integer_translation_shifts_with_reflect_padding():
    img = torch.rand(1, 3, 12, 16) * 2 - 1
    expected = reflect_shift(img, tx=3, ty=-2)
    assert torch.equal(only_geometric(EXACT, img, xint=[[3.0, -2.0]]), expected)
    # The filtered resampling reproduces an integer shift up to float rounding (the filter is orthogonal).
    assert torch.allclose(only_geometric(OFFICIAL, img, xint=[[3.0, -2.0]]), expected, atol=1e-5)


def test_isotropic_scale_changes_a_centred_blob_by_the_factor():
    sigma, s = 2.5, 1.5
    b = blob(33, 33, cx=16.0, cy=16.0, sigma=sigma)
    out = only_geometric(OFFICIAL, b, scale=s)
    _, x = grid(33, 33)
    spread = float(((x - 16) ** 2 * out[0, 0]).sum() / out[0, 0].sum()) ** 0.5
    assert spread == pytest.approx(s * sigma, rel=0.02)
    assert float(out[0, 0].max()) == pytest.approx(1.0, abs=0.02)  # scaled up, not dimmed
    assert centroid(out) == pytest.approx((16 + (s - 1) * FILTER_DELAY_PX,) * 2, abs=2e-3)


def test_fractional_translation_moves_the_centroid():
    b = blob(32, 32, cx=15.5, cy=15.5, sigma=3.0)
    out = only_geometric(OFFICIAL, b, xfrac=[[0.25, -1.5]])
    assert centroid(out) == pytest.approx((15.75, 14.0), abs=2e-3)


def test_resampling_filters_match_the_shared_upfirdn2d():
    x = torch.randn(2, 3, 9, 7)
    taps = OFFICIAL.filter_taps
    f2 = torch.outer(taps, taps)
    assert torch.allclose(upsample_2x(x, taps), upsample2d(x, f2, up=2), atol=1e-5)
    y = torch.randn(2, 3, 30, 26)
    assert torch.allclose(downsample_2x(y, taps, crop=6), downsample2d(y, f2, down=2, padding=-6, flip_filter=True),
                          atol=1e-5)


# ---------------------------------------------------------------------------------------------------
# Colour transforms
# ---------------------------------------------------------------------------------------------------
def rgb_image() -> torch.Tensor:
    return torch.rand(2, 3, 5, 4) * 2 - 1


def test_brightness_adds():
    img = rgb_image()
    assert torch.allclose(only_color(img, brightness=0.3), img + 0.3, atol=1e-6)


def test_contrast_scales_about_mid_grey():
    img = rgb_image()  # images in [-1, 1]: mid grey is 0
    assert torch.allclose(only_color(img, contrast=1.7), img * 1.7, atol=1e-6)


def test_luma_flip_inverts_brightness_and_keeps_colour_differences():
    img = rgb_image()
    grey = img.mean(1, keepdim=True)
    out = only_color(img, lumaflip=1.0)
    assert torch.allclose(out, img - 2 * grey, atol=1e-6)


def test_saturation_zero_gives_grey():
    img = rgb_image()
    out = only_color(img, saturation=0.0)
    assert torch.allclose(out, img.mean(1, keepdim=True).expand_as(img), atol=1e-6)


def test_hue_rotation():
    img = rgb_image()
    assert torch.allclose(only_color(img, hue=2 * math.pi), img, atol=1e-6)
    # A third of a turn about the grey axis is a cyclic permutation of the channels: R' = B, G' = R, B' = G.
    assert torch.allclose(only_color(img, hue=2 * math.pi / 3), img.roll(1, dims=1), atol=1e-6)


def test_colour_acts_on_every_rgb_triplet_and_on_grey_images():
    pair = torch.rand(2, 6, 4, 4)
    out = only_color(pair, hue=2 * math.pi / 3, brightness=0.1)
    assert torch.allclose(out[:, 3:], only_color(pair[:, 3:], hue=2 * math.pi / 3, brightness=0.1), atol=1e-6)
    grey = torch.rand(2, 1, 4, 4)
    assert torch.allclose(only_color(grey, contrast=2.0, brightness=0.1), grey * 2 + 0.2, atol=1e-6)
    with pytest.raises(ValueError, match="multiple of 3"):
        only_color(torch.rand(1, 4, 2, 2), brightness=0.1)


def test_mask_channels_follow_the_geometry_and_get_no_colour():
    """A silhouette channel (masks=1) moves with the image and keeps its values: brightness, contrast, a luma flip
    or a hue change of a mask would be noise to D, not augmentation."""
    torch.manual_seed(0)
    img = torch.cat([torch.rand(6, 3, 16, 16) * 2 - 1, (torch.rand(6, 1, 16, 16) > 0.5).float() * 2 - 1], 1)
    full = AugmentPipe(AugmentConfig(), p=1.0)
    geometry_only = AugmentPipe(AugmentConfig(**{n: 0.0 for n in COLOR_MULTIPLIERS}), p=1.0)
    out = full(img, torch.Generator().manual_seed(5), masks=1)
    # The draws depend on the colour channels only, so the colour part is the 3-channel result ...
    assert torch.allclose(out[:, :3], full(img[:, :3], torch.Generator().manual_seed(5)), atol=1e-6)
    # ... and the mask got the same geometric transform (the colour draws come after the geometric ones).
    assert torch.allclose(out[:, 3:], geometry_only(img[:, 3:], torch.Generator().manual_seed(5)), atol=1e-6)
    colour_only = AugmentPipe(AugmentConfig(**{n: 0.0 for n in GEOMETRIC_MULTIPLIERS}), p=1.0)
    moved = colour_only(img, torch.Generator().manual_seed(1), masks=1)
    assert torch.equal(moved[:, 3:], img[:, 3:]) and not torch.allclose(moved[:, :3], img[:, :3])
    with pytest.raises(ValueError, match="masks=4 must leave at least one colour channel"):
        full(img, masks=4)
    with pytest.raises(ValueError, match="masks="):  # 4 channels as colour: not RGB triplets
        colour_only(img, torch.Generator().manual_seed(1))


# ---------------------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------------------
def test_p_zero_is_the_identity():
    for channels in (3, 6):
        img = torch.rand(4, channels, 16, 16)
        out = AugmentPipe(AugmentConfig(), p=0.0)(img, torch.Generator().manual_seed(0))
        assert torch.equal(out, img)


def test_same_generator_seed_same_output():
    pipe = AugmentPipe(AugmentConfig(), p=0.7)
    img = torch.rand(4, 3, 16, 16)
    a = pipe(img, torch.Generator().manual_seed(3))
    b = pipe(img, torch.Generator().manual_seed(3))
    c = pipe(img, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_probability_of_each_transform_is_p_times_its_multiplier():
    pipe = AugmentPipe(replace(AUGMENT_PRESETS["color"], brightness=0.5), p=0.6)
    colour = pipe.draw(4000, 3, 8, 8, torch.Generator().manual_seed(0))[1]
    assert float((colour.brightness != 0).float().mean()) == pytest.approx(0.3, abs=0.03)
    assert float((colour.contrast != 1).float().mean()) == pytest.approx(0.6, abs=0.03)


def test_gradients_reach_the_input_and_r1_double_backward_works():
    pipe = AugmentPipe(AugmentConfig(), p=1.0)
    D = torch.nn.Conv2d(3, 1, 3)
    real = torch.rand(2, 3, 16, 16).requires_grad_(True)
    logits = D(pipe(real, torch.Generator().manual_seed(1))).sum()
    (grad,) = torch.autograd.grad(logits, real, create_graph=True)  # R1 on augmented reals
    assert float(grad.detach().abs().sum()) > 0
    grad.square().sum().backward()
    assert D.weight.grad is not None and float(D.weight.grad.abs().sum()) > 0


def test_presets_and_config_checks():
    bgc = AUGMENT_PRESETS["bgc"]
    assert all(getattr(bgc, n) == 1.0 for n in ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac",
                                                "brightness", "contrast", "lumaflip", "hue", "saturation"))
    assert (bgc.scale_std, bgc.rotate_max, bgc.aniso_std, bgc.xfrac_std) == (0.2, 1.0, 0.2, 0.125)
    assert (bgc.brightness_std, bgc.contrast_std, bgc.hue_max, bgc.saturation_std) == (0.2, 0.5, 1.0, 1.0)
    assert not AUGMENT_PRESETS["bg"].color and not AUGMENT_PRESETS["color"].geometric
    with pytest.raises(ValueError, match="scale_std"):
        AugmentConfig(scale_std=-1.0)


# ---------------------------------------------------------------------------------------------------
# The adaptive p
# ---------------------------------------------------------------------------------------------------
def run_ada(p0: float, logits_of, steps: int, batch: int = 8, config: AdaConfig | None = None):
    """A toy loop: each step augments a batch of reals, a toy D scores them, p adapts; returns p per step."""
    pipe = AugmentPipe(AUGMENT_PRESETS["color"], p=p0)
    ada = AdaptiveP(config or AdaConfig(kimg=0.1))
    gen = torch.Generator().manual_seed(0)
    history = []
    for step in range(1, steps + 1):
        real = torch.full((batch, 3, 4, 4), 0.25)
        ada.accumulate(logits_of(pipe(real, gen), real))
        ada.step(pipe.p, step, batch)
        history.append(float(pipe.p))
    return history


def test_adaptive_p_rises_when_d_overfits_and_falls_when_not():
    delta = ada_adjustment(1.0, 0.6, batch=8, interval=4, kimg=0.1)
    assert delta == pytest.approx(8 * 4 / 100)
    up = run_ada(0.0, lambda aug, real: torch.ones(aug.shape[0]), steps=20)  # sign(D(real)) always +1
    assert up[2] == 0.0 and up[3] == pytest.approx(delta) and up[-1] == pytest.approx(5 * delta)
    down = run_ada(0.5, lambda aug, real: -torch.ones(aug.shape[0]), steps=20)
    assert down[3] == pytest.approx(0.5 - delta) and down[-1] == 0.0  # clamped at 0
    capped = run_ada(0.9, lambda aug, real: torch.ones(aug.shape[0]), steps=40, config=AdaConfig(kimg=0.1, p_max=1.0))
    assert max(capped) == 1.0


def test_adaptive_p_settles_where_the_heuristic_meets_the_target():
    # D calls a real "real" only when it was left unaugmented: E[sign] = 2 P(unchanged) - 1, which equals the
    # target 0.6 at P(unchanged) = 0.8, i.e. p = 0.2 for the brightness transform alone.
    def toy_d(aug, real):
        unchanged = (aug - real).flatten(1).abs().amax(1) == 0
        return torch.where(unchanged, 1.0, -1.0)

    pipe_cfg = replace(AUGMENT_PRESETS["color"], contrast=0.0, lumaflip=0.0, hue=0.0, saturation=0.0)
    pipe, ada = AugmentPipe(pipe_cfg), AdaptiveP(AdaConfig(kimg=2.0))
    gen = torch.Generator().manual_seed(0)
    tail = []
    for step in range(1, 801):
        real = torch.zeros(32, 3, 2, 2)
        ada.accumulate(toy_d(pipe(real, gen), real))
        ada.step(pipe.p, step, 32)
        tail += [float(pipe.p)] if step > 400 else []
    assert sum(tail) / len(tail) == pytest.approx(0.2, abs=0.05)


def test_ada_state_resumes_exactly(tmp_path):
    def logits(step: int) -> torch.Tensor:
        return torch.tensor([1.0, -1.0, 1.0]) if step % 3 else torch.tensor([-1.0, -1.0, 1.0])

    def train(pipe, ada, first, last):
        for step in range(first, last + 1):
            ada.accumulate(logits(step))
            ada.step(pipe.p, step, 3)

    ref_pipe, ref_ada = AugmentPipe(p=0.1), AdaptiveP(AdaConfig(kimg=0.01))
    train(ref_pipe, ref_ada, 1, 22)
    pipe, ada = AugmentPipe(p=0.1), AdaptiveP(AdaConfig(kimg=0.01))
    train(pipe, ada, 1, 10)  # stop mid-interval: the accumulators hold two steps
    torch.save({"pipe": pipe.state_dict(), "ada": ada.state_dict()}, tmp_path / "ada.pt")
    saved = torch.load(tmp_path / "ada.pt")
    assert set(saved["pipe"]) == {"p"} and set(saved["ada"]) == {"sign_sum", "sign_count"}
    pipe2, ada2 = AugmentPipe(), AdaptiveP(AdaConfig(kimg=0.01))
    pipe2.load_state_dict(saved["pipe"])
    ada2.load_state_dict(saved["ada"])
    train(pipe2, ada2, 11, 22)
    assert torch.equal(pipe2.p, ref_pipe.p) and float(ref_pipe.p) != 0.1


# ---------------------------------------------------------------------------------------------------
# Official augment_pipe
# ---------------------------------------------------------------------------------------------------
def official_state(p: float = 0.37, **settings: float) -> dict:
    """The ``__dict__`` of an official AugmentPipe as the restricted unpickler returns it (attributes, buffers,
    the persistence wrapper's init kwargs)."""
    attrs = {**asdict(AugmentConfig()), "xflip": 0.0, "scale_std": 0.3, "imgfilter": 0.0, "noise": 0.0,
             "cutout": 0.0, "imgfilter_bands": [1, 1, 1, 1], "noise_std": 0.1, "cutout_size": 0.5, **settings}
    del attrs["exact_blit"]
    taps = AugmentPipe().filter_taps.clone()
    return {"training": True, "_parameters": {}, "_modules": {}, "_non_persistent_buffers_set": set(),
            "_buffers": {"p": torch.tensor(p), "Hz_geom": taps, "Hz_fbank": torch.zeros(4, 43)},
            **attrs, "_init_args": (), "_init_kwargs": {"xflip": 0.0, "rotate90": 1.0, "scale_std": 0.3}}


def persistence_record(state: dict, class_name: str = "AugmentPipe") -> PickledObject:
    meta = {"type": "class", "version": 6, "module_src": "# not run", "class_name": class_name, "state": state}
    return PickledObject("src.torch_utils.persistence._reconstruct_persistent_obj", args=(meta,))


def test_official_augment_pipe_keeps_settings_and_p():
    for record in (persistence_record(official_state()), PickledObject("AugmentPipe", state=official_state())):
        pipe = augment_pipe_from_official(record)
        assert float(pipe.p) == pytest.approx(0.37)
        assert pipe.config == replace(AugmentConfig(), xflip=0.0, scale_std=0.3)
    assert augment_pipe_from_snapshot({"G": None, "augment_pipe": None}) is None


def test_official_augment_pipe_refusals():
    with pytest.raises(AugmentImportError, match="noise"):
        augment_pipe_from_official(persistence_record(official_state(noise=1.0)))
    with pytest.raises(AugmentImportError, match="class 'Generator'"):
        augment_pipe_from_official(persistence_record(official_state(), class_name="Generator"))
    bad_filter = official_state()
    bad_filter["_buffers"]["Hz_geom"] = torch.ones(12) / 12
    with pytest.raises(AugmentImportError, match="Hz_geom"):
        augment_pipe_from_official(persistence_record(bad_filter))


def test_reference_snapshot_augment_pipe():
    """The reference pickle written by the official code stores an AugmentPipe (ADA at p = 0)."""
    from aware3d.io.safe_unpickle import load_pickle_file
    from aware3d.models.epigraf.convert import STAND_INS

    path = require_reference("epigraf", "network-snapshot.pkl")
    pipe = augment_pipe_from_snapshot(load_pickle_file(path, stand_ins=STAND_INS), str(path))
    assert float(pipe.p) == 0.0
    assert pipe.config == replace(AUGMENT_PRESETS["bgc"], xflip=0.0)
