"""ADA in training: every image D sees goes through the run's pipe, p adapts from D's real logits, exact resume."""

from __future__ import annotations

import pytest
import torch

from aware3d.augment import AugmentConfig, AugmentPipe
from aware3d.augment.run import DAugment, DAugmentConfig, augment_pair
from aware3d.cli.main import main
from aware3d.losses.base import StageState
from aware3d.training.config import RunConfig, TrainOptions, resolve_run_config
from aware3d.training.presets import get_train_preset
from aware3d.training.trainer import Trainer
from tests.test_training import options, read_stats, weights


class SpyPipe(AugmentPipe):
    """A real pipe at p = 1 that records the shape of every batch it augments."""

    def __init__(self):
        super().__init__(AugmentConfig(), p=1.0)
        self.calls: list[tuple[int, ...]] = []
        self.masks: list[int] = []

    def forward(self, images, generator=None, masks=0):
        self.calls.append(tuple(images.shape))
        self.masks.append(masks)
        return super().forward(images, generator, masks)


class CountingController:
    def __init__(self):
        self.seen = 0

    def accumulate(self, logits):
        self.seen += logits.numel()


@pytest.mark.parametrize("preset, channels, masks", [
    ("pigan-tiny", 3, 0), ("eg3d-tiny", 6, 0), ("epigraf-tiny", 3, 0), ("shadegan-tiny", 3, 0),
    ("pigan-demo", 4, 1), ("eg3d-demo", 8, 2)])  # the demos' D sees the silhouette: masks the pipe only moves
def test_every_image_D_sees_goes_through_the_pipe(tmp_path, preset, channels, masks):
    """G main: the fakes; D main: reals and fakes; D reg: the reals (R1 through the augmentation)."""
    trainer = Trainer(TrainOptions(preset=preset, out=str(tmp_path / "run"), steps=1, progress=False,
                                   tensorboard=False, sample_every=0, device="cpu"))
    stage = trainer.cfg.curriculum.stage(0)
    state = StageState(0, stage.resolution, trainer.cfg.curriculum.render_config(trainer.G.config.render, 0),
                       1.0, 0)
    data = trainer.dataset(stage.resolution)
    real = trainer._my_real_batch(trainer.real_indices(0, stage.batch_size, len(data)), data, stage.batch_split)
    for i, phase in enumerate(trainer.recipe.phases()):
        spy, counter = SpyPipe(), CountingController()
        chunk = next(trainer._chunks(i, 0, real, stage.batch_size, stage.batch_split, data))
        chunk = trainer.recipe.prepare(chunk, state)
        chunk.augment = DAugment(spy, torch.Generator().manual_seed(0), counter)
        loss, _ = trainer.recipe.loss(phase, chunk, state)
        assert torch.isfinite(loss)
        loss.backward()
        if phase.name == "G_reg":  # EG3D's density regulariser: D sees nothing
            assert spy.calls == [] and counter.seen == 0
            continue
        expected = 2 if phase.name in ("D_main", "D_both") else 1
        assert len(spy.calls) == expected, (phase.name, spy.calls)
        assert all(c[1] == channels for c in spy.calls), spy.calls
        assert spy.masks == [masks] * expected
        assert (counter.seen > 0) == (phase.module == "D"), phase.name  # only D's phases see reals


def test_dual_images_get_one_transform():
    """The raw image is augmented with the final one: a flipped pair is flipped in both."""
    torch.manual_seed(0)
    image, raw = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 8, 8)
    flip = AugmentPipe(AugmentConfig(**{n: 0.0 for n in ("rotate90", "xint", "scale", "rotate", "aniso", "xfrac",
                                                         "brightness", "contrast", "lumaflip", "hue",
                                                         "saturation")}, exact_blit=True), p=1.0)
    a, b = augment_pair(image, raw, DAugment(flip, torch.Generator().manual_seed(3)))
    flipped = [bool(torch.allclose(a[i], image[i].flip(-1))) for i in range(2)]
    for i in range(2):
        assert flipped[i] or torch.allclose(a[i], image[i])
        ref = torch.nn.functional.interpolate(torch.nn.functional.interpolate(
            raw[i:i + 1], size=(16, 16), mode="bilinear", antialias=True), size=(8, 8), mode="bilinear",
            antialias=True)[0]
        assert torch.allclose(b[i], ref.flip(-1) if flipped[i] else ref, atol=1e-5)


def test_dual_images_keep_their_silhouettes_out_of_the_colour_transforms():
    """With a silhouette channel on each of the pair, the colour channels are transformed as without it, and the
    two masks get the same geometric transform as the images and no colour change."""
    torch.manual_seed(0)
    image, raw = torch.rand(3, 4, 16, 16) * 2 - 1, torch.rand(3, 4, 8, 8) * 2 - 1
    pipe = AugmentPipe(AugmentConfig(), p=1.0)
    geometry_only = AugmentPipe(AugmentConfig(**{n: 0.0 for n in ("brightness", "contrast", "lumaflip", "hue",
                                                                  "saturation")}), p=1.0)
    a, b = augment_pair(image, raw, DAugment(pipe, torch.Generator().manual_seed(2)), masks=1)
    assert a.shape == image.shape and b.shape == raw.shape
    ref_a, ref_b = augment_pair(image[:, :3], raw[:, :3], DAugment(pipe, torch.Generator().manual_seed(2)))
    assert torch.allclose(a[:, :3], ref_a, atol=1e-6) and torch.allclose(b[:, :3], ref_b, atol=1e-6)
    mask_a, mask_b = augment_pair(image[:, 3:], raw[:, 3:], DAugment(geometry_only, torch.Generator().manual_seed(2)))
    assert torch.allclose(a[:, 3:], mask_a, atol=1e-6) and torch.allclose(b[:, 3:], mask_b, atol=1e-6)


