"""The CGOF family's own parts: the latent layout and whitening, the mesh conditioning (against the rasteriser,
and the mouth-hole filling on hand-made masks), near-mesh sampling, expression-only edits, and one training step
that logs every named term."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from aware3d.faces import (CoefficientStatistics, FaceCoefficientRegressor, FaceCoefficients, RegressorConfig,
                           save_regressor)
from aware3d.models.base import Condition
from aware3d.models.cgof.conditioning import connected_components, fill_mouth_holes
from aware3d.models.cgof.generator import normalised_pose
from aware3d.models.cgof.layout import FACE_CODE_DIM, FaceWhitening, LatentLayout, whitened_coefficients
from aware3d.models.cgof.losses import CGOFLossWeights
from aware3d.models.cgof.render import NearMeshGuide, PassDraws, render_three_pass
from aware3d.models.cgof.training import CGOFLoss, CGOFLossConfig
from aware3d.models.registry import build_generator, get_family
from aware3d.rendering import RenderConfig
from aware3d.rendering.rasterize import project_points, rasterize
from aware3d.training.config import TrainOptions
from aware3d.training.stats import read_stats
from aware3d.training.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def G():
    return build_generator("cgof-tiny", seed=0).eval()


@pytest.fixture(scope="module")
def G_standard():
    """The tiny model with identity whitening: codes are the face model's coefficients."""
    return build_generator("cgof-tiny", seed=0, overrides=["statistics=standard"]).eval()


def frontal(G, n: int = 1):
    yaw, pitch = G.config.pose.frontal()
    return G.cameras([yaw] * n, [pitch] * n)


# ------------------------------------------------------------------------------------------ latent
def test_layout_slices_and_round_trip():
    layout = LatentLayout()
    sizes = {name: s.stop - s.start for name, s in layout.slices().items()}
    assert sizes == {"identity": 80, "expression": 64, "background_geometry": 80, "texture": 80, "lighting": 27,
                     "background_texture": 80}
    assert layout.z_dim == 411 and layout.slices()["texture"].start == 224 and layout.slices()["lighting"].start == 304
    z = torch.randn(3, 411)
    assert torch.equal(layout.join(layout.split(z)), z)
    code = layout.face_code(z)
    assert code.shape == (3, FACE_CODE_DIM)
    assert torch.equal(code[:, 80:144], z[:, 80:144]) and torch.equal(code[:, 144:224], z[:, 224:304])
    assert torch.equal(layout.with_face_code(z, code), z)
    with pytest.raises(ValueError, match="411 values"):
        layout.split(torch.zeros(1, 410))


def test_whitening_round_trip_and_the_fitted_distribution():
    g = torch.Generator().manual_seed(0)
    n = 4000
    mix = {name: torch.randn(dim, dim, generator=g) / dim ** 0.5 for name, dim in
           (("identity", 80), ("expression", 64), ("texture", 80), ("lighting", 27), ("pose", 6))}
    table = FaceCoefficients(**{k: torch.randn(n, m.shape[0], generator=g, dtype=torch.float64) @ m.double().T + 0.3
                                for k, m in mix.items()})
    stats = CoefficientStatistics.fit(table)
    whitening = FaceWhitening(stats)
    codes = torch.randn(n, FACE_CODE_DIM, generator=g, dtype=torch.float64)
    coefficients = whitening.unwhiten(codes)
    assert torch.equal(coefficients.pose, torch.zeros(n, 6, dtype=torch.float64))  # the canonical pose
    assert torch.allclose(whitening.whiten(coefficients), codes, atol=1e-9)
    # Unwhitened codes follow the fitted distribution: mean + L z has the table's covariance.
    fitted = stats.groups["expression"]
    cov = torch.cov(coefficients.expression.T)
    target = fitted.cholesky @ fitted.cholesky.T
    assert (cov - target).abs().max() < 0.15 * target.diagonal().max()
    assert torch.allclose(coefficients.expression.mean(0), fitted.mean, atol=0.1)


