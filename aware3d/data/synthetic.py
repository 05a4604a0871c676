"""Synthetic 3D datasets with exact ground truth, generated on the fly and deterministically.

No real dataset can be downloaded here, so aware3d renders its own: every item is a small analytic scene
(a union of convex solids) ray cast exactly, so image, depth, normals and mask agree to float precision
and the scene parameters double as a morphable model (CGOF-style conditioning) and as ground truth.

Two kinds exist (:data:`SYNTHETIC_DATASETS`):

* ``synthetic-heads``: face-like heads facing **+z** (the frontal camera at ``(0, 0, r)`` sees the face):
  an egg-shaped cranium (two half-ellipsoids joined smoothly), neck, nose, ears, eyes (white sclera,
  coloured iris, black pupil) under upper eyelids, eyebrows, lips with a painted mouth opening whose height
  is the ``mouth_open`` expression, and an optional hair cap. Cameras follow pi-GAN's CelebA curriculum
  (gaussian yaw/pitch around frontal, std 0.3 / 0.155 rad, fov 12 deg, radius 1, so the frame spans about
  +-0.105 at the origin); the head lies inside about ``[-0.075, 0.075] x [-0.095, 0.105] x [-0.1, 0.09]``
  and the neck continues below the frame. The background is **one uniform colour per sample** (a random
  grey with a small random tint, stored in ``SyntheticSample.background``) so a generator must model it,
  as CelebA backgrounds vary.
* ``synthetic-objects``: toy cars (rounded-box body and cabin, four cylindrical wheels with hubcaps,
  painted windows and lights) with their front toward **+x**, roof toward +y, inside ``[-0.3, 0.3]^3``,
  on a **white** background (pi-GAN CARLA's ``white_back``). Cameras: yaw uniform over 360 deg, pitch
  ``spherical_uniform`` over the upper hemisphere (pi-GAN CARLA: mean = spread = pi/4 * 85/90), fov 30,
  radius 1.

Geometry is the exact ray cast of a union of convex primitives, each the intersection of an axis-aligned
quadric ``sum_k ((p_k - c_k) a_k)^2 <= 1`` (an ellipsoid; an elliptic cylinder where some ``a_k = 0``),
an optional axis-aligned box and an optional half-space. The nearest entry point over primitives is the
visible surface (the camera is outside every solid), its normal is the analytic outward normal of the
constraint that is active there, so normals always face the camera. Rays are traced in 8x8-pixel tiles
that test only the primitives whose bounding sphere meets the tile's cone of rays (conservative, so the
result equals testing every primitive), vectorised over tiles of the whole batch. Shading is Lambertian with ambient:
``albedo * (ambient + diffuse * max(0, n . l))``; colours are painted procedurally on some primitives
(mouth opening on the lips, windows and lights on the car) instead of carving geometry.

Conventions of a :class:`SyntheticSample`:

* ``image`` (3, H, W) in [-1, 1]; ``mask`` (1, H, W) in {0, 1}, 1 where the pixel-centre ray hits.
* ``depth`` (1, H, W): **distance along the unit ray** from the camera centre to the surface (world units),
  **0 on background** (finite, so losses never meet inf; use ``mask``).
* ``normals`` (3, H, W): world-space unit outward normals, 0 on background.
* Depth, normals and mask come from the pixel-centre ray of the ``grid`` (default ``"pixel_centers"``);
  with ``antialias`` the *image* alone additionally averages 4 rotated-grid sub-samples (plus the centre)
  in pixels where the material changes, so silhouettes are smooth and the geometry stays exact.
* Cameras: ``cam2world`` (4, 4) OpenCV, ``intrinsics`` (3, 3) normalised, ``angles`` (2,) pi-GAN
  (yaw, pitch) radians, ``camera_angles`` (3,) EpiGRAF, ``eg3d_label`` (25,); see :mod:`aware3d.cameras`.
* ``light_dir`` (3,): unit vector **toward** the light, world frame.
* ``identity`` / ``expression``: the scene parameters in world units / RGB albedos in [0, 1], laid out as
  :data:`HEAD_IDENTITY_NAMES`, :data:`HEAD_EXPRESSION_NAMES` (heads) and :data:`OBJECT_IDENTITY_NAMES`
  (objects; their expression is empty). :func:`render_head` / :func:`render_object` render *any*
  parameters from *any* cameras.

Determinism: item ``i`` of a dataset with seed ``s`` draws everything from its own
``torch.Generator().manual_seed(s * 1_000_003 + i)`` (order: pose, light, identity, expression,
background), its camera is built on its own, and the per-ray arithmetic is elementwise in a fixed order
(no batched matmuls or reductions whose blocking depends on the batch), so an item is bit-identical
whatever the access order, batch composition or worker count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Callable, Literal, Sequence

import torch
from torch import Tensor

from ..cameras.poses import PoseDistribution, pigan_to_epigraf
from ..cameras.rays import Cameras, PixelGrid, pixel_coordinates

__all__ = [
    "HEAD_EXPRESSION_NAMES", "HEAD_IDENTITY_NAMES", "HEAD_PRIMITIVE_NAMES", "OBJECT_IDENTITY_NAMES",
    "OBJECT_PRIMITIVE_NAMES", "SYNTHETIC_DATASETS", "Hits", "Primitives", "RenderResult", "Scene",
    "SyntheticConfig", "SyntheticDataset", "SyntheticSample", "head_scene", "make_synthetic", "object_scene",
    "render_head", "render_object", "render_scene", "sample_head_params", "sample_light", "sample_object_params",
]

_SEED_STRIDE = 1_000_003
"""Per-item generator seed = dataset seed * stride + index (a prime, so nearby seeds do not collide)."""


# =============================================================================== analytic ray casting

@dataclass
class Primitives:
    """A group of P convex solids for each of B scenes; all of a group share which constraints exist.

    A point p is inside solid j when ``sum_k ((p_k - center_k) * inv_radii_k)^2 <= 1`` (an ellipsoid with
    radii ``1 / inv_radii``; ``inv_radii_k = 0`` leaves axis k unbounded: an elliptic cylinder), and, when
    present, ``box_min_k <= p_k <= box_max_k`` for the axes k of ``box_axes`` and ``plane[:3] . p >= plane[3]``.
    """

    center: Tensor
    """(B, P, 3) quadric centres, world units."""
    inv_radii: Tensor
    """(B, P, 3) inverse radii of the quadric, 1 / world units; 0 means unbounded along that axis."""
    albedo: Tensor
    """(B, P, 3) RGB albedo in [0, 1]."""
    active: Tensor
    """(B, P) bool: inactive solids are ignored (e.g. no hair)."""
    box_min: Tensor | None = None
    """(B, P, 3) lower corner of an axis-aligned box the solid is clipped to, or None (no box)."""
    box_max: Tensor | None = None
    """(B, P, 3) upper corner of that box, or None."""
    box_axes: tuple[int, ...] = (0, 1, 2)
    """Axes the box clips (a z-cylinder only needs its z slab: the quadric bounds x and y already)."""
    plane: Tensor | None = None
    """(B, P, 4) half-space ``n . p >= w`` as (n unit, w), or None. n = 0, w = -1 disables it."""

    def __len__(self) -> int:
        return self.center.shape[1]


@dataclass
class Hits:
    """Nearest intersections of a batch of rays with a :class:`Scene`."""

    t: Tensor
    """(B, N) distance along the unit ray, world units; inf where the ray misses."""
    prim: Tensor
    """(B, N) int64 index of the hit primitive in the scene's global order (``Scene.names``); -1 on miss."""
    normal: Tensor
    """(B, N, 3) unit outward normal at the hit, world frame; 0 on miss."""
    albedo: Tensor
    """(B, N, 3) albedo of the hit primitive before painting; 0 on miss."""

    @property
    def mask(self) -> Tensor:
        """(B, N) bool, True where the ray hits."""
        return self.prim >= 0


