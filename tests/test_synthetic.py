"""Synthetic datasets: determinism, value ranges, exact geometry, camera labels, lighting and expression."""

import math
from dataclasses import fields

import pytest
import torch

from aware3d.cameras import Cameras, from_eg3d_label, generate_rays, pigan_to_epigraf
from aware3d.data.synthetic import (
    HEAD_EXPRESSION_NAMES, HEAD_IDENTITY_NAMES, HEAD_PRIMITIVE_NAMES, OBJECT_IDENTITY_NAMES, SYNTHETIC_DATASETS,
    SyntheticConfig, SyntheticDataset, SyntheticSample, head_scene, make_synthetic, object_scene, render_head,
    render_object,
)

RES = 32
FRONTAL = math.pi / 2


@pytest.fixture(scope="module")
def heads() -> SyntheticDataset:
    return make_synthetic("synthetic-heads", resolution=RES, length=1000)


@pytest.fixture(scope="module")
def objects() -> SyntheticDataset:
    return make_synthetic("synthetic-objects", resolution=RES, length=1000)


@pytest.fixture(scope="module")
def head_batch(heads) -> SyntheticSample:
    return heads.get_batch(range(8))


@pytest.fixture(scope="module")
def object_batch(objects) -> SyntheticSample:
    return objects.get_batch(range(8))


def _assert_same(a: SyntheticSample, b: SyntheticSample) -> None:
    for f in fields(SyntheticSample):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert x.dtype == y.dtype and torch.equal(x, y), f.name


# ------------------------------------------------------------------------------------- determinism

@pytest.mark.parametrize("name", ["synthetic-heads", "synthetic-objects"])
def test_items_are_deterministic_whatever_the_access_order(name):
    ds = make_synthetic(name, resolution=RES)
    first = ds[3]
    _assert_same(first, ds[3])
    _assert_same(first, ds.get_batch([11, 3, 5])[1])
    _assert_same(first, SyntheticDataset(name, resolution=RES)[3])
    other_seed = make_synthetic(name, resolution=RES, seed=1)[3]
    assert not torch.equal(first.image, other_seed.image)
    assert not torch.equal(first.identity, other_seed.identity)
    assert not torch.equal(first.image, ds[4].image)


def test_dataset_api(heads):
    assert len(heads) == 1000 and heads.resolution == RES
    assert heads.fov_deg == 12.0 and heads.pose_distribution.yaw_std == 0.3
    assert heads.pose_distribution.pitch_std == 0.155 and heads.pose_distribution.radius == 1.0
    objs = SyntheticDataset("synthetic-objects", resolution=16, length=5, seed=2)
    assert objs.fov_deg == 30.0 and objs.config.background == "white" and len(objs) == 5
    assert objs.pose_distribution.dist == "spherical_uniform"
    assert set(SYNTHETIC_DATASETS) == {"synthetic-heads", "synthetic-objects", "synthetic-faces"}
    assert SyntheticConfig(kind="objects").fov_deg == 30.0
    with pytest.raises(KeyError, match="synthetic-heads.*synthetic-objects"):
        make_synthetic("synthetic-cats")
    with pytest.raises(IndexError):
        objs[5]
    assert torch.equal(objs[-1].image, objs[4].image)
    batch = SyntheticSample.collate([objs[0], objs[1]])
    _assert_same(batch, objs.get_batch([0, 1]))


# ------------------------------------------------------------------------------ shapes and ranges

