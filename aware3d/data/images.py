"""Real-image datasets: a folder of pictures or a zip of them, with optional camera labels.

Files: every png / jpg / jpeg / webp / bmp (any letter case) found recursively, ordered by relative path
(``/``-separated); a zip is read the same way (``__MACOSX/`` entries ignored) and opened lazily once per
process, so datasets pickle into ``DataLoader`` workers (each worker opens its own handle).

Cameras come from a ``dataset.json`` at the root, in either layout:

* EG3D: ``{"labels": [["dir/img.png", [25 floats]], ...]}`` (a ``{path: label}`` object works too;
  ``null`` marks an unlabelled image). The 25 floats are the row-major OpenCV cam2world and the
  normalised intrinsics (:mod:`aware3d.cameras.poses`), used unchanged.
* EpiGRAF: ``{"camera_angles": {"dir/img.png": [yaw, pitch, roll], ...}}``, converted to the EG3D
  label of a camera looking at the origin from ``radius`` with field of view ``fov_deg``. An optional
  ``"camera": {"radius": r, "fov_deg": f, "angles": "epigraf" | "zero_centered" | "spherical"}`` says how:
  ``epigraf`` (default, what official EpiGRAF zips hold and ``aware3d dataset`` writes: yaw zero-centred,
  pitch the polar angle from +y, frontal [0, pi/2, 0]; :func:`aware3d.cameras.epigraf_to_pigan`),
  ``zero_centered`` (older ``aware3d dataset`` zips, which tag themselves so: frontal [0, 0, 0], pitch
  offset from the horizon; still read as written) or ``spherical`` (pi-GAN angles in our world: yaw =
  azimuth, frontal (pi/2, pi/2)). Defaults: radius 1, fov 12 degrees (EpiGRAF's FFHQ config); what was
  used is in ``dataset.camera_info``. Roll must be 0.

When both hold cameras, ``labels`` win (an EG3D label is exact; angles lose the intrinsics).

Class labels: when ``labels`` holds integers (StyleGAN2-ADA conditional datasets,
``{"labels": [["dir/img.png", 3], ...]}`` or ``{path: 3}``; EpiGRAF keeps its cameras in
``camera_angles`` beside them), they become the ``class_label`` extra ((B,) int64, see
:mod:`aware3d.data.base`) and ``dataset.num_classes`` is 1 + the largest. Every image then needs a
non-negative integer class: a missing image, a null or a malformed value is an error naming the file.
``labels`` that are neither cameras nor integers are ignored with a warning when ``camera_angles`` exist
(an error otherwise).

Keys are matched by exact relative path, then without a leading ``<root name>/``, then ignoring the
extension (as EpiGRAF does). A key naming no image, or images missing from a label table that covers
others, is an error naming them.

Preprocessing (:class:`Preprocess`): crop a square (centred by default, or pi-GAN's CelebA crop, or no
crop and a squash, or a fixed box), resize it to the resolution with an antialiasing PIL filter (one
resampling straight from the crop box), convert to RGB (greyscale, palette, 16-bit and transparent
pictures included) and scale to [-1, 1].

Corrupt files are found at scan time (:func:`check_image_bytes`); by default that raises a
:class:`DatasetError` naming the file and the ``skip_corrupt=True`` / ``--skip-corrupt`` fix; with
``skip_corrupt`` each is skipped with one warning and listed in ``dataset.skipped``. A file that breaks
after the scan raises at load time, naming it. Scans are cached in memory (keyed by path, file sizes
and modification times), never on disk; loading is deterministic.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..cameras import cam2world_from_angles, epigraf_to_pigan, intrinsics_from_fov, to_eg3d_label
from ..cameras.poses import legacy_zero_centered_to_pigan
from ..config import to_dict
from .base import LABEL_DIM, DatasetError, DatasetNotFoundError, ImageDataset, _check_resolution

__all__ = [
    "CHECK_LEVELS", "DEFAULT_EPIGRAF_CAMERA", "IMAGE_EXTENSIONS", "LABELS_FILE", "PREPROCESS_PRESETS",
    "ImageFolderDataset", "Preprocess", "check_image_bytes", "crop_box", "decode_image", "epigraf_labels",
    "list_image_files", "list_some", "match_keys", "preprocess_image", "resolve_preprocess",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
"""File suffixes (compared in lower case) that count as images."""

LABELS_FILE = "dataset.json"
"""Name of the label file at the dataset root."""

CHECK_LEVELS = ("quick", "full", "none")
"""Scan-time verification levels of :func:`check_image_bytes`."""

DEFAULT_EPIGRAF_CAMERA = {"radius": 1.0, "fov_deg": 12.0, "angles": "epigraf"}
"""Camera used to turn EpiGRAF ``camera_angles`` into labels when ``dataset.json`` has no ``camera``
entry: EpiGRAF's FFHQ setting (radius 1, fov 12), official angles (frontal = [0, pi/2, 0])."""

