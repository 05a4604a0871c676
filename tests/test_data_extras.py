"""Named extras of datasets: synthetic ground truth (light, parameters, mask, depth, normals) with mirroring,
the in-memory pool, batching, class labels from dataset.json (StyleGAN2-ADA and EpiGRAF layouts) and the
``aware3d dataset`` tool keeping them."""

import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aware3d.cameras import cam2world_from_angles, intrinsics_from_fov, to_eg3d_label
from aware3d.data import (
    EXTRA_MIRRORS, DatasetError, ImageBatch, ImageDataset, ImageItem, SyntheticImageDataset, open_dataset,
    synthetic_extra_names,
)
from aware3d.data.synthetic import HEAD_EXPRESSION_NAMES, HEAD_IDENTITY_NAMES, OBJECT_IDENTITY_NAMES, make_synthetic
from aware3d.tools.dataset import DatasetOptions, run as run_dataset_tool

RES = 16
HEAD_EXTRAS = ("light_dir", "identity", "expression", "mask", "depth", "normals")


@pytest.fixture(scope="module")
def heads():
    """6 heads (12 items with their mirrored copies) and the same items straight from the generator."""
    ds = open_dataset("synthetic-heads", RES, mirror=True, length=6, seed=2)
    return ds, make_synthetic("synthetic-heads", resolution=RES, length=6, seed=2).get_batch(range(6))


# ===================================================================================== synthetic extras

def test_synthetic_heads_extras_names_shapes_and_values(heads):
    ds, ref = heads
    assert ds.extra_names == HEAD_EXTRAS and ds.num_classes == 0
    b = ds.get_batch([1, 4])
    shapes = {"light_dir": (2, 3), "identity": (2, len(HEAD_IDENTITY_NAMES)),
              "expression": (2, len(HEAD_EXPRESSION_NAMES)), "mask": (2, 1, RES, RES), "depth": (2, 1, RES, RES),
              "normals": (2, 3, RES, RES)}
    assert {k: tuple(v.shape) for k, v in b.extras.items()} == shapes
    assert all(v.dtype == torch.float32 for v in b.extras.values())
    for name in HEAD_EXTRAS:  # the generator's own ground truth, bit for bit
        assert torch.equal(b.extras[name], getattr(ref, name)[[1, 4]])
    mask, depth, normals = b.extras["mask"], b.extras["depth"], b.extras["normals"]
    # Foreground exactly where the ray hits something at a finite, positive distance (0 marks background).
    assert torch.isfinite(depth).all() and torch.equal(mask, (depth > 0).float())
    assert 0.1 < mask.mean() < 0.9
    # Heads sit about 1 world unit in front of the camera.
    assert 0.85 < depth[mask > 0].min() and depth.max() < 1.15
    norm = normals.norm(dim=1, keepdim=True)
    assert torch.allclose(norm[mask > 0], torch.ones(()), atol=1e-5)
    assert not normals[(mask == 0).expand_as(normals)].any()
    assert torch.allclose(b.extras["light_dir"].norm(dim=-1), torch.ones(2), atol=1e-6)


def test_mirrored_items_carry_mirrored_extras(heads):
    ds, ref = heads
    n = ds.base_length
    b = ds.get_batch([1, n + 1])  # item 1 and its mirrored copy
    plain, mirrored = b[0], b[1]
    assert torch.equal(mirrored.image, plain.image.flip(-1))
    assert torch.equal(mirrored.extras["mask"], plain.extras["mask"].flip(-1))
    assert torch.equal(mirrored.extras["depth"], plain.extras["depth"].flip(-1))
    flipped_normals = plain.extras["normals"].flip(-1)
    assert torch.equal(mirrored.extras["normals"][0], -flipped_normals[0])
    assert torch.equal(mirrored.extras["normals"][1:], flipped_normals[1:])
    light = plain.extras["light_dir"]
    assert torch.equal(mirrored.extras["light_dir"], torch.stack([-light[0], light[1], light[2]]))
    assert torch.equal(mirrored.extras["identity"], ref.identity[1])
    assert torch.equal(mirrored.extras["expression"], ref.expression[1])
    # The same mirror as the full ground truth of the adapter.
    gt = ds.ground_truth([n + 1])
    for name in ("light_dir", "mask", "depth", "normals"):
        assert torch.equal(mirrored.extras[name], getattr(gt, name)[0]), name


