"""evaluate(): reprojection on an analytic scene, Inception metrics with a stand-in detector, SIDE end to end,
the caches, errors, and the `aware3d metrics` command."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import pytest
import torch

from aware3d.cameras import PoseDistribution, generate_rays
from aware3d.cli.main import main
from aware3d.data import ImageDataset, open_dataset
from aware3d.metrics import evaluate
from aware3d.metrics.depth import (DepthNetConfig, erode_mask, mean_angle_deviation, normals_from_depth,
                                   scale_invariant_depth_error, train_depth_net)
from aware3d.metrics.evaluate import GenerationSettings, generate, to_uint8
from aware3d.metrics.frechet import frechet_distance, mean_cov
from aware3d.metrics.inception import InceptionWeightsNotFound, load_inception
from aware3d.models.base import Generator3D, GeneratorOutput
from aware3d.models.registry import build_generator
from aware3d.rendering import RenderConfig, render_rays
from tests.test_metrics import save_stand_in

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------- an analytic stand-in generator

@dataclass(frozen=True)
class SphereConfig:
    """What evaluate() reads from a generator's config."""

    resolution: int = 32
    fov_deg: float = 12.0
    pixel_grid: str = "pixel_centers"
    pose: PoseDistribution = field(default_factory=lambda: PoseDistribution("fixed", math.pi / 2, math.pi / 2, 0, 0, 1.0))
    eval_truncation_psi: float = 1.0
    eval_render: RenderConfig = field(default_factory=lambda: RenderConfig(
        near=0.85, far=1.15, num_samples=48, num_importance=48, perturb=False, importance_det=True,
        background="black", depth_mode="expected"))
    view_dependent: bool = False


class SphereGenerator(Generator3D):
    """An opaque sphere (radius 0.08) whose colour is a smooth function of the world position; with
    ``view_dependent`` the colour also depends on the ray direction, so views disagree."""

    family = "sphere"

    def __init__(self, config: SphereConfig = SphereConfig()):
        super().__init__()
        self.config = config
        self.z_dim = 4
        self.dummy = torch.nn.Parameter(torch.zeros(1))  # gives the module a device

    def mapping(self, z, truncation_psi=1.0, cameras=None, condition=None):
        return z

    def update_w_avg(self, *args, **kwargs):
        return torch.zeros(self.z_dim)

    def density(self, w):
        return lambda points: self.field(points, torch.zeros_like(points))[1]

    def color(self, w):
        return lambda points: self.field(points, torch.zeros_like(points))[0]

    def eval_render_config(self, num_samples=None, fast=False, **changes):
        return super().eval_render_config(None, fast, **changes)

    def field(self, points, dirs):
        color = 0.5 + 0.4 * torch.sin(40 * points + torch.tensor([0.0, 1.0, 2.0]))
        if self.config.view_dependent:
            color = 0.5 + 0.4 * torch.sin(40 * points + 25 * dirs)
        sigma = torch.where(points.norm(dim=-1) < 0.08, 2000.0, 0.0)
        return color, sigma

    def synthesis(self, w, cameras, *, resolution=None, render=None, **kwargs):
        res = resolution or self.config.resolution
        B = len(cameras)
        o, d = generate_rays(cameras, res, res, grid=self.config.pixel_grid)
        out = render_rays(self.field, o, d, render or self.config.eval_render)

        def img(x):
            return x.reshape(B, res, res, -1).permute(0, 3, 1, 2)
        return GeneratorOutput(img(out.features) * 2 - 1, img(out.depth[..., None]), img(out.opacity[..., None]),
                               surface_depth=img(out.surface_depth[..., None]))


@pytest.mark.parametrize("grid", ["pixel_centers", "edge_aligned"])
def test_reprojection_near_zero_for_an_analytic_scene_and_clearly_larger_when_views_disagree(tmp_path, grid):
    kw = dict(num_gen=1, batch=1, progress=False, cache_dir=tmp_path)
    consistent = evaluate(SphereGenerator(SphereConfig(pixel_grid=grid)), ["reprojection"], **kw)
    entry = consistent["metrics"]["reprojection"]
    assert entry["covisible_fraction"] > 0.2 and len(entry["views"]) == 5  # the sphere fills much of each view
    # What remains is the volumetric shading and bilinear interpolation of a colour that varies by ~0.1 per pixel.
    assert consistent["results"]["reprojection"] < 0.006
    inconsistent = evaluate(SphereGenerator(SphereConfig(pixel_grid=grid, view_dependent=True)), ["reprojection"], **kw)
    assert inconsistent["results"]["reprojection"] > 0.1
    assert inconsistent["results"]["reprojection"] > 20 * consistent["results"]["reprojection"]


