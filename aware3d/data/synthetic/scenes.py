"""Scene builders of the synthetic datasets: parameters -> analytic scenes, and their random draws.

* Heads (:func:`head_scene`, drawn by :func:`sample_head_params`): face-like heads facing **+z** (the
  frontal camera at ``(0, 0, r)`` sees the face): an egg-shaped cranium (two half-ellipsoids joined
  smoothly), neck, nose, ears, eyes (white sclera, coloured iris, black pupil) under upper eyelids,
  eyebrows, lips with a painted mouth opening whose height is the ``mouth_open`` expression, and an
  optional hair cap; inside about ``[-0.075, 0.075] x [-0.095, 0.105] x [-0.1, 0.09]``, the neck
  continuing below.
* Objects (:func:`object_scene`, drawn by :func:`sample_object_params`): toy cars (rounded-box body and
  cabin, four cylindrical wheels with hubcaps, painted windows and lights) with their front toward
  **+x**, roof toward +y, inside ``[-0.3, 0.3]^3``.

Parameters are laid out as :data:`HEAD_IDENTITY_NAMES`, :data:`HEAD_EXPRESSION_NAMES` and
:data:`OBJECT_IDENTITY_NAMES` (world units; RGB albedos in [0, 1]); :func:`render_head` /
:func:`render_object` render *any* parameters from *any* cameras. Every ``sample_*`` function draws a
fixed number of values from the generator it is given, so an item's draws never depend on another's.
"""

from __future__ import annotations

import math
from typing import Callable, Literal, Sequence

import torch
from torch import Tensor

from ...cameras.rays import Cameras, PixelGrid
from .raycast import Primitives, Scene
from .render import RenderResult, render_scene

__all__ = [
    "HEAD_EXPRESSION_NAMES", "HEAD_IDENTITY_NAMES", "HEAD_PRIMITIVE_NAMES", "OBJECT_IDENTITY_NAMES",
    "OBJECT_PRIMITIVE_NAMES", "head_scene", "object_scene", "render_head", "render_object", "sample_background",
    "sample_head_params", "sample_light", "sample_object_params",
]


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

    paint = _mouth_paint(mouth_y, 0.8 * P["mouth_rx"], 0.0006 + 0.004 * mouth_open)
    # The egg's halves join smoothly and the nose shares the skin: one material, no supersampling there.
    materials = tuple(0 if n in ("head_top", "head_bottom", "nose") else i + 1
                      for i, n in enumerate(HEAD_PRIMITIVE_NAMES))
    return Scene([g_main, g_clip], HEAD_PRIMITIVE_NAMES, paint, materials)


def _mouth_paint(mouth_y: Tensor, open_rx: Tensor, open_ry: Tensor) -> Callable:
    """The head's :attr:`Scene.paint`: a dark mouth opening painted (not carved) on the front of the lips,
    the ellipse ``(x / open_rx)^2 + ((y - mouth_y) / open_ry)^2 < 1`` (each (B,), world units); code 1
    inside it."""
    lips_i = HEAD_PRIMITIVE_NAMES.index("lips")
    dark = torch.tensor([0.14, 0.03, 0.04], device=mouth_y.device)

    def paint(prim: Tensor, pts: Tensor, normals: Tensor, albedo: Tensor) -> tuple[Tensor, Tensor]:
        ex = pts[..., 0] / open_rx[:, None]
        eyy = (pts[..., 1] - mouth_y[:, None]) / open_ry[:, None]
        inside = (prim == lips_i) & (ex * ex + eyy * eyy < 1.0)
        return torch.where(inside[..., None], dark.expand_as(albedo), albedo), inside.long()

    return paint


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


def sample_background(mode: Literal["random", "white", "black"], generator: torch.Generator) -> Tensor:
    """A background RGB (3,) in [0, 1]: ``random`` is a grey level plus a small random tint (varied but
    plausible studio-like backdrops), ``white`` / ``black`` are constant. Always draws 4 uniforms, so the
    generator advances the same whatever the mode."""
    u = torch.rand(4, generator=generator)
    if mode == "random":
        return (_uniform(u[0], 0.12, 0.88) + 0.25 * (u[1:4] - 0.5)).clamp(0, 1)
    return torch.ones(3) if mode == "white" else torch.zeros(3)


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

    return Scene(groups, OBJECT_PRIMITIVE_NAMES, _car_paint(body_y0, body_y1, bh, cab_y1, ch, hw))


def _car_paint(body_y0: Tensor, body_y1: Tensor, bh: Tensor, cab_y1: Tensor, ch: Tensor, hw: Tensor) -> Callable:
    """The car's :attr:`Scene.paint`: windows on the cabin (code 1), head lights (2) and tail lights (3) on
    the body, placed from the body's bottom / top / height, the cabin's top / height and the half width
    (each (B,), world units)."""
    dev = body_y0.device
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

    return paint


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

