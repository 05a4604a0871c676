"""The morphable face model: coefficients -> a posed, lit mesh in aware3d's world frame.

Follows Deep3DFaceRecon's parametric face model (Deng et al. 2019) step by step, so its coefficients mean
the same here:

1. shape ``S = mean_shape + identity_basis @ id + expression_basis @ exp`` (model frame, model units);
2. albedo ``A = mean_albedo + albedo_basis @ tex`` (RGB, [0, 1] units, not clamped);
3. vertex normals of the *unposed* shape: the normalised sum of the unit normals of the triangles around
   each vertex (``point_buf``), each triangle's normal ``(v1 - v2) x (v2 - v3)``;
4. pose ``R = Rz(roll) Ry(yaw) Rx(pitch)`` (angles = (x, y, z) rotations in radians, column vectors),
   ``posed = R S + trans``; normals ``R n``;
5. colour ``A * shading`` with order-2 spherical-harmonics irradiance: per channel
   ``shading = Y(n) . (gamma_c + init_light)``, ``Y`` the 9 SH basis functions pre-multiplied by the
   Lambertian convolution constants (see :func:`sh_basis`), ``init_light`` = 0.8 ambient by default;
6. :class:`FaceFrame` turns the posed points into world coordinates.

Everything is batched, differentiable with respect to every coefficient, and runs in the module's dtype
(float32 by default; ``.double()`` for float64).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layout import (
    COEFFICIENT_DIM, COEFFICIENT_GROUPS, DEEP3D_INIT_LIGHT, EXPRESSION_DIM, IDENTITY_DIM, LIGHTING_DIM,
    TEXTURE_DIM, FaceModelData, vertex_face_table,
)

__all__ = [
    "FACE_MODEL_ENV", "FaceCoefficients", "FaceFrame", "FaceMesh", "MorphableFaceModel", "euler_rotation",
    "load_face_model", "sh_basis", "sh_shading",
]

FACE_MODEL_ENV = "AWARE3D_FACE_MODEL"
"""Environment variable holding the default face model path (a BFM_model_front.mat)."""

_GROUPS = COEFFICIENT_GROUPS


@dataclass
class FaceCoefficients:
    """A batch of face coefficients, every field (B, dim) float (see :mod:`.layout` for the meaning)."""

    identity: Tensor
    """(B, 80) identity weights."""
    expression: Tensor
    """(B, 64) expression weights."""
    texture: Tensor
    """(B, 80) albedo weights."""
    lighting: Tensor
    """(B, 27) SH lighting, channel-major (``[c * 9 + k]``), added to the model's ``init_light``."""
    pose: Tensor
    """(B, 6) Euler angles (x = pitch, y = yaw, z = roll; radians) then translation (model units)."""

    def __post_init__(self) -> None:
        B = self.identity.shape[0] if self.identity.ndim == 2 else -1
        for name, dim in _GROUPS:
            t = getattr(self, name)
            if t.ndim != 2 or t.shape[1] != dim or t.shape[0] != B:
                raise ValueError(f"FaceCoefficients.{name} must be (B, {dim}) with one B for all groups; "
                                 f"got {tuple(t.shape)} (identity is {tuple(self.identity.shape)})")

    @property
    def batch_size(self) -> int:
        return int(self.identity.shape[0])

    @property
    def angles(self) -> Tensor:
        """(B, 3) Euler angles in radians."""
        return self.pose[:, :3]

    @property
    def translation(self) -> Tensor:
        """(B, 3) translation in model units."""
        return self.pose[:, 3:]

    def to_vector(self) -> Tensor:
        """(B, 257) in Deep3DFaceRecon's order: id 80, exp 64, tex 80, angles 3, gamma 27, trans 3."""
        return torch.cat([self.identity, self.expression, self.texture, self.angles, self.lighting,
                          self.translation], dim=1)

    @staticmethod
    def from_vector(v: Tensor) -> "FaceCoefficients":
        """Split a (B, 257) Deep3DFaceRecon coefficient vector (order of :meth:`to_vector`)."""
        if v.ndim != 2 or v.shape[1] != COEFFICIENT_DIM:
            raise ValueError(f"a face coefficient vector must be (B, {COEFFICIENT_DIM}), got {tuple(v.shape)}")
        i, e, t, a, g, tr = torch.split(v, [IDENTITY_DIM, EXPRESSION_DIM, TEXTURE_DIM, 3, LIGHTING_DIM, 3], 1)
        return FaceCoefficients(i, e, t, g, torch.cat([a, tr], 1))

    @staticmethod
    def zeros(batch: int, device=None, dtype: torch.dtype = torch.float32) -> "FaceCoefficients":
        """The mean face, frontal, at the origin, under the default light."""
        z = {name: torch.zeros(batch, dim, device=device, dtype=dtype) for name, dim in _GROUPS}
        return FaceCoefficients(**z)

    def to(self, *args, **kwargs) -> "FaceCoefficients":
        return FaceCoefficients(**{name: getattr(self, name).to(*args, **kwargs) for name, _ in _GROUPS})


