"""A built-in synthetic morphable face model in the BFM layout: no licence restricts it.

A closed, watertight head (one surface, a sphere topologically) built procedurally and deterministically:

* **Mesh**: rings of latitude (denser over the face) of :data:`NUM_COLUMNS` meridians (denser toward the
  face); toward the poles the rings keep every 2nd, then 4th meridian (2:1 strips), and the last 16-vertex
  rings are closed by zig-zag strips, so triangles stay well shaped and no vertex lies in more than 8
  triangles (Deep3DFaceRecon's ``point_buf`` width). Triangles are counter-clockwise seen from outside.
* **Shape**: an egg-shaped cranium narrowing to the jaw, with eye sockets holding bulging eyeballs, brow
  ridges, a nose (bridge, tip, nostril wings), cheekbones, lips, chin and ears, displaced along the
  cranium's normals; the mouth is a **slit folding into the head** (five rows of latitude: the two lip
  contact rows, the upper and lower inner lips and the back of the mouth), so opening the jaw opens a
  real cavity while the surface stays closed.
* **Frame**: the BFM's (x toward the subject's left, y up, z toward the viewer), model units about the BFM's
  decimetres. The mean shape is recentred to a zero vertex mean as Deep3DFaceRecon recentres the BFM: the
  head then spans x +-0.86 (ears), y -0.93..1.16, z -1.14..0.87, the face landmarks at z 0.4..0.87 (nose tip).
* **Bases** (coefficients ~ N(0, 1) give plausible faces; every field is a smooth function of the position
  on the cranium): identity 80 (first :data:`IDENTITY_NAMES`, then random smooth bumps of decreasing
  size), expression 64 (first :data:`EXPRESSION_NAMES`: the jaw opens, the mouth widens, the brows rise,
  ...; then random smooth local motions), texture 80 (first :data:`TEXTURE_NAMES`, then smooth colour
  fields). Albedo paints skin, lips, the dark mouth inside, sclera/iris/pupil, brows and hair.
* **Landmarks**: 68 vertices in iBUG order at their anatomical places.

Expression 0 (``jaw_open``) is a rotation of the lower face about a hinge in front of the ears plus a
downward glide; negative values press the lips through each other (as extreme BFM codes do), so draw it
skewed to >= 0.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .layout import EXPRESSION_DIM, IDENTITY_DIM, TEXTURE_DIM, FaceModelData, vertex_face_table

__all__ = ["EXPRESSION_NAMES", "IDENTITY_NAMES", "NUM_COLUMNS", "TEXTURE_NAMES", "synthetic_face_model"]

NUM_COLUMNS = 64
"""Meridians of the grid (even, so one passes through the face's midline)."""

IDENTITY_NAMES = ("width", "height", "depth", "jaw_width", "nose_size", "nose_width", "eye_spacing",
                  "chin_forward", "lip_fullness", "cheekbones")
"""Interpretable identity components 0..9 (the rest are random smooth bumps)."""
EXPRESSION_NAMES = ("jaw_open", "mouth_widen", "brow_raise", "smile", "pucker", "frown", "squint",
                    "jaw_sideways", "cheek_puff", "lower_lip_down")
"""Interpretable expression components 0..9 (the rest are random smooth local motions)."""
TEXTURE_NAMES = ("skin_brightness", "skin_redness", "skin_yellowness", "lip_colour", "brow_darkness",
                 "iris_colour", "hair_colour")
"""Interpretable texture components 0..6 (the rest are random smooth colour fields)."""

# Anatomy (model units, before recentring; the cranium's centre at the origin, face toward +z).
_RX, _RY_UP, _RY_LOW, _RZ_FRONT, _RZ_BACK = 0.76, 1.1, 1.0, 0.84, 0.92
_EYE = (0.29, 0.18)           # eye centre |x|, y
_BROW_Y = 0.33
_MOUTH_Y, _MOUTH_W = -0.5, 0.21   # mouth line y, half-width of the opening
_SLIT = 0.008                 # y spacing of the five mouth rows (the closed lips' inner gap is 2x this)
_MOUTH_DEPTH = 0.28           # how deep the mouth folds into the head at its centre
_HINGE = (0.0, -0.05)         # jaw hinge (y, z), in front of the ears
_SEED = 13


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """0 at x <= e0, 1 at x >= e1 (e0 > e1 allowed: decreasing), C1 cubic in between."""
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _gauss(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.exp(-(a * a + b * b))


def _bump(t: np.ndarray) -> np.ndarray:
    """(1 - t^2)^2 inside |t| < 1, else 0: a C1 dome."""
    return np.clip(1 - t * t, 0.0, None) ** 2


# ------------------------------------------------------------------------------------------ the grid

def _columns() -> np.ndarray:
    """(C,) longitudes in radians, from the back (-pi) through the face (0); denser toward the face."""
    s = np.arange(NUM_COLUMNS) * 2.0 / NUM_COLUMNS - 1.0
    c = 0.4  # slope of the warp at the face: 0.4x the uniform spacing there, 2.2x at the back
    return math.pi * (c * s + (1 - c) * s ** 3)


def _latitude(y: np.ndarray) -> np.ndarray:
    return np.arcsin(np.where(y < 0, y / _RY_LOW, y / _RY_UP))


def _rings() -> tuple[np.ndarray, np.ndarray, int]:
    """Latitudes (R,) south to north (poles excluded), each ring's column step (R,), the back-of-mouth ring.

    Rings every ~0.045 in y over the face, with the five mouth rings ``MOUTH_Y + k * SLIT`` (k = -2..2) in
    place of the face rings closest to the mouth line; coarse over the skull's bottom and top, where rings
    keep every 2nd / 4th meridian (step 2 / 4) so the polar triangles stay well shaped.
    """
    south, south_step = np.radians([-84.0, -78.0, -72.0, -66.0]), [4, 2, 1, 1]
    north, north_step = np.radians([48.0, 54.0, 60.0, 66.0, 72.0, 78.0, 84.0]), [1, 1, 1, 1, 2, 2, 4]
    y_face = np.linspace(-0.9, 0.72, 37)
    y_face = y_face[np.abs(y_face - _MOUTH_Y) > 0.03]
    face = np.sort(np.concatenate([y_face, _MOUTH_Y + _SLIT * np.arange(-2, 3)]))
    lat = np.concatenate([south, _latitude(face), north])
    steps = np.array(south_step + [1] * len(face) + north_step)
    return lat, steps, int(np.searchsorted(face, _MOUTH_Y)) + len(south)


def _ring_vertices(lat: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per vertex (ring by ring, columns in order): longitude, latitude and ring index."""
    lon = _columns()
    cols = [np.arange(0, NUM_COLUMNS, s) for s in steps]
    ring = np.concatenate([np.full(len(c), r) for r, c in enumerate(cols)])
    return np.concatenate([lon[c] for c in cols]), lat[ring], ring


def _cranium(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points (..., 3) and outward unit normals of the egg-shaped cranium at (longitude, latitude)."""
    lon, lat = np.broadcast_arrays(lon, lat)
    y = np.where(lat < 0, _RY_LOW, _RY_UP) * np.sin(lat)
    jaw = _smoothstep(-0.15, -0.95, y)              # 0 above the cheeks, 1 at the chin
    rx = _RX * (1 - 0.3 * jaw)
    rz = np.where(np.cos(lon) > 0, _RZ_FRONT * (1 - 0.12 * jaw), _RZ_BACK)
    ry = np.where(lat < 0, _RY_LOW, _RY_UP)
    p = np.stack([rx * np.cos(lat) * np.sin(lon), y, rz * np.cos(lat) * np.cos(lon)], -1)
    n = p / np.stack([rx * rx, ry * ry, rz * rz], -1)
    return p, n / np.linalg.norm(n, axis=-1, keepdims=True)


def _strip(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Triangles between two rings of vertex ids (column order, wrapping): equal rings as split quads, a
    ring twice as fine as the other as a 2:1 strip (each coarse vertex sits above every 2nd fine one)."""
    if len(lower) == len(upper):
        b, c = np.roll(lower, -1), np.roll(upper, -1)
        return np.concatenate([np.stack([lower, b, c], -1), np.stack([lower, c, upper], -1)])
    fine, coarse = (lower, upper) if len(lower) == 2 * len(upper) else (upper, lower)
    if len(fine) != 2 * len(coarse):
        raise ValueError(f"rings of {len(lower)} and {len(upper)} vertices cannot be joined")
    j = np.arange(len(coarse))
    f0, f1, f2 = fine[2 * j], fine[2 * j + 1], fine[(2 * j + 2) % len(fine)]
    c0, c1 = coarse[j], coarse[(j + 1) % len(coarse)]
    t = np.concatenate([np.stack([f0, f1, c0], -1), np.stack([f1, f2, c1], -1), np.stack([f1, c1, c0], -1)])
    return t if fine is lower else t[:, ::-1]  # mirrored (coarse below): reverse to stay counter-clockwise


def _triangles(ring: np.ndarray) -> np.ndarray:
    """(F, 3) triangles joining consecutive rings (``ring`` = each vertex's ring index) and the polar caps."""
    ids = [np.flatnonzero(ring == r) for r in range(int(ring.max()) + 1)]
    strips = [_strip(a, b) for a, b in zip(ids[:-1], ids[1:])]
    return np.concatenate(strips + [_cap(ids[-1], north=True), _cap(ids[0], north=False)]).astype(np.int64)


def _cap(ring: np.ndarray, north: bool) -> np.ndarray:
    """Close a ring of vertices (in column order) by zig-zag strips joining mirror columns c and C - c."""
    C = ring.shape[0]
    tris = []
    lo, hi = 0, C - 1
    while hi - lo >= 2:
        tris.append((ring[lo], ring[lo + 1], ring[hi]))
        lo += 1
        if hi - lo >= 2:
            tris.append((ring[lo], ring[hi - 1], ring[hi]))
            hi -= 1
    t = np.array(tris, dtype=np.int64)
    return t if north else t[:, ::-1].copy()


# ------------------------------------------------------------------------------------------ the shape

def _face_weight(p: np.ndarray) -> np.ndarray:
    """1 over the front of the head, fading to 0 toward the sides (keeps face features off the back)."""
    return _smoothstep(0.15, 0.45, p[..., 2] / _RZ_FRONT)


def _nose(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Outward height of the nose: a bridge rising from between the eyes to the tip, wings beside it."""
    height = 0.05 + 0.22 * _smoothstep(0.15, -0.18, y)
    below_tip = _smoothstep(-0.34, -0.22, y)
    top = _smoothstep(0.36, 0.22, y)
    width = 0.05 + 0.06 * _smoothstep(0.1, -0.2, y)
    wings = 0.06 * _gauss((np.abs(x) - 0.1) / 0.05, (y + 0.26) / 0.05)
    return height * below_tip * top * np.exp(-(x / width) ** 2) + wings


def _features(p: np.ndarray) -> np.ndarray:
    """Outward displacement (...,) of the face features at cranium points p (..., 3)."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    ax = np.abs(x)
    eye_r = np.hypot(ax - _EYE[0], y - _EYE[1])
    h = (-0.09 * _gauss((ax - _EYE[0]) / 0.17, (y - _EYE[1]) / 0.13)    # eye sockets
         + 0.085 * _bump(eye_r / 0.105)                                  # eyeballs
         + 0.06 * _gauss((ax - 0.3) / 0.2, (y - (_BROW_Y + 0.04)) / 0.07)  # brow ridges
         + _nose(x, y)
         + 0.04 * _gauss((ax - 0.43) / 0.14, (y + 0.04) / 0.12)        # cheekbones
         + 0.05 * _gauss(x / 0.2, (y - _MOUTH_Y - 0.045) / 0.035)      # upper lip
         + 0.055 * _gauss(x / 0.19, (y - _MOUTH_Y + 0.055) / 0.04)     # lower lip
         + 0.06 * _gauss(x / 0.17, (y + 0.84) / 0.09))                 # chin
    ears = 0.1 * _gauss(y / 0.16, (z + 0.05) / 0.1) * _smoothstep(0.6, 0.75, ax)
    return h * _face_weight(p) + ears


def _mouth_fold(p: np.ndarray, k: np.ndarray) -> np.ndarray:
    """How far (...,) the mouth rows fold back (-z) into the head; k is the row's offset (-2..2) or 99."""
    depth = _MOUTH_DEPTH * _bump(p[..., 0] / _MOUTH_W) * _face_weight(p)
    profile = np.select([np.abs(k) == 1, k == 0], [0.5, 1.0], 0.0)
    return depth * profile


def _mean_shape(P: np.ndarray, N: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(V, 3) mean shape: cranium points P with normals N, features outward, mouth rings (offset k) folded."""
    mean = P + N * _features(P)[..., None]
    mean[..., 2] -= _mouth_fold(P, k)
    return mean


# ------------------------------------------------------------------------------------ the bases

def _random_bumps(P: np.ndarray, rng: np.random.Generator, n: int, amp0: float, width: tuple[float, float],
                  region: tuple[tuple[float, float], tuple[float, float]], channels: int = 3) -> np.ndarray:
    """(V, channels, n) smooth fields: each a sum of two Gaussian bumps on the cranium with random
    vector values, centres drawn in the (x, y) box ``region`` on the front, amplitudes decaying 4% per field."""
    out = np.zeros((P.shape[0], channels, n))
    for i in range(n):
        for _ in range(2):
            cx, cy = rng.uniform(*region[0]), rng.uniform(*region[1])
            w = rng.uniform(*width)
            v = rng.standard_normal(channels)
            g = _gauss((P[:, 0] - cx) / w, (P[:, 1] - cy) / w) * _smoothstep(-0.3, 0.3, P[:, 2])
            out[:, :, i] += g[:, None] * v[None, :] * (amp0 * 0.96 ** i / math.sqrt(2))
    return out


def _identity_basis(P: np.ndarray, N: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(V, 3, 80) identity basis evaluated on the cranium points P (V, 3) with normals N."""
    x, y, z = P[:, 0], P[:, 1], P[:, 2]
    front = _face_weight(P)[:, None]
    lower = _smoothstep(-0.2, -0.9, y)[:, None]
    zeros = np.zeros_like(x)
    nose = _nose(x, y)[:, None] * front
    eyes = _gauss((np.abs(x) - _EYE[0]) / 0.16, (y - _EYE[1]) / 0.16)
    around_nose = _gauss(x / 0.1, (y + 0.15) / 0.2)[:, None] * front
    named = [
        0.06 * np.stack([x, zeros, zeros], -1),                                   # width
        0.06 * np.stack([zeros, y, zeros], -1),                                   # height
        0.05 * np.stack([zeros, zeros, z], -1),                                   # depth
        0.08 * np.stack([x, zeros, zeros], -1) * lower,                           # jaw width
        0.25 * N * nose,                                                          # nose size
        0.3 * np.stack([x, zeros, zeros], -1) * around_nose,                      # nose width
        0.05 * np.stack([np.tanh(x / 0.05) * eyes, zeros, zeros], -1) * front,    # eye spacing
        0.06 * np.stack([zeros, zeros, _gauss(x / 0.25, (y + 0.82) / 0.15)], -1),  # chin forward
        0.03 * N * (_gauss(x / 0.2, (y - _MOUTH_Y) / 0.08) * front[:, 0])[:, None],  # lip fullness
        0.04 * N * (_gauss((np.abs(x) - 0.43) / 0.15, (y + 0.04) / 0.13) * front[:, 0])[:, None],  # cheekbones
    ]
    rest = _random_bumps(P, rng, IDENTITY_DIM - len(named), 0.04, (0.3, 0.6), ((-0.8, 0.8), (-1.0, 1.0)))
    return np.concatenate([np.stack(named, -1), rest], -1)


def _jaw_weight(P: np.ndarray) -> np.ndarray:
    """(V,) how much each point follows the jaw: sharp across the mouth slit, gradual over the cheeks."""
    x, y, z = P[:, 0], P[:, 1], P[:, 2]
    spread = _smoothstep(0.6 * _MOUTH_W, 1.5 * _MOUTH_W, np.abs(x))
    half = _SLIT + 0.35 * spread
    centre = _MOUTH_Y - 0.7 * (half - _SLIT)
    return _smoothstep(centre + half, centre - half, y) * _smoothstep(-0.35, -0.05, z)


def _expression_basis(P: np.ndarray, N: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(V, 3, 64) expression basis on the cranium points P (V, 3) with normals N."""
    x, y, z = P[:, 0], P[:, 1], P[:, 2]
    ax, zeros, front = np.abs(x), np.zeros_like(x), _face_weight(P)
    jaw = _jaw_weight(P)
    ry, rz = y - _HINGE[0], z - _HINGE[1]
    mouth_y = np.exp(-((y - _MOUTH_Y) / 0.1) ** 2) * front
    corners = _gauss((ax - _MOUTH_W) / 0.1, (y - _MOUTH_Y) / 0.1) * front
    brows = _gauss((ax - 0.3) / 0.22, (y - _BROW_Y - 0.05) / 0.12) * front
    named = [
        0.12 * np.stack([zeros, -rz - 0.35, ry + 0.2], -1) * jaw[:, None],                    # jaw open
        0.05 * np.stack([x / _MOUTH_W * np.exp(-0.5 * (x / _MOUTH_W) ** 2), zeros, zeros], -1) * mouth_y[:, None],
        0.05 * np.stack([zeros, brows, zeros], -1),                                          # brow raise
        0.04 * np.stack([zeros, corners, -0.5 * corners], -1),                                # smile
        0.04 * np.stack([-0.5 * x / _MOUTH_W, zeros, np.ones_like(x)], -1)
        * (np.exp(-(x / 0.2) ** 2) * mouth_y)[:, None],                                      # pucker
        0.03 * np.stack([-0.5 * np.tanh(x / 0.04), -np.ones_like(x), zeros], -1)
        * (_gauss((ax - 0.15) / 0.1, (y - _BROW_Y) / 0.08) * front)[:, None],                # frown
        0.02 * np.stack([zeros, -_gauss((ax - _EYE[0]) / 0.12, (y - _EYE[1] - 0.1) / 0.05) * front, zeros], -1),
        0.06 * np.stack([jaw, zeros, zeros], -1),                                            # jaw sideways
        0.04 * N * (_gauss((ax - 0.4) / 0.14, (y + 0.3) / 0.14) * front)[:, None],           # cheek puff
        0.02 * np.stack([zeros, -np.ones_like(x), zeros], -1)
        * (np.exp(-(x / 0.18) ** 2) * jaw * np.exp(-((y - _MOUTH_Y + 0.06) / 0.06) ** 2))[:, None],
    ]
    rest = _random_bumps(P, rng, EXPRESSION_DIM - len(named), 0.025, (0.12, 0.25), ((-0.5, 0.5), (-0.9, 0.45)))
    return np.concatenate([np.stack(named, -1), rest], -1)


# ------------------------------------------------------------------------------------------ albedo

_SKIN, _LIPS, _MOUTH_INSIDE = (0.80, 0.62, 0.52), (0.70, 0.36, 0.36), (0.30, 0.09, 0.09)
_SCLERA, _IRIS, _PUPIL = (0.92, 0.90, 0.88), (0.30, 0.20, 0.12), (0.04, 0.03, 0.03)
_BROWS, _HAIR = (0.24, 0.16, 0.11), (0.20, 0.13, 0.08)


def _brow_line(ax: np.ndarray) -> np.ndarray:
    """y of the eyebrows' centre line at |x| (arched)."""
    return _BROW_Y + 0.04 * _bump((ax - 0.3) / 0.22)


def _regions(P: np.ndarray, k: np.ndarray) -> dict[str, np.ndarray]:
    """(V,) weights in [0, 1] of the painted regions at cranium points P (V, 3), mouth-row offsets k (V,)."""
    x, y, z = P[:, 0], P[:, 1], P[:, 2]
    ax, front = np.abs(x), _face_weight(P)
    eye_r = np.hypot(ax - _EYE[0], y - _EYE[1])
    lips = np.maximum(_gauss(x / 0.17, (y - _MOUTH_Y - 0.035) / 0.03), _gauss(x / 0.16, (y - _MOUTH_Y + 0.045) / 0.035))
    brow = np.exp(-((ax - 0.31) / 0.15) ** 4 - ((y - _brow_line(ax)) / 0.03) ** 2)
    hairline = 0.68 - 0.95 * _smoothstep(0.4, -0.6, z / _RZ_FRONT)
    return {
        "lips": _smoothstep(0.35, 0.6, lips) * front,
        "mouth_inside": (np.abs(k) <= 1) * _smoothstep(0.0, 0.2, _bump(x / _MOUTH_W)) * front,
        "sclera": _smoothstep(0.1, 0.085, eye_r) * front,
        "iris": _smoothstep(0.065, 0.05, eye_r) * front,
        "pupil": _smoothstep(0.035, 0.02, eye_r) * front,
        "brows": _smoothstep(0.3, 0.6, brow) * front,
        "hair": _smoothstep(-0.04, 0.06, y - hairline),
    }


_PAINT_ORDER = ("hair", "brows", "lips", "mouth_inside", "sclera", "iris", "pupil")
_PAINT = {"hair": _HAIR, "brows": _BROWS, "lips": _LIPS, "mouth_inside": _MOUTH_INSIDE, "sclera": _SCLERA,
          "iris": _IRIS, "pupil": _PUPIL}


def _visible(w: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """How much of each region shows (V,) when painted over the skin in :data:`_PAINT_ORDER` (later on top);
    "skin" is what is left. The weights sum to 1."""
    vis, cover = {}, np.ones_like(w["hair"])
    for name in reversed(_PAINT_ORDER):
        vis[name] = w[name] * cover
        cover = cover * (1 - w[name])
    vis["skin"] = cover
    return vis


def _mean_albedo(vis: dict[str, np.ndarray]) -> np.ndarray:
    """(V, 3) RGB: the visible regions' colours."""
    return vis["skin"][:, None] * np.array(_SKIN) + sum(vis[n][:, None] * np.array(_PAINT[n]) for n in _PAINT_ORDER)


def _albedo_basis(P: np.ndarray, vis: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """(V, 3, 80) albedo basis in [0, 1] units; each named component recolours one visible region."""
    skin = vis["skin"]
    named = [(skin, np.array(_SKIN) * 0.12), (skin, (0.06, -0.015, -0.02)), (skin, (0.03, 0.025, -0.045)),
             (vis["lips"], (0.08, -0.03, -0.01)), (vis["brows"], (-0.08, -0.07, -0.06)),
             (vis["iris"], (-0.08, 0.03, 0.12)), (vis["hair"], (0.08, 0.06, 0.03))]
    named_fields = np.stack([m[:, None] * np.asarray(c)[None, :] for m, c in named], -1)
    rest = _random_bumps(P, rng, TEXTURE_DIM - len(named), 0.03, (0.2, 0.5), ((-0.8, 0.8), (-1.0, 1.0)))
    return np.concatenate([named_fields, rest * skin[:, None, None]], -1)


# --------------------------------------------------------------------------------------- landmarks

def _face_landmark_targets() -> list[tuple[int | None, float, float]]:
    """Landmarks 17..67 as (mouth ring offset or None for any face vertex, x, y) on the cranium, iBUG order
    (model -x = the subject's right = image left)."""
    brow_x = [-0.48, -0.41, -0.33, -0.25, -0.17]
    brows = [(None, bx, float(_brow_line(np.abs(np.array(bx))))) for bx in brow_x + [-b for b in brow_x[::-1]]]
    nose = [(None, 0.0, 0.2), (None, 0.0, 0.08), (None, 0.0, -0.04), (None, 0.0, -0.17), (None, -0.1, -0.27),
            (None, -0.05, -0.3), (None, 0.0, -0.31), (None, 0.05, -0.3), (None, 0.1, -0.27)]
    ex, ey, hw, lid = _EYE[0], _EYE[1], 0.1, 0.045
    eye = [(-hw, 0.0), (-0.35 * hw, lid), (0.35 * hw, lid), (hw, 0.0), (0.35 * hw, -lid), (-0.35 * hw, -lid)]
    eyes = [(None, -ex + dx, ey + dy) for dx, dy in eye] + [(None, ex - dx, ey + dy) for dx, dy in
                                                             [eye[3], eye[2], eye[1], eye[0], eye[5], eye[4]]]
    m, W = _MOUTH_Y, _MOUTH_W
    outer = [(0, -W - 0.02, m), (None, -0.14, m + 0.05), (None, -0.06, m + 0.075), (None, 0.0, m + 0.07),
             (None, 0.06, m + 0.075), (None, 0.14, m + 0.05), (0, W + 0.02, m), (None, 0.14, m - 0.065),
             (None, 0.07, m - 0.09), (None, 0.0, m - 0.095), (None, -0.07, m - 0.09), (None, -0.14, m - 0.065)]
    inner = [(0, -0.85 * W, m), (2, -0.1, m), (2, 0.0, m), (2, 0.1, m), (0, 0.85 * W, m), (-2, 0.1, m),
             (-2, 0.0, m), (-2, -0.1, m)]
    return brows + nose + eyes + outer + inner


def _landmarks(P: np.ndarray, k: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """(68,) vertex indices nearest to the targets, given each vertex's cranium point P (V, 3), mouth ring
    offset k (V,) and longitude (V,). The jaw contour 0..16 runs at longitudes -78..78 deg from ear level
    (y 0.12) down around the chin (y -0.88); the rest are nearest in (x, y) on the front."""
    front = P[:, 2] > 0.2
    out = []
    for s in np.linspace(-1.0, 1.0, 17):
        height = -0.88 + 1.0 * abs(s) ** 1.6
        d = ((lon - s * math.radians(78.0)) / 0.05) ** 2 + ((P[:, 1] - height) / 0.04) ** 2
        out.append(int(np.argmin(np.where(k == 99, d, np.inf))))
    for ring, tx, ty in _face_landmark_targets():
        allowed = front & ((k == 99) if ring is None else (k == ring))
        out.append(int(np.argmin(np.where(allowed, (P[:, 0] - tx) ** 2 + (P[:, 1] - ty) ** 2, np.inf))))
    return np.array(out, dtype=np.int64)


# ------------------------------------------------------------------------------------------ assembly

def synthetic_face_model() -> FaceModelData:
    """The built-in synthetic face model (deterministic: the same tensors on every call)."""
    lat, steps, mouth_ring = _rings()
    lon, lat, ring = _ring_vertices(lat, steps)
    P, N = _cranium(lon, lat)
    k = np.where(np.abs(ring - mouth_ring) <= 2, ring - mouth_ring, 99)
    mean = _mean_shape(P, N, k)
    rng = np.random.default_rng(_SEED)
    identity = _identity_basis(P, N, rng)
    expression = _expression_basis(P, N, rng)
    visible = _visible(_regions(P, k))
    albedo_basis = _albedo_basis(P, visible, rng)
    landmarks = _landmarks(P, k, lon)
    triangles = torch.from_numpy(_triangles(ring))
    mean = mean - mean.mean(axis=0, keepdims=True)  # recentred as Deep3DFaceRecon recentres the BFM

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))

    return FaceModelData(
        mean_shape=t(mean), identity_basis=t(identity), expression_basis=t(expression),
        mean_albedo=t(_mean_albedo(visible)), albedo_basis=t(albedo_basis), triangles=triangles,
        landmarks=torch.from_numpy(landmarks), name="synthetic",
        vertex_faces=vertex_face_table(triangles, P.shape[0]))
