"""LPIPS-VGG (aware3d.nn.lpips): loading stand-in files in the published layouts, the metric's formula,
gradients, and the errors for missing, foreign and unsafe files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from aware3d.io.safe_unpickle import UnsafePickleError
from aware3d.nn.lpips import (INPUT_SCALE, INPUT_SHIFT, LPIPS_LIN_ENV, LPIPS_LIN_FILE, LPIPS_REPO_URL, TAP_CHANNELS,
                              TAP_INDICES, VGG16_ENV, VGG16_FILE_NAME, VGG16_URL, LPIPSConfig, LPIPSFormatError,
                              LPIPSWeightsNotFound, lin_head_key, load_lpips, load_lpips_from_config, scale_input,
                              tap_distance, vgg16_feature_shapes)

pytestmark = pytest.mark.usefixtures("one_thread")

CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
"""torchvision's VGG16 ``features`` indices of the 13 convolutions."""
POOL_AFTER = (2, 7, 14, 21)
"""Convolutions whose ReLU output is max-pooled next."""


def _vgg_stand_in(seed: int = 1) -> dict[str, torch.Tensor]:
    """Random He-scaled weights of the true shapes under torchvision's keys, plus small classifier tensors
    (their real shapes are irrelevant: the loader ignores them)."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for i in CONV_INDICES:
        cout, cin = vgg16_feature_shapes()[f"features.{i}.weight"][:2]
        state[f"features.{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * (2.0 / (9 * cin)) ** 0.5
        state[f"features.{i}.bias"] = torch.randn(cout, generator=g) * 0.01
    for i in (0, 3, 6):
        state[f"classifier.{i}.weight"] = torch.randn(4, 3, generator=g)
        state[f"classifier.{i}.bias"] = torch.randn(4, generator=g)
    return state


def _lin_stand_in(seed: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {lin_head_key(k): torch.rand(1, c, 1, 1, generator=g) for k, c in enumerate(TAP_CHANNELS)}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("lpips")
    vgg, lin = _vgg_stand_in(), _lin_stand_in()
    torch.save(vgg, folder / VGG16_FILE_NAME)
    torch.save(lin, folder / "vgg.pth")
    return {"vgg": vgg, "lin": lin, "vgg_path": folder / VGG16_FILE_NAME, "lin_path": folder / "vgg.pth"}


@pytest.fixture(scope="module")
def metric(weights):
    return load_lpips(weights["vgg_path"], weights["lin_path"])


def _images(seed: int, batch: int = 2, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=g) * 2 - 1


def _direct_lpips(vgg: dict, lin: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The definition written out with plain ops, independently of the module: (B,) float64."""
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)

    def taps(img):
        h, out = (img.double() - shift) / scale, []
        for i in CONV_INDICES:
            h = torch.relu(F.conv2d(h, vgg[f"features.{i}.weight"].double(), vgg[f"features.{i}.bias"].double(),
                                    padding=1))
            if i in POOL_AFTER or i == CONV_INDICES[-1]:
                out.append(h)
            if i in POOL_AFTER:
                h = F.max_pool2d(h, 2)
        return out

    total = torch.zeros(x.shape[0], dtype=torch.float64)
    for k, (fx, fy) in enumerate(zip(taps(x), taps(y))):
        nx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        ny = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        w = lin[lin_head_key(k)].double().view(1, -1, 1, 1)
        total += ((nx - ny) ** 2 * w).sum(1).mean(dim=(1, 2))
    return total


# --------------------------------------------------------------------------------------------- metric

def test_distance_of_an_image_to_itself_is_zero_and_symmetric_and_positive_otherwise(metric):
    x, y = _images(0), _images(1)
    assert torch.equal(metric(x, x), torch.zeros(2))
    d_xy, d_yx = metric(x, y), metric(y, x)
    assert d_xy.shape == (2,)
    assert torch.equal(d_xy, d_yx)
    assert (d_xy > 1e-3).all()


def test_distance_matches_the_definition_computed_directly(metric, weights):
    x, y = _images(2), _images(3)
    expected = _direct_lpips(weights["vgg"], weights["lin"], x, y)
    torch.testing.assert_close(metric(x, y).double(), expected, rtol=1e-4, atol=1e-6)


