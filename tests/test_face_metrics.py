"""The face-model metrics (aware3d.metrics.faces): the disentanglement score, ICP, the mesh RMSE and the
registered metrics end to end on a random cgof-tiny."""

import math

import pytest
import torch

from aware3d.faces import FaceCoefficientRegressor, RegressorConfig, euler_rotation, save_regressor
from aware3d.metrics import evaluate
from aware3d.metrics.faces import (OFFICIAL_SPREADS, FaceMetricsConfig, at_pixels, disentanglement_score,
                                   factor_spread, icp, iso_level, kabsch, landmark_error, nearest_neighbours,
                                   nearest_rmse, pearson, variation_latents)
from aware3d.models.cgof import CGOFGenerator
from aware3d.models.cgof.config import CGOF_PRESETS
from aware3d.models.registry import build_generator

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------ disentanglement

def test_factor_spread_known_deviation():
    # Each subject's variations sit at its mean +- a vector of length r_s: the spread is the mean r_s.
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 1, 5, generator=g)
    direction = torch.nn.functional.normalize(torch.randn(3, 1, 5, generator=g), dim=-1)
    radius = torch.tensor([0.5, 1.0, 2.0]).view(3, 1, 1)
    values = torch.cat([centres + radius * direction, centres - radius * direction], dim=1)  # (3, 2, 5)
    assert float(factor_spread(values)) == pytest.approx(3.5 / 3, rel=1e-6)


def test_disentanglement_score_analytic():
    dataset = dict(OFFICIAL_SPREADS)
    # Normalised sigmas 2, 0.5, 0.25 (target identity): DS = 2^2 / (0.5 * 0.25) = 32.
    spreads = {"identity": 2 * dataset["identity"], "expression": 0.5 * dataset["expression"],
               "pose": 0.25 * dataset["pose"]}
    assert disentanglement_score(spreads, "identity", dataset) == pytest.approx(32.0)
    # Target expression: 0.5^2 / (2 * 0.25) = 0.5.
    assert disentanglement_score(spreads, "expression", dataset) == pytest.approx(0.5)
    # Two factors: sigma_t / sigma_o.
    two = {"identity": 3 * dataset["identity"], "pose": 1.5 * dataset["pose"]}
    assert disentanglement_score(two, "identity", dataset) == pytest.approx(2.0)


def test_lighting_needs_a_spread():
    with pytest.raises(ValueError, match="lighting_spread"):
        FaceMetricsConfig().dataset_spread("lighting")
    assert FaceMetricsConfig(lighting_spread=0.3).dataset_spread("lighting") == 0.3


# ------------------------------------------------------------------------------------ geometry

def test_knn_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    q, p = torch.randn(50, 3, generator=g), torch.randn(70, 3, generator=g)
    d, i = nearest_neighbours(q, p, chunk=7)
    full = ((q[:, None] - p[None]) ** 2).sum(-1)
    assert torch.equal(i, full.argmin(1))
    assert torch.allclose(d, full.min(1).values.sqrt(), atol=1e-6)


def test_kabsch_is_a_proper_rotation():
    g = torch.Generator().manual_seed(2)
    src = torch.randn(20, 3, generator=g, dtype=torch.float64)
    mirrored = src * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    rot, _ = kabsch(src, mirrored)
    assert float(torch.linalg.det(rot)) == pytest.approx(1.0)


def test_icp_recovers_rigid_motion():
    g = torch.Generator().manual_seed(3)
    cloud = torch.rand(400, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 0.7, 0.4], dtype=torch.float64)
    rot = euler_rotation(torch.tensor([[0.15, -0.2, 0.1]], dtype=torch.float64))[0]
    trans = torch.tensor([0.05, -0.03, 0.02], dtype=torch.float64)
    target = cloud @ rot.T + trans
    r, t = icp(cloud, target, iterations=100)
    assert float((r - rot).abs().max()) < 1e-4
    assert float((t - trans).abs().max()) < 1e-4
    assert nearest_rmse(cloud @ r.T + t, target) < 1e-4


