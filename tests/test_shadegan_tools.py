"""The light tools end to end on tiny ShadeGAN models: render --relight, video --light-path, the family's shapes
defaults, and aware3d light-prior (fits from codes and from a synthetic dataset, our JSON, the official file,
a checkpoint that then loads with the prior)."""

from __future__ import annotations

import json
import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

import aware3d
from aware3d.cli.main import main
from aware3d.data.synthetic import SyntheticDataset
from aware3d.io.checkpoint import save_generator
from aware3d.models.base import Condition
from aware3d.models.light_prior import LightPrior
from aware3d.models.registry import build_generator
from aware3d.models.shadegan.light import light_direction
from aware3d.tools.light_prior import codes_from_directions, fit_light_prior, parse_code_rows, read_light_codes
from aware3d.tools.shapes import ShapesOptions, resolve_half_extent, resolve_level

from .conftest import require_reference

pytestmark = pytest.mark.usefixtures("one_thread")

RELIGHT = [[0.17, 0.42, dx, 0.3] for dx in (-1.5, -1.0, 0.0, 1.0, 1.5)]
MAPS = ("", "_albedo", "_shading", "_diffuse", "_normal", "_depth", "_tracker_depth")


@pytest.fixture(scope="module")
def lightless_albedo_ckpt(tmp_path_factory):
    """A tiny ShadeGAN whose albedo ignores the light (light_condition false), so only the shading may change."""
    G = build_generator("shadegan-tiny", seed=3, overrides=["light_condition=false"]).eval()
    return str(save_generator(G, tmp_path_factory.mktemp("ckpt") / "shadegan"))


def png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


# ------------------------------------------------------------------------------------ render --relight
def test_relight_writes_every_map_per_light_and_only_the_shading_changes(lightless_albedo_ckpt, tmp_path):
    out = tmp_path / "r"
    assert main(["render", "--checkpoint", lightless_albedo_ckpt, "--out", str(out), "--seeds", "2", "--yaw", "0",
                 "0.3", "--resolution", "12", "--num-samples", "4", "--relight", "--light", "0", "0.5", "0.2", "0",
                 "--no-progress"]) == 0
    rec = json.loads((out / "render.json").read_text())
    np.testing.assert_allclose(rec["lights"], RELIGHT + [[0.0, 0.5, 0.2, 0.0]], rtol=0, atol=1e-6)
    for view in range(2):
        for light in range(6):
            for suffix in MAPS:
                assert Image.open(out / f"seed0002_view{view:02d}_light{light:02d}{suffix}.png").size == (12, 12)
    assert len(rec["files"]) == 2 * 6 * len(MAPS)
    assert Image.open(out / "grid.png").size == (6 * 12 + 7 * 2, 2 * 12 + 3 * 2)  # columns: the lights
    stem = out / "seed0002_view00_light"
    assert not np.array_equal(png(f"{stem}00_shading.png"), png(f"{stem}04_shading.png"))
    assert not np.array_equal(png(f"{stem}00.png"), png(f"{stem}04.png"))
    for suffix in ("_albedo", "_depth", "_normal", "_tracker_depth"):
        assert np.array_equal(png(f"{stem}00{suffix}.png"), png(f"{stem}04{suffix}.png")), suffix


def test_relight_maps_are_render_pys():
    """diffuse = (shading - k_a) / k_d is the clamped Lambertian term n . l; depth maps near..far to 0..1."""
    G = build_generator("shadegan-tiny", seed=1).eval()
    cfg = G.eval_render_config(4)
    light = torch.tensor([[0.1, -0.2, 1.0, 0.3]])
    with torch.no_grad():
        w = G.mapping(G.z_from_seeds([0]), 0.5)
        out = G.synthesis(w, G.cameras([math.pi / 2], [math.pi / 2]), condition=Condition(light=light),
                          resolution=10, render=cfg)
    maps = G.relight_maps(out, Condition(light=light), cfg)
    lambert = (out.normals * light_direction(light)[:, :, None, None]).sum(1, keepdim=True).clamp(0, 1)
    torch.testing.assert_close(maps["diffuse"], lambert, atol=1e-5, rtol=0)
    assert float(maps["shading"].amax()) == pytest.approx(1.0)
    torch.testing.assert_close(maps["albedo"], out.maps["albedo"] / 2 + 0.5)
    assert maps["tracker_depth"].shape == (1, 1, 10, 10)