def _split3(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return x[..., 0], x[..., 1], x[..., 2]


@dataclass
class _Prepared:
    """Per-(scene, primitive) quantities that depend only on the camera centre o, each (B, P).

    Every ray of a pinhole camera starts at o, so everything not involving the direction is computed once
    per primitive instead of once per (ray, primitive): this halves the per-pair work.
    """

    a: tuple[Tensor, Tensor, Tensor]
    """Inverse radii per axis."""
    un: tuple[Tensor, Tensor, Tensor]
    """``(c - o) * a``: the primitive centre seen from o in the quadric's unit-sphere coordinates."""
    one_minus_c: Tensor
    """``1 - |un|^2`` (negative: o is outside), -inf for inactive primitives so they never hit."""
    degenerate: bool
    """Whether some inverse radius is 0 (cylinders): the quadratic's leading term can then vanish."""
    plane_n: tuple[Tensor, Tensor, Tensor] | None
    plane_num: Tensor | None
    """``w - n . o`` of the half-space ``n . p >= w``."""
    box_axes: tuple[int, ...]
    """Axes of the box constraint."""
    box_lo: tuple[Tensor, ...] | None
    """``box_min - o`` per box axis."""
    box_hi: tuple[Tensor, ...] | None


def _prepare(g: Primitives, o: Tensor) -> _Prepared:
    """Precompute a group's per-primitive terms for camera centres ``o`` (B, 3)."""
    oc = o[:, None, :]
    a = g.inv_radii
    un = (g.center - oc) * a
    c = un[..., 0] * un[..., 0] + un[..., 1] * un[..., 1] + un[..., 2] * un[..., 2]
    one_minus_c = torch.where(g.active, 1.0 - c, torch.full_like(c, -math.inf))
    plane_n = plane_num = box_lo = box_hi = None
    if g.plane is not None:
        n = g.plane[..., :3]
        plane_n = _split3(n)
        plane_num = g.plane[..., 3] - (n[..., 0] * oc[..., 0] + n[..., 1] * oc[..., 1] + n[..., 2] * oc[..., 2])
    if g.box_min is not None and g.box_max is not None:
        box_lo = tuple(g.box_min[..., k] - oc[..., k] for k in g.box_axes)
        box_hi = tuple(g.box_max[..., k] - oc[..., k] for k in g.box_axes)
    return _Prepared(_split3(a), _split3(un), one_minus_c, bool((a == 0).any()), plane_n, plane_num,
                     tuple(g.box_axes), box_lo, box_hi)


def _entries(d: Sequence[Tensor], inv_d: Sequence[Tensor] | None, pre: _Prepared,
             pick: Callable[[Tensor], Tensor]) -> dict:
    """Entry/exit distances of rays from the camera centre against each constraint of a group.

    ``d`` are the 3 direction components (and ``inv_d`` their safe reciprocals) shaped to broadcast with
    ``pick(x)``, which maps a (B, P) term either to (n, K, 1) (each tile's K candidate solids against its
    G rays on the last axis, so per-solid terms broadcast as scalars along contiguous memory) or to (n, G)
    (the winning solid of each ray). Only elementwise ops are used, in a fixed order, so each (ray, solid)
    value is bit-identical whatever the batch, tiling or culling.

    Returns a dict: ``tq_in``, ``tq_out``, ``hq`` (quadric interval, valid where hq > 0),
    ``tp_in``, ``tp_out`` (half-space, or None), ``ts_in``, ``ts_out`` (slab entries/exits per box axis,
    or None).
    """
    dx, dy, dz = d
    clipped = pre.plane_n is not None or pre.box_lo is not None
    ax, ay, az = (pick(x) for x in pre.a)
    ux, uy, uz = (pick(x) for x in pre.un)
    # In unit-sphere coordinates the ray is t * v - un (origin at o): |t v - un|^2 = 1.
    vx, vy, vz = dx * ax, dy * ay, dz * az
    A = vx * vx + vy * vy + vz * vz
    if pre.degenerate:
        # A = 0 only for a ray parallel to a cylinder's axis; the clamp then yields an interval of
        # (-huge, +huge) inside the cylinder and a miss outside, which is the right answer.
        A = A.clamp_min(1e-30)
    b = ux * vx + uy * vy + uz * vz
    tm = b / A
    # 1 - (squared distance of the closest approach): b^2 / A + 1 - |un|^2.
    hq = b * tm + pick(pre.one_minus_c)
    # Clamp before the root: misses (hq < 0) are rejected through hq > 0 anyway, and sqrt of negative
    # numbers takes a ~20x slower NaN path on x86.
    s = torch.sqrt(hq.clamp_min(0.0) / A)
    out = {"tq_in": tm - s, "tq_out": (tm + s) if clipped else None, "hq": hq,
           "tp_in": None, "tp_out": None, "ts_in": None, "ts_out": None}
    if pre.plane_n is not None:
        nx, ny, nz = (pick(x) for x in pre.plane_n)
        nd = nx * dx + ny * dy + nz * dz
        # Parallel rays are inside for all t or none; a tiny positive denominator reproduces that.
        nd = torch.where(nd.abs() < 1e-12, torch.full_like(nd, 1e-12), nd)
        tp = pick(pre.plane_num) / nd
        enter = nd > 0
        out["tp_in"] = torch.where(enter, tp, -math.inf)
        out["tp_out"] = torch.where(enter, math.inf, tp)
    if pre.box_lo is not None and inv_d is not None:
        ts_in, ts_out = [], []
        for k, lo, hi in zip(pre.box_axes, pre.box_lo, pre.box_hi):
            inv = inv_d[k]
            ta, tb = pick(lo) * inv, pick(hi) * inv
            ts_in.append(torch.minimum(ta, tb))
            ts_out.append(torch.maximum(ta, tb))
        out["ts_in"], out["ts_out"] = ts_in, ts_out
    return out


def _combine(e: dict) -> tuple[Tensor, Tensor]:
    """Intersect the constraint intervals: (t_in, hit) where hit means a non-empty interval."""
    t_in, t_out = e["tq_in"], e["tq_out"]
    clipped = e["tp_in"] is not None or e["ts_in"] is not None
    if e["tp_in"] is not None:
        t_in = torch.maximum(t_in, e["tp_in"])
        t_out = torch.minimum(t_out, e["tp_out"])
    if e["ts_in"] is not None:
        for a, b in zip(e["ts_in"], e["ts_out"]):
            t_in = torch.maximum(t_in, a)
            t_out = torch.minimum(t_out, b)
    hit = e["hq"] > 0
    if clipped:
        hit = hit & (t_in < t_out)
    return t_in, hit


def _safe_inv(d: Tensor) -> Tensor:
    # Axis-parallel rays: a huge finite reciprocal keeps slab arithmetic free of inf * 0 = NaN.
    return 1.0 / torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)


def _bounding_spheres(g: Primitives) -> tuple[Tensor, Tensor]:
    """Spheres (centre (B, P, 3), radius (B, P)) enclosing each solid; radius inf when unbounded.

    The smaller of the quadric's sphere (when bounded on all axes) and the sphere around the axis-aligned
    extent (quadric extent clipped by the box) is used.
    """
    a = g.inv_radii
    r = torch.where(a > 0, 1.0 / a.clamp_min(1e-30), torch.full_like(a, math.inf))
    lo, hi = g.center - r, g.center + r
    if g.box_min is not None and g.box_max is not None:
        ax = list(g.box_axes)
        lo[..., ax] = torch.maximum(lo[..., ax], g.box_min[..., ax])
        hi[..., ax] = torch.minimum(hi[..., ax], g.box_max[..., ax])
    finite = torch.isfinite(lo).all(-1) & torch.isfinite(hi).all(-1)
    box_c = torch.where(finite[..., None], (lo + hi) / 2, g.center)
    box_r = torch.where(finite, torch.linalg.norm(torch.where(finite[..., None], hi - lo, 0.0), dim=-1) / 2, math.inf)
    quad_r = r.amax(-1)
    use_quad = quad_r < box_r
    return torch.where(use_quad[..., None], g.center, box_c), torch.where(use_quad, quad_r, box_r)


_CULL_MARGIN = 1e-3
"""Angular slack (radians) of the tile/primitive culling test, far above float error, so culling never
drops a primitive that a ray of the tile could hit."""


def _candidates(g: Primitives, o: Tensor, axis: Tensor, cos_half: Tensor) -> Tensor:
    """(B, T, P) bool: solids whose bounding sphere meets the cone of tile t (apex o (B, 3), unit axis
    (B, T, 3), cosine of half-angle (B, T)). Conservative; inactive solids are never candidates."""
    sc, sr = _bounding_spheres(g)
    v = sc - o[:, None]  # (B, P, 3)
    dist = torch.linalg.norm(v, dim=-1).clamp_min(1e-12)  # (B, P)
    cos_b = torch.einsum("bpk,btk->btp", v / dist[..., None], axis).clamp(-1.0, 1.0)
    beta = torch.arccos(cos_b)
    alpha = torch.arccos(cos_half.clamp(-1.0, 1.0))[..., None]
    gamma = torch.arcsin((sr / dist).clamp(max=1.0))[:, None]
    near = (dist <= sr) | ~torch.isfinite(sr)
    return ((beta <= alpha + gamma + _CULL_MARGIN) | near[:, None]) & g.active[:, None]


