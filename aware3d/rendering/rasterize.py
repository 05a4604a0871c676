"""Triangle-mesh rasterisation in pure PyTorch (no compiled extension), for aware3d :class:`Cameras`.

Conventions (the same as :func:`aware3d.cameras.generate_rays` and the synthetic ray caster):

* Vertices are (B, V, 3) world points; triangles (F, 3) vertex indices shared by the batch.
* Pixel (row i, column j) is the ray of :func:`~aware3d.cameras.generate_rays` through that pixel for the
  chosen ``grid`` (``"pixel_centers"`` or ``"edge_aligned"``): its camera-frame direction is
  ``((u - cx - s y) / fx, y = (v - cy) / fy, 1)`` with (u, v) from :func:`~aware3d.cameras.pixel_coordinates`.
  A pixel is covered by a triangle when that ray hits the triangle in front of the camera centre: an exact
  ray-triangle test, so triangles crossing the camera plane need no clipping.
* **Pixel coordinates** (:func:`project_points`) are in pixels with the centre of pixel (i, j) at
  ``(x, y) = (j, i)`` for both grids (x right, y down); a point on the ray of pixel (i, j) projects to
  exactly (j, i). For the ``pixel_centers`` grid the image spans ``[-0.5, W - 0.5]``, and the normalised
  coordinate is ``u = (x + 0.5) / W``; for ``edge_aligned`` it is ``u = x / (W - 1)``.
* **Depth** is the distance along the unit ray from the camera centre to the hit (world units), the
  quantity of ``RayOutput.surface_depth`` and of the synthetic datasets' depth maps; **0 where no
  triangle covers the pixel** (as the synthetic ``RenderResult.depth``), so ``depth * mask`` is safe.
* **Back faces are rendered**: both sides of every triangle count and the nearest hit along the ray wins
  (ties: the lower triangle index), whatever the winding.
* **Barycentrics are perspective-correct**: the weights (b0, b1, b2) of the hit point ``sum b_k V_k`` on
  the ray, computed from triple products ``d . (V_k+1 x V_k+2)`` of the camera-frame vertices; 0 outside.

Algorithm. Each triangle's screen bounding box (all of the screen for a triangle crossing the camera plane)
is cut along a grid of ``tile_size`` x ``tile_size`` screen tiles into pieces; pieces are binned by their
pixel count rounded up to a power of two and evaluated in chunks of at most ``max_pairs`` (pixel, piece)
pairs against a running z-buffer that keeps the lexicographically smallest (depth, triangle index) per
pixel. The minimum is exact and order-free, so the result is bit-identical whatever ``tile_size`` and
``max_pairs`` (the tiling only bounds memory), and every pixel is bit-identical whatever the batch around
it (per-pixel arithmetic is elementwise). Shared edges are watertight: an edge's function is computed
from its two vertices in index order, so the two triangles sharing it evaluate exactly opposite values.

Memory bound: about ``max_pairs * 120`` bytes of temporaries per chunk (about 30 MB at the default
``max_pairs = 2**18``), plus O(B * H * W) for the z-buffer and outputs and O(B * F * pieces) for the
pieces, where a triangle has ``ceil(w / tile) * ceil(h / tile)`` pieces for a w x h pixel bounding box.

Gradients. The visibility decision (which triangle wins each pixel) is made without autograd; the
barycentrics and depth of the winners are then recomputed from the vertices with autograd, so
:class:`Fragments` and :func:`interpolate` are differentiable w.r.t. vertex positions (through the
barycentrics, inside triangles) and attributes; silhouettes and occlusions get no gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..cameras.rays import Cameras, PixelGrid, pixel_coordinates

__all__ = ["DEFAULT_MAX_PAIRS", "DEFAULT_TILE_SIZE", "Fragments", "interpolate", "project_points", "rasterize",
           "visible_points"]

DEFAULT_TILE_SIZE = 16
"""Side of the screen tiles (pixels) that big triangles' bounding boxes are cut into."""
DEFAULT_MAX_PAIRS = 1 << 18
"""(pixel, triangle piece) pairs evaluated at once; bounds the temporaries (about 120 bytes a pair)."""
_BBOX_MARGIN = 0.05
"""Pixels added around each projected bounding box, far above float error, so that the (conservative)
box never drops a pixel the exact ray-triangle test would cover."""


