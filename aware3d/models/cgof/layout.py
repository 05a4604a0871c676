"""CGOF's latent: a morphable-face-model code plus background noise, and its whitening.

Layout of z (B, 411), in order (the official cGOF v1): ``identity 80 | expression 64 | background geometry 80 |
texture 80 | lighting 27 | background texture 80``. z ~ N(0, I); the identity, expression, texture and lighting
slices are *whitened* coefficients: ``c = mean + L z`` per group (:class:`~aware3d.faces.CoefficientStatistics`,
the generator's :class:`FaceWhitening` buffers), so random codes follow the fitted coefficient distribution.
The whole z drives the SIREN's mapping network; the face slices also build the conditioning mesh (in the
canonical pose: the camera, not the face, moves).

The *face code* is the four face slices side by side, ``identity | expression | texture | lighting`` (B, 251),
the layout of :attr:`aware3d.models.base.Condition.face` for this family.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...faces import (COEFFICIENT_GROUPS, EXPRESSION_DIM, FACE_MODEL_ENV, IDENTITY_DIM, LIGHTING_DIM, TEXTURE_DIM,
                      CoefficientStatistics, FaceCoefficients, FaceModelData, GroupStatistics, MorphableFaceModel,
                      bfm_origin_help, load_face_model)

FACE_GROUPS: tuple[tuple[str, int], ...] = (("identity", IDENTITY_DIM), ("expression", EXPRESSION_DIM),
                                            ("texture", TEXTURE_DIM), ("lighting", LIGHTING_DIM))
"""The face slices of the latent (field names of :class:`~aware3d.faces.FaceCoefficients`) in face-code order."""
FACE_CODE_DIM = sum(d for _, d in FACE_GROUPS)
"""251: the face code's size (identity 80 + expression 64 + texture 80 + lighting 27)."""
STATISTICS_FIELDS = ("mean", "std", "cholesky", "cholesky_inverse")
"""The tensors of one group's :class:`~aware3d.faces.GroupStatistics`."""


@dataclass(frozen=True)
class LatentLayout:
    """Where each part lies in z (the module docstring's order)."""

    background_geometry: int = 80
    """Size of the background-geometry slice."""
    background_texture: int = 80
    """Size of the background-texture slice."""

    @property
    def parts(self) -> tuple[tuple[str, int], ...]:
        """(name, size) of every slice in z's order."""
        return (("identity", IDENTITY_DIM), ("expression", EXPRESSION_DIM),
                ("background_geometry", self.background_geometry), ("texture", TEXTURE_DIM),
                ("lighting", LIGHTING_DIM), ("background_texture", self.background_texture))

    @property
    def z_dim(self) -> int:
        return sum(d for _, d in self.parts)

    def slices(self) -> dict[str, slice]:
        """Name -> slice of z's last dim."""
        out, start = {}, 0
        for name, size in self.parts:
            out[name] = slice(start, start + size)
            start += size
        return out

    def split(self, z: Tensor) -> dict[str, Tensor]:
        """z (B, z_dim) -> its parts by name, each (B, size) (views)."""
        if z.shape[-1] != self.z_dim:
            raise ValueError(f"a CGOF latent has {self.z_dim} values (identity 80 | expression 64 | background "
                             f"geometry {self.background_geometry} | texture 80 | lighting 27 | background texture "
                             f"{self.background_texture}), got shape {tuple(z.shape)}")
        return {name: z[..., s] for name, s in self.slices().items()}

    def join(self, parts: dict[str, Tensor]) -> Tensor:
        """Inverse of :meth:`split`: every part (B, size) by name -> z (B, z_dim)."""
        missing = [n for n, _ in self.parts if n not in parts]
        if missing:
            raise ValueError(f"a CGOF latent needs the parts {missing}")
        return torch.cat([parts[n] for n, _ in self.parts], dim=-1)

    def face_code(self, z: Tensor) -> Tensor:
        """(B, 251) the face slices of z in face-code order."""
        parts = self.split(z)
        return torch.cat([parts[n] for n, _ in FACE_GROUPS], dim=-1)

    def with_face_code(self, z: Tensor, code: Tensor) -> Tensor:
        """z with its face slices replaced by ``code`` ((B, 251) or (1, 251), broadcast to z's rows)."""
        parts = dict(self.split(z))
        code = code.to(z).expand(z.shape[0], -1) if code.shape[0] == 1 else code.to(z)
        parts.update(split_face_code(code))
        return self.join(parts)


def split_face_code(code: Tensor) -> dict[str, Tensor]:
    """(B, 251) face code -> identity, expression, texture, lighting (B, dim) each."""
    if code.ndim != 2 or code.shape[-1] != FACE_CODE_DIM:
        raise ValueError(f"a CGOF face code is (B, {FACE_CODE_DIM}): identity 80 | expression 64 | texture 80 | "
                         f"lighting 27 (whitened), got shape {tuple(code.shape)}")
    return dict(zip([n for n, _ in FACE_GROUPS], torch.split(code, [d for _, d in FACE_GROUPS], dim=-1)))


