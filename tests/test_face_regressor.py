"""The face-coefficient regressor (training, whitening, checkpoints) and the Deep3DFaceRecon ResNet-50 importer.

The importer is tested against a state dict written here from a table of the official key names and shapes
(torchvision's ResNet-50 under ``backbone.``, seven 1x1 heads under ``final_layers.``), filled with random
values, saved with ``torch.save`` like the released ``epoch_20.pth`` and read back through the restricted
unpickler. A functional ResNet-50 written here from the official names checks that the imported network
computes the same 257 outputs, so a misplaced stride or a swapped tensor fails.
"""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
import torch.nn.functional as F

from aware3d.faces.deep3d_import import (Deep3DFaceReconNet, Deep3DWeightsNotFound, deep3d_key_map,
                                         load_deep3d_recon, read_deep3d_state)
from aware3d.faces.model import FaceCoefficients
from aware3d.faces.regressor import (REGRESSOR_WEIGHTS, CoefficientWhitening, FaceCoefficientRegressor,
                                     RegressorConfig, batch_targets, load_regressor, save_regressor, train_regressor)
from aware3d.faces.statistics import CoefficientStatistics
from aware3d.io.checkpoint import CheckpointError
from aware3d.io.keymap import CheckpointMismatchError, apply_key_map
from aware3d.io.safe_unpickle import UnsafePickleError

# ---------------------------------------------------------------------------------- the official layout

OFFICIAL_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))
"""torchvision resnet50 ``layer1..layer4``: (bottleneck width, blocks); outputs are 4x the width."""
OFFICIAL_HEAD_SIZES = (80, 64, 80, 3, 27, 2, 1)
"""``final_layers.{0..6}``: id, exp, tex, angle, gamma, tx-ty, tz."""
BN_PARTS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _bn_shapes(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{part}": (() if part == "num_batches_tracked" else (channels,)) for part in BN_PARTS}


def official_net_recon_shapes() -> dict[str, tuple[int, ...]]:
    """Every key of Deep3DFaceRecon's ``net_recon`` state dict with its shape, from the tables above."""
    shapes = {"backbone.conv1.weight": (64, 3, 7, 7), **_bn_shapes("backbone.bn1", 64)}
    channels = 64
    for layer, (width, blocks) in enumerate(OFFICIAL_STAGES, start=1):
        for block in range(blocks):
            p = f"backbone.layer{layer}.{block}"
            shapes[f"{p}.conv1.weight"] = (width, channels, 1, 1)
            shapes[f"{p}.conv2.weight"] = (width, width, 3, 3)
            shapes[f"{p}.conv3.weight"] = (4 * width, width, 1, 1)
            for i, c in ((1, width), (2, width), (3, 4 * width)):
                shapes |= _bn_shapes(f"{p}.bn{i}", c)
            if block == 0:
                shapes[f"{p}.downsample.0.weight"] = (4 * width, channels, 1, 1)
                shapes |= _bn_shapes(f"{p}.downsample.1", 4 * width)
            channels = 4 * width
    for i, size in enumerate(OFFICIAL_HEAD_SIZES):
        shapes[f"final_layers.{i}.weight"] = (size, 2048, 1, 1)
        shapes[f"final_layers.{i}.bias"] = (size,)
    return shapes


def random_official_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random float32 values in the official layout, scaled so activations stay O(1) through 50 layers."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in official_net_recon_shapes().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.randint(0, 10_000, (), generator=g, dtype=torch.int64)
        elif len(shape) == 4:  # conv weights, variance 1 / fan-in
            state[key] = torch.randn(shape, generator=g) * math.sqrt(1.0 / math.prod(shape[1:]))
        elif key.endswith(("running_var", "weight")):  # batch-norm scales and variances
            state[key] = 0.5 + torch.rand(shape, generator=g)
        else:  # biases and running means
            state[key] = 0.1 * torch.randn(shape, generator=g)
    return state


def reference_forward(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """ResNet-50 v1.5 (stride on the 3x3) + 1x1 heads, straight from the official names, in x's dtype."""
    sd = {k: v.to(x.dtype) for k, v in sd.items() if not k.endswith("num_batches_tracked")}

    def bn(h, p):
        return F.batch_norm(h, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
                            training=False, eps=1e-5)

    h = F.relu(bn(F.conv2d(x, sd["backbone.conv1.weight"], stride=2, padding=3), "backbone.bn1"))
    h = F.max_pool2d(h, 3, stride=2, padding=1)
    for layer, (_, blocks) in enumerate(OFFICIAL_STAGES, start=1):
        for block in range(blocks):
            p = f"backbone.layer{layer}.{block}"
            stride = 2 if layer > 1 and block == 0 else 1
            y = F.relu(bn(F.conv2d(h, sd[f"{p}.conv1.weight"]), f"{p}.bn1"))
            y = F.relu(bn(F.conv2d(y, sd[f"{p}.conv2.weight"], stride=stride, padding=1), f"{p}.bn2"))
            y = bn(F.conv2d(y, sd[f"{p}.conv3.weight"]), f"{p}.bn3")
            skip = bn(F.conv2d(h, sd[f"{p}.downsample.0.weight"], stride=stride), f"{p}.downsample.1") if block == 0 else h
            h = F.relu(y + skip)
    pooled = h.mean(dim=(2, 3), keepdim=True)
    return torch.cat([F.conv2d(pooled, sd[f"final_layers.{i}.weight"], sd[f"final_layers.{i}.bias"]).flatten(1)
                      for i in range(len(OFFICIAL_HEAD_SIZES))], dim=1)


@pytest.fixture(scope="module")
def official_state() -> dict[str, torch.Tensor]:
    return random_official_state()


@pytest.fixture(scope="module")
def official_file(official_state, tmp_path_factory):
    """The state dict saved like the released checkpoint: net_recon beside optimizer and scheduler state."""
    path = tmp_path_factory.mktemp("deep3d") / "epoch_20.pth"
    optimizer = {"state": {0: {"step": torch.tensor(40.0), "exp_avg": torch.zeros(3), "exp_avg_sq": torch.zeros(3)}},
                 "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0,
                                   "amsgrad": False, "params": [0]}]}
    scheduler = {"step_size": 5, "gamma": 0.2, "base_lrs": [1e-4], "last_epoch": 20, "_step_count": 21,
                 "_last_lr": [1e-5]}
    torch.save({"net_recon": official_state, "opt_00": optimizer, "sched_00": scheduler}, path)
    return path