@pytest.mark.parametrize("which", ["head_batch", "object_batch"])
def test_shapes_dtypes_and_ranges(which, request):
    s: SyntheticSample = request.getfixturevalue(which)
    B = 8
    heads = which == "head_batch"
    assert s.image.shape == (B, 3, RES, RES) and s.image.dtype == torch.float32
    assert s.depth.shape == s.mask.shape == (B, 1, RES, RES)
    assert s.normals.shape == (B, 3, RES, RES)
    assert s.cam2world.shape == (B, 4, 4) and s.intrinsics.shape == (B, 3, 3)
    assert s.angles.shape == (B, 2) and s.camera_angles.shape == (B, 3) and s.eg3d_label.shape == (B, 25)
    assert s.light_dir.shape == (B, 3) and s.background.shape == (B, 3)
    assert s.identity.shape == (B, len(HEAD_IDENTITY_NAMES) if heads else len(OBJECT_IDENTITY_NAMES))
    assert s.expression.shape == (B, len(HEAD_EXPRESSION_NAMES) if heads else 0)
    assert s.image.min() >= -1 and s.image.max() <= 1
    assert set(s.mask.unique().tolist()) <= {0.0, 1.0}
    fg = s.mask[:, 0] > 0
    assert 0.05 < fg.float().mean() < 0.9
    n_len = s.normals.norm(dim=1)
    assert torch.allclose(n_len[fg], torch.ones_like(n_len[fg]), atol=1e-5)
    assert (s.normals.permute(0, 2, 3, 1)[~fg] == 0).all()
    depth = s.depth[:, 0]
    assert (depth[~fg] == 0).all()
    # Everything lies near the origin, the cameras at radius 1.
    reach = 0.15 if heads else 0.35
    assert depth[fg].min() > 1 - reach and depth[fg].max() < 1 + reach
    assert torch.allclose(s.light_dir.norm(dim=-1), torch.ones(B), atol=1e-6)


# ------------------------------------------------------------------------------- exact geometry

def _front_surface_z_at_axis(scene, b: int) -> tuple[float, str]:
    """Largest z where the line x = y = 0 meets a solid of scene b (independent of the ray caster)."""
    best, name_best = -math.inf, None
    names = iter(scene.names)
    for g in scene.groups:
        for j in range(len(g)):
            name = next(names)
            c, a = g.center[b, j].double(), g.inv_radii[b, j].double()
            if not g.active[b, j]:
                continue
            q = 1 - (c[0] * a[0]) ** 2 - (c[1] * a[1]) ** 2
            if q < 0 or a[2] == 0:
                continue
            z = float(c[2] + math.sqrt(q) / a[2])
            if g.plane is not None:
                n, w = g.plane[b, j, :3].double(), float(g.plane[b, j, 3])
                if float(n[2] * z) < w:  # the front point of the quadric is clipped away
                    continue
            if z > best:
                best, name_best = z, name
    return best, name_best


