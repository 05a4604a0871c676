"""The absolute foreground-depth metrics (fg_depth_abs, fg_depth_separation, fg_depth_within_0.01, fg_normal_deg):
a flat sheet against the true depth, analytically and end to end through evaluate() and the demo's metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import pytest
import torch

from aware3d.cameras import PoseDistribution
from aware3d.data import open_dataset
from aware3d.data.synthetic import SyntheticDataset
from aware3d.metrics import evaluate
from aware3d.metrics.depth import DepthNetConfig, ForegroundDepthConfig, foreground_depth_scores, masked_median
from aware3d.metrics.registry import get_metric
from aware3d.models.base import Generator3D, GeneratorOutput
from aware3d.rendering import RenderConfig

pytestmark = pytest.mark.usefixtures("one_thread")

NAMES = ["fg_depth_abs", "fg_depth_separation", "fg_depth_within_0.01", "fg_normal_deg"]
FAR = 1.12
"""The stand-in's far plane: where its empty rays end, the background distance."""


# ---------------------------------------------------------------------------------- analytic scores

def test_masked_median_ignores_pixels_outside_the_mask():
    x = torch.tensor([5.0, 1.0, 3.0, 100.0, 2.0]).reshape(1, 1, 1, 5)
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0]).reshape(1, 1, 1, 5)
    assert masked_median(x, mask).tolist() == [2.0]  # lower median of 1, 2, 3, 5
    assert math.isnan(float(masked_median(x, torch.zeros_like(mask))))


@pytest.mark.parametrize("name,far", [("synthetic-heads", 1.12), ("synthetic-objects", 1.3)])
def test_a_flat_sheet_and_the_true_depth_score_apart_against_the_ground_truth(name, far):
    gt = open_dataset(name, 32, length=6).ground_truth(list(range(6)))
    truth = torch.where(gt.mask > 0.5, gt.depth, torch.full_like(gt.depth, far))
    sheet = torch.full_like(gt.depth, far)  # the whole image at the background distance
    good = foreground_depth_scores(truth, gt.depth, gt.mask, gt.intrinsics)
    bad = foreground_depth_scores(sheet, gt.depth, gt.mask, gt.intrinsics)
    assert bool((good["abs"] == 0).all()) and bool((good["within"] == 1).all())
    assert bool((good["separation"] > 0.05).all()) and float(good["normal_deg"].max()) < 0.1
    assert bool((bad["separation"] == 0).all()) and bool((bad["abs"] > 0.08).all())
    assert float(bad["within"].max()) < 0.1 and float(bad["normal_deg"].min()) > 20
    assert bool((good["inside_pixels"] > 16).all()) and bool((good["outside_pixels"] > 16).all())


# ---------------------------------------------------------------------- a stand-in generator

@dataclass(frozen=True)
class StandInConfig:
    """What evaluate() reads from a generator's config."""

    resolution: int = 16
    fov_deg: float = 12.0
    pixel_grid: str = "pixel_centers"
    pose: PoseDistribution = field(default_factory=lambda: PoseDistribution("gaussian", math.pi / 2, math.pi / 2,
                                                                            0.3, 0.155, 1.0))
    eval_truncation_psi: float = 1.0
    eval_render: RenderConfig = field(default_factory=lambda: RenderConfig(near=0.88, far=FAR, num_samples=4,
                                                                           num_importance=0))


class HeadStandIn(Generator3D):
    """Shows exact synthetic heads (identities of another dataset seed than the metric's, one per latent) from
    the asked cameras; its depth is their true depth (background at the far plane) or a flat sheet there."""

    family = "head-stand-in"

    def __init__(self, depth: str, config: StandInConfig = StandInConfig()):
        super().__init__()
        self.config, self.depth_kind, self.z_dim, self.calls = config, depth, 4, 0
        self.heads = SyntheticDataset("synthetic-heads", resolution=config.resolution, length=64, seed=7)
        self.dummy = torch.nn.Parameter(torch.zeros(1))  # gives the module a device

    def mapping(self, z, truncation_psi=1.0, cameras=None, condition=None):
        return z

    def update_w_avg(self, *args, **kwargs):
        return torch.zeros(self.z_dim)

    def density(self, w):
        raise NotImplementedError("the stand-in has no field")

    color = density

    def synthesis(self, w, cameras, *, resolution=None, **kwargs):
        self.calls += 1
        params = [self.heads.sample_params(int(1000 * abs(float(row[0]))) % 64) for row in w]
        st = {k: torch.stack([p[k] for p in params]) for k in ("identity", "expression", "light_dir", "background")}
        out = self.heads.render(st["identity"], st["expression"], cameras, st["light_dir"], st["background"],
                                resolution or self.config.resolution)
        far = torch.full_like(out.depth, FAR)
        depth = torch.where(out.mask > 0.5, out.depth, far) if self.depth_kind == "truth" else far
        opacity = out.mask if self.depth_kind == "truth" else torch.ones_like(out.mask)
        return GeneratorOutput(out.image, depth, opacity, surface_depth=depth)


DEPTH_NET = DepthNetConfig(resolution=16, width=16, levels=2, steps=80, batch=16, train_items=16)
"""A depth network that learns 16 px heads in a few seconds."""
FG_CONFIG = ForegroundDepthConfig(gt_items=8)