def test_mapping_carries_the_face_code_and_a_face_condition_replaces_it(G):
    z = G.z_from_seeds([1, 2])
    w = G.mapping(z, truncation_psi=0.5)
    film, code = G.split_latent(w)
    assert torch.equal(code, G.layout.face_code(z))  # never truncated
    other = torch.randn(1, FACE_CODE_DIM)
    w2 = G.mapping(z, condition=Condition(face=other))
    assert torch.equal(G.split_latent(w2)[1], other.expand(2, -1))
    assert torch.equal(w2, G.mapping(G.layout.with_face_code(z, other)))  # the whole code drives the mapping
    with pytest.raises(ValueError, match="face condition is"):
        G.mapping(z, condition=Condition(face=torch.zeros(1, 8)))


def test_normalised_pose_is_the_official_target():
    pose = get_family("cgof").presets["cgof-celeba"].pose
    angles = torch.tensor([[math.pi / 2 + 0.3, math.pi / 2 - 0.155]])  # (yaw, pitch): one std each
    assert torch.allclose(normalised_pose(angles, pose), torch.tensor([[-1.0, 1.0]]))  # (pitch, yaw)


# ------------------------------------------------------------------------------------------ conditioning
def test_conditioning_mask_depth_and_landmarks_agree_with_the_rasteriser(G):
    z = G.z_from_seeds([3])
    cams = G.cameras([math.pi / 2 + 0.2], [math.pi / 2 - 0.1])
    code = G.split_latent(G.mapping(z))[1]
    cond = G.conditioning(code, cams, 32)
    coefficients = G.whitening.unwhiten(code)
    mesh = G.face_model(coefficients)
    frags = rasterize(mesh.vertices, mesh.triangles, cams, 32, grid=G.config.pixel_grid)
    assert not cond.hole_mask.any()  # the synthetic head is closed: its mouth is a cavity, not a hole
    assert torch.equal(cond.face_mask, frags.mask) and torch.equal(cond.mesh_depth, frags.depth)
    xy, dist = project_points(mesh.landmarks, cams, 32, 32, G.config.pixel_grid)
    assert torch.allclose(cond.landmarks_2d, xy) and torch.allclose(cond.landmarks_3d, mesh.landmarks)
    # The nose tip (landmark 30) faces the camera: its pixel is face and the mesh depth there is its distance.
    col, row = (int(v) for v in xy[0, 30].round())
    assert cond.face_mask[0, row, col] and abs(float(cond.mesh_depth[0, row, col] - dist[0, 30].detach())) < 0.01
    assert cond.shaded.shape == (1, 3, 32, 32) and (cond.shaded[:, :, ~cond.face_mask[0]] == -1).all()


def test_connected_components_are_eight_connected():
    mask = torch.zeros(1, 5, 5, dtype=torch.bool)
    mask[0, 0, 0] = mask[0, 1, 1] = True  # diagonal neighbours: one component
    mask[0, 3, 3] = mask[0, 4, 4] = mask[0, 3, 4] = True
    labels = connected_components(mask)
    assert labels[0, 0, 0] == labels[0, 1, 1] != labels[0, 3, 3]
    assert labels[0, 3, 3] == labels[0, 4, 4] == labels[0, 3, 4] and (labels[~mask] == 0).all()
    assert len(torch.unique(labels)) == 3


