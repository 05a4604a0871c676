"""The contract every registered family passes, on its own CPU-sized presets (``FamilySpec.tiny``).

Nothing here names a family: a new family that registers itself gets every test. The cases: it builds
from its tiny preset and honours the generator contract, a checkpoint round trip is bit-exact, the render /
video / shapes / metrics tools write valid files, two training steps change G and D, resume is bit-exact,
its importers recognise its own official files (``$AWARE3D_REFERENCE/<family>/``) and refuse every other
family's, conditions it does not declare are refused, and an image it rendered is inverted back to its latent
and camera (``aware3d invert``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import trimesh
from PIL import Image
from safetensors.torch import load_file

import aware3d
from aware3d.cli.main import main
from aware3d.export.shapes import read_mrc
from aware3d.io.checkpoint import load_generator, save_generator
from aware3d.io.sniff import summarize_file
from aware3d.inversion.camera import CameraAngles
from aware3d.inversion.config import InversionConfig, LossConfig, OptimConfig, SearchConfig
from aware3d.inversion.invert import invert, make_renderer
from aware3d.inversion.files import write_latent
from aware3d.inversion.losses import ReconstructionLoss, load_discriminator, psnr
from aware3d.models.base import Capabilities, Condition, Generator3D
from aware3d.models.registry import REQUIRED_CONFIG_FIELDS, build_generator, families
from aware3d.training.config import TrainOptions
from aware3d.training.schedule import NamedSchedule
from aware3d.training.stats import read_stats
from aware3d.training.trainer import Trainer

from .conftest import require_reference
from .inversion_scene import self_inversion_model

FAMILIES = sorted(families())


@pytest.fixture(params=FAMILIES)
def family(request):
    return families()[request.param]


def tiny_generator(family) -> Generator3D:
    return build_generator(family.tiny.model, seed=3).eval()


# ------------------------------------------------------------------------------------------ the model
def test_builds_from_its_tiny_preset_and_honours_the_contract(family):
    G = tiny_generator(family)
    assert isinstance(G, family.generator_cls) and G.family == family.name and G.preset == family.tiny.model
    assert isinstance(G.capabilities, Capabilities)
    assert all(hasattr(G.config, f) for f in REQUIRED_CONFIG_FIELDS)
    out = aware3d.render(G, seeds=[0, 1], resolution=8, num_samples=4, normals=G.capabilities.normals)
    assert out.depth.shape == (2, 1, 8, 8) and out.opacity.shape == (2, 1, 8, 8)
    assert out.image.shape[:2] == (2, 3) and torch.isfinite(out.image).all() and torch.isfinite(out.depth).all()
    assert ((out.opacity >= 0) & (out.opacity <= 1 + 1e-6)).all()
    assert (out.image_raw is not None) == G.capabilities.raw_image
    if G.capabilities.normals:
        assert out.normals.shape == (2, 3, 8, 8) and torch.isfinite(out.normals).all()
    density = G.density(G.mapping(G.z_from_seeds([0]), 1.0))(torch.zeros(1, 5, 3))
    assert density.shape == (1, 5) and torch.isfinite(density).all()


def test_fast_mode_is_as_close_to_a_converged_render_as_the_exact_mode(family):
    """--fast (band sampling + bfloat16 kernels) errs like a sampling of its own, not like a broken render: its
    distance to a render with 4x the samples, unjittered, is at most the exact mode's (plus a small margin)."""
    from aware3d.nn.kernels import low_precision

    G = tiny_generator(family)
    p = G.config.pose
    cams = G.cameras([p.yaw_mean - 0.3, p.yaw_mean + 0.2], [p.pitch_mean] * 2)
    w = G.mapping(G.z_from_seeds([0, 1]), G.config.eval_truncation_psi).detach()
    cfg = G.eval_render_config()

    def image(render, low: bool = False):
        with torch.no_grad(), low_precision(low):
            return G.synthesis(w, cams, resolution=32, render=render, fast=True,
                               generator=torch.Generator().manual_seed(0)).image
    dense = dataclasses.replace(cfg, num_samples=4 * cfg.num_samples, num_importance=4 * cfg.num_importance,
                                perturb=False, importance_det=True)
    truth, exact = image(dense), image(cfg)
    fast = image(G.eval_render_config(fast=True), low=True)
    assert fast.shape == exact.shape and torch.isfinite(fast).all()
    exact_error, fast_error = (exact - truth).abs().mean(), (fast - truth).abs().mean()
    assert fast_error <= 1.5 * exact_error + 0.01, (float(fast_error), float(exact_error))


