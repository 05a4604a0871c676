"""``aware3d dataset``: build a training zip in the EG3D layout from a folder (or a zip) of images or a synthetic set.

The zip holds ``NNNNN/imgNNNNNNNN.png`` (square, ``--resolution``, lossless; names sort in item order)
and a ``dataset.json`` with

* ``labels``: ``[[name, [25 floats] or null], ...]`` (EG3D: row-major OpenCV cam2world + normalised
  intrinsics), or null when no item has a camera; for a source with class labels (the ``class_label``
  extra, e.g. a folder whose ``dataset.json`` holds integer ``labels``) ``[[name, class], ...]`` instead
  (StyleGAN2-ADA / EpiGRAF layout), the cameras then kept only as ``camera_angles``;
* ``camera_angles`` (official EpiGRAF layout ``[yaw, pitch, 0]``: yaw zero-centred, pitch polar from +y,
  see :func:`aware3d.cameras.pigan_to_epigraf`) plus ``camera`` (``radius``, ``fov_deg``, ``angles`` =
  ``"epigraf"``; zips from older versions say ``"zero_centered"`` and are still read as written), only
  when every item has a camera that looks at the origin, upright, from one common radius with one
  common field of view (so the angles lose nothing). A source with class labels and cameras that are
  not all such look-ats cannot be written (an error says so before any image is);
* ``class_names``: with ``--labels-from-folders``, the class folder of each class id (``class_names[i]`` is
  the folder of class i), so ids can be mapped back;
* ``source_files``: ``{name: source relative path}`` for folder and zip sources.

Class labels from folders (``--labels-from-folders``, as EpiGRAF's ``collect_labels.py``): the class of an
image is the folder ``--label-folder-level`` levels above it, as its whole path below the source root (level
2, the official choice: ``CLASS/OBJECT/view.png`` is of class ``CLASS``); the sorted folder names get ids
0..K-1 (the official script numbers them in set order, which changes from run to run). Every image must sit
that deep and there must be at least two classes. They replace class labels of the source's dataset.json and
keep its cameras, which are then written as ``camera_angles`` (so they must be such look-ats).

Cameras of a folder come from ``--poses`` when given, else from the folder's own ``dataset.json``. A
poses file is a JSON object ``{relative_path: pose}`` where a pose is either 25 numbers (an EG3D label,
used unchanged), or ``{"yaw": y, "pitch": p}`` in pi-GAN angles (radians; frontal is (pi/2, pi/2); the
camera looks at the origin from ``--radius`` with ``--fov-deg``), or null (unlabelled). The zip is
written to a temporary file and renamed, so it is either complete or absent; a JSON summary goes to
``<out>.json``. Reading the zip back with :func:`aware3d.data.open_dataset` at the same resolution gives
the same images (up to the 8-bit quantisation of PNG, exact for folder sources), labels and class labels
(cameras stored only as ``camera_angles`` agree within the 1e-4 of :func:`camera_angles_if_exact`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import tempfile
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from .. import __version__
from ..cameras import (
    angles_from_cam2world, cam2world_from_angles, focal_to_fov, from_eg3d_label, intrinsics_from_fov,
    pigan_to_epigraf, to_eg3d_label,
)
from ..checks import AT_LEAST_ONE, FOV_DEGREES, POSITIVE, SEED, check_options
from ..config import to_dict
from ..data.base import LABEL_DIM, DatasetError, DatasetNotFoundError, ImageDataset, open_dataset
from ..data.images import LABELS_FILE, ImageFolderDataset, match_keys, list_some
from ..data.synthetic import SYNTHETIC_DATASETS
from ..io.media import to_uint8, write_json

__all__ = ["DEFAULT_SYNTHETIC_COUNT", "DatasetOptions", "camera_angles_if_exact", "classes_from_folders",
           "read_poses", "run", "zip_member_name"]

DEFAULT_SYNTHETIC_COUNT = 1000
"""Items rendered from a synthetic source when --count is not given."""


@dataclass
class DatasetOptions:
    source: str | None = None
    """A folder of images (png, jpg, jpeg, webp, bmp; searched recursively), a .zip of them, or a synthetic
    dataset name (synthetic-heads, synthetic-objects)."""
    out: str = "dataset.zip"
    """The zip to write (a JSON summary is written beside it as <out>.json)."""
    resolution: int = 64
    """Side of the stored square images in pixels (cropped and resized as the loaders do)."""
    count: int | None = None
    """Synthetic: number of items (default 1000). Folder: keep a random subset of this many (drawn with
    --seed, kept in path order); default all."""
    seed: int = 0
    """Synthetic: the dataset seed. Folder: the seed of the --count subset."""
    skip_corrupt: bool = False
    """Skip unreadable images with a warning (listed in the summary) instead of stopping."""
    poses: str | None = None
    """Folder only: JSON {relative_path: [25 floats] | {"yaw": y, "pitch": p} (pi-GAN radians) | null};
    replaces the folder's own dataset.json cameras."""
    preprocess: str = "center"
    """Folder only: crop preset (center, stretch, pigan-celeba, pigan-cats, pigan-carla)."""
    fov_deg: float = 12.0
    """Full field of view in degrees of cameras given as yaw/pitch in --poses."""
    radius: float = 1.0
    """Camera distance from the origin (world units) of cameras given as yaw/pitch in --poses."""
    batch: int = 16
    """Items loaded (synthetic: rendered) at once."""
    labels_from_folders: bool = False
    """Folder or zip only: class labels from folder names (sorted names -> ids 0..K-1, names kept in
    dataset.json class_names), as EpiGRAF's collect_labels.py; the source's cameras are kept."""
    label_folder_level: int = 2
    """With --labels-from-folders: the folder this many levels above an image names its class (2 = the
    grandparent, EpiGRAF's CLASS/OBJECT/view.png; 1 = the parent)."""

    def __post_init__(self) -> None:
        check_options(self, {"resolution": AT_LEAST_ONE, "count": AT_LEAST_ONE, "seed": SEED, "fov_deg": FOV_DEGREES,
                             "radius": POSITIVE, "batch": AT_LEAST_ONE, "label_folder_level": AT_LEAST_ONE})