@dataclass
class Fragments:
    """What covers each pixel of B rendered images (see the module docstring for conventions)."""

    triangle_index: Tensor
    """(B, H, W) int64 index into ``triangles`` of the nearest triangle, -1 where none."""
    barycentric: Tensor
    """(B, H, W, 3) perspective-correct barycentric weights of the hit, summing to 1; 0 where uncovered."""
    depth: Tensor
    """(B, H, W) distance along the unit ray from the camera centre, world units; 0 where uncovered."""
    mask: Tensor
    """(B, H, W) bool, True where a triangle covers the pixel."""
    grid: PixelGrid = "pixel_centers"
    """The pixel grid the fragments were rasterised with (see :mod:`aware3d.cameras.rays`)."""


# ----------------------------------------------------------------------------------------- cameras

def _camera_frame(points: Tensor, cam2world: Tensor) -> Tensor:
    """World points (B, N, 3) -> camera frame ``R^T (p - o)`` (OpenCV: x right, y down, z forward).

    Written elementwise (no matmul) so that each point's result is bit-identical whatever the batch."""
    R = cam2world[:, None, :3, :3]
    q = points - cam2world[:, None, :3, 3]
    return torch.stack([q[..., 0] * R[..., 0, k] + q[..., 1] * R[..., 1, k] + q[..., 2] * R[..., 2, k]
                        for k in range(3)], -1)


def _pixel_scale(height: int, width: int, grid: PixelGrid) -> tuple[float, float, float, float]:
    """(sx, ox, sy, oy) with pixel coordinates ``x = u * sx - ox``, ``y = v * sy - oy`` (centres at integers)."""
    if grid == "pixel_centers":
        return float(width), 0.5, float(height), 0.5
    if grid == "edge_aligned":
        return float(max(width - 1, 1)), 0.0, float(max(height - 1, 1)), 0.0
    raise ValueError(f"unknown pixel grid {grid!r}; valid: pixel_centers, edge_aligned")


def _camera_to_pixels(points_cam: Tensor, intrinsics: Tensor, height: int, width: int, grid: PixelGrid) -> Tensor:
    """Camera-frame points (B, N, 3) -> pixel coordinates (B, N, 2) (centre of pixel (i, j) at (j, i))."""
    K = intrinsics[:, None]
    x = points_cam[..., 0] / points_cam[..., 2]
    y = points_cam[..., 1] / points_cam[..., 2]
    u = K[..., 0, 0] * x + K[..., 0, 1] * y + K[..., 0, 2]
    v = K[..., 1, 1] * y + K[..., 1, 2]
    sx, ox, sy, oy = _pixel_scale(height, width, grid)
    return torch.stack([u * sx - ox, v * sy - oy], -1)


def _pixel_rays(intrinsics: Tensor, height: int, width: int, grid: PixelGrid) -> tuple[Tensor, Tensor]:
    """Camera-plane coordinates (x, y), each (B * H * W,) row-major, of every pixel's ray ``(x, y, 1)``.

    The ``pixel_centers`` formula of :func:`~aware3d.cameras.camera_directions`, before normalisation."""
    _pixel_scale(height, width, grid)  # validates the grid name
    uv = pixel_coordinates(height, width, grid, device=intrinsics.device, dtype=intrinsics.dtype)
    K = intrinsics[:, None]
    y = (uv[None, :, 1] - K[..., 1, 2]) / K[..., 1, 1]
    x = (uv[None, :, 0] - K[..., 0, 2] - K[..., 0, 1] * y) / K[..., 0, 0]
    return x.reshape(-1), y.reshape(-1)


