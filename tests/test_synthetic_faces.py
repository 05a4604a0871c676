"""``synthetic-faces`` (aware3d.data.synthetic.faces), the face regressor trained on it and the two verbs
(``aware3d face-regressor train | eval``, ``aware3d faces show``)."""

from __future__ import annotations

import json
import math
from dataclasses import fields

import pytest
import torch

from aware3d.cameras import Cameras, generate_rays
from aware3d.cli.main import main
from aware3d.data import open_dataset
from aware3d.data.synthetic import SyntheticFaceConfig, SyntheticFaceDataset, SyntheticFaceSample, make_synthetic
from aware3d.data.synthetic.faces import IBUG_MIRROR, camera_relative_pose, euler_angles
from aware3d.faces import FaceCoefficients, MorphableFaceModel, euler_rotation, load_regressor, save_bfm_mat
from aware3d.faces import synthetic_face_model
from aware3d.tools.face_regressor import TrainSettings, train_on_synthetic_faces
from aware3d.tools.faces import inner_lip_gap, mouth_cavity_pixels

RES = 24


@pytest.fixture(scope="module")
def faces() -> SyntheticFaceDataset:
    return SyntheticFaceDataset(resolution=RES, length=100)


def _assert_same(a: SyntheticFaceSample, b: SyntheticFaceSample) -> None:
    for f in fields(a):
        assert torch.equal(getattr(a, f.name), getattr(b, f.name)), f.name


def _frontal(yaw_offset: float = 0.0, pitch_offset: float = 0.0) -> Cameras:
    return Cameras.from_angles(math.pi / 2 + yaw_offset, math.pi / 2 - pitch_offset, 12.0, 1.0)


# ------------------------------------------------------------------------------------------ the data

def test_items_are_deterministic_per_item_and_batch(faces):
    batch = faces.get_batch([7, 3, 11])
    assert isinstance(batch, SyntheticFaceSample) and batch.image.shape == (3, 3, RES, RES)
    _assert_same(batch[1], faces[3])
    _assert_same(batch[1], SyntheticFaceDataset(resolution=RES, length=100).get_batch([3])[0])  # a fresh instance
    _assert_same(SyntheticFaceSample.collate([faces[7], faces[11]]), faces.get_batch([7, 11]))
    assert torch.equal(faces.sample_params(3)["coefficients"], batch.coefficients[1])
    other = SyntheticFaceDataset(resolution=RES, length=100, seed=1)[3]
    assert not torch.equal(other.image, batch.image[1]) and not torch.equal(other.coefficients, batch.coefficients[1])
    assert faces.config.face_model == "synthetic" and type(make_synthetic("synthetic-faces", length=3)) is SyntheticFaceDataset


def test_coefficients_follow_the_documented_draws(faces):
    table = FaceCoefficients.from_vector(torch.stack([faces.sample_params(i)["coefficients"] for i in range(100)]))
    cfg = faces.config
    assert bool((table.expression[:, 0] >= 0).all())  # the jaw never presses the lips through each other
    assert abs(float(table.identity.std()) - cfg.identity_std) < 0.05
    assert abs(float(table.texture.std()) - cfg.texture_std) < 0.05
    assert abs(float(table.expression[:, 1:].std()) - cfg.expression_std) < 0.03
    assert float(table.translation.abs().max()) < 1e-4  # cameras at radius 1 look at the face: Deep3D's camera
    # the face's yaw mirrors the camera's (std 0.3 around frontal)
    assert 0.2 < float(table.angles[:, 1].std()) < 0.4 and float(table.angles[:, 2].abs().max()) < 0.3
    stats = faces.coefficient_statistics(count=64)
    assert torch.allclose(stats.groups["identity"].mean, table.identity[:64].double().mean(0), atol=1e-6)