# ------------------------------------------------------------------------------------ video --light-path
def test_light_path_video_keeps_the_view_and_sweeps_the_light(lightless_albedo_ckpt, tmp_path):
    assert main(["video", "--checkpoint", lightless_albedo_ckpt, "--out", str(tmp_path), "--light-path", "--frames",
                 "4", "--resolution", "12", "--num-samples", "4", "--name", "relight.gif", "--no-progress"]) == 0
    frames = iio.imread(tmp_path / "relight.gif", index=None)
    assert frames.shape[:3] == (4, 12, 12)
    assert not np.array_equal(frames[0], frames[2])  # the light from the left, then from the right
    rec = json.loads((tmp_path / "relight.json").read_text())
    np.testing.assert_allclose([code[2] for code in rec["lights"]], [-1.5, 0.0, 1.5, 0.0], atol=1e-6, rtol=0)
    assert all(code[:2] == pytest.approx([0.17, 0.42]) and code[3] == pytest.approx(0.3) for code in rec["lights"])
    assert main(["video", "--checkpoint", lightless_albedo_ckpt, "--out", str(tmp_path), "--light-path",
                 "--light", "0", "0", "0", "0", "--frames", "2"]) == 2


def test_families_without_lights_refuse_the_light_tools(tmp_path, capsys):
    assert main(["render", "--checkpoint", "pigan-tiny", "--out", str(tmp_path), "--relight"]) == 2
    err = capsys.readouterr().err
    assert "--relight" in err and "shadegan" in err and "pigan" in err
    assert main(["video", "--checkpoint", "eg3d-tiny", "--out", str(tmp_path), "--light-path", "--frames", "2"]) == 2
    err = capsys.readouterr().err
    assert "--light-path" in err and "shadegan" in err
    with pytest.raises(ValueError, match="takes no light condition"):
        aware3d.load("pigan-tiny").relight_codes()


# ------------------------------------------------------------------------------------ --delta
def test_render_delta_sets_the_surface_band_and_other_families_refuse_it(lightless_albedo_ckpt, tmp_path, capsys):
    """``--delta`` changes which samples the rays take (the band around the tracked depth); <= 0 the full ray."""
    images = {}
    for delta in ("0.02", "-1"):
        out = tmp_path / delta
        assert main(["render", "--checkpoint", lightless_albedo_ckpt, "--out", str(out), "--seeds", "1", "--yaw", "0",
                     "--resolution", "12", "--num-samples", "4", "--delta", delta, "--no-progress"]) == 0
        images[delta] = png(out / "seed0001_view00.png")
        assert json.loads((out / "render.json").read_text())["options"]["delta"] == float(delta)
    assert np.abs(images["0.02"].astype(int) - images["-1"].astype(int)).max() > 0
    assert main(["render", "--checkpoint", "pigan-tiny", "--out", str(tmp_path / "p"), "--delta", "0.05"]) == 2
    assert "--delta" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ shapes
def shifted_density_ckpt(tmp_path, preset: str, level: float) -> str:
    """A tiny model whose raw density hovers around ``level`` (untrained densities stay near 0)."""
    G = build_generator(preset, seed=0).eval()
    with torch.no_grad():
        G.field.sigma_head.bias += level
    return str(save_generator(G, tmp_path / preset))


def test_shapes_defaults_come_from_the_family_and_flags_override(tmp_path):
    ckpt = shifted_density_ckpt(tmp_path, "shadegan-tiny", 35.0)
    assert main(["shapes", "--checkpoint", ckpt, "--out", str(tmp_path / "a"), "--grid", "12", "--no-progress"]) == 0
    rec = json.loads((tmp_path / "a" / "shapes.json").read_text())
    assert rec["shapes"][0]["level"] == 35.0 and rec["bounds"][1] == [0.15] * 3  # extract_shapes' 35 and 0.3
    assert main(["shapes", "--checkpoint", ckpt, "--out", str(tmp_path / "b"), "--grid", "12", "--no-progress",
                 "--sigma-threshold", "35.02", "--cube-size", "0.2"]) == 0
    rec = json.loads((tmp_path / "b" / "shapes.json").read_text())
    assert rec["shapes"][0]["level"] == 35.02 and rec["bounds"][1] == pytest.approx([0.1] * 3)
    assert aware3d.load("pigan-tiny").shape_level() == 10.0
    assert resolve_level(None, torch.zeros(1), 35.0) == 35.0 and resolve_level("3", torch.zeros(1), 35.0) == 3.0
    assert resolve_half_extent(ShapesOptions(half_extent=0.2)) == 0.2
    with pytest.raises(ValueError, match="--half-extent or --cube-size"):
        resolve_half_extent(ShapesOptions(half_extent=0.2, cube_size=0.3))