def project_points(points: Tensor, cameras: Cameras, height: int, width: int | None = None,
                   grid: PixelGrid = "pixel_centers") -> tuple[Tensor, Tensor]:
    """Project world points into the pixel grid of :func:`~aware3d.cameras.generate_rays`.

    Args:
        points: (B, N, 3) world points (or (N, 3), shared by the batch).
        cameras: B cameras (or 1, shared by the points' batch).
        height, width: image size in pixels (width defaults to height).
        grid: pixel grid (see :mod:`aware3d.cameras.rays`).
    Returns:
        xy: (B, N, 2) pixel coordinates, centre of pixel (row i, column j) at (j, i); meaningless for points
        at or behind the camera plane (camera z <= 0). distance: (B, N) distance from the camera centre,
        world units (the depth-map convention: a point on a rendered surface has its pixel's depth).
        Differentiable w.r.t. points and cameras.
    """
    width = height if width is None else width
    points, cameras = _broadcast_batch(points, cameras, "points")
    cam = _camera_frame(points, cameras.cam2world)
    distance = torch.linalg.norm(points - cameras.cam2world[:, None, :3, 3], dim=-1)
    return _camera_to_pixels(cam, cameras.intrinsics, height, width, grid), distance


def _broadcast_batch(points: Tensor, cameras: Cameras, what: str) -> tuple[Tensor, Cameras]:
    """Expand (N, 3) points or a single camera so both have the same batch size B."""
    if points.ndim == 2:
        points = points[None]
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"{what} must be (B, N, 3) world points, got shape {tuple(points.shape)}")
    B = max(points.shape[0], len(cameras))
    if len(cameras) == 1 and B > 1:
        cameras = Cameras(cameras.cam2world.expand(B, 4, 4), cameras.intrinsics.expand(B, 3, 3))
    if points.shape[0] == 1 and B > 1:
        points = points.expand(B, -1, -1)
    if points.shape[0] != len(cameras):
        raise ValueError(f"batch mismatch: {points.shape[0]} sets of {what} for {len(cameras)} cameras "
                         "(give one of them batch 1 to share it)")
    return points, cameras


# ------------------------------------------------------------------------------- triangle geometry

def _cross(a: Tensor, b: Tensor) -> Tensor:
    """Elementwise cross product of (..., 3) vectors (exactly antisymmetric: cross(b, a) == -cross(a, b))."""
    return torch.stack([a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
                        a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
                        a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]], -1)


def _edge_normals(corners: Tensor, indices: Tensor) -> Tensor:
    """Edge vectors C_k (..., 3, 3) such that ``d . C_k`` is proportional to barycentric k along ray d.

    ``C_k = V_a x V_b`` for the edge (a, b) = (k+1, k+2) opposite corner k (camera frame), computed as
    ``V_lo x (V_hi - V_lo)`` from the edge's lower-index vertex: better conditioned than ``V_a x V_b``
    (vertices far from the camera, small triangles) and, being a function of the unordered edge, exactly
    the negative in the neighbouring triangle (watertight shared edges).

    Args:
        corners: (..., 3, 3) camera-frame corner positions (corner, xyz).
        indices: (..., 3) their vertex indices (broadcastable to corners[..., 0]).
    """
    out = []
    for k in range(3):
        a, b = (k + 1) % 3, (k + 2) % 3
        swap = (indices[..., a] > indices[..., b])[..., None]
        va, vb = corners[..., a, :], corners[..., b, :]
        lo, hi = torch.where(swap, vb, va), torch.where(swap, va, vb)
        c = _cross(lo, hi - lo)
        out.append(torch.where(swap, -c, c))
    return torch.stack(out, -2)


