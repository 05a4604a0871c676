"""EpiGRAF's patch-aware discriminator and the importer of a snapshot's ``D``.

Parity with the official D on the fixture ($AWARE3D_REFERENCE/epigraf, README 5/7): eval and training-mode logits
(camera dropout drawn from torch's global RNG like ``F.dropout``), the patch encoding, hyper-modulation code,
conditioning map, camera features and per-block means; tolerance 1e-4 (logits and intermediates).
"""

from __future__ import annotations

import pytest
import torch

from aware3d.io.keymap import CheckpointMismatchError
from aware3d.models.epigraf.convert import (
    discriminator_from_tensors,
    discriminator_key_map,
    import_official_discriminator,
    load_snapshot_discriminator,
)
from aware3d.models.epigraf.discriminator import PatchDiscriminator, PatchDiscriminatorConfig, camera_dropout
from tests.conftest import require_reference

ATOL = 1e-4
SMALL = PatchDiscriminatorConfig(patch_resolution=16, image_resolution=64, channel_base=256, channel_max=16,
                                 hyper_mod_dim=16, const_embed_dim=8)


@pytest.fixture(scope="module")
def fixture():
    return torch.load(require_reference("epigraf", "fixture.pt"), weights_only=True)


@pytest.fixture(scope="module")
def snapshot_D():
    return load_snapshot_discriminator(require_reference("epigraf", "network-snapshot.pkl"))


@pytest.fixture(scope="module")
def D():
    return import_official_discriminator(require_reference("epigraf", "network-snapshot.pkl"))


def _inputs(fx):
    images = torch.cat([fx["realpatch_image"][:4], fx["patch64_image"]])
    return images, fx["D_in_scales"], fx["D_in_offsets"], fx["D_in_camera_angles"]


def test_imported_config_and_layout(D, snapshot_D):
    cfg = D.config
    assert (cfg.patch_resolution, cfg.image_resolution, cfg.channel_base, cfg.channel_max) == (64, 512, 2048, 32)
    assert cfg.num_start_blocks == 3 and cfg.camera_cond and cfg.camera_dropout == 0.5 and not D.training
    assert D.block_resolutions == [512, 256, 128, 64, 32, 16, 8]
    assert [getattr(D, f"b{r}").conv1.down for r in D.block_resolutions] == [1, 1, 1, 2, 2, 2, 2]
    official = snapshot_D.named_tensors()
    ours = dict(D.named_parameters())
    key_map, dead = discriminator_key_map(D)
    assert len(dead) == 12 and set(key_map.values()) == set(ours)
    for theirs, mine in key_map.items():
        assert torch.equal(ours[mine], official[theirs]), theirs


def test_eval_logits_and_intermediates_match(D, fixture):
    images, s, o, angles = _inputs(fixture)
    outs = {}
    hooks = [getattr(D, f"b{r}").register_forward_hook(lambda m, i, out, r=r: outs.__setitem__(r, out))
             for r in D.block_resolutions]
    with torch.no_grad():
        logits = D(images, s, o, angles)
        enc = D.encode_patches(s, o)
        hyper = D.hyper_mod_mapping(None, enc)
        cmap = D.head_mapping(None, D.head_condition(enc, angles, None, None))
    for h in hooks:
        h.remove()
    assert logits.shape == (8,)
    assert torch.allclose(logits, fixture["D_eval_logits"], atol=ATOL, rtol=0)
    assert torch.allclose(enc, fixture["D_eval_scalar_enc"], atol=ATOL, rtol=0)
    assert torch.allclose(hyper, fixture["D_eval_hyper_mod_c"], atol=ATOL, rtol=0)
    assert torch.allclose(cmap, fixture["D_eval_cmap"], atol=ATOL, rtol=0)
    assert torch.allclose(D.encode_camera(angles), fixture["D_eval_camera_enc"], atol=1e-6, rtol=0)
    for r in D.block_resolutions:
        assert torch.allclose(outs[r].double().mean(dim=[2, 3]), fixture[f"D_eval_block{r}_out_mean"], atol=ATOL), r
    assert torch.allclose(outs[8], fixture["D_eval_b8_out"], atol=ATOL, rtol=0)
    with torch.no_grad():
        first4 = D(images[:4], s[:4], o[:4], angles[:4])
    assert torch.allclose(first4, fixture["D_eval_logits_first4"], atol=ATOL, rtol=0)


