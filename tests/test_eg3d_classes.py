"""Class-conditional EG3D (``num_classes`` K on G and D): K = 0 is today's model bit for bit, a class moves the
image and D's logits, fakes get the dataset's class distribution (EpiGRAF's too), a tiny labelled training run,
``aware3d render --class`` and the refusals."""

from __future__ import annotations

import hashlib
import dataclasses
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image

import aware3d
from aware3d.cli.main import main as cli_main
from aware3d.io.checkpoint import save_generator
from aware3d.losses.base import Chunk, Phase, StageState
from aware3d.models.base import Condition
from aware3d.models.eg3d.discriminator import DualDiscriminator
from aware3d.models.eg3d.loss import EG3DLoss
from aware3d.models.epigraf.discriminator import PatchDiscriminator
from aware3d.models.epigraf.loss import EpiGRAFLoss
from aware3d.models.registry import build_generator
from aware3d.tools.dataset import DatasetOptions, run as build_dataset
from aware3d.training.config import TrainOptions
from aware3d.training.presets import get_train_preset
from aware3d.training.stats import read_stats
from aware3d.training.trainer import Trainer

PRESET = get_train_preset("eg3d-tiny")
RES = 32
CLASSES = ("agave", "cactus", "fern")
"""Class folders of the labelled set; ids are the sorted names' positions."""


def tiny_pair(classes: int = 0, *overrides: str):
    """eg3d-tiny G (seed 0, eval) and the training preset's D (seed 0) with ``classes`` classes."""
    G = build_generator("eg3d-tiny", seed=0, overrides=[f"num_classes={classes}", *overrides]).eval()
    torch.manual_seed(0)
    D = DualDiscriminator(replace(PRESET.discriminator, num_classes=classes))
    return G, D


def key_digest(module: torch.nn.Module) -> str:
    """First 16 hex digits of the sha256 of the state dict's 'name:shape' lines."""
    lines = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in module.state_dict().items())
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


def chunk_for(G, real_classes: torch.Tensor | None, seed: int = 0) -> Chunk:
    """A chunk of len(real_classes) random real images (the generator's cameras as their labels)."""
    b = 8 if real_classes is None else len(real_classes)
    g = torch.Generator().manual_seed(seed)
    yaw, pitch = G.config.pose.sample(b, generator=g)
    cams = G.cameras(yaw, pitch)
    extras = {} if real_classes is None else {"class_label": real_classes}
    return Chunk(torch.rand(b, 3, RES, RES, generator=g) * 2 - 1, cams.eg3d_label(), torch.randn(b, G.z_dim, generator=g),
                 cams, torch.stack([yaw, pitch], -1), torch.Generator().manual_seed(seed + 100), real_extras=extras)


def stage() -> StageState:
    return StageState(0, RES, build_generator("eg3d-tiny").config.render, 1.0, 0)


def labelled_folder(root: Path, classes_of: dict[str, int] | None = None) -> Path:
    """Tiny PNGs in root/CLASS/OBJECT/vN.png with EpiGRAF camera_angles (radius 1, 12 degrees: the eg3d-tiny
    heads camera); ``classes_of`` also writes integer class 'labels' for them."""
    angles = {}
    for c, name in enumerate(CLASSES):
        for obj in ("a", "b"):
            for view in range(2):
                rel = f"{name}/{obj}/v{view}.png"
                (root / name / obj).mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (RES, RES), (60 * c + 20, 40 * view + 60, 90)).save(root / rel)
                angles[rel] = [0.1 * (len(angles) - 6), math.pi / 2 + 0.05 * view, 0.0]
    meta = {"camera_angles": angles, "camera": {"radius": 1.0, "fov_deg": 12.0, "angles": "epigraf"}}
    if classes_of is not None:
        meta["labels"] = {rel: classes_of.get(rel.split("/")[0], 0) for rel in angles}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def train_options(out: Path, data: Path, classes: int, steps: int = 2) -> TrainOptions:
    return TrainOptions(preset="eg3d-tiny", data=str(data), out=str(out), steps=steps, log_every=1, sample_every=0,
                        checkpoint_every=100, progress=False, tensorboard=False, device="cpu",
                        override=(f"model.num_classes={classes}", f"discriminator.num_classes={classes}"))