def test_centre_depth_is_the_analytic_nose_distance(heads):
    res = 33  # odd: the centre pixel's ray is exactly the optical axis (0, 0, -1) for a frontal camera
    cams = Cameras.from_angles(FRONTAL, FRONTAL, heads.fov_deg, 1.0)
    for i in range(4):
        p = heads.sample_params(i)
        out = render_head(p["identity"], p["expression"], cams, p["light_dir"], res, background=p["background"])
        scene = head_scene(p["identity"][None], p["expression"][None])
        z, name = _front_surface_z_at_axis(scene, 0)
        assert name == "nose"
        # Same value from the identity parameters alone: the nose ellipsoid's surface at x = y = 0.
        nose = scene.groups[0]
        j = HEAD_PRIMITIVE_NAMES.index("nose")
        ident = dict(zip(HEAD_IDENTITY_NAMES, p["identity"].tolist()))
        nose_z = float(nose.center[0, j, 2]) + ident["nose_rz"] * math.sqrt(
            1 - (ident["nose_y"] / ident["nose_ry"]) ** 2)
        assert nose_z == pytest.approx(z, abs=1e-6)
        assert float(out.depth[0, 0, res // 2, res // 2]) == pytest.approx(1.0 - z, abs=1e-5)
        assert float(out.mask[0, 0, res // 2, res // 2]) == 1.0
        # The corners look past the head: background.
        assert out.mask[0, 0, [0, 0, -1, -1], [0, -1, 0, -1]].sum() == 0
        assert torch.allclose(out.image[0, :, 0, 0], p["background"] * 2 - 1)


@pytest.mark.parametrize("which", ["head_batch", "object_batch"])
def test_normals_face_the_camera(which, request):
    s: SyntheticSample = request.getfixturevalue(which)
    _, rays_d = generate_rays(Cameras(s.cam2world, s.intrinsics), RES, RES)
    normals = s.normals.flatten(2).transpose(1, 2)
    fg = s.mask.flatten(1) > 0
    facing = -(normals * rays_d).sum(-1)
    assert (facing[fg] > 0).all()


def _check_multiview(scene, cams: Cameras, out) -> float:
    """Unproject camera 0's foreground into points; they must lie on the surface and be the first hit
    (or be occluded) when looked at from camera 1. Returns the co-visible fraction."""
    rays_o, rays_d = generate_rays(cams[0], out.depth.shape[-2], out.depth.shape[-1])
    fg = out.mask[0, 0].flatten() > 0
    pts = (rays_o + rays_d * out.depth[0, 0].flatten()[None, :, None])[:, fg]  # (1, M, 3)
    assert scene.implicit(pts).abs().max() < 2e-5
    o2 = cams.origins[1:2]
    to_pts = pts - o2[:, None]
    dist = to_pts.norm(dim=-1)
    dirs = to_pts / dist[..., None]
    hits = scene.intersect(o2, dirs)
    # A ray aimed at a surface point hits it or something before it. Only where it grazes the surface
    # may float rounding let it slip past (a tangent ray's hit is ill-conditioned).
    normals = out.normals[0].flatten(1).t()[fg]
    grazing = (normals * dirs[0]).sum(-1).abs() < 0.05
    ok = ~grazing
    assert hits.mask[0, ok].all()
    assert (hits.t[0, ok] <= dist[0, ok] + 1e-4).all()
    return float(((hits.t[0, ok] - dist[0, ok]).abs() < 1e-4).float().mean())


def test_depth_is_consistent_across_views_heads(heads):
    p = heads.sample_params(5)
    cams = Cameras.from_angles([FRONTAL - 0.3, FRONTAL + 0.25], [FRONTAL - 0.1, FRONTAL + 0.1], heads.fov_deg)
    ident, expr = p["identity"][None].expand(2, -1), p["expression"][None].expand(2, -1)
    out = render_head(ident, expr, cams, p["light_dir"], 48)
    assert _check_multiview(head_scene(ident[:1], expr[:1]), cams, out) > 0.6


def test_depth_is_consistent_across_views_objects(objects):
    p = objects.sample_params(2)
    cams = Cameras.from_angles([0.4, 1.3], [1.0, 0.8], objects.fov_deg)
    ident = p["identity"][None].expand(2, -1)
    out = render_object(ident, cams, p["light_dir"], 48)
    assert _check_multiview(object_scene(ident[:1]), cams, out) > 0.4


def test_culling_is_exact(heads, objects):
    """Tile culling never changes a hit: tiny tiles (tight cones) equal one tile spanning the image."""
    for ds, scene_fn in ((heads, lambda p: head_scene(p["identity"][None], p["expression"][None])),
                         (objects, lambda p: object_scene(p["identity"][None]))):
        p = ds.sample_params(7)
        cams = Cameras.from_angles(p["yaw"], p["pitch"], ds.fov_deg)
        rays_o, rays_d = generate_rays(cams, 24, 24)
        scene = scene_fn(p)
        tight, loose = scene.intersect(rays_o, rays_d, tile=16), scene.intersect(rays_o, rays_d, tile=24 * 24)
        assert torch.equal(tight.prim, loose.prim) and torch.equal(tight.t, loose.t)
        assert torch.equal(tight.normal, loose.normal)


# ------------------------------------------------------------------------------------- cameras

@pytest.mark.parametrize("which", ["head_batch", "object_batch"])
def test_camera_labels_agree(which, request):
    s: SyntheticSample = request.getfixturevalue(which)
    fov = 12.0 if which == "head_batch" else 30.0
    ref = Cameras.from_angles(s.angles[:, 0], s.angles[:, 1], fov, 1.0)
    c2w, K = from_eg3d_label(s.eg3d_label)
    assert torch.allclose(c2w[:, :3, 3], ref.origins, atol=1e-6)
    assert torch.allclose(c2w, s.cam2world) and torch.allclose(K, s.intrinsics)
    assert torch.allclose(s.cam2world, ref.cam2world, atol=1e-6)
    assert torch.allclose(s.intrinsics, ref.intrinsics)
    assert torch.equal(s.camera_angles, pigan_to_epigraf(s.angles[:, 0], s.angles[:, 1]))


def test_pose_distributions(heads, objects):
    def angles(ds):
        return torch.stack([torch.stack([ds.sample_params(i)["yaw"], ds.sample_params(i)["pitch"]])
                            for i in range(200)])

    h = angles(heads)
    assert abs(float(h[:, 0].mean()) - FRONTAL) < 0.1 and 0.2 < float(h[:, 0].std()) < 0.4
    assert abs(float(h[:, 1].mean()) - FRONTAL) < 0.05 and 0.1 < float(h[:, 1].std()) < 0.21
    o = angles(objects)
    assert float(o[:, 0].min()) < -1.0 and float(o[:, 0].max()) > 3.5  # 360 degrees of yaw
    assert float(o[:, 1].max()) < FRONTAL  # upper hemisphere only


# -------------------------------------------------------------------------- lighting and expression

def test_light_direction_changes_shading_only(heads):
    p = heads.sample_params(1)
    cams = Cameras.from_angles(FRONTAL, FRONTAL, heads.fov_deg)
    a = render_head(p["identity"], p["expression"], cams, p["light_dir"], RES, background=p["background"])
    b = render_head(p["identity"], p["expression"], cams, -p["light_dir"], RES, background=p["background"])
    assert (a.image - b.image).abs().max() > 0.2
    assert torch.equal(a.depth, b.depth) and torch.equal(a.normals, b.normals) and torch.equal(a.mask, b.mask)


def test_expression_changes_only_the_mouth_region(heads):
    res = 64
    p = heads.sample_params(2)
    cams = Cameras.from_angles(FRONTAL, FRONTAL, heads.fov_deg)
    light = torch.tensor([0.0, 0.3, 1.0]) / math.sqrt(1.09)

    def render(mouth: float, brow: float):
        return render_head(p["identity"], torch.tensor([mouth, brow]), cams, light, res)

    closed, opened, raised = render(0.0, 0.3), render(1.0, 0.3), render(0.0, 1.0)
    rows, cols = torch.nonzero((closed.image != opened.image).any(1)[0], as_tuple=True)
    assert rows.numel() > 5
    assert rows.min() > res // 2 and (cols - res / 2 + 0.5).abs().max() < res / 4  # lower centre of the face
    assert torch.nonzero((closed.depth != opened.depth)[0, 0], as_tuple=True)[0].min() > res // 2
    rows, cols = torch.nonzero((closed.image != raised.image).any(1)[0], as_tuple=True)
    assert rows.numel() > 5 and rows.max() < res // 2  # eyebrows move in the upper half


def test_dataset_render_reproduces_items(heads, objects):
    """The parameters of an item re-render to the item exactly: identity/expression are a morphable model."""
    for ds in (heads, objects):
        s = ds[9]
        p = ds.sample_params(9)
        out = ds.render(s.identity, s.expression, Cameras(s.cam2world, s.intrinsics), s.light_dir, p["background"])
        assert torch.equal(out.image[0], s.image) and torch.equal(out.depth[0], s.depth)


# ----------------------------------------------------------------------------------------- objects

def test_objects_from_all_around(objects):
    yaws = torch.arange(8) * (2 * math.pi / 8)
    for i in range(3):
        p = objects.sample_params(i)
        for pitch in (0.35, 1.0, 1.45):
            cams = Cameras.from_angles(yaws, torch.full((8,), pitch), objects.fov_deg)
            out = render_object(p["identity"], cams, p["light_dir"], RES)
            cover = out.mask.mean((1, 2, 3))
            assert (cover > 0.05).all() and (cover < 0.9).all(), (i, pitch, cover)
            # Background is pure white away from silhouettes (antialiasing only blends edge pixels).
            bg = torch.nn.functional.max_pool2d(out.mask, 3, 1, 1) == 0
            assert (out.image.permute(1, 0, 2, 3)[:, bg[:, 0]] == 1).all()
    s = objects.get_batch(range(4))
    assert (s.background == 1).all() and (s.image[:, :, 0, 0] == 1).all()