def test_one_tap_term_matches_explicit_sums():
    g = torch.Generator().manual_seed(4)
    fx, fy = torch.rand(2, 5, 3, 4, generator=g), torch.rand(2, 5, 3, 4, generator=g)
    head = torch.rand(1, 5, 1, 1, generator=g)
    expected = torch.zeros(2, dtype=torch.float64)
    for b in range(2):
        for i in range(3):
            for j in range(4):
                ux = fx[b, :, i, j].double() / (fx[b, :, i, j].double().norm() + 1e-10)
                uy = fy[b, :, i, j].double() / (fy[b, :, i, j].double().norm() + 1e-10)
                expected[b] += (head.flatten().double() * (ux - uy) ** 2).sum() / 12
    torch.testing.assert_close(tap_distance(fx, fy, head).double(), expected, rtol=1e-5, atol=1e-7)


def test_taps_have_vgg16_widths_and_resolutions(metric):
    taps = metric.vgg(scale_input(_images(5, batch=1)))
    assert TAP_INDICES == (3, 8, 15, 22, 29)
    assert [tuple(t.shape[1:]) for t in taps] == [(c, 32 >> k, 32 >> k) for k, c in enumerate(TAP_CHANNELS)]
    assert sum(p.numel() for p in metric.vgg.parameters()) == 14_714_688  # torchvision's vgg16().features


def test_input_scaling_constants():
    shift = torch.tensor(INPUT_SHIFT).view(1, 3, 1, 1)
    scale = torch.tensor(INPUT_SCALE).view(1, 3, 1, 1)
    assert INPUT_SHIFT == (-0.030, -0.088, -0.188) and INPUT_SCALE == (0.458, 0.448, 0.450)
    torch.testing.assert_close(scale_input(shift.expand(1, 3, 2, 2)), torch.zeros(1, 3, 2, 2))
    torch.testing.assert_close(scale_input((shift + scale).expand(1, 3, 2, 2)), torch.ones(1, 3, 2, 2))


def test_one_channel_images_broadcast_to_three(metric):
    x, y = _images(6)[:, :1], _images(7)[:, :1]
    torch.testing.assert_close(metric(x, y), metric(x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)))


def test_gradient_reaches_the_input_and_not_the_weights(metric):
    x, y = _images(8).requires_grad_(True), _images(9)
    metric(x, y).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in metric.parameters())
    assert not metric.training


def test_train_mode_changes_nothing(metric):
    x, y = _images(10), _images(11)
    before = metric(x, y)
    metric.train()
    try:
        assert torch.equal(metric(x, y), before)
    finally:
        metric.eval()


def test_an_all_zero_tap_adds_nothing_and_keeps_gradients_finite(tmp_path, weights):
    vgg = dict(weights["vgg"])
    vgg["features.28.bias"] = torch.full((512,), -1e4)  # relu5_3 is zero everywhere
    torch.save(vgg, tmp_path / VGG16_FILE_NAME)
    m = load_lpips(tmp_path / VGG16_FILE_NAME, weights["lin_path"])
    x, y = _images(12).requires_grad_(True), _images(13)
    terms = m.distance_per_tap(x, y)
    assert torch.equal(terms[4], torch.zeros(2))
    sum(terms).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_bad_inputs_are_refused(metric):
    with pytest.raises(ValueError, match="one shape"):
        metric(_images(0), _images(1, size=48))
    with pytest.raises(ValueError, match="at least 16x16"):
        metric(_images(0, size=8), _images(1, size=8))


# ---------------------------------------------------------------------------------------------- files

def test_config_and_environment_variables_give_the_same_metric(weights, monkeypatch, metric):
    x, y = _images(14), _images(15)
    from_config = load_lpips_from_config(LPIPSConfig(str(weights["vgg_path"]), str(weights["lin_path"])))
    monkeypatch.setenv(VGG16_ENV, str(weights["vgg_path"]))
    monkeypatch.setenv(LPIPS_LIN_ENV, str(weights["lin_path"]))
    from_env = load_lpips()
    assert torch.equal(from_config(x, y), metric(x, y)) and torch.equal(from_env(x, y), metric(x, y))