_ANGLE_CONVENTIONS = ("epigraf", "zero_centered", "spherical")
_PARALLEL_SCAN_MIN = 64
"""Scans of at least this many files use a thread pool (PIL decoding and hashing release the GIL)."""


# ===================================================================================== preprocessing

@dataclass(frozen=True)
class Preprocess:
    """How a stored picture becomes a square image at the dataset resolution."""

    crop: Literal["center", "pigan-celeba", "stretch"] = "center"
    """center: the largest centred square; pigan-celeba: pi-GAN's CelebA crop (Resize(320) then
    CenterCrop(256), i.e. a centred square of 0.8x the shorter side); stretch: no crop, the whole picture
    squashed to a square (pi-GAN Cats and CARLA: Resize((R, R)))."""
    crop_box: tuple[int, int, int] | None = None
    """Fixed square (top, left, size) in stored-picture pixels, used instead of ``crop``; it must lie
    inside every picture."""
    resample: Literal["lanczos", "bicubic", "bilinear", "box", "nearest"] = "lanczos"
    """PIL filter of the single resize from the crop box to the resolution (all antialias except
    nearest, which pi-GAN used for its final resize)."""
    alpha: Literal["drop", "white", "black"] = "drop"
    """Transparent pictures: drop the alpha channel (as Pillow's RGB conversion does) or composite them
    over white / black."""

    def __post_init__(self) -> None:
        if self.crop not in ("center", "pigan-celeba", "stretch"):
            raise ValueError(f"unknown crop {self.crop!r}; valid: center, pigan-celeba, stretch")
        if self.resample not in _RESAMPLE:
            raise ValueError(f"unknown resample filter {self.resample!r}; valid: {', '.join(_RESAMPLE)}")
        if self.alpha not in ("drop", "white", "black"):
            raise ValueError(f"unknown alpha handling {self.alpha!r}; valid: drop, white, black")
        if self.crop_box is not None:
            box = tuple(int(v) for v in self.crop_box)
            if len(box) != 3 or box[0] < 0 or box[1] < 0 or box[2] < 1:
                raise ValueError(f"crop_box must be (top, left, size) with top, left >= 0 and size >= 1, "
                                 f"got {self.crop_box!r}")
            object.__setattr__(self, "crop_box", box)


_RESAMPLE = {
    "lanczos": Image.Resampling.LANCZOS, "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR, "box": Image.Resampling.BOX, "nearest": Image.Resampling.NEAREST,
}

PREPROCESS_PRESETS: dict[str, Preprocess] = {
    "center": Preprocess(),
    "stretch": Preprocess(crop="stretch"),
    "pigan-celeba": Preprocess(crop="pigan-celeba"),
    "pigan-cats": Preprocess(crop="stretch"),
    "pigan-carla": Preprocess(crop="stretch"),
}
"""Named preprocessings. The pi-GAN ones reproduce the crop geometry of pi-GAN's ``datasets.py`` (CelebA:
shorter side to 320, centre 256 square; Cats / CARLA: squash to a square) with one antialiased resize;
set ``resample="nearest"`` to also copy its final nearest-neighbour resize."""


def resolve_preprocess(preprocess: str | Preprocess) -> Preprocess:
    """A :class:`Preprocess` from itself or a preset name of :data:`PREPROCESS_PRESETS`."""
    if isinstance(preprocess, Preprocess):
        return preprocess
    if preprocess not in PREPROCESS_PRESETS:
        raise DatasetError(f"unknown preprocessing {preprocess!r}; valid: {', '.join(PREPROCESS_PRESETS)}")
    return PREPROCESS_PRESETS[preprocess]