def test_training_logits_with_camera_dropout_match(D, fixture):
    images, s, o, angles = _inputs(fixture)
    D.train()
    try:
        torch.manual_seed(555)
        with torch.no_grad():
            logits = D(images, s, o, angles)
    finally:
        D.eval()
    assert torch.allclose(logits, fixture["D_train_logits"], atol=ATOL, rtol=0)
    assert not torch.allclose(logits, fixture["D_eval_logits"], atol=ATOL, rtol=0)
    # The mask: the fixture records "kept" as output == 2 * input, so zero features count as kept.
    torch.manual_seed(555)
    kept = camera_dropout(torch.ones(8, 24), 0.5) > 0
    nonzero = fixture["D_eval_camera_enc"] != 0
    assert torch.equal(kept[nonzero], fixture["D_train_dropout_mask"][nonzero])


def test_seeded_dropout_is_reproducible_and_scaled():
    x = torch.ones(4, 24)
    a = camera_dropout(x, 0.25, torch.Generator().manual_seed(1))
    assert torch.equal(a, camera_dropout(x, 0.25, torch.Generator().manual_seed(1)))
    assert torch.isin(a, torch.tensor([0.0, 1 / 0.75])).all() and (a == 0).any() and (a > 0).any()
    assert torch.equal(camera_dropout(x, 0.0), x)


def test_small_discriminator_runs_with_classes_and_gradients():
    cfg = PatchDiscriminatorConfig(**{**SMALL.__dict__, "c_dim": 3})
    D = PatchDiscriminator(cfg)
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    s = torch.full((4, 2), 0.5)
    o = torch.full((4, 2), 0.25)
    c = torch.eye(3)[[0, 1, 2, 0]]
    out = D(x, s, o, torch.tensor([[0.1, 1.5, 0.0]] * 4), c, generator=torch.Generator().manual_seed(0))
    assert out.shape == (4,)
    out.sum().backward()
    assert x.grad is not None and D.b64.conv1.affine.weight.grad is not None
    assert D.patch_embed.weight.grad is not None
    # The patch parameters matter (hyper-modulation and head).
    D.eval()
    with torch.no_grad():
        a = D(x, s, o, torch.zeros(4, 3) + 1.5, c)
        b = D(x, s, o + 0.1, torch.zeros(4, 3) + 1.5, c)
    assert not torch.allclose(a, b)


def test_bad_input_is_refused():
    D = PatchDiscriminator(SMALL)
    x, s = torch.zeros(4, 3, 16, 16), torch.ones(4, 2)
    with pytest.raises(ValueError, match="camera_angles"):
        D(x, s, s * 0)
    with pytest.raises(ValueError, match="patches must be"):
        D(torch.zeros(4, 3, 32, 32), s, s * 0, torch.zeros(4, 3))
    with pytest.raises(ValueError, match="scales and offsets"):
        D(x, s[:2], s[:2], torch.zeros(4, 3))
    with pytest.raises(ValueError, match="powers of two"):
        PatchDiscriminatorConfig(patch_resolution=64, image_resolution=96)


def test_importer_rejects_unknown_missing_and_misshaped_keys(snapshot_D, D):
    tensors = snapshot_D.named_tensors()
    with pytest.raises(CheckpointMismatchError, match="unexpected keys.*b512.extra"):
        discriminator_from_tensors(D.config, {**tensors, "b512.extra": torch.zeros(1)}, "t")
    missing = {k: v for k, v in tensors.items() if k != "b4.out.bias"}
    with pytest.raises(CheckpointMismatchError, match="b4.out.bias"):
        discriminator_from_tensors(D.config, missing, "t")
    bad = {**tensors, "b8.conv0.weight": torch.zeros(1, 1, 3, 3)}
    with pytest.raises(CheckpointMismatchError, match="shape mismatch"):
        discriminator_from_tensors(D.config, bad, "t")