@dataclass
class FaceMesh:
    """A batch of posed, lit face meshes in aware3d's world frame (+y up, a frontal face looks toward +z)."""

    vertices: Tensor
    """(B, V, 3) world coordinates (world units, see :class:`FaceFrame`)."""
    normals: Tensor
    """(B, V, 3) unit outward vertex normals, world frame."""
    albedo: Tensor
    """(B, V, 3) RGB reflectance, [0, 1] for plausible codes (not clamped)."""
    colour: Tensor
    """(B, V, 3) albedo * SH shading, about [0, 1] (not clamped)."""
    triangles: Tensor
    """(F, 3) int64 vertex indices, counter-clockwise seen from outside."""
    landmarks: Tensor
    """(B, 68, 3) the iBUG-68 landmark vertices, world coordinates."""


@dataclass(frozen=True)
class FaceFrame:
    """Model frame -> aware3d world: ``world = scale * (R v + translation) + offset`` (no rotation, no flip).

    Deep3DFaceRecon renders from a camera 10 model units in front of the origin on +z looking toward -z,
    focal 1015 px on its 224-px image (fov 12.6 deg). aware3d's frontal camera (pi-GAN/CGOF yaw = pitch =
    pi/2) sits at radius 1 on +z. Both frames are x right (in the image), y up, z toward the camera, so
    ``scale = 0.1`` maps Deep3DFaceRecon's camera exactly onto aware3d's: a face at zero translation is
    centred on the world origin, spanning about +-0.08 (x) by +-0.1 (y) with its surface at z ~ 0..0.09,
    inside CGOF's ray range (near 0.88, far 1.12 from a camera at radius 1, fov 12 deg), and an aware3d
    frontal render at fov 12 deg is Deep3DFaceRecon's enlarged by 4.757 / 4.531 = 1.05. Normals only rotate.
    """

    scale: float = 0.1
    """World units per model unit (positive)."""
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """World position of the model origin (after scaling)."""

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"FaceFrame.scale must be positive (a negative one would mirror the face), got {self.scale}")

    def to_world(self, points: Tensor) -> Tensor:
        """(..., 3) posed model-frame points -> world points."""
        return points * self.scale + points.new_tensor(self.offset)

    def to_model(self, points: Tensor) -> Tensor:
        """(..., 3) world points -> posed model-frame points (inverse of :meth:`to_world`)."""
        return (points - points.new_tensor(self.offset)) / self.scale


# -------------------------------------------------------------------------------- pure functions

def euler_rotation(angles: Tensor) -> Tensor:
    """(B, 3, 3) rotation ``Rz(c) @ Ry(b) @ Rx(a)`` for angles (B, 3) = (a, b, c) radians, column vectors.

    Deep3DFaceRecon's convention: positive ``b`` (yaw) turns the face's +z toward +x, positive ``a``
    (pitch) turns +y toward +z, positive ``c`` (roll) turns +x toward +y.
    """
    a, b, c = angles.unbind(-1)
    one, zero = torch.ones_like(a), torch.zeros_like(a)

    def mat(rows):
        return torch.stack([torch.stack(r, -1) for r in rows], -2)

    rx = mat([[one, zero, zero], [zero, a.cos(), -a.sin()], [zero, a.sin(), a.cos()]])
    ry = mat([[b.cos(), zero, b.sin()], [zero, one, zero], [-b.sin(), zero, b.cos()]])
    rz = mat([[c.cos(), -c.sin(), zero], [c.sin(), c.cos(), zero], [zero, zero, one]])
    return rz @ ry @ rx