# ---------------------------------------------------------------------------------- importer

def test_key_map_covers_the_official_layout_exactly():
    assert set(deep3d_key_map()) == set(official_net_recon_shapes())
    ours = Deep3DFaceReconNet().state_dict()
    assert sorted(deep3d_key_map().values()) == sorted(ours)


def test_import_fills_every_tensor_and_computes_the_official_outputs(official_state, official_file):
    net = load_deep3d_recon(official_file)
    ours = net.state_dict()
    for src, dst in deep3d_key_map().items():
        assert torch.equal(ours[dst], official_state[src]), src
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        expected = reference_forward(official_state, x)
        got = net.double()(x)
    assert got.shape == (2, 257)
    assert expected.abs().max() > 1e-2  # the outputs carry signal (not all heads near zero)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-10)


def test_import_reads_a_bare_state_dict_in_the_legacy_container(official_state, tmp_path, monkeypatch):
    path = tmp_path / "net_recon_only.pth"
    torch.save(official_state, path, _use_new_zipfile_serialization=False)
    monkeypatch.setenv("AWARE3D_DEEP3D_RECON", str(path))
    net = load_deep3d_recon()
    assert torch.equal(net.heads["translation_z"].bias, official_state["final_layers.6.bias"])


@pytest.mark.parametrize("change", ["unknown", "missing", "shape"])
def test_import_refuses_a_state_dict_that_does_not_fit(official_state, change):
    state = dict(official_state)
    if change == "unknown":
        state["backbone.fc.weight"] = torch.zeros(1000, 2048)
        key = "backbone.fc.weight"
    elif change == "missing":
        key = "backbone.layer3.4.bn2.running_var"
        del state[key]
    else:
        key = "final_layers.1.weight"
        state[key] = torch.zeros(63, 2048, 1, 1)
    net = Deep3DFaceReconNet()
    before = net.trunk.stem_conv.weight.clone()
    with pytest.raises(CheckpointMismatchError, match=key.replace(".", r"\.")):
        apply_key_map(net, state, deep3d_key_map(), what="epoch_20.pth")
    assert torch.equal(net.trunk.stem_conv.weight, before)  # nothing copied


def test_import_refuses_other_files_and_pickled_code(tmp_path):
    other = tmp_path / "generator.pth"
    torch.save({"w": torch.zeros(2)}, other)
    with pytest.raises(CheckpointMismatchError, match="not a Deep3DFaceRecon checkpoint"):
        read_deep3d_state(other)
    code = tmp_path / "code.pth"
    torch.save({"net_recon": {"backbone.conv1.weight": torch.zeros(1), "final_layers.0.weight": torch.zeros(1)},
                "hook": os.getcwd}, code)
    with pytest.raises(UnsafePickleError, match="getcwd"):
        read_deep3d_state(code)


