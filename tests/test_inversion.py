"""``aware3d invert`` and its parts (aware3d.inversion): pivotal tuning, the files and the render --latent round trip,
picture reading and framing, the landmark alignment hook, the losses and the family-declared latent spaces.

The self-inversion of every family (a known latent and camera recovered) is in tests/test_family_contract.py.
Everything runs on pigan-tiny or on no model at all, on one thread.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from aware3d.cli.main import main
from aware3d.faces import FaceCoefficientRegressor, RegressorConfig, save_regressor
from aware3d.inversion.camera import CameraAngles, pose_grid
from aware3d.inversion.config import InversionConfig, LossConfig, OptimConfig, PTIConfig, SearchConfig
from aware3d.inversion.crop import (Framing, ImageReadError, Picture, auto_crop, foreground_box, foreground_mask,
                                    landmark_crop, read_picture, similarity_transform)
from aware3d.inversion.files import LatentFileError, read_latent, write_latent
from aware3d.inversion.invert import invert, make_renderer
from aware3d.inversion.losses import ReconstructionLoss, feature_distance, psnr
from aware3d.inversion.space import LatentGroup, LatentSpace, SynthesisLatent
from aware3d.models.base import Condition
from aware3d.models.registry import build_generator, families

from .inversion_scene import head_views

pytestmark = pytest.mark.usefixtures("one_thread")

QUICK = InversionConfig(resolution=16, search=SearchConfig(yaw_steps=3, pitch_steps=1, steps=5),
                        optim=OptimConfig(steps=25, refine_steps=5))
"""Few steps: these tests check behaviour, not accuracy (the contract suite checks that)."""


@pytest.fixture(scope="module")
def G():
    return build_generator("pigan-tiny", seed=3).eval()


def write_png(path, image: torch.Tensor) -> None:
    """Save a (3, H, W) [-1, 1] image as an 8-bit PNG."""
    arr = ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(arr).save(path)


# ------------------------------------------------------------------------------------- pivotal tuning
def pti_run(G, target, locality: float):
    config = InversionConfig(resolution=16, search=SearchConfig(yaw_steps=1, pitch_steps=1, steps=0),
                             optim=OptimConfig(steps=30, refine_steps=0), pti=PTIConfig(steps=40, lr=3e-3,
                                                                                          locality=locality))
    return invert(G, target, config)


def neighbour_psnr(G, result) -> float:
    """PSNR between the tuned and the original generator on a latent one spread from the pivot, from another view."""
    near = result.space.latent(result.space.perturbed(result.offsets, 1.0, torch.Generator().manual_seed(9)))
    yaw0, pitch0 = G.config.pose.frontal()
    cameras = G.cameras([yaw0 + 0.3], [pitch0 - 0.1])
    with torch.no_grad():
        return float(psnr(result.renderer(result.G, near, cameras).image, result.renderer(G, near, cameras).image))


def test_pivotal_tuning_improves_on_the_latent_only_result_and_stays_local(G):
    """A synthetic head (not made by the model, so the latent alone cannot render it) gains several dB from pivotal
    tuning; its locality regulariser keeps a nearby latent's render closer to the original generator's than tuning
    without it; the generator passed in keeps every weight."""
    yaw0, pitch0 = G.config.pose.frontal()
    target = head_views(G, G.cameras([yaw0], [pitch0]), 16)[0]
    before = {k: v.clone() for k, v in G.state_dict().items()}
    local, free = pti_run(G, target, 0.1), pti_run(G, target, 0.0)
    latent_only, tuned = local.numbers["latent_only"]["psnr"], local.numbers["psnr"]
    assert tuned > latent_only + 5, (latent_only, tuned)
    assert neighbour_psnr(G, local) > neighbour_psnr(G, free) + 1
    assert local.G is not G and all(torch.equal(before[k], v) for k, v in G.state_dict().items())
    assert any(not torch.equal(before[k], v) for k, v in local.G.state_dict().items())
    phases = [row["phase"] for row in local.history]
    assert phases.count("pti") == 40 and "locality" in local.history[-1]


def test_inversion_is_seeded_and_leaves_the_global_rng_alone(G):
    target = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    config = InversionConfig(resolution=16, search=SearchConfig(yaw_steps=2, pitch_steps=1, steps=2),
                             optim=OptimConfig(steps=3, refine_steps=0))
    torch.manual_seed(5)
    state = torch.random.get_rng_state()
    a, b = invert(G, target, config), invert(G, target, config)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.latent.w, b.latent.w) and torch.equal(a.angles.yaw, b.angles.yaw)
    assert a.history == b.history and len(a.history) == 2 + 3


# ------------------------------------------------------------------------------------- the tool and its files
def test_invert_writes_every_output_and_render_latent_re_renders_the_reconstruction(G, tmp_path):
    """aware3d invert on a render of a non-square picture writes the pictures, latent, video, mesh, curve and
    numbers; aware3d render --latent (its view, 0 0 offsets) re-renders reconstruction.png exactly."""
    yaw0, pitch0 = G.config.pose.frontal()
    with torch.no_grad():
        z = G.mapping(G.z_from_seeds([7]), 0.7)
        image = make_renderer(G, QUICK)(G, SynthesisLatent(z), G.cameras([yaw0 + 0.2], [pitch0])).image[0]
    wide = torch.cat([image[:, :, :3], image, image[:, :, -3:]], 2)  # 16 x 22: --crop centre cuts the 16 x 16 back
    write_png(tmp_path / "photo.png", wide)
    out = tmp_path / "inv"
    assert main(["invert", str(tmp_path / "photo.png"), "--checkpoint", "pigan-tiny", "--init-seed", "3",
                 "--resolution", "16", "--out", str(out), "--steps", "25", "--refine-steps", "5", "--search-steps",
                 "5", "--search-grid", "3", "1", "--video-frames", "3", "--mesh-grid", "24", "--no-progress"]) == 0
    for name in ("input.png", "reconstruction.png", "reconstruction_depth.png", "reconstruction_normal.png",
                 "comparison.png", "latent.safetensors", "latent.json", "shape.ply", "loss.png", "inversion.json"):
        assert (out / name).is_file(), name
    assert list(out.glob("orbit.*"))
    record = json.loads((out / "inversion.json").read_text())
    assert record["numbers"]["psnr"] > 25 and record["crop"]["box"] == [3.0, 0.0, 16]
    assert len(record["history"]) == 5 + 25 + 5 and not record["discriminator_features"]
    assert Image.open(out / "comparison.png").size[0] > 2 * 16
    latent = json.loads((out / "latent.json").read_text())
    assert latent["checkpoint"] == "pigan-tiny" and "--latent" in latent["render"]
    assert main(["render", "--checkpoint", "pigan-tiny", "--init-seed", "3", "--latent",
                 str(out / "latent.safetensors"),
                 "--yaw", "0", "--pitch", "0", "--resolution", "16", "--out", str(tmp_path / "again"),
                 "--no-progress"]) == 0
    again = np.asarray(Image.open(tmp_path / "again" / "latent_view00.png"), dtype=np.int16)
    assert np.abs(again - np.asarray(Image.open(out / "reconstruction.png"), dtype=np.int16)).max() <= 1


def test_a_corrupt_image_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    assert main(["invert", str(bad), "--checkpoint", "pigan-tiny", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("aware3d invert: error: cannot read image") and str(bad) in err[0]
    assert main(["invert", str(tmp_path / "missing.jpg"), "--checkpoint", "pigan-tiny"]) == 2
    assert "not found" in capsys.readouterr().err


def test_options_that_do_not_apply_and_missing_lpips_weights_are_one_line_errors(tmp_path, capsys):
    write_png(tmp_path / "p.png", torch.zeros(3, 8, 8))
    assert main(["invert", str(tmp_path / "p.png"), "--checkpoint", "pigan-tiny", "--light", "0", "0", "0", "0"]) == 2
    assert "--light do not apply to invert" in capsys.readouterr().err
    assert main(["invert", str(tmp_path / "p.png"), "--checkpoint", "pigan-tiny", "--crop", "landmarks"]) == 2
    assert "--crop landmarks needs --landmarks" in capsys.readouterr().err
    missing = tmp_path / "vgg16.pth"
    assert main(["invert", str(tmp_path / "p.png"), "--checkpoint", "pigan-tiny", "--resolution", "16",
                 "--lpips", "0.5",
                 "--lpips-vgg", str(missing), "--lpips-lin", str(missing), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0] and "vgg16-397923af.pth" in err[0]


def test_a_latent_file_refuses_another_family_and_a_damaged_file(G, tmp_path):
    space = G.inversion_space()
    angles = CameraAngles(torch.tensor([1.6]), torch.tensor([1.5]))
    path = write_latent(tmp_path / "latent.safetensors", G, space.latent(space.zero_offsets()), angles,
                        space.values(space.zero_offsets()))
    back = read_latent(path, G)
    assert torch.equal(back.latent.w, space.latent(space.zero_offsets()).w) and back.yaw == pytest.approx(1.6)
    with pytest.raises(LatentFileError, match="holds a pigan latent"):
        read_latent(path, build_generator("eg3d-tiny"))
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(LatentFileError, match="not a readable safetensors"):
        read_latent(tmp_path / "bad.safetensors", G)


# ------------------------------------------------------------------------------------- pictures and framing
def test_pictures_of_any_mode_and_aspect_are_read(tmp_path):
    rgba = np.zeros((5, 9, 4), np.uint8)
    rgba[..., 0], rgba[1:4, 2:7, 3] = 255, 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    grey16 = (np.arange(4 * 6, dtype=np.uint16).reshape(4, 6) * 2000)
    Image.fromarray(grey16).save(tmp_path / "b.png")
    a, b = read_picture(tmp_path / "a.png"), read_picture(tmp_path / "b.png")
    assert a.rgb.shape == (3, 5, 9) and a.alpha is not None and float(a.alpha.sum()) == 15
    assert float(a.rgb[0, 2, 4]) == 1.0 and float(a.rgb[0, 0, 0]) == 0.0  # transparent: mid grey
    assert b.rgb.shape == (3, 4, 6) and b.alpha is None and float(b.rgb.max()) > 0.3  # 16 bit scaled, not clipped
    with pytest.raises(ImageReadError, match="not found"):
        read_picture(tmp_path / "none.png")


def disk_picture(height: int, width: int, cx: float, cy: float, r: float) -> Picture:
    """A red disk of radius ``r`` at (cx, cy) (pixels) on a grey background."""
    yy, xx = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    inside = ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).float()
    rgb = torch.stack([0.8 * inside + 0.1 * (1 - inside), 0.1 * (1 - inside) - 0.6 * inside,
                       0.1 * (1 - inside) - 0.6 * inside])
    return Picture(rgb, None, "disk")


def test_auto_crop_puts_the_foreground_where_the_training_framing_has_it():
    """A small off-centre disk on a wide picture comes out spanning 0.5 of the side, centred at (0.5, 0.6)."""
    picture = disk_picture(60, 100, cx=70, cy=20, r=8)
    crop = auto_crop(picture, 32, Framing(0.5, 0.6, 0.5), threshold=0.08)
    cx, cy, w, h = foreground_box(foreground_mask(crop.target[0]))
    assert cx / 32 == pytest.approx(0.5, abs=0.04) and cy / 32 == pytest.approx(0.6, abs=0.04)
    assert max(w, h) / 32 == pytest.approx(0.5, abs=0.07)
    # The crop reaches past the picture's top: filled with the background colour, not black.
    assert float(crop.target[0, 1, 0].mean()) == pytest.approx(0.1, abs=0.02)


def test_invert_crop_auto_frames_the_picture_as_told(tmp_path):
    """aware3d invert --crop auto with the framing given: the crop box is the disk's box scaled to the extent."""
    write_png(tmp_path / "disk.png", disk_picture(40, 70, cx=50, cy=20, r=8).rgb)
    assert main(["invert", str(tmp_path / "disk.png"), "--checkpoint", "pigan-tiny", "--resolution", "16", "--crop",
                 "auto", "--crop-extent", "0.5", "--crop-centre", "0.5", "0.5", "--steps", "2", "--refine-steps", "0",
                 "--search-steps", "1", "--search-grid", "1", "1", "--video-frames", "0", "--mesh-grid", "0",
                 "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    left, top, side = json.loads((tmp_path / "o" / "inversion.json").read_text())["crop"]["box"]
    assert side == pytest.approx(16 / 0.5, abs=2) and left + side / 2 == pytest.approx(50, abs=1)
    assert top + side / 2 == pytest.approx(20, abs=1)


def test_similarity_transform_recovers_a_known_one():
    src = torch.rand(68, 2, generator=torch.Generator().manual_seed(0)) * 50
    angle, scale, shift = 0.3, 1.7, torch.tensor([4.0, -2.0])
    R = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    s, R_found, t = similarity_transform(src, scale * src @ R.T + shift)
    assert s == pytest.approx(scale, rel=1e-6) and torch.allclose(R_found.float(), R, atol=1e-6)
    assert torch.allclose(t.float(), shift, atol=1e-4)


class KnownLandmarks:
    """A landmark source that 'finds' given points (the hook's protocol: images -> (B, K, 2) pixel xy)."""

    def __init__(self, points: torch.Tensor):
        self.points = points

    def landmarks(self, images: torch.Tensor) -> torch.Tensor:
        return self.points.expand(len(images), -1, -1)


def test_landmark_alignment_undoes_a_similarity():
    """A picture that is a scaled, rotated and shifted copy of a reference is mapped back onto it when its landmarks
    are the reference's landmarks moved the same way."""
    reference = disk_picture(32, 32, cx=12, cy=18, r=6).rgb + disk_picture(32, 32, cx=22, cy=10, r=3).rgb
    template = torch.tensor([[12.0, 18.0], [22.0, 10.0], [8.0, 8.0], [25.0, 25.0]])
    angle, scale, shift = 0.4, 2.0, torch.tensor([10.0, 3.0])
    R = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    # The picture: each of its pixels p shows the reference at R^T (p - shift) / scale.
    size = 80
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    src = (torch.stack([xx.reshape(-1), yy.reshape(-1)], 1) - shift) @ R / scale
    grid = (src / 32 * 2 - 1).reshape(1, size, size, 2)
    picture = torch.nn.functional.grid_sample(reference[None], grid, align_corners=False)[0]
    moved = scale * template @ R.T + shift
    source = KnownLandmarks(moved[None])
    crop = landmark_crop(Picture(picture, None, "moved"), 32, source.landmarks(picture[None])[0], template)
    assert float(psnr(crop.target, reference[None].clamp(-1, 1))) > 22


# ------------------------------------------------------------------------------------- losses and spaces
def test_loss_terms_vanish_on_the_target_and_grow_away_from_it():
    target = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(1)) * 2 - 1
    loss = ReconstructionLoss(target, LossConfig())
    noisy = (target + 0.2 * torch.randn(1, 3, 24, 24, generator=torch.Generator().manual_seed(2))).clamp(-1, 1)
    terms = loss.terms(torch.cat([target, noisy]))
    assert set(terms) == {"pixel", "msssim"} and float(terms["pixel"][0]) == 0 and float(terms["msssim"][0]) < 1e-6
    assert float(terms["pixel"][1]) > 0 and float(terms["msssim"][1]) > 0.01
    feats = [torch.ones(2, 4, 3, 3), torch.ones(2, 8, 2, 2)]
    assert float(feature_distance(feats, [f[:1] for f in feats])[0]) == 0
    assert psnr(noisy, noisy).item() > 100


def test_every_family_declares_a_latent_space_that_composes_into_its_synthesis_latent():
    for name, family in sorted(families().items()):
        G = build_generator(family.tiny.model, seed=0).eval()
        space = G.inversion_space(num_samples=64)
        assert isinstance(space, LatentSpace) and space.stages[0] == 0, name
        mean = space.latent(space.zero_offsets())
        with torch.no_grad():
            sampled = G.mapping(G.z_from_seeds([0]), 1.0)
        assert mean.w.shape == sampled.shape, name  # what synthesis takes
        batch = space.latent(space.zero_offsets(3))
        assert batch.w.shape[0] == 3, name
        out = G.synthesis(mean.w, G.cameras([1.6], [1.5]), condition=mean.condition, resolution=8,
                          render=G.eval_render_config(4))
        assert torch.isfinite(out.image).all(), name


def test_a_latent_space_refuses_unnamed_or_non_positive_groups():
    with pytest.raises(ValueError, match="uniquely named"):
        LatentSpace((), lambda v: SynthesisLatent(torch.zeros(1)))
    with pytest.raises(ValueError, match="scale must be positive"):
        LatentSpace((LatentGroup("w", torch.zeros(1, 2), torch.zeros(1, 2)),), lambda v: SynthesisLatent(v["w"]))


def test_the_search_grid_spans_the_prior_quantiles(G):
    grid = pose_grid(G.config.pose, SearchConfig(yaw_steps=5, pitch_steps=3, coverage=0.9))
    yaw0, pitch0 = G.config.pose.frontal()
    assert len(grid.yaw) == 15
    # pi-GAN's gaussian prior (std 0.3 / 0.155): the 5th..95th percentiles are about +-1.645 std.
    assert float(grid.yaw.max() - yaw0) == pytest.approx(1.645 * 0.3, abs=0.04)
    assert float(grid.pitch.min() - pitch0) == pytest.approx(-1.645 * 0.155, abs=0.02)


# ------------------------------------------------------------------------------------- a face code read from the picture
def test_a_held_condition_joins_the_spaces_own():
    light, face = torch.ones(1, 4), torch.full((1, 5), 2.0)
    space = LatentSpace((LatentGroup("w", torch.zeros(1, 3), torch.ones(1, 3)),),
                        lambda v: SynthesisLatent(v["w"], Condition(light=light)))
    held = space.holding(Condition(face=face)).latent(space.zero_offsets())
    assert torch.equal(held.condition.light, light) and torch.equal(held.condition.face, face)
    assert held.condition.class_label is None and torch.equal(held.w, torch.zeros(1, 3))


def test_cgof_inversion_keeps_the_face_code_a_face_regressor_reads_from_the_picture(tmp_path, capsys):
    G = build_generator("cgof-tiny", seed=0).eval()
    code = G.face_code(G.z_from_seeds([2]))
    assert torch.allclose(G.face_code_of(G.whitening.unwhiten(code)), code, atol=1e-4)  # coefficients <-> code
    regressor = FaceCoefficientRegressor(RegressorConfig(image_size=16, channels=(8, 16), hidden=32), seed=1)
    save_regressor(regressor, tmp_path / "regressor")
    with torch.no_grad():
        target = G(G.z_from_seeds([2]), G.cameras(*([v] for v in G.config.pose.frontal())), resolution=16).image
    write_png(tmp_path / "face.png", target[0])
    args = ["invert", str(tmp_path / "face.png"), "--resolution", "16", "--steps", "2", "--refine-steps", "0",
            "--search-steps", "1", "--search-grid", "1", "1", "--video-frames", "0", "--mesh-grid", "0",
            "--no-progress", "--face-regressor", str(tmp_path / "regressor")]
    assert main([*args, "--checkpoint", "cgof-tiny", "--out", str(tmp_path / "out")]) == 0
    picture = torch.from_numpy(np.asarray(Image.open(tmp_path / "out" / "input.png"), dtype=np.float32))
    with torch.no_grad():
        read = regressor.eval().reconstruct((picture.permute(2, 0, 1)[None] / 127.5 - 1)).coefficients
    kept = read_latent(tmp_path / "out" / "latent.safetensors", G).latent.condition.face
    assert torch.allclose(kept, G.face_code_of(read), atol=1e-4)
    assert not torch.allclose(kept, torch.zeros_like(kept), atol=1e-2)  # not the mean face the search starts from
    assert main([*args, "--checkpoint", "pigan-tiny", "--out", str(tmp_path / "other")]) == 2
    assert "--face-regressor sets the face code" in capsys.readouterr().err
