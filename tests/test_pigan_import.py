"""Official-checkpoint import safety: hostile pickles are refused before anything runs; mismatches are listed."""

import os
import pickle
import sys
import types

import pytest
import torch
from torch import nn

from aware3d.io.keymap import CheckpointMismatchError, apply_key_map
from aware3d.io.safe_unpickle import UnsafePickleError
from aware3d.models.pigan import PIGAN_PRESETS, PiGANGenerator
from aware3d.models.pigan.convert import import_official_pigan


class _Payload:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_malicious_generator_pth_is_refused_and_never_runs(tmp_path):
    target = tmp_path / "pwned"
    path = tmp_path / "generator.pth"
    torch.save({"siren": _Payload(target), "w": torch.zeros(2)}, path)
    with pytest.raises(UnsafePickleError, match="system"):
        import_official_pigan(path)
    assert not target.exists()
    plain = tmp_path / "plain.pth"
    with open(plain, "wb") as f:
        pickle.dump(_Payload(target), f)
    with pytest.raises((UnsafePickleError, pickle.UnpicklingError, ValueError)):
        import_official_pigan(plain)
    assert not target.exists()


def _fake_official_generator(tmp_path, hidden=16, layers=3):
    """A module tree shaped like the official ImplicitGenerator3d, pickled under the official names."""
    mods = {name: types.ModuleType(name) for name in ["generators", "generators.generators", "siren", "siren.siren"]}

    class FiLMLayer(nn.Module):
        def __init__(self, i, o):
            super().__init__()
            self.layer = nn.Linear(i, o)

    class CustomMappingNetwork(nn.Module):
        def __init__(self, z, h, o):
            super().__init__()
            self.network = nn.Sequential(nn.Linear(z, h), nn.LeakyReLU(0.2), nn.Linear(h, h), nn.LeakyReLU(0.2),
                                         nn.Linear(h, o))

    class UniformBoxWarp(nn.Module):
        def __init__(self, s):
            super().__init__()
            self.scale_factor = 2 / s

    class SPATIALSIRENBASELINE(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden_dim = hidden
            self.network = nn.ModuleList([FiLMLayer(3 if i == 0 else hidden, hidden) for i in range(layers)])
            self.final_layer = nn.Linear(hidden, 1)
            self.color_layer_sine = FiLMLayer(hidden + 3, hidden)
            self.color_layer_linear = nn.Sequential(nn.Linear(hidden, 3), nn.Sigmoid())
            self.mapping_network = CustomMappingNetwork(8, hidden, 2 * (layers + 1) * hidden)
            self.gridwarper = UniformBoxWarp(0.24)

    class ImplicitGenerator3d(nn.Module):
        def __init__(self):
            super().__init__()
            self.z_dim = 8
            self.siren = SPATIALSIRENBASELINE()
            self.avg_frequencies = torch.zeros(1, (layers + 1) * hidden)

    for cls, mod in [(FiLMLayer, "siren.siren"), (CustomMappingNetwork, "siren.siren"), (UniformBoxWarp, "siren.siren"),
                     (SPATIALSIRENBASELINE, "siren.siren"), (ImplicitGenerator3d, "generators.generators")]:
        cls.__module__, cls.__qualname__ = mod, cls.__name__
        setattr(mods[mod], cls.__name__, cls)
    sys.modules.update(mods)
    try:
        g = ImplicitGenerator3d()
        torch.save(g, tmp_path / "generator.pth")
    finally:
        for name in mods:
            sys.modules.pop(name, None)
    return g


def test_import_of_a_small_official_style_generator(tmp_path):
    g = _fake_official_generator(tmp_path)
    G = import_official_pigan(tmp_path / "generator.pth", preset="pigan-celeba")
    assert G.config.hidden_dim == 16 and G.config.num_film_layers == 3 and G.config.z_dim == 8
    assert G.config.mapping_layers == 2
    assert torch.equal(G.field.film[2].linear.weight, g.siren.network[2].layer.weight)
    assert torch.equal(G.mapping_network.layers[2].bias, g.siren.mapping_network.network[4].bias)
    z = torch.randn(2, 8)
    with torch.no_grad():
        assert torch.equal(G.mapping(z), g.siren.mapping_network.network(z))


def test_wrong_ema_file_is_rejected(tmp_path):
    _fake_official_generator(tmp_path)
    torch.save({"not": "an ema"}, tmp_path / "bad_ema.pth")
    with pytest.raises(CheckpointMismatchError, match="shadow_params"):
        import_official_pigan(tmp_path / "generator.pth", ema_path=tmp_path / "bad_ema.pth", preset="pigan-celeba")
    with pytest.raises(FileNotFoundError, match="missing_ema.pth"):
        import_official_pigan(tmp_path / "generator.pth", ema_path=tmp_path / "missing_ema.pth", preset="pigan-celeba")


def test_key_map_lists_every_problem():
    G = PiGANGenerator(PIGAN_PRESETS["pigan-tiny"])
    src = {"a": torch.zeros(3), "field.sigma_head.bias": torch.zeros(5)}
    with pytest.raises(CheckpointMismatchError) as e:
        apply_key_map(G, src, {"field.sigma_head.bias": "field.sigma_head.bias", "missing": "field.sigma_head.weight"})
    msg = str(e.value)
    assert "unexpected keys in checkpoint: a" in msg
    assert "keys missing" in msg and "missing" in msg
    assert "shape mismatch" in msg and "not filled" in msg and "mapping_network.layers.0.weight" in msg
