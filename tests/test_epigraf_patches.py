"""Patch samplers and real-patch extraction (aware3d.rendering.patches, aware3d.models.epigraf.patches).

Parity with the official ``sample_patch_params`` / ``extract_patches`` (fixture: $AWARE3D_REFERENCE/epigraf,
README section 5/7, tolerance 1e-6 on patch params and real patches; ours are bit-exact), a hand-computed bilinear
case, the annealing schedules and sampler statistics.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aware3d.models.epigraf import PatchParams
from aware3d.models.epigraf.cameras import ndc_coordinates
from aware3d.models.epigraf.patches import real_patches, sample_patches, sampler_config_from_official
from aware3d.rendering.patches import (
    PatchSamplerConfig,
    annealed_parameters,
    extract_patches,
    linear_schedule,
    patch_grid,
    sample_patch_params,
)
from tests.conftest import require_reference


@pytest.fixture(scope="module")
def fixture():
    return torch.load(require_reference("epigraf", "fixture.pt"), weights_only=True)


@pytest.fixture(scope="module")
def official_patch_cfg():
    return json.loads(require_reference("epigraf", "fixture.json").read_text())["cases"]["patch_cfg_initial"]


def _real(fx, n):
    return (fx["real_image_u8"].float() / 127.5 - 1)[None].repeat(n, 1, 1, 1)


def test_beta_sampler_reproduces_the_official_draws(fixture, official_patch_cfg):
    cfg = sampler_config_from_official(official_patch_cfg)
    assert cfg == PatchSamplerConfig()  # the FFHQ-512 options are our defaults
    for i, kimg in enumerate(fixture["patchdist_kimgs"].tolist()):
        beta, _ = annealed_parameters(cfg, kimg)
        assert beta == pytest.approx(float(fixture["patchdist_betas"][i]), abs=1e-12)
        rng = np.random.RandomState(100 + i)  # = np.random.seed(100 + i) of the official run
        assert np.array_equal(np.random.RandomState(100 + i).beta(1.0, beta, 16),
                              fixture[f"patchdist_kimg{int(kimg)}_beta_draws"].numpy())
        torch.manual_seed(200 + i)
        patch = sample_patches(64, cfg, kimg, rng)
        assert torch.equal(patch.scales, fixture[f"patchdist_kimg{int(kimg)}_scales"])
        assert torch.equal(patch.offsets, fixture[f"patchdist_kimg{int(kimg)}_offsets"])


def test_injected_torch_generator_and_global_numpy_source():
    cfg = PatchSamplerConfig()
    np.random.seed(7)
    a = sample_patch_params(8, cfg, 5000, None, torch.Generator().manual_seed(3))
    b = sample_patch_params(8, cfg, 5000, np.random.RandomState(7), torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_schedules_match_the_official_ones(fixture):
    cfg = PatchSamplerConfig()
    for kimg, beta in zip(fixture["beta_schedule_kimg"].tolist(), fixture["beta_schedule_beta"].tolist()):
        assert annealed_parameters(cfg, kimg)[0] == pytest.approx(beta, abs=1e-12)
    assert linear_schedule(-1, 1.0, 0.5, 10) == 1.0 and linear_schedule(11, 1.0, 0.5, 10) == 0.5
    uniform = PatchSamplerConfig(distribution="uniform")
    assert annealed_parameters(uniform, 0)[1] == 1.0 and annealed_parameters(uniform, 5000)[1] == pytest.approx(0.5625)
    assert annealed_parameters(uniform, 20000)[1] == 0.125


def test_real_patches_match_the_official_extraction(fixture):
    s, o = fixture["realpatch_scales"], fixture["realpatch_offsets"]
    grid = patch_grid(s, o, 64)
    assert torch.allclose(grid[:, ::7, ::7], fixture["realpatch_coords_sub7"], atol=1e-6, rtol=0)
    patches = real_patches(_real(fixture, 6), PatchParams(s, o), 64)
    assert torch.allclose(patches, fixture["realpatch_image"], atol=1e-6, rtol=0)
    # The loss's sampled real patches: one group of 4 at kimg 2500.
    torch.manual_seed(301)
    patch = sample_patches(4, PatchSamplerConfig(), 2500, np.random.RandomState(300))
    assert torch.equal(patch.scales, fixture["realpatch_sampled_scales"])
    assert torch.equal(patch.offsets, fixture["realpatch_sampled_offsets"])
    assert torch.allclose(real_patches(_real(fixture, 4), patch, 64), fixture["realpatch_sampled_image"], atol=1e-6)


def test_hand_computed_bilinear_patch():
    img = torch.arange(9.0).reshape(1, 1, 3, 3)
    # Scale 0.5, offset 0.25: samples at pixel rows/cols 0.5, 1, 1.5 (align_corners=True on a 3-pixel image).
    out = extract_patches(img, torch.tensor([[0.5, 0.5]]), torch.tensor([[0.25, 0.25]]), 3)[0, 0]
    expected = torch.tensor([[2.0, 2.5, 3.0], [3.5, 4.0, 4.5], [5.0, 5.5, 6.0]])
    assert torch.allclose(out, expected, atol=1e-6)
    # Offset y counts from the bottom: (0, 0.5) with scale 0.5 is the top-left quarter.
    top_left = extract_patches(img, torch.tensor([[0.5, 0.5]]), torch.tensor([[0.0, 0.5]]), 3)[0, 0]
    assert torch.allclose(top_left, torch.tensor([[0.0, 0.5, 1.0], [1.5, 2.0, 2.5], [3.0, 3.5, 4.0]]), atol=1e-6)
    # Full patch at the image resolution is the image itself.
    assert torch.equal(extract_patches(img, torch.ones(1, 2), torch.zeros(1, 2), 3), img)


def test_patch_grid_is_where_patch_rays_go():
    s = torch.tensor([[0.25, 0.25], [0.6, 0.3]])
    o = torch.tensor([[0.3, 0.6], [0.1, 0.4]])
    grid = patch_grid(s, o, 16)
    x, y = ndc_coordinates(2, 16, PatchParams(s, o))
    assert torch.allclose(grid[..., 0].reshape(2, -1), x, atol=1e-6)
    assert torch.allclose(-grid[..., 1].reshape(2, -1), y, atol=1e-6)


@pytest.mark.parametrize("dist", ["beta", "uniform", "discrete_uniform", "full"])
def test_sampler_statistics(dist):
    cfg = PatchSamplerConfig(distribution=dist)
    kimg = 20000  # fully annealed
    s, o = sample_patch_params(4000, cfg, kimg, np.random.RandomState(0), torch.Generator().manual_seed(0))
    assert s.shape == o.shape == (4000, 2) and s.dtype == o.dtype == torch.float32
    groups_s, groups_o = s.view(1000, 4, 2), o.view(1000, 4, 2)
    assert (groups_s == groups_s[:, :1]).all() and (groups_o == groups_o[:, :1]).all()  # shared per group
    assert torch.equal(s[:, 0], s[:, 1])  # square
    assert (s >= 0.125).all() and (s <= 1).all() and (o >= 0).all() and (o + s <= 1 + 1e-6).all()
    scale = groups_s[:, 0, 0].double()
    if dist == "beta":  # 0.125 + 0.875 * Beta(1, 0.8): mean 0.125 + 0.875 / 1.8 = 0.611
        assert abs(float(scale.mean()) - (0.125 + 0.875 / 1.8)) < 0.02
    elif dist == "uniform":
        assert abs(float(scale.mean()) - 0.5625) < 0.02 and float(scale.min()) < 0.14
    elif dist == "discrete_uniform":
        assert set(scale.tolist()) == {0.25, 1.0} and abs(float((scale == 0.25).double().mean()) - 0.5) < 0.05
    else:
        assert (s == 1).all() and (o == 0).all()
    if dist != "full":  # offsets uniform in [0, 1 - s]: their mean relative position is 1/2
        rel = groups_o[:, 0, :].double() / (1 - groups_s[:, 0, :].double()).clamp_min(1e-6)
        keep = groups_s[:, 0, 0] < 0.99
        assert abs(float(rel[keep].mean()) - 0.5) < 0.03


def test_early_beta_is_almost_always_the_whole_image():
    s, _ = sample_patch_params(400, PatchSamplerConfig(), 0, np.random.RandomState(1), torch.Generator().manual_seed(1))
    assert float((s[:, 0] > 0.99).double().mean()) > 0.95


def test_bad_sampler_input_is_refused():
    with pytest.raises(ValueError, match="multiple"):
        sample_patch_params(6, PatchSamplerConfig(), 0)
    with pytest.raises(ValueError, match="distribution"):
        PatchSamplerConfig(distribution="gaussian")
    with pytest.raises(ValueError, match="min_scale"):
        PatchSamplerConfig(min_scale=0.0)
    with pytest.raises(ValueError, match="square"):
        extract_patches(torch.zeros(1, 3, 4, 5), torch.ones(1, 2), torch.zeros(1, 2), 4)
    with pytest.raises(ValueError, match="patch distribution"):
        sampler_config_from_official({"enabled": True, "distribution": "normal"})
    assert sampler_config_from_official({"enabled": False}).distribution == "full"