def test_missing_weights_name_the_file_its_source_and_licence(tmp_path, monkeypatch):
    monkeypatch.delenv("AWARE3D_DEEP3D_RECON", raising=False)
    for given in (None, tmp_path / "nope.pth"):
        with pytest.raises(Deep3DWeightsNotFound) as err:
            load_deep3d_recon(given)
        message = str(err.value)
        for needed in ("epoch_20.pth", "face_recon_feat0.2_augment", "Deep3DFaceRecon_pytorch", "MIT", "Basel"):
            assert needed in message


def test_official_net_reconstructs_through_the_shared_interface():
    net = Deep3DFaceReconNet().eval()
    with torch.no_grad():
        for head in net.heads.values():
            head.bias.normal_(generator=torch.Generator().manual_seed(2))
        images = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(3)) * 2 - 1
        out = net.reconstruct(images)
        raw = net((images + 1) / 2)
    assert out.landmarks is None
    torch.testing.assert_close(out.coefficients.to_vector(), raw)
    assert torch.equal(out.coefficients.pose[:, 3:], raw[:, 254:257])  # translation: the tx-ty head, then tz


# ---------------------------------------------------------------------------------- regressor

SIZE = 32
TINY = RegressorConfig(image_size=SIZE, channels=(16, 32, 64), hidden=128)