def test_mouth_holes_are_filled_with_their_border_depth():
    H = W = 20
    rows, cols = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    face = ((rows - 10) ** 2 + (cols - 10) ** 2) <= 64  # a disk of radius 8
    mask = torch.stack([face, torch.ones_like(face)])
    mouth = (rows >= 13) & (rows <= 14) & (cols >= 8) & (cols <= 11)  # 8 pixels
    dot = (rows == 5) & (cols == 6)  # a one-pixel hole
    large = (rows >= 6) & (rows <= 9) & (cols >= 11) & (cols <= 15)  # 20 pixels: 5% of the image, kept
    notch = (rows < 2) & (cols < 2)  # small, but touching the image border: kept (image 2 is all face else)
    mask[0] &= ~(mouth | dot | large)
    mask[1] &= ~notch
    depth = (0.9 + 0.01 * cols.float() + 0.002 * rows.float()) * mask
    filled, new_depth, holes = fill_mouth_holes(mask, depth, max_fraction=0.05)
    assert torch.equal(holes[0], mouth | dot) and not holes[1].any()
    ring = (rows >= 12) & (rows <= 15) & (cols >= 7) & (cols <= 12) & ~mouth
    assert ring.sum() == 16 and mask[0][ring].all()
    assert torch.allclose(new_depth[0][mouth], depth[0][ring].mean().expand(8))
    assert torch.allclose(new_depth[0, 5, 6], depth[0, 4:7, 5:8].sum() / 8)
    assert torch.equal(filled, mask | holes) and torch.equal(new_depth[mask], depth[mask])
    assert torch.equal(new_depth[1], depth[1]) and (new_depth[0][large] == 0).all()


# ------------------------------------------------------------------------------------------ near-mesh sampling
def slab_field(points, dirs):
    """A field whose density is a slab around world z = 0.03 (so the importance samples bunch there)."""
    sigma = 50.0 * torch.exp(-((points[..., 2] - 0.03) / 0.01) ** 2)
    return torch.sigmoid(points * 10), sigma


def test_fine2_samples_move_into_the_band_on_masked_rays_only():
    B, R = 2, 6
    rays_o = torch.tensor([0.0, 0.0, 1.0]).expand(B, R, 3)
    rays_d = torch.tensor([0.0, 0.0, -1.0]).expand(B, R, 3)
    cfg = RenderConfig(near=0.88, far=1.12, num_samples=8, num_importance=8, background="last_sample")
    depth = torch.full((B, R), 1.0)
    mask = torch.tensor([[True, False, True, False, True, True], [False] * 3 + [True] * 3])
    draws = PassDraws(torch.rand(B, R, 8), torch.rand(B, R, 8), torch.rand(B, R, 8))
    runs = {r: render_three_pass(slab_field, rays_o, rays_d, cfg, 8, NearMeshGuide(depth, mask, 0.0012, r),
                                 draws=draws) for r in (0.0, 0.5, 1.0)}
    plain = runs[0.0].passes[1].t
    assert [p.name for p in runs[1.0].passes] == ["fine", "fine2"]
    band = 1.0 + 0.0012 * torch.linspace(-0.5, 0.5, 8)
    full = runs[1.0].passes[1].t
    assert torch.allclose(full[mask], band.expand(int(mask.sum()), 8), atol=1e-6)
    assert torch.equal(full[~mask], plain[~mask])
    half = runs[0.5].passes[1].t
    assert torch.allclose(half[mask], 0.5 * plain[mask] + 0.5 * band, atol=1e-6)
    assert torch.equal(runs[1.0].passes[0].t, runs[0.0].passes[0].t)  # the fine pass is untouched
    assert not torch.allclose(plain[mask], band.expand(int(mask.sum()), 8), atol=1e-3)


def test_every_pass_shapes_the_density_as_the_render_config_says():
    """density_scale and the ball prior act in CGOF's three passes as in the shared renderer (they were ignored)."""
    from aware3d.rendering.renderer import ball_density_prior
    B, R = 1, 4
    rays_o = torch.tensor([0.0, 0.0, 1.0]).expand(B, R, 3)
    rays_d = torch.tensor([0.0, 0.0, -1.0]).expand(B, R, 3)
    cfg = RenderConfig(near=0.88, far=1.12, num_samples=8, num_importance=8, background="last_sample",
                       perturb=False, importance_det=True)
    plain = render_three_pass(slab_field, rays_o, rays_d, cfg, 0, None)
    shaped = render_three_pass(slab_field, rays_o, rays_d, replace(cfg, density_scale=3.0, density_prior=2.0,
                                                                   density_prior_radius=0.05), 0, None)
    coarse_t = plain.passes[0].t
    points = rays_o.unsqueeze(2) + rays_d.unsqueeze(2) * coarse_t.unsqueeze(-1)
    want = slab_field(points.reshape(B, -1, 3), rays_d.unsqueeze(2).expand_as(points).reshape(B, -1, 3))[1]
    want = want.reshape(B, R, -1) * 3.0 + ball_density_prior(points, 2.0, 0.05)
    assert torch.equal(shaped.passes[0].t, coarse_t)
    assert torch.allclose(shaped.passes[0].sigma, want, atol=1e-6)
    assert [p.name for p in shaped.passes] == ["coarse", "fine"]
    assert not torch.allclose(shaped.composited.weights, plain.composited.weights)