# -------------------------------------------------------------------------- Inception metrics

class MemoryDataset(ImageDataset):
    """Pre-rendered items held in memory (so the tests render the synthetic heads once)."""

    def __init__(self, batch) -> None:
        self.name, self.resolution, self.mirror = "memory-heads", batch.image.shape[-1], False
        self.batch = batch

    @property
    def base_length(self) -> int:
        return len(self.batch)

    @property
    def has_labels(self) -> bool:
        return True

    def _load(self, indices):
        return self.batch.image[indices], self.batch.label[indices], self.batch.has_label[indices]

    def _fingerprint_parts(self):
        return {"pixels": float(self.batch.image.double().sum()), "n": len(self.batch)}


@pytest.fixture(scope="module")
def tiny():
    G = build_generator("pigan-tiny")
    heads = open_dataset("synthetic-heads", 16, length=24)
    return G, MemoryDataset(heads.get_batch(list(range(24)))), heads


def test_inception_metrics_with_stand_in_detector_and_real_cache(tmp_path, tiny):
    G, data, _ = tiny
    det_path = tmp_path / "detector.pt"
    save_stand_in(det_path)
    kw = dict(num_gen=24, batch=12, progress=False, cache_dir=tmp_path / "cache", inception=det_path)
    report = evaluate(G, "fid2k_full,kid50k_full,is50k", data, **kw)
    res = report["results"]
    assert set(res) == {"fid2k_full@24", "kid50k_full@24", "kid50k_full@24_std", "is50k@24", "is50k@24_std"}
    fid = report["metrics"]["fid2k_full@24"]
    assert fid["num_gen"] == 24 and fid["num_real"] == 24 and fid["num_real_requested"] == "full"
    assert fid["camera"] == "dataset" and fid["truncation_psi"] == 1.0 and fid["real_cache"]["cache"] == "miss"
    assert fid["real_preprocessing"]["resolution"] == 16 and fid["real_preprocessing"]["mirror"] is False
    assert report["metrics"]["kid50k_full@24"]["subset_size"] == 1000 and report["metrics"]["is50k@24"]["splits"] == 10
    assert 1.0 <= res["is50k@24"] <= 10.0

    # The FID is the Fréchet distance of the detector's features of exactly these images.
    det = load_inception(det_path)
    settings = GenerationSettings(16, 1.0, "dataset", G.eval_render_config())
    gen = torch.cat([det.features(to_uint8(o.image)) for o, _ in generate(G, 24, settings, seed=0, batch=12, data=data,
                                                                          progress=False)])
    real = det.features(to_uint8(data.get_batch(list(range(24))).image))
    assert res["fid2k_full@24"] == pytest.approx(frechet_distance(*mean_cov(gen), *mean_cov(real)), rel=1e-6)

    again = evaluate(G, ["fid2k_full"], data, **kw)
    assert again["metrics"]["fid2k_full@24"]["real_cache"]["cache"] == "hit"
    assert again["results"]["fid2k_full@24"] == pytest.approx(res["fid2k_full@24"], rel=1e-12)
    other_seed = evaluate(G, ["fid2k_full"], data, **{**kw, "seed": 1})
    assert other_seed["results"]["fid2k_full@24"] != res["fid2k_full@24"]


def test_errors_name_the_missing_piece(tmp_path, tiny, monkeypatch):
    G, data, _ = tiny
    monkeypatch.delenv("AWARE3D_INCEPTION", raising=False)
    with pytest.raises(ValueError, match="--data"):
        evaluate(G, ["fid50k_full"], None, progress=False, cache_dir=tmp_path)
    with pytest.raises(InceptionWeightsNotFound, match="AWARE3D_INCEPTION"):
        evaluate(G, ["kid50k_full"], data, progress=False, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="valid: .*side"):
        evaluate(G, ["sid"], data, progress=False, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="camera labels"):
        evaluate(G, ["msssim"], None, camera="dataset", num_gen=4, progress=False, cache_dir=tmp_path)


