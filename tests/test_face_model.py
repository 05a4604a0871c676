"""The morphable face model substrate: the synthetic model's mesh and bases, the BFM .mat reader, the
coefficient -> mesh model (pose, normals, SH shading, frame) and the coefficient statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.io
import torch
import trimesh

from aware3d.faces import (
    COEFFICIENT_DIM, CoefficientStatistics, FaceCoefficients, FaceFrame, FaceModelData, MorphableFaceModel,
    euler_rotation, load_bfm_mat, load_face_model, save_bfm_mat, synthetic_face_model,
)

UPPER_FACE = list(range(17, 48))  # brows, nose, eyes
SQRT_PI = math.sqrt(math.pi)


@pytest.fixture(scope="module")
def data() -> FaceModelData:
    return synthetic_face_model()


@pytest.fixture(scope="module")
def model64(data) -> MorphableFaceModel:
    return MorphableFaceModel(data, dtype=torch.float64)


def coefficients(batch=1, seed=0, dtype=torch.float64, scale=1.0) -> FaceCoefficients:
    """Random coefficients: N(0, 1) bases, small lighting and pose."""
    g = torch.Generator().manual_seed(seed)

    def r(n: int, s: float) -> torch.Tensor:
        return torch.randn(batch, n, generator=g, dtype=dtype) * s

    return FaceCoefficients(identity=r(80, scale), expression=r(64, 0.5 * scale).abs(), texture=r(80, scale),
                            lighting=r(27, 0.2 * scale), pose=torch.cat([r(3, 0.2 * scale), r(3, 0.1 * scale)], 1))


def edges(triangles: torch.Tensor) -> torch.Tensor:
    return torch.cat([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])


def one_hot(group: str, index: int, value: float, dtype=torch.float64) -> FaceCoefficients:
    c = FaceCoefficients.zeros(1, dtype=dtype)
    getattr(c, group)[0, index] = value
    return c


# ---------------------------------------------------------------------------------- synthetic model

def test_synthetic_head_is_closed_outward_and_deterministic(data, model64):
    assert 2000 <= data.num_vertices <= 6000
    assert data.vertex_faces is not None and data.vertex_faces.shape[1] <= 8  # fits Deep3DFaceRecon's point_buf
    again = synthetic_face_model()
    for name in ("mean_shape", "identity_basis", "expression_basis", "mean_albedo", "albedo_basis", "triangles",
                 "landmarks"):
        assert torch.equal(getattr(data, name), getattr(again, name)), name
    for c in (FaceCoefficients.zeros(1, dtype=torch.float64), coefficients(seed=1)):
        c.pose.zero_()
        mesh = model64(c)
        tm = trimesh.Trimesh(mesh.vertices[0].numpy(), data.triangles.numpy(), process=False)
        assert tm.is_watertight and tm.is_winding_consistent
        assert tm.volume > 0  # counter-clockwise seen from outside
        nose_tip = mesh.normals[0, data.landmarks[30]]
        assert nose_tip[2] > 0.8  # the face looks toward +z
    # the mesh's own normals point away from the head's centre almost everywhere (not in the mouth/ears)
    mesh = model64(FaceCoefficients.zeros(1, dtype=torch.float64))
    out = ((mesh.vertices[0] - mesh.vertices[0].mean(0)) * mesh.normals[0]).sum(-1) > 0
    assert out.double().mean() > 0.97


def test_landmarks_sit_at_anatomical_places(data, model64):
    lm = model64(FaceCoefficients.zeros(1, dtype=torch.float64)).landmarks[0] / 0.1  # model units
    x, y, z = lm.unbind(-1)
    mirror = [(0, 16), (4, 12), (17, 26), (21, 22), (36, 45), (39, 42), (37, 44), (31, 35), (48, 54), (49, 53),
              (59, 55), (61, 63), (67, 65)]
    for a, b in mirror:  # iBUG order starts on the subject's right (image left, -x)
        assert x[a] < -0.02 and x[b] > 0.02 and abs(x[a] + x[b]) < 1e-9 and abs(y[a] - y[b]) < 1e-9, (a, b)
    for i in (8, 27, 28, 29, 30, 33, 51, 57, 62, 66):
        assert abs(x[i]) < 1e-9, i
    assert int(torch.argmin(y[:17])) == 8  # the chin is the lowest jaw point
    assert int(torch.argmax(z)) == 30  # the nose tip is the most forward landmark
    # top to bottom: brows, eyes, nose tip, nostrils, upper lip, inner lips, lower lip, chin
    order = [y[17:27].mean(), y[36:48].mean(), y[30], y[33], y[51], y[62], y[66], y[57], y[8]]
    assert all(a > b for a, b in zip(order, order[1:]))
    assert (y[37] > y[41]) and (y[44] > y[46]) and (x[36] < x[39]) and (x[42] < x[45])  # eye lids and corners
    assert (z[17:68] > 0.2).all()  # every face landmark is on the front


def test_jaw_opens_the_mouth_and_lowers_the_chin(model64):
    closed = model64(FaceCoefficients.zeros(1, dtype=torch.float64)).landmarks[0]
    opened = model64(one_hot("expression", 0, 1.5)).landmarks[0]
    gap_closed, gap_open = (closed[62] - closed[66]).norm(), (opened[62] - opened[66]).norm()
    assert gap_closed < 0.006 and gap_open > gap_closed + 0.012  # world units: the lips part by > 1.2 cm (0.1 model units)
    assert opened[8, 1] < closed[8, 1] - 0.008
    assert (opened[UPPER_FACE] - closed[UPPER_FACE]).abs().max() < 1e-9  # geometry below the mouth only


def test_mouth_widens_and_brows_rise(model64):
    neutral = model64(FaceCoefficients.zeros(1, dtype=torch.float64)).landmarks[0]
    wide = model64(one_hot("expression", 1, 1.5)).landmarks[0]
    assert (wide[54, 0] - wide[48, 0]) > (neutral[54, 0] - neutral[48, 0]) + 0.003
    raised = model64(one_hot("expression", 2, 1.5)).landmarks[0]
    assert (raised[17:27, 1] - neutral[17:27, 1]).min() > 0.003
    assert (raised[48:68] - neutral[48:68]).abs().max() < 1e-4  # the mouth stays
    assert torch.equal(model64(one_hot("expression", 0, 1.5)).albedo, model64(one_hot("texture", 0, 0.0)).albedo)


def test_identity_and_texture_fields_are_smooth(data):
    e = edges(data.triangles)
    length = (data.mean_shape[e[:, 0]] - data.mean_shape[e[:, 1]]).norm(dim=1)
    same_paint = (data.mean_albedo[e[:, 0]] - data.mean_albedo[e[:, 1]]).abs().amax(1) < 1e-9
    g = torch.Generator().manual_seed(3)
    for _ in range(4):
        shape_change = data.identity_basis @ torch.randn(80, generator=g, dtype=torch.float64)
        assert 0.03 < shape_change.norm(dim=1).max() < 0.4  # model units (decimetres): mm to cm
        slope = (shape_change[e[:, 0]] - shape_change[e[:, 1]]).norm(dim=1) / length
        assert slope.max() < 1.0  # no per-vertex noise: neighbours move together
        colour_change = data.albedo_basis @ torch.randn(80, generator=g, dtype=torch.float64)
        assert 0.05 < colour_change.norm(dim=1).max() < 0.6
        step = (colour_change[e[:, 0]] - colour_change[e[:, 1]]).norm(dim=1)[same_paint]
        assert step.max() < 0.25 * colour_change.norm(dim=1).max()  # smooth within each painted region
    for basis in (data.identity_basis, data.expression_basis, data.albedo_basis):
        assert (basis.flatten(0, 1).norm(dim=0) > 1e-3).all()  # every component does something


# ------------------------------------------------------------------------------------- the model

def test_vertex_normals_sum_unit_face_normals(data, model64):
    mesh = model64(FaceCoefficients.zeros(1, dtype=torch.float64))
    tm = trimesh.Trimesh((mesh.vertices[0] / 0.1).numpy(), data.triangles.numpy(), process=False)
    expected = np.zeros((data.num_vertices, 3))
    for corner in range(3):
        np.add.at(expected, data.triangles[:, corner].numpy(), tm.face_normals)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.abs(mesh.normals[0].numpy() - expected).max() < 1e-9
    c = coefficients(seed=4)
    posed, unposed = model64(c), model64(FaceCoefficients(c.identity, c.expression, c.texture, c.lighting,
                                                          torch.zeros_like(c.pose)))
    rot = euler_rotation(c.angles)
    assert torch.allclose(posed.normals, unposed.normals @ rot.transpose(1, 2), atol=1e-12)


def test_sh_shading_matches_deep3d_constants(model64):
    base = model64(FaceCoefficients.zeros(1, dtype=torch.float64))
    assert torch.allclose(base.colour, base.albedo * 0.8 * SQRT_PI / 2, atol=1e-12)  # ambient: a0 c0 = sqrt(pi)/2
    lit = model64(one_hot("lighting", 9 + 2, 0.3))  # green channel, band (1, 0): a1 c1 z = sqrt(pi) z
    shading = lit.colour / lit.albedo
    nz = lit.normals[0, :, 2]
    assert torch.allclose(shading[0, :, 1], 0.8 * SQRT_PI / 2 + 0.3 * SQRT_PI * nz, atol=1e-9)
    assert torch.allclose(shading[0, :, 0], torch.full_like(nz, 0.8 * SQRT_PI / 2), atol=1e-9)
    lit = model64(one_hot("lighting", 6, 0.2))  # red, band (2, 0): a2 c2 / (2 sqrt 3) (3 z^2 - 1)
    a2c2 = (2 * math.pi / math.sqrt(8)) * (3 * math.sqrt(5) / math.sqrt(12 * math.pi))
    expected = 0.8 * SQRT_PI / 2 + 0.2 * a2c2 / (2 * math.sqrt(3)) * (3 * nz ** 2 - 1)
    assert torch.allclose((lit.colour / lit.albedo)[0, :, 0], expected, atol=1e-9)


def test_pose_and_frame_conventions(data, model64):
    rest = model64(FaceCoefficients.zeros(1, dtype=torch.float64))
    v = rest.vertices[0]
    assert torch.allclose(v / 0.1, data.mean_shape, atol=1e-12)  # FaceFrame: world = 0.1 * model
    # inside CGOF's frame: fov 12 deg at radius 1 spans +-0.105, rays from 0.88 to 1.12
    assert v[:, 0].abs().max() < 0.1 and v[:, 1].abs().max() < 0.12 and v[:, 2].abs().max() < 0.12
    assert 0.0 < v[data.landmarks[30], 2] < 0.12
    yawed = model64(one_hot("pose", 1, math.pi / 2))  # yaw +90 deg: the face turns toward +x
    assert yawed.normals[0, data.landmarks[30], 0] > 0.8
    pitched = model64(one_hot("pose", 0, 0.3))  # pitch: +y turns toward +z (the face looks down)
    assert pitched.landmarks[0, 27, 2] > rest.landmarks[0, 27, 2] and pitched.landmarks[0, 8, 2] < rest.landmarks[0, 8, 2]
    moved = model64(one_hot("pose", 4, 0.5))  # translation in model units -> 0.05 world
    assert torch.allclose(moved.vertices - rest.vertices, torch.tensor([0.0, 0.05, 0.0], dtype=torch.float64))
    frame = FaceFrame(scale=0.2, offset=(0.0, -0.01, 0.02))
    assert torch.allclose(frame.to_model(frame.to_world(data.mean_shape)), data.mean_shape, atol=1e-12)
    rot = euler_rotation(torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64))[0]
    assert torch.allclose(rot @ rot.T, torch.eye(3, dtype=torch.float64), atol=1e-12) and torch.det(rot) > 0


def test_batched_float32_float64_agree(data, model64):
    c = coefficients(batch=3, seed=5)
    m64 = model64(c)
    singles = [model64(FaceCoefficients(*(getattr(c, n)[i:i + 1] for n in
                                          ("identity", "expression", "texture", "lighting", "pose"))))
               for i in range(3)]
    assert torch.allclose(m64.vertices, torch.cat([s.vertices for s in singles]), atol=1e-12)
    m32 = MorphableFaceModel(data)(c.to(torch.float32))
    assert m32.vertices.dtype == torch.float32
    for name in ("vertices", "normals", "albedo", "colour", "landmarks"):
        assert torch.allclose(getattr(m32, name).double(), getattr(m64, name), atol=2e-5), name
    with pytest.raises(ValueError, match="float64"):
        MorphableFaceModel(data)(c)
    assert MorphableFaceModel(data).state_dict() == {}  # model data never lands in checkpoints


def test_gradients_reach_every_coefficient_group(model64):
    c = coefficients(batch=2, seed=6)
    for name in ("identity", "expression", "texture", "lighting", "pose"):
        getattr(c, name).requires_grad_(True)
    mesh = model64(c)
    target = torch.randn_like(mesh.colour)
    loss = (mesh.colour * target).sum() + mesh.landmarks.square().sum() + (mesh.normals * target).sum()
    loss.backward()
    for name in ("identity", "expression", "texture", "lighting", "pose"):
        grad = getattr(c, name).grad
        assert grad is not None and torch.isfinite(grad).all() and (grad.abs().sum(1) > 0).all(), name
    assert (c.pose.grad.abs() > 0).all()  # every angle and translation


def test_coefficient_vector_follows_deep3d_order():
    v = torch.arange(2 * COEFFICIENT_DIM, dtype=torch.float64).reshape(2, COEFFICIENT_DIM)
    c = FaceCoefficients.from_vector(v)
    assert torch.equal(c.identity, v[:, :80]) and torch.equal(c.expression, v[:, 80:144])
    assert torch.equal(c.texture, v[:, 144:224]) and torch.equal(c.angles, v[:, 224:227])
    assert torch.equal(c.lighting, v[:, 227:254]) and torch.equal(c.translation, v[:, 254:257])
    assert torch.equal(c.to_vector(), v)
    with pytest.raises(ValueError, match="257"):
        FaceCoefficients.from_vector(v[:, :256])
    with pytest.raises(ValueError, match="expression"):
        FaceCoefficients(v[:, :80], v[:, :63], v[:, :80], v[:, :27], v[:, :6])


# ------------------------------------------------------------------------------------ statistics

def test_coefficient_statistics_whiten_roundtrip_and_files(tmp_path):
    g = torch.Generator().manual_seed(7)
    mix = torch.randn(COEFFICIENT_DIM, COEFFICIENT_DIM, generator=g, dtype=torch.float64) * 0.3
    table = torch.randn(400, COEFFICIENT_DIM, generator=g, dtype=torch.float64) @ mix.T + 2.0
    stats = CoefficientStatistics.fit(table, jitter=0.0)
    coeffs = FaceCoefficients.from_vector(table)
    codes = stats.whiten(coeffs)
    for name, dim in (("identity", 80), ("expression", 64), ("texture", 80), ("lighting", 27), ("pose", 6)):
        z = getattr(codes, name)
        assert torch.allclose(z.mean(0), torch.zeros(dim, dtype=torch.float64), atol=1e-10)
        assert torch.allclose(torch.cov(z.T), torch.eye(dim, dtype=torch.float64), atol=1e-9)  # whitened
        gs = stats.groups[name]
        assert torch.allclose(gs.cholesky @ gs.cholesky_inverse, torch.eye(dim, dtype=torch.float64), atol=1e-9)
        assert torch.allclose(gs.std, getattr(coeffs, name).std(0), atol=1e-12)
    back = stats.unwhiten(codes)
    assert torch.allclose(back.to_vector(), table, atol=1e-10)
    path = stats.save(tmp_path / "stats.safetensors")
    loaded = CoefficientStatistics.load(path)
    assert loaded.num_samples == 400
    assert torch.equal(loaded.whiten(coeffs).to_vector(), codes.to_vector())
    z32 = stats.whiten(coeffs.to(torch.float32))
    assert z32.identity.dtype == torch.float32
    (tmp_path / "stats.json").write_text('{"format": "something-else", "version": 1}')
    with pytest.raises(ValueError, match="aware3d-face-coefficient-statistics"):
        CoefficientStatistics.load(path)
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        CoefficientStatistics.load(tmp_path / "missing.safetensors")
    rank_deficient = CoefficientStatistics.fit(table[:10])  # 10 rows < 80 dims: the jitter keeps L invertible
    assert torch.isfinite(rank_deficient.groups["identity"].cholesky_inverse).all()


# -------------------------------------------------------------------------------------- BFM files

def write_layout_by_hand(data: FaceModelData, path) -> None:
    """Deep3DFaceRecon's BFM_model_front.mat layout, written here independently of save_bfm_mat."""
    V, F = data.num_vertices, data.num_triangles
    point_buf = np.zeros((V, 8), dtype=np.float64)  # padding 0 here (save_bfm_mat pads with F + 1)
    table = data.vertex_faces.numpy()
    point_buf[:, : table.shape[1]] = np.where(table >= 0, table + 1, 0)
    scipy.io.savemat(str(path), {
        "meanshape": data.mean_shape.numpy().reshape(1, 3 * V),
        "idBase": data.identity_basis.numpy().reshape(3 * V, 80),
        "exBase": data.expression_basis.numpy().reshape(3 * V, 64),
        "meantex": data.mean_albedo.numpy().reshape(1, 3 * V) * 255.0,
        "texBase": data.albedo_basis.numpy().reshape(3 * V, 80) * 255.0,
        "tri": data.triangles.numpy().astype(np.float64) + 1, "point_buf": point_buf,
        "keypoints": data.landmarks.numpy().reshape(1, 68).astype(np.float64) + 1,
        "frontmask2_idx": np.arange(1, 11, dtype=np.float64)[:, None], "skinmask": np.ones((1, V)),
    })
    assert F == data.triangles.shape[0]