def test_refuses_conditions_it_does_not_declare(family):
    G = tiny_generator(family)
    undeclared = [k for k in ("light", "face", "class_label") if k not in G.capabilities.conditions]
    values = {"light": torch.zeros(1, 4), "face": torch.zeros(1, 8), "class_label": torch.zeros(1, dtype=torch.int64)}
    for kind in undeclared:
        with pytest.raises(ValueError, match=f"takes no {kind} condition"):
            G.mapping(G.z_from_seeds([0]), 1.0, condition=Condition(**{kind: values[kind]}))


def test_checkpoint_round_trip_is_bit_exact(family, tmp_path):
    G = tiny_generator(family)
    loaded = load_generator(save_generator(G, tmp_path / "ckpt"))
    assert type(loaded) is type(G) and loaded.config == G.config and loaded.preset == G.preset
    a, b = G.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    renders = []
    for model in (G, loaded):
        torch.manual_seed(0)  # the same draws for any sampling jitter of the evaluation settings
        renders.append(aware3d.render(model, seeds=[4], resolution=8, num_samples=4))
    ra, rb = renders
    assert torch.equal(ra.image, rb.image) and torch.equal(ra.depth, rb.depth)


# ------------------------------------------------------------------------------------------ the tools
def test_tools_write_valid_files(family, tmp_path):
    ckpt = str(save_generator(tiny_generator(family), tmp_path / "ckpt"))
    common = ["--checkpoint", ckpt, "--resolution", "8", "--num-samples", "4", "--no-progress"]
    assert main(["render", *common, "--out", str(tmp_path / "r"), "--seeds", "0", "--yaw", "0", "0.3"]) == 0
    for v in range(2):
        assert Image.open(tmp_path / "r" / f"seed0000_view{v:02d}.png").mode == "RGB"
        assert Image.open(tmp_path / "r" / f"seed0000_view{v:02d}_depth.png").size == (8, 8)
    assert json.loads((tmp_path / "r" / "render.json").read_text())["model"]["family"] == family.name

    assert main(["video", *common, "--out", str(tmp_path / "v"), "--grid", "1x1", "--frames", "3",
                 "--name", "v.gif"]) == 0
    assert iio.imread(tmp_path / "v" / "v.gif", index=None).shape[0] == 3

    assert main(["shapes", "--checkpoint", ckpt, "--no-progress", "--out", str(tmp_path / "s"), "--seeds", "0",
                 "--grid", "16", "--level", "mean", "--formats", "ply"]) == 0
    assert read_mrc(tmp_path / "s" / "seed0000.mrc")[0].shape == (16, 16, 16)
    assert len(trimesh.load(tmp_path / "s" / "seed0000.ply").vertices) > 0

    assert main(["metrics", *common, "--out", str(tmp_path / "m"), "--metrics", "msssim", "reprojection",
                 "--num-gen", "4", "--batch", "4"]) == 0
    record = json.loads(next((tmp_path / "m").glob("*.json")).read_text())
    assert record["results"] and all(math.isfinite(v) for v in record["results"].values())


# ------------------------------------------------------------------------------------------ training
def train_options(family, out: Path, **kw) -> TrainOptions:
    base = dict(preset=family.tiny.train, out=str(out), log_every=1, sample_every=0, checkpoint_every=100,
                progress=False, tensorboard=False, override=family.tiny.train_overrides, steps=2)
    base.update(kw)
    return TrainOptions(**base)


