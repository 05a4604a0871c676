"""The pure-PyTorch mesh rasteriser (aware3d.rendering.rasterize): analytic triangles and cube, agreement with
ray casting (an inscribed sphere mesh; a marching-cubes mesh of a synthetic head), projection, visibility,
gradients, and bit-identity across tiling and batching."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aware3d.cameras import Cameras, generate_rays, intrinsics_from_fov, look_at
from aware3d.rendering.rasterize import Fragments, interpolate, project_points, rasterize, visible_points

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64


def icosphere(level: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit icosphere (float64 vertices on the sphere, int64 faces wound outward), 20 * 4**level faces."""
    t = (1 + 5 ** 0.5) / 2
    v = torch.tensor([(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t),
                      (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)], dtype=F64)
    f = torch.tensor([(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4),
                      (11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9),
                      (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)])
    v = v / v.norm(dim=1, keepdim=True)
    for _ in range(level):
        edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]).sort(1).values
        unique, inverse = torch.unique(edges, dim=0, return_inverse=True)
        mid = v[unique[:, 0]] + v[unique[:, 1]]
        m = inverse.reshape(3, -1).T + v.shape[0]
        v = torch.cat([v, mid / mid.norm(dim=1, keepdim=True)])
        a, b, c, ab, bc, ca = f[:, 0], f[:, 1], f[:, 2], m[:, 0], m[:, 1], m[:, 2]
        f = torch.cat([torch.stack(x, 1) for x in ((a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca))])
    return v, f