def crop_box(width: int, height: int, preprocess: Preprocess) -> tuple[float, float, float, float]:
    """The region of a ``width`` x ``height`` picture that becomes the output image.

    Returns PIL's box ``(left, top, right, bottom)`` in pixels (floats: pi-GAN's CelebA crop is not
    pixel-aligned in the stored picture). For ``stretch`` it is the whole picture (not square).
    """
    if preprocess.crop_box is not None:
        top, left, size = preprocess.crop_box
        if top + size > height or left + size > width:
            raise DatasetError(f"crop_box (top={top}, left={left}, size={size}) does not fit a "
                               f"{width}x{height} picture")
        return (float(left), float(top), float(left + size), float(top + size))
    if preprocess.crop == "stretch":
        return (0.0, 0.0, float(width), float(height))
    short = min(width, height)
    if preprocess.crop == "center":
        left, top = (width - short) // 2, (height - short) // 2
        return (float(left), float(top), float(left + short), float(top + short))
    # pi-GAN CelebA: the shorter side is resized to 320 (the longer one truncated as torchvision does),
    # then the centred 256 square is cut with torchvision's rounding; mapped back to stored pixels.
    scale = short / 320.0
    resized_w = 320 if width <= height else int(320 * width / height)
    resized_h = 320 if height <= width else int(320 * height / width)
    top = int(round((resized_h - 256) / 2.0))
    left = int(round((resized_w - 256) / 2.0))
    return (left * scale, top * scale, (left + 256) * scale, (top + 256) * scale)


def _to_rgb(img: Image.Image, alpha: str) -> Image.Image:
    """Any Pillow mode -> RGB (8 bits per channel)."""
    if img.mode.startswith("I;16"):
        # 16-bit greyscale: keep the full range instead of clipping at 255 as a plain conversion would.
        arr = np.asarray(img, dtype=np.uint16).astype(np.float32) / 257.0
        img = Image.fromarray(np.round(arr).astype(np.uint8), mode="L")
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "La", "RGBa") and alpha != "drop":
        rgba = img.convert("RGBA")
        back = Image.new("RGBA", rgba.size, (255, 255, 255, 255) if alpha == "white" else (0, 0, 0, 255))
        img = Image.alpha_composite(back, rgba)
    return img if img.mode == "RGB" else img.convert("RGB")


def decode_image(data: bytes, name: str) -> Image.Image:
    """Fully decode picture bytes with Pillow; a :class:`DatasetError` naming ``name`` if that fails."""
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
        return img
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, EOFError, zlib errors...
        raise DatasetError(f"cannot decode image {name!r}: {type(e).__name__}: {e}") from None


def preprocess_image(img: Image.Image, resolution: int, preprocess: Preprocess) -> Tensor:
    """A decoded picture -> (3, R, R) float32 in [-1, 1] (crop box resized in one antialiased step)."""
    img = _to_rgb(img, preprocess.alpha)
    left, top, right, bottom = crop_box(img.width, img.height, preprocess)
    # Cut the enclosing whole-pixel box first: resizing with a box alone lets the filter taps reach
    # pixels outside it, so colours from beyond the crop would bleed into the border.
    l0, t0 = math.floor(left), math.floor(top)
    r0, b0 = min(img.width, math.ceil(right)), min(img.height, math.ceil(bottom))
    if (l0, t0, r0, b0) != (0, 0, img.width, img.height):
        img = img.crop((l0, t0, r0, b0))
    img = img.resize((resolution, resolution), resample=_RESAMPLE[preprocess.resample],
                     box=(left - l0, top - t0, right - l0, bottom - t0))
    arr = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).to(torch.float32) / 127.5 - 1.0


def _png_complete(data: bytes) -> bool:
    # A complete PNG ends with the 12-byte IEND chunk (length 0, type, fixed CRC).
    return data.endswith(b"\x00\x00\x00\x00IEND\xaeB`\x82")


def _jpeg_complete(data: bytes) -> bool:
    # A complete JPEG ends with the EOI marker; some writers pad with zeros or newlines after it.
    return data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")


def check_image_bytes(data: bytes, name: str, level: str = "quick") -> tuple[int, int] | None:
    """Verify that ``data`` is a whole, decodable picture; returns its (width, height).

    Levels: ``quick`` reads the header, and then for PNG requires the final IEND chunk and valid chunk
    CRCs (Pillow's ``verify``), for JPEG the end-of-image marker (a JPEG without it is decoded in full to
    decide), and decodes other formats in full (BMP/WebP are cheap); ``full`` decodes every picture;
    ``none`` checks nothing (returns None). Raises :class:`DatasetError` with the reason.
    """
    if level == "none":
        return None
    if level not in CHECK_LEVELS:
        raise DatasetError(f"unknown check level {level!r}; valid: {', '.join(CHECK_LEVELS)}")
    if not data:
        raise DatasetError(f"image {name!r} is an empty file")
    try:
        img = Image.open(io.BytesIO(data))
        fmt, size = img.format, img.size
    except Exception as e:
        raise DatasetError(f"{name!r} is not a readable image: {type(e).__name__}: {e}") from None
    if level == "quick" and fmt == "PNG":
        if not _png_complete(data):
            raise DatasetError(f"image {name!r} is truncated (no PNG end chunk)")
        try:
            img.verify()
        except Exception as e:
            raise DatasetError(f"image {name!r} is corrupt: {type(e).__name__}: {e}") from None
        return size
    if level == "quick" and fmt == "JPEG" and _jpeg_complete(data):
        return size
    decode_image(data, name)
    return size