def _intersect_group(g: Primitives, pre: _Prepared, rows: Tensor, o: Tensor, d: Tensor,
                     order: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Nearest hit of tiles of rays with their candidate solids of one group.

    Args:
        g, pre: the group and its per-(scene, solid) terms, (B, P) each.
        rows: (n,) scene index of each tile; o: (n, 3) its camera centre; d: (n, G, 3) unit directions.
        order: (n, K) candidate solid indices per tile.
    Returns:
        t (n, G) distance (inf on miss), local solid index (n, G), normal (n, G, 3), albedo (n, G, 3).
    """
    def pick(x: Tensor) -> Tensor:  # (B, P) -> (n, K, 1)
        return torch.gather(x[rows], 1, order)[..., None]

    needs_inv = pre.box_lo is not None
    d_all = [x[:, None, :] for x in _split3(d)]  # (n, 1, G)
    inv_all = [_safe_inv(x) for x in d_all] if needs_inv else None

    t_in, hit = _combine(_entries(d_all, inv_all, pre, pick))
    # The camera is outside every solid, so a solid in front of it is entered at t > 0.
    ok = hit & (t_in > 0)
    t_best, k_idx = torch.where(ok, t_in, math.inf).min(dim=1)
    idx = torch.gather(order, 1, k_idx)  # (n, G) solid index within the group

    # Normal of the winner: recompute its constraints on (n, G) with the same elementwise formulas, then
    # take the constraint whose entry is the latest (the one bounding the solid at the hit point).
    def gather(x: Tensor) -> Tensor:  # (B, P) -> (n, G)
        return torch.gather(x[rows], 1, idx)

    d_w = _split3(d)
    ew = _entries(d_w, [_safe_inv(x) for x in d_w] if needs_inv else None, pre, gather)
    t = torch.where(torch.isfinite(t_best), t_best, torch.zeros_like(t_best))
    pts = o[:, None] + t[..., None] * d
    c = torch.stack([gather(g.center[..., k]) for k in range(3)], -1)
    a = torch.stack([gather(g.inv_radii[..., k]) for k in range(3)], -1)
    grad = (pts - c) * a * a
    gx, gy, gz = _split3(grad)
    normal = grad / torch.sqrt(gx * gx + gy * gy + gz * gz).clamp_min(1e-30)[..., None]
    cand = [ew["tq_in"]]
    if ew["tp_in"] is not None:
        cand.append(ew["tp_in"])
    if ew["ts_in"] is not None:
        cand.extend(ew["ts_in"])
    if len(cand) > 1:
        which = torch.stack(cand, -1).argmax(-1)
        j = 1
        if ew["tp_in"] is not None:
            n_plane = torch.stack([gather(g.plane[..., k]) for k in range(3)], -1)
            normal = torch.where((which == j)[..., None], -n_plane, normal)  # outward = -n
            j += 1
        if ew["ts_in"] is not None:
            for j_axis, k in enumerate(pre.box_axes):
                axis = torch.zeros_like(normal)
                # The slab face entered is the one facing the ray: outward normal -sign(d_k) e_k.
                axis[..., k] = torch.where(d[..., k] > 0, -1.0, 1.0)
                normal = torch.where((which == j + j_axis)[..., None], axis, normal)
    albedo = torch.stack([gather(g.albedo[..., k]) for k in range(3)], -1)
    return t_best, idx, normal, albedo


@dataclass
class Scene:
    """B analytic scenes: the union of the solids of all ``groups`` plus an optional procedural paint."""

    groups: list[Primitives]
    """Groups of primitives; global primitive index = group offset + index within the group."""
    names: tuple[str, ...]
    """Name of every primitive, in global order."""
    paint: Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]] | None = None
    """``paint(prim (B,N), points (B,N,3), normals (B,N,3), albedo (B,N,3)) -> (albedo, code (B,N) int64)``:
    procedural colour (mouth opening, windows); ``code`` distinguishes painted regions for antialiasing."""
    materials: tuple[int, ...] | None = None
    """Material id per primitive (default: its index). Antialiasing supersamples pixels next to a material
    change, so primitives of one colour joined smoothly (the two halves of the head) can share an id."""

    @property
    def batch_size(self) -> int:
        return self.groups[0].center.shape[0]

    def index(self, name: str) -> int:
        """Global index of a primitive by name."""
        return self.names.index(name)

    def intersect(self, rays_o: Tensor, rays_d: Tensor, tile: int = 64, chunk: int = 1 << 18) -> Hits:
        """Exact nearest hit of rays with the union of solids.

        Rays are processed in tiles of ``tile`` consecutive rays per scene; a tile only tests the solids
        whose bounding sphere meets the cone of its rays (conservative culling, so results are exactly
        those of testing every solid). Order rays so that tiles are compact on screen (e.g. 8x8 pixel
        blocks) for the culling to pay off; any order is correct.

        Args:
            rays_o: (B, 3) ray origin per scene, or (B, N, 3) with one origin per scene repeated (pinhole
                cameras); it must lie outside every solid.
            rays_d: (B, N, 3) unit directions.
            tile: rays per culling tile.
            chunk: about how many (ray, solid) pairs to process at once (keeps tensors in cache).
        Returns:
            :class:`Hits` with ``t`` the distance along the ray (world units, inf on miss).
        """
        if rays_o.ndim == 3:
            o = rays_o[:, 0]
            if not torch.equal(rays_o, o[:, None].expand_as(rays_o)):
                raise ValueError("Scene.intersect needs one ray origin per scene (pinhole cameras)")
            rays_o = o
        o = rays_o
        B, N, _ = rays_d.shape
        G = max(1, min(tile, N))
        T = -(-N // G)
        # Pad with copies of the last ray so every tile is full; padded results are dropped.
        d = torch.cat([rays_d, rays_d[:, -1:].expand(B, T * G - N, 3)], 1) if T * G > N else rays_d
        d_tiles = d.reshape(B * T, G, 3)
        axis = d.reshape(B, T, G, 3).sum(2)
        axis = axis / torch.linalg.norm(axis, dim=-1, keepdim=True).clamp_min(1e-12)
        cos_half = (d.reshape(B, T, G, 3) * axis[:, :, None]).sum(-1).amin(-1)  # (B, T)

        best_t = torch.full((B * T, G), math.inf, device=d.device)
        best_i = torch.full((B * T, G), -1, dtype=torch.long, device=d.device)
        best_n = torch.zeros(B * T, G, 3, device=d.device)
        best_a = torch.zeros(B * T, G, 3, device=d.device)
        offset = 0
        for g in self.groups:
            P = len(g)
            cand = _candidates(g, o, axis, cos_half).reshape(B * T, P)
            counts = cand.sum(-1)
            if int(counts.max()) == 0:
                offset += P
                continue
            pre = _prepare(g, o)
            # Bucket tiles by candidate count so no tile pays for another's candidates (no padding).
            for K in torch.unique(counts[counts > 0]).tolist():
                sel = torch.nonzero(counts == K)[:, 0]
                # Candidates first, in solid order (stable), so ties resolve as without culling.
                order = torch.sort((~cand[sel]).to(torch.uint8), dim=1, stable=True).indices[:, :K]
                step = max(1, chunk // (K * G))
                for s0 in range(0, sel.numel(), step):
                    tiles = sel[s0:s0 + step]
                    rows = torch.div(tiles, T, rounding_mode="floor")
                    t, idx, n, a = _intersect_group(g, pre, rows, o[rows], d_tiles[tiles], order[s0:s0 + step])
                    # Strict < keeps the earlier group on exact ties, whatever the chunking.
                    bt = best_t[tiles]
                    better = t < bt
                    best_t[tiles] = torch.where(better, t, bt)
                    best_i[tiles] = torch.where(better, idx + offset, best_i[tiles])
                    best_n[tiles] = torch.where(better[..., None], n, best_n[tiles])
                    best_a[tiles] = torch.where(better[..., None], a, best_a[tiles])
            offset += P

        def untile(x: Tensor) -> Tensor:
            return x.reshape(B, T * G, *x.shape[2:])[:, :N]

        return Hits(untile(best_t), untile(best_i), untile(best_n), untile(best_a))

    def implicit(self, points: Tensor) -> Tensor:
        """Approximate signed distance of points (B, N, 3) to the union surface, world units.

        Negative inside, 0 on the surface, positive outside; exact in sign and zero set (the quadric term is
        ``(|u| - 1) * min radius``, a lower bound of the true distance near the surface). For tests.
        """
        vals = []
        for g in self.groups:
            p = points[:, :, None]  # (B, N, 1, 3)
            c, a = g.center[:, None], g.inv_radii[:, None]
            u = (p - c) * a
            r_min = torch.where(a > 0, 1.0 / a.clamp_min(1e-12), torch.full_like(a, math.inf)).amin(-1)
            f = (torch.sqrt((u * u).sum(-1)) - 1.0) * r_min
            if g.plane is not None:
                n, w = g.plane[:, None, :, :3], g.plane[:, None, :, 3]
                f = torch.maximum(f, w - (p * n).sum(-1))
            if g.box_min is not None:
                ax = list(g.box_axes)
                outside = torch.maximum(g.box_min[:, None, :, ax] - p[..., ax], p[..., ax] - g.box_max[:, None, :, ax])
                f = torch.maximum(f, outside.amax(-1))
            f = torch.where(g.active[:, None], f, torch.full_like(f, math.inf))
            vals.append(f)
        return torch.cat(vals, -1).amin(-1)


# ====================================================================================== rendering

@dataclass
class RenderResult:
    """Rendered batch; see the module docstring for conventions."""

    image: Tensor
    """(B, 3, H, W) in [-1, 1]."""
    depth: Tensor
    """(B, 1, H, W) ray distance in world units, 0 on background."""
    normals: Tensor
    """(B, 3, H, W) world-space unit normals, 0 on background."""
    mask: Tensor
    """(B, 1, H, W) float in {0, 1}."""


def _rays(cameras: Cameras, uv: Tensor) -> tuple[Tensor, Tensor]:
    """World rays through normalised pixel coordinates, elementwise only (bit-stable across batches).

    Same geometry as :func:`aware3d.cameras.generate_rays` for the ``pixel_centers`` formula (agrees to
    float rounding): ``d_cam = normalize((u - cx - s y) / fx, (v - cy) / fy, 1)``, ``d = R d_cam``.

    Args:
        cameras: B cameras.
        uv: (N, 2) or (B, N, 2) normalised image coordinates.
    Returns:
        rays_o: (B, 3) camera centres (shared by all rays of a camera), rays_d: (B, N, 3) unit directions.
    """
    K, c2w = cameras.intrinsics, cameras.cam2world
    if uv.ndim == 2:
        uv = uv[None]
    u, v = uv[..., 0], uv[..., 1]
    fx, fy, cx, cy, skew = (K[:, i, j, None] for i, j in ((0, 0), (1, 1), (0, 2), (1, 2), (0, 1)))
    y = (v - cy) / fy
    x = (u - cx - skew * y) / fx
    inv = 1.0 / torch.sqrt(x * x + y * y + 1.0)
    dc = (x * inv, y * inv, inv)
    R = c2w[:, :3, :3]
    d = torch.stack([R[:, j, 0, None] * dc[0] + R[:, j, 1, None] * dc[1] + R[:, j, 2, None] * dc[2]
                     for j in range(3)], -1)
    return c2w[:, :3, 3], d


def _shade(scene: Scene, hits: Hits, rays_o: Tensor, rays_d: Tensor, light_dir: Tensor, background: Tensor,
           ambient: float, diffuse: float) -> tuple[Tensor, Tensor]:
    """Colours (B, N, 3) in [0, 1] and material ids (B, N) (-1 background) of hits."""
    hit = hits.mask
    albedo, code = hits.albedo, torch.zeros_like(hits.prim)
    if scene.paint is not None:
        t = torch.where(hit, hits.t, torch.zeros_like(hits.t))
        pts = rays_o[:, None] + t[..., None] * rays_d
        albedo, code = scene.paint(hits.prim, pts, hits.normal, albedo)
    n, l = hits.normal, light_dir[:, None]
    ndl = (n[..., 0] * l[..., 0] + n[..., 1] * l[..., 1] + n[..., 2] * l[..., 2]).clamp_min(0.0)
    color = (albedo * (ambient + diffuse * ndl[..., None])).clamp(0.0, 1.0)
    color = torch.where(hit[..., None], color, background[:, None].expand_as(color))
    prim_mat = hits.prim
    if scene.materials is not None:
        table = torch.tensor(scene.materials, device=prim_mat.device)
        prim_mat = table[prim_mat.clamp_min(0)]
    material = torch.where(hit, prim_mat * 8 + code, torch.full_like(prim_mat, -1))
    return color, material


def _block_order(height: int, width: int, block: int, device=None) -> Tensor:
    """(H*W,) raster pixel indices listed block by block (row-major blocks, row-major inside a block)."""
    r = torch.arange(height, device=device)[:, None]
    c = torch.arange(width, device=device)[None]
    blocks_x = -(-width // block)
    key = ((r // block) * blocks_x + c // block) * block * block + (r % block) * block + c % block
    return torch.argsort(key.reshape(-1))


# Rotated-grid supersampling offsets in pixel units: 4 samples, distinct in x and in y.
_RGSS = ((0.125, 0.375), (0.375, -0.125), (-0.125, -0.375), (-0.375, 0.125))


def render_scene(scene: Scene, cameras: Cameras, light_dir: Tensor, height: int, width: int | None = None,
                 background: Tensor | None = None, ambient: float = 0.35, diffuse: float = 0.75,
                 antialias: bool = True, grid: PixelGrid = "pixel_centers") -> RenderResult:
    """Ray cast B scenes from B cameras.

    Args:
        scene: B scenes (:func:`head_scene`, :func:`object_scene`).
        cameras: B cameras.
        light_dir: (B, 3) or (3,) unit vector toward the directional light, world frame.
        height, width: image size in pixels (width defaults to height).
        background: (B, 3) or (3,) RGB in [0, 1]; default white.
        ambient, diffuse: shading weights, ``albedo * (ambient + diffuse * max(0, n . l))``, clamped to 1.
        antialias: average 4 extra sub-pixel samples into the *image* where the material changes between
            4-neighbouring pixel centres; depth, normals and mask always come from the pixel centre.
        grid: pixel-centre convention (see :mod:`aware3d.cameras.rays`).
    Returns:
        :class:`RenderResult`.
    """
    width = height if width is None else width
    B = scene.batch_size
    if len(cameras) != B:
        raise ValueError(f"{len(cameras)} cameras for {B} scenes")
    dev = cameras.cam2world.device
    light_dir = torch.as_tensor(light_dir, dtype=torch.float32, device=dev).reshape(-1, 3).expand(B, 3)
    if background is None:
        background = torch.ones(3, device=dev)
    background = torch.as_tensor(background, dtype=torch.float32, device=dev).reshape(-1, 3).expand(B, 3)

    uv = pixel_coordinates(height, width, grid, device=dev)
    # Trace in 8x8-block order so that each culling tile of Scene.intersect is compact on screen.
    perm = _block_order(height, width, 8, dev)
    rank = torch.empty_like(perm)
    rank[perm] = torch.arange(perm.numel(), device=dev)
    rays_o, rays_d = _rays(cameras, uv[perm])
    hits = scene.intersect(rays_o, rays_d)
    hits = Hits(*(getattr(hits, f.name)[:, rank] for f in fields(Hits)))  # back to raster order
    rays_d = rays_d[:, rank]
    color, material = _shade(scene, hits, rays_o, rays_d, light_dir, background, ambient, diffuse)

    if antialias:
        # A pixel is supersampled when its material differs from a 4-neighbour's (both get marked).
        mat = material.reshape(B, height, width)
        edge = torch.zeros_like(mat, dtype=torch.bool)
        dx = mat[:, :, 1:] != mat[:, :, :-1]
        dy = mat[:, 1:, :] != mat[:, :-1, :]
        edge[:, :, 1:] |= dx
        edge[:, :, :-1] |= dx
        edge[:, 1:, :] |= dy
        edge[:, :-1, :] |= dy
        edge = edge.reshape(B, -1)
        counts = edge.sum(1)
        m = int(counts.max())
        if m > 0:
            # Pack each image's edge pixels first, in 8x8-block order (compact culling tiles); rows with
            # fewer edge pixels are padded with non-edge ones whose results are discarded.
            n_pix = height * width
            key = torch.where(edge, rank[None], n_pix + torch.arange(n_pix, device=dev)[None])
            order = torch.sort(key, dim=1).indices[:, :m]
            valid = torch.arange(m, device=dev)[None] < counts[:, None]
            step = torch.tensor([1.0 / width, 1.0 / height], device=dev)
            if grid == "edge_aligned":
                step = torch.tensor([1.0 / max(width - 1, 1), 1.0 / max(height - 1, 1)], device=dev)
            base = uv[order]  # (B, m, 2)
            offs = torch.tensor(_RGSS, device=dev) * step  # (4, 2)
            sub_uv = (base[:, :, None] + offs).reshape(B, m * 4, 2)
            so, sd = _rays(cameras, sub_uv)
            sub_color, _ = _shade(scene, scene.intersect(so, sd), so, sd, light_dir, background, ambient, diffuse)
            centre = torch.gather(color, 1, order[..., None].expand(B, m, 3))
            # Sum in a fixed order (not .mean over a dim) so values do not depend on reduction kernels.
            sc = sub_color.reshape(B, m, 4, 3)
            blended = (centre + sc[:, :, 0] + sc[:, :, 1] + sc[:, :, 2] + sc[:, :, 3]) / 5.0
            blended = torch.where(valid[..., None], blended, centre)
            color = color.scatter(1, order[..., None].expand(B, m, 3), blended)

    def img(x: Tensor) -> Tensor:  # (B, N, C) -> (B, C, H, W)
        return x.reshape(B, height, width, -1).permute(0, 3, 1, 2).contiguous()

    hit = hits.mask
    depth = torch.where(hit, hits.t, torch.zeros_like(hits.t))
    return RenderResult(
        image=img(color * 2.0 - 1.0),
        depth=img(depth[..., None]),
        normals=img(hits.normal),
        mask=img(hit[..., None].float()),
    )


# ========================================================================================= heads

HEAD_IDENTITY_NAMES: tuple[str, ...] = (
    "head_rx", "head_ry", "head_rz",            # cranium: x / upper-half y / z radii (world units)
    "head_ry_low", "lid_level",                  # y radius of the lower half (egg); eyelid edge (eye radii)
    "skin_r", "skin_g", "skin_b",                # skin albedo
    "eye_x", "eye_y", "eye_r",                   # eye centre |x|, y, eyeball radius
    "iris_r", "iris_g", "iris_b",                # iris albedo
    "nose_y", "nose_rx", "nose_ry", "nose_rz",   # nose centre y and radii
    "mouth_gap", "mouth_rx",                     # gap below the nose, lip half-width
    "lip_r", "lip_g", "lip_b",                   # lip albedo
    "ear_y", "ear_ry",                           # ear centre y and half-height
    "hair_on", "hair_front", "hair_back", "hair_thickness",  # 0/1; hairline y at front/back; cap thickness
    "hair_r", "hair_g", "hair_b",                # hair (and eyebrow) albedo
)
"""Layout of a head's identity vector (D_id = 32): lengths in world units (head at the origin, face toward
+z), RGB albedos in [0, 1], ``lid_level`` the height of the upper eyelid's edge above the eye centre in
eyeball radii, ``hair_on`` 0 or 1 (bald heads keep hair parameters, unused; their brows are dark brown)."""

HEAD_EXPRESSION_NAMES: tuple[str, ...] = ("mouth_open", "brow_raise")
"""Layout of a head's expression vector (D_expr = 2), each in [0, 1]: mouth opening (the lips' height and
the dark opening's height grow with it) and eyebrow raise (brows move up by up to 0.006)."""