def zip_member_name(index: int) -> str:
    """Zip entry of item ``index`` (EG3D's layout: 1000 images per folder; names sort in item order)."""
    return f"{index // 1000:05d}/img{index:08d}.png"


def read_poses(path: str | os.PathLike, files: list[str], root_name: str, fov_deg: float,
               radius: float) -> tuple[Tensor, Tensor]:
    """Cameras of ``files`` from a poses JSON (see module docstring): labels (N, 25), has_label (N,).

    Every key must name one of ``files`` and, once any image has a pose, every image must appear
    (null marks an unlabelled image); otherwise a :class:`DatasetError` names the offenders.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"poses file {str(path)!r} not found")
    try:
        poses = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"poses file {str(path)!r} is not valid JSON: {e}") from None
    if not isinstance(poses, dict):
        raise DatasetError(f"poses file {str(path)!r} must hold an object {{relative_path: pose}}")
    index = match_keys(list(poses), files, root_name, "poses")
    labels = torch.zeros(len(files), LABEL_DIM)
    has = torch.zeros(len(files), dtype=torch.bool)
    listed = torch.zeros(len(files), dtype=torch.bool)
    for key, pose in poses.items():
        i = index[key]
        listed[i] = True
        if pose is None:
            continue
        if isinstance(pose, dict) and set(pose) == {"yaw", "pitch"} and \
                all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pose.values()):
            yaw = torch.tensor([float(pose["yaw"])])
            pitch = torch.tensor([float(pose["pitch"])])
            labels[i] = to_eg3d_label(cam2world_from_angles(yaw, pitch, radius), intrinsics_from_fov(fov_deg))[0]
        elif isinstance(pose, list) and len(pose) == LABEL_DIM and \
                all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pose):
            labels[i] = torch.tensor([float(v) for v in pose])
        else:
            raise DatasetError(f"poses file {str(path)!r}: the pose of {key!r} must be {LABEL_DIM} numbers, "
                               f"{{\"yaw\": y, \"pitch\": p}} (pi-GAN radians) or null, got {pose!r}")
        if not bool(torch.isfinite(labels[i]).all()):
            raise DatasetError(f"poses file {str(path)!r}: the pose of {key!r} has non-finite numbers")
        has[i] = True
    missing = [f for f, seen in zip(files, listed.tolist()) if not seen]
    if missing and bool(listed.any()):
        raise DatasetError(f"poses file {str(path)!r} has no pose for {len(missing)} image(s): {list_some(missing)}; "
                           "add them (null marks an unlabelled image)")
    return labels, has


def camera_angles_if_exact(labels: Tensor, tol: float = 1e-4) -> tuple[Tensor, dict] | None:
    """EpiGRAF camera_angles (N, 3) and the ``camera`` entry (radius, fov_deg) reproducing ``labels``
    (N, 25), or None when some camera is not an upright look-at of the origin from one common radius with
    one common square, centred, skew-free field of view."""
    if len(labels) == 0:
        return None
    c2w, K = from_eg3d_label(labels.to(torch.float64))
    yaw, pitch, radius = angles_from_cam2world(c2w)
    if not bool(torch.isfinite(radius).all()) or float(radius.min()) <= 0:
        return None
    # Rounded so the JSON reads naturally (1.0, 12.0 rather than float32 noise); the check below uses
    # the rounded values, so the angles still reproduce the labels within tol.
    r = round(float(radius.mean()), 6)
    fov = round(float(focal_to_fov(K[:, 0, 0]).mean()), 6)
    rebuilt = to_eg3d_label(cam2world_from_angles(yaw, pitch, r), intrinsics_from_fov(fov, batch=len(labels),
                                                                                      dtype=torch.float64))
    if not torch.allclose(rebuilt, labels.to(torch.float64), atol=tol, rtol=0):
        return None
    return pigan_to_epigraf(yaw, pitch).to(torch.float32), {"radius": r, "fov_deg": fov, "angles": "epigraf"}


def classes_from_folders(files: list[str], level: int = 2) -> tuple[list[str], list[int]]:
    """Class names and each file's class id from folder names (``--labels-from-folders``).

    ``files``: '/'-separated image paths relative to the source root. The class of a file is the path of the
    folder ``level`` levels above it (``a/b/c/img.png`` at level 2: ``a/b``). Returns the sorted distinct
    names (id i = ``names[i]``) and one id per file. A :class:`DatasetError` names files that are not that
    deep, and says so when all files share one class.
    """
    if level < 1:
        raise DatasetError(f"--label-folder-level must be >= 1 (1 = an image's parent folder), got {level}")
    parts = [f.split("/") for f in files]
    shallow = [f for f, p in zip(files, parts) if len(p) <= level]
    if shallow:
        raise DatasetError(f"--labels-from-folders: {len(shallow)} image(s) are not inside class folders "
                           f"{level} level(s) above them: {list_some(shallow)}; the class of an image is the folder "
                           f"{level} level(s) up (e.g. {'/'.join(['CLASS'] + ['SUB'] * (level - 1))}/view.png); "
                           "move them into class folders or change --label-folder-level")
    folder_of = ["/".join(p[:-level]) for p in parts]
    names = sorted(set(folder_of))
    if len(names) < 2:
        raise DatasetError(f"--labels-from-folders found a single class folder ({names[0]!r}, {level} level(s) above "
                           "every image): class-conditional training needs at least two classes; check "
                           "--label-folder-level (1 = the parent folder, 2 = the grandparent)")
    ids = {name: i for i, name in enumerate(names)}
    return names, [ids[f] for f in folder_of]


def _folder_classes(opts: DatasetOptions, data: ImageDataset) -> tuple[Tensor, list[str]]:
    """(N,) int64 class ids of the dataset's items from their folders, and the class names. Ids are assigned
    over every scanned image, so a --count subset keeps the source's numbering."""
    if not isinstance(data, ImageFolderDataset):
        raise DatasetError("--labels-from-folders applies to folder and zip sources only: synthetic items have no "
                           "class folders")
    names, ids = classes_from_folders(data.scanned_files, opts.label_folder_level)
    if data.class_labels is not None:
        warnings.warn(f"--labels-from-folders replaces the class labels of {opts.source!r}'s {LABELS_FILE}",
                      stacklevel=3)
    by_file = dict(zip(data.scanned_files, ids))
    return torch.tensor([by_file[f] for f in data.files], dtype=torch.int64), names