def test_bfm_mat_reader_round_trips_the_layout(data, tmp_path):
    by_hand, ours = tmp_path / "BFM_model_front.mat", tmp_path / "ours.mat"
    write_layout_by_hand(data, by_hand)
    save_bfm_mat(data, ours)
    c = coefficients(batch=2, seed=8)
    reference = MorphableFaceModel(data, dtype=torch.float64)(c)
    for path in (by_hand, ours):
        read = load_bfm_mat(path, recenter=False)
        assert read.name == "bfm"
        for name in ("mean_shape", "identity_basis", "expression_basis", "triangles", "landmarks"):
            assert torch.equal(getattr(read, name), getattr(data, name)), (path.name, name)
        K = data.vertex_faces.shape[1]  # the file's point_buf holds 8 per vertex, padding -1 here
        assert torch.equal(read.vertex_faces[:, :K], data.vertex_faces) and (read.vertex_faces[:, K:] == -1).all()
        mesh = MorphableFaceModel(read, dtype=torch.float64)(c)
        assert torch.equal(mesh.vertices, reference.vertices) and torch.equal(mesh.normals, reference.normals)
        assert torch.allclose(mesh.colour, reference.colour, rtol=0, atol=1e-13)  # x255 / 255
    recentred = load_bfm_mat(by_hand)  # Deep3DFaceRecon's default: zero vertex mean (the synthetic one has it)
    assert torch.allclose(recentred.mean_shape, data.mean_shape, atol=1e-13)
    assert load_face_model(by_hand).name == "bfm"