# ------------------------------------------------------------------------------------------- the networks
def test_unconditional_model_is_todays_eg3d_tiny():
    G, D = tiny_pair(0)
    # The state dicts' names and shapes, and the outputs for seed 0, of eg3d-tiny before class conditioning.
    assert (key_digest(G), len(G.state_dict())) == ("abefe54924f8abbf", 103)
    assert (key_digest(D), len(D.state_dict())) == ("354807451b2808c9", 29)
    assert G.backbone.mapping.embed.weight.shape[1] == 25 and D.mapping.embed.weight.shape[1] == 25
    z, cams = G.z_from_seeds([0, 1]), G.cameras([1.4, 1.7], [1.57, 1.5])
    with torch.no_grad():
        ws = G.mapping(z, 0.7, cameras=cams)
        out = G.synthesis(ws, cams, render=G.config.eval_render, generator=torch.Generator().manual_seed(0))
        logits = D(out.image, out.image_raw, cams.eg3d_label())
    assert float(ws.double().sum()) == pytest.approx(276.66903768479824, rel=1e-5)
    assert float(out.image.double().sum()) == pytest.approx(-3766.278070051223, rel=1e-4)
    assert float(logits.double().sum()) == pytest.approx(1.0607328414916992, rel=1e-4)


def test_old_checkpoints_without_the_field_load_unconditional(tmp_path):
    G, _ = tiny_pair(0)
    path = save_generator(G, tmp_path / "g")
    config_file = path / "config.json"
    meta = json.loads(config_file.read_text())
    meta["config"].pop("num_classes")
    config_file.write_text(json.dumps(meta))
    back = aware3d.load(str(path))
    assert back.config.num_classes == 0
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in back.state_dict().items())


def test_the_class_moves_the_image_and_the_logits():
    G, D = tiny_pair(3)
    assert G.backbone.mapping.embed.weight.shape[1] == 25 + 3 and D.mapping.embed.weight.shape[1] == 25 + 3
    z, cams = G.z_from_seeds([0, 0]), G.cameras([1.5, 1.5], [1.57, 1.57])
    with torch.no_grad():
        ws = G.mapping(z, 1.0, cameras=cams, condition=Condition(class_label=torch.tensor([0, 1])))
        out = G.synthesis(ws, cams, render=G.config.eval_render, generator=torch.Generator().manual_seed(0))
        logits = [D(out.image[:1].expand(2, -1, -1, -1), out.image_raw[:1].expand(2, -1, -1, -1),
                    cams.eg3d_label(), class_label=torch.tensor([c, c])) for c in (0, 2)]
    assert (out.image[0] - out.image[1]).abs().max() > 1e-3
    assert (logits[0] - logits[1]).abs().max() > 1e-5
    # One row conditions every latent; the class survives the camera's zeroing (GPC acts on the camera only).
    one = G.mapping(z, 1.0, cameras=cams, condition=Condition(class_label=torch.tensor([1])))
    assert torch.equal(one[1], ws[1])
    Gz = build_generator("eg3d-tiny", seed=0, overrides=["num_classes=3", "c_gen_conditioning_zero=true"])
    other_cams = G.cameras([1.2, 1.2], [1.4, 1.4])
    by_class = [Gz.mapping(z, 1.0, cameras=c, condition=Condition(class_label=torch.tensor([k])))
                for c, k in ((cams, 0), (other_cams, 0), (cams, 1))]
    assert torch.equal(by_class[0], by_class[1]) and not torch.allclose(by_class[0], by_class[2])