# ============================================================================================ sources

class _Source:
    """Read access to a folder or a zip; the zip handle is opened lazily once per process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.is_zip = path.is_file()
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid: int | None = None

    def __getstate__(self) -> dict:
        # Never ship an open handle to another process: it would share the file offset with this one.
        return {**self.__dict__, "_zip": None, "_zip_pid": None}

    def _zipfile(self) -> zipfile.ZipFile:
        if self._zip is None or self._zip_pid != os.getpid():
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as e:
                raise DatasetError(f"{str(self.path)!r} is not a readable zip file: {e}") from None
            self._zip_pid = os.getpid()
        return self._zip

    def names(self) -> list[str]:
        """Every file, as a '/'-separated path relative to the root."""
        if self.is_zip:
            return [n for n in self._zipfile().namelist()
                    if not n.endswith("/") and not n.startswith("__MACOSX/")]
        out = []
        for root, dirs, files in os.walk(self.path):
            dirs.sort()
            rel_root = Path(root).relative_to(self.path)
            out.extend((rel_root / f).as_posix() for f in files)
        return out

    def read(self, name: str) -> bytes:
        try:
            if self.is_zip:
                return self._zipfile().read(name)
            return (self.path / name).read_bytes()
        except DatasetError:
            raise
        except (OSError, KeyError, zipfile.BadZipFile, EOFError, ValueError) as e:
            raise DatasetError(f"cannot read {name!r} from {str(self.path)!r}: {type(e).__name__}: {e}") from None

    def exists(self, name: str) -> bool:
        if self.is_zip:
            try:
                self._zipfile().getinfo(name)
                return True
            except KeyError:
                return False
        return (self.path / name).is_file()

    def signature(self, names: list[str]) -> tuple:
        """Cheap identity of the current content (sizes and modification times)."""
        if self.is_zip:
            st = self.path.stat()
            return (st.st_size, st.st_mtime_ns)
        sig = []
        for n in names:
            st = (self.path / n).stat()
            sig.append((n, st.st_size, st.st_mtime_ns))
        return tuple(sig)


def list_image_files(names: list[str]) -> list[str]:
    """The image files among ``names`` (by suffix, any case), sorted, each once (a zip may repeat a name;
    reading it gives the last copy)."""
    return sorted({n for n in names if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS})


# =============================================================================================== scan

@dataclass
class _Scan:
    """What a scan found; shared (read-only) by every dataset opened on the same content."""

    files: list[str]
    """Every image file, sorted."""
    sizes: list[tuple[int, int] | None]
    """(width, height) per file (None when not checked or corrupt)."""
    hashes: list[str | None]
    """sha256 hex of each file's bytes (None when not read)."""
    corrupt: dict[str, str] = field(default_factory=dict)
    """Corrupt file -> reason."""
    meta: dict | None = None
    """Parsed dataset.json, or None."""
    meta_hash: str | None = None
    """sha256 of the dataset.json bytes."""


_SCAN_CACHE: dict[tuple, _Scan] = {}


def _scan_one(source: _Source, name: str, level: str) -> tuple[tuple[int, int] | None, str | None, str | None]:
    if level == "none":
        return None, None, None
    try:
        data = source.read(name)
    except DatasetError as e:
        return None, None, str(e)
    digest = hashlib.sha256(data).hexdigest()
    try:
        return check_image_bytes(data, name, level), digest, None
    except DatasetError as e:
        return None, digest, str(e)


