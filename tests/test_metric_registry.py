"""The metric registry: a metric registered from outside (as a family would) runs through evaluate() and
`aware3d metrics`, its needs are enforced, shared passes run once, conditions reach the generator, and
registrations never leak out of a test."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch

from aware3d.cli.main import main
from aware3d.data import open_dataset
from aware3d.metrics import evaluate
from aware3d.metrics.registry import (METRICS, Metric, MetricContext, Needs, SharedPass, get_metric, metric_names,
                                      parse_metric_list, register_metric, registered_metric, unregister_metric)
from aware3d.models.base import Capabilities, Condition
from tests.test_metrics_eval import MemoryDataset, SphereConfig, SphereGenerator

pytestmark = pytest.mark.usefixtures("one_thread")


def mean_brightness(ctx: MetricContext) -> dict:
    """The toy metric: mean pixel value of the generated images, in [-1, 1]."""
    total = 0.0
    for out, _ in ctx.generate(desc="generate (brightness)"):
        total += float(out.image.mean(dim=(1, 2, 3)).sum())
    return {"value": total / ctx.num_gen, "num_gen": ctx.num_gen, "camera": ctx.settings.camera}


BRIGHTNESS = Metric("brightness", mean_brightness, num_gen=6, needs=Needs(), higher_is_better=True, kind="toy")


@pytest.fixture
def brightness():
    with registered_metric(BRIGHTNESS) as m:
        yield m
    assert "brightness" not in METRICS  # unregistered on exit


@pytest.fixture(scope="module")
def sphere():
    return SphereGenerator(SphereConfig(resolution=16))


def test_a_registered_metric_runs_through_evaluate_and_matches_its_definition(brightness, sphere, tmp_path):
    report = evaluate(sphere, ["brightness", "msssim"], num_gen=4, batch=2, progress=False, cache_dir=tmp_path)
    assert list(report["results"]) == ["brightness", "msssim"]
    entry = report["metrics"]["brightness"]
    assert entry["kind"] == "toy" and entry["higher_is_better"] is True and entry["needs"] == []
    assert entry["num_gen"] == 4 and entry["camera"] == "prior" and entry["time_s"] >= 0
    # The sphere ignores z and its pose is fixed: every generated image is this one.
    cams = sphere.cameras([sphere.config.pose.yaw_mean], [sphere.config.pose.pitch_mean])
    expected = float(sphere.synthesis(None, cams, render=sphere.eval_render_config()).image.mean())
    assert report["results"]["brightness"] == pytest.approx(expected, abs=1e-6)
    # The built-in metric next to it is unaffected by the newcomer.
    alone = evaluate(sphere, ["msssim"], num_gen=4, batch=2, progress=False, cache_dir=tmp_path)
    assert alone["results"]["msssim"] == report["results"]["msssim"]


def test_unknown_names_list_every_registered_metric_including_new_ones(brightness):
    with pytest.raises(ValueError, match=r"unknown metric 'brightnes'; valid: .*side.*brightness"):
        get_metric("brightnes")
    with pytest.raises(ValueError, match="valid: .*brightness"):
        parse_metric_list("swd,brightnes")
    assert metric_names()[-1] == "brightness" and [m.name for m in parse_metric_list("brightness,swd")] == [
        "brightness", "swd"]


def test_registration_is_checked_and_undone():
    with registered_metric(BRIGHTNESS):
        with pytest.raises(ValueError, match="already registered"):
            register_metric(BRIGHTNESS)
    with pytest.raises(RuntimeError), registered_metric(BRIGHTNESS):
        raise RuntimeError("a failing test body")
    assert "brightness" not in METRICS
    register_metric(BRIGHTNESS)
    assert unregister_metric("brightness") is BRIGHTNESS and "brightness" not in METRICS
    with pytest.raises(ValueError, match="valid: "):
        unregister_metric("brightness")
    for bad in ("", "a,b", "two words"):
        with pytest.raises(ValueError, match="commas or spaces"):
            Metric(bad, mean_brightness)
    with pytest.raises(ValueError, match="shared pass"):
        Metric("orphan", mean_brightness, uses=frozenset({"features"}))


def test_a_metric_needing_ground_truth_refuses_a_dataset_without_it(sphere, tmp_path):
    def gt_depth(ctx: MetricContext) -> dict:
        return {"value": float(ctx.data.ground_truth([0]).depth.mean())}

    heads = open_dataset("synthetic-heads", 16, length=2)
    photos = MemoryDataset(heads.get_batch([0, 1]))  # images and cameras, no ground truth (like a folder)
    kw = dict(num_gen=1, progress=False, cache_dir=tmp_path, camera="prior")
    with registered_metric(Metric("gt_depth", gt_depth, needs=Needs(real=True, ground_truth=True))):
        refusal = r"metric 'gt_depth' needs ground-truth depth .*synthetic-heads.*'memory-heads'"
        with pytest.raises(ValueError, match=refusal):
            evaluate(sphere, ["gt_depth"], photos, **kw)
        with pytest.raises(ValueError, match="gt_depth need real images.*--data"):
            evaluate(sphere, ["gt_depth"], None, **kw)
        report = evaluate(sphere, ["gt_depth"], heads, **kw)
        assert report["results"]["gt_depth"] > 0 and report["metrics"]["gt_depth"]["needs"] == ["real", "ground_truth"]


def test_metrics_sharing_a_pass_get_one_run_of_it_per_protocol_group(sphere, tmp_path):
    calls = []

    def pass_run(metrics, ctx):
        calls.append(([m.name for m in metrics], ctx.num_gen))
        return torch.cat([out.image.mean(dim=(1, 2, 3)) for out, _ in ctx.generate()])

    shared = SharedPass("toy", pass_run)
    mean = Metric("toy_mean", lambda ctx: {"value": float(ctx.shared.mean())}, 4, shared=shared, uses=frozenset({"m"}))
    peak = Metric("toy_max", lambda ctx: {"value": float(ctx.shared.max())}, 4, shared=shared,
                  flatten=lambda name, e: {name: e["value"], f"{name}_doubled": 2 * e["value"]})
    other = Metric("toy_more", lambda ctx: {"value": float(ctx.shared.mean())}, 6, shared=shared)
    with registered_metric(mean), registered_metric(peak), registered_metric(other):
        report = evaluate(sphere, "toy_mean,toy_max,toy_more", batch=2, progress=False, cache_dir=tmp_path)
    assert calls == [(["toy_mean", "toy_max"], 4), (["toy_more"], 6)]
    res = report["results"]
    assert list(res) == ["toy_mean", "toy_max", "toy_max_doubled", "toy_more"]
    assert res["toy_max"] >= res["toy_mean"] and res["toy_max_doubled"] == 2 * res["toy_max"]


@dataclass(frozen=True)
class Gain:
    """A toy metric's settings (read by type through ctx.config)."""

    factor: float = 1.0