_SH_A = (math.pi, 2 * math.pi / math.sqrt(3.0), 2 * math.pi / math.sqrt(8.0))
"""Lambertian convolution constants of SH orders 0, 1, 2 (the irradiance of Ramamoorthi & Hanrahan 2001)."""
_SH_C = (1 / math.sqrt(4 * math.pi), math.sqrt(3.0) / math.sqrt(4 * math.pi), 3 * math.sqrt(5.0) / math.sqrt(12 * math.pi))
"""Normalisation constants of the real SH basis of orders 0, 1, 2."""


def sh_basis(normals: Tensor) -> Tensor:
    """(..., 9) Deep3DFaceRecon's SH irradiance basis at unit normals (..., 3) (x, y, z).

    In order: ``a0 c0``, ``-a1 c1 y``, ``a1 c1 z``, ``-a1 c1 x``, ``a2 c2 x y``, ``-a2 c2 y z``,
    ``a2 c2 / (2 sqrt 3) (3 z^2 - 1)``, ``-a2 c2 x z``, ``a2 c2 / 2 (x^2 - y^2)`` (a = Lambertian constants,
    c = SH normalisation; ``a0 c0 = sqrt(pi) / 2``, ``a1 c1 = sqrt(pi)``).
    """
    x, y, z = normals.unbind(-1)
    k0, k1, k2 = (a * c for a, c in zip(_SH_A, _SH_C))
    return torch.stack([
        torch.full_like(x, k0), -k1 * y, k1 * z, -k1 * x, k2 * x * y, -k2 * y * z,
        0.5 * k2 / math.sqrt(3.0) * (3 * z * z - 1), -k2 * x * z, 0.5 * k2 * (x * x - y * y),
    ], dim=-1)


def sh_shading(normals: Tensor, lighting: Tensor, init_light: Tensor) -> Tensor:
    """(B, V, 3) RGB irradiance at unit normals (B, V, 3) for SH lighting (B, 27) channel-major, plus
    ``init_light`` (9,) added to every channel's coefficients."""
    gamma = lighting.reshape(lighting.shape[0], 3, 9) + init_light
    return torch.einsum("bvk,bck->bvc", sh_basis(normals), gamma)


def face_normals(vertices: Tensor, triangles: Tensor) -> Tensor:
    """(B, F, 3) unit normals ``(v1 - v2) x (v2 - v3)`` (outward for counter-clockwise triangles)."""
    v1, v2, v3 = (vertices[:, triangles[:, i]] for i in range(3))
    return F.normalize(torch.cross(v1 - v2, v2 - v3, dim=-1), dim=-1)


def vertex_normals(vertices: Tensor, triangles: Tensor, vertex_faces: Tensor) -> Tensor:
    """(B, V, 3) unit vertex normals: the normalised sum of the unit normals of each vertex's triangles.

    ``vertex_faces`` (V, K) lists them, padded with F (an appended zero normal), as Deep3DFaceRecon's
    ``point_buf``.
    """
    fn = face_normals(vertices, triangles)
    fn = torch.cat([fn, fn.new_zeros(fn.shape[0], 1, 3)], dim=1)
    return F.normalize(fn[:, vertex_faces].sum(dim=2), dim=-1)


# ------------------------------------------------------------------------------------- the module