@pytest.fixture(scope="module")
def two_step_runs(tmp_path_factory) -> dict[str, tuple[Path, dict, dict]]:
    """Per family: a 2-step run and the initial G and D weights (trained once, shared by the tests below)."""
    runs = {}
    for name in FAMILIES:
        family = families()[name]
        if family.training is None:
            continue
        root = tmp_path_factory.mktemp(name)
        fresh = Trainer(train_options(family, root / "fresh", steps=1))  # built only, never trained
        G0 = {k: v.clone() for k, v in fresh.G.state_dict().items()}
        D0 = {k: v.clone() for k, v in fresh.D.state_dict().items()}
        result = Trainer(train_options(family, root / "run", sample_every=2)).train()
        assert result.step == 2 and result.stopped_by == "finished"
        runs[name] = (root / "run", G0, D0)
    return runs


def checkpoint_tensors(run: Path, name: str) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoint" / f"{name}.safetensors"))


def test_two_training_steps_change_G_and_D(family, two_step_runs, tmp_path):
    """2 steps change G and D, log finite stats, write sample grids and export a loadable generator (an
    inference-only family is refused by the trainer with a clear error, before anything is written)."""
    if family.training is None:
        with pytest.raises(ValueError, match="has no training recipe"):
            Trainer(train_options(family, tmp_path / "run", preset=next(iter(family.presets))))
        return
    run, G0, D0 = two_step_runs[family.name]
    G1, D1 = checkpoint_tensors(run, "G"), checkpoint_tensors(run, "D")
    assert any(not torch.equal(G0[k], G1[k]) for k in G0), "generator did not change"
    assert any(not torch.equal(D0[k], D1[k]) for k in D0), "discriminator did not change"
    stats = read_stats(run)
    assert [s["step"] for s in stats] == [1, 2]
    for key in ("G/adv", "D/adv", "images_per_s", "lr/G", "resolution"):
        assert key in stats[-1] and math.isfinite(stats[-1][key]), key
    assert (run / "samples" / "step-0000002.png").is_file() and (run / "samples" / "final.png").is_file()
    G = aware3d.load(str(run / "generator"))
    out = aware3d.render(G, seeds=[0], resolution=8)  # the rendering resolution (super-resolution may follow)
    assert out.depth.shape == (1, 1, 8, 8) and out.image.shape[:2] == (1, 3) and torch.isfinite(out.image).all()