def toy_batch(batch: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Images that are a smooth known function of 3 expression and 2 pose numbers: a coloured Gaussian
    blob whose centre follows the pose, size and colour the expression; 68 landmarks ring the blob."""
    e = torch.rand(batch, 3, generator=g) * 2 - 1
    p = torch.rand(batch, 2, generator=g) * 2 - 1
    centre = (SIZE - 1) / 2 + 6.0 * p                             # (B, 2) pixel xy
    sigma = 4.0 + 1.5 * e[:, 0]
    axis = torch.arange(SIZE, dtype=torch.float32)                # pixel centres (aware3d: pixel j at x = j)
    dx = axis[None, None, :] - centre[:, 0, None, None]
    dy = axis[None, :, None] - centre[:, 1, None, None]
    blob = torch.exp(-(dx ** 2 + dy ** 2) / (2 * sigma[:, None, None] ** 2))
    colour = torch.stack([0.5 + 0.4 * e[:, 1], 0.5 + 0.4 * e[:, 2], torch.full_like(e[:, 0], 0.7)], dim=1)
    images = blob[:, None] * colour[:, :, None, None] * 2 - 1
    angle = torch.linspace(0, 2 * math.pi, 69)[:-1]
    ring = torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)  # (68, 2)
    landmarks = centre[:, None, :] + sigma[:, None, None] * ring[None]
    expression = torch.zeros(batch, 64)
    expression[:, :3] = e
    pose = torch.zeros(batch, 6)
    pose[:, :2] = 0.3 * p                                        # radians
    return {"image": images, "expression": expression, "pose": pose, "landmarks": landmarks}


def toy_batches(seed: int, batch: int = 32):
    g = torch.Generator().manual_seed(seed)
    while True:
        yield toy_batch(batch, g)


def _whitened_model(seed: int = 0) -> FaceCoefficientRegressor:
    """A tiny regressor whose expression and pose whitening is fitted to toy samples (the rest: mean 0, L = I)."""
    model = FaceCoefficientRegressor(TINY, seed=seed)
    sample = toy_batch(512, torch.Generator().manual_seed(99))
    table = FaceCoefficients.zeros(512)
    table.expression, table.pose = sample["expression"], sample["pose"]
    model.whitening.set_statistics(CoefficientStatistics.fit(table), groups=("expression", "pose"))
    return model


@pytest.fixture(scope="module")
def trained():
    model = _whitened_model()
    result = train_regressor(model, toy_batches(0), steps=200, lr=3e-3, progress=False)
    return model, result


def test_training_lowers_the_loss_and_beats_the_mean_baseline(trained):
    model, result = trained
    first, last = sum(result.losses[:10]) / 10, sum(result.losses[-10:]) / 10
    assert last < 0.2 * first, (first, last)
    assert set(result.terms) == {"expression", "pose", "landmarks"}  # absent groups are left out
    held_out = toy_batch(256, torch.Generator().manual_seed(12345))
    train_mean = toy_batch(2048, torch.Generator().manual_seed(7))
    with torch.no_grad():
        out = model.reconstruct(held_out["image"])
    kept = {"expression": slice(0, 3), "pose": slice(0, 2), "landmarks": slice(None)}  # the dims the images show
    predictions = {"expression": out.coefficients.expression, "pose": out.coefficients.pose, "landmarks": out.landmarks}
    for name, dims in kept.items():
        target = held_out[name][:, dims]
        error = (predictions[name][:, dims] - target).pow(2).mean()
        baseline = (train_mean[name][:, dims].mean(0) - target).pow(2).mean()
        assert error < 0.15 * baseline, (name, float(error), float(baseline))


def test_save_load_round_trip_is_exact(trained, tmp_path):
    model, _ = trained
    path = save_regressor(model, tmp_path / "regressor", source={"dataset": "toy", "steps": 200})
    meta = json.loads((path / "config.json").read_text())
    assert meta["format"] == "aware3d-face-regressor" and meta["source"]["steps"] == 200
    loaded = load_regressor(path)
    assert loaded.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    images = toy_batch(4, torch.Generator().manual_seed(5))["image"]
    with torch.no_grad():
        a, b = model(images), loaded(images)
    assert torch.equal(a.coefficients.to_vector(), b.coefficients.to_vector())
    assert torch.equal(a.landmarks, b.landmarks)
    (path / REGRESSOR_WEIGHTS).unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_regressor(path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"format": "aware3d-generator", "version": 1}))
    with pytest.raises(CheckpointError, match="aware3d-face-regressor"):
        load_regressor(tmp_path / "other")


def test_training_is_seeded_and_repeatable():
    runs = []
    for _ in range(2):
        model = _whitened_model(seed=3)
        result = train_regressor(model, toy_batches(1, batch=8), steps=4, lr=1e-3, image_noise=0.05, seed=11,
                                 progress=False)
        runs.append((result.losses, model.heads["pose"].weight.detach().clone()))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])
    other = _whitened_model(seed=3)
    losses = train_regressor(other, toy_batches(1, batch=8), steps=4, lr=1e-3, image_noise=0.05, seed=12,
                             progress=False).losses
    assert losses != runs[0][0]  # the noise seed matters
    with pytest.raises(ValueError, match="ran out after 2 of 4"):
        train_regressor(_whitened_model(), iter([toy_batch(2, torch.Generator())] * 2), steps=4, progress=False)


def test_untrained_regressor_predicts_the_whitening_mean_and_the_image_centre():
    model = _whitened_model().eval()
    images = torch.zeros(2, 3, 40, 48)  # not the network's size: landmarks are pixels of this image
    with torch.no_grad():
        out = model.reconstruct(images)
    mean, _ = model.whitening.statistics("pose")
    torch.testing.assert_close(out.coefficients.pose, mean.expand(2, -1))
    assert torch.equal(out.coefficients.identity, torch.zeros(2, 80))
    torch.testing.assert_close(out.landmarks, torch.tensor([23.5, 19.5]).expand(2, 68, 2))  # ((W-1)/2, (H-1)/2)


def test_whitening_matches_the_fitted_statistics_and_checks_its_factor():
    g = torch.Generator().manual_seed(4)
    mixing = torch.eye(6) + 0.5 * torch.randn(6, 6, generator=g)
    table = FaceCoefficients.zeros(4000, dtype=torch.float64)
    table.pose = (torch.randn(4000, 6, generator=g) @ mixing.T + torch.arange(6.0)).double()
    statistics = CoefficientStatistics.fit(table, jitter=1e-12)  # the other groups are constant
    whitening = CoefficientWhitening().double()
    whitening.set_statistics(statistics, groups=["pose"])
    codes = whitening.whiten("pose", table.pose)
    torch.testing.assert_close(codes, statistics.groups["pose"].whiten(table.pose), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(torch.cov(codes.T), torch.eye(6, dtype=torch.float64), atol=1e-9, rtol=0)
    torch.testing.assert_close(whitening.unwhiten("pose", codes), table.pose, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(whitening.unwhiten("identity", codes[:, :1].expand(-1, 80)), codes[:, :1].expand(-1, 80))
    mean, factor = whitening.statistics("pose")
    with pytest.raises(ValueError, match="lower triangular"):
        whitening.set_group("pose", mean, factor.T)
    with pytest.raises(ValueError, match=r"\(6,\)"):
        whitening.set_group("pose", torch.zeros(5), factor)


def test_batch_targets_split_the_257_vector_and_let_groups_override():
    g = torch.Generator().manual_seed(6)
    vector = torch.randn(3, 257, generator=g)
    pose = torch.randn(3, 6, generator=g)
    targets = batch_targets({"coefficients": vector, "pose": pose})
    split = FaceCoefficients.from_vector(vector)
    assert torch.equal(targets["identity"], vector[:, :80]) and torch.equal(targets["lighting"], split.lighting)
    assert torch.equal(targets["pose"], pose)
    with pytest.raises(ValueError, match=r"\(B, 64\)"):
        batch_targets({"expression": torch.zeros(3, 63)})