# ------------------------------------------------------------------------------------- SIDE / MAD

def test_side_trains_caches_and_scores_a_generator(tmp_path, tiny):
    G, _, data = tiny  # the synthetic dataset itself: it has ground-truth depth
    cfg = DepthNetConfig(resolution=16, width=8, levels=2, steps=40, batch=8, train_items=24)
    kw = dict(num_gen=8, batch=8, progress=False, cache_dir=tmp_path, depth_net=cfg, truncation_psi=0.5, camera="prior")
    first = evaluate(G, ["side"], data, **kw)
    entry = first["metrics"]["side"]
    net = entry["depth_net"]
    assert net["cached"] is False and net["depth_l1_log_last"] < net["depth_l1_log_first"]
    assert (tmp_path / net["file"].split("/")[-1]).is_file()
    assert entry["images_scored"] + entry["images_skipped_small_mask"] == 8 and entry["truncation_psi"] == 0.5
    assert entry["camera"] == "prior"
    if entry["images_scored"]:
        assert math.isfinite(first["results"]["side"]) and 0 <= first["results"]["mad"] <= 180
    second = evaluate(G, ["side"], data, **kw)
    assert second["metrics"]["side"]["depth_net"]["cached"] is True
    assert second["results"] == pytest.approx(first["results"], nan_ok=True)
    with pytest.raises(ValueError, match="ground-truth depth"):
        class NoTruth:  # an image dataset without ground truth (like an image folder)
            name, resolution, has_labels, has_ground_truth = "photos", 16, False, False

            def __len__(self):
                return 4
        evaluate(G, ["side"], NoTruth(), **kw)


def test_depth_net_predicts_held_out_depth_better_than_a_flat_map(tiny):
    _, _, data = tiny

    def ground_truth(indices):
        s = data.ground_truth(indices)
        return s.image, s.depth, s.mask

    cfg = DepthNetConfig(resolution=16, width=16, levels=2, steps=150, batch=16, train_items=16)
    net, record = train_depth_net(ground_truth, 16, cfg, progress=False)
    held_out = data.ground_truth(list(range(16, 24)))
    pred, fg = net.predict(held_out.image)
    mask = erode_mask(held_out.mask)
    flat = torch.ones_like(held_out.depth)
    gt_normals = normals_from_depth(held_out.depth, held_out.intrinsics)
    side = scale_invariant_depth_error(pred, held_out.depth, mask).mean()
    side_flat = scale_invariant_depth_error(flat, held_out.depth, mask).mean()
    mad = mean_angle_deviation(normals_from_depth(pred, held_out.intrinsics), gt_normals, mask).mean()
    mad_flat = mean_angle_deviation(normals_from_depth(flat, held_out.intrinsics), gt_normals, mask).mean()
    assert side < 0.8 * side_flat and mad < 0.75 * mad_flat
    assert float(((fg > 0.5).float() == held_out.mask).float().mean()) > 0.9


# --------------------------------------------------------------------------------- the command

