"""Per-sample transformation matrices of the augmentation pipeline (pure functions, batched).

Geometry works in homogeneous 2-D *pixel* coordinates centred on the image: ``(x, y, 1)`` with x to the right,
y down, the image centre at (0, 0) and one unit per pixel. The pipeline builds the *inverse* transform
``G_inv`` (B, 3, 3): ``G_inv @ output_pixel = input_pixel``, i.e. where each output pixel samples the input.
Each ``*_inverse`` builder below returns the inverse of one forward transform, and the pipeline composes them
right to left (``G_inv = G_inv @ T_inv``) in the official order, so the first transform drawn acts last on the
output coordinates.

Colour works in homogeneous RGB: ``C`` (B, 4, 4) with ``C @ (r, g, b, 1) = (r', g', b', 1)``; images are in
[-1, 1], so "no change" is the identity and the luma axis passes through 0 (mid grey).

Every builder takes (B,) float tensors (angles in radians) and returns float tensors on their device.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

LUMA_AXIS = (1.0 / math.sqrt(3.0),) * 3
"""Unit vector of the grey axis in RGB (the colour transforms' rotation / reflection axis)."""


def _stack_rows(rows: list[list[Tensor | float]], like: Tensor) -> Tensor:
    """(B, n, m) from n rows of m entries, each a (B,) tensor or a Python number broadcast to (B,)."""
    flat = [e if isinstance(e, Tensor) else torch.full_like(like, float(e)) for row in rows for e in row]
    return torch.stack(flat, dim=-1).reshape(like.shape + (len(rows), len(rows[0])))


def translate_2d(tx: Tensor, ty: Tensor) -> Tensor:
    """(B, 3, 3) translation by (tx, ty) pixels."""
    return _stack_rows([[1, 0, tx], [0, 1, ty], [0, 0, 1]], tx)


def scale_2d(sx: Tensor, sy: Tensor) -> Tensor:
    """(B, 3, 3) scaling by sx along x and sy along y about the centre."""
    return _stack_rows([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], sx)


def rotate_2d(theta: Tensor) -> Tensor:
    """(B, 3, 3) rotation by ``theta`` radians about the centre: (1, 0) -> (cos, sin), i.e. clockwise on screen
    (y points down)."""
    c, s = torch.cos(theta), torch.sin(theta)
    return _stack_rows([[c, -s, 0], [s, c, 0], [0, 0, 1]], theta)


def rotate90_2d(quarter_turns: Tensor) -> Tensor:
    """(B, 3, 3) rotation by ``quarter_turns`` x 90 degrees (integers 0..3, as floats), with exact 0 / +-1 entries
    (``rotate_2d(k * pi / 2)`` leaves ~1e-16 residues that would blur a pure pixel permutation)."""
    k = quarter_turns.round().long() % 4
    cos = torch.tensor([1.0, 0.0, -1.0, 0.0], device=k.device, dtype=quarter_turns.dtype)[k]
    sin = torch.tensor([0.0, 1.0, 0.0, -1.0], device=k.device, dtype=quarter_turns.dtype)[k]
    return _stack_rows([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]], quarter_turns)


# -- inverses of the geometric transforms, as the pipeline composes them -------------------------------------
def xflip_inverse(flip: Tensor) -> Tensor:
    """Inverse of mirroring x where ``flip`` is 1 (identity where 0); a mirror is its own inverse."""
    return scale_2d(1 - 2 * flip, torch.ones_like(flip))


def rotate90_inverse(quarter_turns: Tensor) -> Tensor:
    """Inverse of rotating the image content by ``quarter_turns`` x 90 degrees (:func:`rotate90_2d`)."""
    return rotate90_2d(-quarter_turns)


def translate_inverse(tx: Tensor, ty: Tensor) -> Tensor:
    """Inverse of shifting the image content by (tx, ty) pixels."""
    return translate_2d(-tx, -ty)


def scale_inverse(sx: Tensor, sy: Tensor) -> Tensor:
    """Inverse of scaling the image content by (sx, sy)."""
    return scale_2d(1 / sx, 1 / sy)


def rotate_inverse(theta: Tensor) -> Tensor:
    """Inverse of rotating the image content by ``theta`` radians (:func:`rotate_2d`)."""
    return rotate_2d(-theta)


# -- colour ----------------------------------------------------------------------------------------------------
def _luma(like: Tensor) -> Tensor:
    """(4,) homogeneous luma axis (the last entry 0: a direction, not a point)."""
    return torch.tensor([*LUMA_AXIS, 0.0], device=like.device, dtype=like.dtype)


def brightness_matrix(b: Tensor) -> Tensor:
    """(B, 4, 4) adding ``b`` to every channel."""
    rows = [[1, 0, 0, b], [0, 1, 0, b], [0, 0, 1, b], [0, 0, 0, 1]]
    return _stack_rows(rows, b)


def contrast_matrix(c: Tensor) -> Tensor:
    """(B, 4, 4) multiplying every channel by ``c`` (about 0, mid grey for images in [-1, 1])."""
    rows = [[c, 0, 0, 0], [0, c, 0, 0], [0, 0, c, 0], [0, 0, 0, 1]]
    return _stack_rows(rows, c)


def luma_flip_matrix(flip: Tensor) -> Tensor:
    """(B, 4, 4) Householder reflection of the colour along the luma axis where ``flip`` is 1 (invert the
    brightness, keep the hue), identity where 0."""
    v = _luma(flip)
    eye = torch.eye(4, device=flip.device, dtype=flip.dtype)
    return eye - 2 * torch.outer(v, v) * flip[:, None, None]


def hue_rotation_matrix(theta: Tensor) -> Tensor:
    """(B, 4, 4) rotation of the colour by ``theta`` radians about the luma axis (Rodrigues' formula)."""
    vx, vy, vz = LUMA_AXIS
    s, c = torch.sin(theta), torch.cos(theta)
    cc = 1 - c
    rows = [[vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
            [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
            [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
            [0, 0, 0, 1]]
    return _stack_rows(rows, theta)


def saturation_matrix(s: Tensor) -> Tensor:
    """(B, 4, 4) scaling the colour's distance from the luma axis by ``s`` (0: grey, 1: unchanged)."""
    v = _luma(s)
    vv = torch.outer(v, v)
    rgb = torch.diag(torch.tensor([1.0, 1.0, 1.0, 0.0], device=s.device, dtype=s.dtype))
    w = torch.diag(torch.tensor([0.0, 0.0, 0.0, 1.0], device=s.device, dtype=s.dtype))
    return vv + (rgb - vv) * s[:, None, None] + w


__all__ = [
    "LUMA_AXIS", "brightness_matrix", "contrast_matrix", "hue_rotation_matrix", "luma_flip_matrix", "rotate90_2d",
    "rotate90_inverse", "rotate_2d", "rotate_inverse", "saturation_matrix", "scale_2d", "scale_inverse",
    "translate_2d", "translate_inverse", "xflip_inverse",
]
