"""``aware3d faces show``: a picture of the morphable face model, one factor varied per row.

Rows (each starting from the mean face, frontal, under the default light): identity (random identity codes),
expression (the jaw opens from 0 to 3 across the row), texture (random albedo codes), light (the SH linear
band swept from the left to the right) and pose (the camera's yaw swept from -0.7 to 0.7 rad). The 68
landmarks are drawn on every cell, visible ones green, hidden ones red. The grid is written for the built-in
synthetic model and, when ``--face-model`` (or ``$AWARE3D_FACE_MODEL``) names a BFM file, for that model too,
each beside a JSON with what every cell shows and how far the mouth opens along the expression row (the gap
between the inner lips in pixels and the pixels seen into the mouth cavity, from the depth map: geometry).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from ..cameras.rays import Cameras
from ..checks import AT_LEAST_ONE, SEED, check_options
from ..data.synthetic.faces import FaceRender, render_faces
from ..faces.layout import IDENTITY_DIM, TEXTURE_DIM, FaceModelData
from ..faces.model import FACE_MODEL_ENV, FaceCoefficients, MorphableFaceModel, load_face_model
from ..io.media import make_grid, save_image, write_json

__all__ = ["FacesOptions", "ROWS", "draw_landmarks", "face_grid", "inner_lip_gap", "mouth_cavity_pixels", "run"]

ROWS = ("identity", "expression", "texture", "light", "pose")
"""The factor varied along each row of the grid, top to bottom."""
VISIBLE_COLOUR = (0.1, 1.0, 0.2)
"""RGB in [0, 1] of visible landmarks."""
HIDDEN_COLOUR = (1.0, 0.15, 0.1)
"""RGB in [0, 1] of hidden (occluded or off-image) landmarks."""
INNER_MOUTH = tuple(range(60, 68))
"""iBUG-68 inner-lip landmarks (60 and 64 the corners, 62 / 66 the middle of the upper / lower lip)."""


@dataclass
class FacesOptions:
    action: Literal["show"]
    """show: write the grid (PNG) and its JSON."""
    out: str = "faces"
    """Output folder (created if missing): faces_<model>.png and faces_<model>.json."""
    face_model: str | None = None
    """Also draw this Deep3DFaceRecon BFM_model_front.mat (default: $AWARE3D_FACE_MODEL if set); the built-in
    synthetic model is always drawn."""
    resolution: int = 128
    """Side of each rendered face in pixels (drawn enlarged to at least 256 px)."""
    columns: int = 6
    """Cells per row."""
    seed: int = 0
    """Seed of the random identity and texture codes."""

    def __post_init__(self) -> None:
        check_options(self, {"resolution": AT_LEAST_ONE, "columns": AT_LEAST_ONE, "seed": SEED})
        if self.columns < 2:
            raise ValueError(f"--columns must be at least 2 (a row varies a factor), got {self.columns}")


# ------------------------------------------------------------------------------------------ drawing

def draw_landmarks(images: Tensor, points: Tensor, colours: Tensor, scale: int = 1, radius: float = 1.5) -> Tensor:
    """Images enlarged ``scale`` times (nearest) with filled dots at the points.

    Args:
        images: (B, 3, H, W) in [-1, 1].
        points: (B, N, 2) pixel xy of the *unscaled* image, centre of pixel (row i, column j) at (j, i).
        colours: (B, N, 3) or (3,) RGB in [0, 1].
        scale: integer enlargement; radius: dot radius in pixels of the enlarged image.
    Returns:
        (B, 3, H * scale, W * scale) in [-1, 1].
    """
    B, _, H, W = images.shape
    big = images.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3).clone()
    # centre of enlarged pixel (I, J) in unscaled pixel units: ((J + 0.5) / scale - 0.5, ...)
    ys = (torch.arange(H * scale, dtype=images.dtype) + 0.5) / scale - 0.5
    xs = (torch.arange(W * scale, dtype=images.dtype) + 0.5) / scale - 0.5
    colours = colours.to(images.dtype).expand(B, points.shape[1], 3) * 2 - 1
    r2 = (radius / scale) ** 2
    for b in range(B):
        p = points[b].to(images.dtype)
        inside = ((xs[None, None, :] - p[:, 0, None, None]) ** 2 + (ys[None, :, None] - p[:, 1, None, None]) ** 2) <= r2
        hit = inside.any(0)
        last = (inside * torch.arange(1, p.shape[0] + 1)[:, None, None]).argmax(0)  # later points on top
        painted = colours[b][last].permute(2, 0, 1)
        big[b] = torch.where(hit[None], painted, big[b])
    return big


def landmark_colours(visible: Tensor) -> Tensor:
    """(B, N, 3) RGB: :data:`VISIBLE_COLOUR` where visible, :data:`HIDDEN_COLOUR` elsewhere."""
    v, h = torch.tensor(VISIBLE_COLOUR), torch.tensor(HIDDEN_COLOUR)
    return torch.where(visible[..., None], v, h)


def enlargement(resolution: int, target: int = 256) -> int:
    """The integer factor that brings a ``resolution``-pixel image to at least ``target`` pixels."""
    return max(1, math.ceil(target / resolution))


# ------------------------------------------------------------------------------------------ mouth

def inner_lip_gap(landmarks: Tensor) -> Tensor:
    """(B,) distance in pixels between the middle of the upper and lower inner lip (landmarks 62 and 66)."""
    return (landmarks[:, 62] - landmarks[:, 66]).norm(dim=-1)


def mouth_cavity_pixels(render: FaceRender, margin: float = 0.005) -> Tensor:
    """(B,) pixels of the inner-mouth box (landmarks 60..67, widened by a pixel) whose depth exceeds the
    farthest inner-lip landmark's distance by more than ``margin`` (world units): the view into the open mouth.

    A closed mouth shows lips there (about the landmarks' depth); an open jaw shows the cavity behind them.
    """
    lm = render.landmarks[:, list(INNER_MOUTH)]
    cams_distance = (render.landmarks_3d[:, list(INNER_MOUTH)] - render.cameras.origins[:, None]).norm(dim=-1)
    H, W = render.depth.shape[-2:]
    ys = torch.arange(H, dtype=lm.dtype)[:, None]
    xs = torch.arange(W, dtype=lm.dtype)[None, :]
    counts = []
    for b in range(lm.shape[0]):
        lo, hi = lm[b].amin(0) - 1, lm[b].amax(0) + 1
        box = (xs >= lo[0]) & (xs <= hi[0]) & (ys >= lo[1]) & (ys <= hi[1])
        deep = render.depth[b, 0] > cams_distance[b].max() + margin
        counts.append(int((box & deep & (render.mask[b, 0] > 0)).sum()))
    return torch.tensor(counts)


# ------------------------------------------------------------------------------------------ the grid

def _row_coefficients(row: str, columns: int, generator: torch.Generator) -> FaceCoefficients:
    """Canonical coefficients (world pose zero) of one row's cells."""
    c = FaceCoefficients.zeros(columns, dtype=torch.float64)
    t = torch.linspace(0.0, 1.0, columns, dtype=torch.float64)
    if row == "identity":
        c.identity[1:] = torch.randn(columns - 1, IDENTITY_DIM, generator=generator, dtype=torch.float64)
    elif row == "expression":
        c.expression[:, 0] = 3.0 * t
    elif row == "texture":
        c.texture[1:] = torch.randn(columns - 1, TEXTURE_DIM, generator=generator, dtype=torch.float64)
    elif row == "light":
        angle = (2 * t - 1) * 1.2
        direction = torch.stack([torch.sin(angle), torch.full_like(angle, 0.3), torch.cos(angle)], -1)
        direction = direction / direction.norm(dim=-1, keepdim=True)
        band = torch.zeros(columns, 9, dtype=torch.float64)
        band[:, 3], band[:, 1], band[:, 2] = -0.2 * direction[:, 0], -0.2 * direction[:, 1], 0.2 * direction[:, 2]
        c.lighting[:] = band.repeat(1, 3)
    return c


def _row_cameras(row: str, columns: int) -> tuple[Cameras, list[float]]:
    """The cells' cameras (fov 12 deg, radius 1) and their yaw offsets from frontal (radians)."""
    offsets = [(2 * k / (columns - 1) - 1) * 0.7 if row == "pose" else 0.0 for k in range(columns)]
    yaw = torch.tensor([math.pi / 2 + o for o in offsets])
    return Cameras.from_angles(yaw, torch.full_like(yaw, math.pi / 2), 12.0, 1.0), offsets


def face_grid(model: MorphableFaceModel, resolution: int, columns: int, seed: int = 0
              ) -> tuple[Tensor, dict[str, FaceRender], dict[str, list[float]]]:
    """(the grid image (3, H, W) in [-1, 1], each row's render, each row's varied value per cell)."""
    g = torch.Generator().manual_seed(seed)
    renders, values, cells = {}, {}, []
    scale = enlargement(resolution)
    for row in ROWS:
        codes = _row_coefficients(row, columns, g).to(model.mean_shape.dtype)
        cams, offsets = _row_cameras(row, columns)
        out = render_faces(model, codes, cams, torch.full((3,), 0.5), resolution)
        renders[row] = out
        values[row] = {"identity": [float(c.norm()) for c in codes.identity], "expression": codes.expression[:, 0].tolist(),
                       "texture": [float(c.norm()) for c in codes.texture], "light": codes.lighting[:, 3].tolist(),
                       "pose": offsets}[row]
        cells.append(draw_landmarks(out.image.float(), out.landmarks, landmark_colours(out.landmark_visible), scale,
                                    radius=max(1.5, scale * 0.9)))
    return make_grid(torch.cat(cells), nrow=columns, padding=2, pad_value=-1.0), renders, values


_VALUE_MEANING = {"identity": "norm of the identity code (0: the mean face)",
                  "expression": "expression coefficient 0 (the jaw opening)",
                  "texture": "norm of the texture code (0: the mean albedo)",
                  "light": "SH band 3 of every channel (-x component of the linear light; negative: lit from +x)",
                  "pose": "camera yaw offset from frontal, radians (pi-GAN: positive moves the camera toward -x)"}


def _show_one(model_path: str, data: FaceModelData, opts: FacesOptions, out: Path) -> dict:
    model = MorphableFaceModel(data)
    grid, renders, values = face_grid(model, opts.resolution, opts.columns, opts.seed)
    png = save_image(out / f"faces_{data.name}.png", grid)
    expression = renders["expression"]
    summary = {
        "tool": "faces show", "face_model": model_path, "model": data.name, "vertices": data.num_vertices,
        "triangles": data.num_triangles, "resolution": opts.resolution, "columns": opts.columns, "seed": opts.seed,
        "rows": list(ROWS), "png": str(png), "value_meaning": _VALUE_MEANING, "values": values,
        "visible_landmarks": {row: r.landmark_visible.sum(1).tolist() for row, r in renders.items()},
        "mouth": {"jaw": values["expression"], "inner_lip_gap_px": inner_lip_gap(expression.landmarks).tolist(),
                  "cavity_pixels": mouth_cavity_pixels(expression).tolist()},
        "landmark_colours": {"visible": VISIBLE_COLOUR, "hidden": HIDDEN_COLOUR},
    }
    summary["json"] = str(write_json(out / f"faces_{data.name}.json", summary))
    return summary


def run(opts: FacesOptions) -> dict:
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    models = {"synthetic": load_face_model("synthetic")}
    extra = opts.face_model if opts.face_model is not None else os.environ.get(FACE_MODEL_ENV) or None
    if extra is not None and extra != "synthetic":
        models[extra] = load_face_model(extra)  # a missing or unreadable file fails here, before any drawing
    summaries = [_show_one(path, data, opts, out) for path, data in models.items()]
    return {"out": str(out), "files": [f for s in summaries for f in (s["png"], s["json"])], "models": summaries}
