"""Metric functions: Fréchet distance, KID, IS, the Inception loaders, SWD, MS-SSIM, reprojection geometry, SIDE/MAD."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from aware3d.cameras import Cameras, generate_rays
from aware3d.metrics.depth import (erode_mask, mean_angle_deviation, normals_from_depth,
                                   scale_invariant_depth_error)
from aware3d.metrics.frechet import FeatureStats, frechet_distance, mean_cov
from aware3d.metrics.inception import (NVIDIA_DETECTOR_URL, PYTORCH_FID_WEIGHTS_URL, FIDInceptionV3,
                                       InceptionFormatError, InceptionWeightsNotFound, _tf_avg_pool,
                                       check_fid_state_dict, load_inception)
from aware3d.metrics.kid import inception_score, kernel_inception_distance, mmd2_unbiased
from aware3d.metrics.msssim import ms_ssim, msssim_diversity, msssim_settings, num_scales
from aware3d.metrics.protocols import METRICS, get_metric, parse_metric_list
from aware3d.metrics.reprojection import project, world_points
from aware3d.metrics.swd import (SWDConfig, laplacian_pyramid, pyr_down, pyr_up, sliced_wasserstein,
                                 sliced_wasserstein_distance)

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------ FID

def _scipy_fid(x: np.ndarray, y: np.ndarray) -> float:
    """The float64 reference: population covariances, scipy's general matrix square root."""
    mu1, mu2 = x.mean(0), y.mean(0)
    c1 = np.cov(x, rowvar=False, bias=True)
    c2 = np.cov(y, rowvar=False, bias=True)
    s = scipy.linalg.sqrtm(c1 @ c2)
    return float(np.real(((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * s)))


def test_frechet_matches_scipy_float64_reference():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 24)) @ rng.normal(size=(24, 24))
    y = rng.normal(size=(300, 24)) * 1.5 + 0.3
    ours = frechet_distance(*mean_cov(torch.from_numpy(x)), *mean_cov(torch.from_numpy(y)))
    assert ours == pytest.approx(_scipy_fid(x, y), rel=1e-9)


def test_frechet_rank_deficient_covariances_match_scipy():
    # Fewer samples than dimensions: singular covariances (the usual case for small FID runs).
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(12, 32)), rng.normal(size=(15, 32)) + 0.2
    ours = frechet_distance(*mean_cov(torch.from_numpy(x)), *mean_cov(torch.from_numpy(y)))
    assert ours == pytest.approx(_scipy_fid(x, y), rel=1e-6)


def test_frechet_hand_computed_gaussians():
    # 1D: (0 - 3)^2 + 1 + 4 - 2 sqrt(1 * 4) = 10.
    assert frechet_distance(torch.tensor([0.0]), torch.tensor([[1.0]]), torch.tensor([3.0]), torch.tensor([[4.0]])) \
        == pytest.approx(10.0, abs=1e-12)
    # Diagonal 2D: sum over axes of (mu diff)^2 + (sqrt(a) - sqrt(b))^2 = 1 + (1-2)^2 + (3-1)^2 = 6.
    d = frechet_distance(torch.tensor([1.0, 0.0]), torch.diag(torch.tensor([1.0, 9.0])),
                         torch.tensor([0.0, 0.0]), torch.diag(torch.tensor([4.0, 1.0])))
    assert d == pytest.approx(6.0, abs=1e-12)
    mu, cov = mean_cov(torch.randn(50, 8, dtype=torch.float64))
    assert abs(frechet_distance(mu, cov, mu, cov)) < 1e-9


def test_feature_stats_streaming_and_cap():
    x = torch.randn(70, 5, generator=torch.Generator().manual_seed(2))
    stats = FeatureStats(capture_all=True, max_items=64)
    for s in range(0, 70, 16):
        stats.append(x[s:s + 16])
    assert stats.count == 64 and stats.is_full
    mu, cov = stats.mean_cov()
    ref = x[:64].double()
    assert torch.allclose(mu, ref.mean(0), atol=1e-12)
    assert torch.allclose(cov, torch.cov(ref.T, correction=0), atol=1e-12)
    assert torch.equal(stats.all(), x[:64])
    again = FeatureStats.from_state(stats.state())
    assert torch.allclose(again.mean_cov()[1], cov) and torch.equal(again.all(), x[:64])


# ------------------------------------------------------------------------------------- KID, IS