def _scan(source: _Source, level: str) -> _Scan:
    names = source.names()
    files = list_image_files(names)
    sig_names = files + ([LABELS_FILE] if LABELS_FILE in names else [])
    key = (str(source.path.resolve()), source.is_zip, level, source.signature(sig_names))
    if key in _SCAN_CACHE:
        return _SCAN_CACHE[key]
    if len(files) >= _PARALLEL_SCAN_MIN and level != "none":
        from tqdm.auto import tqdm

        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            results = list(tqdm(pool.map(lambda n: _scan_one(source, n, level), files), total=len(files),
                                desc=f"scanning {source.path.name}", unit="img", leave=False))
    else:
        results = [_scan_one(source, n, level) for n in files]
    scan = _Scan(files=files, sizes=[r[0] for r in results], hashes=[r[1] for r in results],
                 corrupt={n: r[2] for n, r in zip(files, results) if r[2] is not None})
    if LABELS_FILE in names:
        raw = source.read(LABELS_FILE)
        scan.meta_hash = hashlib.sha256(raw).hexdigest()
        try:
            scan.meta = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DatasetError(f"{LABELS_FILE} in {str(source.path)!r} is not valid JSON: {e}") from None
        if not isinstance(scan.meta, dict):
            raise DatasetError(f"{LABELS_FILE} in {str(source.path)!r} must hold a JSON object")
    _SCAN_CACHE[key] = scan
    return scan


# ============================================================================================= labels

