"""Datasets: folder/zip loading, labels (EG3D and EpiGRAF layouts), preprocessing, mirroring (checked
geometrically), corrupt files, fingerprints, DataLoader workers and the ``aware3d dataset`` tool."""

import io
import json
import math
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aware3d.cameras import (
    Cameras, angles_from_cam2world, cam2world_from_angles, fov_to_focal, from_eg3d_label, generate_rays,
    intrinsics_from_fov, pigan_to_epigraf, to_eg3d_label,
)
from aware3d.cli.main import main as cli_main
from aware3d.data import (
    DatasetError, DatasetNotFoundError, ImageBatch, ImageFolderDataset, Preprocess, SyntheticImageDataset,
    mirror_cam2world, mirror_eg3d_label, mirror_intrinsics, open_dataset,
)
from aware3d.data.images import crop_box, epigraf_labels
from aware3d.data.synthetic import Primitives, Scene, make_synthetic, render_scene
from aware3d.tools.dataset import DatasetOptions, camera_angles_if_exact, run as run_dataset_tool

RES = 16
S = torch.tensor([-1.0, 1.0, 1.0])  # reflection across the world x = 0 plane


def _rgb(h: int, w: int, seed: int) -> np.ndarray:
    return (np.random.RandomState(seed).rand(h, w, 3) * 255).astype(np.uint8)