def test_rmse_self_and_scaled_copy():
    # Far-apart points: each point's nearest in the copy scaled by k is its own image, at (k - 1) |p|.
    points = torch.tensor([[10.0, 0, 0], [0, 20.0, 0], [0, 0, 30.0], [-40.0, 0, 0]], dtype=torch.float64)
    assert nearest_rmse(points, points) == 0.0
    k = 1.01
    expected = (k - 1) * math.sqrt(float(points.pow(2).sum(1).mean()))
    assert nearest_rmse(points, points * k) == pytest.approx(expected, rel=1e-9)


def test_landmark_error_and_iso_level():
    ref = torch.zeros(2, 68, 2)
    pred = ref + torch.tensor([3.0, 4.0])  # 5 px off everywhere
    assert torch.allclose(landmark_error(pred, ref, 10), torch.full((2,), 0.5))
    volume = torch.arange(101, dtype=torch.float32)
    assert iso_level(volume, "p90") == pytest.approx(90.0)
    assert iso_level(volume, 3) == 3.0


# ------------------------------------------------------------------------------------ end to end

@pytest.fixture(scope="module")
def cgof():
    return build_generator("cgof-tiny", seed=0).eval()


@pytest.fixture(scope="module")
def regressor_path(tmp_path_factory):
    model = FaceCoefficientRegressor(RegressorConfig(image_size=16, channels=(8,), hidden=16), seed=0)
    # Random (non-zero) heads so the read-back depends on the image.
    with torch.no_grad():
        for head in model.heads.values():
            head.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    return str(save_regressor(model.eval(), tmp_path_factory.mktemp("reg") / "regressor"))


def _run(G, metric, num_gen, config, seed=0):
    return evaluate(G, [metric], num_gen=num_gen, seed=seed, batch=4, progress=False, resolution=8, num_samples=4,
                    configs=[config])


@pytest.mark.parametrize("target", ["identity", "expression", "lighting", "pose"])
def test_variation_latents_vary_one_factor(cgof, target):
    layout = cgof.face_code_layout()
    z, code, cams = variation_latents(cgof, layout, target, 2, 3, torch.Generator().manual_seed(0))
    code, c2w = code.view(2, 3, -1), cams.cam2world.view(2, 3, 4, 4)
    assert torch.equal(z.view(2, 3, -1), z.view(2, 3, -1)[:, :1].expand(-1, 3, -1))  # z fixed per subject
    for name in ("identity", "expression", "texture", "lighting"):
        part = code[..., getattr(layout, name)]
        same = torch.equal(part, part[:, :1].expand_as(part))
        assert same != (name == target), name
    assert torch.equal(c2w, c2w[:, :1].expand_as(c2w)) != (target == "pose")
    assert not torch.equal(code[0], code[1])  # subjects differ


def test_disentanglement_end_to_end(cgof, regressor_path):
    config = FaceMetricsConfig(regressor=regressor_path, variations=2)
    res = _run(cgof, "face_disentanglement", 2, config)
    entry = res["metrics"]["face_disentanglement"]
    assert set(entry["scores"]) == {"identity", "expression", "pose"}
    for target, spreads in entry["spreads"].items():
        assert all(math.isfinite(v) and v >= 0 for v in spreads.values())
        expected = disentanglement_score(spreads, target, entry["dataset_spreads"])
        assert entry["scores"][target] == pytest.approx(expected)
    assert res["results"]["face_disentanglement_pose"] == entry["scores"]["pose"]
    assert _run(cgof, "face_disentanglement", 2, config)["results"] == res["results"]  # seeded


def test_regressor_option_is_named(cgof):
    with pytest.raises(ValueError, match="FaceMetricsConfig.regressor"):
        _run(cgof, "face_disentanglement", 2, FaceMetricsConfig())
    with pytest.raises(ValueError, match="FaceMetricsConfig.regressor"):
        _run(cgof, "face_landmark_error", 2, FaceMetricsConfig())


def test_mesh_rmse_end_to_end(cgof):
    config = FaceMetricsConfig(grid=12, level="p60", face_resolution=12, icp_iterations=5)
    res = _run(cgof, "face_mesh_rmse", 1, config)
    entry = res["metrics"]["face_mesh_rmse"]
    assert entry["meshes_without_surface"] == 0
    assert 0 < res["results"]["face_mesh_rmse"] <= res["results"]["face_mesh_rmse_unaligned"] + 1e-6