def test_refusals_name_the_class_count_and_the_fix():
    G0, D0 = tiny_pair(0)
    G3, D3 = tiny_pair(3)
    z = G3.z_from_seeds([0])
    with pytest.raises(ValueError, match=r"not class-conditional \(num_classes 0\): drop the class label"):
        G0.mapping(z, condition=Condition(class_label=torch.tensor([1])))
    with pytest.raises(ValueError, match=r"class-conditional \(3 classes\): pass a class label \(--class N"):
        G3.mapping(z)
    with pytest.raises(ValueError, match=r"class label 5 is out of range: this EG3D model has 3 classes \(labels 0..2\)"):
        G3.mapping(z, condition=Condition(class_label=torch.tensor([5])))
    with pytest.raises(ValueError, match="integer indices"):
        G3.mapping(z, condition=Condition(class_label=torch.tensor([1.0])))
    image, c = torch.zeros(2, 3, RES, RES), G3.cameras([1.5, 1.5], [1.57, 1.57]).eg3d_label()
    with pytest.raises(ValueError, match=r"class-conditional \(3 classes\); pass class_label"):
        D3(image, image[..., :16, :16], c)
    with pytest.raises(ValueError, match="not class-conditional"):
        D0(image, image[..., :16, :16], c, class_label=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="discriminator has num_classes 0 but the generator 3"):
        EG3DLoss(G3, D0, PRESET.loss)


# ------------------------------------------------------------------------------------------- the recipe
def test_fakes_follow_the_datasets_class_distribution():
    G, D = tiny_pair(3)
    recipe = EG3DLoss(G.train(), D, PRESET.loss)
    all_two = recipe.prepare(chunk_for(G, torch.full((8,), 2)), stage())
    assert all_two.condition.class_label.tolist() == [2] * 8
    # 6 of 8 real images of class 0: about 3/4 of the fakes over many chunks (binomial std 0.007 for 3200 draws).
    reals = torch.tensor([0, 0, 0, 1, 0, 0, 2, 0])
    fakes = torch.cat([recipe.prepare(chunk_for(G, reals, seed=s), stage()).condition.class_label for s in range(400)])
    freqs = torch.bincount(fakes, minlength=3).double() / len(fakes)
    assert torch.allclose(freqs, torch.tensor([0.75, 0.125, 0.125], dtype=torch.float64), atol=0.03)
    # An unconditional recipe leaves the chunk (and its random stream) alone.
    G0, D0 = tiny_pair(0)
    chunk = chunk_for(G0, torch.full((8,), 2))
    assert EG3DLoss(G0, D0, PRESET.loss).prepare(chunk, stage()) is chunk


def test_epigraf_fakes_follow_the_datasets_class_distribution():
    G = build_generator("epigraf-tiny", seed=0, overrides=["c_dim=3"]).train()
    tiny = get_train_preset("epigraf-tiny")
    recipe = EpiGRAFLoss(G, PatchDiscriminator(replace(tiny.discriminator, c_dim=3)), tiny.loss)
    st = StageState(0, RES, tiny.curriculum.render_config(G.config.render, 0), 1.0, 0)
    assert recipe.prepare(chunk_for(G, torch.full((8,), 2)), st).condition.class_label.tolist() == [2] * 8
    fakes = torch.cat([recipe.prepare(chunk_for(G, torch.tensor([1] * 6 + [0, 2]), seed=s), st).condition.class_label
                       for s in range(100)])
    assert abs((fakes == 1).double().mean().item() - 0.75) < 0.05


def test_recipe_errors_for_data_without_fitting_classes():
    G, D = tiny_pair(3)
    recipe = EG3DLoss(G.train(), D, PRESET.loss)
    with pytest.raises(ValueError, match=r"class-conditional \(3 classes\) but the dataset has no class labels.*"
                                         r"--labels-from-folders.*model.num_classes=0 discriminator.num_classes=0"):
        recipe.prepare(chunk_for(G, None), stage())
    with pytest.raises(ValueError, match=r"class label 4 but this EG3D model has 3 classes.*model.num_classes=K"):
        recipe.prepare(chunk_for(G, torch.tensor([0, 1, 4, 2])), stage())
    with pytest.raises(ValueError, match="needs the chunk from its prepare"):
        recipe.loss(Phase("G_main", "G"), chunk_for(G, torch.zeros(4, dtype=torch.int64)), stage())