def cube(half: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Axis-aligned cube [-half, half]^3: 8 corners (float64), 12 triangles wound outward."""
    corners = torch.tensor([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=F64) * half
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = [tri for a, b, c, d in quads for tri in ((a, b, c), (a, c, d))]
    return corners, torch.tensor(faces)


def cameras_at(origins, fov_deg: float = 30.0) -> Cameras:
    """float64 look-at-origin cameras at the given positions."""
    origins = torch.as_tensor(origins, dtype=F64).reshape(-1, 3)
    return Cameras(look_at(origins), intrinsics_from_fov(fov_deg, batch=len(origins), dtype=F64))


def solve_ray_triangle(o, d, tri):
    """Independent reference: barycentrics b and t with sum b V = o + t d, sum b = 1 (numpy linear solve)."""
    A = np.zeros((4, 4))
    A[:3, :3] = np.asarray(tri).T
    A[:3, 3] = -np.asarray(d)
    A[3, :3] = 1.0
    x = np.linalg.solve(A, np.concatenate([np.asarray(o), [1.0]]))
    return x[:3], x[3]


# ----------------------------------------------------------------------------------------- analytic

def test_fronto_parallel_triangle_matches_hand_computation():
    # Camera at the origin looking down +z (identity OpenCV pose), f = 1, 4x4 pixels: pixel (i, j)'s ray
    # is ((j - 1.5) / 4, (i - 1.5) / 4, 1). The triangle X >= -1, Y >= -1, X + Y <= 0.1 at z = 2 is hit at
    # 2 * ray, so it covers exactly the pixels with i + j <= 3.
    cams = Cameras(torch.eye(4, dtype=F64), torch.tensor([[1.0, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1]], dtype=F64))
    verts = torch.tensor([[[-1.0, -1.0, 2.0], [1.1, -1.0, 2.0], [-1.0, 1.1, 2.0]]], dtype=F64)
    fr = rasterize(verts, torch.tensor([[0, 1, 2]]), cams, 4)
    i, j = torch.meshgrid(torch.arange(4.0, dtype=F64), torch.arange(4.0, dtype=F64), indexing="ij")
    xn, yn = (j - 1.5) / 4, (i - 1.5) / 4
    covered = (i + j) <= 3
    assert torch.equal(fr.mask[0], covered)
    assert torch.equal(fr.triangle_index[0], torch.where(covered, 0, -1))
    X, Y = 2 * xn, 2 * yn
    b1, b2 = (X + 1) / 2.1, (Y + 1) / 2.1
    expected = torch.stack([1 - b1 - b2, b1, b2], -1) * covered[..., None]
    torch.testing.assert_close(fr.barycentric[0], expected, rtol=0, atol=1e-14)
    depth = 2 * torch.sqrt(xn ** 2 + yn ** 2 + 1) * covered
    torch.testing.assert_close(fr.depth[0], depth, rtol=0, atol=1e-14)


@pytest.mark.parametrize("grid", ["pixel_centers", "edge_aligned"])
@pytest.mark.parametrize("corners", [
    [[-0.6, -0.4, 1.5], [0.8, -0.2, 2.5], [0.0, 0.7, 2.0]],  # tilted: perspective-correct != affine
    [[-0.5, 0.3, -0.4], [0.6, 0.25, 2.0], [-0.3, 0.1, 3.0]],  # crosses the camera plane (z < 0 corner)
])
def test_triangle_coverage_barycentrics_depth_against_linear_solve(grid, corners):
    K = torch.tensor([[0.8, 0.05, 0.5], [0, 0.9, 0.45], [0, 0, 1]], dtype=F64)  # skewed, off-centre
    cams = Cameras(torch.eye(4, dtype=F64), K)
    H, W = 16, 20
    fr = rasterize(torch.tensor([corners], dtype=F64), torch.tensor([[0, 1, 2]]), cams, H, W, grid=grid)
    o, d = generate_rays(cams, H, W, grid=grid)
    n_cov, affine_gap = 0, 0.0
    for p in range(H * W):
        b, t = solve_ray_triangle(o[0, p].numpy(), d[0, p].numpy(), corners)
        i, j = divmod(p, W)
        assert min(abs(b).min(), abs(t)) > 1e-6  # no pixel centre on an edge: the test is unambiguous
        hit = bool((b >= 0).all() and t > 0)
        assert bool(fr.mask[0, i, j]) == hit, (i, j)
        if hit:
            n_cov += 1
            np.testing.assert_allclose(fr.barycentric[0, i, j].numpy(), b, atol=1e-12)
            np.testing.assert_allclose(float(fr.depth[0, i, j]), t, atol=1e-12)
            xy, _ = project_points(torch.tensor([[corners]], dtype=F64)[0], cams, H, W, grid)
            affine_gap = max(affine_gap, _affine_gap(xy[0].numpy(), np.array([j, i], float), b))
        else:
            assert float(fr.depth[0, i, j]) == 0 and fr.barycentric[0, i, j].abs().sum() == 0
    assert n_cov >= 20
    if min(c[2] for c in corners) > 0:
        assert affine_gap > 1e-2  # screen-space (affine) weights would fail the check above


def _affine_gap(xy: np.ndarray, q: np.ndarray, b: np.ndarray) -> float:
    """Largest difference between the perspective-correct weights b and screen-space ones at pixel q."""
    A = np.vstack([xy.T, np.ones(3)])
    return float(abs(np.linalg.solve(A, np.append(q, 1.0)) - b).max())


def test_cube_silhouette_and_centre_depth():
    half, H = 0.1, 65  # odd size: the centre pixel's ray is the optical axis, through the origin
    c_dir = np.array([math.cos(0.35) * math.cos(1.1), math.sin(0.35), math.cos(0.35) * math.sin(1.1)])
    cams = cameras_at(c_dir * 0.9, fov_deg=30.0)
    verts, faces = cube(half)
    fr = rasterize(verts[None], faces, cams, H)
    # Analytic silhouette: convex hull of the 8 projected corners (hand projection x = f X / Z).
    from scipy.spatial import ConvexHull
    c2w = cams.cam2world[0].numpy()
    cam = (verts.numpy() - c2w[:3, 3]) @ c2w[:3, :3]
    f = cams.intrinsics[0, 0, 0].item()
    px = (f * cam[:, :2] / cam[:, 2:] + 0.5) * H - 0.5
    hull = ConvexHull(px)
    j, i = np.meshgrid(np.arange(H), np.arange(H))
    signed = (hull.equations[:, :2] @ np.stack([j.ravel(), i.ravel()]) + hull.equations[:, 2:]).max(0)
    clear = np.abs(signed) > 1e-6
    mask = fr.mask[0].numpy().ravel()
    assert np.array_equal(mask[clear], (signed < 0)[clear])
    perimeter = hull.area  # (2-D hull: .area is the perimeter, .volume the area)
    assert abs(mask.sum() - hull.volume) < 0.25 * perimeter
    # Centre ray from c toward the origin exits the cube's nearest face plane at 0.9 - half / max|c_k|.
    assert abs(float(fr.depth[0, H // 2, H // 2]) - (0.9 - half / np.abs(c_dir).max())) < 1e-12
    # Both sides are rendered, nearest wins: reversing every winding changes nothing but the corner order.
    flipped = rasterize(verts[None], faces.flip(1), cams, H)
    assert torch.equal(flipped.triangle_index, fr.triangle_index) and torch.equal(flipped.mask, fr.mask)
    torch.testing.assert_close(flipped.depth, fr.depth, rtol=0, atol=1e-15)
    torch.testing.assert_close(flipped.barycentric.flip(-1), fr.barycentric, rtol=0, atol=1e-15)


@pytest.mark.parametrize("n", [33, 65])
def test_shared_edges_are_watertight(n):
    # A bumpy float32 grid mesh across the image, thousands of shared edges: no pixel centre may fall through
    # the cracks between two triangles (edge functions taken in each triangle's own vertex order, instead of
    # the edge's canonical order, leave 10 and 52 holes here).
    g = torch.linspace(-0.45, 0.45, n)
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    z = 1.7 + 0.3 * torch.rand(n, n, generator=torch.Generator().manual_seed(0))
    verts = torch.stack([xx * z, yy * z, z], -1).reshape(1, -1, 3)
    idx = torch.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = torch.cat([torch.stack([a, b, d], -1).reshape(-1, 3), torch.stack([a, d, c], -1).reshape(-1, 3)])
    cams = Cameras(torch.eye(4), torch.tensor([[1.0, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1]]))
    fr = rasterize(verts, faces, cams, 64)
    inside = ((torch.arange(64) + 0.5) / 64 - 0.5).abs() < 0.449
    assert fr.mask[0][inside[:, None] & inside[None]].all()


# -------------------------------------------------------------------------------- ray-cast agreement

def test_inscribed_sphere_mesh_between_analytic_spheres():
    R = 0.1
    v, f = icosphere(3)
    verts = v * R
    tri = verts[f]
    normal = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    r_in = float(((tri[:, 0] * normal).sum(-1).abs() / normal.norm(dim=-1)).min())  # mesh holds this ball
    cams = cameras_at([[0.0, 0.0, 0.8], [0.5, 0.4, 0.5]], fov_deg=20.0)
    fr = rasterize(verts[None], f, cams, 48)
    o, d = generate_rays(cams, 48)

    def ray_sphere(r):
        b = (o * d).sum(-1)
        disc = b * b - ((o * o).sum(-1) - r * r)
        return -b - torch.sqrt(disc.clamp_min(0)), disc > 0

    t_out, hit_out = ray_sphere(R)
    t_in, hit_in = ray_sphere(r_in)
    mask, depth = fr.mask.reshape(2, -1), fr.depth.reshape(2, -1)
    assert not (mask & ~hit_out).any() and mask[hit_in].all()
    assert (depth[hit_in] >= t_out[hit_in] - 1e-12).all() and (depth[hit_in] <= t_in[hit_in] + 1e-12).all()
    assert 0.1 < hit_in.float().mean() < 0.9


def test_marching_cubes_head_matches_synthetic_ray_caster():
    from skimage.measure import marching_cubes

    from aware3d.data.synthetic.scenes import head_scene, sample_head_params
    identity, expression = sample_head_params(torch.Generator().manual_seed(3))
    scene = head_scene(identity[None], expression[None])
    lo, hi, step = np.array([-0.095, -0.14, -0.12]), np.array([0.095, 0.125, 0.11]), 0.0025
    axes = [np.arange(a, b + step / 2, step) for a, b in zip(lo, hi)]
    grid = torch.tensor(np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3), dtype=torch.float32)
    sdf = torch.cat([scene.implicit(chunk[None])[0] for chunk in grid.split(1 << 16)])
    v, faces, _, _ = marching_cubes(sdf.reshape([len(a) for a in axes]).numpy(), 0.0, spacing=(step,) * 3)
    verts = torch.tensor(v + lo, dtype=torch.float32)[None]
    cams = Cameras.from_angles([math.pi / 2, math.pi / 2 + 0.4], [math.pi / 2, math.pi / 2 - 0.2], 12.0)
    fr = rasterize(verts.expand(2, -1, -1), torch.tensor(faces.astype(np.int64)), cams, 64)
    rays_o, rays_d = generate_rays(cams, 64)
    hits = head_scene(identity[None].expand(2, -1), expression[None].expand(2, -1)).intersect(rays_o, rays_d)
    mask_rc, mask = hits.mask, fr.mask.reshape(2, -1)
    assert (mask_rc != mask).float().mean() < 0.005  # silhouettes differ by under a voxel
    both = mask_rc & mask
    err = (fr.depth.reshape(2, -1) - hits.t)[both].abs()  # measured: median 0.013, 90% 0.08 voxels
    assert err.median() < 0.05 * step and torch.quantile(err, 0.9) < 0.25 * step


# ---------------------------------------------------------------------------- projection, visibility

@pytest.mark.parametrize("grid", ["pixel_centers", "edge_aligned"])
def test_project_points_inverts_generate_rays(grid):
    cams = cameras_at([[0.2, -0.1, 1.0], [-0.7, 0.3, 0.4]], fov_deg=25.0)
    cams.intrinsics[1, 0, 1] = 0.03  # skew
    H, W = 7, 9
    o, d = generate_rays(cams, H, W, grid=grid)
    t = torch.linspace(0.5, 2.0, H * W, dtype=F64)
    xy, dist = project_points(o + t[None, :, None] * d, cams, H, W, grid)
    i, j = torch.meshgrid(torch.arange(H, dtype=F64), torch.arange(W, dtype=F64), indexing="ij")
    expected = torch.stack([j.reshape(-1), i.reshape(-1)], -1).expand(2, -1, -1)
    torch.testing.assert_close(xy, expected, rtol=0, atol=1e-9)
    torch.testing.assert_close(dist, t.expand(2, -1), rtol=0, atol=1e-12)


def test_project_points_agrees_with_rasterised_positions():
    v, f = icosphere(2)
    verts = (v * 0.1)[None]
    cams = cameras_at([[0.3, 0.2, 0.9]], fov_deg=20.0)
    H = 40
    fr = rasterize(verts, f, cams, H)
    world = interpolate(fr, verts, f)  # the rasterised surface point of every pixel
    xy, dist = project_points(world.reshape(1, -1, 3), cams, H)
    i, j = torch.meshgrid(torch.arange(H, dtype=F64), torch.arange(H, dtype=F64), indexing="ij")
    m = fr.mask.reshape(-1)
    torch.testing.assert_close(xy[0, m], torch.stack([j.reshape(-1), i.reshape(-1)], -1)[m], rtol=0, atol=1e-9)
    torch.testing.assert_close(dist[0, m], fr.depth.reshape(-1)[m], rtol=0, atol=1e-12)
    # A vertex projects next to the pixel centre whose rasterised surface point is the vertex: within half a
    # pixel diagonal of footprint, stretched by the surface's slope (1 / cos of the viewing angle).
    vxy, vdist = project_points(verts, cams, H)
    view = cams.origins - verts[0]
    cos = (v * view / view.norm(dim=-1, keepdim=True)).sum(-1)
    facing = cos > 0.5
    col, row = vxy[0, facing].round().long().unbind(-1)
    footprint = 2 * math.tan(math.radians(10)) * vdist[0, facing] / H
    gap = (world[0, row, col] - verts[0, facing]).norm(dim=-1)
    assert facing.sum() > 25 and (gap <= 1.1 * 0.5 * math.sqrt(2) * footprint / cos[facing]).all()


def test_visible_points_front_and_back_of_a_sphere():
    v, f = icosphere(3)
    R = 0.1
    verts = (v * R)[None]
    cams = cameras_at([[0.0, 0.3, 0.85]], fov_deg=20.0)
    H = 64
    fr = rasterize(verts, f, cams, H)
    view = cams.origins - verts[0]
    cos = (v * view / view.norm(dim=-1, keepdim=True)).sum(-1)  # > 0: faces the camera
    vis = visible_points(verts, fr, cams, H, tolerance=1e-2)[0]
    clear = cos.abs() > 0.3
    assert torch.equal(vis[clear], (cos > 0)[clear])
    outside = torch.tensor([[[0.0, 0.0, -5.0], [3.0, 0.0, 0.0], [0.0, 0.3, 2.0]]], dtype=F64)  # behind, off
    assert not visible_points(outside, fr, cams, H).any()
    with pytest.raises(ValueError, match="32x32"):
        visible_points(verts, fr, cams, 32)


# -------------------------------------------------------------------------------------- gradients

def test_gradients_match_finite_differences_inside_triangles():
    gen = torch.Generator().manual_seed(0)
    cams = cameras_at([[0.1, 0.0, 1.0]], fov_deg=40.0)
    verts = torch.tensor([[[-0.3, -0.25, 0.05], [0.3, -0.2, -0.1], [0.05, 0.3, 0.0], [0.35, 0.3, 0.15]]], dtype=F64)
    faces = torch.tensor([[0, 1, 2], [1, 3, 2]])
    attrs = torch.rand(1, 4, 3, generator=gen, dtype=F64)
    H = 8
    fr = rasterize(verts, faces, cams, H)
    bary = fr.barycentric[fr.mask]
    assert fr.mask.sum() > 20 and bary.min() > 1e-3  # every covered centre is well inside: no flips at eps

    def render(vertices, attributes):
        frag = rasterize(vertices, faces, cams, H)
        return interpolate(frag, attributes, faces), frag.depth

    inputs = (verts.clone().requires_grad_(), attrs.clone().requires_grad_())
    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-6)
    out, _ = render(*inputs)
    g_v, = torch.autograd.grad(out.sum(), inputs[0])
    assert g_v.abs().max() > 1e-2  # the vertex gradient is real, not zero


# ---------------------------------------------------------------------------- tiling and batching

def _scene_mesh(dtype=torch.float32):
    """A sphere in front of a cube, overlapping on screen: occlusion, many small and a few big triangles."""
    v, f = icosphere(3)
    c, cf = cube(0.08)
    verts = torch.cat([v * 0.06 + torch.tensor([0.02, 0.01, 0.1], dtype=F64), c])
    return verts.to(dtype), torch.cat([f, cf + v.shape[0]])


def _assert_same(a: Fragments, b: Fragments) -> None:
    for name in ("triangle_index", "barycentric", "depth", "mask"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_tiling_and_chunking_are_bit_identical_to_one_pass():
    verts, faces = _scene_mesh()
    cams = Cameras.from_angles([math.pi / 2 + 0.3, math.pi / 2 - 0.5], [math.pi / 2, math.pi / 2 + 0.2], 20.0)
    whole = rasterize(verts[None], faces, cams, 48, 56, tile_size=64, max_pairs=1 << 24)
    assert whole.mask.float().mean() > 0.2 and whole.triangle_index.max() >= 1280  # cube is visible too
    for tile, pairs in ((4, 16), (7, 300), (16, 256)):
        _assert_same(rasterize(verts[None], faces, cams, 48, 56, tile_size=tile, max_pairs=pairs), whole)


def test_batch_of_cameras_equals_per_camera_renders():
    verts, faces = _scene_mesh()
    gen = torch.Generator().manual_seed(1)
    meshes = verts[None] * (1 + 0.2 * torch.rand(3, 1, 3, generator=gen))
    cams = Cameras.from_angles([1.2, 1.6, 2.0], [1.5, 1.3, 1.7], 25.0)
    cams.intrinsics[2] = intrinsics_from_fov(35.0)[0]
    batch = rasterize(meshes, faces, cams, 40)
    shared = rasterize(verts[None], faces, cams, 40)
    for b in range(3):
        one = rasterize(meshes[b:b + 1], faces, cams[b], 40)
        _assert_same(Fragments(*(getattr(batch, n)[b:b + 1] for n in
                                 ("triangle_index", "barycentric", "depth", "mask"))), one)
        alone = rasterize(verts[None], faces, cams[b], 40)
        assert torch.equal(shared.depth[b:b + 1], alone.depth)


def test_interpolate_and_errors():
    verts, faces = _scene_mesh()
    cams = Cameras.from_angles(math.pi / 2, math.pi / 2, 30.0)
    fr = rasterize(verts[None], faces, cams, 24)
    ones = interpolate(fr, torch.ones(verts.shape[0], 2), faces)  # (V, C) shared by the batch
    assert ones.shape == (1, 24, 24, 2)
    torch.testing.assert_close(ones[..., 0], fr.mask.float(), rtol=0, atol=1e-5)  # weights sum to 1
    with pytest.raises(ValueError, match="triangle indices"):
        rasterize(verts[None], faces + 10_000, cams, 8)
    with pytest.raises(ValueError, match="batch mismatch"):
        rasterize(verts[None].expand(2, -1, -1), faces, Cameras.cat([cams] * 3), 8)
    with pytest.raises(ValueError, match="max_pairs"):
        rasterize(verts[None], faces, cams, 8, tile_size=32, max_pairs=100)