HEAD_PRIMITIVE_NAMES: tuple[str, ...] = (
    "neck", "nose", "ear+x", "ear-x", "sclera+x", "sclera-x", "iris+x", "iris-x",
    "pupil+x", "pupil-x", "brow+x", "brow-x", "lips",
    "head_top", "head_bottom", "lid+x", "lid-x", "hair",
)
"""Primitives of :func:`head_scene`, in global order (``+x`` is the subject's left, image right when
frontal). All are ellipsoids; the last five are clipped by a half-space: the cranium is an egg made of
the upper half of one ellipsoid and the lower half of a longer one (same x/z radii, so the seam is smooth),
eyelids are the upper caps of spheres slightly larger than the eyeballs, hair is a cap over the cranium."""

# Fixed layout constants of the head (world units); the identity vector holds the variable parts.
_HEAD_C = (0.0, 0.006, -0.006)
"""Cranium centre; its equator (y = 0.006) joins the upper and lower halves of the egg."""
_NECK_C, _NECK_R = (0.0, -0.118, -0.016), (0.034, 0.078, 0.036)

_SKIN_LIGHT, _SKIN_DARK = (0.97, 0.82, 0.70), (0.45, 0.30, 0.21)
_HAIR_PALETTE = ((0.06, 0.05, 0.05), (0.22, 0.13, 0.07), (0.42, 0.26, 0.13), (0.80, 0.64, 0.38),
                 (0.62, 0.26, 0.10), (0.62, 0.62, 0.62))