def test_missing_files_are_each_named_with_source_and_licence(tmp_path, weights, monkeypatch):
    monkeypatch.delenv(VGG16_ENV, raising=False)
    monkeypatch.delenv(LPIPS_LIN_ENV, raising=False)
    vgg, lin = tmp_path / VGG16_FILE_NAME, tmp_path / "vgg.pth"
    with pytest.raises(LPIPSWeightsNotFound) as e:
        load_lpips(vgg, lin)
    assert isinstance(e.value, FileNotFoundError)
    for part in (str(vgg), str(lin), VGG16_URL, LPIPS_LIN_FILE, LPIPS_REPO_URL, "CC BY 4.0", "BSD-3-Clause",
                 "BSD-2-Clause", VGG16_ENV, LPIPS_LIN_ENV):
        assert part in str(e.value), part
    with pytest.raises(LPIPSWeightsNotFound) as e:
        load_lpips(weights["vgg_path"], lin)
    assert str(lin) in str(e.value) and str(weights["vgg_path"]) not in str(e.value)
    with pytest.raises(LPIPSWeightsNotFound, match="no VGG16 file was given"):
        load_lpips(None, weights["lin_path"])


def test_classifier_keys_are_ignored(tmp_path, weights, metric):
    trunk_only = {k: v for k, v in weights["vgg"].items() if k.startswith("features.")}
    torch.save(trunk_only, tmp_path / "trunk.pth")
    x, y = _images(16), _images(17)
    assert torch.equal(load_lpips(tmp_path / "trunk.pth", weights["lin_path"])(x, y), metric(x, y))


def _edit(state: dict, drop: str | None = None, **put: torch.Tensor) -> dict:
    out = {k: v for k, v in state.items() if k != drop}
    out.update({k.replace("__", "."): v for k, v in put.items()})
    return out


@pytest.mark.parametrize("edit, message", [
    (lambda s: _edit(s, drop="features.28.bias"), "1 missing .*features.28.bias"),
    (lambda s: _edit(s, features__30__weight=torch.zeros(3)), "1 unknown .*features.30.weight"),
    (lambda s: _edit(s, fc__weight=torch.zeros(3)), "1 unknown .*fc.weight"),
    (lambda s: _edit(s, features__0__weight=torch.zeros(64, 3, 5, 5)), r"features.0.weight \(64, 3, 5, 5\)"),
    (lambda s: _edit(s, features__0__bias=torch.zeros(64, dtype=torch.long)), "not finite floats"),
])
def test_foreign_vgg_files_are_refused(tmp_path, weights, edit, message):
    torch.save(edit(weights["vgg"]), tmp_path / "bad.pth")
    with pytest.raises(LPIPSFormatError, match=message):
        load_lpips(tmp_path / "bad.pth", weights["lin_path"])


@pytest.mark.parametrize("edit, message", [
    (lambda s: _edit(s, drop="lin4.model.1.weight"), "1 missing .*lin4.model.1.weight"),
    (lambda s: _edit(s, lin5__model__1__weight=torch.zeros(1, 8, 1, 1)), "1 unknown .*lin5.model.1.weight"),
    (lambda s: _edit(s, lin2__model__1__weight=torch.zeros(1, 128, 1, 1)), r"lin2.model.1.weight \(1, 128, 1, 1\)"),
    (lambda s: _edit(s, lin0__model__1__weight=-torch.ones(1, 64, 1, 1)), "non-negative"),
])
def test_foreign_head_files_are_refused(tmp_path, weights, edit, message):
    torch.save(edit(weights["lin"]), tmp_path / "bad.pth")
    with pytest.raises(LPIPSFormatError, match=message):
        load_lpips(weights["vgg_path"], tmp_path / "bad.pth")


def test_files_that_are_not_state_dicts_are_refused(tmp_path, weights):
    (tmp_path / "noise.pth").write_bytes(os.urandom(256))
    with pytest.raises(LPIPSFormatError, match="not a torch.save state dict"):
        load_lpips(weights["vgg_path"], tmp_path / "noise.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(LPIPSFormatError, match="state dict of named tensors"):
        load_lpips(weights["vgg_path"], tmp_path / "list.pth")


def test_legacy_torch_save_format_loads(tmp_path, weights, metric):
    # The published heads file predates torch's zip format; the loader reads both.
    torch.save(weights["lin"], tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    x, y = _images(18), _images(19)
    assert torch.equal(load_lpips(weights["vgg_path"], tmp_path / "legacy.pth")(x, y), metric(x, y))


class _RunsCode:
    """Pickles as a call of os.system: loading it with plain pickle would run the command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_carries_code_is_refused_unexecuted(tmp_path, weights):
    marker = tmp_path / "ran"
    state = dict(weights["lin"])
    state["lin0.model.1.weight"] = _RunsCode(marker)
    torch.save(state, tmp_path / "evil.pth")
    with pytest.raises(UnsafePickleError, match="system"):
        load_lpips(weights["vgg_path"], tmp_path / "evil.pth")
    assert not marker.exists()