def list_some(items: list[str], limit: int = 5) -> str:
    """The first ``limit`` items quoted, then how many more (for error messages)."""
    shown = ", ".join(repr(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _normalise_key(key: str) -> str:
    key = str(key).replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    return key.lstrip("/")


def match_keys(keys: list[str], files: list[str], root_name: str, what: str) -> dict[str, int]:
    """Map label keys to file indices: exact path, then without '<root>/', then ignoring the extension."""
    exact = {f: i for i, f in enumerate(files)}
    by_stem: dict[str, int] = {}
    for i, f in enumerate(files):
        by_stem.setdefault(os.path.splitext(f)[0], i)
    out, unknown = {}, []
    for key in keys:
        k = _normalise_key(key)
        candidates = [k]
        if k.startswith(root_name + "/"):
            candidates.append(k[len(root_name) + 1:])
        hit = next((exact[c] for c in candidates if c in exact), None)
        if hit is None:
            hit = next((by_stem[os.path.splitext(c)[0]] for c in candidates if os.path.splitext(c)[0] in by_stem),
                       None)
        if hit is None:
            unknown.append(key)
        else:
            out[key] = hit
    if unknown:
        raise DatasetError(f"{LABELS_FILE} has {what} for {len(unknown)} file(s) not in the dataset: "
                           f"{list_some(unknown)}; "
                           "fix the paths (relative to the dataset root, '/'-separated) or remove those entries")
    return out


_ANGLES_TO_PIGAN = {
    "epigraf": epigraf_to_pigan,
    "zero_centered": legacy_zero_centered_to_pigan,
    "spherical": lambda angles: (angles[:, 0], angles[:, 1]),
}
"""camera_angles convention (a dataset.json ``camera.angles`` tag) -> its conversion to pi-GAN (yaw, pitch)."""


def epigraf_labels(angles: Tensor, radius: float = 1.0, fov_deg: float = 12.0,
                   convention: str = "epigraf") -> Tensor:
    """EpiGRAF camera_angles (B, 3) [yaw, pitch, roll] (radians, roll 0) -> EG3D labels (B, 25).

    ``epigraf``: the official convention, frontal = [0, pi/2, 0] (:func:`aware3d.cameras.epigraf_to_pigan`);
    ``zero_centered``: older aware3d zips, frontal = [0, 0, 0] (pitch offset from the horizon);
    ``spherical``: pi-GAN angles (yaw = azimuth in our world, pitch = polar angle from +y).
    The camera looks at the origin from ``radius`` with full field of view ``fov_deg``.
    """
    if convention not in _ANGLE_CONVENTIONS:
        raise DatasetError(f"unknown camera angle convention {convention!r}; valid: {', '.join(_ANGLE_CONVENTIONS)}")
    angles = angles.to(torch.float32).reshape(-1, 3)
    yaw, pitch = _ANGLES_TO_PIGAN[convention](angles)
    c2w = cam2world_from_angles(yaw, pitch, radius)
    return to_eg3d_label(c2w, intrinsics_from_fov(fov_deg, batch=len(angles)))


def _as_floats(value: Any, n: tuple[int, ...], key: str, what: str) -> list[float] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) not in n or \
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        want = " or ".join(str(k) for k in n)
        raise DatasetError(f"{LABELS_FILE}: {what} of {key!r} must be a list of {want} numbers (or null), "
                           f"got {value!r}")
    out = [float(v) for v in value]
    if not all(math.isfinite(v) for v in out):
        raise DatasetError(f"{LABELS_FILE}: {what} of {key!r} has non-finite numbers: {value!r}")
    return out


@dataclass
class _LabelTable:
    """What ``dataset.json`` says about every scanned file (N of them)."""

    labels: Tensor
    """(N, 25) EG3D camera labels, zeros where unlabelled."""
    has: Tensor
    """(N,) bool: which files have a camera."""
    listed: Tensor
    """(N,) bool: which files appear in the camera table (null entries included)."""
    camera_info: dict | None = None
    """Where the cameras came from (``dataset.camera_info``), or None without cameras."""
    classes: Tensor | None = None
    """(N,) int64 class labels, -1 for files the class table does not list; None without class labels."""

    @staticmethod
    def empty(n: int, camera_info: dict | None = None) -> "_LabelTable":
        """No labels yet for ``n`` files."""
        return _LabelTable(torch.zeros(n, LABEL_DIM), torch.zeros(n, dtype=torch.bool),
                           torch.zeros(n, dtype=torch.bool), camera_info)


def _label_table(meta: dict | None, files: list[str], root_name: str) -> _LabelTable:
    """Camera and class labels of every scanned file from the parsed ``dataset.json`` (module docstring)."""
    n = len(files)
    if not meta:
        return _LabelTable.empty(n)
    raw_labels, raw_angles = meta.get("labels"), meta.get("camera_angles")
    classes = None
    if raw_labels is not None:
        pairs = _label_pairs(raw_labels)
        values = [p[1] for p in pairs]
        if all(v is None or (isinstance(v, (list, tuple)) and len(v) == LABEL_DIM) for v in values):
            return _camera_label_table(pairs, files, root_name)
        if any(_is_int(v) for v in values):
            classes = _class_table(pairs, files, root_name)
        elif raw_angles is None:
            raise DatasetError(f"{LABELS_FILE}: 'labels' are neither EG3D camera labels ({LABEL_DIM} numbers or null "
                               "per image) nor integer class labels, and there are no 'camera_angles' to use instead")
        else:
            warnings.warn(f"{LABELS_FILE}: 'labels' are neither camera labels nor integer class labels; ignoring "
                          "them and using 'camera_angles'", stacklevel=3)
    table = _LabelTable.empty(n) if raw_angles is None else _angle_table(meta, raw_angles, files, root_name)
    table.classes = classes
    return table


def _label_pairs(raw_labels: Any) -> list:
    """``labels`` as a list of [relative_path, value] pairs (EG3D list layout or a {path: value} object)."""
    pairs = list(raw_labels.items()) if isinstance(raw_labels, dict) else raw_labels
    if not isinstance(pairs, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
        raise DatasetError(f"{LABELS_FILE}: 'labels' must be a list of [relative_path, label] pairs "
                           "(EG3D / StyleGAN2-ADA layout) or an object {relative_path: label}")
    return pairs


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _camera_label_table(pairs: list, files: list[str], root_name: str) -> _LabelTable:
    """EG3D camera labels: 25 numbers (or null) per listed file."""
    table = _LabelTable.empty(len(files), {"source": "labels"})
    index = match_keys([p[0] for p in pairs], files, root_name, "labels")
    for key, value in pairs:
        i = index[key]
        table.listed[i] = True
        floats = _as_floats(value, (LABEL_DIM,), key, "the label")
        if floats is not None:
            table.labels[i] = torch.tensor(floats)
            table.has[i] = True
    return table


def _class_table(pairs: list, files: list[str], root_name: str) -> Tensor:
    """(N,) int64 integer class labels (StyleGAN2-ADA / EpiGRAF ``labels``), -1 for unlisted files."""
    index = match_keys([p[0] for p in pairs], files, root_name, "labels")
    classes = torch.full((len(files),), -1, dtype=torch.int64)
    for key, value in pairs:
        if not _is_int(value) or value < 0:
            hint = " (every image needs a class; null is not allowed)" if value is None else ""
            raise DatasetError(f"{LABELS_FILE}: the class label of {key!r} must be a non-negative integer{hint}, "
                               f"got {value!r} ('labels' holds integer class labels: other entries are integers)")
        classes[index[key]] = value
    return classes


def _angle_table(meta: dict, raw_angles: Any, files: list[str], root_name: str) -> _LabelTable:
    """EpiGRAF ``camera_angles`` (with the optional ``camera`` entry) converted to EG3D labels."""
    if not isinstance(raw_angles, dict):
        raise DatasetError(f"{LABELS_FILE}: 'camera_angles' must be an object {{relative_path: [yaw, pitch, roll]}} "
                           "(EpiGRAF layout)")
    camera = meta.get("camera") or {}
    if not isinstance(camera, dict) or set(camera) - set(DEFAULT_EPIGRAF_CAMERA):
        raise DatasetError(f"{LABELS_FILE}: 'camera' must be an object with keys among "
                           f"{', '.join(DEFAULT_EPIGRAF_CAMERA)}, got {camera!r}")
    used = {**DEFAULT_EPIGRAF_CAMERA, **camera}
    defaults = sorted(set(DEFAULT_EPIGRAF_CAMERA) - set(camera))
    table = _LabelTable.empty(len(files), {"source": "camera_angles", **used, "defaults_used": defaults})
    index = match_keys(list(raw_angles), files, root_name, "camera_angles")
    rows, targets = [], []
    for key, value in raw_angles.items():
        table.listed[index[key]] = True
        floats = _as_floats(value, (2, 3), key, "camera_angles")
        if floats is None:
            continue
        if len(floats) == 3 and abs(floats[2]) > 1e-6:
            raise DatasetError(f"{LABELS_FILE}: camera_angles of {key!r} has roll {floats[2]}; only roll 0 is "
                               "supported (convert such poses to EG3D 'labels')")
        rows.append(floats[:2] + [0.0])
        targets.append(index[key])
    if rows:
        try:
            radius, fov = float(used["radius"]), float(used["fov_deg"])
        except (TypeError, ValueError):
            raise DatasetError(f"{LABELS_FILE}: camera radius and fov_deg must be numbers, got {camera!r}") from None
        angles = torch.tensor(rows, dtype=torch.float32)
        table.labels[targets] = epigraf_labels(angles, radius, fov, str(used["angles"]))
        table.has[targets] = True
    return table


def _check_complete(table: _LabelTable, files: list[str], keep: list[int], path: Path) -> None:
    """A :class:`DatasetError` naming the kept images (``files[i]`` for i in ``keep``) that a camera or
    class table leaves out while it lists others."""
    if table.camera_info is not None:
        missing = [files[i] for i in keep if not table.listed[i]]
        if missing:
            raise DatasetError(f"{LABELS_FILE} in {str(path)!r} labels some images but not {len(missing)} "
                               f"other(s): {list_some(missing)}; add their labels (null marks an unlabelled image)")
    if table.classes is not None:
        missing = [files[i] for i in keep if table.classes[i] < 0]
        if missing:
            raise DatasetError(f"{LABELS_FILE} in {str(path)!r} gives class labels to some images but not to "
                               f"{len(missing)} other(s): {list_some(missing)}; add theirs (every image of a "
                               "class-conditional dataset needs an integer class)")


# ============================================================================================ dataset

class ImageFolderDataset(ImageDataset):
    """Pictures in a folder or a zip, with optional ``dataset.json`` cameras and class labels (see module
    docstring)."""

    def __init__(self, path: str | os.PathLike, resolution: int, *, mirror: bool = False,
                 skip_corrupt: bool = False, length: int | None = None, seed: int = 0,
                 preprocess: str | Preprocess = "center", check: str = "quick") -> None:
        path = Path(path)
        if not path.exists():
            raise DatasetNotFoundError(f"image dataset {str(path)!r} not found (expected a folder or a .zip)")
        if check not in CHECK_LEVELS:
            raise DatasetError(f"unknown check level {check!r}; valid: {', '.join(CHECK_LEVELS)}")
        self.path = path
        self.name = path.stem if path.is_file() else path.name
        self.resolution = _check_resolution(resolution)
        self.mirror = bool(mirror)
        self.preprocess = resolve_preprocess(preprocess)
        self.check = check
        self._source = _Source(path)
        scan = _scan(self._source, check)
        if not scan.files:
            raise DatasetError(f"no images ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) found in {str(path)!r}")
        self._scan_data = scan
        if scan.corrupt and not skip_corrupt:
            first = next(iter(scan.corrupt.values()))
            more = f" (and {len(scan.corrupt) - 1} more corrupt file(s))" if len(scan.corrupt) > 1 else ""
            raise DatasetError(f"{first}{more} in {str(path)!r}; remove or repair it, or pass skip_corrupt=True "
                               "(--skip-corrupt) to skip unreadable images")
        for name, reason in scan.corrupt.items():
            warnings.warn(f"skipping corrupt image {name!r}: {reason}", stacklevel=2)
        self.skipped: tuple[str, ...] = tuple(scan.corrupt)
        """Files skipped as corrupt (only with skip_corrupt)."""
        self.skip_reasons: dict[str, str] = dict(scan.corrupt)
        """Why each skipped file was skipped."""
        table = _label_table(scan.meta, scan.files, self.name)
        self.camera_info = table.camera_info
        keep = [i for i, f in enumerate(scan.files) if f not in scan.corrupt]
        if not keep:
            raise DatasetError(f"all {len(scan.files)} images in {str(path)!r} are corrupt; nothing to load")
        _check_complete(table, scan.files, keep, path)
        if length is not None:
            if length < 1:
                raise DatasetError(f"length must be >= 1, got {length}")
            if length < len(keep):
                g = torch.Generator().manual_seed(seed)
                chosen = torch.randperm(len(keep), generator=g)[:length].sort().values.tolist()
                keep = [keep[i] for i in chosen]
        self._keep = keep
        self.subset = None if length is None or length >= len(scan.files) else {"length": length, "seed": seed}
        self.files: list[str] = [scan.files[i] for i in keep]
        """Relative paths of the items, in item order."""
        self.labels: Tensor = table.labels[keep]
        """(N, 25) labels of the unmirrored items (zeros where unlabelled)."""
        self.label_mask: Tensor = table.has[keep]
        """(N,) bool: which unmirrored items have a camera."""
        self.class_labels: Tensor | None = None if table.classes is None else table.classes[keep]
        """(N,) int64 class labels of the unmirrored items, or None when dataset.json has none."""
        self._num_classes = 0 if table.classes is None else int(table.classes.max()) + 1
        self._content_hashes: list[str] | None = None
        if self.preprocess.crop_box is not None:
            for f, size in zip(self.files, (scan.sizes[i] for i in keep)):
                if size is not None:
                    try:
                        crop_box(size[0], size[1], self.preprocess)
                    except DatasetError as e:
                        raise DatasetError(f"{f!r}: {e}") from None

    @property
    def base_length(self) -> int:
        return len(self.files)

    @property
    def has_labels(self) -> bool:
        return bool(self.label_mask.all())

    @property
    def extra_names(self) -> tuple[str, ...]:
        """``("class_label",)`` when dataset.json has integer class labels, else none."""
        return () if self.class_labels is None else ("class_label",)

    @property
    def num_classes(self) -> int:
        """1 + the largest class label in dataset.json (over every listed file, so a ``length`` subset
        keeps the count); 0 without class labels."""
        return self._num_classes

    @property
    def is_zip(self) -> bool:
        return self._source.is_zip

    @property
    def scanned_files(self) -> list[str]:
        """Every image file the scan found (including skipped ones and those left out by ``length``)."""
        return list(self._scan_data.files)

    def read_bytes(self, index: int) -> bytes:
        """The stored bytes of unmirrored item ``index``."""
        return self._source.read(self.files[index])

    def _load(self, indices: list[int]) -> tuple[Tensor, Tensor, Tensor]:
        images = []
        for i in indices:
            name = self.files[i]
            img = decode_image(self._source.read(name), name)
            try:
                images.append(preprocess_image(img, self.resolution, self.preprocess))
            except DatasetError as e:
                raise DatasetError(f"{name!r}: {e}") from None
        return torch.stack(images), self.labels[indices].clone(), self.label_mask[indices].clone()

    def _load_with_extras(self, indices: list[int]) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
        extras = {} if self.class_labels is None else {"class_label": self.class_labels[indices].clone()}
        return (*self._load(indices), extras)

    def _load_labels(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        return self.labels[indices].clone(), self.label_mask[indices].clone()

    def _fingerprint_parts(self) -> dict[str, Any]:
        if self._content_hashes is None:
            scan = self._scan_data
            hashes = [scan.hashes[i] for i in self._keep]
            if any(h is None for h in hashes):  # scanned with check="none": hash now
                hashes = [h or hashlib.sha256(self._source.read(f)).hexdigest() for h, f in zip(hashes, self.files)]
            self._content_hashes = hashes
        parts = {
            "files": list(zip(self.files, self._content_hashes)),
            "labels": hashlib.sha256(self.labels.numpy().tobytes() + self.label_mask.numpy().tobytes()).hexdigest(),
            "preprocess": to_dict(self.preprocess),
        }
        if self.class_labels is not None:  # only then, so fingerprints of datasets without classes stay as they were
            parts["class_labels"] = hashlib.sha256(self.class_labels.numpy().tobytes()).hexdigest()
        return parts
