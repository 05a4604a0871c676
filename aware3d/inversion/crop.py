"""Reading the picture to invert and framing it as the model's training images (``aware3d invert --crop``).

Any size, aspect and Pillow mode is read (:func:`read_picture`: greyscale, palette, 16-bit and transparent
pictures included; transparent pixels are composited over mid grey); a file Pillow cannot decode is an
:class:`ImageReadError` naming it. The picture then becomes a square target of the model's image size:

* ``centre``: the largest centred square (a square picture is only resized);
* ``none``: the whole picture, squashed to a square;
* ``auto``: the foreground is centred and scaled to the *training framing*. The foreground is the picture's
  alpha (> 0.5) where it has one, else the pixels whose colour differs from the background by more than
  ``--crop-threshold`` (0.08 on [0, 1], max over channels; the background colour is the per-channel median of the
  picture's border; specks are removed by a 3x3 opening and the largest connected region is kept). Its bounding
  box is mapped onto the box the same detector finds on the model's own render of its mean latent from its
  frontal camera (:func:`framing_of` of :func:`aware3d.inversion.invert.mean_render`): the larger sides of the two
  boxes match and their centres coincide. So a head photographed small and off-centre is cut out as the model
  saw heads in training. ``--crop-extent`` / ``--crop-centre`` replace the measured framing (fractions of the
  image side). Parts of the crop outside the picture are filled with its background colour.
* ``landmarks``: face alignment. A :class:`LandmarkSource` (e.g. the face-coefficient regressor of
  :mod:`aware3d.faces.regressor`, through :class:`ReconstructorLandmarks`) finds landmarks on the picture and on
  the model's mean render; the similarity transform (scale, rotation, shift; least squares over every landmark)
  that maps the picture's onto the render's is applied.

Crops are resampled with antialiasing (bilinear), so a large photo is not aliased down to 32 px.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ..errors import UserError

CropMode = Literal["centre", "none", "auto", "landmarks"]
TRANSPARENT_FILL = 0.0
"""Value in [-1, 1] (mid grey) that transparent pixels are composited over."""


class ImageReadError(UserError, ValueError):
    """The picture to invert is missing or cannot be decoded; the message names the file."""


class FramingError(UserError, ValueError):
    """``--crop auto`` found no foreground (in the picture or on the model's render); the message says which."""


@dataclass(frozen=True)
class Picture:
    """A decoded picture."""

    rgb: Tensor
    """(3, H, W) in [-1, 1]."""
    alpha: Tensor | None
    """(H, W) opacity in [0, 1] when the file has an alpha channel, else None."""
    path: str
    """Where it was read from (for messages)."""


@dataclass(frozen=True)
class Framing:
    """Where the foreground sits in a square image: its box's centre and larger side, fractions of the side."""

    centre_x: float
    centre_y: float
    extent: float


@dataclass(frozen=True)
class Crop:
    """The target and how it was cut: a square of side ``side`` at (left, top), input pixels (may leave the picture)."""

    target: Tensor
    """(1, 3, S, S) in [-1, 1]."""
    mode: str
    box: tuple[float, float, float]
    """(left, top, side) in the picture's pixels; for ``landmarks`` the similarity's box (its rotation aside)."""


class LandmarkSource(Protocol):
    """Anything that finds face landmarks: images (B, 3, H, W) in [-1, 1] -> (B, K, 2) pixel xy (x right, y down,
    pixel (row i, column j) centred at (j + 0.5, i + 0.5)), the same K points in the same order for every image."""

    def landmarks(self, images: Tensor) -> Tensor: ...


class ReconstructorLandmarks:
    """A :class:`LandmarkSource` from a face reconstructor (``reconstruct(images).landmarks``, e.g.
    :class:`aware3d.faces.regressor.FaceCoefficientRegressor`'s 68 iBUG points)."""

    def __init__(self, reconstructor, name: str = "the face reconstructor"):
        self.reconstructor, self.name = reconstructor, name

    @torch.no_grad()
    def landmarks(self, images: Tensor) -> Tensor:
        found = self.reconstructor.reconstruct(images).landmarks
        if found is None:
            raise ValueError(f"{self.name} predicts no landmarks, so --crop landmarks cannot use it; pass a face "
                             "regressor checkpoint (aware3d.faces.regressor) or use --crop auto")
        return found


def load_landmark_source(path: str | os.PathLike, device: str | torch.device = "cpu") -> LandmarkSource:
    """The landmark source in a face-regressor checkpoint folder (:func:`aware3d.faces.regressor.load_regressor`)."""
    from ..faces.regressor import load_regressor

    return ReconstructorLandmarks(load_regressor(path, device=device).eval(), f"the face regressor {str(path)!r}")


# ----------------------------------------------------------------------------------------------- reading
def _to_rgba(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGBA, 16-bit and float greyscale scaled to their range instead of clipped."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        if img.mode == "F":
            peak = max(float(arr.max()), 1e-8)
        img = Image.fromarray(np.round(np.clip(arr / peak, 0, 1) * 255).astype(np.uint8), mode="L")
    return img.convert("RGBA")


def read_picture(path: str | os.PathLike) -> Picture:
    """Decode a picture file of any size, aspect and mode; :class:`ImageReadError` naming it if that fails."""
    p = Path(path)
    if not p.is_file():
        raise ImageReadError(f"image {str(p)!r} not found; pass the path of a PNG, JPEG, WebP or BMP picture")
    try:
        with Image.open(p) as img:
            img.load()
            has_alpha = img.mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in img.info
            rgba = _to_rgba(img)
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, EOFError, zlib errors...
        raise ImageReadError(f"cannot read image {str(p)!r} ({type(e).__name__}: {e}); pass a PNG, JPEG, WebP or "
                             "BMP picture") from None
    arr = torch.from_numpy(np.asarray(rgba, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255
    alpha = arr[3] if has_alpha else None
    rgb = arr[:3] * 2 - 1
    if alpha is not None:
        rgb = rgb * alpha + TRANSPARENT_FILL * (1 - alpha)
    return Picture(rgb, alpha, str(p))


# --------------------------------------------------------------------------------------------- foreground
def border_colour(rgb: Tensor) -> Tensor:
    """(3,) per-channel median of the picture's border (a frame 1/50 of the smaller side wide, at least 1 px)."""
    _, H, W = rgb.shape
    k = max(1, min(H, W) // 50)
    frame = torch.cat([rgb[:, :k].reshape(3, -1), rgb[:, -k:].reshape(3, -1), rgb[:, :, :k].reshape(3, -1),
                       rgb[:, :, -k:].reshape(3, -1)], 1)
    return frame.median(dim=1).values


def foreground_mask(rgb: Tensor, alpha: Tensor | None = None, threshold: float = 0.08) -> Tensor:
    """(H, W) bool foreground of a (3, H, W) [-1, 1] picture: alpha > 0.5, else the colour test (see the module),
    cleaned by a 3x3 opening and reduced to its largest connected region (empty if nothing passes)."""
    from scipy import ndimage

    if alpha is not None:
        mask = (alpha > 0.5).numpy()
    else:
        distance = ((rgb - border_colour(rgb)[:, None, None]).abs() / 2).amax(0)
        mask = (distance > threshold).numpy()
    mask = ndimage.binary_opening(mask, structure=np.ones((3, 3), bool))
    labels, count = ndimage.label(mask)
    if count == 0:
        return torch.zeros(mask.shape, dtype=torch.bool)
    sizes = ndimage.sum(mask, labels, index=np.arange(1, count + 1))
    return torch.from_numpy(labels == 1 + int(np.argmax(sizes)))


def foreground_box(mask: Tensor) -> tuple[float, float, float, float] | None:
    """(centre x, centre y, width, height) in pixels of a mask's bounding box (pixel edges), or None if empty."""
    rows, cols = torch.nonzero(mask.any(1)).flatten(), torch.nonzero(mask.any(0)).flatten()
    if len(rows) == 0:
        return None
    top, bottom, left, right = float(rows[0]), float(rows[-1]) + 1, float(cols[0]), float(cols[-1]) + 1
    return (left + right) / 2, (top + bottom) / 2, right - left, bottom - top


def framing_of(rgb: Tensor, alpha: Tensor | None, threshold: float, what: str) -> Framing:
    """The :class:`Framing` of a square picture's foreground; :class:`FramingError` if none is found or it fills
    the whole picture (then nothing tells the subject from its background)."""
    side = rgb.shape[-1]
    box = foreground_box(foreground_mask(rgb, alpha, threshold))
    if box is None or (box[2] >= side and box[3] >= side):
        raise FramingError(f"--crop auto found no foreground in {what} (every pixel is within --crop-threshold "
                           f"{threshold} of the border's colour, or none is); pass --crop-extent (and --crop-centre) "
                           "or use --crop centre")
    return Framing(box[0] / side, box[1] / side, max(box[2], box[3]) / side)


# ---------------------------------------------------------------------------------------------- cropping
def crop_square(rgb: Tensor, left: float, top: float, side: float, size: int, fill: Tensor) -> Tensor:
    """(1, 3, size, size): the square of ``side`` pixels at (left, top) (whole-pixel box, may leave the picture,
    filled with ``fill`` (3,) there), resized with antialiasing."""
    _, H, W = rgb.shape
    x0, y0 = int(math.floor(left + 0.5)), int(math.floor(top + 0.5))
    n = max(1, int(round(side)))
    canvas = fill.reshape(3, 1, 1).expand(3, n, n).clone()
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(W, x0 + n), min(H, y0 + n)
    if sx1 > sx0 and sy1 > sy0:
        canvas[:, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = rgb[:, sy0:sy1, sx0:sx1]
    return F.interpolate(canvas[None], size=(size, size), mode="bilinear", align_corners=False,
                         antialias=n > size).clamp(-1, 1)


def centre_crop(picture: Picture, size: int) -> Crop:
    _, H, W = picture.rgb.shape
    side = min(H, W)
    left, top = (W - side) / 2, (H - side) / 2
    return Crop(crop_square(picture.rgb, left, top, side, size, torch.zeros(3)), "centre", (left, top, side))


def squash(picture: Picture, size: int) -> Crop:
    _, H, W = picture.rgb.shape
    target = F.interpolate(picture.rgb[None], size=(size, size), mode="bilinear", align_corners=False,
                           antialias=max(H, W) > size).clamp(-1, 1)
    return Crop(target, "none", (0.0, 0.0, float(max(H, W))))


def auto_crop(picture: Picture, size: int, framing: Framing, threshold: float) -> Crop:
    """The crop that puts the picture's foreground where ``framing`` says (see the module)."""
    box = foreground_box(foreground_mask(picture.rgb, picture.alpha, threshold))
    if box is None:
        raise FramingError(f"--crop auto found no foreground in {picture.path!r} (no pixel differs from the border's "
                           f"colour by more than --crop-threshold {threshold}); use --crop centre")
    cx, cy, w, h = box
    side = max(w, h) / framing.extent
    left, top = cx - framing.centre_x * side, cy - framing.centre_y * side
    fill = border_colour(picture.rgb) if picture.alpha is None else torch.full((3,), TRANSPARENT_FILL)
    return Crop(crop_square(picture.rgb, left, top, side, size, fill), "auto", (left, top, side))


# ---------------------------------------------------------------------------------------------- landmarks
def similarity_transform(source: Tensor, target: Tensor) -> tuple[float, Tensor, Tensor]:
    """(scale s, rotation R (2, 2), shift t (2,)) minimising ``sum |s R source_k + t - target_k|^2`` over (K, 2)
    point sets (Umeyama's least-squares similarity, no reflection)."""
    src, dst = source.double(), target.double()
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    U, S, Vh = torch.linalg.svd(b.T @ a / len(src))
    d = torch.ones(2, dtype=torch.float64)
    if torch.det(U @ Vh) < 0:
        d[1] = -1
    R = U @ torch.diag(d) @ Vh
    var = a.square().sum(1).mean()
    s = float((S * d).sum() / var)
    return s, R, mu_d - s * R @ mu_s


def landmark_crop(picture: Picture, size: int, source_points: Tensor, template: Tensor) -> Crop:
    """The picture warped so that its landmarks ``source_points`` (K, 2) land on ``template`` (K, 2) (pixel xy of a
    size x size image), by the least-squares similarity; outside the picture: its border colour."""
    s, R, t = similarity_transform(source_points, template)
    # Output pixel centre p maps to the picture point R^T (p - t) / s.
    coords = (torch.arange(size, dtype=torch.float64) + 0.5)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    out_pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    in_pts = (out_pts - t) @ R / s
    rgb, shrink = picture.rgb, 1.0 / s
    if shrink > 1.5:  # antialias: shrink the picture first so the bilinear lookup is at about the output's scale
        factor = int(shrink)
        rgb = F.interpolate(rgb[None], scale_factor=1 / factor, mode="bilinear", align_corners=False,
                            antialias=True)[0]
        ratio = torch.tensor([rgb.shape[-1] / picture.rgb.shape[-1], rgb.shape[-2] / picture.rgb.shape[-2]],
                             dtype=torch.float64)
        in_pts = in_pts * ratio
    _, H, W = rgb.shape
    grid = torch.stack([in_pts[:, 0] / W * 2 - 1, in_pts[:, 1] / H * 2 - 1], 1).float().reshape(1, size, size, 2)
    fill = border_colour(picture.rgb).reshape(1, 3, 1, 1)
    warped = F.grid_sample(rgb[None] - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill
    corner = (torch.tensor([0.0, 0.0], dtype=torch.float64) - t) @ R / s
    return Crop(warped.clamp(-1, 1), "landmarks", (float(corner[0]), float(corner[1]), size / s))


__all__ = ["Crop", "CropMode", "Framing", "FramingError", "ImageReadError", "LandmarkSource",
           "Picture", "ReconstructorLandmarks", "auto_crop", "border_colour", "centre_crop", "crop_square",
           "foreground_box", "foreground_mask", "framing_of", "landmark_crop", "load_landmark_source",
           "read_picture", "similarity_transform", "squash"]