def _check_classes_storable(labels: Tensor, has_label: Tensor, source: str) -> None:
    """Class labels take ``labels`` in the zip, so cameras must fit ``camera_angles`` (or be absent)."""
    if not bool(has_label.any()):
        return
    if not bool(has_label.all()) or camera_angles_if_exact(labels) is None:
        raise DatasetError(f"--source {source!r} has class labels and cameras that are not all upright look-ats of "
                           "the origin from one radius with one field of view: dataset.json can hold the classes in "
                           "'labels' only with the cameras as EpiGRAF 'camera_angles'; give every image such a "
                           "camera (--poses with {\"yaw\": y, \"pitch\": p}) or drop the class labels from the source")


def _png_bytes(image: Tensor) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="PNG")
    return buf.getvalue()


def _open_source(opts: DatasetOptions) -> ImageDataset:
    if not opts.source:
        raise DatasetError("--source is required: a folder of images, a .zip of them or a synthetic name "
                           f"({', '.join(sorted(SYNTHETIC_DATASETS))})")
    if opts.count is not None and opts.count < 1:
        raise DatasetError(f"--count must be >= 1, got {opts.count}")
    if opts.batch < 1:
        raise DatasetError(f"--batch must be >= 1, got {opts.batch}")
    if opts.source in SYNTHETIC_DATASETS:
        if opts.poses:
            raise DatasetError("--poses applies to folders only: synthetic items carry their own cameras")
        count = DEFAULT_SYNTHETIC_COUNT if opts.count is None else opts.count
        return open_dataset(opts.source, opts.resolution, length=count, seed=opts.seed)
    if Path(opts.source).is_file() and Path(opts.source).suffix.lower() != ".zip":
        raise DatasetError(f"--source {opts.source!r} is a file; give a folder of images, a .zip of them or a "
                           f"synthetic name ({', '.join(sorted(SYNTHETIC_DATASETS))})")
    if Path(opts.source).resolve() == Path(opts.out).resolve():
        raise DatasetError(f"--out {opts.out!r} is the --source zip; write the new zip elsewhere")
    return open_dataset(opts.source, opts.resolution, skip_corrupt=opts.skip_corrupt, length=opts.count,
                        seed=opts.seed, preprocess=opts.preprocess)