def test_mirrored_normals_are_the_normals_of_the_mirrored_scene(heads):
    """Shading with mirrored normals and the mirrored light gives the flipped image's lighting term."""
    ds, _ = heads
    n = ds.base_length
    b = ds.get_batch([3, n + 3])
    e0, e1 = b[0].extras, b[1].extras
    ndl0 = (e0["normals"] * e0["light_dir"][:, None, None]).sum(0)
    ndl1 = (e1["normals"] * e1["light_dir"][:, None, None]).sum(0)
    assert torch.allclose(ndl1, ndl0.flip(-1), atol=1e-6)


def test_synthetic_objects_have_identity_only():
    ds = open_dataset("synthetic-objects", RES, length=3)
    assert ds.extra_names == ("light_dir", "identity", "mask", "depth", "normals")
    b = ds.get_batch([0, 2])
    assert b.extras["identity"].shape == (2, len(OBJECT_IDENTITY_NAMES)) and "expression" not in b.extras
    assert torch.equal(b.extras["mask"], (b.extras["depth"] > 0).float())


def test_in_memory_pool_serves_the_cheap_extras_unless_asked_for_maps():
    pool = open_dataset("synthetic-heads:5", RES, mirror=True)
    assert pool.extra_names == ("light_dir", "identity", "expression", "mask") == synthetic_extra_names("heads", maps=False)
    full = open_dataset("synthetic-heads", RES, mirror=True)
    a, b = pool.get_batch([0, 4, 5, 9]), full.get_batch([0, 4, len(full) // 2, len(full) // 2 + 4])
    assert set(a.extras) == set(pool.extra_names)
    for name in pool.extra_names:
        assert torch.equal(a.extras[name], b.extras[name]), name
    with_maps = SyntheticImageDataset("synthetic-heads", RES, mirror=True, length=5, in_memory=True, pool_maps=True)
    assert with_maps.extra_names == HEAD_EXTRAS
    c = with_maps.get_batch([0, 4, 5, 9])
    for name in HEAD_EXTRAS:
        assert torch.equal(c.extras[name], b.extras[name]), name


def test_extras_follow_at_resolution_items_collate_and_to(heads):
    ds, _ = heads
    small = ds.at_resolution(8).get_batch([0, 7])
    assert small.extras["mask"].shape == (2, 1, 8, 8) and small.extras["normals"].shape == (2, 3, 8, 8)
    assert small.extras["identity"].shape == (2, len(HEAD_IDENTITY_NAMES))
    batch = ds.get_batch([2, 9])
    stacked = ImageBatch.collate([ds[2], ds[9]])
    assert set(stacked.extras) == set(HEAD_EXTRAS)
    assert all(torch.equal(stacked.extras[k], batch.extras[k]) for k in HEAD_EXTRAS)
    moved = batch.to("cpu")
    assert all(torch.equal(moved.extras[k], batch.extras[k]) for k in HEAD_EXTRAS)
    assert moved[1].to("cpu").extras["depth"].shape == (1, RES, RES)
    loaded = next(iter(ds.loader(3, shuffle=False)))
    assert loaded.extras["light_dir"].shape == (3, 3)
    assert torch.equal(batch.extra("mask"), batch.extras["mask"])
    with pytest.raises(KeyError, match="no extra 'class_label'.*depth"):
        batch.extra("class_label")
    item = ds[9]
    with pytest.raises(ValueError, match="different extras"):
        ImageBatch.collate([ds[2], ImageItem(item.image, item.label, item.has_label, item.index)])


class _Tagged(ImageDataset):
    """Two blank items with one extra of a given name (for the rule and declaration checks)."""

    name, resolution, base_length, has_labels = "tagged", 4, 2, False

    def __init__(self, extra: str, declared: tuple[str, ...], mirror: bool) -> None:
        self.extra, self.declared, self.mirror = extra, declared, mirror

    @property
    def extra_names(self):
        return self.declared

    def _load(self, idx):
        return torch.zeros(len(idx), 3, 4, 4), torch.zeros(len(idx), 25), torch.zeros(len(idx), dtype=torch.bool)

    def _load_with_extras(self, idx):
        return (*self._load(idx), {self.extra: torch.arange(len(idx), dtype=torch.float32)})

    def _fingerprint_parts(self):
        return {}


def test_an_extra_needs_a_mirror_rule_and_a_declaration():
    assert set(EXTRA_MIRRORS) >= set(HEAD_EXTRAS) | {"class_label"}
    assert _Tagged("speed", ("speed",), mirror=False).get_batch([1]).extras["speed"].tolist() == [0.0]
    with pytest.raises(DatasetError, match="'speed' has no mirror rule.*EXTRA_MIRRORS"):
        _Tagged("speed", ("speed",), mirror=True).get_batch([3])
    with pytest.raises(DatasetError, match="declares extra_names"):
        _Tagged("speed", (), mirror=False).get_batch([0])


# ======================================================================================== class labels

def _folder(root: Path, n: int = 4) -> list[str]:
    """n small random pictures (one in a sub-folder), sorted relative paths."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "sub").mkdir(exist_ok=True)
    names = [f"img{i}.png" for i in range(n - 1)] + ["sub/last.png"]
    for i, name in enumerate(names):
        Image.fromarray((np.random.RandomState(i).rand(RES, RES, 3) * 255).astype(np.uint8)).save(root / name)
    return sorted(names)


def _zip(root: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(root).as_posix())
    return out


def _write_meta(root: Path, meta: dict) -> None:
    (root / "dataset.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("layout", ["pairs", "dict"])
def test_class_labels_from_a_zips_dataset_json(tmp_path, layout):
    names = _folder(tmp_path / "p")
    classes = [2, 0, 5, 2]
    pairs = [[n, c] for n, c in zip(names, classes)]
    _write_meta(tmp_path / "p", {"labels": pairs if layout == "pairs" else dict(pairs)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # class labels are understood, not warned about
        ds = open_dataset(str(_zip(tmp_path / "p", tmp_path / "p.zip")), RES, mirror=True)
    assert ds.is_zip and ds.extra_names == ("class_label",) and ds.num_classes == 6
    assert not ds.has_labels and ds.camera_info is None
    b = ds.get_batch([0, 2, 3, 4 + 2])  # the last is item 2 mirrored: same class
    assert b.extras["class_label"].dtype == torch.int64 and b.extras["class_label"].tolist() == [2, 5, 2, 5]
    assert not b.has_label.any() and not b.label.any()
    # A subset keeps the class count of the whole table.
    assert open_dataset(str(tmp_path / "p.zip"), RES, length=1, seed=0).num_classes == 6


def test_epigraf_layout_cameras_from_angles_and_classes_from_labels(tmp_path):
    names = _folder(tmp_path / "p", n=3)
    angles = [[0.3, -0.1, 0.0], [-0.5, 0.2, 0.0], [0.0, 0.0, 0.0]]
    meta = {"labels": {n.rsplit(".", 1)[0]: c for n, c in zip(names, [1, 0, 1])},
            "camera_angles": {n.rsplit(".", 1)[0]: a for n, a in zip(names, angles)},
            "camera": {"radius": 2.7, "fov_deg": 18.0}}
    _write_meta(tmp_path / "p", meta)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = open_dataset(str(tmp_path / "p"), RES)
    assert ds.has_labels and ds.camera_info["source"] == "camera_angles" and ds.num_classes == 2
    b = ds.get_batch([0, 1, 2])
    assert b.extras["class_label"].tolist() == [1, 0, 1]
    # The cameras are exactly those of the angles alone.
    del meta["labels"]
    _write_meta(tmp_path / "p", meta)
    assert torch.equal(b.label, open_dataset(str(tmp_path / "p"), RES).get_batch([0, 1, 2]).label)


def test_malformed_or_missing_class_labels_are_errors_naming_the_file(tmp_path):
    names = _folder(tmp_path / "p", n=3)
    for bad in ("cat", 2.5, -1, None, [1]):
        _write_meta(tmp_path / "p", {"labels": [[names[0], 1], [names[1], bad], [names[2], 0]]})
        with pytest.raises(DatasetError, match=f"class label of '{names[1]}' must be a non-negative integer"):
            open_dataset(str(tmp_path / "p"), RES)
    _write_meta(tmp_path / "p", {"labels": [[names[0], 1], [names[1], 0]]})
    with pytest.raises(DatasetError, match="class labels to some images but not to 1 other.*sub/last.png"):
        open_dataset(str(tmp_path / "p"), RES)
    # Neither cameras nor classes: ignored with a warning beside camera_angles, an error without.
    angles = {n: [0.0, 0.0, 0.0] for n in names}
    _write_meta(tmp_path / "p", {"labels": [[n, [0.5, 0.5]] for n in names], "camera_angles": angles})
    with pytest.warns(UserWarning, match="neither camera labels nor integer class labels"):
        assert open_dataset(str(tmp_path / "p"), RES).extra_names == ()
    _write_meta(tmp_path / "p", {"labels": [[n, [0.5, 0.5]] for n in names]})
    with pytest.raises(DatasetError, match="neither EG3D camera labels"):
        open_dataset(str(tmp_path / "p"), RES)


def test_class_labels_enter_the_fingerprint(tmp_path):
    names = _folder(tmp_path / "p", n=3)
    plain = open_dataset(str(tmp_path / "p"), RES).fingerprint()
    _write_meta(tmp_path / "p", {"labels": [[n, 0] for n in names]})
    first = open_dataset(str(tmp_path / "p"), RES).fingerprint()
    _write_meta(tmp_path / "p", {"labels": [[n, i % 2] for i, n in enumerate(names)]})
    assert len({plain, first, open_dataset(str(tmp_path / "p"), RES).fingerprint()}) == 3


# ================================================================================================= tool

def test_dataset_tool_keeps_class_labels(tmp_path):
    names = _folder(tmp_path / "p")
    classes = [3, 1, 0, 3]
    _write_meta(tmp_path / "p", {"labels": [[n, c] for n, c in zip(names, classes)]})
    out = tmp_path / "classes.zip"
    result = run_dataset_tool(DatasetOptions(source=str(tmp_path / "p"), out=str(out), resolution=RES, batch=3))
    assert result["num_classes"] == 4
    meta = json.loads(zipfile.ZipFile(out).read("dataset.json"))
    assert [c for _, c in meta["labels"]] == classes and "camera_angles" not in meta
    back = open_dataset(str(out), RES)
    assert back.num_classes == 4 and back.get_batch(range(4)).extras["class_label"].tolist() == classes

    # With look-at cameras from --poses: classes in labels, cameras as EpiGRAF camera_angles.
    poses = {n: {"yaw": 1.2 + 0.1 * i, "pitch": 1.5} for i, n in enumerate(names)}
    (tmp_path / "poses.json").write_text(json.dumps(poses))
    posed = tmp_path / "posed.zip"
    run_dataset_tool(DatasetOptions(source=str(tmp_path / "p"), out=str(posed), resolution=RES,
                                    poses=str(tmp_path / "poses.json")))
    back = open_dataset(str(posed), RES)
    b = back.get_batch(range(4))
    assert back.has_labels and b.extras["class_label"].tolist() == classes
    yaw = torch.tensor([1.2 + 0.1 * i for i in range(4)])
    expected = to_eg3d_label(cam2world_from_angles(yaw, torch.full((4,), 1.5), 1.0), intrinsics_from_fov(12.0, batch=4))
    assert torch.allclose(b.label, expected, atol=1e-5)

    # Cameras that angles cannot hold (one image unposed) are refused before any image is written.
    poses[names[1]] = None
    (tmp_path / "poses.json").write_text(json.dumps(poses))
    with pytest.raises(DatasetError, match="class labels and cameras"):
        run_dataset_tool(DatasetOptions(source=str(tmp_path / "p"), out=str(tmp_path / "bad.zip"), resolution=RES,
                                        poses=str(tmp_path / "poses.json")))
    assert not (tmp_path / "bad.zip").exists()