# ------------------------------------------------------------------------------------ light-prior
def test_fit_recovers_a_known_multivariate_normal():
    mean = torch.tensor([0.2, 0.45, -0.05, 0.25], dtype=torch.float64)
    std = torch.tensor([0.1, 0.12, 0.4, 0.18], dtype=torch.float64)
    corr = torch.eye(4, dtype=torch.float64)
    corr[0, 1] = corr[1, 0] = -0.6
    corr[2, 3] = corr[3, 2] = 0.3
    cov = std[:, None] * corr * std[None]
    n = 20000
    eps = torch.randn(n, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    codes = mean + eps @ torch.linalg.cholesky(cov).T
    prior, ridge = fit_light_prior(codes)
    assert ridge == 0.0
    # 4 standard errors: of the mean sqrt(S_ii / n), of a covariance entry sqrt((S_ii S_jj + S_ij^2) / n).
    assert ((prior.mean.double() - mean).abs() <= 4 * (cov.diagonal() / n).sqrt()).all()
    se_cov = ((cov.diagonal()[:, None] * cov.diagonal()[None] + cov ** 2) / n).sqrt()
    assert ((prior.cov.double() - cov).abs() <= 4 * se_cov).all()
    # and not trivially: a fit of other codes misses
    assert not ((fit_light_prior(codes * 1.1)[0].cov.double() - cov).abs() <= 4 * se_cov).all()


def test_our_format_round_trips_exactly(tmp_path):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, 4, generator=g)
    prior = LightPrior(torch.randn(4, generator=g), a @ a.T + 0.1 * torch.eye(4))
    loaded = LightPrior.load(prior.save(tmp_path / "p.json", about={"note": "test"}))
    assert torch.equal(loaded.mean, prior.mean) and torch.equal(loaded.cov, prior.cov)
    assert json.loads((tmp_path / "p.json").read_text())["format"] == "aware3d-light-prior"
    # the command's output is the fit, bit for bit
    rows = (prior.sample(50, torch.Generator().manual_seed(1))).tolist()
    (tmp_path / "codes.json").write_text(json.dumps({"codes": rows}))
    assert main(["light-prior", "--codes", str(tmp_path / "codes.json"), "--out", str(tmp_path / "fit.json")]) == 0
    fitted, _ = fit_light_prior(torch.tensor(rows, dtype=torch.float64))
    written = LightPrior.load(tmp_path / "fit.json")
    assert torch.equal(written.mean, fitted.mean) and torch.equal(written.cov, fitted.cov)


def test_code_files_in_text_csv_and_json(tmp_path):
    rows = [[0.1, 0.2, -1.0, 0.3], [0.0, 0.5, 1.5, -0.25]]
    (tmp_path / "c.csv").write_text("a,d,dx,dy\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    (tmp_path / "c.txt").write_text("# lights\n" + "\n".join(" ".join(map(str, r)) for r in rows) + "\n\n")
    (tmp_path / "c.json").write_text(json.dumps(rows))
    for name in ("c.csv", "c.txt", "c.json"):
        assert read_light_codes(tmp_path / name).tolist() == rows, name
    with pytest.raises(ValueError, match=r"f:3: 3 numbers"):
        parse_code_rows("a d dx dy\n1 2 3 4\n1 2 3\n", "f")


def test_codes_from_light_directions():
    codes = torch.tensor([[-0.3, 0.5, 1.5, 0.3], [-0.3, 0.5, -0.4, -0.2]], dtype=torch.float64)
    dirs = light_direction(codes.float())
    back, kept = codes_from_directions(torch.cat([dirs, torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.6, -0.8]])]),
                                       0.35, 0.75, 0.1)
    assert kept.tolist() == [True, True, False, False]  # from the side and from behind: no code
    torch.testing.assert_close(back, codes, atol=1e-6, rtol=0)