class LitSphere(SphereGenerator):
    """The sphere, dimmed by a light condition's first entry; records the conditions it is given."""

    family = "lit-sphere"
    capabilities = Capabilities(conditions=("light",))

    def __init__(self):
        super().__init__(SphereConfig(resolution=8))
        self.seen = []

    def synthesis(self, w, cameras, *, condition=None, **kwargs):
        out = super().synthesis(w, cameras, **kwargs)
        self.seen.append(condition)
        if condition is not None:
            out.image = out.image * condition.light[:, :1, None, None]
        return out


def test_condition_and_configs_reach_the_generator_and_the_metric(tmp_path):
    def scaled(ctx: MetricContext) -> dict:
        return {"value": ctx.config(Gain).factor * mean_brightness(ctx)["value"]}

    G = LitSphere()
    light = torch.tensor([[1.0, 0, 0, 0], [0.5, 0, 0, 0], [0.0, 0, 0, 0], [0.0, 0, 0, 0]])
    kw = dict(num_gen=4, batch=2, progress=False, cache_dir=tmp_path)
    with registered_metric(Metric("scaled", scaled)):
        plain = evaluate(G, ["scaled"], **kw)["results"]["scaled"]
        assert G.seen == [None, None]  # no condition: the generator is called as before
        G.seen.clear()
        lit = evaluate(G, ["scaled"], condition=Condition(light=light), configs=[Gain(3.0)], **kw)["results"]["scaled"]
        # Each batch gets its rows of the condition: the four identical images are scaled by 1, 0.5, 0, 0.
        assert [c.light[:, 0].tolist() for c in G.seen] == [[1.0, 0.5], [0.0, 0.0]]
        assert lit == pytest.approx(3.0 * plain * (1 + 0.5) / 4, rel=1e-6)
        with pytest.raises(ValueError, match="takes no light condition"):
            evaluate(SphereGenerator(SphereConfig(resolution=8)), ["scaled"], condition=Condition(light=light), **kw)


def test_the_metrics_command_runs_a_registered_metric(brightness, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["metrics", "--checkpoint", "pigan-tiny", "--metrics", "brightness,msssim", "--num-gen", "4", "--batch",
            "4", "--out", str(out), "--cache-dir", str(tmp_path), "--no-progress"]
    assert main(args) == 0
    assert "brightness" in capsys.readouterr().out
    record = json.loads((out / "metrics.json").read_text())
    assert set(record["results"]) == {"brightness", "msssim"} and -1 <= record["results"]["brightness"] <= 1
    assert record["metrics"]["brightness"]["kind"] == "toy"
    assert main(["metrics", "--checkpoint", "pigan-tiny", "--metrics", "brightnes", "--out", str(out)]) == 2
    assert "brightness" in capsys.readouterr().err


def test_a_name_not_registered_yet_imports_the_families_first(monkeypatch):
    from aware3d.metrics import registry

    def discover():  # what importing a family that registers a metric does
        register_metric(BRIGHTNESS)
    monkeypatch.setattr(registry, "_discover_family_metrics", discover)
    try:
        assert get_metric("brightness") is BRIGHTNESS
    finally:
        unregister_metric("brightness")