def test_resume_is_bit_exact(family, two_step_runs, tmp_path):
    if family.training is None:
        return  # nothing to resume (the refusal is tested above)
    run, _, _ = two_step_runs[family.name]
    Trainer(train_options(family, tmp_path / "b", steps=1, sample_every=2)).train()
    Trainer(train_options(family, tmp_path / "ignored", resume=str(tmp_path / "b"), sample_every=2)).train()
    names = sorted(p.stem for p in (run / "checkpoint").glob("*.safetensors"))
    assert {"G", "D", "optim_G", "optim_D", "rng"} <= set(names)
    for name in names:
        a, b = checkpoint_tensors(run, name), checkpoint_tensors(tmp_path / "b", name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f"{name} differs after resume"


# ------------------------------------------------------------------------------------------ inversion
SELF_INVERSION = InversionConfig(resolution=24, search=SearchConfig(steps=25),
                                 optim=OptimConfig(steps=80, refine_steps=40))
"""The self-inversion check's settings: 24 px renders (EG3D super-resolves to its 32 px), a 5 x 3 pose grid."""


def test_self_inversion_recovers_the_latent_and_camera(family, tmp_path):
    """An image the tiny model renders from a known latent (its mean plus 0.2 spreads of noise in every group) and a
    camera off the search grid (0.2 rad of yaw, 0.1 of pitch) is inverted to >= 30 dB with both angles within
    0.05 rad, and the latent file (with the family's condition) re-renders the result through render --latent.
    A model whose renders hardly depend on the camera is first taught a head (tests/inversion_scene.py)."""
    G, _taught = self_inversion_model(family)
    space = G.inversion_space()
    truth_offsets = space.perturbed(space.zero_offsets(), 0.2, torch.Generator().manual_seed(1))
    yaw0, pitch0 = G.config.pose.frontal()
    truth = CameraAngles(torch.tensor([yaw0 + 0.2]), torch.tensor([pitch0 - 0.1]))
    with torch.no_grad():
        target = make_renderer(G, SELF_INVERSION)(G, space.latent(truth_offsets), truth.cameras(G)).image
    result = invert(G, target, SELF_INVERSION)
    errors = (float(result.angles.yaw - truth.yaw), float(result.angles.pitch - truth.pitch))
    assert result.numbers["psnr"] >= 30, (result.numbers["psnr"], errors)
    assert max(map(abs, errors)) <= 0.05, (result.numbers["psnr"], errors)
    ckpt = save_generator(G, tmp_path / "ckpt")
    latent = write_latent(tmp_path / "latent.safetensors", G, result.latent, result.angles, result.groups)
    assert main(["render", "--checkpoint", str(ckpt), "--latent", str(latent), "--yaw", "0", "--pitch", "0",
                 "--resolution", "24", "--no-normals", "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    again = torch.from_numpy(np.asarray(Image.open(tmp_path / "r" / "latent_view00.png"), dtype=np.float32))
    assert float(psnr((again.permute(2, 0, 1)[None] / 127.5 - 1), result.reconstruction.clamp(-1, 1))) > 40


def test_a_run_folder_gives_the_inversion_its_discriminator(family, two_step_runs):
    """The trained D of a run folder is found, and its block features (any image size) make a loss term that is 0
    for the target itself and positive for another image; an exported generator folder holds no D."""
    if family.training is None:
        return
    run, _, _ = two_step_runs[family.name]
    D = load_discriminator(run)
    assert D is not None and load_discriminator(run / "generator") is None
    images = torch.rand(2, 3, 20, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    features = D.feature_maps(images)
    assert features and all(f.shape[0] == 2 and torch.isfinite(f).all() for f in features)
    loss = ReconstructionLoss(images[:1, :, :, :20], LossConfig(pixel=0, msssim=0, discriminator=1.0), D)
    terms = loss.terms(torch.cat([images[:1, :, :, :20], images[1:, :, :, :20]]))["discriminator"]
    assert float(terms[1]) > 0 and float(terms[0]) < 1e-6 * float(terms[1])  # 0 up to batch rounding


# ------------------------------------------------------------------------------------------ importers
@functools.cache
def official_files() -> dict[str, list[Path]]:
    """The official checkpoints of the reference fixtures, by the family folder they sit in."""
    out: dict[str, list[Path]] = {}
    for folder in sorted(p for p in require_reference().iterdir() if p.is_dir()):
        files = [f for f in sorted(folder.iterdir()) if f.suffix in (".pth", ".pkl", ".pt")]
        out[folder.name] = [f for f in files if summarize_file(f).container != "unknown"]
    return out


def test_importers_recognise_their_files_and_refuse_the_others(family):
    files = official_files()
    for folder, paths in files.items():
        for path in paths:
            summary = summarize_file(path)
            claimed = [imp.name for imp in family.importers if imp.sniff(summary)]
            if folder != family.name:
                assert not claimed, f"{family.name} importers {claimed} claim {path}, a {folder} file"
    if family.name in files and family.importers:
        own = [p for p in files[family.name] if any(imp.sniff(summarize_file(p)) for imp in family.importers)]
        assert own, f"no importer of {family.name} recognises any file of {family.name}'s reference fixtures"


def test_registry_fields_are_typed_dataclasses(family):
    assert dataclasses.is_dataclass(family.config_cls)
    for preset, cfg in family.presets.items():
        assert isinstance(cfg, family.config_cls), preset
    for name, p in family.train_presets.items():
        assert p.family == family.name and p.model in family.presets, name
        # Every recipe config names its schedules (aware3d presets --show prints them).
        assert all(isinstance(s, NamedSchedule) for s in p.loss.schedules() + p.curriculum.schedules()), name
