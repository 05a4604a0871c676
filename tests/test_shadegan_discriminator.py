"""The official ProgressiveEncoderDiscriminator as our shared progressive discriminator (fixture README,
"Discriminator" case): the seeded official weights mapped to our names, and its outputs at 32 and 64 px for
alpha 0, 0.5 and 1 (rtol 1e-4 of each tensor's max, the README's tolerance)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from aware3d.io.keymap import CheckpointMismatchError
from aware3d.models.shadegan.official_discriminator import (
    OFFICIAL_ENCODER_DISCRIMINATOR,
    discriminator_from_official_state,
    load_official_discriminator,
    official_discriminator_key_map,
)
from aware3d.nn.progressive_discriminator import (
    CoordConv2d,
    ProgressiveDiscriminator,
    ProgressiveDiscriminatorConfig,
)

from .conftest import require_reference


def seeded_official_state() -> dict[str, torch.Tensor]:
    """The fixture's synthetic weights in official names: ``torch.manual_seed(170)``, then in the official
    ``named_parameters()`` order ``randn(shape) / sqrt(p[0].numel())`` for weights, ``randn(shape) * 0.05``
    for biases; checked against the stored float64 sums."""
    settings = json.loads(require_reference("shadegan", "fixture_settings.json").read_text())["discriminator"]
    gen = torch.Generator().manual_seed(170)
    state = {}
    for name, shape in settings["param_order"]:
        if len(shape) > 1:
            state[name] = torch.randn(shape, generator=gen) / math.sqrt(math.prod(shape[1:]))
        else:
            state[name] = torch.randn(shape, generator=gen) * 0.05
        expected = settings["param_sums"][name]
        assert state[name].double().sum().item() == pytest.approx(expected, rel=1e-9, abs=1e-9), name
    return state


@pytest.fixture(scope="module")
def fixture():
    return torch.load(require_reference("shadegan", "fixture.pt"), weights_only=True)


@pytest.fixture(scope="module")
def official_D():
    return discriminator_from_official_state(seeded_official_state()).eval()


def test_layout_matches_the_official_class(official_D):
    settings = json.loads(require_reference("shadegan", "fixture_settings.json").read_text())["discriminator"]
    ours = list(official_D.named_parameters())
    assert len(ours) == 62 and sum(p.numel() for _, p in ours) == settings["num_params"] == 12_825_523
    # The key map pairs names in the same order as both modules enumerate their parameters.
    key_map = official_discriminator_key_map(official_D)
    assert [key_map[n] for n, _ in settings["param_order"]] == [n for n, _ in ours]
    assert [list(p.shape) for _, p in ours] == [s for _, s in settings["param_order"]]


@pytest.mark.parametrize("res", [32, 64])
@pytest.mark.parametrize("alpha", ["0.0", "0.5", "1.0"])
def test_outputs_match_the_official_discriminator(official_D, fixture, res, alpha):
    with torch.no_grad():
        out = official_D(fixture[f"disc.in{res}"], float(alpha))
    for key, ours in (("prediction", out.logits), ("latent", out.latent), ("position", out.pose)):
        ref = fixture[f"disc.in{res}.alpha{alpha}.{key}"]
        assert ours.shape == ref.shape, key
        err, scale = (ours - ref).abs().max(), ref.abs().max()
        assert err <= 1e-4 * scale, f"{key}: max abs diff {err:.3e} > 1e-4 x {scale:.3e}"


def test_the_coordinate_order_matters(fixture):
    """With our strided default's order (columns first) the same weights give other outputs: the official
    AddCoords puts the row coordinate first."""
    D = discriminator_from_official_state(seeded_official_state(),
                                          config=replace(OFFICIAL_ENCODER_DISCRIMINATOR, coordinate_order="cols_rows"))
    with torch.no_grad():
        logits = D(fixture["disc.in32"], 1.0).logits
    assert (logits - fixture["disc.in32.alpha1.0.prediction"]).abs().max() > 1e-3


def test_loads_an_official_discriminator_file_and_rejects_others(tmp_path, fixture):
    state = seeded_official_state()
    path = tmp_path / "discriminator.pth"
    torch.save(state, path)
    D = load_official_discriminator(path)
    assert all(torch.equal(D.state_dict()[dst], state[src]) for src, dst in official_discriminator_key_map(D).items())
    bad = dict(state, **{"encode_layer.weight": torch.zeros(4612, 400, 2, 2)})
    bad["layers.5.proj.weight"] = torch.zeros(400, 400, 1, 1)
    bad["final_layer.bias"] = torch.zeros(3)
    del bad["fromRGB.8.model.0.bias"]
    torch.save(bad, path)
    with pytest.raises(CheckpointMismatchError) as err:
        load_official_discriminator(path)
    for text in ("encode_layer.weight", "layers.5.proj.weight", "fromRGB.8.model.0.bias", "final_layer.bias"):
        assert text in str(err.value)
    torch.save(torch.nn.Linear(2, 2), path)  # a pickled module, not a state_dict: refused, nothing executed
    with pytest.raises(CheckpointMismatchError, match="not an official discriminator.pth"):
        load_official_discriminator(path)


def test_always_blend_gives_the_same_outputs_and_a_zero_gradient():
    cfg = ProgressiveDiscriminatorConfig(max_resolution=32, channel_base=256, channel_max=32, latent_dim=3,
                                         downsample="avgpool", coordinate_order="rows_cols")
    torch.manual_seed(0)
    skip_at_one = ProgressiveDiscriminator(cfg)
    blend = ProgressiveDiscriminator(replace(cfg, always_blend=True))
    blend.load_state_dict(skip_at_one.state_dict())
    x = torch.randn(2, 3, 16, 16)
    a, b = skip_at_one(x, 1.0), blend(x, 1.0)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.pose, b.pose)
    (a.logits.sum() + b.logits.sum()).backward()
    half = skip_at_one.input_resolutions.index(8)
    assert skip_at_one.from_rgb[half].conv.weight.grad is None
    assert torch.equal(blend.from_rgb[half].conv.weight.grad, torch.zeros_like(blend.from_rgb[half].conv.weight))
    assert blend(torch.randn(1, 3, 2, 2)).logits.shape == (1, 1)  # the pooled layout's 2 px adapter
    with pytest.raises(ValueError, match="size in"):
        skip_at_one(torch.randn(1, 3, 24, 24))


def test_the_strided_default_keeps_its_coordinates_and_names():
    """Existing configs and checkpoints keep their meaning: columns first (linspace), strided blocks."""
    conv = CoordConv2d(1, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.0, 1.0, 10.0]).view(1, 3, 1, 1))
    out = conv(torch.zeros(1, 1, 3, 5))[0, 0]
    expected = torch.linspace(-1, 1, 5)[None, :] + 10 * torch.linspace(-1, 1, 3)[:, None]
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    D = ProgressiveDiscriminator(ProgressiveDiscriminatorConfig(max_resolution=16, channel_base=64, channel_max=8))
    assert D.input_resolutions == D.resolutions == [16, 8, 4]
    assert {n.split(".", 1)[1] for n, _ in D.blocks.named_parameters()} >= {"conv1.weight", "shortcut.weight"}
    assert D.blocks[0].conv1.stride == (2, 2) and D.blocks[0].shortcut.stride == (2, 2)