def test_metrics_command_writes_json_and_prints_table(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("AWARE3D_INCEPTION", raising=False)
    out = tmp_path / "out"
    args = ["metrics", "--checkpoint", "pigan-tiny", "--data", "synthetic-heads", "--metrics", "swd,msssim",
            "reprojection", "--num-gen", "12", "--batch", "12", "--out", str(out), "--cache-dir", str(tmp_path),
            "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "swd_16" in printed and "msssim" in printed
    record = json.loads((out / "metrics.json").read_text())
    assert record["tool"] == "metrics" and set(record["results"]) >= {"swd", "swd_16", "msssim", "reprojection"}
    assert record["metrics"]["swd"]["num_gen"] == 12 and record["metrics"]["msssim"]["pairs"] == 66
    assert record["data"]["name"] == "synthetic-heads" and record["options"]["metrics"] == ["swd,msssim", "reprojection"]
    # Same seed, same numbers.
    assert main(args) == 0
    assert json.loads((out / "metrics.json").read_text())["results"] == record["results"]

    assert main(["metrics", "--checkpoint", "pigan-tiny", "--metrics", "fid51k", "--out", str(out)]) == 2
    assert "valid:" in capsys.readouterr().err
    assert main(["metrics", "--checkpoint", "pigan-tiny", "--data", "synthetic-heads", "--metrics", "fid2k_full",
                 "--out", str(out), "--no-progress"]) == 2
    assert "--inception" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- EG3D

def sharpen_density(G, thr_quantile: float = 0.75, gain: float = 10.0) -> None:
    """Give a fresh EG3D model opaque regions, as the reference fixture's step (D): sigma -> gain (sigma - thr) + 1
    with thr the ``thr_quantile`` of sigma over the box for a few latents (a fresh decoder is uniform fog)."""
    with torch.no_grad():
        w = G.mapping(G.z_from_seeds([0, 1, 2, 3]), 0.7)
        points = (torch.rand(1, 2000, 3, generator=torch.Generator().manual_seed(0)) - 0.5) * G.config.box_warp
        sigma = G.sample_planes(G.planes(w), points.expand(4, -1, -1))[1]
        thr = float(sigma.quantile(thr_quantile))
        fc = G.decoder.output
        fc.weight[0] *= gain
        fc.bias[0] = (gain * (fc.bias[0] * fc.bias_gain - thr) + 1) / fc.bias_gain


@pytest.fixture(scope="module")
def eg3d_tiny():
    """eg3d-tiny with opaque regions, and synthetic heads at its final image size (32 px)."""
    G = build_generator("eg3d-tiny")
    sharpen_density(G)
    heads = open_dataset("synthetic-heads", G.config.img_resolution, length=8)
    return G.eval(), MemoryDataset(heads.get_batch(list(range(8)))), heads


def test_eg3d_metrics_use_the_final_image_and_the_raw_image_at_depth_resolution(tmp_path, eg3d_tiny):
    G, data, heads = eg3d_tiny
    R, S = G.config.neural_rendering_resolution, G.config.img_resolution
    assert R != S  # 16 vs 32: the test tells the two resolutions apart
    det_path = tmp_path / "detector.pt"
    save_stand_in(det_path)
    depth_cfg = DepthNetConfig(resolution=16, width=8, levels=2, steps=5, batch=4, train_items=8)
    kw = dict(num_gen=4, batch=4, progress=False, cache_dir=tmp_path / "cache", camera="prior", num_samples=6,
              inception=det_path, depth_net=depth_cfg)
    report = evaluate(G, ["fid2k_full", "swd", "msssim", "reprojection"], data, **kw)
    res, m = report["results"], report["metrics"]
    assert report["settings"]["resolution"] == R and report["settings"]["image_resolution"] == S
    # SWD's pyramid starts at the final image size (the real images are read at 32 px, not 16).
    assert f"swd_{S}" in res and f"swd_{S // 2}" in res and m["swd"]["image_resolution"] == S
    assert m["fid2k_full@4"]["image_resolution"] == S and m["fid2k_full@4"]["real_preprocessing"]["resolution"] == S
    for name in ("fid2k_full@4", "swd", "msssim", "reprojection"):
        assert math.isfinite(res[name]), name
    assert 0 <= res["msssim"] <= 1
    # The sharpened model has surfaces: neighbouring views overlap, and the colour error is small but not 0.
    assert m["reprojection"]["image"].startswith("image_raw") and res["reprojection_covisible"] > 0.05
    assert 0 < res["reprojection"] < 0.5

    # The FID is that of the final images that generate() yields (S x S, seeded renderer draws).
    det = load_inception(det_path)
    settings = GenerationSettings(R, m["fid2k_full@4"]["truncation_psi"], "prior", G.eval_render_config(6),
                                  image_resolution=S)
    outs = [o for o, _ in generate(G, 4, settings, seed=0, batch=4, progress=False)]
    assert outs[0].image.shape[-1] == S and outs[0].depth.shape[-1] == R
    gen = det.features(to_uint8(outs[0].image))
    real = det.features(to_uint8(data.get_batch(list(range(8))).image))
    assert res["fid2k_full@4"] == pytest.approx(frechet_distance(*mean_cov(gen), *mean_cov(real)), rel=1e-6)
    # Same seed, same numbers: EG3D's jittered sampling draws from the seeded renderer generator.
    again = evaluate(G, ["msssim", "reprojection"], data, **kw)
    assert again["results"]["msssim"] == res["msssim"] and again["results"]["reprojection"] == res["reprojection"]

    # SIDE: the final image, resized to the depth's 16 px, against the generator's depth.
    side = evaluate(G, ["side"], heads, **kw)
    entry = side["metrics"]["side"]
    assert entry["images_scored"] + entry["images_skipped_small_mask"] == 4 and entry["images_scored"] > 0
    assert math.isfinite(side["results"]["side"]) and 0 <= side["results"]["mad"] <= 180


def test_reprojection_on_eg3d_scores_image_raw_not_the_super_resolved_image(tmp_path, eg3d_tiny, monkeypatch):
    G, _, _ = eg3d_tiny
    calls = []
    original = G.synthesis

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append((kwargs.get("superresolution", True), out.image.shape[-1]))
        return out
    monkeypatch.setattr(G, "synthesis", spy)
    evaluate(G, ["reprojection"], num_gen=1, batch=1, progress=False, cache_dir=tmp_path, num_samples=4)
    # Five views, the super-resolution skipped (the depth-sized raw image is what is compared).
    assert calls == [(False, G.config.neural_rendering_resolution)] * 5


def test_metrics_on_the_official_eg3d_pickle(tmp_path):
    import aware3d
    from .conftest import require_reference
    G = aware3d.load(require_reference("eg3d", "network-snapshot.pkl"))
    assert G.config.img_resolution == 512 and G.config.neural_rendering_resolution == 64
    report = evaluate(G, ["msssim", "reprojection"], num_gen=2, batch=2, progress=False, cache_dir=tmp_path,
                      resolution=16, num_samples=8)
    res, m = report["results"], report["metrics"]
    assert report["settings"]["image_resolution"] == 512 and report["settings"]["resolution"] == 16
    assert 0 < res["msssim"] < 1 and m["msssim"]["image_resolution"] == 512
    # The fixture's density is sharpened (README step D): opaque regions that neighbouring views share.
    assert res["reprojection_covisible"] > 0.1 and 0 < res["reprojection"] < 0.2


def test_metrics_command_on_an_eg3d_preset_reads_real_images_at_the_final_size(tmp_path):
    out = tmp_path / "out"
    assert main(["metrics", "--checkpoint", "eg3d-tiny", "--data", "synthetic-heads", "--metrics", "swd,msssim",
                 "--num-gen", "4", "--batch", "4", "--num-samples", "4", "--camera", "prior", "--out", str(out),
                 "--cache-dir", str(tmp_path), "--no-progress"]) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["model"]["family"] == "eg3d" and record["data"]["resolution"] == 32
    assert {"swd_32", "swd_16"} <= set(record["results"]) and record["settings"]["image_resolution"] == 32


def test_dataset_cameras_that_cannot_see_the_model_are_refused(tmp_path, eg3d_tiny):
    G, data, _ = eg3d_tiny  # synthetic heads: cameras at radius 1; EG3D rays sample 2.25..3.3
    with pytest.raises(ValueError, match="--camera prior") as e:
        evaluate(G, ["msssim"], data, num_gen=2, progress=False, cache_dir=tmp_path)  # auto -> dataset cameras
    assert "2.25..3.3" in str(e.value)
    # With the model's own pose distribution it runs; reprojection never uses dataset cameras.
    ok = evaluate(G, ["msssim", "reprojection"], data, num_gen=2, batch=2, progress=False, cache_dir=tmp_path,
                  camera="prior", num_samples=4)
    assert math.isfinite(ok["results"]["msssim"])
    assert evaluate(G, ["reprojection"], data, num_gen=1, progress=False, cache_dir=tmp_path,
                    num_samples=4)["metrics"]["reprojection"]["num_latents"] == 1