def face_code_from(codes: FaceCoefficients) -> Tensor:
    """(B, 251) face code from whitened :class:`FaceCoefficients` (their pose is dropped)."""
    return torch.cat([getattr(codes, n) for n, _ in FACE_GROUPS], dim=-1)


def whitened_coefficients(code: Tensor) -> FaceCoefficients:
    """The face code (B, 251) as whitened :class:`FaceCoefficients` with a zero pose."""
    parts = split_face_code(code)
    return FaceCoefficients(**parts, pose=code.new_zeros(code.shape[0], 6))


class FaceWhitening(nn.Module):
    """Per coefficient group the mean, std, Cholesky factor and its inverse, as persistent float64 buffers
    (``<group>_<field>``): a model's checkpoint carries the statistics its codes are whitened with."""

    def __init__(self, statistics: CoefficientStatistics):
        super().__init__()
        for group, _ in COEFFICIENT_GROUPS:
            stats = statistics.groups[group]
            for f in STATISTICS_FIELDS:
                self.register_buffer(f"{group}_{f}", getattr(stats, f).detach().to(torch.float64).clone())

    def statistics(self) -> CoefficientStatistics:
        """The buffers as :class:`~aware3d.faces.CoefficientStatistics` (sharing their storage)."""
        groups = {g: GroupStatistics(*(self.get_buffer(f"{g}_{f}") for f in STATISTICS_FIELDS))
                  for g, _ in COEFFICIENT_GROUPS}
        return CoefficientStatistics(groups, 0)

    @torch.no_grad()
    def set_statistics(self, statistics: CoefficientStatistics) -> None:
        """Copy fitted statistics into the buffers (shapes checked by CoefficientStatistics)."""
        for group, _ in COEFFICIENT_GROUPS:
            for f in STATISTICS_FIELDS:
                self.get_buffer(f"{group}_{f}").copy_(getattr(statistics.groups[group], f))

    def unwhiten(self, code: Tensor) -> FaceCoefficients:
        """Face code (B, 251) -> coefficients in the face model's units, zero pose (the canonical face)."""
        coefficients = self.statistics().unwhiten(whitened_coefficients(code))
        coefficients.pose = torch.zeros_like(coefficients.pose)
        return coefficients

    def whiten(self, coefficients: FaceCoefficients) -> Tensor:
        """Coefficients (e.g. read back by a regressor) -> their face code (B, 251)."""
        return face_code_from(self.statistics().whiten(coefficients))


# ------------------------------------------------------------------------------------------ sources

def face_model_source(spec: str | None) -> str:
    """The face model a config's ``face_model`` names: "synthetic", a BFM path, or for None the path in
    $AWARE3D_FACE_MODEL, which must then be set (a clear error naming the variable and where the file comes from)."""
    if spec is not None:
        return str(spec)
    path = os.environ.get(FACE_MODEL_ENV) or None
    if path is None:
        raise FileNotFoundError(
            f"this CGOF model uses the Basel Face Model, but face_model is unset and ${FACE_MODEL_ENV} is empty: "
            f"set {FACE_MODEL_ENV}=/path/to/BFM_model_front.mat or --override face_model=PATH "
            f"(or face_model=synthetic for the built-in model). {bfm_origin_help()}")
    return path


@functools.lru_cache(maxsize=4)
def face_model_data(source: str) -> FaceModelData:
    """The face model at ``source`` (:func:`face_model_source`), read once per process (every generator and its
    EMA copies share it: the BFM's tensors are ten times a generator's)."""
    with torch.device("cpu"):  # CPU tensors even inside a meta-device build (checkpoint size checks)
        return load_face_model(source)


@functools.lru_cache(maxsize=8)
def face_model_on(source: str, device: torch.device) -> MorphableFaceModel:
    """The :class:`~aware3d.faces.MorphableFaceModel` of ``source`` on ``device`` (float32, read-only, shared)."""
    with torch.device(device):
        return MorphableFaceModel(face_model_data(source)).to(device)


@functools.lru_cache(maxsize=4)
def synthetic_faces_statistics(face_model: str | None, samples: int) -> CoefficientStatistics:
    """Whitening statistics fitted to the coefficients of items ``[0, samples)`` of ``synthetic-faces`` rendered
    with ``face_model`` (draws only, nothing rendered; deterministic, so cached per arguments)."""
    from ...data.synthetic.faces import SyntheticFaceDataset

    with torch.device("cpu"):  # CPU tensors even inside a meta-device build (checkpoint size checks)
        path = face_model if face_model is not None else os.environ.get(FACE_MODEL_ENV)
        dataset = SyntheticFaceDataset(length=max(samples, 2), face_model=path)
        return dataset.coefficient_statistics(count=max(samples, 2))


__all__ = ["FACE_CODE_DIM", "FACE_GROUPS", "FaceWhitening", "LatentLayout", "face_code_from", "face_model_data",
           "face_model_on", "face_model_source", "split_face_code", "synthetic_faces_statistics",
           "whitened_coefficients"]