def test_generator_guides_fine2_by_its_mesh_and_the_recipe_ramps_it(G):
    w = G.mapping(G.z_from_seeds([4]))
    cams = frontal(G)
    outs = {r: G.render_details(w, cams, resolution=16, near_mesh_ratio=r, generator=torch.Generator().manual_seed(0))
            for r in (0.0, 1.0)}
    depth, mask = outs[1.0].conditioning.rays()
    assert mask.any() and (~mask).any()
    width = (G.config.render.far - G.config.render.near) * G.config.thick_ratio
    t2 = outs[1.0].rays.passes[1].t
    assert ((t2 - depth[..., None]).abs() <= width / 2 + 1e-6)[mask].all()
    assert torch.equal(t2[~mask], outs[0.0].rays.passes[1].t[~mask])
    recipe = CGOFLoss(None, None, CGOFLossConfig(shrink_steps=200))
    assert [recipe.near_mesh_ratio(s) for s in (0, 100, 200, 5000)] == [0.0, 0.5, 1.0, 1.0]
    assert recipe.band_thickness(0) == 1.0 and recipe.band_thickness(200) == pytest.approx(0.005)
    assert recipe.term_weight("depth_prior", 100) == pytest.approx(0.5e4)


# ------------------------------------------------------------------------------------------ expression edits
def jaw_opened(G, z: torch.Tensor, amount: float) -> torch.Tensor:
    parts = dict(G.layout.split(z))
    expression = parts["expression"].clone()
    expression[:, 0] += amount
    parts["expression"] = expression
    return G.layout.join(parts)


def test_changing_the_expression_code_moves_only_the_mouth(G_standard):
    G = G_standard
    z = G.z_from_seeds([5])
    z_open = jaw_opened(G, z, 3.0)
    before, after = G.layout.split(z), G.layout.split(z_open)
    changed = {n: not torch.equal(before[n], after[n]) for n in before}
    assert changed == {"identity": False, "expression": True, "background_geometry": False, "texture": False,
                       "lighting": False, "background_texture": False}
    code, code_open = (G.split_latent(G.mapping(v))[1] for v in (z, z_open))
    assert torch.equal((code != code_open).nonzero()[:, 1].unique(), torch.tensor([80]))  # expression 0 alone
    a, b = (G.conditioning(c, frontal(G), 64) for c in (code, code_open))
    moved = (a.mesh_depth - b.mesh_depth).abs() > 1e-6
    nose_row = float(a.landmarks_2d[0, 30, 1])
    assert moved.any() and not moved[0, : int(nose_row)].any()  # nothing above the nose tip changes
    lm_shift = (a.landmarks_2d - b.landmarks_2d).norm(dim=-1)[0]
    assert lm_shift[17:48].max() == 0 and lm_shift[48:68].max() > 3
    gap = [float((c.landmarks_3d[0, 62] - c.landmarks_3d[0, 66]).norm()) for c in (a, b)]
    assert gap[1] > 3 * gap[0]  # the inner lips part: the mouth opens