def _edge_values(edges: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``T_k = C_k . (x, y, 1)`` for k = 0, 1, 2; edges (..., 9) are the C_k flattened as (k, xyz).

    The same expression in both passes, so the winners' barycentrics have exactly the coverage test's signs."""
    return tuple(edges[..., 3 * k] * x + edges[..., 3 * k + 1] * y + edges[..., 3 * k + 2] for k in range(3))


# ------------------------------------------------------------------------------- coverage pass

@dataclass
class _Pieces:
    """Triangle pieces: the part of a triangle's pixel bounding box inside one screen tile, (n,) each."""

    instance: Tensor
    """Triangle instance ``b * F + f``."""
    x0: Tensor
    """First pixel column."""
    y0: Tensor
    """First pixel row."""
    w: Tensor
    """Columns (>= 1)."""
    h: Tensor
    """Rows (>= 1)."""


def _pixel_boxes(cam: Tensor, triangles: Tensor, intrinsics: Tensor, height: int, width: int,
                 grid: PixelGrid) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Inclusive pixel bounding boxes (x0, x1, y0, y1), each (B, F) int64, of triangles seen from the camera.

    Conservative: projected corners widened by :data:`_BBOX_MARGIN`; the whole screen for a triangle with a
    corner at or behind the camera plane (its projection is unbounded); empty (x0 > x1) for a triangle
    wholly behind the camera or off screen.
    """
    xy = _camera_to_pixels(cam, intrinsics, height, width, grid)[:, triangles]  # (B, F, 3, 2)
    z = cam[..., 2][:, triangles]
    crossing = (z.amin(-1) <= 0) & (z.amax(-1) > 0)
    behind = (z.amax(-1) <= 0) | ~torch.isfinite(z).all(-1)
    bounds = []
    for axis, size in ((0, width), (1, height)):
        lo = torch.nan_to_num(xy[..., axis].amin(-1) - _BBOX_MARGIN, nan=float(size)).clamp(-1.0, float(size))
        hi = torch.nan_to_num(xy[..., axis].amax(-1) + _BBOX_MARGIN, nan=-1.0).clamp(-1.0, float(size))
        lo = torch.where(crossing, 0, torch.ceil(lo).long().clamp_min(0))
        hi = torch.where(crossing, size - 1, torch.floor(hi).long().clamp_max(size - 1))
        bounds += [torch.where(behind, size, lo), torch.where(behind, -1, hi)]
    return bounds[0], bounds[1], bounds[2], bounds[3]


def _cut_into_tiles(x0: Tensor, x1: Tensor, y0: Tensor, y1: Tensor, tile: int) -> _Pieces:
    """Cut (B, F) inclusive pixel boxes along a grid of ``tile`` x ``tile`` screen tiles into :class:`_Pieces`."""
    x0, x1, y0, y1 = (t.reshape(-1) for t in (x0, x1, y0, y1))
    live = torch.nonzero((x0 <= x1) & (y0 <= y1))[:, 0]
    x0, x1, y0, y1 = x0[live], x1[live], y0[live], y1[live]
    tx0, ty0 = x0 // tile, y0 // tile
    ntx, nty = x1 // tile - tx0 + 1, y1 // tile - ty0 + 1
    count = ntx * nty
    owner = torch.repeat_interleave(torch.arange(live.numel(), device=live.device), count)
    first = torch.cumsum(count, 0) - count
    local = torch.arange(owner.numel(), device=live.device) - first[owner]
    tx = tx0[owner] + local % ntx[owner]
    ty = ty0[owner] + torch.div(local, ntx[owner], rounding_mode="floor")
    px0 = torch.maximum(x0[owner], tx * tile)
    py0 = torch.maximum(y0[owner], ty * tile)
    pw = torch.minimum(x1[owner], tx * tile + tile - 1) - px0 + 1
    ph = torch.minimum(y1[owner], ty * tile + tile - 1) - py0 + 1
    return _Pieces(live[owner], px0, py0, pw, ph)


@dataclass
class _Setup:
    """Per-triangle-instance terms of the coverage test, flattened over (B, F)."""

    edges: Tensor
    """(B*F, 9) edge vectors C_k (see :func:`_edge_normals`), camera frame."""
    plane: Tensor
    """(B*F,) ``V_0 . N`` with N the (unnormalised) triangle normal: hit z = plane / sum_k T_k."""
    ray_x: Tensor
    """(B*H*W,) camera-plane x of every pixel's ray."""
    ray_y: Tensor
    """(B*H*W,) camera-plane y of every pixel's ray."""
    faces: int
    height: int
    width: int


def _cover(setup: _Setup, pieces: _Pieces, span: int) -> tuple[Tensor, Tensor, Tensor]:
    """Pixels of ``pieces`` (all of at most ``span`` pixels) hit by their triangle in front of the camera.

    Returns (pixel flat index b*H*W + i*W + j, hit camera z, triangle index), each (m,), one per covered
    (pixel, piece) pair.
    """
    H, W = setup.height, setup.width
    k = torch.arange(span, device=pieces.w.device)
    w = pieces.w[:, None]
    dy = torch.div(k, w, rounding_mode="floor")
    inside_box = dy < pieces.h[:, None]
    row = (pieces.y0[:, None] + dy).clamp_max(H - 1)
    batch = torch.div(pieces.instance, setup.faces, rounding_mode="floor")
    pix = batch[:, None] * (H * W) + row * W + pieces.x0[:, None] + (k - dy * w)
    pix = torch.where(inside_box, pix, batch[:, None] * (H * W))
    x, y = setup.ray_x[pix], setup.ray_y[pix]
    t0, t1, t2 = _edge_values(setup.edges[pieces.instance][:, None], x, y)
    same_sign = ((t0 >= 0) & (t1 >= 0) & (t2 >= 0)) | ((t0 <= 0) & (t1 <= 0) & (t2 <= 0))
    total = t0 + t1 + t2
    hit = torch.nonzero(inside_box & same_sign & (total != 0))
    z = setup.plane[pieces.instance[hit[:, 0]]] / total[hit[:, 0], hit[:, 1]]
    front = (z > 0) & torch.isfinite(z)
    hit, z = hit[front], z[front]
    return pix[hit[:, 0], hit[:, 1]], z, pieces.instance[hit[:, 0]] % setup.faces


def _merge(zbuf: Tensor, owner: Tensor, pix: Tensor, z: Tensor, face: Tensor, no_face: int) -> tuple[Tensor, Tensor]:
    """Lexicographic (z, face) minimum of a running z-buffer (zbuf, owner (P,)) and new hits (m,) each.

    Exact and independent of the order hits arrive in (so of tiling and chunking)."""
    new_z = zbuf.scatter_reduce(0, pix, z, reduce="amin")
    keep = new_z[pix] == z
    new_owner = torch.where(zbuf == new_z, owner, torch.full_like(owner, no_face))
    new_owner = new_owner.scatter_reduce(0, pix[keep], face[keep], reduce="amin")
    return new_z, new_owner


@torch.no_grad()
def _nearest_triangles(setup: _Setup, pieces: _Pieces, batch: int, max_pairs: int) -> Tensor:
    """(B*H*W,) index of the nearest triangle hit by each pixel's ray, -1 where none."""
    n_pix = batch * setup.height * setup.width
    dtype = setup.ray_x.dtype
    zbuf = torch.full((n_pix,), math.inf, dtype=dtype, device=setup.ray_x.device)
    owner = torch.full((n_pix,), setup.faces, dtype=torch.long, device=setup.ray_x.device)
    span = torch.ceil(torch.log2((pieces.w * pieces.h).to(torch.float64))).long()  # log2 of the padded size
    for level in torch.unique(span).tolist():
        size = 1 << int(level)
        chosen = torch.nonzero(span == level)[:, 0]
        step = max(1, max_pairs // size)
        for start in range(0, chosen.numel(), step):
            part = chosen[start:start + step]
            sub = _Pieces(pieces.instance[part], pieces.x0[part], pieces.y0[part], pieces.w[part], pieces.h[part])
            pix, z, face = _cover(setup, sub, size)
            if pix.numel():
                zbuf, owner = _merge(zbuf, owner, pix, z, face, setup.faces)
    return torch.where(owner < setup.faces, owner, torch.full_like(owner, -1))


# ------------------------------------------------------------------------------------ public API

def _check_mesh(vertices: Tensor, triangles: Tensor) -> None:
    if vertices.ndim != 3 or vertices.shape[-1] != 3 or not vertices.is_floating_point():
        raise ValueError(f"rasterize: vertices must be a float (B, V, 3) tensor, got {tuple(vertices.shape)} "
                         f"{vertices.dtype}")
    if triangles.ndim != 2 or triangles.shape[-1] != 3 or triangles.is_floating_point():
        raise ValueError(f"rasterize: triangles must be an integer (F, 3) tensor, got {tuple(triangles.shape)} "
                         f"{triangles.dtype}")
    if triangles.numel() and (int(triangles.min()) < 0 or int(triangles.max()) >= vertices.shape[1]):
        raise ValueError(f"rasterize: triangle indices must lie in [0, {vertices.shape[1]}) (0-based), got "
                         f"[{int(triangles.min())}, {int(triangles.max())}]")


def _winner_fragments(cam: Tensor, triangles: Tensor, face: Tensor, ray_x: Tensor, ray_y: Tensor,
                      shape: tuple[int, int, int], grid: PixelGrid) -> Fragments:
    """Barycentrics and depth of the winning triangles (B*H*W,) with autograd, into :class:`Fragments`."""
    B, H, W = shape
    pix = torch.nonzero(face >= 0)[:, 0]
    tri = triangles[face[pix]]
    corners = cam[torch.div(pix, H * W, rounding_mode="floor")[:, None], tri]  # (M, 3, 3)
    x, y = ray_x[pix], ray_y[pix]
    t0, t1, t2 = _edge_values(_edge_normals(corners, tri).reshape(-1, 9), x, y)
    total = t0 + t1 + t2
    bary = torch.stack([t0 / total, t1 / total, t2 / total], -1)
    z = bary[:, 0] * corners[:, 0, 2] + bary[:, 1] * corners[:, 1, 2] + bary[:, 2] * corners[:, 2, 2]
    dist = z * torch.sqrt(x * x + y * y + 1.0)
    n_pix = B * H * W
    barycentric = torch.zeros(n_pix, 3, dtype=cam.dtype, device=cam.device).index_copy(0, pix, bary)
    depth = torch.zeros(n_pix, dtype=cam.dtype, device=cam.device).index_copy(0, pix, dist)
    return Fragments(face.reshape(B, H, W), barycentric.reshape(B, H, W, 3), depth.reshape(B, H, W),
                     (face >= 0).reshape(B, H, W), grid)


def rasterize(vertices: Tensor, triangles: Tensor, cameras: Cameras, height: int, width: int | None = None,
              tile_size: int = DEFAULT_TILE_SIZE, *, grid: PixelGrid = "pixel_centers",
              max_pairs: int = DEFAULT_MAX_PAIRS) -> Fragments:
    """Rasterise B meshes (or one mesh) from B cameras: the nearest triangle along every pixel's ray.

    Args:
        vertices: (B, V, 3) world positions (world units); batch 1 is shared by all cameras.
        triangles: (F, 3) int vertex indices, 0-based; either winding (both sides are rendered).
        cameras: B cameras (or 1, shared by the meshes).
        height, width: image size in pixels (width defaults to height).
        tile_size: side in pixels of the screen tiles bounding boxes are cut into (memory only; the
            output does not depend on it).
        grid: pixel grid of :func:`~aware3d.cameras.generate_rays` to rasterise (pixel centres).
        max_pairs: (pixel, triangle piece) pairs evaluated at once (memory only); >= ``tile_size ** 2``.
    Returns:
        :class:`Fragments`; barycentrics and depth differentiable w.r.t. ``vertices`` (and cameras).
    """
    width = height if width is None else width
    if tile_size < 1 or max_pairs < tile_size * tile_size:
        raise ValueError(f"rasterize: need tile_size >= 1 and max_pairs >= tile_size**2, got tile_size="
                         f"{tile_size}, max_pairs={max_pairs}")
    triangles = triangles.to(device=vertices.device, dtype=torch.long)
    _check_mesh(vertices, triangles)
    vertices, cameras = _broadcast_batch(vertices, cameras, "vertices")
    cameras = cameras.to(device=vertices.device, dtype=vertices.dtype)
    B, F = vertices.shape[0], triangles.shape[0]
    cam = _camera_frame(vertices, cameras.cam2world)
    ray_x, ray_y = _pixel_rays(cameras.intrinsics, height, width, grid)
    with torch.no_grad():
        fixed = cam.detach()
        corners = fixed[:, triangles]  # (B, F, 3, 3)
        normal = _cross(corners[..., 1, :] - corners[..., 0, :], corners[..., 2, :] - corners[..., 0, :])
        v0 = corners[..., 0, :]
        plane = v0[..., 0] * normal[..., 0] + v0[..., 1] * normal[..., 1] + v0[..., 2] * normal[..., 2]
        setup = _Setup(_edge_normals(corners, triangles).reshape(B * F, 9), plane.reshape(-1),
                       ray_x.detach(), ray_y.detach(), F, height, width)
        boxes = _pixel_boxes(fixed, triangles, cameras.intrinsics.detach(), height, width, grid)
        face = _nearest_triangles(setup, _cut_into_tiles(*boxes, tile_size), B, max_pairs)
    return _winner_fragments(cam, triangles, face, ray_x, ray_y, (B, height, width), grid)


def interpolate(fragments: Fragments, attributes: Tensor, triangles: Tensor) -> Tensor:
    """Barycentric interpolation of per-vertex attributes at every pixel.

    Args:
        fragments: from :func:`rasterize` with the same ``triangles``.
        attributes: (B, V, C) per-vertex values (albedo, normals, a 3D flow, world positions...), or (V, C)
            shared by the batch.
        triangles: (F, 3) the triangles that were rasterised.
    Returns:
        (B, H, W, C), 0 where no triangle covers the pixel; differentiable w.r.t. attributes and, through
        the barycentrics, the vertices. (Interpolated normals are not renormalised.)
    """
    B, H, W = fragments.triangle_index.shape
    if attributes.ndim == 2:
        attributes = attributes[None]
    if attributes.ndim != 3 or attributes.shape[0] not in (1, B):
        raise ValueError(f"interpolate: attributes must be (B={B}, V, C) or (V, C), got {tuple(attributes.shape)}")
    attributes = attributes.expand(B, -1, -1)
    C = attributes.shape[-1]
    triangles = triangles.to(device=attributes.device, dtype=torch.long)
    vid = triangles[fragments.triangle_index.clamp_min(0).reshape(B, H * W)]  # (B, HW, 3)
    values = torch.gather(attributes, 1, vid.reshape(B, H * W * 3, 1).expand(-1, -1, C)).reshape(B, H * W, 3, C)
    bary = fragments.barycentric.reshape(B, H * W, 3, 1).to(values.dtype)
    out = bary[:, :, 0] * values[:, :, 0] + bary[:, :, 1] * values[:, :, 1] + bary[:, :, 2] * values[:, :, 2]
    out = torch.where(fragments.mask.reshape(B, H * W, 1), out, torch.zeros_like(out))
    return out.reshape(B, H, W, C)


def visible_points(points: Tensor, fragments: Fragments, cameras: Cameras, height: int, width: int | None = None,
                   tolerance: float = 1e-2) -> Tensor:
    """Which points (landmarks) are visible: in front of the camera, inside the image and not occluded.

    A point is occluded when the depth buffer at its nearest pixel holds a surface nearer than its own
    distance minus ``tolerance`` (world units; it absorbs the depth change across a pixel for points on the
    surface, about pixel footprint x slope). An uncovered pixel occludes nothing.

    Args:
        points: (B, N, 3) world points (or (N, 3)); fragments: :func:`rasterize` output of B images of
            (height, width) from ``cameras`` (its grid is used).
    Returns:
        (B, N) bool (no gradient).
    """
    width = height if width is None else width
    B, H, W = fragments.depth.shape
    if (H, W) != (height, width):
        raise ValueError(f"visible_points: fragments are {H}x{W} pixels, asked about {height}x{width}")
    with torch.no_grad():
        points, cameras = _broadcast_batch(points, cameras, "points")
        cameras = cameras.to(device=points.device, dtype=points.dtype)
        xy, dist = project_points(points, cameras, H, W, fragments.grid)
        z = _camera_frame(points, cameras.cam2world)[..., 2]
        col, row = torch.round(xy[..., 0]), torch.round(xy[..., 1])
        inside = (z > 0) & (col >= 0) & (col <= W - 1) & (row >= 0) & (row <= H - 1)
        col = torch.nan_to_num(col, nan=0.0).clamp(0, W - 1).long()
        row = torch.nan_to_num(row, nan=0.0).clamp(0, H - 1).long()
        flat = row * W + col
        depth = torch.gather(fragments.depth.reshape(B, -1).to(dist.dtype), 1, flat)
        covered = torch.gather(fragments.mask.reshape(B, -1), 1, flat)
        return inside & (~covered | (dist <= depth + tolerance))