# ------------------------------------------------------------------------------------------- training and tools
def test_all_class_two_dataset_gives_every_fake_class_two(tmp_path):
    data = labelled_folder(tmp_path / "twos", classes_of={name: 2 for name in CLASSES})
    trainer = Trainer(train_options(tmp_path / "run", data, 3))
    dataset = trainer.dataset(RES)
    assert dataset.num_classes == 3
    real = dataset.get_batch(list(range(8)))
    chunk = trainer.recipe.prepare(next(trainer._chunks(0, 0, real, 8, 1, dataset)), stage())
    assert chunk.condition.class_label.tolist() == [2] * 8


def test_tiny_class_conditional_training_and_render_class(tmp_path, capsys):
    labelled_folder(tmp_path / "plants")
    data = tmp_path / "plants.zip"
    build_dataset(DatasetOptions(source=str(tmp_path / "plants"), out=str(data), resolution=RES,
                                 labels_from_folders=True))
    trainer = Trainer(train_options(tmp_path / "run", data, 3))
    real_seen, fake_seen = [], []
    prepare, real_class_labels = trainer.recipe.prepare, trainer.recipe.real_class_labels
    trainer.recipe.prepare = lambda chunk, st: fake_seen.append(prepare(chunk, st)) or fake_seen[-1]
    trainer.recipe.real_class_labels = lambda chunk: real_seen.append(real_class_labels(chunk)) or real_seen[-1]
    assert trainer.train().step == 2
    stats = read_stats(tmp_path / "run")
    assert len(stats) == 2 and all(math.isfinite(s["D/adv"]) and math.isfinite(s["G/adv"]) for s in stats)
    reals = torch.cat(real_seen)
    assert set(reals.tolist()) <= {0, 1, 2} and len(set(reals.tolist())) > 1
    assert all(set(c.condition.class_label.tolist()) <= set(c.real_extras["class_label"].tolist()) for c in fake_seen)

    generator = tmp_path / "run" / "generator"
    assert aware3d.load(str(generator)).config.num_classes == 3
    common = ["render", "--checkpoint", str(generator), "--seeds", "0", "--yaw", "0", "--num-samples", "4",
              "--no-progress"]
    assert cli_main([*common, "--out", str(tmp_path / "c1"), "--class", "1"]) == 0
    assert json.loads((tmp_path / "c1" / "render.json").read_text())["options"]["class_label"] == 1
    assert list((tmp_path / "c1").glob("*.png"))
    capsys.readouterr()
    assert cli_main([*common, "--out", str(tmp_path / "c5"), "--class", "5"]) == 2
    assert "class label 5 is out of range: this EG3D model has 3 classes" in capsys.readouterr().err
    assert cli_main([*common, "--out", str(tmp_path / "none")]) == 2
    assert "pass a class label (--class N" in capsys.readouterr().err
    assert cli_main(["render", "--checkpoint", "eg3d-tiny", "--out", str(tmp_path / "k0"), "--seeds", "0",
                     "--class", "1", "--no-progress"]) == 2
    assert "not class-conditional (num_classes 0)" in capsys.readouterr().err
    assert not list((tmp_path / "c5").glob("*.png")) and not list((tmp_path / "k0").glob("*.png"))


def test_sample_grids_and_metrics_of_a_class_conditional_run(tmp_path):
    """The trainer's grids show class i mod K for latent i, and metrics draw a class per generated image."""
    labelled_folder(tmp_path / "plants")
    data = tmp_path / "plants.zip"
    build_dataset(DatasetOptions(source=str(tmp_path / "plants"), out=str(data), resolution=RES,
                                 labels_from_folders=True))
    opts = dataclasses.replace(train_options(tmp_path / "run", data, 3, steps=1), sample_every=1, metrics=("swd",),
                               metrics_every=1, metrics_num_gen=8)
    trainer = Trainer(opts)
    assert trainer.G.num_classes == 3
    classes = trainer._metric_classes(trainer.G).class_label
    assert classes.shape == (8,) and set(classes.tolist()) <= {0, 1, 2}
    trainer.train()
    assert (tmp_path / "run" / "samples" / "step-0000001.png").is_file()
    assert (tmp_path / "run" / "snapshots" / "step-0000001" / "metrics.json").is_file()