def test_bfm_errors_name_the_file_origin_and_licence(data, tmp_path, monkeypatch):
    missing = tmp_path / "BFM" / "BFM_model_front.mat"
    with pytest.raises(FileNotFoundError) as err:
        load_face_model(missing)
    msg = str(err.value)
    for words in (str(missing), "Deep3DFaceRecon", "BFM/", "Basel Face Model 2009", "Exp_Pca.bin", "licen",
                  "University of Basel", "non-commercial"):
        assert words in msg, words
    monkeypatch.setenv("AWARE3D_FACE_MODEL", str(missing))
    with pytest.raises(FileNotFoundError):
        load_face_model(None)
    monkeypatch.delenv("AWARE3D_FACE_MODEL")
    assert load_face_model(None).name == "synthetic" and load_face_model("synthetic").name == "synthetic"

    good = tmp_path / "good.mat"
    write_layout_by_hand(data, good)
    mat = scipy.io.loadmat(str(good))
    cases = {
        "exBase": lambda m: m.pop("exBase"),
        "idBase": lambda m: m.__setitem__("idBase", m["idBase"][:, :79]),
        "tri": lambda m: m.__setitem__("tri", m["tri"] - 1),  # 0-based by mistake
        "keypoints": lambda m: m.__setitem__("keypoints", m["keypoints"][:, :67]),
    }
    for key, break_it in cases.items():
        broken = {k: v for k, v in mat.items() if not k.startswith("__")}
        break_it(broken)
        path = tmp_path / f"broken_{key}.mat"
        scipy.io.savemat(str(path), broken)
        with pytest.raises(ValueError, match=key):
            load_bfm_mat(path)
    not_mat = tmp_path / "not.mat"
    not_mat.write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a readable MATLAB"):
        load_bfm_mat(not_mat)