_IRIS_PALETTE = ((0.30, 0.17, 0.08), (0.18, 0.10, 0.05), (0.20, 0.40, 0.62), (0.28, 0.45, 0.25))


def _uniform(u: Tensor, lo: float, hi: float) -> Tensor:
    return lo + (hi - lo) * u


def _pick(palette: Sequence[Sequence[float]], u: Tensor) -> Tensor:
    i = min(int(u * len(palette)), len(palette) - 1)
    return torch.tensor(palette[i], dtype=torch.float32)


def sample_head_params(generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Draw one head: (identity (32,), expression (2,)); see :data:`HEAD_IDENTITY_NAMES`.

    Uses exactly one ``torch.rand`` call of fixed size, so the draw is reproducible from the generator state.
    """
    u = torch.rand(40, generator=generator)
    skin = torch.lerp(torch.tensor(_SKIN_LIGHT), torch.tensor(_SKIN_DARK), u[5]) * _uniform(u[6:9], 0.95, 1.05)
    iris = _pick(_IRIS_PALETTE, u[12]) * _uniform(u[13], 0.8, 1.2)
    lips = skin * torch.tensor([0.88, 0.55, 0.55]) * _uniform(u[21], 0.85, 1.0)
    # One brightness factor plus a small per-channel tint, so greys stay grey and browns stay brown.
    hair = _pick(_HAIR_PALETTE, u[30]) * _uniform(u[31], 0.8, 1.2) * _uniform(u[32:35], 0.95, 1.05)
    identity = torch.stack([
        _uniform(u[0], 0.058, 0.066), _uniform(u[1], 0.074, 0.082), _uniform(u[2], 0.072, 0.080),
        _uniform(u[3], 0.086, 0.097), _uniform(u[4], 0.4, 0.7),
        *skin.clamp(0, 1),
        _uniform(u[9], 0.022, 0.026), _uniform(u[10], 0.008, 0.014), _uniform(u[11], 0.0085, 0.0102),
        *iris.clamp(0, 1),
        _uniform(u[14], -0.016, -0.010), _uniform(u[15], 0.0085, 0.0115), _uniform(u[16], 0.019, 0.023),
        _uniform(u[17], 0.014, 0.020),
        _uniform(u[18], 0.007, 0.011), _uniform(u[19], 0.015, 0.020),
        *lips.clamp(0, 1),
        _uniform(u[24], -0.010, 0.004), _uniform(u[25], 0.017, 0.023),
        (u[26] < 0.85).float(), _uniform(u[27], 0.045, 0.064), _uniform(u[28], -0.085, -0.035),
        _uniform(u[29], 0.005, 0.012),
        *hair.clamp(0, 1),
    ])
    expression = torch.stack([u[35] ** 1.5, u[36]])  # skew toward closed mouths, as in photos
    return identity, expression


def _front_z(x: Tensor, y: Tensor, c: Sequence, rx: Tensor, ry: Tensor, rz: Tensor) -> Tensor:
    """z of the front (+z) surface of an axis-aligned ellipsoid at (x, y); -inf outside its outline."""
    q = 1 - ((x - c[0]) / rx) ** 2 - ((y - c[1]) / ry) ** 2
    return torch.where(q >= 0, c[2] + rz * torch.sqrt(q.clamp_min(0)), torch.full_like(q, -math.inf))


def _stack_b(values: Sequence, B: int, dev) -> Tensor:
    """(B, len(values)) from scalars and (B,) tensors."""
    return torch.stack([torch.as_tensor(v, device=dev, dtype=torch.float32).expand(B) for v in values], -1)


def _horizontal_plane(y: Tensor, up: bool) -> Tensor:
    """(B, 4) half-space y >= level (``up``) or y <= level, as (n, w) with n . p >= w."""
    zero = torch.zeros_like(y)
    s = 1.0 if up else -1.0
    return torch.stack([zero, zero + s, zero, s * y], -1)


def head_scene(identity: Tensor, expression: Tensor) -> Scene:
    """Analytic head scenes from parameters.

    Args:
        identity: (B, 32) laid out as :data:`HEAD_IDENTITY_NAMES`.
        expression: (B, 2) laid out as :data:`HEAD_EXPRESSION_NAMES`.
    Returns:
        A :class:`Scene` with primitives :data:`HEAD_PRIMITIVE_NAMES` (head centred near the origin, face
        toward +z, +y up) whose paint draws the mouth opening on the lips.
    """
    identity = identity.reshape(-1, len(HEAD_IDENTITY_NAMES)).float()
    expression = expression.reshape(-1, len(HEAD_EXPRESSION_NAMES)).float()
    P = dict(zip(HEAD_IDENTITY_NAMES, identity.unbind(-1)))
    mouth_open, brow_raise = expression.unbind(-1)
    B, dev = identity.shape[0], identity.device
    zero = torch.zeros(B, device=dev)
    hrx, hry, hrz, hry_low = P["head_rx"], P["head_ry"], P["head_rz"], P["head_ry_low"]
    eq_y = _HEAD_C[1]

    def z_face(x: Tensor, y: Tensor) -> Tensor:
        """Front surface z of the egg-shaped cranium at (x, y)."""
        return torch.where(y >= eq_y, _front_z(x, y, _HEAD_C, hrx, hry, hrz),
                           _front_z(x, y, _HEAD_C, hrx, hry_low, hrz))

    skin = torch.stack([P["skin_r"], P["skin_g"], P["skin_b"]], -1)
    hair = torch.stack([P["hair_r"], P["hair_g"], P["hair_b"]], -1)
    iris = torch.stack([P["iris_r"], P["iris_g"], P["iris_b"]], -1)
    lips_c = torch.stack([P["lip_r"], P["lip_g"], P["lip_b"]], -1)
    white = torch.tensor([0.93, 0.92, 0.90], device=dev).expand(B, 3)
    black = torch.tensor([0.03, 0.03, 0.03], device=dev).expand(B, 3)
    # Bald heads get dark-brown brows rather than skin-coloured (invisible) ones.
    brow_col = torch.where(P["hair_on"][:, None] > 0.5, hair * 0.75, torch.tensor([0.18, 0.12, 0.08], device=dev))

    main: list[tuple[Tensor, Tensor, Tensor]] = []  # (center (B,3), radii (B,3), albedo (B,3))
    clipped: list[tuple[Tensor, Tensor, Tensor, Tensor, Tensor]] = []  # + plane (B,4), active (B,)

    def add(c, r, col):
        main.append((_stack_b(c, B, dev), _stack_b(r, B, dev), col))

    def add_clipped(c, r, col, plane, active=None):
        act = torch.ones(B, dtype=torch.bool, device=dev) if active is None else active
        clipped.append((_stack_b(c, B, dev), _stack_b(r, B, dev), col, plane, act))

    add(_NECK_C, _NECK_R, skin * 0.85)
    ny = P["nose_y"]
    add((zero, ny, z_face(zero, ny) - 0.3 * P["nose_rz"]), (P["nose_rx"], P["nose_ry"], P["nose_rz"]), skin)
    for sx in (1.0, -1.0):
        add((sx * hrx * 0.97, P["ear_y"], -0.014), (0.0065, P["ear_ry"], 0.0125), skin * 0.93)
    er, ey = P["eye_r"], P["eye_y"]
    # Eyeballs sit in the face, protruding 0.4 r; iris and pupil are spheres poking out of their front.
    eye_z = {sx: z_face(sx * P["eye_x"], ey) - 0.6 * er for sx in (1.0, -1.0)}
    for sx in (1.0, -1.0):
        add((sx * P["eye_x"], ey, eye_z[sx]), (er, er, er), white)
    for sx in (1.0, -1.0):
        add((sx * P["eye_x"], ey, eye_z[sx] + 0.55 * er), (0.6 * er,) * 3, iris)
    for sx in (1.0, -1.0):
        add((sx * P["eye_x"], ey, eye_z[sx] + 0.9 * er), (0.28 * er,) * 3, black)
    by = ey + 1.55 * er + 0.006 * brow_raise
    for sx in (1.0, -1.0):
        bx = sx * P["eye_x"] * 1.05
        add((bx, by, z_face(bx, by) - 0.0012), (0.0135, 0.0028, 0.0045), brow_col)
    mouth_y = ny - P["nose_ry"] - P["mouth_gap"]
    add((zero, mouth_y, z_face(zero, mouth_y) - 0.0045), (P["mouth_rx"], 0.0045 + 0.0035 * mouth_open, 0.0075), lips_c)

    add_clipped(_HEAD_C, (hrx, hry, hrz), skin, _horizontal_plane(zero + eq_y, up=True))
    add_clipped(_HEAD_C, (hrx, hry_low, hrz), skin, _horizontal_plane(zero + eq_y, up=False))
    for sx in (1.0, -1.0):  # upper eyelids cover the top of the eyeball
        add_clipped((sx * P["eye_x"], ey, eye_z[sx]), (1.1 * er,) * 3, skin * 0.92,
                    _horizontal_plane(ey + P["lid_level"] * er, up=True))
    # Hair: a slightly larger cranium clipped by the tilted plane through the front and back hairlines,
    # y - k z >= y0 (lower at the back), so it caps the top and back and leaves the face free.
    th = P["hair_thickness"]
    z_front, z_back = _HEAD_C[2] + hrz, _HEAD_C[2] - hrz
    k = (P["hair_front"] - P["hair_back"]) / (z_front - z_back)
    y0 = P["hair_front"] - k * z_front
    norm = torch.sqrt(1 + k * k)
    add_clipped((0.0, _HEAD_C[1] + 0.002, _HEAD_C[2] - 0.002), (hrx + th, hry + 1.2 * th, hrz + th), hair,
                torch.stack([zero, 1 / norm, -k / norm, y0 / norm], -1), P["hair_on"] > 0.5)

    c, r, col = (torch.stack(x, 1) for x in zip(*main))
    g_main = Primitives(c, 1.0 / r, col, torch.ones(B, len(main), dtype=torch.bool, device=dev))
    c, r, col, plane, act = (torch.stack(x, 1) for x in zip(*clipped))
    g_clip = Primitives(c, 1.0 / r, col, act, plane=plane)

    lips_i = HEAD_PRIMITIVE_NAMES.index("lips")
    open_rx = 0.8 * P["mouth_rx"]
    open_ry = 0.0006 + 0.004 * mouth_open
    dark = torch.tensor([0.14, 0.03, 0.04], device=dev)

    def paint(prim: Tensor, pts: Tensor, normals: Tensor, albedo: Tensor) -> tuple[Tensor, Tensor]:
        # The mouth opening is painted (not carved) on the front of the lips: an ellipse in (x, y).
        ex = pts[..., 0] / open_rx[:, None]
        eyy = (pts[..., 1] - mouth_y[:, None]) / open_ry[:, None]
        inside = (prim == lips_i) & (ex * ex + eyy * eyy < 1.0)
        return torch.where(inside[..., None], dark.expand_as(albedo), albedo), inside.long()

    # The egg's halves join smoothly and the nose shares the skin: one material, no supersampling there.
    materials = tuple(0 if n in ("head_top", "head_bottom", "nose") else i + 1
                      for i, n in enumerate(HEAD_PRIMITIVE_NAMES))
    return Scene([g_main, g_clip], HEAD_PRIMITIVE_NAMES, paint, materials)


def sample_light(kind: Literal["heads", "objects"], generator: torch.Generator) -> Tensor:
    """A random unit light direction (3,), world frame, pointing toward the light.

    Heads: azimuth within +-1.1 rad of the face direction (+z), elevation in [-0.25, 0.9] rad.
    Objects: any azimuth, elevation in [0.35, 1.35] rad (sun-like, from above).
    """
    u = torch.rand(2, generator=generator)
    if kind == "heads":
        az, el = math.pi / 2 + _uniform(u[0], -1.1, 1.1), _uniform(u[1], -0.25, 0.9)
    else:
        az, el = _uniform(u[0], 0.0, 2 * math.pi), _uniform(u[1], 0.35, 1.35)
    # Azimuth measured like pi-GAN yaw: the xz direction (cos az, sin az), so pi/2 is +z.
    return torch.stack([torch.cos(el) * torch.cos(az), torch.sin(el), torch.cos(el) * torch.sin(az)])


def render_head(identity: Tensor, expression: Tensor, cameras: Cameras, light_dir: Tensor, height: int,
                width: int | None = None, background: Tensor | None = None, ambient: float = 0.35,
                diffuse: float = 0.75, antialias: bool = True, grid: PixelGrid = "pixel_centers") -> RenderResult:
    """Render heads of any parameters from any cameras.

    Args:
        identity: (B, 32) or (32,) :data:`HEAD_IDENTITY_NAMES`; expression: (B, 2) or (2,).
        cameras: B cameras (or 1, broadcast); light_dir: (B, 3) or (3,) toward the light, world frame.
        height, width: pixels; background: (B, 3)/(3,) RGB in [0, 1], default mid grey.
        ambient, diffuse, antialias, grid: see :func:`render_scene`.
    """
    identity, expression, cameras = _broadcast(identity, expression, cameras)
    if background is None:
        background = torch.full((3,), 0.5)
    return render_scene(head_scene(identity, expression), cameras, light_dir, height, width, background,
                        ambient, diffuse, antialias, grid)


def _broadcast(identity: Tensor, expression: Tensor, cameras: Cameras) -> tuple[Tensor, Tensor, Cameras]:
    identity = identity.reshape(-1, identity.shape[-1])
    if expression.numel():
        expression = expression.reshape(-1, expression.shape[-1])
    else:
        expression = expression.reshape(identity.shape[0], 0)
    B = max(identity.shape[0], expression.shape[0], len(cameras))
    if len(cameras) == 1 and B > 1:
        cameras = Cameras(cameras.cam2world.expand(B, 4, 4), cameras.intrinsics.expand(B, 3, 3))
    return identity.expand(B, -1), expression.expand(B, -1), cameras


# ======================================================================================= objects

OBJECT_IDENTITY_NAMES: tuple[str, ...] = (
    "half_length", "half_width", "body_height", "body_round",       # body box (x = length, z = width)
    "cabin_length", "cabin_offset", "cabin_height", "cabin_width", "cabin_round",
    "wheel_radius", "wheel_half_width", "wheelbase",
    "body_r", "body_g", "body_b",
)
"""Layout of a car's identity vector (D_id = 15). Lengths in world units except: ``body_round`` /
``cabin_round`` (the rounding ellipsoid's radii as multiples of the box half extents; smaller = rounder),
``cabin_length`` (fraction of the full length), ``cabin_offset`` (cabin centre x as a fraction of the
half length; negative = toward the rear), ``cabin_width`` (fraction of the body width), ``wheelbase``
(wheel centre |x| as a fraction of the half length). Body colour RGB in [0, 1]. The front points to +x."""

OBJECT_PRIMITIVE_NAMES: tuple[str, ...] = (
    "body", "cabin", "wheel+x+z", "wheel+x-z", "wheel-x+z", "wheel-x-z",
    "hub+x+z", "hub+x-z", "hub-x+z", "hub-x-z",
)
"""Primitives of :func:`object_scene`: two rounded boxes (box clipped by an ellipsoid), 4 wheels and 4
hubcaps (cylinders along z, clipped by boxes)."""

_CAR_PALETTE = ((0.75, 0.08, 0.07), (0.10, 0.22, 0.60), (0.08, 0.08, 0.09), (0.72, 0.73, 0.75),
                (0.85, 0.85, 0.82), (0.88, 0.70, 0.10), (0.12, 0.42, 0.20), (0.90, 0.40, 0.08),
                (0.35, 0.10, 0.45), (0.30, 0.55, 0.75))


def sample_object_params(generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Draw one car: (identity (15,), expression (0,)); see :data:`OBJECT_IDENTITY_NAMES`."""
    u = torch.rand(20, generator=generator)
    col = _pick(_CAR_PALETTE, u[12]) * _uniform(u[13:16], 0.85, 1.12)
    identity = torch.stack([
        _uniform(u[0], 0.20, 0.25), _uniform(u[1], 0.088, 0.11), _uniform(u[2], 0.055, 0.08),
        _uniform(u[3], 1.3, 1.6),
        _uniform(u[4], 0.40, 0.62), _uniform(u[5], -0.25, 0.0), _uniform(u[6], 0.05, 0.075),
        _uniform(u[7], 0.78, 0.92), _uniform(u[8], 1.2, 1.45),
        _uniform(u[9], 0.040, 0.054), _uniform(u[10], 0.013, 0.02), _uniform(u[11], 0.62, 0.76),
        *col.clamp(0, 1),
    ])
    return identity, torch.zeros(0)


def object_scene(identity: Tensor) -> Scene:
    """Analytic car scenes from parameters.

    Args:
        identity: (B, 15) laid out as :data:`OBJECT_IDENTITY_NAMES`.
    Returns:
        A :class:`Scene` with primitives :data:`OBJECT_PRIMITIVE_NAMES`, centred at the origin (front +x,
        up +y), whose paint draws windows on the cabin and head/tail lights on the body.
    """
    identity = identity.reshape(-1, len(OBJECT_IDENTITY_NAMES)).float()
    P = dict(zip(OBJECT_IDENTITY_NAMES, identity.unbind(-1)))
    B, dev = identity.shape[0], identity.device
    zero = torch.zeros(B, device=dev)
    hl, hw, bh, wr = P["half_length"], P["half_width"], P["body_height"], P["wheel_radius"]
    ch = P["cabin_height"]
    clearance = 0.45 * wr
    # Centre the car vertically: ground at -total/2, roof at +total/2.
    y_ground = -(clearance + bh + ch) / 2
    body_y0 = y_ground + clearance
    body_y1 = body_y0 + bh
    cab_y0 = body_y1 - 0.35 * ch
    cab_y1 = body_y1 + ch
    cab_hx = P["cabin_length"] * hl
    cab_x = P["cabin_offset"] * hl
    cab_hz = P["cabin_width"] * hw
    body_col = torch.stack([P["body_r"], P["body_g"], P["body_b"]], -1)

    centers, inv_r, lo, hi, cols = [], [], [], [], []

    def add(c, half, inv, col):
        c = torch.stack(c, -1)
        half = torch.stack(half, -1)
        centers.append(c)
        inv_r.append(torch.stack(inv, -1))
        lo.append(c - half)
        hi.append(c + half)
        cols.append(col.expand(B, 3))

    def rounded_box(c, half, s, col):
        # Box intersected with the ellipsoid of radii s * half: edges and corners become curved.
        add(c, half, [1.0 / (s * h) for h in half], col)

    rounded_box([zero, (body_y0 + body_y1) / 2, zero], [hl, bh / 2, hw], P["body_round"], body_col)
    rounded_box([cab_x, (cab_y0 + cab_y1) / 2, zero], [cab_hx, (cab_y1 - cab_y0) / 2, cab_hz], P["cabin_round"],
                body_col)
    wx, wy, wz = P["wheelbase"] * hl, y_ground + wr, hw - 0.5 * P["wheel_half_width"]
    tyre = torch.tensor([0.06, 0.06, 0.07], device=dev)
    hub = torch.tensor([0.70, 0.70, 0.72], device=dev)
    corners = [(sx, sz) for sx in (1.0, -1.0) for sz in (1.0, -1.0)]
    for sx, sz in corners:  # cylinders along z: inv radius 0 on z, the box bounds the width
        add([sx * wx, wy, sz * wz], [wr, wr, P["wheel_half_width"]], [1.0 / wr, 1.0 / wr, zero], tyre)
    for sx, sz in corners:
        r = 0.55 * wr
        add([sx * wx, wy, sz * wz], [r, r, P["wheel_half_width"] + 0.002], [1.0 / r, 1.0 / r, zero], hub)
    def group(sl: slice, axes: tuple[int, ...]) -> Primitives:
        def st(xs):
            return torch.stack(xs[sl], 1)
        n = len(centers[sl])
        return Primitives(st(centers), st(inv_r), st(cols), torch.ones(B, n, dtype=torch.bool, device=dev),
                          box_min=st(lo), box_max=st(hi), box_axes=axes)

    # Two groups so the cylinders pay for their z slab only (the quadric already bounds x and y).
    groups = [group(slice(0, 2), (0, 1, 2)), group(slice(2, None), (2,))]

    glass = torch.tensor([0.10, 0.13, 0.18], device=dev)
    head_l = torch.tensor([1.0, 0.95, 0.75], device=dev)
    tail_l = torch.tensor([0.75, 0.04, 0.04], device=dev)

    def paint(prim: Tensor, pts: Tensor, normals: Tensor, albedo: Tensor) -> tuple[Tensor, Tensor]:
        y = pts[..., 1]
        # Windows: the non-horizontal faces of the cabin above the body line.
        win = (prim == 1) & (normals[..., 1].abs() < 0.8) & (y > body_y1[:, None] + 0.06 * ch[:, None]) \
            & (y < cab_y1[:, None] - 0.15 * ch[:, None])
        az = pts[..., 2].abs() / hw[:, None]
        band = (prim == 0) & (az > 0.45) & (az < 0.85) & (y > body_y0[:, None] + 0.5 * bh[:, None])
        front = band & (normals[..., 0] > 0.6)
        rear = band & (normals[..., 0] < -0.6)
        albedo = torch.where(win[..., None], glass.expand_as(albedo), albedo)
        albedo = torch.where(front[..., None], head_l.expand_as(albedo), albedo)
        albedo = torch.where(rear[..., None], tail_l.expand_as(albedo), albedo)
        return albedo, win.long() + 2 * front.long() + 3 * rear.long()

    return Scene(groups, OBJECT_PRIMITIVE_NAMES, paint)


def render_object(identity: Tensor, cameras: Cameras, light_dir: Tensor, height: int, width: int | None = None,
                  background: Tensor | None = None, ambient: float = 0.35, diffuse: float = 0.75,
                  antialias: bool = True, grid: PixelGrid = "pixel_centers") -> RenderResult:
    """Render cars of any parameters from any cameras.

    Args:
        identity: (B, 15) or (15,) :data:`OBJECT_IDENTITY_NAMES`; cameras: B cameras (or 1, broadcast).
        light_dir: (B, 3) or (3,) toward the light; background: RGB in [0, 1], default white.
        height, width, ambient, diffuse, antialias, grid: see :func:`render_scene`.
    """
    identity, _, cameras = _broadcast(identity, torch.zeros(0), cameras)
    return render_scene(object_scene(identity), cameras, light_dir, height, width, background,
                        ambient, diffuse, antialias, grid)


# ======================================================================================= dataset

@dataclass
class SyntheticSample:
    """One item (no batch dim) or a batch (leading dim B) of a :class:`SyntheticDataset`.

    Shapes below are per item. See the module docstring for every convention.
    """

    image: Tensor
    """(3, H, W) float in [-1, 1]."""
    depth: Tensor
    """(1, H, W) distance along the unit ray from the camera, world units; 0 on background."""
    normals: Tensor
    """(3, H, W) world-space unit outward normals; 0 on background."""
    mask: Tensor
    """(1, H, W) float foreground mask in {0, 1}."""
    cam2world: Tensor
    """(4, 4) OpenCV camera-to-world."""
    intrinsics: Tensor
    """(3, 3) normalised intrinsics."""
    angles: Tensor
    """(2,) pi-GAN (yaw, pitch), radians; frontal (pi/2, pi/2)."""
    camera_angles: Tensor
    """(3,) EpiGRAF [yaw, pitch, roll] = [yaw - pi/2, pitch - pi/2, 0]."""
    eg3d_label: Tensor
    """(25,) EG3D label: flattened cam2world + flattened intrinsics."""
    light_dir: Tensor
    """(3,) unit vector toward the light, world frame."""
    identity: Tensor
    """(D_id,) shape/appearance parameters (:data:`HEAD_IDENTITY_NAMES` or :data:`OBJECT_IDENTITY_NAMES`)."""
    expression: Tensor
    """(D_expr,) expression parameters (:data:`HEAD_EXPRESSION_NAMES`; empty for objects)."""
    background: Tensor
    """(3,) background RGB in [0, 1]."""
    index: Tensor
    """() int64 dataset index."""

    def to(self, *args, **kwargs) -> "SyntheticSample":
        """Move every tensor (``Tensor.to`` arguments)."""
        return SyntheticSample(**{f.name: getattr(self, f.name).to(*args, **kwargs) for f in fields(self)})

    def __getitem__(self, i: int) -> "SyntheticSample":
        """Item ``i`` of a batched sample."""
        return SyntheticSample(**{f.name: getattr(self, f.name)[i] for f in fields(self)})

    @staticmethod
    def collate(samples: Sequence["SyntheticSample"]) -> "SyntheticSample":
        """Stack items into a batch (``collate_fn`` for a ``torch.utils.data.DataLoader``)."""
        return SyntheticSample(**{f.name: torch.stack([getattr(s, f.name) for s in samples])
                                  for f in fields(SyntheticSample)})


_KIND_DEFAULTS = {
    "heads": dict(fov_deg=12.0, background="random",
                  pose=PoseDistribution("gaussian", math.pi / 2, math.pi / 2, 0.3, 0.155, 1.0)),
    "objects": dict(fov_deg=30.0, background="white",
                    pose=PoseDistribution("spherical_uniform", math.pi / 2, math.pi / 4 * 85 / 90, math.pi,
                                          math.pi / 4 * 85 / 90, 1.0)),
}


@dataclass(frozen=True)
class SyntheticConfig:
    """What a :class:`SyntheticDataset` generates. Fields left None take the kind's default."""

    kind: Literal["heads", "objects"]
    """Scene family: "heads" (faces toward +z) or "objects" (cars, front toward +x)."""
    resolution: int = 64
    """Image height = width in pixels."""
    seed: int = 0
    """Dataset seed; item i uses torch.Generator().manual_seed(seed * 1_000_003 + i)."""
    length: int = 10000
    """Number of items (any index in [0, length) is valid; items are generated on access)."""
    fov_deg: float | None = None
    """Full field of view in degrees (heads 12, objects 30)."""
    pose: PoseDistribution | None = None
    """Camera distribution in pi-GAN angles (heads: pi-GAN CelebA gaussian; objects: pi-GAN CARLA)."""
    background: Literal["random", "white", "black"] | None = None
    """Background: "random" (uniform random grey with a slight tint per sample; heads), "white" (objects)
    or "black"."""
    ambient: float = 0.35
    """Ambient shading weight."""
    diffuse: float = 0.75
    """Lambertian shading weight (image = albedo * (ambient + diffuse * max(0, n.l)), clamped to 1)."""
    antialias: bool = True
    """Supersample the image (only) at material edges; depth/normals/mask stay pixel-centre exact."""
    grid: PixelGrid = "pixel_centers"
    """Pixel-centre convention of the rays (see aware3d.cameras.rays)."""

    def __post_init__(self) -> None:
        if self.kind not in _KIND_DEFAULTS:
            raise ValueError(f"unknown synthetic kind {self.kind!r}; valid: {', '.join(_KIND_DEFAULTS)}")
        for name, value in _KIND_DEFAULTS[self.kind].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.background not in ("random", "white", "black"):
            raise ValueError(f"unknown background {self.background!r}; valid: random, white, black")
        if self.resolution < 1 or self.length < 0:
            raise ValueError(f"resolution must be >= 1 and length >= 0, got {self.resolution}, {self.length}")


SYNTHETIC_DATASETS: dict[str, SyntheticConfig] = {
    "synthetic-heads": SyntheticConfig(kind="heads"),
    "synthetic-objects": SyntheticConfig(kind="objects"),
}
"""Presets: face-like heads (pi-GAN CelebA cameras) and toy cars (pi-GAN CARLA cameras)."""


def _resolve(name: str) -> SyntheticConfig:
    if name not in SYNTHETIC_DATASETS:
        raise KeyError(f"unknown synthetic dataset {name!r}; valid: {', '.join(sorted(SYNTHETIC_DATASETS))}")
    return SYNTHETIC_DATASETS[name]


class SyntheticDataset(torch.utils.data.Dataset):
    """Procedurally generated 3D dataset with exact ground truth; items are rendered on access.

    ``dataset[i]`` returns a :class:`SyntheticSample` without batch dim; :meth:`get_batch` renders many
    items at once (the fast path: vectorised ray casting) with the same values bit for bit.
    """

    def __init__(self, name_or_config: str | SyntheticConfig, resolution: int | None = None,
                 length: int | None = None, seed: int | None = None) -> None:
        config = _resolve(name_or_config) if isinstance(name_or_config, str) else name_or_config
        overrides = {k: v for k, v in dict(resolution=resolution, length=length, seed=seed).items() if v is not None}
        self.config: SyntheticConfig = replace(config, **overrides)

    @property
    def pose_distribution(self) -> PoseDistribution:
        """Camera distribution (pi-GAN angles) the items are drawn from."""
        return self.config.pose

    @property
    def fov_deg(self) -> float:
        """Full field of view in degrees."""
        return self.config.fov_deg

    @property
    def resolution(self) -> int:
        return self.config.resolution

    def __len__(self) -> int:
        return self.config.length

    def __getitem__(self, index: int) -> SyntheticSample:
        return self.get_batch([index])[0]

    def _check(self, index: int) -> int:
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of length {len(self)}")
        return index

    def sample_params(self, index: int) -> dict[str, Tensor]:
        """Parameters of item ``index`` (no rendering): yaw, pitch (scalars), light_dir (3,), identity,
        expression, background (3,). Drawn from the item's own generator in this order."""
        index = self._check(index)
        cfg = self.config
        g = torch.Generator().manual_seed(cfg.seed * _SEED_STRIDE + index)
        yaw, pitch = cfg.pose.sample(1, generator=g)
        light = sample_light(cfg.kind, g)
        if cfg.kind == "heads":
            identity, expression = sample_head_params(g)
        else:
            identity, expression = sample_object_params(g)
        u = torch.rand(4, generator=g)
        if cfg.background == "random":
            # A grey level plus a small random tint: varied but plausible studio-like backdrops.
            background = (_uniform(u[0], 0.12, 0.88) + 0.25 * (u[1:4] - 0.5)).clamp(0, 1)
        elif cfg.background == "white":
            background = torch.ones(3)
        else:
            background = torch.zeros(3)
        return dict(yaw=yaw[0], pitch=pitch[0], light_dir=light, identity=identity, expression=expression,
                    background=background, index=torch.tensor(index))

    def cameras(self, indices: Sequence[int]) -> Cameras:
        """The cameras of items ``indices`` without rendering (the same as in :meth:`get_batch`)."""
        cfg = self.config
        params = [self.sample_params(i) for i in indices]
        return Cameras.cat([Cameras.from_angles(p["yaw"], p["pitch"], cfg.fov_deg, cfg.pose.radius) for p in params])

    def get_batch(self, indices: Sequence[int]) -> SyntheticSample:
        """Render items ``indices`` at once; returns a :class:`SyntheticSample` with a leading batch dim."""
        cfg = self.config
        params = [self.sample_params(i) for i in indices]
        if not params:
            raise ValueError("get_batch needs at least one index")
        st = {k: torch.stack([p[k] for p in params]) for k in params[0]}
        # Cameras are built per item so their trigonometry never depends on the batch (bit-stable items).
        cams = Cameras.cat([Cameras.from_angles(p["yaw"], p["pitch"], cfg.fov_deg, cfg.pose.radius) for p in params])
        if cfg.kind == "heads":
            scene = head_scene(st["identity"], st["expression"])
        else:
            scene = object_scene(st["identity"])
        out = render_scene(scene, cams, st["light_dir"], cfg.resolution, cfg.resolution, st["background"],
                           cfg.ambient, cfg.diffuse, cfg.antialias, cfg.grid)
        return SyntheticSample(
            image=out.image, depth=out.depth, normals=out.normals, mask=out.mask,
            cam2world=cams.cam2world, intrinsics=cams.intrinsics,
            angles=torch.stack([st["yaw"], st["pitch"]], -1),
            camera_angles=pigan_to_epigraf(st["yaw"], st["pitch"]),
            eg3d_label=cams.eg3d_label(), light_dir=st["light_dir"], identity=st["identity"],
            expression=st["expression"], background=st["background"], index=st["index"],
        )

    def render(self, identity: Tensor, expression: Tensor, cameras: Cameras, light_dir: Tensor,
               background: Tensor | None = None, resolution: int | None = None) -> RenderResult:
        """Render any parameters of this dataset's kind with its shading settings (morphable-model use).

        ``background`` (B, 3)/(3,) RGB in [0, 1] defaults to the config's (white / black; mid grey for
        "random", whose colour is per item: pass ``sample_params(i)["background"]`` to reproduce item i).
        """
        cfg = self.config
        res = resolution or cfg.resolution
        if background is None:
            background = torch.full((3,), {"white": 1.0, "black": 0.0}.get(cfg.background, 0.5))
        kw = dict(ambient=cfg.ambient, diffuse=cfg.diffuse, antialias=cfg.antialias, grid=cfg.grid)
        if cfg.kind == "heads":
            return render_head(identity, expression, cameras, light_dir, res, res, background, **kw)
        return render_object(identity, cameras, light_dir, res, res, background, **kw)

    def __repr__(self) -> str:
        c = self.config
        return f"SyntheticDataset(kind={c.kind!r}, resolution={c.resolution}, length={c.length}, seed={c.seed})"


def make_synthetic(name: str, **overrides) -> SyntheticDataset:
    """A :class:`SyntheticDataset` from a preset name of :data:`SYNTHETIC_DATASETS` with config overrides
    (any :class:`SyntheticConfig` field, e.g. ``resolution=128, seed=3``)."""
    return SyntheticDataset(replace(_resolve(name), **overrides))