def _direct_mmd2(x: torch.Tensor, y: torch.Tensor) -> float:
    m, d = x.shape
    k = lambda a, b: (float(a @ b) / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_unbiased_matches_direct_computation():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(10, 6, generator=g, dtype=torch.float64)
    y = torch.randn(10, 6, generator=g, dtype=torch.float64) * 1.3 + 0.4
    assert mmd2_unbiased(x, y) == pytest.approx(_direct_mmd2(x, y), rel=1e-12)
    # One subset holding every vector: the KID is that MMD^2 (the order of the draw does not matter).
    kid, std = kernel_inception_distance(x, y, num_subsets=1, max_subset_size=1000)
    assert kid == pytest.approx(_direct_mmd2(x, y), rel=1e-12) and std == 0


def test_kid_same_distribution_near_zero_shifted_clearly_positive():
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(400, 16, generator=g), torch.randn(400, 16, generator=g)
    shifted = torch.randn(400, 16, generator=g) + 0.5
    same, _ = kernel_inception_distance(a, b, num_subsets=20, max_subset_size=200, generator=g)
    diff, _ = kernel_inception_distance(a, shifted, num_subsets=20, max_subset_size=200, generator=g)
    assert abs(same) < 0.01 and diff > 0.1


def test_inception_score_analytic_cases():
    uniform = torch.full((20, 5), 0.2)
    assert inception_score(uniform, num_splits=2) == pytest.approx((1.0, 0.0), abs=1e-12)
    one_hot = F.one_hot(torch.arange(40) % 4, 4).float()  # each split of 20 holds the 4 classes equally
    mean, std = inception_score(one_hot, num_splits=2)
    assert mean == pytest.approx(4.0, rel=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        inception_score(uniform, num_splits=50)


# ------------------------------------------------------------------------------------ Inception

class StandInDetector(torch.nn.Module):
    """Same call signature as NVIDIA's TorchScript detector, tiny: 4x4 colour means -> 64 features."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("proj", torch.randn(48, 64, generator=g))
        self.register_buffer("classes", torch.randn(64, 10, generator=g))
        self.register_buffer("bias", torch.randn(10, generator=g))

    def forward(self, img: torch.Tensor, return_features: bool = False, use_fp16: bool = False,
                no_output_bias: bool = False) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(img.float() / 255.0, 4).flatten(1)
        feats = torch.tanh(x @ self.proj)
        if return_features:
            return feats
        logits = feats @ self.classes
        if not no_output_bias:
            logits = logits + self.bias
        return torch.softmax(logits, dim=1)


def save_stand_in(path) -> StandInDetector:
    """Script the stand-in and save it where the loader will find it (the same loading code as NVIDIA's file)."""
    module = StandInDetector()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, NVIDIA's file is TorchScript
        torch.jit.save(torch.jit.script(module), str(path))
    return module


def test_missing_inception_file_error_names_file_urls_option_and_env(tmp_path, monkeypatch):
    monkeypatch.delenv("AWARE3D_INCEPTION", raising=False)
    missing = tmp_path / "inception-2015-12-05.pt"
    with pytest.raises(InceptionWeightsNotFound) as e:
        load_inception(missing)
    msg = str(e.value)
    for part in (str(missing), NVIDIA_DETECTOR_URL, PYTORCH_FID_WEIGHTS_URL, "--inception", "AWARE3D_INCEPTION"):
        assert part in msg
    assert isinstance(e.value, FileNotFoundError)
    with pytest.raises(InceptionWeightsNotFound, match="no Inception file was given"):
        load_inception(None)


def test_torchscript_stand_in_detector_loads_and_is_called_like_nvidia(tmp_path, monkeypatch):
    path = tmp_path / "detector.pt"
    ref = save_stand_in(path)
    monkeypatch.setenv("AWARE3D_INCEPTION", str(path))
    det = load_inception()  # through the environment variable
    assert det.kind == "torchscript" and len(det.sha256) == 64
    imgs = torch.randint(0, 256, (5, 3, 20, 20), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(det.features(imgs), ref(imgs, return_features=True))
    probs = det.probabilities(imgs)
    assert torch.allclose(probs, ref(imgs, no_output_bias=True))
    assert not torch.allclose(probs, ref(imgs))  # the bias really is left out, as the seeds' IS does
    assert torch.allclose(probs.sum(1), torch.ones(5))
    with pytest.raises(ValueError, match="uint8"):
        det.features(imgs.float())


# Shapes derived by hand from pytorch-fid's inception.py (torchvision Inception3 with num_classes=1008,
# aux_logits=False and the FID blocks): they fix the layout of pt_inception-2015-12-05-6726825d.pth.
_FID_LAYOUT = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_1a_3x3.bn.running_var": (32,),
    "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_5d.branch5x5_2.conv.weight": (64, 48, 5, 5),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
    "Mixed_6e.branch7x7dbl_4.conv.weight": (192, 192, 7, 1),
    "Mixed_7a.branch3x3_2.conv.weight": (320, 192, 3, 3),
    "Mixed_7b.branch3x3dbl_1.conv.weight": (448, 1280, 1, 1),
    "Mixed_7c.branch3x3_2b.conv.weight": (384, 384, 3, 1),
    "Mixed_7c.branch_pool.bn.bias": (192,),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}


def test_fid_inception_layout_matches_pytorch_fid_file():
    model = FIDInceptionV3()
    state = model.state_dict()
    for key, shape in _FID_LAYOUT.items():
        assert tuple(state[key].shape) == shape, key
    convs = [k for k in state if k.endswith(".conv.weight")]
    assert len(convs) == 94  # torchvision's Inception3 without the auxiliary head
    assert all(k.startswith(("Conv2d_", "Mixed_", "fc.")) for k in state)
    assert not any("AuxLogits" in k for k in state)
    # 27,161,264 (torchvision, with aux, 1000 classes) - 3,326,696 (aux head) + 8 * 2049 (1008 classes).
    assert sum(p.numel() for p in model.parameters()) == 23_850_960
    assert all(m.eps == 1e-3 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    # TF's SAME average pool ignores the padding: a constant map stays constant up to the corners.
    assert torch.equal(_tf_avg_pool(torch.ones(1, 1, 5, 5)), torch.ones(1, 1, 5, 5))
    assert (model.Mixed_7b.pool, model.Mixed_7c.pool) == ("avg", "max")


def test_fid_state_dict_round_trips_through_the_loader(tmp_path):
    torch.manual_seed(0)
    model = FIDInceptionV3().eval()
    for m in model.modules():  # non-trivial BN statistics, so a wrong load changes the features
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "pt_inception-2015-12-05-test.pth"
    torch.save(state, path)
    det = load_inception(path)
    assert det.kind == "pytorch_fid"
    img = torch.randint(0, 256, (1, 3, 24, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(6))
    x = F.interpolate(img.float() / 255, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
    with torch.no_grad():
        expected = model(x)
        probs = torch.softmax(model.logits(expected, bias=False), 1)
    got = det.features(img)
    assert got.shape == (1, 2048) and torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(det.probabilities(img), probs, atol=1e-6)

    bad = dict(state)
    bad["Mixed_5b.branch_pool.conv.kernel"] = bad.pop("Mixed_5b.branch_pool.conv.weight")
    with pytest.raises(InceptionFormatError, match="Mixed_5b.branch_pool.conv.weight"):
        check_fid_state_dict(bad, model, "bad.pth")
    bad = dict(state, **{"fc.weight": torch.zeros(1000, 2048)})
    with pytest.raises(InceptionFormatError, match="fc.weight"):
        check_fid_state_dict(bad, model, "bad.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InceptionFormatError, match="neither"):
        load_inception(tmp_path / "junk.pth")


# ------------------------------------------------------------------------------------------ SWD

def _smooth_images(n: int, seed: int, size: int = 32) -> torch.Tensor:
    """Random smooth colour fields in [-1, 1] (upsampled 4x4 noise)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g) * 2 - 1
    return F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)


def test_laplacian_pyramid_reconstructs_and_constant_is_preserved():
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(7)) * 255
    levels = laplacian_pyramid(x, 2)
    assert [lv.shape[-1] for lv in levels] == [32, 16]
    assert torch.allclose(levels[0] + pyr_up(levels[1]), x, atol=1e-3)
    const = torch.full((1, 3, 16, 16), 7.0)
    assert torch.allclose(pyr_down(const), torch.full((1, 3, 8, 8), 7.0), atol=1e-5)
    assert torch.allclose(pyr_up(const), torch.full((1, 3, 32, 32), 7.0), atol=1e-5)


def test_sliced_wasserstein_of_shifted_points_is_the_shift():
    # In 1D every direction is +-1: the distance is the mean |sorted a - sorted b| = the shift.
    a = torch.randn(50, 1, generator=torch.Generator().manual_seed(8))
    assert sliced_wasserstein(a, a + 0.5, dir_repeats=2, dirs_per_repeat=3) == pytest.approx(0.5, abs=1e-6)
    assert sliced_wasserstein(a, a.flip(0)) == pytest.approx(0.0, abs=1e-7)


def test_swd_of_a_set_against_itself_near_zero_and_against_a_shifted_set_clearly_above():
    a, other = _smooth_images(48, 0), _smooth_images(48, 1)
    noise = torch.randn(48, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 0.15
    shifted = (other + noise).clamp(-1, 1)
    # Itself: only the random neighbourhood positions differ (the floor of 6144 descriptors per level).
    self_swd = sliced_wasserstein_distance(a, a, seed=0)
    same = sliced_wasserstein_distance(a, other, seed=0)
    far = sliced_wasserstein_distance(a, shifted, seed=0)
    assert set(far) == {"32", "16", "avg"} and far["avg"] == pytest.approx((far["32"] + far["16"]) / 2)
    # The noise lives in the fine band-pass level (32 px).
    assert self_swd["32"] < 0.2 * far["32"] and same["32"] < 0.35 * far["32"]
    assert self_swd["avg"] < 0.25 * far["avg"]
    # ProGAN's per-set normalisation ignores a global colour change; "reference" normalisation sees it.
    brighter = a * 0.5 + 0.3
    sep = sliced_wasserstein_distance(a, brighter, seed=0)["avg"]
    ref = sliced_wasserstein_distance(a, brighter, SWDConfig(normalize="reference"), seed=0)["avg"]
    assert sep < 1.5 * self_swd["avg"] and ref > 10 * sep


# -------------------------------------------------------------------------------------- MS-SSIM

def test_msssim_scales_and_weights():
    assert [num_scales(s) for s in (16, 32, 64, 128, 176, 256)] == [1, 2, 3, 4, 5, 5]
    s = msssim_settings(64)
    assert s["scales"] == 3 and s["reduced"] and sum(s["weights"]) == pytest.approx(1.0)
    assert s["weights"][0] == pytest.approx(0.0448 / (0.0448 + 0.2856 + 0.3001))
    assert msssim_settings(8)["window"] == 7


def test_single_scale_ssim_matches_skimage():
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(9)
    x = torch.rand(1, 3, 16, 16, generator=g, dtype=torch.float64)
    y = (x + 0.1 * torch.randn(1, 3, 16, 16, generator=g, dtype=torch.float64)).clamp(0, 1)
    ref = structural_similarity(x[0].permute(1, 2, 0).numpy(), y[0].permute(1, 2, 0).numpy(), channel_axis=-1,
                                gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
    assert float(ms_ssim(x, y)[0]) == pytest.approx(ref, abs=1e-10)


def test_msssim_identity_monotonic_and_diversity():
    x = (_smooth_images(4, 3, size=64) + 1) / 2
    assert torch.allclose(ms_ssim(x, x), torch.ones(4, dtype=torch.float64))
    g = torch.Generator().manual_seed(10)
    noise = torch.randn(x.shape, generator=g)
    values = [float(ms_ssim(x, (x + s * noise).clamp(0, 1)).mean()) for s in (0.02, 0.1, 0.3)]
    assert values[0] > values[1] > values[2]
    same = msssim_diversity(torch.zeros(6, 3, 32, 32), num_pairs=20, generator=g)
    varied = msssim_diversity(torch.rand(6, 3, 32, 32, generator=g) * 2 - 1, num_pairs=20, generator=g)
    assert same["mean"] == pytest.approx(1.0) and varied["mean"] < 0.2 and same["scales"] == 2


# --------------------------------------------------------------------------- reprojection geometry

@pytest.mark.parametrize("grid", ["pixel_centers", "edge_aligned"])
def test_projecting_lifted_pixels_returns_their_own_pixels(grid):
    cams = Cameras.from_angles([1.3, 1.9], [1.4, 1.6], fov_deg=20.0, radius=1.2)
    H, W = 6, 8
    depth = 1.0 + 0.1 * torch.rand(2, 1, H, W, generator=torch.Generator().manual_seed(11))
    xy, dist, front = project(world_points(cams, depth, grid), cams, H, W, grid)
    cols = torch.arange(W, dtype=torch.float32).repeat(H) / (W - 1) * 2 - 1
    rows = torch.arange(H, dtype=torch.float32).repeat_interleave(W) / (H - 1) * 2 - 1
    assert torch.allclose(xy[..., 0], cols.expand(2, -1), atol=1e-5)
    assert torch.allclose(xy[..., 1], rows.expand(2, -1), atol=1e-5)
    assert torch.allclose(dist, depth.reshape(2, -1), atol=1e-5) and bool(front.all())


# ----------------------------------------------------------------------------------- SIDE / MAD

def _plane_depth(cams: Cameras, H: int, slope: float, z0: float = 1.0) -> torch.Tensor:
    """Distance along each pixel ray to the camera-frame plane z = z0 + slope * x."""
    _, _, dirs = generate_rays(cams, H, H, return_camera_dirs=True)
    t = z0 / (dirs[..., 2] - slope * dirs[..., 0])
    return t.reshape(-1, 1, H, H)


def test_side_zero_for_itself_and_any_scale_and_hand_computed_value():
    from aware3d.data.synthetic import SyntheticDataset

    gt = SyntheticDataset("synthetic-heads", resolution=24, length=4).get_batch([0, 1])
    mask = erode_mask(gt.mask)
    assert float(mask.sum()) > 50
    assert torch.allclose(scale_invariant_depth_error(gt.depth, gt.depth, mask), torch.zeros(2), atol=1e-6)
    assert torch.allclose(scale_invariant_depth_error(2.5 * gt.depth, gt.depth, mask), torch.zeros(2), atol=1e-5)
    # Two masked pixels with log ratios a and b: the deviations are +-(a - b)/2, so SIDE = |a - b| / 2.
    target = torch.ones(1, 1, 2, 2)
    pred = torch.tensor([[[[math.exp(0.3), math.exp(-0.1)], [5.0, 7.0]]]])
    m = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    assert float(scale_invariant_depth_error(pred, target, m)[0]) == pytest.approx(0.2, abs=1e-6)


def test_normals_from_depth_of_planes_and_mad_equals_tilt_difference():
    cams = Cameras.from_angles([math.pi / 2], [math.pi / 2], fov_deg=30.0)
    H = 16
    flat = normals_from_depth(_plane_depth(cams, H, 0.0), cams.intrinsics)
    assert torch.allclose(flat, torch.tensor([0.0, 0.0, -1.0])[None, :, None, None].expand_as(flat), atol=1e-4)
    tilted = normals_from_depth(_plane_depth(cams, H, 0.5), cams.intrinsics)
    expected = torch.tensor([0.5, 0.0, -1.0]) / math.sqrt(1.25)
    assert torch.allclose(tilted, expected[None, :, None, None].expand_as(tilted), atol=1e-4)
    mask = erode_mask(torch.ones(1, 1, H, H))
    mad = float(mean_angle_deviation(flat, tilted, mask)[0])
    assert mad == pytest.approx(math.degrees(math.atan(0.5)), abs=0.05)


def test_normals_from_synthetic_depth_agree_with_ground_truth_normals():
    from aware3d.data.synthetic import SyntheticDataset

    s = SyntheticDataset("synthetic-heads", resolution=64, length=2).get_batch([0])
    n_cam = torch.einsum("bji,bjhw->bihw", s.cam2world[:, :3, :3], s.normals)  # world -> camera frame: R^T n
    ours = normals_from_depth(s.depth, s.intrinsics)
    mask = erode_mask(s.mask)
    # Finite differences across a curved head at 64 px: a few degrees on average, not tens.
    assert float(mean_angle_deviation(ours, n_cam, mask)[0]) < 12.0


# ------------------------------------------------------------------------------------ protocols

def test_metric_registry_names_and_errors():
    assert {"fid50k_full", "fid2k_full", "kid50k_full", "is50k", "swd", "msssim", "reprojection", "side"} <= set(METRICS)
    assert get_metric("fid50k_full").num_gen == 50000 and get_metric("fid50k_full").num_real is None
    assert get_metric("kid50k_full").num_real == 1_000_000 and get_metric("fid2k_full").num_gen == 2048
    assert [s.name for s in parse_metric_list(["fid2k_full,swd", "side", "swd"])] == ["fid2k_full", "swd", "side"]
    with pytest.raises(ValueError, match="valid: .*fid50k_full"):
        get_metric("fid50k")
    assert get_metric("swd").with_num_gen(10).num_gen == 10


def test_protocols_that_state_a_count_are_renamed_when_run_on_another():
    """FID@2k, FID@50k and a quick FID on 512 images never share a name (stats files, --best)."""
    assert get_metric("fid2k_full").with_num_gen(512).name == "fid2k_full@512"
    assert get_metric("fid50k_full").with_num_gen(2048).name == "fid50k_full@2048"
    assert get_metric("is50k").with_num_gen(100).name == "is50k@100"
    assert get_metric("kid50k_full").with_num_gen(64).name == "kid50k_full@64"
    # The protocol's own count, or no override, keeps the name; count-free protocols keep theirs.
    assert get_metric("fid2k_full").with_num_gen(2048).name == "fid2k_full"
    assert get_metric("fid2k_full").with_num_gen(None).name == "fid2k_full"
    assert get_metric("swd").with_num_gen(10).name == "swd" and get_metric("side").with_num_gen(7).name == "side"
    renamed = get_metric("fid2k_full").with_num_gen(512)
    assert renamed.kind == "fid" and renamed.num_gen == 512
