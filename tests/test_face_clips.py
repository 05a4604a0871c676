"""aware3d face-clip: the pose ellipse, the per-frame codes of the three clips, the files, and the refusal of families
without a face condition (cgof-tiny random init at 16-32 px, few frames)."""

import json

import numpy as np
import pytest
import torch

from aware3d.api import load
from aware3d.tools import face_clips
from aware3d.tools.face_clips import (FaceClipOptions, clip_plan, ellipse_pose_path, interpolate_keys,
                                      official_expression_codes)

EYES = slice(36, 48)
"""iBUG-68 landmarks of the eyes."""
MOUTH = slice(48, 68)
"""iBUG-68 landmarks of the lips."""


@pytest.fixture(scope="module")
def cgof():
    torch.manual_seed(0)
    return load("cgof-tiny", device="cpu", seed=0)


def options(**kw) -> FaceClipOptions:
    return FaceClipOptions(**{"checkpoint": "cgof-tiny", "progress": False, "resolution": 16, "num_samples": 4, **kw})


def test_ellipse_equal_arc_length_and_max_radius():
    yaw_std, pitch_std = 0.3, 0.155
    path = ellipse_pose_path(200, 1.2, yaw_std, pitch_std).numpy()
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
    assert steps.max() / steps.min() - 1 < 1e-3
    radius = np.hypot(path[:, 0] / yaw_std, path[:, 1] / pitch_std)
    assert radius.max() <= 1.2 + 1e-9 and radius.max() > 1.2 * (1 - 1e-3)
    assert radius[0] < 1e-9 and radius[-1] < 1e-9  # grows from the centre and shrinks back
    # an ellipse scaled by the stds: mid-clip (theta = 4 pi) the yaw offset reaches pose_range yaw stds
    assert 0.99 * 1.2 * yaw_std < np.abs(path[:, 0]).max() <= 1.2 * yaw_std + 1e-9
    assert np.abs(path[:, 1]).max() <= 1.2 * pitch_std + 1e-9


def test_ellipse_refuses_a_pose_prior_without_spread():
    with pytest.raises(ValueError, match="std"):
        ellipse_pose_path(10, 1.2, 0.0, 0.1)


def test_official_expressions_deterministic_and_distinct():
    codes = official_expression_codes(64)
    assert codes.shape == (9, 64)
    assert torch.equal(codes, official_expression_codes(64))
    assert torch.cdist(codes, codes).add(torch.eye(9) * 1e9).min() > 5  # no two picks alike (N(0, I): ~11 apart)


def test_interpolation_hits_keys():
    keys = torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    open_path = interpolate_keys(keys, 5, closed=False)  # 2 segments, 2 frames each + the end
    assert torch.equal(open_path[0], keys[0]) and torch.equal(open_path[2], keys[1]) and torch.equal(open_path[4], keys[2])
    closed = interpolate_keys(keys, 6, closed=True)  # 3 segments, back toward key 0
    assert torch.equal(closed[0], keys[0]) and torch.equal(closed[2], keys[1]) and torch.equal(closed[4], keys[2])
    assert torch.allclose(closed[5], (keys[2] + keys[0]) / 2)


def test_expression_clip_moves_only_the_expression(cgof):
    layout = cgof.face_code_layout()
    plan = clip_plan(cgof, options(clip="expression", num_frames=9))
    subject = cgof.face_code(cgof.z_from_seeds([0]))
    others = torch.ones(layout.dim, dtype=torch.bool)
    others[layout.expression] = False
    assert torch.equal(plan.face[:, others], subject[:, others].expand(9, -1))
    assert torch.equal(plan.z, plan.z[:1].expand(9, -1))
    assert torch.allclose(plan.face[:, layout.expression], interpolate_keys(official_expression_codes(64), 9, True))
    assert (plan.face[:, layout.expression].std(0) > 0.1).all()
    # the conditioning mesh: the lips move, the eyes (nearly) stay; the mouth's depth changes more than the eyes'
    yaw, pitch = plan.angles.T.tolist()
    maps = cgof.face_renders(plan.face, cgof.cameras(yaw, pitch), 32)
    lm = maps.landmarks
    mouth_motion = (lm[:, MOUTH] - lm[:1, MOUTH]).norm(dim=-1).amax()
    eye_motion = (lm[:, EYES] - lm[:1, EYES]).norm(dim=-1).amax()
    assert mouth_motion > 2 and eye_motion < 0.35 * mouth_motion
    gap = (lm[:, 62] - lm[:, 66]).norm(dim=-1)  # inner lips: the mouth opens and closes
    assert gap.max() - gap.min() > 1.5

    def depth_change(rows, cols):
        region = maps.mesh_depth[:, 0, rows, cols]
        both = (maps.mask[:, 0, rows, cols] * maps.mask[:1, 0, rows, cols]) > 0
        return ((region - region[:1]).abs() * both).sum() / both.sum()
    mouth_box = lm[0, MOUTH].round().long()
    eye_box = lm[0, EYES].round().long()
    mouth = depth_change(slice(mouth_box[:, 1].min(), mouth_box[:, 1].max() + 1),
                         slice(mouth_box[:, 0].min(), mouth_box[:, 0].max() + 1))
    eyes = depth_change(slice(eye_box[:, 1].min() - 1, eye_box[:, 1].max() + 2),
                        slice(eye_box[:, 0].min(), eye_box[:, 0].max() + 1))
    assert mouth > 2 * eyes