def _source_poses(opts: DatasetOptions, data: ImageDataset) -> tuple[Tensor | None, Tensor | None]:
    """Cameras (N, 25) and has_label (N,) of the items from --poses, or (None, None) without it."""
    if not (isinstance(data, ImageFolderDataset) and opts.poses):
        return None, None
    scan_files = data.scanned_files
    all_labels, all_has = read_poses(opts.poses, scan_files, data.name, opts.fov_deg, opts.radius)
    position = {f: i for i, f in enumerate(scan_files)}
    keep = [position[f] for f in data.files]
    return all_labels[keep], all_has[keep]


@dataclass
class _Written:
    """What went into the zip, item by item."""

    names: list[str]
    """Zip member names."""
    labels: Tensor
    """(N, 25) cameras (zeros where none)."""
    has_label: Tensor
    """(N,) bool: which items have a camera."""
    classes: Tensor | None
    """(N,) int64 class ids, or None without classes."""


def _write_images(zf: zipfile.ZipFile, data: ImageDataset, batch_size: int, labels: Tensor | None,
                  has_label: Tensor | None, classes: Tensor | None, with_classes: bool) -> _Written:
    """Every item as a PNG; the cameras and classes are collected on the way unless already known."""
    n = len(data)
    names, label_rows, label_mask, class_rows = [], [], [], []
    with tqdm(total=n, desc="dataset", unit="img") as bar:
        for start in range(0, n, batch_size):
            idx = list(range(start, min(n, start + batch_size)))
            batch = data.get_batch(idx)
            for j, i in enumerate(idx):
                names.append(zip_member_name(i))
                zf.writestr(names[-1], _png_bytes(batch.image[j]))
            if labels is None:
                label_rows.append(batch.label)
                label_mask.append(batch.has_label)
            if with_classes and classes is None:
                class_rows.append(batch.extras["class_label"])
            bar.update(len(idx))
    if labels is None:
        labels, has_label = torch.cat(label_rows), torch.cat(label_mask)
    if with_classes and classes is None:
        classes = torch.cat(class_rows)
    return _Written(names, labels, has_label, classes)


