"""Density volumes (MRC) and meshes (PLY / OBJ / GLB) from a generator's density field.

Grid ordering convention (used by every function in this module)
-----------------------------------------------------------------
A volume is a numpy array / tensor indexed ``volume[i_x, i_y, i_z]``: axis 0 walks
along world x, axis 1 along world y, axis 2 along world z, and index ``i`` along an
axis sits at ``lo + i * (hi - lo) / (N - 1)`` (a lattice that includes both bounds).
:func:`grid_points` lists points in C order of that array (z fastest, x slowest), so
``grid_points(N, b).reshape(N, N, N, 3)[i, j, k] == (x_i, y_j, z_k)`` and
``density_fn(grid_points(N, b)).reshape(N, N, N)`` is such a volume.

MRC files store columns (x) fastest, then rows (y), then sections (z);
:func:`write_mrc` transposes accordingly (``mapc, mapr, maps = 1, 2, 3``) and
:func:`read_mrc` transposes back, so ``read_mrc(write_mrc(v))[0] == v``. Note that
the ``mrcfile`` package exposes the same file's data as ``data[i_z, i_y, i_x]``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DEFAULT_BOUNDS",
    "MESH_SUFFIXES",
    "grid_points",
    "sample_density_grid",
    "write_mrc",
    "read_mrc",
    "extract_mesh",
    "save_mesh",
]

PathLike = str | os.PathLike
Bounds = tuple[tuple[float, float, float], tuple[float, float, float]]

#: Cube used by pi-GAN / EG3D shape extraction for a face model in its canonical space.
DEFAULT_BOUNDS: Bounds = ((-0.15, -0.15, -0.15), (0.15, 0.15, 0.15))

#: File suffixes accepted by :func:`save_mesh`.
MESH_SUFFIXES: tuple[str, ...] = (".ply", ".obj", ".glb")


def _check_bounds(bounds: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    lo = np.asarray(bounds[0], dtype=np.float64).reshape(-1)
    hi = np.asarray(bounds[1], dtype=np.float64).reshape(-1)
    if lo.shape != (3,) or hi.shape != (3,):
        raise ValueError(f"bounds must be ((xmin,ymin,zmin),(xmax,ymax,zmax)), got {bounds}")
    if not np.all(hi > lo):
        raise ValueError(f"bounds need max > min on every axis, got {bounds}")
    return lo, hi


def _axes(resolution: int, bounds: Bounds, device: torch.device | str | None) -> list[Tensor]:
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2 (the lattice includes both ends), got {resolution}")
    lo, hi = _check_bounds(bounds)
    return [
        torch.linspace(float(lo[a]), float(hi[a]), resolution, dtype=torch.float32, device=device)
        for a in range(3)
    ]


def grid_points(
    resolution: int, bounds: Bounds = DEFAULT_BOUNDS, device: torch.device | str | None = None
) -> Tensor:
    """Regular lattice of sample points including both bounds on each axis.

    Args:
        resolution: points per axis ``N`` (>= 2).
        bounds: ``((xmin, ymin, zmin), (xmax, ymax, zmax))`` in world units.
        device: device of the result.

    Returns:
        ``(N**3, 3)`` float32 tensor of ``(x, y, z)`` world coordinates, z varying
        fastest: ``reshape(N, N, N, 3)`` indexes ``[i_x, i_y, i_z]``. Spacing per axis is
        ``(max - min) / (N - 1)``.
    """
    xs, ys, zs = _axes(resolution, bounds, device)
    return torch.stack(torch.meshgrid(xs, ys, zs, indexing="ij"), dim=-1).reshape(-1, 3)


def sample_density_grid(
    density_fn: Callable[[Tensor], Tensor],
    resolution: int = 256,
    bounds: Bounds = DEFAULT_BOUNDS,
    chunk: int = 65536,
    progress: bool = True,
    device: torch.device | str | None = None,
) -> Tensor:
    """Evaluate a density field on the :func:`grid_points` lattice, chunk by chunk.

    Args:
        density_fn: maps ``(M, 3)`` float32 world points (on ``device``) to ``(M,)`` or
            ``(M, 1)`` densities (any float dtype; e.g. sigma >= 0 for a NeRF, or a
            negated SDF).
        resolution: points per axis ``N``.
        bounds: ``((xmin, ymin, zmin), (xmax, ymax, zmax))`` in world units.
        chunk: points per ``density_fn`` call; bounds peak memory (the full point list
            is never built).
        progress: show a tqdm bar.
        device: where the query points are created (e.g. the model's device).

    Returns:
        ``(N, N, N)`` float32 CPU tensor indexed ``[i_x, i_y, i_z]``.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    from tqdm.auto import tqdm

    xs, ys, zs = _axes(resolution, bounds, device)
    n = resolution
    total = n**3
    out = torch.empty(total, dtype=torch.float32)
    with torch.no_grad(), tqdm(
        total=total, disable=not progress, desc="density grid", unit="pt", unit_scale=True
    ) as bar:
        for start in range(0, total, chunk):
            stop = min(start + chunk, total)
            flat = torch.arange(start, stop, device=xs.device)
            # Same C-order decomposition as grid_points (z fastest), using the same
            # linspace tables so both give bit-identical coordinates.
            pts = torch.stack((xs[flat // (n * n)], ys[(flat // n) % n], zs[flat % n]), dim=-1)
            values = density_fn(pts)
            if values.ndim == 2 and values.shape[1] == 1:
                values = values[:, 0]
            if values.shape != (stop - start,):
                raise ValueError(
                    f"density_fn must return ({stop - start},) or ({stop - start}, 1) for "
                    f"{stop - start} points, got shape {tuple(values.shape)}"
                )
            out[start:stop] = values.detach().to(device="cpu", dtype=torch.float32)
            bar.update(stop - start)
    return out.view(n, n, n)


# --------------------------------------------------------------------------- MRC2014

_MRC_HEADER_BYTES = 1024
_MRC_MODES: dict[int, np.dtype] = {
    0: np.dtype(np.int8),
    1: np.dtype(np.int16),
    2: np.dtype(np.float32),
    6: np.dtype(np.uint16),
    12: np.dtype(np.float16),
}


def _to_numpy_volume(volume: np.ndarray | Tensor) -> np.ndarray:
    if isinstance(volume, Tensor):
        volume = volume.detach().cpu().numpy()
    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise ValueError(f"volume must be 3-D [i_x, i_y, i_z], got shape {vol.shape}")
    return vol


def write_mrc(
    path: PathLike,
    volume: np.ndarray | Tensor,
    voxel_size: float | Sequence[float] = 1.0,
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    label: str = "aware3d density grid",
) -> Path:
    """Write a float32 volume as an MRC2014 map (little-endian, mode 2).

    Args:
        path: output file; parent directories are created.
        volume: ``(NX, NY, NZ)`` array/tensor indexed ``[i_x, i_y, i_z]`` (module
            convention), converted to float32.
        voxel_size: voxel spacing in Angstrom (MRC's unit), one value or ``(x, y, z)``;
            the header cell is ``N * voxel_size`` per axis.
        origin: ``(x, y, z)`` origin in Angstrom, stored in header words 50-52.
        label: text for the first of the ten 80-byte labels (ASCII, truncated).

    Returns:
        The written path. The file is readable by ``mrcfile`` and viewers such as
        ChimeraX; data are stored x fastest (``mapc, mapr, maps = 1, 2, 3``).
    """
    vol = _to_numpy_volume(volume).astype(np.float32, copy=False)
    nx, ny, nz = vol.shape
    vs = np.broadcast_to(np.asarray(voxel_size, dtype=np.float64), (3,))
    org = np.asarray(origin, dtype=np.float64).reshape(3)
    # Statistics in float64 so large volumes do not lose precision in the mean.
    v64 = vol.astype(np.float64)
    dmin, dmax, dmean, rms = v64.min(), v64.max(), v64.mean(), v64.std()

    header = bytearray(_MRC_HEADER_BYTES)
    struct.pack_into("<4i", header, 0, nx, ny, nz, 2)  # words 1-4: sizes, mode 2 = float32
    struct.pack_into("<3i", header, 16, 0, 0, 0)  # nxstart, nystart, nzstart
    struct.pack_into("<3i", header, 28, nx, ny, nz)  # mx, my, mz: sampling = size
    struct.pack_into("<3f", header, 40, *(vs * (nx, ny, nz)))  # cell lengths (Angstrom)
    struct.pack_into("<3f", header, 52, 90.0, 90.0, 90.0)  # cell angles
    struct.pack_into("<3i", header, 64, 1, 2, 3)  # mapc, mapr, maps: x fastest
    struct.pack_into("<3f", header, 76, dmin, dmax, dmean)
    struct.pack_into("<2i", header, 88, 1, 0)  # ispg 1 = single 3-D volume, nsymbt 0
    struct.pack_into("<i", header, 108, 20140)  # nversion: MRC2014 format
    struct.pack_into("<3f", header, 196, *org)
    # Word 53 is the map identifier; MRC2014 (and mrcfile's check) require b"MAP ".
    header[208:212] = b"MAP "
    header[212:216] = bytes((0x44, 0x44, 0x00, 0x00))  # machine stamp: little-endian
    struct.pack_into("<f", header, 216, rms)
    text = label.encode("ascii", "replace")[:80]
    struct.pack_into("<i", header, 220, 1 if text else 0)  # nlabl
    header[224 : 224 + len(text)] = text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(bytes(header))
        # (NZ, NY, NX) C order puts x fastest, as the header's mapc=1 declares.
        fh.write(np.ascontiguousarray(vol.transpose(2, 1, 0), dtype="<f4").tobytes())
    return path


def read_mrc(path: PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """Read an MRC2014 map (modes 0, 1, 2, 6, 12; either byte order).

    Args:
        path: ``.mrc`` / ``.map`` file.

    Returns:
        ``(volume, header)``: ``volume`` is indexed ``[i_x, i_y, i_z]`` (module
        convention, honouring the file's mapc/mapr/maps), native-endian, in the file's
        dtype (float32 for mode 2). ``header`` holds the decoded fields: ``nx, ny, nz,
        mode, nxstart, nystart, nzstart, mx, my, mz, cella, cellb, mapc, mapr, maps,
        dmin, dmax, dmean, ispg, nsymbt, exttyp, nversion, origin, map, machst, rms,
        nlabl, labels`` and the derived ``voxel_size`` (Angstrom, ``cella / m``).
    """
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) < _MRC_HEADER_BYTES:
        raise ValueError(f"{path}: {len(raw)} bytes is too short for an MRC header")
    machst = raw[212:216]
    if machst[0] == 0x11 and machst[1] == 0x11:
        bo = ">"
    else:
        # 0x44 0x44 / 0x44 0x41 are little-endian; many old writers leave it zeroed,
        # and little-endian is then overwhelmingly the right guess.
        bo = "<"

    def ints(offset: int, count: int) -> tuple[int, ...]:
        return struct.unpack_from(f"{bo}{count}i", raw, offset)

    def floats(offset: int, count: int) -> tuple[float, ...]:
        return struct.unpack_from(f"{bo}{count}f", raw, offset)

    nx, ny, nz, mode = ints(0, 4)
    mapc, mapr, maps = ints(64, 3)
    ispg, nsymbt = ints(88, 2)
    nlabl = ints(220, 1)[0]
    header: dict[str, Any] = {
        "nx": nx, "ny": ny, "nz": nz, "mode": mode,
        "nxstart": ints(16, 1)[0], "nystart": ints(20, 1)[0], "nzstart": ints(24, 1)[0],
        "mx": ints(28, 1)[0], "my": ints(32, 1)[0], "mz": ints(36, 1)[0],
        "cella": floats(40, 3), "cellb": floats(52, 3),
        "mapc": mapc, "mapr": mapr, "maps": maps,
        "dmin": floats(76, 1)[0], "dmax": floats(80, 1)[0], "dmean": floats(84, 1)[0],
        "ispg": ispg, "nsymbt": nsymbt,
        "exttyp": raw[104:108], "nversion": ints(108, 1)[0],
        "origin": floats(196, 3),
        "map": raw[208:212].decode("ascii", "replace"),
        "machst": bytes(machst),
        "rms": floats(216, 1)[0],
        "nlabl": nlabl,
        "labels": [
            raw[224 + 80 * i : 304 + 80 * i].rstrip(b"\0 ").decode("ascii", "replace")
            for i in range(max(0, min(nlabl, 10)))
        ],
    }
    samples = np.array([header["mx"], header["my"], header["mz"]], dtype=np.float64)
    samples[samples <= 0] = np.array([nx, ny, nz], dtype=np.float64)[samples <= 0]
    header["voxel_size"] = tuple(float(c) for c in np.asarray(header["cella"]) / samples)

    if mode not in _MRC_MODES:
        raise ValueError(f"{path}: unsupported MRC mode {mode} (supported: {sorted(_MRC_MODES)})")
    if sorted((mapc, mapr, maps)) != [1, 2, 3]:
        raise ValueError(f"{path}: invalid axis mapping mapc/mapr/maps = {mapc},{mapr},{maps}")
    dtype = _MRC_MODES[mode].newbyteorder(bo)
    start = _MRC_HEADER_BYTES + nsymbt
    count = nx * ny * nz
    expected = start + count * dtype.itemsize
    if len(raw) < expected:
        raise ValueError(f"{path}: file has {len(raw)} bytes, header implies {expected}")
    # In the file, columns (nx values) run fastest, then rows (ny), then sections (nz).
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=start).reshape(nz, ny, nx)
    # data axis 2 holds world axis mapc-1, axis 1 holds mapr-1, axis 0 holds maps-1;
    # pick, for each world axis x, y, z, the data axis that holds it.
    data_axis_of_world = {maps - 1: 0, mapr - 1: 1, mapc - 1: 2}
    volume = data.transpose([data_axis_of_world[w] for w in range(3)])
    return np.ascontiguousarray(volume.astype(dtype.newbyteorder("="))), header


# --------------------------------------------------------------------------- meshes


def extract_mesh(
    volume: np.ndarray | Tensor,
    level: float,
    bounds: Bounds = DEFAULT_BOUNDS,
) -> tuple[np.ndarray, np.ndarray]:
    """Iso-surface of a density volume by marching cubes, in world coordinates.

    Args:
        volume: ``(NX, NY, NZ)`` density indexed ``[i_x, i_y, i_z]`` as produced by
            :func:`sample_density_grid`; higher values mean "inside".
        level: iso value (same units as the density), strictly inside the data range.
        bounds: the ``bounds`` the volume was sampled with (world units); voxel
            ``(0, 0, 0)`` sits at the min corner and the last voxel at the max corner.

    Returns:
        ``(vertices, faces)``: float32 ``(V, 3)`` world ``(x, y, z)`` positions and
        int64 ``(F, 3)`` vertex indices, wound counter-clockwise seen from outside, so
        face normals point from high density to low density.

    Raises:
        ValueError: non-3-D or non-finite volume, ``level`` outside the data range, or
            no surface at ``level``.
    """
    from skimage import measure

    vol = _to_numpy_volume(volume)
    vol = vol.astype(np.float64 if vol.dtype == np.float64 else np.float32, copy=False)
    if min(vol.shape) < 2:
        raise ValueError(f"volume needs >= 2 samples per axis, got shape {vol.shape}")
    if not np.all(np.isfinite(vol)):
        raise ValueError("volume contains NaN/inf; clean it (e.g. np.nan_to_num) first")
    vmin, vmax = float(vol.min()), float(vol.max())
    if not vmin <= level <= vmax:
        raise ValueError(
            f"level {level} is outside the volume's value range [{vmin}, {vmax}]; "
            "pick an iso level inside it"
        )
    lo, hi = _check_bounds(bounds)
    spacing = (hi - lo) / (np.asarray(vol.shape, dtype=np.float64) - 1.0)
    try:
        verts, faces, _, _ = measure.marching_cubes(vol, level=level, spacing=tuple(spacing))
    except (RuntimeError, ValueError) as err:
        raise ValueError(
            f"no surface found at level {level} in value range [{vmin}, {vmax}]: {err}"
        ) from err
    faces = faces.astype(np.int64)
    verts = verts + lo  # array axes are (x, y, z) by the module convention

    # Check the winding against the density gradient rather than trusting a library
    # default: outward normals must point downhill (from high to low density).
    tri = verts[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    idx = np.rint((tri.mean(axis=1) - lo) / spacing).astype(np.int64)
    grad = np.empty_like(normals)
    for axis in range(3):
        i = np.clip(idx, 0, np.asarray(vol.shape) - 1)
        i_lo, i_hi = i.copy(), i.copy()
        i_lo[:, axis] = np.maximum(i[:, axis] - 1, 0)
        i_hi[:, axis] = np.minimum(i[:, axis] + 1, vol.shape[axis] - 1)
        grad[:, axis] = vol[tuple(i_hi.T)] - vol[tuple(i_lo.T)]
    alignment = np.sign(np.einsum("ij,ij->i", normals, grad)).sum()
    if alignment > 0:  # most normals point uphill, i.e. inward
        faces = faces[:, ::-1]
    return verts.astype(np.float32), np.ascontiguousarray(faces)


def _colors_to_rgba8(vertex_colors: np.ndarray | Tensor, n_vertices: int) -> np.ndarray:
    if isinstance(vertex_colors, Tensor):
        vertex_colors = vertex_colors.detach().cpu().numpy()
    c = np.asarray(vertex_colors)
    if c.ndim != 2 or c.shape[0] != n_vertices or c.shape[1] not in (3, 4):
        raise ValueError(f"vertex_colors must be ({n_vertices}, 3) or ({n_vertices}, 4), got {c.shape}")
    if c.dtype != np.uint8:
        if not np.issubdtype(c.dtype, np.floating):
            raise TypeError(f"vertex_colors must be float in [0, 1] or uint8, got {c.dtype}")
        c = np.rint(np.clip(np.nan_to_num(c), 0.0, 1.0) * 255.0).astype(np.uint8)
    if c.shape[1] == 3:
        c = np.concatenate([c, np.full((n_vertices, 1), 255, np.uint8)], axis=1)
    return c


def save_mesh(
    path: PathLike,
    vertices: np.ndarray | Tensor,
    faces: np.ndarray | Tensor,
    vertex_colors: np.ndarray | Tensor | None = None,
) -> Path:
    """Save a triangle mesh with optional per-vertex colours via trimesh.

    Args:
        path: output file ending in ``.ply`` (binary), ``.obj`` (colours as
            ``v x y z r g b`` floats in [0, 1]) or ``.glb`` (glTF binary, ``COLOR_0``);
            parent directories are created.
        vertices: ``(V, 3)`` float positions (world units).
        faces: ``(F, 3)`` integer vertex indices.
        vertex_colors: ``None``, or ``(V, 3)``/``(V, 4)`` RGB(A): float in ``[0, 1]``
            (clamped) or ``uint8`` in ``[0, 255]``.

    Returns:
        The written path. Vertices are written unmerged and in order
        (``process=False``).
    """
    import trimesh

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise ValueError(
            f"unsupported mesh suffix {path.suffix!r} for {path}; supported: "
            + ", ".join(MESH_SUFFIXES)
        )
    if isinstance(vertices, Tensor):
        vertices = vertices.detach().cpu().numpy()
    if isinstance(faces, Tensor):
        faces = faces.detach().cpu().numpy()
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"faces must be an integer (F, 3) array, got {f.shape} {f.dtype}")
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"faces index vertices outside [0, {len(v)})")
    colors = None if vertex_colors is None else _colors_to_rgba8(vertex_colors, len(v))
    mesh = trimesh.Trimesh(vertices=v, faces=f.astype(np.int64), vertex_colors=colors, process=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".obj":
        # Explicit so a trimesh default change cannot silently drop the colours.
        mesh.export(path, file_type="obj", include_color=True, include_normals=False)
    else:
        mesh.export(path, file_type=suffix[1:])
    return path