def test_expression_file_and_multiplier(cgof, tmp_path):
    codes = torch.randn(2, 64, generator=torch.Generator().manual_seed(3))
    np.save(tmp_path / "e.npy", codes.numpy())
    layout = cgof.face_code_layout()
    plan = clip_plan(cgof, options(clip="expression", num_frames=4, expressions=str(tmp_path / "e.npy"),
                                   exp_multiplier=0.5))
    assert torch.allclose(plan.face[0, layout.expression], codes[0] * 0.5)
    assert torch.allclose(plan.face[2, layout.expression], codes[1] * 0.5)
    (tmp_path / "bad.json").write_text(json.dumps([[0.0] * 10]))
    with pytest.raises(ValueError, match=r"\(K, 64\)"):
        clip_plan(cgof, options(clip="expression", expressions=str(tmp_path / "bad.json")))


def test_identity_clip_endpoints_are_the_subjects(cgof):
    layout = cgof.face_code_layout()
    plan = clip_plan(cgof, options(clip="identity", subjects=[3, 5, 7], num_frames=7))
    z = cgof.z_from_seeds([3, 5, 7])
    codes = cgof.face_code(z)
    assert torch.equal(plan.z[0], z[0]) and torch.equal(plan.z[3], z[1]) and torch.equal(plan.z[-1], z[2])
    expression = codes[0, layout.expression]
    assert torch.equal(plan.face[:, layout.expression], expression.expand(7, -1))
    keep = torch.ones(layout.dim, dtype=torch.bool)
    keep[layout.expression] = False
    assert torch.equal(plan.face[0, keep], codes[0, keep]) and torch.equal(plan.face[-1, keep], codes[2, keep])
    assert not torch.equal(plan.face[1, layout.identity], codes[0, layout.identity])


def test_pose_clip_cameras_follow_the_ellipse(cgof):
    pose = cgof.config.pose
    plan = clip_plan(cgof, options(clip="pose", num_frames=12, pose_range=1.0))
    offsets = plan.angles - torch.tensor(pose.frontal(), dtype=torch.float64)
    assert torch.allclose(offsets, ellipse_pose_path(12, 1.0, pose.yaw_std, pose.pitch_std))
    assert torch.equal(plan.face, plan.face[:1].expand(12, -1))


def test_run_writes_files_and_renders_the_planned_codes(cgof, tmp_path, monkeypatch):
    monkeypatch.setattr(face_clips, "load_model", lambda opts: cgof)
    passed = []
    synthesis = type(cgof).synthesis

    def recording(self, w, cameras, **kw):
        passed.append(kw["condition"].face.clone())
        return synthesis(self, w, cameras, **kw)
    monkeypatch.setattr(type(cgof), "synthesis", recording)
    opts = options(clip="expression", num_frames=3, depth=True, normals=True, out=str(tmp_path), name="clip.gif")
    record = face_clips.run(opts)
    assert torch.equal(torch.cat(passed), clip_plan(cgof, opts).face)
    for folder in ("frames", "depth", "normals", "conditioning"):
        assert sorted(p.name for p in (tmp_path / folder).iterdir()) == ["0000.png", "0001.png", "0002.png"]
    from PIL import Image
    with Image.open(tmp_path / "clip.gif") as gif:
        assert gif.n_frames == 3 and gif.size == (16 * 4, 16)  # frame | mesh depth | mask | shaded mesh
    saved = json.loads((tmp_path / "clip.json").read_text())
    assert saved["tool"] == "face-clip" and saved["frames"] == 3 and len(saved["keys"]) == 9
    assert record["file"] == str(tmp_path / "clip.gif")


def test_a_family_without_a_face_condition_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"needs a model conditioned on a face \(families: cgof"):
        face_clips.run(options(checkpoint="pigan-tiny", out=str(tmp_path)))
    pigan = load("pigan-tiny", device="cpu", seed=0)
    assert pigan.face_code_layout() is None
    with pytest.raises(ValueError, match="no face condition"):
        pigan.face_code(pigan.z_from_seeds([0]))