class MorphableFaceModel(nn.Module):
    """Coefficients -> :class:`FaceMesh`. Holds the model as **non-persistent** buffers (no parameters):
    checkpoints of modules that contain it never embed the (possibly licence-restricted) model data.

    Args:
        data: the model (:func:`load_face_model`).
        frame: the model -> world conversion.
        init_light: the 9 SH coefficients added to every channel's lighting (Deep3DFaceRecon's 0.8 ambient).
        dtype: floating dtype of the buffers, converted from the float64 data (``float64`` here is exact;
            ``.double()`` later would widen float32 values).
    """

    def __init__(self, data: FaceModelData, frame: FaceFrame = FaceFrame(),
                 init_light: tuple[float, ...] = DEEP3D_INIT_LIGHT, dtype: torch.dtype = torch.float32):
        super().__init__()
        if len(init_light) != 9:
            raise ValueError(f"init_light needs 9 SH coefficients, got {len(init_light)}")
        self.frame = frame
        self.name = data.name
        V, Fn = data.num_vertices, data.num_triangles
        shape_basis = torch.cat([data.identity_basis, data.expression_basis], dim=2).reshape(3 * V, -1)
        table = data.vertex_faces if data.vertex_faces is not None else vertex_face_table(data.triangles, V)
        table = table[:, : int((table >= 0).sum(1).max())]  # drop all-padding columns: same sums, same rounding
        buffers = {
            "mean_shape": data.mean_shape.reshape(-1).to(dtype), "shape_basis": shape_basis.to(dtype),
            "mean_albedo": data.mean_albedo.reshape(-1).to(dtype),
            "albedo_basis": data.albedo_basis.reshape(3 * V, -1).to(dtype),
            "triangles": data.triangles.contiguous().clone(), "landmark_indices": data.landmarks.contiguous().clone(),
            "vertex_faces": torch.where(table < 0, Fn, table).contiguous(),
            "init_light": torch.tensor(init_light, dtype=dtype),
        }
        for key, value in buffers.items():
            self.register_buffer(key, value, persistent=False)

    @property
    def num_vertices(self) -> int:
        return self.mean_shape.shape[0] // 3

    def _check(self, c: FaceCoefficients) -> None:
        dtype, device = self.mean_shape.dtype, self.mean_shape.device
        for name, _ in _GROUPS:
            t = getattr(c, name)
            if t.dtype != dtype or t.device != device:
                raise ValueError(f"FaceCoefficients.{name} is {t.dtype} on {t.device} but the face model is "
                                 f"{dtype} on {device}: convert one (model.to(...) / coefficients.to(...))")

    def shape(self, identity: Tensor, expression: Tensor) -> Tensor:
        """(B, V, 3) unposed shapes in the model frame (model units)."""
        w = torch.cat([identity, expression], dim=1)
        return torch.addmm(self.mean_shape, w, self.shape_basis.T).reshape(w.shape[0], -1, 3)

    def albedo(self, texture: Tensor) -> Tensor:
        """(B, V, 3) per-vertex albedo."""
        return torch.addmm(self.mean_albedo, texture, self.albedo_basis.T).reshape(texture.shape[0], -1, 3)

    def forward(self, coefficients: FaceCoefficients) -> FaceMesh:
        self._check(coefficients)
        shape = self.shape(coefficients.identity, coefficients.expression)
        rot = euler_rotation(coefficients.angles)
        normals = vertex_normals(shape, self.triangles, self.vertex_faces) @ rot.transpose(1, 2)
        posed = shape @ rot.transpose(1, 2) + coefficients.translation[:, None]
        albedo = self.albedo(coefficients.texture)
        colour = albedo * sh_shading(normals, coefficients.lighting, self.init_light)
        vertices = self.frame.to_world(posed)
        return FaceMesh(vertices=vertices, normals=normals, albedo=albedo, colour=colour, triangles=self.triangles,
                        landmarks=vertices[:, self.landmark_indices])


def load_face_model(path: str | os.PathLike | None = None) -> FaceModelData:
    """The face model to use: a Deep3DFaceRecon ``BFM_model_front.mat`` at ``path``; "synthetic" for the
    built-in synthetic model; None: the path in ``$AWARE3D_FACE_MODEL`` if set, else the synthetic model.

    A missing file raises FileNotFoundError saying where the file comes from and its licence.
    """
    from .bfm import load_bfm_mat
    from .synthetic_model import synthetic_face_model

    if path is None:
        path = os.environ.get(FACE_MODEL_ENV) or None
    if path is None or str(path) == "synthetic":
        return synthetic_face_model()
    return load_bfm_mat(path)