def fast_ada(interval: int) -> tuple[str, ...]:
    """Adjust every ``interval`` steps by batch 4 x interval / 80 (0.1 for interval 2)."""
    return (f"augment.ada.interval={interval}", "augment.ada.kimg=0.08")


def test_ada_adapts_p_logs_it_and_checkpoints_it(tmp_path):
    run = tmp_path / "run"
    Trainer(options(run, steps=4, aug="ada", aug_p=0.5, override=(*options(run).override, *fast_ada(2)))).train()
    stats = read_stats(run)
    adjusted = [s for s in stats if "aug/rt" in s]
    assert [s["step"] for s in adjusted] == [2, 4]
    p = 0.5
    for s in stats:  # p moves by 0.1 toward more augmentation exactly when E[sign D(real)] is above the target
        if "aug/rt" in s:
            p += 0.1 if s["aug/rt"] > 0.6 else -0.1
        assert s["aug/p"] == pytest.approx(p, abs=1e-6), s
    assert float(weights(run, "augment_pipe")["p"]) == pytest.approx(stats[-1]["aug/p"])
    assert RunConfig.load(run).augment.mode == "ada"


def test_ada_resume_is_bit_exact_mid_interval(tmp_path):
    """2 + 2 steps with an adjustment every 3 (the sign counts of steps 1-2 live in the checkpoint)."""
    override = (*options(tmp_path).override, *fast_ada(3))
    Trainer(options(tmp_path / "a", steps=4, aug="ada", aug_p=0.3, override=override)).train()
    Trainer(options(tmp_path / "b", steps=2, aug="ada", aug_p=0.3, override=override)).train()
    assert float(weights(tmp_path / "b", "ada")["sign_count"]) > 0  # mid-interval counts were saved
    Trainer(options(tmp_path / "ignored", resume=str(tmp_path / "b"), steps=4)).train()
    for name in ("G", "D", "G_ema_0.999", "augment_pipe", "ada"):
        a, b = weights(tmp_path / "a", name), weights(tmp_path / "b", name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_fixed_p_stays_and_noaug_has_no_pipe(tmp_path):
    Trainer(options(tmp_path / "fixed", steps=2, aug="fixed", aug_p=0.25)).train()
    assert all(s["aug/p"] == 0.25 for s in read_stats(tmp_path / "fixed"))
    Trainer(options(tmp_path / "none", steps=1)).train()
    assert not (tmp_path / "none" / "checkpoint" / "augment_pipe.safetensors").exists()
    assert "aug/p" not in read_stats(tmp_path / "none")[0]


def test_presets_and_options():
    assert get_train_preset("epigraf-ffhq-512").augment.mode == "ada"
    assert get_train_preset("epigraf-ffhq-512").augment.pipe.xflip == 0.0  # official: the data is mirrored
    assert get_train_preset("eg3d-afhq").augment == DAugmentConfig(mode="ada")
    assert get_train_preset("eg3d-ffhq").augment.mode == "noaug" and get_train_preset("pigan-tiny").augment.mode == "noaug"
    cfg = resolve_run_config(TrainOptions(preset="pigan-tiny", aug="fixed", aug_p=0.2,
                                          override=("augment.pipe.hue=0", "augment.ada.target=0.5")))
    assert (cfg.augment.mode, cfg.augment.p, cfg.augment.pipe.hue, cfg.augment.ada.target) == ("fixed", 0.2, 0.0, 0.5)
    assert RunConfig.from_json(cfg.to_json(), "x").augment == cfg.augment
    with pytest.raises(ValueError, match="--aug-p"):
        resolve_run_config(TrainOptions(preset="pigan-tiny", aug="fixed"))
    with pytest.raises(ValueError, match="noaug, ada or fixed"):
        resolve_run_config(TrainOptions(preset="pigan-tiny", aug="always"))


def test_cli_aug_flags(tmp_path, capsys):
    assert main(["train", "--preset", "pigan-tiny", "--out", str(tmp_path / "r"), "--aug", "fixed", "--device", "cpu",
                 "--steps", "1", "--no-progress"]) == 2
    assert "--aug-p" in capsys.readouterr().err


def test_aug_from_an_official_snapshot_keeps_its_settings_and_p():
    from tests.conftest import require_reference

    epigraf = require_reference("epigraf", "network-snapshot.pkl")
    cfg = resolve_run_config(TrainOptions(preset="pigan-tiny", aug_from=str(epigraf)))
    assert cfg.augment.mode == "ada" and cfg.augment.p == 0.0 and cfg.augment.pipe.xflip == 0.0
    assert cfg.augment.pipe.hue == 1.0
    fixed = resolve_run_config(TrainOptions(preset="pigan-tiny", aug_from=str(epigraf), aug="fixed", aug_p=0.4))
    assert (fixed.augment.mode, fixed.augment.p, fixed.augment.pipe.xflip) == ("fixed", 0.4, 0.0)
    eg3d = require_reference("eg3d", "network-snapshot.pkl")  # written with --aug=noaug: augment_pipe None
    with pytest.raises(ValueError, match="no augment_pipe"):
        resolve_run_config(TrainOptions(preset="pigan-tiny", aug_from=str(eg3d)))