def test_camera_relative_pose_is_the_face_turned_against_the_camera():
    angles = (torch.rand(50, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 0.5) * 2.5
    torch.testing.assert_close(euler_angles(euler_rotation(angles)), angles)  # the inverse of the model's Euler map
    zero = torch.zeros(1, 6)
    torch.testing.assert_close(camera_relative_pose(zero, _frontal(), 0.1), zero, atol=1e-6, rtol=0)
    turned = camera_relative_pose(zero, _frontal(yaw_offset=0.4), 0.1)  # camera toward -x: face yaws toward +x
    torch.testing.assert_close(turned, torch.tensor([[0.0, 0.4, 0.0, 0.0, 0.0, 0.0]]), atol=1e-5, rtol=0)
    above = camera_relative_pose(zero, _frontal(pitch_offset=0.2), 0.1)  # camera above: the face tilts toward it
    torch.testing.assert_close(above, torch.tensor([[0.2, 0.0, 0.0, 0.0, 0.0, 0.0]]), atol=1e-5, rtol=0)
    far = Cameras.from_angles(math.pi / 2, math.pi / 2, 12.0, 1.5)  # 0.5 world units farther: 5 model units back
    torch.testing.assert_close(camera_relative_pose(zero, far, 0.1)[0, 3:], torch.tensor([0.0, 0.0, -5.0]),
                               atol=1e-4, rtol=0)


def _ray_cast(vertices: torch.Tensor, triangles: torch.Tensor, origin: torch.Tensor, dirs: torch.Tensor,
              chunk: int = 48) -> torch.Tensor:
    """Nearest hit distance (R,) of rays (origin (3,), unit dirs (R, 3)) against a mesh (both sides), inf
    where none: an independent Moller-Trumbore ray cast in float64."""
    v0, v1, v2 = (vertices[triangles[:, k]].double() for k in range(3))
    e1, e2 = v1 - v0, v2 - v0
    s = origin.double() - v0                                        # (F, 3)
    q = torch.cross(s, e1, dim=-1)
    out = []
    for d in dirs.double().split(chunk):
        p = torch.cross(d[:, None].expand(-1, e2.shape[0], -1), e2[None].expand(d.shape[0], -1, -1), dim=-1)
        det = (e1[None] * p).sum(-1)
        u = (s[None] * p).sum(-1) / det
        v = (d[:, None] * q[None]).sum(-1) / det
        t = (e2 * q).sum(-1)[None] / det
        hit = (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0) & (det.abs() > 1e-18)
        out.append(torch.where(hit, t, torch.full_like(t, math.inf)).amin(1))
    return torch.cat(out)


def test_mask_depth_and_landmarks_agree_with_the_models_mesh(faces):
    sample = faces.get_batch([5])
    p = faces.sample_params(5)
    canonical = FaceCoefficients(p["identity"][None], p["expression"][None], p["texture"][None], p["lighting"][None],
                                 torch.zeros(1, 6))
    mesh = MorphableFaceModel(synthetic_face_model())(canonical)  # the face at the origin, frontal pose
    cams = Cameras(sample.cam2world, sample.intrinsics)
    origin, dirs = generate_rays(cams, RES)
    hit = _ray_cast(mesh.vertices[0], mesh.triangles, origin[0, 0], dirs[0])
    mask = sample.mask.reshape(-1) > 0
    boundary = (mask != torch.isfinite(hit)).sum()
    assert int(boundary) <= 2 and int(mask.sum()) > 0.3 * RES * RES  # the same silhouette (float ties at edges)
    both = mask & torch.isfinite(hit)
    torch.testing.assert_close(sample.depth.reshape(-1)[both].double(), hit[both], atol=2e-5, rtol=0)
    assert bool((sample.depth.reshape(-1)[~mask] == 0).all())
    # landmarks: the model's landmark vertices, projected by the pinhole formula
    torch.testing.assert_close(sample.landmarks_3d[0], mesh.landmarks[0], atol=2e-5, rtol=0)
    R, o, K = sample.cam2world[0, :3, :3], sample.cam2world[0, :3, 3], sample.intrinsics[0]
    cam = (mesh.landmarks[0] - o) @ R
    xy = torch.stack([K[0, 0] * cam[:, 0] / cam[:, 2] + K[0, 2], K[1, 1] * cam[:, 1] / cam[:, 2] + K[1, 2]], -1) * RES - 0.5
    torch.testing.assert_close(sample.landmarks[0], xy, atol=1e-3, rtol=0)
    # visible inner-face landmarks sit on the surface their pixel shows (the jaw contour may straddle the silhouette)
    vis = sample.landmark_visible[0] & (torch.arange(68) >= 17)
    col, row = sample.landmarks[0, vis].round().long().unbind(-1)
    assert bool((sample.mask[0, 0, row, col] > 0).all()) and int(vis.sum()) > 40
    gap = sample.depth[0, 0, row, col] - (sample.landmarks_3d[0, vis] - o).norm(dim=-1)
    footprint = 1.0 / (float(K[0, 0]) * RES)  # world units per pixel at the camera's distance 1
    assert float(gap.min()) > -faces.config.landmark_tolerance_px * footprint  # nothing nearer hides them
    assert float(gap.abs().median()) < 0.5 * footprint  # and they lie on the surface (up to half a pixel away)


def test_landmarks_hide_behind_the_head_as_the_camera_turns(faces):
    codes = FaceCoefficients.zeros(2)
    cams = Cameras.cat([_frontal(), _frontal(yaw_offset=1.0)])  # the second camera sees the subject's right side
    out = faces.render(codes, cams, resolution=48)
    eyes_brows_mouth = list(range(17, 27)) + list(range(36, 68))
    assert bool(out.landmark_visible[0, eyes_brows_mouth].all())
    far_jaw, near_jaw = list(range(12, 17)), list(range(0, 5))  # index 0 starts on the subject's right (model -x)
    assert int((~out.landmark_visible[1, far_jaw]).sum()) >= 2 and bool(out.landmark_visible[1, near_jaw].all())
    # the mirror permutation of iBUG-68 maps the model's landmarks onto their reflections
    lm = MorphableFaceModel(synthetic_face_model())(FaceCoefficients.zeros(1)).landmarks[0]
    reflected = lm[list(IBUG_MIRROR)] * torch.tensor([-1.0, 1.0, 1.0])
    assert float((reflected - lm).norm(dim=-1).max()) < 0.01


def test_opening_the_jaw_opens_the_mouth_in_depth(faces):
    codes = FaceCoefficients.zeros(2)
    codes.expression[1, 0] = 2.5
    out = faces.render(codes, _frontal(), resolution=64)
    gap = inner_lip_gap(out.landmarks)
    cavity = mouth_cavity_pixels(out)
    assert float(gap[1] - gap[0]) > 5 and int(cavity[0]) < 10 and int(cavity[1]) > 40
    centre = ((out.landmarks[:, 62] + out.landmarks[:, 66]) / 2).round().long()  # between the inner lips
    depth = torch.stack([out.depth[b, 0, centre[b, 1], centre[b, 0]] for b in range(2)])
    lips = (out.landmarks_3d[:, 62] - out.cameras.origins).norm(dim=-1)
    assert float(depth[1] - lips[1]) > float(depth[0] - lips[0]) + 0.01  # the view into the cavity
    assert bool((out.mask[:, 0, centre[:, 1], centre[:, 0]] > 0).all())  # still covered: a closed surface


def test_image_adapter_and_dataset_tool_serve_faces(tmp_path):
    data = open_dataset("synthetic-faces", RES, mirror=True, length=4)
    assert "coefficients" in data.extra_names and "expression" in data.extra_names
    batch = data.get_batch([1, 5])
    torch.testing.assert_close(batch.image[1], batch.image[0].flip(-1))
    assert torch.equal(batch.extras["coefficients"][0], batch.extras["coefficients"][1])
    truth = data.ground_truth([1, 5])
    flipped = truth.landmarks[0][list(IBUG_MIRROR)]
    torch.testing.assert_close(truth.landmarks[1][:, 0], (RES - 1) - flipped[:, 0])
    assert torch.equal(truth.landmark_visible[1], truth.landmark_visible[0][list(IBUG_MIRROR)])
    from aware3d.tools.dataset import DatasetOptions, run

    summary = run(DatasetOptions(source="synthetic-faces", out=str(tmp_path / "faces.zip"), resolution=16, count=3))
    assert summary["count"] == 3 and summary["camera_angles"]


# ------------------------------------------------------------------------------------------ the regressor

def test_regressor_beats_the_dataset_mean_on_heldout_faces():
    """~15 s: 32 px, a narrower face distribution than the preset's (identity / texture std 0.2, the
    expression components besides the jaw std 0.05) so a few hundred steps suffice; the benchmark
    (benchmarks/face_regressor.py) measures the preset's distribution."""
    config = SyntheticFaceConfig(resolution=32, identity_std=0.2, texture_std=0.2, expression_std=0.05, supersample=1,
                                 length=2_000_000)
    settings = TrainSettings(train_items=384, eval_items=128, steps=600, batch=32, width=16)
    _, record = train_on_synthetic_faces(SyntheticFaceDataset(config), settings)
    errors = record["errors"]
    assert errors["expression"]["ratio"] < 0.6, errors["expression"]
    assert errors["jaw_open"]["ratio"] < 0.6, errors["jaw_open"]
    assert errors["pose"]["ratio"] < 0.6, errors["pose"]
    assert errors["landmarks"]["ratio"] < 0.6, errors["landmarks"]


def test_face_regressor_train_and_eval_verbs_write_their_files(tmp_path):
    out = tmp_path / "regressor"
    args = ["--resolution", "16", "--steps", "3", "--train-items", "16", "--eval-items", "4", "--width", "8",
            "--no-progress"]
    assert main(["face-regressor", "train", "--out", str(out), *args]) == 0
    for name in ("config.json", "regressor.safetensors", "coefficient_statistics.safetensors", "heldout.json",
                 "heldout.png"):
        assert (out / name).is_file(), name
    trained = json.loads((out / "heldout.json").read_text())
    assert set(trained["errors"]) >= {"expression", "pose", "landmarks"}
    assert {"error", "baseline", "ratio", "unit"} <= set(trained["errors"]["pose"])
    assert load_regressor(out).config.image_size == 16
    again = tmp_path / "eval"
    assert main(["face-regressor", "eval", "--checkpoint", str(out), "--out", str(again)]) == 0
    evaluated = json.loads((again / "heldout.json").read_text())
    for name, figure in trained["errors"].items():  # the same held-out items, the same baseline
        assert figure["error"] == pytest.approx(evaluated["errors"][name]["error"], rel=1e-5), name
        assert figure["baseline"] == pytest.approx(evaluated["errors"][name]["baseline"], rel=1e-5), name


def test_faces_show_and_a_bfm_file_through_face_model(tmp_path):
    bfm = tmp_path / "BFM_model_front.mat"
    save_bfm_mat(synthetic_face_model(), bfm)
    out = tmp_path / "show"
    assert main(["faces", "show", "--out", str(out), "--face-model", str(bfm), "--resolution", "32",
                 "--columns", "3"]) == 0
    for model in ("synthetic", "bfm"):
        summary = json.loads((out / f"faces_{model}.json").read_text())
        assert (out / f"faces_{model}.png").is_file() and summary["rows"][1] == "expression"
        gap = summary["mouth"]["inner_lip_gap_px"]
        assert gap[0] < gap[1] < gap[2]  # the jaw opens across the expression row
    assert main(["face-regressor", "train", "--out", str(tmp_path / "r"), "--face-model", str(bfm), "--resolution",
                 "16", "--steps", "2", "--train-items", "8", "--eval-items", "2", "--width", "8", "--no-progress"]) == 0
    source = json.loads((tmp_path / "r" / "config.json").read_text())["source"]
    assert source["face_model"] == str(bfm) and source["face_model_name"] == "bfm"


def test_a_missing_face_model_is_a_one_line_error(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "BFM_model_front.mat"
    assert main(["faces", "show", "--out", str(tmp_path), "--face-model", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(missing) in err and "Basel" in err
    assert main(["face-regressor", "train", "--out", str(tmp_path / "r"), "--face-model", str(missing),
                 "--steps", "1"]) == 2
    assert "not found" in capsys.readouterr().err
