"""Tests for aware3d.export.shapes: density grids, MRC files and meshes."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from aware3d.export.shapes import (
    DEFAULT_BOUNDS,
    extract_mesh,
    grid_points,
    read_mrc,
    sample_density_grid,
    save_mesh,
    write_mrc,
)

RADIUS = 0.1
RES = 64
VOXEL = 0.3 / (RES - 1)


def _clamped_sphere(p: torch.Tensor) -> torch.Tensor:
    return (1.0 - p.norm(dim=-1) / RADIUS).clamp(min=0.0)


def _sdf_sphere(p: torch.Tensor) -> torch.Tensor:
    # Positive inside ("density-like"), zero on the sphere of radius RADIUS.
    return RADIUS - p.norm(dim=-1)


@pytest.fixture(scope="module")
def sphere_volume() -> torch.Tensor:
    return sample_density_grid(_sdf_sphere, resolution=RES, progress=False)


# ----------------------------------------------------------------------------- grids


def test_grid_points_ordering_and_ends() -> None:
    bounds = ((-1.0, 0.0, 2.0), (1.0, 4.0, 3.0))
    pts = grid_points(5, bounds)
    assert pts.shape == (125, 3) and pts.dtype == torch.float32
    lattice = pts.reshape(5, 5, 5, 3)
    # Documented convention: reshape(N,N,N,3) indexes [i_x, i_y, i_z], z fastest.
    assert lattice[4, 0, 0].tolist() == [1.0, 0.0, 2.0]
    assert lattice[0, 4, 0].tolist() == [-1.0, 4.0, 2.0]
    assert lattice[0, 0, 4].tolist() == [-1.0, 0.0, 3.0]
    assert lattice[2, 1, 3].tolist() == pytest.approx([0.0, 1.0, 2.75])
    assert pts[1].tolist() == [-1.0, 0.0, 2.25]


def test_sample_density_grid_matches_direct_evaluation_in_chunks() -> None:
    calls: list[int] = []

    def fn(p: torch.Tensor) -> torch.Tensor:
        calls.append(len(p))
        assert not torch.is_grad_enabled()
        return (p[:, 0] * 100 + p[:, 1] * 10 + p[:, 2]).unsqueeze(-1)  # (M, 1) accepted

    bounds = ((0.0, 0.0, 0.0), (1.0, 2.0, 3.0))
    vol = sample_density_grid(fn, resolution=7, bounds=bounds, chunk=50, progress=False)
    assert vol.shape == (7, 7, 7) and vol.dtype == torch.float32
    assert max(calls) <= 50 and sum(calls) == 343
    pts = grid_points(7, bounds)
    assert torch.equal(vol, (pts[:, 0] * 100 + pts[:, 1] * 10 + pts[:, 2]).reshape(7, 7, 7))
    with pytest.raises(ValueError, match="density_fn"):
        sample_density_grid(lambda p: p, resolution=4, progress=False)


# ----------------------------------------------------------------------------- MRC


def test_mrc_round_trip_and_header(tmp_path: Path) -> None:
    vol = sample_density_grid(_clamped_sphere, resolution=RES, progress=False)
    path = write_mrc(tmp_path / "out" / "sphere.mrc", vol, voxel_size=VOXEL, origin=(-0.15,) * 3)
    raw = path.read_bytes()
    assert len(raw) == 1024 + RES**3 * 4
    assert struct.unpack_from("<4i", raw, 0) == (RES, RES, RES, 2)
    assert struct.unpack_from("<3i", raw, 64) == (1, 2, 3)
    assert raw[208:212] == b"MAP "  # MRC2014 map identifier (word 53)
    assert raw[212:216] == bytes((0x44, 0x44, 0, 0))

    back, header = read_mrc(path)
    assert back.dtype == np.float32 and np.array_equal(back, vol.numpy())
    assert (header["nx"], header["ny"], header["nz"], header["mode"]) == (RES, RES, RES, 2)
    assert header["map"] == "MAP " and header["nversion"] == 20140
    assert header["cella"] == pytest.approx((RES * VOXEL,) * 3, rel=1e-6)
    assert header["cellb"] == (90.0, 90.0, 90.0)
    assert header["voxel_size"] == pytest.approx((VOXEL,) * 3, rel=1e-6)
    assert header["origin"] == pytest.approx((-0.15,) * 3)
    assert header["dmin"] == 0.0 and header["dmax"] == pytest.approx(float(vol.max()))
    assert header["dmean"] == pytest.approx(float(vol.double().mean()), rel=1e-5)


def test_mrc_axis_ordering(tmp_path: Path) -> None:
    # Non-cubic and non-symmetric so any transposition or flip is caught.
    bounds = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))
    vol = sample_density_grid(
        lambda p: (p[:, 0] > 0).float() * (1 + p[:, 1] + 2 * p[:, 2] + 3), resolution=8,
        bounds=bounds, progress=False,
    )
    vol = vol[:, :6, :5].contiguous()  # (nx, ny, nz) = (8, 6, 5)
    path = write_mrc(tmp_path / "half.mrc", vol)
    back, header = read_mrc(path)
    assert (header["nx"], header["ny"], header["nz"]) == (8, 6, 5)
    assert back.shape == (8, 6, 5)
    assert np.all(back[:4] == 0) and np.all(back[4:] > 0)  # x > 0 is the upper half of axis 0
    # Raw file order: x (columns) fastest, as MRC requires.
    data = np.frombuffer(path.read_bytes()[1024:], "<f4")
    assert np.array_equal(data[:8], vol[:, 0, 0].numpy())
    assert np.array_equal(data.reshape(5, 6, 8), vol.numpy().transpose(2, 1, 0))


def test_mrc_readable_by_mrcfile(tmp_path: Path) -> None:
    import mrcfile  # a test dependency (pyproject [test]): never skipped
    vol = np.random.default_rng(0).random((6, 5, 4), dtype=np.float32)
    vol[3:] += 10.0  # x > mid marks the upper half of x
    path = write_mrc(tmp_path / "r.mrc", vol, voxel_size=(1.0, 2.0, 3.0), origin=(1, 2, 3))
    with mrcfile.open(path, permissive=False) as mrc:
        # mrcfile indexes data [z, y, x].
        assert mrc.data.shape == (4, 5, 6)
        assert np.array_equal(mrc.data, vol.transpose(2, 1, 0))
        assert tuple(mrc.voxel_size.tolist()) == (1.0, 2.0, 3.0)
        assert tuple(mrc.header.origin.tolist()) == (1.0, 2.0, 3.0)
        assert mrc.is_volume()
    assert mrcfile.validate(str(path), print_file=io.StringIO())


# ----------------------------------------------------------------------------- meshes


def test_extract_mesh_sphere(sphere_volume: torch.Tensor) -> None:
    verts, faces = extract_mesh(sphere_volume, 0.0, DEFAULT_BOUNDS)
    assert verts.dtype == np.float32 and verts.shape[1] == 3
    assert faces.dtype == np.int64 and faces.shape[1] == 3
    radii = np.linalg.norm(verts, axis=1)
    assert np.all(np.abs(radii - RADIUS) <= VOXEL)
    mesh = trimesh.Trimesh(verts, faces, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume == pytest.approx(4.0 / 3.0 * np.pi * RADIUS**3, rel=0.05)  # > 0: outward
    centroids = verts[faces].mean(axis=1)
    assert np.mean(np.sum(mesh.face_normals * centroids, axis=1) > 0) > 0.99


def test_extract_mesh_offset_sphere_and_inverted_field() -> None:
    # Off-centre sphere in asymmetric bounds checks the spacing/offset per axis.
    bounds = ((0.0, -1.0, 2.0), (0.6, -0.4, 2.3))
    centre = torch.tensor([0.3, -0.7, 2.15])
    vol = sample_density_grid(
        lambda p: 0.1 - (p - centre).norm(dim=-1), resolution=(48), bounds=bounds, progress=False
    )
    verts, faces = extract_mesh(vol.numpy(), 0.0, bounds)
    assert np.abs(np.linalg.norm(verts - centre.numpy(), axis=1) - 0.1).max() < 0.3 / 47
    assert trimesh.Trimesh(verts, faces, process=False).volume > 0
    # A field that is high *outside* gives a surface whose outward side is the inside
    # of the ball (normals still point from high to low density).
    verts2, faces2 = extract_mesh(-vol, 0.0, bounds)
    assert trimesh.Trimesh(verts2, faces2, process=False).volume < 0


def test_extract_mesh_level_outside_range(sphere_volume: torch.Tensor) -> None:
    lo, hi = float(sphere_volume.min()), float(sphere_volume.max())
    with pytest.raises(ValueError, match="range") as err:
        extract_mesh(sphere_volume, hi + 1.0, DEFAULT_BOUNDS)
    assert f"{lo}" in str(err.value) and f"{hi}" in str(err.value)
    with pytest.raises(ValueError, match="range"):
        extract_mesh(sphere_volume, lo - 1.0, DEFAULT_BOUNDS)


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".glb"])
def test_save_mesh_with_vertex_colors(tmp_path: Path, sphere_volume: torch.Tensor, suffix: str) -> None:
    verts, faces = extract_mesh(sphere_volume[::2, ::2, ::2].contiguous(), 0.0, DEFAULT_BOUNDS)
    colors = (verts - verts.min(0)) / (verts.max(0) - verts.min(0))  # float in [0, 1]
    path = save_mesh(tmp_path / "deep" / f"mesh{suffix}", verts, faces, colors)
    loaded = trimesh.load(path, process=False, force="mesh")
    assert len(loaded.vertices) == len(verts) and len(loaded.faces) == len(faces)
    assert np.allclose(loaded.vertices, verts, atol=1e-6)
    assert loaded.visual.kind == "vertex"
    expected = np.rint(colors * 255).astype(np.uint8)
    got = np.asarray(loaded.visual.vertex_colors)[:, :3]
    if suffix == ".obj":
        assert np.abs(got.astype(int) - expected).max() <= 1  # stored as 8-digit floats
    else:
        assert np.array_equal(got, expected)


def test_save_mesh_uint8_colors_and_bad_suffix(tmp_path: Path) -> None:
    mesh = trimesh.creation.icosahedron()
    colors = np.random.default_rng(1).integers(0, 256, (len(mesh.vertices), 3), dtype=np.uint8)
    path = save_mesh(tmp_path / "ico.ply", mesh.vertices, mesh.faces, colors)
    loaded = trimesh.load(path, process=False)
    assert np.array_equal(np.asarray(loaded.visual.vertex_colors)[:, :3], colors)
    plain = trimesh.load(save_mesh(tmp_path / "plain.obj", mesh.vertices, mesh.faces), process=False)
    assert len(plain.vertices) == len(mesh.vertices)
    with pytest.raises(ValueError, match=r"\.ply.*\.obj.*\.glb"):
        save_mesh(tmp_path / "m.stl", mesh.vertices, mesh.faces)
