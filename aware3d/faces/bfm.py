"""The Basel Face Model as Deep3DFaceRecon ships it: read (and write) the ``BFM_model_front.mat`` layout.

The file (MATLAB, read with scipy) holds, 1-based:

=============  ==========  ==========================================================================
key            shape       meaning
=============  ==========  ==========================================================================
meanshape      (1, 3V)     mean shape, vertex-interleaved (x0, y0, z0, x1, ...), decimetres (BFM / 1e5)
idBase         (3V, 80)    identity basis (principal components times their standard deviations)
exBase         (3V, 64)    expression basis (same scaling)
meantex        (1, 3V)     mean albedo, 0..255
texBase        (3V, 80)    albedo basis, 0..255 units
tri            (F, 3)      triangles, 1-based vertex indices
point_buf      (V, 8)      triangles around each vertex, 1-based, padded with 0 or F + 1
keypoints      (1, 68)     iBUG-68 landmark vertices, 1-based
=============  ==========  ==========================================================================

(V = 35709 for the real file; Deep3DFaceRecon's training adds ``frontmask2_idx``,
``tri_mask2`` and ``skinmask``, not needed here.) Vectors may be stored as rows or columns.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .layout import EXPRESSION_DIM, IDENTITY_DIM, NUM_LANDMARKS, TEXTURE_DIM, FaceModelData, vertex_face_table

__all__ = ["BFM_FILE_NAME", "bfm_origin_help", "load_bfm_mat", "save_bfm_mat"]

BFM_FILE_NAME = "BFM_model_front.mat"
"""The file name Deep3DFaceRecon gives the model."""

_KEYS = ("meanshape", "idBase", "exBase", "meantex", "texBase", "tri", "point_buf", "keypoints")


def bfm_origin_help() -> str:
    """Where the BFM file comes from and its licence (appended to every loading error)."""
    return (f"{BFM_FILE_NAME} is Deep3DFaceRecon's Basel Face Model file: Deep3DFaceRecon_pytorch "
            "(github.com/sicxu/Deep3DFaceRecon_pytorch) builds it in its BFM/ folder (util/load_mats.py, "
            "transferBFM09) from the Basel Face Model 2009 (01_MorphableModel.mat) and the expression basis "
            "Exp_Pca.bin (Guo et al.'s CoarseData). The Basel Face Model is licensed by the University of "
            "Basel: free for non-commercial research after registration at https://faces.dmi.unibas.ch/bfm/ "
            "(the BFM licence), so aware3d cannot ship it. Without it, use the built-in synthetic model "
            "(no path, or 'synthetic').")


def _read_mat(path: Path) -> dict:
    import scipy.io

    if not path.is_file():
        raise FileNotFoundError(f"face model file {path} not found. {bfm_origin_help()}")
    try:
        return scipy.io.loadmat(str(path))
    except Exception as e:  # scipy raises several types for files that are not MATLAB files
        raise ValueError(f"{path} is not a readable MATLAB .mat file ({type(e).__name__}: {e}). "
                         f"{bfm_origin_help()}") from e


def _array(mat: dict, key: str, path: Path, shape: tuple[int | None, ...]) -> np.ndarray:
    """``mat[key]`` checked against ``shape`` (None: any size); 1-D ``(n,)`` accepts (1, n) and (n, 1)."""
    if key not in mat:
        raise ValueError(f"{path} has no '{key}': not in the {BFM_FILE_NAME} layout (needs {', '.join(_KEYS)}; "
                         f"found {', '.join(k for k in mat if not k.startswith('__'))})")
    a = np.asarray(mat[key])
    if len(shape) == 1:
        if a.ndim != 2 or 1 not in a.shape:
            raise ValueError(f"{path}: '{key}' must be a row or column vector, got shape {a.shape}")
        a = a.reshape(-1)
    if a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape)):
        want = tuple("any" if s is None else s for s in shape)
        raise ValueError(f"{path}: '{key}' must have shape {want}, got {a.shape}")
    return a


def _indices(a: np.ndarray, key: str, path: Path, low: int, high: int) -> np.ndarray:
    """Integer-valued array -> int64, checked to lie in [low, high] (1-based in the file)."""
    if not np.all(np.isfinite(a)) or not np.all(np.equal(np.round(a), a)):
        raise ValueError(f"{path}: '{key}' must hold integer indices")
    a = np.ascontiguousarray(a, dtype=np.int64)
    if a.size and (a.min() < low or a.max() > high):
        raise ValueError(f"{path}: '{key}' indices must lie in [{low}, {high}] (1-based), got [{a.min()}, {a.max()}]")
    return a


def load_bfm_mat(path: str | os.PathLike, recenter: bool = True) -> FaceModelData:
    """Read a ``BFM_model_front.mat`` (layout in the module docstring) into 0-based float64 tensors.

    Args:
        path: the file.
        recenter: subtract the vertex mean from the mean shape, as Deep3DFaceRecon does (its predicted
            translations assume it).
    Raises:
        FileNotFoundError: no such file (the message says where it comes from and its licence).
        ValueError: not a .mat file, or a key missing or of the wrong shape.
    """
    path = Path(path)
    mat = _read_mat(path)
    mean = _array(mat, "meanshape", path, (None,)).astype(np.float64)
    if mean.size % 3:
        raise ValueError(f"{path}: 'meanshape' must hold 3V values, got {mean.size}")
    V3 = mean.size
    V = V3 // 3
    tri = _array(mat, "tri", path, (None, 3))
    F = tri.shape[0]
    tri = _indices(tri, "tri", path, 1, V) - 1
    point_buf = _indices(_array(mat, "point_buf", path, (V, None)), "point_buf", path, 0, F + 1) - 1
    point_buf[point_buf == F] = -1  # padding: 0 or F + 1 in the file
    keypoints = _indices(_array(mat, "keypoints", path, (NUM_LANDMARKS,)), "keypoints", path, 1, V) - 1
    mean = mean.reshape(V, 3)
    if recenter:
        mean = mean - mean.mean(axis=0, keepdims=True)

    def basis(key: str, dim: int, scale: float = 1.0) -> torch.Tensor:
        b = _array(mat, key, path, (V3, dim)).astype(np.float64) * scale
        return torch.from_numpy(np.ascontiguousarray(b.reshape(V, 3, dim)))

    return FaceModelData(
        mean_shape=torch.from_numpy(np.ascontiguousarray(mean)), identity_basis=basis("idBase", IDENTITY_DIM),
        expression_basis=basis("exBase", EXPRESSION_DIM),
        mean_albedo=torch.from_numpy(_array(mat, "meantex", path, (V3,)).astype(np.float64).reshape(V, 3) / 255.0),
        albedo_basis=basis("texBase", TEXTURE_DIM, 1 / 255.0), triangles=torch.from_numpy(tri),
        landmarks=torch.from_numpy(keypoints), name="bfm", vertex_faces=torch.from_numpy(point_buf))


def save_bfm_mat(data: FaceModelData, path: str | os.PathLike) -> None:
    """Write ``data`` in the ``BFM_model_front.mat`` layout (1-based; ``point_buf`` padded with F + 1).

    Raises ValueError when a vertex lies in more than 8 triangles (``point_buf`` holds 8).
    """
    import scipy.io

    V, F = data.num_vertices, data.num_triangles
    table = data.vertex_faces if data.vertex_faces is not None else vertex_face_table(data.triangles, V)
    if table.shape[1] > 8:
        raise ValueError(f"{data.name} face model has a vertex in {table.shape[1]} triangles; point_buf holds 8")
    point_buf = torch.full((V, 8), F, dtype=torch.int64)
    point_buf[:, : table.shape[1]] = torch.where(table < 0, F, table)

    def flat(t: torch.Tensor, scale: float = 1.0) -> np.ndarray:
        return t.detach().cpu().double().numpy().reshape(3 * V, -1) * scale

    scipy.io.savemat(str(path), {
        "meanshape": flat(data.mean_shape).reshape(1, -1), "idBase": flat(data.identity_basis),
        "exBase": flat(data.expression_basis), "meantex": flat(data.mean_albedo, 255.0).reshape(1, -1),
        "texBase": flat(data.albedo_basis, 255.0), "tri": data.triangles.numpy().astype(np.int32) + 1,
        "point_buf": point_buf.numpy().astype(np.int32) + 1,
        "keypoints": data.landmarks.numpy().astype(np.int32).reshape(1, -1) + 1,
    })