def test_landmark_error_end_to_end(cgof, regressor_path):
    res = _run(cgof, "face_landmark_error", 2, FaceMetricsConfig(regressor=regressor_path))
    value = res["results"]["face_landmark_error"]
    assert math.isfinite(value) and value > 0


def test_non_face_family_is_refused():
    G = build_generator("pigan-tiny", seed=0).eval()
    with pytest.raises(ValueError, match="face-conditioned"):
        _run(G, "face_mesh_rmse", 1, FaceMetricsConfig(grid=8))


def test_metrics_tool_takes_the_face_regressor(tmp_path, regressor_path):
    """``aware3d metrics --face-regressor DIR`` reaches the face metrics (without it they name the option)."""
    from aware3d.cli.main import main
    from aware3d.io.checkpoint import save_generator

    ckpt = save_generator(build_generator("cgof-tiny", seed=0), tmp_path / "cgof")
    args = ["metrics", "--checkpoint", str(ckpt), "--metrics", "face_landmark_error", "--num-gen", "2",
            "--resolution", "8", "--num-samples", "4", "--batch", "2", "--no-progress"]
    assert main(args + ["--out", str(tmp_path / "without")]) == 2
    assert main(args + ["--out", str(tmp_path / "with"), "--face-regressor", regressor_path]) == 0
    import json
    record = json.loads((tmp_path / "with" / "metrics.json").read_text())
    assert math.isfinite(record["results"]["face_landmark_error"])


def test_pearson_and_pixel_lookup_known_answers():
    x = torch.tensor([0.0, 1.0, 3.0, 4.0])
    assert pearson(x, 2 * x + 1) == pytest.approx(1.0) and pearson(x, -x) == pytest.approx(-1.0)
    assert math.isnan(pearson(x, torch.ones(4)))
    maps = torch.arange(12.0).reshape(1, 1, 3, 4)
    points = torch.tensor([[[0.0, 0.0], [3.2, 2.4], [1.6, 0.7], [9.0, -3.0]]])  # x = column, y = row
    assert at_pixels(maps, points).tolist() == [[0.0, 11.0, 6.0, 3.0]]


class MeshDepthCGOF(CGOFGenerator):
    """cgof-tiny whose rendered depth is ``sign`` times its own conditioning mesh's depth: a known answer for the
    depth-change correlation (+1 or -1)."""

    sign = 1.0

    def synthesis(self, w, cameras, *, condition=None, resolution=None, **kwargs):
        out = super().synthesis(w, cameras, condition=condition, resolution=resolution, **kwargs)
        mesh = self.face_renders(condition.face, cameras, out.depth.shape[-1]).mesh_depth
        out.depth = self.sign * mesh
        return out


class NegatedMeshDepthCGOF(MeshDepthCGOF):
    sign = -1.0


@pytest.mark.parametrize("cls, expected", [(MeshDepthCGOF, 1.0), (NegatedMeshDepthCGOF, -1.0)])
def test_depth_change_correlation_known_answers(cls, expected):
    G = cls(CGOF_PRESETS["cgof-tiny"]).eval()
    res = _run(G, "face_depth_change_correlation", 2, FaceMetricsConfig())
    entry = res["metrics"]["face_depth_change_correlation"]
    assert entry["landmarks"] > 50 and entry["mean_abs_mesh_change"] > 0
    assert res["results"]["face_depth_change_correlation"] == pytest.approx(expected, abs=1e-6)


def test_depth_change_correlation_end_to_end_and_the_mesh_cross_test(cgof):
    res = _run(cgof, "face_depth_change_correlation", 2, FaceMetricsConfig())
    assert -1 <= res["results"]["face_depth_change_correlation"] <= 1
    config = FaceMetricsConfig(grid=12, level="p60", face_resolution=12, icp_iterations=5)
    rmse = _run(cgof, "face_mesh_rmse", 2, config)["results"]
    assert rmse["face_mesh_rmse_cross"] > 0
    assert rmse["face_mesh_rmse_own_to_cross"] == pytest.approx(rmse["face_mesh_rmse"] / rmse["face_mesh_rmse_cross"])