def test_with_fitted_statistics_the_expression_code_still_acts_on_the_mouth(G):
    z = G.z_from_seeds([5])
    a, b = (G.conditioning(G.split_latent(G.mapping(v))[1], frontal(G), 64) for v in (z, jaw_opened(G, z, 3.0)))
    shift = (a.landmarks_2d - b.landmarks_2d).norm(dim=-1)[0]
    assert shift[48:68].max() > 20 * shift[17:48].max()


# ------------------------------------------------------------------------------------------ training
TERMS = ("G/adv", "G/pose", "G/recon", "G/lm3d", "G/lm3d_2d", "G/lm3d_3d", "G/warp3d", "G/depth_prior", "G/bg_prior",
         "G/normal", "G/geo", "G/near_mesh_ratio", "G/band_thickness", "D/adv", "D/r1", "D/pose")


def test_a_training_step_logs_every_named_term(tmp_path):
    family = get_family("cgof")
    regressor = FaceCoefficientRegressor(RegressorConfig(image_size=16, channels=(8, 16), hidden=32), seed=1)
    save_regressor(regressor, tmp_path / "regressor")
    opts = TrainOptions(preset="cgof-tiny", out=str(tmp_path / "run"), steps=1, log_every=1, sample_every=0,
                        checkpoint_every=100, progress=False, tensorboard=False,
                        override=(*family.tiny.train_overrides, f"loss.regressor={tmp_path / 'regressor'}"))
    Trainer(opts).train()
    stats = read_stats(tmp_path / "run")[-1]
    missing = [k for k in TERMS if k not in stats or not math.isfinite(stats[k])]
    assert not missing, missing
    assert stats["G/lm3d"] == pytest.approx(stats["G/lm3d_2d"] + stats["G/lm3d_3d"], rel=1e-5)


def test_without_a_regressor_the_regressor_terms_are_off_and_said_so(G, capsys):
    from aware3d.nn.progressive_discriminator import ProgressiveDiscriminator, ProgressiveDiscriminatorConfig

    D = ProgressiveDiscriminator(ProgressiveDiscriminatorConfig(max_resolution=16, channel_base=64, channel_max=16,
                                                                latent_dim=0))
    recipe = CGOFLoss(G, D, CGOFLossConfig())
    assert recipe.regressor is None and "recon and lm3d terms are OFF" in capsys.readouterr().out
    with pytest.raises(ValueError, match="loss.regressor is unset"):
        CGOFLoss(G, D, CGOFLossConfig(missing_regressor="error"))
    CGOFLoss(G, D, CGOFLossConfig(missing_regressor="error", weights=CGOFLossWeights(recon=0, lm3d=0)))  # nothing needs it
    whitened = whitened_coefficients(torch.zeros(2, FACE_CODE_DIM))
    assert whitened.pose.shape == (2, 6)


def test_the_silhouette_channel_reaches_cgofs_discriminator(G):
    """With loss.silhouette, D takes colour + the generated opacity (real: the masks) in both players' phases."""
    from aware3d.errors import ConfigError
    from aware3d.nn.progressive_discriminator import ProgressiveDiscriminator, ProgressiveDiscriminatorConfig

    def disc(channels: int):
        return ProgressiveDiscriminator(ProgressiveDiscriminatorConfig(max_resolution=16, channel_base=64,
                                                                       channel_max=16, latent_dim=0,
                                                                       in_channels=channels))
    off = CGOFLossConfig(weights=CGOFLossWeights(recon=0, lm3d=0))
    with pytest.raises(ConfigError, match="discriminator.in_channels=4"):
        CGOFLoss(G, disc(3), replace(off, silhouette=True))
    recipe = CGOFLoss(G, disc(4), replace(off, silhouette=True))
    z = G.z_from_seeds([1, 2])
    seen = recipe._seen_by_d(G(z, frontal(G, 2), resolution=8, render=G.eval_render_config(4)))
    assert seen.shape == (2, 4, 8, 8)
    out = G(z, frontal(G, 2), resolution=8, render=G.eval_render_config(4))
    assert torch.allclose(seen[:, 3:], out.opacity * 2 - 1) and torch.equal(seen[:, :3], out.image)