def _png_bytes(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def _make_folder(root: Path, n: int = 3) -> list[str]:
    """n random RGB pictures of different shapes, one in a sub-folder, plus a non-image file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "sub").mkdir(exist_ok=True)
    names = [f"img{i}.png" for i in range(n - 1)] + ["sub/last.png"]
    for i, name in enumerate(names):
        Image.fromarray(_rgb(RES + 4 * i, RES + 2 * i + 6, seed=i)).save(root / name)
    (root / "notes.txt").write_text("not an image, ignored")
    return sorted(names)


def _zip_folder(root: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(root).as_posix())
    return out


def _look_at_label(yaw: float, pitch: float, radius: float = 1.0, fov: float = 12.0) -> torch.Tensor:
    c2w = cam2world_from_angles(torch.tensor([yaw]), torch.tensor([pitch]), radius)
    return to_eg3d_label(c2w, intrinsics_from_fov(fov))[0]


# ============================================================================================ loading

def test_folder_and_zip_load_the_same_sorted_images(tmp_path):
    names = _make_folder(tmp_path / "pics")
    ds = open_dataset(str(tmp_path / "pics"), RES)
    assert isinstance(ds, ImageFolderDataset) and ds.files == names == ["img0.png", "img1.png", "sub/last.png"]
    assert len(ds) == 3 and not ds.has_labels and ds.name == "pics"
    batch = ds.get_batch([2, 0])
    assert batch.image.shape == (2, 3, RES, RES) and batch.image.dtype == torch.float32
    assert batch.image.min() >= -1 and batch.image.max() <= 1 and batch.image.std() > 0.3
    assert batch.index.tolist() == [2, 0] and batch.index.dtype == torch.int64
    assert not batch.has_label.any() and torch.equal(batch.label, torch.zeros(2, 25))

    zipped = open_dataset(str(_zip_folder(tmp_path / "pics", tmp_path / "pics.zip")), RES)
    assert zipped.files == names and zipped.name == "pics"
    assert torch.equal(zipped.get_batch([2, 0]).image, batch.image)
    item = zipped[1]
    assert item.image.shape == (3, RES, RES) and int(item.index) == 1


def test_centre_crop_keeps_the_middle_square_and_scales_to_minus_one_one(tmp_path):
    # 30 wide x 20 high: red | green (the middle 20 columns) | blue. The centre crop is exactly the green.
    arr = np.zeros((20, 30, 3), np.uint8)
    arr[:, :5] = (255, 0, 0)
    arr[:, 5:25] = (0, 255, 64)
    arr[:, 25:] = (0, 0, 255)
    (tmp_path / "d").mkdir()
    Image.fromarray(arr).save(tmp_path / "d" / "a.png")
    img = open_dataset(str(tmp_path / "d"), 20).get_batch([0]).image[0]
    expected = torch.tensor([-1.0, 1.0, 64 / 127.5 - 1]).view(3, 1, 1).expand(3, 20, 20)
    assert torch.allclose(img, expected, atol=1e-6)
    # Downscaled, still only green (the box never reaches the red/blue bands).
    small = open_dataset(str(tmp_path / "d"), 8).get_batch([0]).image[0]
    assert torch.allclose(small, expected[:, :8, :8], atol=1e-6)
    # Stretch keeps the bands: the first column is red.
    stretched = open_dataset(str(tmp_path / "d"), 20, preprocess="pigan-carla").get_batch([0]).image[0]
    assert stretched[0, :, 0].min() > 0.9 and stretched[2, :, -1].min() > 0.9


def test_crop_boxes_by_hand():
    assert crop_box(30, 20, Preprocess()) == (5.0, 0.0, 25.0, 20.0)
    assert crop_box(20, 31, Preprocess()) == (0.0, 5.0, 20.0, 25.0)
    assert crop_box(30, 20, Preprocess(crop="stretch")) == (0.0, 0.0, 30.0, 20.0)
    # pi-GAN CelebA on a 178 x 218 CelebA picture: Resize(320) -> 320 x 391, CenterCrop(256) at
    # left 32, top round(67.5) = 68; back in stored pixels (x 178/320 = 0.55625).
    box = crop_box(178, 218, Preprocess(crop="pigan-celeba"))
    assert box == pytest.approx((17.8, 37.825, 160.2, 180.225), abs=1e-9)
    assert crop_box(40, 30, Preprocess(crop_box=(2, 3, 10))) == (3.0, 2.0, 13.0, 12.0)
    with pytest.raises(DatasetError, match="does not fit"):
        crop_box(12, 12, Preprocess(crop_box=(5, 5, 10)))
    with pytest.raises(ValueError, match="valid: center, pigan-celeba, stretch"):
        Preprocess(crop="middle")


def test_greyscale_palette_alpha_and_16bit_pictures_become_rgb(tmp_path):
    d = tmp_path / "modes"
    d.mkdir()
    Image.fromarray(np.full((8, 8), 51, np.uint8), mode="L").save(d / "a_grey.png")
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)  # fully transparent
    Image.fromarray(rgba, mode="RGBA").save(d / "b_rgba.png")
    Image.fromarray(np.full((8, 8, 3), (200, 100, 0), np.uint8)).quantize(colors=4).save(d / "c_palette.png")
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(d / "d_16bit.png")
    Image.fromarray(np.full((8, 8), 0, np.uint8), mode="L").save(d / "e_grey.bmp")
    imgs = open_dataset(str(d), 8).get_batch(range(5)).image
    v = lambda x: x / 127.5 - 1  # noqa: E731
    assert torch.allclose(imgs[0], torch.full((3, 8, 8), v(51)), atol=1e-6)
    assert torch.allclose(imgs[1], torch.tensor([v(10), v(20), v(30)]).view(3, 1, 1).expand(3, 8, 8), atol=1e-6)
    assert torch.allclose(imgs[2], torch.tensor([v(200), v(100), v(0)]).view(3, 1, 1).expand(3, 8, 8), atol=1e-6)
    assert torch.allclose(imgs[3], torch.ones(3, 8, 8))  # 16-bit white stays white (not clipped garbage)
    assert torch.allclose(imgs[4], -torch.ones(3, 8, 8))
    white = open_dataset(str(d), 8, preprocess=Preprocess(alpha="white")).get_batch([1]).image[0]
    assert torch.allclose(white, torch.ones(3, 8, 8))


def test_length_keeps_a_seeded_sorted_subset(tmp_path):
    _make_folder(tmp_path / "p", n=5)
    a = open_dataset(str(tmp_path / "p"), RES, length=3, seed=1)
    b = open_dataset(str(tmp_path / "p"), RES, length=3, seed=1)
    full = open_dataset(str(tmp_path / "p"), RES)
    assert len(a) == 3 and a.files == b.files and a.files == sorted(a.files)
    assert set(a.files) < set(full.files)
    assert {tuple(open_dataset(str(tmp_path / "p"), RES, length=3, seed=s).files) for s in range(6)} != {tuple(a.files)}


# ============================================================================================= labels

def test_eg3d_labels_with_nulls_and_errors(tmp_path):
    names = _make_folder(tmp_path / "p")
    lab = [_look_at_label(1.3, 1.4), _look_at_label(1.9, 1.6)]
    meta = {"labels": [[names[0], lab[0].tolist()], [names[1], None], [names[2], lab[1].tolist()]]}
    (tmp_path / "p" / "dataset.json").write_text(json.dumps(meta))
    ds = open_dataset(str(tmp_path / "p"), RES)
    b = ds.get_batch([0, 1, 2])
    assert b.has_label.tolist() == [True, False, True] and not ds.has_labels
    assert torch.equal(b.label[0], lab[0]) and torch.equal(b.label[2], lab[1]) and not b.label[1].any()

    # A label for a file that does not exist: named in the error.
    meta["labels"].append(["ghost.png", lab[0].tolist()])
    (tmp_path / "p" / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="ghost.png"):
        open_dataset(str(tmp_path / "p"), RES)
    # An image missing from a table that labels others: named too.
    meta["labels"] = meta["labels"][:2]
    (tmp_path / "p" / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="sub/last.png"):
        open_dataset(str(tmp_path / "p"), RES)
    # A label of the wrong length.
    (tmp_path / "p" / "dataset.json").write_text(json.dumps({"labels": [[n, [0.0] * 24] for n in names]}))
    with pytest.raises(DatasetError, match="25"):
        open_dataset(str(tmp_path / "p"), RES)


def test_epigraf_angles_to_label_and_back(tmp_path):
    names = _make_folder(tmp_path / "p")
    angles = [[0.3, math.pi / 2 - 0.1, 0.0], [-0.5, math.pi / 2 + 0.2, 0.0], [0.0, math.pi / 2, 0.0]]
    # Keys without extension, as EpiGRAF matches them.
    meta = {"camera_angles": {n.rsplit(".", 1)[0]: a for n, a in zip(names, angles)},
            "camera": {"radius": 2.7, "fov_deg": 18.0}}
    (tmp_path / "p" / "dataset.json").write_text(json.dumps(meta))
    ds = open_dataset(str(tmp_path / "p"), RES)
    assert ds.has_labels
    assert ds.camera_info == {"source": "camera_angles", "radius": 2.7, "fov_deg": 18.0, "angles": "epigraf",
                              "defaults_used": ["angles"]}
    c2w, K = from_eg3d_label(ds.get_batch([0, 1, 2]).label)
    yaw, pitch, radius = angles_from_cam2world(c2w)
    assert torch.allclose(radius, torch.full((3,), 2.7), atol=1e-5)
    assert torch.allclose(pigan_to_epigraf(yaw, pitch), torch.tensor(angles), atol=1e-5)
    assert torch.allclose(K[:, 0, 0], torch.full((3,), fov_to_focal(18.0)), atol=1e-6)
    # Frontal [0, pi/2, 0] sits on +z looking at the origin.
    assert torch.allclose(c2w[2, :3, 3], torch.tensor([0.0, 0.0, 2.7]), atol=1e-5)
    assert torch.allclose(c2w[2, :3, 2], torch.tensor([0.0, 0.0, -1.0]), atol=1e-6)

    # Without "camera": the defaults (radius 1, fov 12) are used and recorded.
    del meta["camera"]
    (tmp_path / "p" / "dataset.json").write_text(json.dumps(meta))
    ds = open_dataset(str(tmp_path / "p"), RES)
    assert ds.camera_info["defaults_used"] == ["angles", "fov_deg", "radius"]
    assert ds.camera_info["radius"] == 1.0 and ds.camera_info["fov_deg"] == 12.0
    # Raw spherical angles (EpiGRAF's renderer): (pi/2, pi/2) is the frontal camera.
    spherical = epigraf_labels(torch.tensor([[math.pi / 2, math.pi / 2, 0.0]]), 1.0, 12.0, "spherical")
    assert torch.allclose(spherical, epigraf_labels(torch.tensor([[0.0, math.pi / 2, 0.0]])), atol=1e-6)
    # Roll is refused with the reason.
    meta["camera_angles"][names[0].rsplit(".", 1)[0]] = [0.1, 0.0, 0.3]
    (tmp_path / "p" / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="roll"):
        open_dataset(str(tmp_path / "p"), RES)


# ============================================================================================ mirror

def test_mirror_flips_image_and_label(tmp_path):
    names = _make_folder(tmp_path / "p")
    labels = [_look_at_label(1.2, 1.5), _look_at_label(1.7, 1.3), None]
    meta = {"labels": [[n, None if l is None else l.tolist()] for n, l in zip(names, labels)]}
    (tmp_path / "p" / "dataset.json").write_text(json.dumps(meta))
    ds = open_dataset(str(tmp_path / "p"), RES, mirror=True)
    assert len(ds) == 6
    b = ds.get_batch([0, 1, 2, 3, 4, 5])
    assert torch.equal(b.image[3:], b.image[:3].flip(-1))
    assert not torch.equal(b.image[3], b.image[0])
    assert torch.equal(b.label[3:5], mirror_eg3d_label(b.label[:2]))
    assert b.has_label.tolist() == [True, True, False, True, True, False] and not b.label[5].any()
    assert b.index.tolist() == list(range(6))
    # pi-GAN angles (yaw, pitch) -> (pi - yaw, pitch); the mirrored camera is again the look-at camera.
    c2w, _ = from_eg3d_label(b.label[3:5])
    yaw, pitch, _ = angles_from_cam2world(c2w)
    assert torch.allclose(yaw, torch.tensor([math.pi - 1.2, math.pi - 1.7]), atol=1e-5)
    assert torch.allclose(pitch, torch.tensor([1.5, 1.3]), atol=1e-5)
    assert torch.allclose(c2w, cam2world_from_angles(yaw, pitch), atol=1e-5)


def test_mirrored_camera_rays_are_the_reflected_rays_of_the_flipped_columns():
    # A general camera: tilted, off-centre principal point, skew, not looking at the origin.
    c2w = cam2world_from_angles(torch.tensor([1.1]), torch.tensor([1.2]), 2.0, target=torch.tensor([[0.1, -0.2, 0.3]]))
    K = torch.tensor([[[1.3, 0.05, 0.42], [0.0, 1.1, 0.55], [0.0, 0.0, 1.0]]])
    H, W = 5, 7
    o, d = generate_rays(Cameras(c2w, K), H, W)
    om, dm = generate_rays(Cameras(mirror_cam2world(c2w), mirror_intrinsics(K)), H, W)
    d, dm = d.view(H, W, 3), dm.view(H, W, 3)
    assert torch.allclose(dm, d.flip(1) * S, atol=1e-6)
    assert torch.allclose(om[0, 0], o[0, 0] * S)
    # Rotation stays proper (det +1) and mirroring twice is the identity.
    assert torch.allclose(torch.linalg.det(mirror_cam2world(c2w)[:, :3, :3]), torch.ones(1), atol=1e-6)
    assert torch.equal(mirror_cam2world(mirror_cam2world(c2w)), c2w)
    assert torch.allclose(mirror_intrinsics(mirror_intrinsics(K)), K, atol=1e-7)


def test_mirrored_camera_renders_the_mirrored_scene_as_the_flipped_image():
    # An asymmetric scene: two ellipsoids off the x = 0 plane, and its reflection.
    centers = torch.tensor([[[0.12, 0.02, 0.0], [-0.05, -0.1, 0.08]]])
    inv_r = 1 / torch.tensor([[[0.1, 0.15, 0.08], [0.06, 0.05, 0.1]]])
    albedo = torch.tensor([[[0.9, 0.2, 0.1], [0.1, 0.8, 0.3]]])
    active = torch.ones(1, 2, dtype=torch.bool)
    scene = Scene([Primitives(centers, inv_r, albedo, active)], ("a", "b"))
    mirrored = Scene([Primitives(centers * S, inv_r, albedo, active)], ("a", "b"))
    cams = Cameras.from_angles(1.3, 1.4, fov_deg=40.0)
    light = torch.tensor([0.5, 0.6, 0.62])
    kw = dict(height=24, width=24, background=torch.tensor([0.5, 0.5, 0.5]), antialias=False)
    ref = render_scene(scene, cams, light, **kw)
    label = mirror_eg3d_label(cams.eg3d_label())
    c2w, K = from_eg3d_label(label)
    out = render_scene(mirrored, Cameras(c2w, K), light * S, **kw)
    assert 0.05 < ref.mask.mean() < 0.9
    assert torch.equal(out.mask, ref.mask.flip(-1))
    assert torch.allclose(out.depth, ref.depth.flip(-1), atol=1e-5)
    assert torch.allclose(out.image, ref.image.flip(-1), atol=1e-4)
    # The unmirrored camera does not give the flip (the scene is asymmetric).
    plain = render_scene(mirrored, cams, light * S, **kw)
    assert (plain.image - ref.image.flip(-1)).abs().max() > 0.3


def test_synthetic_adapter_batches_labels_mirror_and_ground_truth():
    ds = open_dataset("synthetic-heads", RES, mirror=True, length=6, seed=2)
    assert isinstance(ds, SyntheticImageDataset) and len(ds) == 12 and ds.has_labels
    src = make_synthetic("synthetic-heads", resolution=RES, length=6, seed=2)
    ref = src.get_batch([1, 4])
    b = ds.get_batch(torch.tensor([1, 10]))
    assert torch.equal(b.image[0], ref.image[0]) and torch.equal(b.label[0], ref.eg3d_label[0])
    assert torch.equal(b.image[1], ref.image[1].flip(-1))
    assert torch.equal(b.label[1], mirror_eg3d_label(ref.eg3d_label[1:2])[0])
    gt = ds.ground_truth([10, 1])
    assert gt.index.tolist() == [10, 1]
    assert torch.equal(gt.depth[0], ref.depth[1].flip(-1)) and torch.equal(gt.depth[1], ref.depth[0])
    assert torch.allclose(gt.angles[0], torch.stack([math.pi - ref.angles[1, 0], ref.angles[1, 1]]))
    assert torch.allclose(gt.normals[0, 0], -ref.normals[1, 0].flip(-1))
    assert torch.equal(gt.eg3d_label[0], b.label[1])


# ======================================================================================= corrupt files

def test_truncated_png_is_caught_and_can_be_skipped(tmp_path):
    names = _make_folder(tmp_path / "p")
    good = (tmp_path / "p" / names[1]).read_bytes()
    (tmp_path / "p" / "bad.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(DatasetError, match=r"bad\.png.*skip_corrupt=True"):
        open_dataset(str(tmp_path / "p"), RES)
    with pytest.warns(UserWarning, match="bad.png"):
        ds = open_dataset(str(tmp_path / "p"), RES, skip_corrupt=True)
    assert ds.skipped == ("bad.png",) and "truncated" in ds.skip_reasons["bad.png"]
    assert len(ds) == 3 and "bad.png" not in ds.files


def test_png_missing_only_its_end_chunk_and_truncated_jpeg_are_caught(tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    png = _png_bytes(_rgb(12, 12, 0))
    (d / "a.png").write_bytes(png[:-12])  # pixels complete, IEND gone
    buf = io.BytesIO()
    Image.fromarray(_rgb(12, 12, 1)).save(buf, format="JPEG")
    (d / "b.jpg").write_bytes(buf.getvalue()[:-40])
    (d / "c.png").write_bytes(png)
    with pytest.warns(UserWarning):
        ds = open_dataset(str(d), 8, skip_corrupt=True)
    assert ds.skipped == ("a.png", "b.jpg") and ds.files == ["c.png"]


def test_not_an_image_empty_folder_and_missing_path(tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    with pytest.raises(DatasetError, match="no images"):
        open_dataset(str(d), RES)
    (d / "fake.png").write_text("hello, I am text")
    with pytest.raises(DatasetError, match="fake.png.*not a readable image"):
        open_dataset(str(d), RES)
    with pytest.raises(DatasetNotFoundError, match="synthetic-heads.*folder") as e:
        open_dataset(str(tmp_path / "nowhere"), RES)
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, ValueError)
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(DatasetError, match="neither a folder nor a .zip"):
        open_dataset(str(tmp_path / "x.txt"), RES)
    with pytest.raises(DatasetError, match="positive integer"):
        open_dataset("synthetic-heads", 0)


def test_file_broken_after_the_scan_raises_at_load_naming_it(tmp_path):
    names = _make_folder(tmp_path / "p")
    ds = open_dataset(str(tmp_path / "p"), RES)
    ds.get_batch([0, 1])
    (tmp_path / "p" / names[1]).write_bytes(b"\x89PNG garbage")
    with pytest.raises(DatasetError, match="img1.png"):
        ds.get_batch([0, 1])


# ================================================================================ resolution, fingerprint

def test_at_resolution_equals_opening_at_that_resolution(tmp_path):
    _make_folder(tmp_path / "p")
    ds = open_dataset(str(tmp_path / "p"), RES, mirror=True)
    small = ds.at_resolution(8)
    assert small.resolution == 8 and ds.resolution == RES and len(small) == len(ds)
    direct = open_dataset(str(tmp_path / "p"), 8, mirror=True)
    assert torch.equal(small.get_batch([0, 4]).image, direct.get_batch([0, 4]).image)
    assert ds.get_batch([0]).image.shape[-1] == RES
    assert small.fingerprint() != ds.fingerprint()
    syn = open_dataset("synthetic-objects", 8, length=3)
    assert torch.equal(syn.at_resolution(12).get_batch([2]).image,
                       open_dataset("synthetic-objects", 12, length=3).get_batch([2]).image)


def test_fingerprint_tracks_content(tmp_path):
    names = _make_folder(tmp_path / "p")
    a = open_dataset(str(tmp_path / "p"), RES).fingerprint()
    assert len(a) == 64 and a == open_dataset(str(tmp_path / "p"), RES).fingerprint()
    assert a != open_dataset(str(tmp_path / "p"), RES, mirror=True).fingerprint()
    assert a != open_dataset(str(tmp_path / "p"), RES, preprocess="stretch").fingerprint()
    assert a == open_dataset(str(tmp_path / "p"), RES, check="none").fingerprint()
    Image.fromarray(_rgb(RES, RES, seed=99)).save(tmp_path / "p" / names[0])
    assert open_dataset(str(tmp_path / "p"), RES).fingerprint() != a
    s = open_dataset("synthetic-heads", RES, length=4).fingerprint()
    assert s == open_dataset("synthetic-heads", RES, length=4).fingerprint()
    assert s != open_dataset("synthetic-heads", RES, length=4, seed=1).fingerprint()


def test_dataloader_with_two_workers_over_a_zip_matches_direct_loading(tmp_path):
    _make_folder(tmp_path / "p", n=5)
    ds = open_dataset(str(_zip_folder(tmp_path / "p", tmp_path / "p.zip")), RES, mirror=True)
    direct = ds.get_batch(range(len(ds)))  # opens the zip in this process before the workers fork
    loader = ds.loader(batch_size=4, shuffle=False, num_workers=2, drop_last=False)
    batches = list(loader)
    assert all(isinstance(b, ImageBatch) for b in batches) and [len(b) for b in batches] == [4, 4, 2]
    got = ImageBatch.collate([b[i] for b in batches for i in range(len(b))])
    assert torch.equal(got.image, direct.image) and torch.equal(got.index, direct.index)
    assert torch.equal(got.label, direct.label)


# ================================================================================================ tool

def test_dataset_tool_from_a_folder_with_poses_round_trips(tmp_path):
    names = _make_folder(tmp_path / "p")
    good = (tmp_path / "p" / names[0]).read_bytes()
    (tmp_path / "p" / "zz_broken.png").write_bytes(good[:50])
    lab = _look_at_label(1.4, 1.5, radius=1.0, fov=12.0)
    poses = {names[0]: {"yaw": 1.2, "pitch": 1.6}, names[1]: lab.tolist(), names[2]: {"yaw": 2.0, "pitch": 1.4},
             "zz_broken.png": None}
    (tmp_path / "poses.json").write_text(json.dumps(poses))
    out = tmp_path / "out" / "set.zip"
    opts = DatasetOptions(source=str(tmp_path / "p"), out=str(out), resolution=RES, poses=str(tmp_path / "poses.json"),
                          skip_corrupt=True, batch=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_dataset_tool(opts)
    assert sorted(p.name for p in out.parent.iterdir()) == ["set.zip", "set.zip.json"]  # no temp file left
    summary = json.loads((tmp_path / "out" / "set.zip.json").read_text())
    assert summary["count"] == 3 and summary["resolution"] == RES and summary["skipped"] == ["zz_broken.png"]
    assert result["out"] == str(out) and summary["camera_angles"] is True

    with pytest.warns(UserWarning, match="zz_broken.png"):
        source = open_dataset(str(tmp_path / "p"), RES, skip_corrupt=True)
    back = open_dataset(str(out), RES)
    assert back.is_zip and len(back) == 3 and back.has_labels
    assert torch.equal(back.get_batch(range(3)).image, source.get_batch(range(3)).image)
    expected = torch.stack([_look_at_label(1.2, 1.6), lab, _look_at_label(2.0, 1.4)])
    assert torch.allclose(back.get_batch(range(3)).label, expected, atol=1e-6)
    meta = json.loads(zipfile.ZipFile(out).read("dataset.json"))
    assert meta["source_files"] == dict(zip(back.files, names))
    assert meta["camera"] == {"radius": 1.0, "fov_deg": 12.0, "angles": "epigraf"}
    # The EpiGRAF angles alone reproduce the labels.
    angles = torch.tensor([meta["camera_angles"][f] for f in back.files])
    assert torch.allclose(epigraf_labels(angles, 1.0, 12.0), expected, atol=1e-5)

    # Poses that miss an image are refused, naming it.
    del poses[names[2]]
    (tmp_path / "poses.json").write_text(json.dumps(poses))
    with pytest.raises(DatasetError, match="last.png"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_dataset_tool(opts)


def test_dataset_tool_from_an_unlabelled_folder_writes_null_labels(tmp_path):
    _make_folder(tmp_path / "p")
    out = tmp_path / "plain.zip"
    run_dataset_tool(DatasetOptions(source=str(tmp_path / "p"), out=str(out), resolution=8, preprocess="stretch"))
    meta = json.loads(zipfile.ZipFile(out).read("dataset.json"))
    assert meta["labels"] is None and "camera_angles" not in meta
    back = open_dataset(str(out), 8)
    assert not back.get_batch(range(3)).has_label.any()
    source = open_dataset(str(tmp_path / "p"), 8, preprocess="stretch")
    assert torch.equal(back.get_batch(range(3)).image, source.get_batch(range(3)).image)


def test_camera_angles_only_when_they_reproduce_the_labels():
    labels = torch.stack([_look_at_label(1.2, 1.5, 1.5, 20.0), _look_at_label(1.9, 1.2, 1.5, 20.0)])
    angles, camera = camera_angles_if_exact(labels)
    assert camera == {"radius": 1.5, "fov_deg": 20.0, "angles": "epigraf"}
    expected = torch.tensor([[1.2 - math.pi / 2, 1.5, 0.0], [1.9 - math.pi / 2, 1.2, 0.0]])
    assert torch.allclose(angles, expected, atol=1e-5)
    other_radius = torch.stack([labels[0], _look_at_label(1.9, 1.2, 2.0, 20.0)])
    assert camera_angles_if_exact(other_radius) is None
    off_target = labels.clone()
    off_target[1, 3] += 0.1  # camera moved sideways: no longer looks at the origin
    assert camera_angles_if_exact(off_target) is None


def test_dataset_tool_from_synthetic_heads_round_trips(tmp_path):
    out = tmp_path / "heads.zip"
    assert cli_main(["dataset", "--source", "synthetic-heads", "--count", "5", "--resolution", str(RES),
                     "--seed", "3", "--out", str(out), "--batch", "2"]) == 0
    back = open_dataset(str(out), RES)
    ref = make_synthetic("synthetic-heads", resolution=RES, length=5, seed=3).get_batch(range(5))
    b = back.get_batch(range(5))
    assert (b.image - ref.image).abs().max() <= 0.5 / 127.5 + 1e-6  # PNG keeps 8 bits
    assert torch.equal(b.label, ref.eg3d_label) and back.has_labels
    summary = json.loads(Path(f"{out}.json").read_text())
    assert summary["count"] == 5 and summary["source"] == "synthetic-heads" and summary["skipped"] == []
    assert cli_main(["dataset", "--source", str(tmp_path / "missing"), "--out", str(tmp_path / "x.zip")]) == 2
    assert cli_main(["dataset", "--source", "synthetic-heads", "--out", str(tmp_path / "x.tar")]) == 2
    assert not (tmp_path / "x.zip").exists()


def test_get_labels_equals_the_labels_of_get_batch_without_loading_images(tmp_path, monkeypatch):
    """Labels alone (what the EG3D trainer draws generated cameras from), mirrored items included, for a
    synthetic set and a zip with EG3D labels; neither renders nor decodes an image for them."""
    run_dataset_tool(DatasetOptions(source="synthetic-heads", out=str(tmp_path / "h.zip"), resolution=16, count=6))
    for ds in (open_dataset("synthetic-heads", 16, mirror=True), open_dataset(str(tmp_path / "h.zip"), 16, mirror=True)):
        idx = [0, 3, len(ds) - 1, len(ds) // 2 + 1]
        expected = ds.get_batch(idx)
        monkeypatch.setattr(type(ds), "_load", lambda self, i: pytest.fail("get_labels loaded images"))
        label, has_label = ds.get_labels(torch.tensor(idx))
        monkeypatch.undo()
        assert torch.equal(label, expected.label) and torch.equal(has_label, expected.has_label)
        assert not torch.equal(label[2], ds.get_labels([len(ds) // 2 - 1])[0][0])  # mirrored differs
    with pytest.raises(ValueError, match="at least one index"):
        ds.get_labels([])


def test_synthetic_pool_by_name_keeps_the_first_items_in_memory():
    """``synthetic-heads:N``: the first N items of the set (same images and labels), rendered once."""
    pool = open_dataset("synthetic-heads:8", 16, mirror=True)
    assert len(pool) == 16 and pool.in_memory
    full = open_dataset("synthetic-heads", 16, mirror=True)
    idx = [0, 7, 8, 15]  # two originals, their mirrored copies
    a, b = pool.get_batch(idx), full.get_batch([0, 7, len(full) // 2, len(full) // 2 + 7])
    assert torch.equal(a.image, b.image) and torch.equal(a.label, b.label)
    assert pool.at_resolution(8).get_batch([0]).image.shape == (1, 3, 8, 8)
    for bad in ("synthetic-heads:0", "synthetic-heads:many"):
        with pytest.raises(DatasetError, match="positive number"):
            open_dataset(bad, 16)


# ---------------------------------------------------------------- EpiGRAF camera_angles: official and legacy

def _epigraf_zip(tmp_path: Path, meta_extra: dict, angles: list) -> tuple[Path, list[str]]:
    names = _make_folder(tmp_path / "p")
    meta = {"camera_angles": {n: a for n, a in zip(names, angles)}, "labels": None, **meta_extra}
    (tmp_path / "p" / "dataset.json").write_text(json.dumps(meta))
    return _zip_folder(tmp_path / "p", tmp_path / "set.zip"), names


def test_official_epigraf_zip_loads_with_the_official_cameras(tmp_path):
    """An official EpiGRAF-layout zip (no 'camera' entry, [yaw, pitch, roll] with pitch the polar angle) gives the
    cameras the official code builds (its cam2world moved to our world)."""
    from aware3d.models.epigraf.cameras import cameras_from_epigraf_angles

    angles = [[0.26, 1.64, 0.0], [-0.31, 1.45, 0.0], [0.0, math.pi / 2, 0.0]]  # like the fixture's FFHQ poses
    path, _ = _epigraf_zip(tmp_path, {}, angles)
    ds = open_dataset(str(path), RES)
    assert ds.camera_info["angles"] == "epigraf" and "angles" in ds.camera_info["defaults_used"]
    c2w, K = from_eg3d_label(ds.get_batch([0, 1, 2]).label)
    official = cameras_from_epigraf_angles(torch.tensor(angles), 1.0, 12.0)
    assert torch.allclose(c2w, official.cam2world, atol=1e-6)
    assert torch.allclose(K, official.intrinsics, atol=1e-7)
    assert torch.allclose(c2w[2, :3, 3], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)  # frontal: on +z
    # Mirroring negates the yaw, as the official dataset's x-flip does.
    mirrored = open_dataset(str(path), RES, mirror=True)
    flipped = from_eg3d_label(mirrored.get_batch([3]).label)[0]
    negated = cameras_from_epigraf_angles(torch.tensor([[-0.26, 1.64, 0.0]]), 1.0, 12.0).cam2world
    assert torch.allclose(flipped[:, :3, 3], negated[:, :3, 3], atol=1e-6)


def test_legacy_zero_centered_zip_still_loads_the_same_cameras(tmp_path):
    """Zips from older ``aware3d dataset`` runs tag their angles "zero_centered" ([yaw - pi/2, pitch - pi/2, 0]);
    they still give the cameras they were written from."""
    yaw, pitch = [1.2, 1.9, math.pi / 2], [1.5, 1.2, math.pi / 2]
    legacy = [[y - math.pi / 2, p - math.pi / 2, 0.0] for y, p in zip(yaw, pitch)]
    path, _ = _epigraf_zip(tmp_path, {"camera": {"radius": 1.0, "fov_deg": 12.0, "angles": "zero_centered"}}, legacy)
    ds = open_dataset(str(path), RES)
    expected = torch.stack([_look_at_label(y, p) for y, p in zip(yaw, pitch)])
    assert torch.allclose(ds.get_batch([0, 1, 2]).label, expected, atol=1e-6)
    with pytest.raises(DatasetError, match="convention"):
        epigraf_labels(torch.zeros(1, 3), convention="euler")


def test_dataset_tool_zip_with_classes_keeps_its_cameras(tmp_path):
    """Class labels push the cameras into camera_angles only: the written zip must load to the source's cameras
    (now stored in the official convention, tagged "epigraf")."""
    names = _make_folder(tmp_path / "p")
    yaw, pitch = [1.2, 1.9, 1.6], [1.5, 1.2, 1.7]
    meta = {"labels": [[n, i % 2] for i, n in enumerate(names)],
            "camera_angles": {n: [y - math.pi / 2, p, 0.0] for n, y, p in zip(names, yaw, pitch)}}
    (tmp_path / "p" / "dataset.json").write_text(json.dumps(meta))
    source = open_dataset(str(tmp_path / "p"), RES)
    out = tmp_path / "cls.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_dataset_tool(DatasetOptions(source=str(tmp_path / "p"), out=str(out), resolution=RES))
    written = json.loads(zipfile.ZipFile(out).read("dataset.json"))
    assert written["camera"]["angles"] == "epigraf"
    back = open_dataset(str(out), RES)
    expected = torch.stack([_look_at_label(y, p) for y, p in zip(yaw, pitch)])
    assert torch.allclose(source.get_batch(range(3)).label, expected, atol=1e-6)
    assert torch.allclose(back.get_batch(range(3)).label, expected, atol=1e-5)
    # The same zip rewritten the old way (legacy angles + tag) loads to the same cameras.
    legacy = {k: [a[0], a[1] - math.pi / 2, 0.0] for k, a in written["camera_angles"].items()}
    old = {**written, "camera_angles": legacy, "camera": {**written["camera"], "angles": "zero_centered"}}
    with zipfile.ZipFile(out) as zin, zipfile.ZipFile(tmp_path / "old.zip", "w") as zout:
        for item in zin.namelist():
            zout.writestr(item, json.dumps(old) if item == "dataset.json" else zin.read(item))
    old_back = open_dataset(str(tmp_path / "old.zip"), RES)
    assert torch.allclose(old_back.get_batch(range(3)).label, back.get_batch(range(3)).label, atol=1e-6)
