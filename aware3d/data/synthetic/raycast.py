"""Exact ray casting of analytic scenes: unions of convex primitives (the synthetic datasets' geometry).

A :class:`Scene` is the union of groups of :class:`Primitives`, each solid the intersection of an
axis-aligned quadric ``sum_k ((p_k - c_k) a_k)^2 <= 1`` (an ellipsoid; an elliptic cylinder where some
``a_k = 0``), an optional axis-aligned box and an optional half-space. :meth:`Scene.intersect` returns
the nearest entry point over primitives (:class:`Hits`): the visible surface, since the camera is outside
every solid; its normal is the analytic outward normal of the constraint that is active there, so normals
always face the camera. Rays are traced in tiles (8x8 pixels when :func:`~.render.render_scene` orders
them) that test only the primitives whose bounding sphere meets the tile's cone of rays (conservative, so
the result equals testing every primitive), vectorised over tiles of the whole batch.

Bit stability: the per-(ray, primitive) arithmetic is elementwise in a fixed order (no batched matmuls
or reductions whose blocking depends on the batch), so a ray's hit is bit-identical whatever the batch,
tiling or culling around it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["Hits", "Primitives", "Scene"]


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


def _tile_cones(rays_d: Tensor, G: int) -> tuple[Tensor, Tensor, Tensor]:
    """Rays (B, N, 3) cut into T = ceil(N / G) tiles of G: (directions (B*T, G, 3), unit cone axes
    (B, T, 3), cosines of the cones' half-angles (B, T)). The last tile is padded with copies of the last
    ray, whose results the caller drops."""
    B, N, _ = rays_d.shape
    T = -(-N // G)
    d = torch.cat([rays_d, rays_d[:, -1:].expand(B, T * G - N, 3)], 1) if T * G > N else rays_d
    axis = d.reshape(B, T, G, 3).sum(2)
    axis = axis / torch.linalg.norm(axis, dim=-1, keepdim=True).clamp_min(1e-12)
    cos_half = (d.reshape(B, T, G, 3) * axis[:, :, None]).sum(-1).amin(-1)
    return d.reshape(B * T, G, 3), axis, cos_half


@dataclass
class _Best:
    """Nearest hit so far of every tiled ray, (B*T, G) each (see :class:`Hits`)."""

    t: Tensor
    prim: Tensor
    normal: Tensor
    albedo: Tensor

    @staticmethod
    def empty(n: int, G: int, device) -> "_Best":
        return _Best(torch.full((n, G), math.inf, device=device),
                     torch.full((n, G), -1, dtype=torch.long, device=device),
                     torch.zeros(n, G, 3, device=device), torch.zeros(n, G, 3, device=device))

    def update(self, tiles: Tensor, t: Tensor, prim: Tensor, normal: Tensor, albedo: Tensor) -> None:
        """Keep the new hits of rows ``tiles`` that are strictly nearer (the earlier group wins exact ties,
        whatever the chunking)."""
        bt = self.t[tiles]
        better = t < bt
        self.t[tiles] = torch.where(better, t, bt)
        self.prim[tiles] = torch.where(better, prim, self.prim[tiles])
        self.normal[tiles] = torch.where(better[..., None], normal, self.normal[tiles])
        self.albedo[tiles] = torch.where(better[..., None], albedo, self.albedo[tiles])


def _cast_group(g: Primitives, o: Tensor, d_tiles: Tensor, axis: Tensor, cos_half: Tensor, chunk: int,
                offset: int, best: _Best) -> None:
    """Intersect tiles of rays (:func:`_tile_cones`; camera centres ``o`` (B, 3)) with the candidate solids
    of one group (global indices from ``offset``), updating ``best``."""
    B, T = cos_half.shape
    G, P = d_tiles.shape[1], len(g)
    cand = _candidates(g, o, axis, cos_half).reshape(B * T, P)
    counts = cand.sum(-1)
    if int(counts.max()) == 0:
        return
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
            best.update(tiles, t, idx + offset, n, a)


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
        d_tiles, axis, cos_half = _tile_cones(rays_d, G)
        best = _Best.empty(d_tiles.shape[0], G, d_tiles.device)
        offset = 0
        for g in self.groups:
            _cast_group(g, o, d_tiles, axis, cos_half, chunk, offset, best)
            offset += len(g)

        def untile(x: Tensor) -> Tensor:
            return x.reshape(B, -1, *x.shape[2:])[:, :N]

        return Hits(untile(best.t), untile(best.prim), untile(best.normal), untile(best.albedo))

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

