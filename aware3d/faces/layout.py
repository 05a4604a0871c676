"""The layout of a linear morphable face model: group sizes, the model data, Deep3DFaceRecon's constants.

A face model is Deep3DFaceRecon's ``BFM_model_front.mat`` turned 0-based and into (V, 3, K) tensors
(:class:`FaceModelData`); the Basel Face Model reader (:mod:`.bfm`) and the built-in synthetic model
(:mod:`.synthetic_model`) both produce one, so every code path takes either.

Model frame (the BFM's own): **x toward the subject's left** (image right in a frontal view), **y up**,
**z out of the face toward the viewer**; lengths in *model units* (the BFM's decimetres as Deep3DFaceRecon
scales it: its camera sits 10 units in front of the face).

Coefficient groups, in Deep3DFaceRecon's 257-float order (``id 80 | exp 64 | tex 80 | angles 3 | gamma 27
| trans 3``): identity, expression and texture weights of the bases; 27 spherical-harmonics lighting
coefficients (9 bands per RGB channel, channel-major: ``gamma[c * 9 + k]``); pose as 3 Euler angles
(radians, about x, y, z) and a translation (model units).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

IDENTITY_DIM = 80
"""Identity (shape) coefficients."""
EXPRESSION_DIM = 64
"""Expression coefficients."""
TEXTURE_DIM = 80
"""Texture (albedo) coefficients."""
LIGHTING_DIM = 27
"""Spherical-harmonics lighting: 9 bands (orders 0..2) x RGB, channel-major."""
POSE_DIM = 6
"""Pose: 3 Euler angles in radians (x = pitch, y = yaw, z = roll) + 3 translation in model units."""
COEFFICIENT_GROUPS: tuple[tuple[str, int], ...] = (
    ("identity", IDENTITY_DIM), ("expression", EXPRESSION_DIM), ("texture", TEXTURE_DIM),
    ("lighting", LIGHTING_DIM), ("pose", POSE_DIM))
"""The groups of :class:`~aware3d.faces.model.FaceCoefficients` (field name, size), in field order."""
COEFFICIENT_DIM = IDENTITY_DIM + EXPRESSION_DIM + TEXTURE_DIM + LIGHTING_DIM + POSE_DIM
"""257, Deep3DFaceRecon's coefficient vector."""
NUM_LANDMARKS = 68
"""iBUG-68 landmarks: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67 (outer 48-59, inner 60-67);
index 0, 17, 36, 48 start on the subject's right (image left, model -x)."""

