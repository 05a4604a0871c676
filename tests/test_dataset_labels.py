"""``aware3d dataset --labels-from-folders``: class labels from class folders (EpiGRAF's collect_labels.py layout
CLASS/OBJECT/view.png), merged with the source's camera_angles, read back as the class_label extra, and a
class-conditional epigraf-tiny training on the result."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from aware3d.cli.main import main as cli_main
from aware3d.data.base import DatasetError, open_dataset
from aware3d.tools.dataset import DatasetOptions, classes_from_folders, run as run_dataset_tool
from aware3d.training.config import TrainOptions
from aware3d.training.stats import read_stats
from aware3d.training.trainer import Trainer

RES = 32
TREE = {"cactus": ("a", "b"), "agave": ("a",), "fern": ("x", "y")}
"""Class folder -> object folders; each object folder holds two views."""
CLASSES = sorted(TREE)
"""Ids are the sorted class names' positions: agave 0, cactus 1, fern 2."""


def class_tree(root: Path, with_cameras: bool = True) -> dict[str, int]:
    """Tiny PNGs in ``root/CLASS/OBJECT/vN.png`` (and EpiGRAF camera_angles in root/dataset.json); returns
    {relative path: expected class id}."""
    expected, angles = {}, {}
    for c, (cls, objects) in enumerate(sorted(TREE.items())):
        for obj in objects:
            for view in range(2):
                rel = f"{cls}/{obj}/v{view}.png"
                (root / cls / obj).mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (RES, RES), (40 * c + 20, 30 * view + 60, 90)).save(root / rel)
                expected[rel] = c
                angles[rel] = [0.2 * (len(angles) - 4), math.pi / 2 + 0.05 * view, 0.0]
    if with_cameras:
        meta = {"camera_angles": angles, "camera": {"radius": 1.0, "fov_deg": 12.0, "angles": "epigraf"}}
        (root / "dataset.json").write_text(json.dumps(meta))
    return expected


def zip_of(root: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(root).as_posix())
    return out


def test_classes_from_folders_sorted_names_and_levels():
    files = ["b/o1/v.png", "a/o2/v.png", "b/o3/v.png", "deep/er/o/v.png"]
    assert classes_from_folders(files) == (["a", "b", "deep/er"], [1, 0, 1, 2])
    assert classes_from_folders(files, level=1) == (["a/o2", "b/o1", "b/o3", "deep/er/o"], [1, 0, 2, 3])
    with pytest.raises(DatasetError, match="1 image.*not inside class folders 2 level.*'top.png'"):
        classes_from_folders(files + ["top.png"])
    with pytest.raises(DatasetError, match="single class folder \\('b', 2 level.*at least two"):
        classes_from_folders(["b/o1/v.png", "b/o3/v.png"])
    with pytest.raises(DatasetError, match="--label-folder-level must be >= 1"):
        classes_from_folders(files, level=0)


def test_folder_labels_are_written_with_names_and_merged_with_camera_angles(tmp_path):
    expected = class_tree(tmp_path / "plants")
    source = open_dataset(str(tmp_path / "plants"), RES)
    out = tmp_path / "plants.zip"
    result = run_dataset_tool(DatasetOptions(source=str(tmp_path / "plants"), out=str(out), resolution=RES,
                                             labels_from_folders=True, batch=3))
    assert result["num_classes"] == 3 and result["class_names"] == CLASSES and result["camera_angles"]
    meta = json.loads(zipfile.ZipFile(out).read("dataset.json"))
    assert meta["class_names"] == CLASSES
    by_member = {name: c for name, c in meta["labels"]}
    assert {meta["source_files"][name]: c for name, c in by_member.items()} == expected
    assert set(meta["camera_angles"]) == set(by_member) and meta["camera"]["fov_deg"] == 12.0

    back = open_dataset(str(out), RES)
    assert back.extra_names == ("class_label",) and back.num_classes == 3 and back.has_labels
    batch = back.get_batch(list(range(len(back))))
    assert batch.extras["class_label"].tolist() == [expected[f] for f in source.files]
    # The source's cameras survive the merge (camera_angles round-trip within the tool's 1e-4).
    assert torch.allclose(batch.label, source.get_batch(list(range(len(source)))).label, atol=1e-4)
    assert torch.equal(batch.image, source.get_batch(list(range(len(source)))).image)


def test_zip_sources_and_the_command_line(tmp_path, capsys):
    expected = class_tree(tmp_path / "food", with_cameras=False)
    source = zip_of(tmp_path / "food", tmp_path / "food_src.zip")
    out = tmp_path / "food.zip"
    assert cli_main(["dataset", "--source", str(source), "--out", str(out), "--resolution", str(RES),
                     "--labels-from-folders", "--label-folder-level", "1"]) == 0
    capsys.readouterr()
    meta = json.loads(zipfile.ZipFile(out).read("dataset.json"))
    objects = sorted({f.rsplit("/", 1)[0] for f in expected})  # level 1: the object folders are the classes
    assert meta["class_names"] == objects and "camera_angles" not in meta
    assert {meta["source_files"][n]: objects[c] for n, c in meta["labels"]} == {f: f.rsplit("/", 1)[0]
                                                                                for f in expected}
    assert open_dataset(str(out), RES).num_classes == len(objects)
    # Clear errors, before any zip is written.
    Image.new("RGB", (RES, RES)).save(tmp_path / "food" / "loose.png")
    assert cli_main(["dataset", "--source", str(tmp_path / "food"), "--out", str(tmp_path / "bad.zip"),
                     "--labels-from-folders"]) == 2
    assert "not inside class folders" in capsys.readouterr().err and not (tmp_path / "bad.zip").exists()
    with pytest.raises(DatasetError, match="folder and zip sources only"):
        run_dataset_tool(DatasetOptions(source="synthetic-heads", out=str(tmp_path / "s.zip"), count=2,
                                        labels_from_folders=True))
    with pytest.raises(DatasetError, match="is the --source zip"):
        run_dataset_tool(DatasetOptions(source=str(source), out=str(source), labels_from_folders=True))


def test_class_conditional_epigraf_tiny_trains_on_folder_labels(tmp_path):
    class_tree(tmp_path / "plants")
    data = tmp_path / "plants.zip"
    run_dataset_tool(DatasetOptions(source=str(tmp_path / "plants"), out=str(data), resolution=RES,
                                    labels_from_folders=True))
    opts = TrainOptions(preset="epigraf-tiny", data=str(data), out=str(tmp_path / "run"), steps=2, log_every=1,
                        sample_every=0, checkpoint_every=100, progress=False, tensorboard=False, device="cpu",
                        override=("model.c_dim=3", "discriminator.c_dim=3"))
    trainer = Trainer(opts)
    seen = []
    real_class_labels = trainer.recipe.real_class_labels
    trainer.recipe.real_class_labels = lambda chunk: seen.append(real_class_labels(chunk)) or seen[-1]
    assert trainer.train().step == 2
    assert all(math.isfinite(s["D/adv"]) and math.isfinite(s["G/adv"]) for s in read_stats(tmp_path / "run"))
    labels = torch.cat(seen)
    assert labels.dtype == torch.int64 and set(labels.tolist()) <= {0, 1, 2} and len(set(labels.tolist())) > 1
