"""Conditions from data to tools: datasets' extras reach the recipe, a recipe's conditions reach the generator,
per-module learning rates, and the tools' --class / --light. A test family (registered for these tests only)
is a pi-GAN whose latent moves with a class label."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from aware3d.cli.main import main
from aware3d.losses.base import Chunk, ParamGroup, StageState
from aware3d.losses.pigan import PiGANLoss
from aware3d.models import registry
from aware3d.models.base import Capabilities, Condition
from aware3d.models.pigan.generator import PiGANGenerator
from aware3d.training.config import TrainOptions
from aware3d.training.trainer import Trainer

NAME = "labelled"


class LabelledGenerator(PiGANGenerator):
    """pi-GAN with w shifted by the class label (0 when none is given): a control that moves the image. It
    records the labels it was given (for the tests)."""

    family = NAME
    capabilities = Capabilities(conditions=("class_label",))
    received: list[torch.Tensor] = []

    def mapping(self, z, truncation_psi=1.0, cameras=None, condition=None):
        self.check_condition(condition)
        w = super().mapping(z, truncation_psi, cameras)
        if condition is None or condition.class_label is None:
            return w
        LabelledGenerator.received.append(condition.class_label)
        return w + condition.class_label.to(w)[:, None] * 0.5


class LabelledLoss(PiGANLoss):
    """pi-GAN's recipe drawing a class label per generated image, its mapping network at 0.05x G's rate."""

    seen: list[Chunk] = []

    def prepare(self, chunk: Chunk, stage: StageState) -> Chunk:
        LabelledLoss.seen.append(chunk)
        labels = torch.randint(0, 3, (len(chunk.z),), generator=torch.Generator().manual_seed(chunk.z.shape[0]))
        return chunk.with_condition(Condition(class_label=labels))

    def param_groups(self, module, net):
        if module == "D":
            return super().param_groups(module, net)
        mapping = tuple(net.mapping_network.parameters())
        ids = {id(p) for p in mapping}
        return [ParamGroup("G.mapping", mapping, 0.05), ParamGroup("G.field", tuple(p for p in net.parameters()
                                                                                  if id(p) not in ids))]


@pytest.fixture
def labelled_family(monkeypatch):
    pigan = registry.get_family("pigan")
    base = pigan.train_presets[pigan.tiny.train]
    spec = dataclasses.replace(
        pigan, name=NAME, generator_cls=LabelledGenerator, presets={"labelled-tiny": pigan.presets[pigan.tiny.model]},
        tiny=registry.TinyPresets("labelled-tiny", "labelled-tiny", pigan.tiny.train_overrides),
        training=dataclasses.replace(pigan.training, loss_cls=LabelledLoss),
        train_presets={"labelled-tiny": dataclasses.replace(base, family=NAME, model="labelled-tiny")},
        importers=(), grid_layouts={})
    monkeypatch.setitem(registry._FAMILIES, NAME, spec)
    LabelledLoss.seen, LabelledGenerator.received = [], []
    return spec


def test_tools_pass_the_class_and_it_moves_the_image(labelled_family, tmp_path):
    images = {}
    for label in (0, 0, 2):
        out = tmp_path / f"c{label}-{len(images)}"
        assert main(["render", "--checkpoint", "labelled-tiny", "--out", str(out), "--seeds", "0", "--yaw", "0",
                     "--resolution", "8", "--num-samples", "4", "--class", str(label), "--no-progress"]) == 0
        images.setdefault(label, []).append(Image.open(out / "seed0000_view00.png").tobytes())
        assert json.loads((out / "render.json").read_text())["options"]["class_label"] == label
    assert images[0][0] == images[0][1] and images[0][0] != images[2][0]


def test_tools_refuse_a_condition_the_family_does_not_take(tmp_path, capsys):
    rc = main(["render", "--checkpoint", "pigan-tiny", "--out", str(tmp_path), "--seeds", "0", "--resolution", "8",
               "--light", "0.5", "0.5", "0", "0", "--no-progress"])
    assert rc == 2 and "takes no light condition (it accepts: none)" in capsys.readouterr().err
    assert not list(Path(tmp_path).glob("*.png"))


def test_the_trainer_hands_extras_to_the_recipe_and_conditions_to_the_generator(labelled_family, tmp_path):
    opts = TrainOptions(preset="labelled-tiny", out=str(tmp_path / "run"), steps=1, log_every=1, sample_every=0,
                        progress=False, tensorboard=False, override=labelled_family.tiny.train_overrides)
    trainer = Trainer(opts)
    g_lr = trainer.cfg.curriculum.stage(0).g_lr
    assert [(g["name"], g["lr"]) for g in trainer.opt["G"].param_groups] == [("G.mapping", g_lr * 0.05),
                                                                             ("G.field", g_lr)]
    mapping_before = trainer.G.mapping_network.layers[0].weight.detach().clone()
    trainer.train()
    chunks = LabelledLoss.seen
    assert chunks, "prepare was never called"
    # Every generated batch of the step carried the recipe's labels (D_both's fakes and G_main's).
    assert len(LabelledGenerator.received) == len(chunks)
    assert all(len(r) == len(c.z) and int(r.max()) < 3 for r, c in zip(LabelledGenerator.received, chunks))
    for chunk in chunks:  # the synthetic heads' extras, the rows of the chunk's real images
        assert chunk.real_extras["light_dir"].shape == (len(chunk.real_images), 3)
        assert chunk.real_extras["mask"].shape[-2:] == chunk.real_images.shape[-2:]
    # Adam's first step moves every weight by about its learning rate: the mapping network's group by 0.05x.
    step = (trainer.G.mapping_network.layers[0].weight - mapping_before).abs().max().item()
    assert 0 < step <= g_lr * 0.05 * 1.01