DEEP3D_CAMERA_DISTANCE = 10.0
"""Deep3DFaceRecon's camera: on the model's +z axis this far from the origin, looking toward -z."""
DEEP3D_FOCAL = 1015.0
"""Deep3DFaceRecon's focal length in pixels of its 224-px input image (a fov of about 12.6 deg)."""
DEEP3D_IMAGE_SIZE = 224
"""Side of Deep3DFaceRecon's square input image in pixels (principal point at its centre, 112)."""
DEEP3D_INIT_LIGHT = (0.8, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
"""Deep3DFaceRecon's default light, added to every channel's 9 SH coefficients (ambient 0.8)."""


@dataclass(frozen=True)
class FaceModelData:
    """A linear morphable face model in Deep3DFaceRecon's ``BFM_model_front.mat`` layout, 0-based, float64.

    Vertices of the mean shape plus bases: ``shape = mean_shape + identity_basis @ id + expression_basis @ exp``,
    ``albedo = mean_albedo + albedo_basis @ tex``, in the model frame (see the module docstring).
    """

    mean_shape: Tensor
    """(V, 3) float64, model units, model frame (x toward the subject's left, y up, z toward the viewer)."""
    identity_basis: Tensor
    """(V, 3, 80) float64, model units per unit coefficient."""
    expression_basis: Tensor
    """(V, 3, 64) float64, model units per unit coefficient."""
    mean_albedo: Tensor
    """(V, 3) float64 RGB in [0, 1] (the .mat stores 0..255)."""
    albedo_basis: Tensor
    """(V, 3, 80) float64, [0, 1] units per unit coefficient."""
    triangles: Tensor
    """(F, 3) int64 vertex indices, 0-based, counter-clockwise seen from outside (outward normals)."""
    landmarks: Tensor
    """(68,) int64 vertex indices, iBUG-68 order."""
    name: str
    """"bfm" or "synthetic"."""
    vertex_faces: Tensor | None = None
    """(V, K) int64 triangles around each vertex, -1 padding (Deep3DFaceRecon's ``point_buf``, 0-based);
    vertex normals sum the unit normals of these faces. None: derived from ``triangles``."""

    def __post_init__(self) -> None:
        check_face_model_data(self)

    @property
    def num_vertices(self) -> int:
        return int(self.mean_shape.shape[0])

    @property
    def num_triangles(self) -> int:
        return int(self.triangles.shape[0])


def _expect_shape(name: str, t: Tensor, shape: tuple[int, ...]) -> None:
    if tuple(t.shape) != shape:
        raise ValueError(f"FaceModelData.{name} must have shape {shape}, got {tuple(t.shape)}")


def check_face_model_data(d: FaceModelData) -> None:
    """Raise ValueError naming the field when shapes, dtypes or index ranges are inconsistent."""
    if d.mean_shape.ndim != 2 or d.mean_shape.shape[1] != 3:
        raise ValueError(f"FaceModelData.mean_shape must be (V, 3), got {tuple(d.mean_shape.shape)}")
    V = d.mean_shape.shape[0]
    for name, dim in (("identity_basis", IDENTITY_DIM), ("expression_basis", EXPRESSION_DIM),
                      ("albedo_basis", TEXTURE_DIM)):
        _expect_shape(name, getattr(d, name), (V, 3, dim))
    _expect_shape("mean_albedo", d.mean_albedo, (V, 3))
    _expect_shape("landmarks", d.landmarks, (NUM_LANDMARKS,))
    if d.triangles.ndim != 2 or d.triangles.shape[1] != 3:
        raise ValueError(f"FaceModelData.triangles must be (F, 3), got {tuple(d.triangles.shape)}")
    for name in ("triangles", "landmarks"):
        idx = getattr(d, name)
        if idx.dtype != torch.int64:
            raise ValueError(f"FaceModelData.{name} must be int64, got {idx.dtype}")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= V):
            raise ValueError(f"FaceModelData.{name} holds vertex indices outside [0, {V}) (1-based indices?)")
    if d.vertex_faces is not None:
        vf = d.vertex_faces
        if vf.ndim != 2 or vf.shape[0] != V or vf.dtype != torch.int64:
            raise ValueError(f"FaceModelData.vertex_faces must be (V={V}, K) int64, got {tuple(vf.shape)} {vf.dtype}")
        if vf.numel() and (int(vf.min()) < -1 or int(vf.max()) >= d.triangles.shape[0]):
            raise ValueError(f"FaceModelData.vertex_faces holds face indices outside [-1, {d.triangles.shape[0]})")


def vertex_face_table(triangles: Tensor, num_vertices: int) -> Tensor:
    """(V, K) int64: the triangles around each vertex (ascending), padded with -1; K is the largest count.

    Args:
        triangles: (F, 3) int64 vertex indices, 0-based.
        num_vertices: V.
    """
    F = triangles.shape[0]
    vert = triangles.reshape(-1)
    face = torch.arange(F, dtype=torch.int64).repeat_interleave(3)
    order = torch.argsort(vert * F + face)  # group by vertex, faces ascending within a vertex
    vert, face = vert[order], face[order]
    counts = torch.bincount(vert, minlength=num_vertices)
    K = int(counts.max()) if counts.numel() else 0
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(vert.numel()) - starts[vert]
    table = torch.full((num_vertices, K), -1, dtype=torch.int64)
    table[vert, slot] = face
    return table


__all__ = [
    "COEFFICIENT_DIM", "COEFFICIENT_GROUPS", "DEEP3D_CAMERA_DISTANCE", "DEEP3D_FOCAL", "DEEP3D_IMAGE_SIZE", "DEEP3D_INIT_LIGHT",
    "EXPRESSION_DIM", "FaceModelData", "IDENTITY_DIM", "LIGHTING_DIM", "NUM_LANDMARKS", "POSE_DIM", "TEXTURE_DIM",
    "check_face_model_data", "vertex_face_table",
]