def _dataset_json(written: _Written, data: ImageDataset, class_names: list[str] | None) -> tuple[dict, tuple | None]:
    """The zip's dataset.json (module docstring) and the camera_angles entry (angles, camera) or None."""
    names, labels, has_label = written.names, written.labels, written.has_label
    # No camera at all: labels null, as StyleGAN/EG3D write an unconditional dataset.
    meta: dict = {"labels": [[name, lab.tolist() if ok else None]
                             for name, lab, ok in zip(names, labels, has_label.tolist())]
                  if bool(has_label.any()) else None}
    angles = camera_angles_if_exact(labels) if bool(has_label.all()) else None
    if angles is not None:
        meta["camera_angles"] = {name: a.tolist() for name, a in zip(names, angles[0])}
        meta["camera"] = angles[1]
    if written.classes is not None:  # classes take 'labels'; the cameras (if any) are in camera_angles
        meta["labels"] = [[name, c] for name, c in zip(names, written.classes.tolist())]
    if class_names is not None:
        meta["class_names"] = list(class_names)
    if isinstance(data, ImageFolderDataset):
        meta["source_files"] = dict(zip(names, data.files))
    return meta, angles


def run(opts: DatasetOptions) -> dict:
    out = Path(opts.out)
    if out.suffix.lower() != ".zip":
        raise DatasetError(f"--out must name a .zip file, got {opts.out!r}")
    data = _open_source(opts)
    n = len(data)
    labels, has_label = _source_poses(opts, data)
    classes, class_names = _folder_classes(opts, data) if opts.labels_from_folders else (None, None)
    with_classes = classes is not None or "class_label" in data.extra_names
    if with_classes:
        if labels is None:
            labels, has_label = data.get_labels(list(range(n)))
        _check_classes_storable(labels, has_label, opts.source)

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp_name, "w", compression=zipfile.ZIP_STORED) as zf:
            written = _write_images(zf, data, opts.batch, labels, has_label, classes, with_classes)
            meta, angles = _dataset_json(written, data, class_names)
            zf.writestr(LABELS_FILE, json.dumps(meta))
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, out)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise

    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    skipped = list(getattr(data, "skipped", ()))
    summary = {
        "tool": "dataset", "aware3d": __version__, "torch": torch.__version__, "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "options": to_dict(opts),
        "out": str(out), "sha256": digest, "source": opts.source, "count": n, "resolution": opts.resolution,
        "labelled": int(written.has_label.sum()),
        "num_classes": len(class_names) if class_names is not None else data.num_classes,
        "class_names": class_names, "camera_angles": angles is not None,
        "camera": angles[1] if angles is not None else None,
        "source_cameras": ("poses" if opts.poses else getattr(data, "camera_info", None)),
        "source_fingerprint": data.fingerprint(),
        "skipped": skipped, "skip_reasons": dict(getattr(data, "skip_reasons", {})),
    }
    summary_path = write_json(f"{out}.json", summary)
    return {**summary, "summary": str(summary_path)}