def test_dataset_fit_on_synthetic_heads(tmp_path):
    assert main(["light-prior", "--data", "synthetic-heads", "--length", "40", "--batch", "16", "--out",
                 str(tmp_path / "heads.json"), "--no-progress"]) == 0
    prior = LightPrior.load(tmp_path / "heads.json")
    ds = SyntheticDataset("synthetic-heads", length=40)
    dirs = torch.stack([ds.sample_params(i)["light_dir"] for i in range(40)]).double()
    dx, dy = dirs[:, 0] / dirs[:, 2], dirs[:, 1] / dirs[:, 2]
    torch.testing.assert_close(prior.mean, torch.tensor([-0.3, 0.5, dx.mean(), dy.mean()]).float())
    torch.testing.assert_close(prior.cov[2, 2], (dx.var() + 1e-4).float())  # the ridge is on every diagonal entry
    # ambient and diffuse are constant across the set: the ridge makes the covariance positive definite
    assert prior.cov[0, 0] == pytest.approx(1e-4) and prior.cov[1, 1] == pytest.approx(1e-4)
    about = json.loads((tmp_path / "heads.json").read_text())["about"]
    assert about["ridge_added"] == 1e-4 and about["codes"] == 40 and about["skipped_lz"] == 0
    assert main(["light-prior", "--data", "synthetic-heads", "--length", "8", "--ambient", "0.5", "--out",
                 str(tmp_path / "k.json"), "--no-progress"]) == 0
    assert LightPrior.load(tmp_path / "k.json").mean[0] == 0.0  # a = 2 k_a - 1


def test_degenerate_inputs_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="at least 2 codes"):
        fit_light_prior(torch.zeros(1, 4))
    constant = torch.randn(10, 4, dtype=torch.float64)
    constant[:, 1] = 0.5
    with pytest.raises(ValueError, match="not positive definite.*--ridge"):
        fit_light_prior(constant, ridge=0)
    assert fit_light_prior(constant, ridge=1e-3)[1] == 1e-3
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        fit_light_prior(torch.zeros(5, 3))
    assert main(["light-prior", "--data", "synthetic-heads", "--codes", "x.csv"]) == 2
    assert "exactly one of --data, --codes and --prior" in capsys.readouterr().err


def test_checkpoint_with_a_fitted_prior_loads_with_it(tmp_path, capsys):
    G = build_generator("shadegan-tiny", seed=4).eval()
    ckpt = save_generator(G, tmp_path / "ckpt")
    rows = [[0.1, 0.3, -1.0, 0.2], [0.3, 0.5, 0.5, 0.4], [0.2, 0.2, 1.0, 0.1], [0.0, 0.4, 0.0, 0.5],
            [0.25, 0.35, -0.5, 0.3]]
    (tmp_path / "codes.txt").write_text("\n".join(" ".join(map(str, r)) for r in rows))
    assert main(["light-prior", "--codes", str(tmp_path / "codes.txt"), "--checkpoint", str(ckpt)]) == 0
    fitted, _ = fit_light_prior(torch.tensor(rows, dtype=torch.float64))
    loaded = aware3d.load(ckpt)
    assert torch.equal(loaded.light_mean, fitted.mean) and torch.equal(loaded.light_cov, fitted.cov)
    assert loaded.source["light_prior"]["codes_file"].endswith("codes.txt")
    copy = LightPrior.load(ckpt / "light_prior.json")
    assert torch.equal(copy.mean, fitted.mean) and torch.equal(copy.cov, fitted.cov)
    # renders without a light use the new prior's mean
    with torch.no_grad():
        w = loaded.mapping(loaded.z_from_seeds([0]), 0.5)
        cams = loaded.cameras([math.pi / 2], [math.pi / 2])
        default = loaded.synthesis(w, cams, resolution=8, render=loaded.eval_render_config(4))
        explicit = G.synthesis(w, cams, resolution=8, render=G.eval_render_config(4),
                               condition=Condition(light=fitted.mean[None]))
    assert torch.equal(default.image, explicit.image)
    # a family without lights keeps its checkpoint untouched
    pigan = save_generator(aware3d.load("pigan-tiny"), tmp_path / "pigan")
    assert main(["light-prior", "--codes", str(tmp_path / "codes.txt"), "--checkpoint", str(pigan)]) == 2
    assert "shadegan" in capsys.readouterr().err and not (pigan / "light_prior.json").exists()


def test_the_official_prior_file_converts_to_ours(tmp_path):
    official = require_reference("shadegan", "celeba_light_mvn.pth")
    assert main(["light-prior", "--prior", str(official), "--out", str(tmp_path / "celeba.json")]) == 0
    prior = LightPrior.load(tmp_path / "celeba.json")
    reference = torch.load(official, weights_only=True)
    assert torch.equal(prior.mean, reference["mean"]) and torch.equal(prior.cov, reference["cov"])