@pytest.fixture(scope="module")
def heads():
    """synthetic-heads at 16 px, as the demo opens it (so the cached depth network serves the demo test too)."""
    return open_dataset("synthetic-heads", 16)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("fg-depth-cache")


def _evaluate(G, data, cache_dir, names=NAMES, camera=None):
    return evaluate(G, names, data, num_gen=8, batch=8, progress=False, cache_dir=cache_dir, depth_net=DEPTH_NET,
                    configs=[FG_CONFIG], camera=camera)


# ------------------------------------------------------------------------------- through evaluate()

def test_the_registry_names_and_directions():
    directions = {name: get_metric(name).higher_is_better for name in NAMES}
    assert directions == {"fg_depth_abs": False, "fg_depth_separation": True, "fg_depth_within_0.01": True,
                          "fg_normal_deg": False}
    passes = {get_metric(name).shared for name in NAMES}
    assert len(passes) == 1 and None not in passes  # one generation pass scores all four
    for name in NAMES:
        m = get_metric(name)
        assert m.needs.ground_truth and m.needs.depth and m.kind == "foreground_depth"
        assert m.flatten(name, {"value": 1.0, "gt_value": 0.5}) == {name: 1.0, f"{name}_gt": 0.5}


def test_evaluate_tells_a_flat_sheet_from_the_true_depth(heads, cache):
    sheet_G, truth_G = HeadStandIn("sheet"), HeadStandIn("truth")
    sheet, truth = _evaluate(sheet_G, heads, cache), _evaluate(truth_G, heads, cache)
    assert sheet_G.calls == 1 and truth_G.calls == 1  # 8 images in one batch, shared by the four metrics
    assert set(truth["results"]) == {n for name in NAMES for n in (name, f"{name}_gt")}
    s, t = sheet["results"], truth["results"]
    print({k: (round(s[k], 4), round(t[k], 4)) for k in s})
    # The separation reads only the network's mask and the generator's own depth: exactly 0 for a sheet.
    assert s["fg_depth_separation"] == 0 and t["fg_depth_separation"] > 0.05
    assert s["fg_depth_abs"] > 0.1 and t["fg_depth_abs"] < 0.3 * s["fg_depth_abs"]
    assert t["fg_depth_within_0.01"] > 0.3 > s["fg_depth_within_0.01"]
    assert t["fg_normal_deg"] < s["fg_normal_deg"]
    # The true depth of other heads scores about what the ground truth of held-out items scores (the floor).
    assert t["fg_depth_abs"] == pytest.approx(t["fg_depth_abs_gt"], abs=0.01)
    assert t["fg_depth_separation_gt"] > 0.05 and sheet["results"]["fg_depth_abs_gt"] == t["fg_depth_abs_gt"]
    entry = truth["metrics"]["fg_depth_separation"]
    assert entry["higher_is_better"] is True and truth["metrics"]["fg_depth_abs"]["higher_is_better"] is False
    assert entry["images_scored"] + entry["images_skipped_small_mask"] == 8 and entry["images_scored"] > 0
    assert entry["ground_truth"]["held_out"] is True and entry["ground_truth"]["items"] == [16, 24]
    assert entry["ground_truth"]["background_depth"] == FAR and "world units" in entry["units"]
    assert entry["depth_net"]["config"]["train_items"] == 16 and entry["within_tolerance"] == 0.01


def test_cameras_other_than_the_datasets_are_refused_before_any_training(heads, cache, tmp_path):
    far_cameras = replace(StandInConfig(), pose=replace(StandInConfig().pose, radius=2.7))
    with pytest.raises(ValueError, match="distance to the origin 1.*2.7"):
        _evaluate(HeadStandIn("truth", far_cameras), heads, tmp_path, ["fg_depth_abs"], camera="prior")
    assert not list(tmp_path.glob("depthnet-*"))
    # The model's own pose distribution, at the dataset's distance and fov, passes.
    assert _evaluate(HeadStandIn("truth"), heads, cache, ["fg_depth_separation"],
                     camera="prior")["results"]["fg_depth_separation"] > 0.05


def test_the_demo_reports_the_foreground_depth_numbers(heads, cache, monkeypatch):
    import aware3d.metrics as metrics
    from aware3d.tools import demo

    real_evaluate, asked = metrics.evaluate, []

    def small_evaluate(G, names, data, **kwargs):
        """The demo's evaluation with this module's small depth network and cache."""
        asked.extend(names)
        kwargs.update(depth_net=DEPTH_NET, configs=[FG_CONFIG], cache_dir=cache, num_gen=8, batch=8)
        return real_evaluate(G, names, data, **kwargs)

    monkeypatch.setattr(metrics, "evaluate", small_evaluate)
    opts = demo.DemoOptions(metric_images=8, metric_resolution=16, device="cpu", progress=False)
    numbers = demo._metrics(HeadStandIn("truth"), opts)
    assert set(NAMES) <= set(asked)
    results = numbers["results"]
    assert {n for name in NAMES for n in (name, f"{name}_gt")} <= set(results)
    assert results["fg_depth_separation"] > 0.05 and math.isfinite(results["fg_depth_abs"])
