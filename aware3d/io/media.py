"""Pictures, videos and JSON records.

Conventions used throughout this module:

* Image tensors are channels-first float tensors, ``(C, H, W)`` or ``(B, C, H, W)``,
  with values in a caller-declared ``value_range`` (the generators in this package
  output ``[-1, 1]``; depth/normal visualisations output ``[0, 1]``).
* Arrays handed to encoders are channels-last ``uint8`` numpy arrays, ``(H, W, C)``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "to_uint8",
    "make_grid",
    "save_image",
    "apply_colormap",
    "colorize_depth",
    "normals_to_image",
    "write_video",
    "write_json",
    "VIDEO_SUFFIXES",
]

PathLike = str | os.PathLike

#: File suffixes accepted by :func:`write_video`.
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".gif")


# --------------------------------------------------------------------------- images


def _as_cpu_float(x: Tensor | np.ndarray) -> Tensor:
    # Visualisation must never hold the autograd graph or device memory alive.
    if isinstance(x, np.ndarray):
        x = torch.as_tensor(np.array(x, copy=True))  # copy: read-only arrays are fine
    return x.detach().to(device="cpu", dtype=torch.float32)


def to_uint8(
    images: Tensor | np.ndarray, value_range: tuple[float, float] = (-1.0, 1.0)
) -> np.ndarray:
    """Convert float images to channels-last ``uint8`` arrays.

    Args:
        images: ``(B, C, H, W)`` or ``(C, H, W)`` float tensor (any device, any float
            dtype; a numpy array is accepted too) with ``C`` in ``{1, 3}``.
        value_range: ``(lo, hi)``: ``lo`` maps to 0 and ``hi`` maps to 255. Values
            outside the range are clamped; NaN maps to 0.

    Returns:
        ``np.uint8`` array of shape ``(B, H, W, C)`` or ``(H, W, C)`` (the channel axis
        is kept even when ``C == 1``), values in ``[0, 255]``.
    """
    x = _as_cpu_float(images)
    if x.ndim not in (3, 4):
        raise ValueError(f"expected (C,H,W) or (B,C,H,W) images, got shape {tuple(x.shape)}")
    channels = x.shape[-3]
    if channels not in (1, 3):
        raise ValueError(f"expected 1 or 3 channels, got {channels} (shape {tuple(x.shape)})")
    lo, hi = float(value_range[0]), float(value_range[1])
    if not hi > lo:
        raise ValueError(f"value_range must satisfy lo < hi, got {value_range}")
    x = torch.nan_to_num(x, nan=lo)
    # Round-to-nearest (not truncation) so that exact grey levels survive a round trip.
    x = ((x - lo) * (255.0 / (hi - lo))).round().clamp_(0.0, 255.0).to(torch.uint8)
    return x.movedim(-3, -1).contiguous().numpy()


def make_grid(
    images: Tensor,
    nrow: int | None = None,
    padding: int = 2,
    pad_value: float = 0.0,
) -> Tensor:
    """Tile a batch of images into one image, row-major.

    Args:
        images: ``(B, C, H, W)`` tensor (any dtype; values are copied unchanged).
        nrow: images per row; ``None`` picks ``ceil(sqrt(B))`` for a near-square grid.
        padding: pixels of border around and between tiles (>= 0).
        pad_value: value of the border, in the same value range as ``images``.

    Returns:
        ``(C, H', W')`` tensor on the same device and dtype as ``images`` with
        ``ncol = min(nrow, B)``, ``nrows = ceil(B / ncol)``,
        ``H' = nrows * (H + padding) + padding`` and ``W' = ncol * (W + padding) + padding``.
        Image ``k`` sits at row ``k // ncol``, column ``k % ncol``; unused cells keep
        ``pad_value``.
    """
    if images.ndim != 4:
        raise ValueError(f"make_grid expects (B,C,H,W), got shape {tuple(images.shape)}")
    batch, channels, height, width = images.shape
    if batch == 0:
        raise ValueError("make_grid needs at least one image")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if nrow is None:
        nrow = math.ceil(math.sqrt(batch))
    if nrow < 1:
        raise ValueError(f"nrow must be >= 1, got {nrow}")
    ncol = min(nrow, batch)
    nrows = math.ceil(batch / ncol)
    step_y, step_x = height + padding, width + padding
    grid = images.new_full(
        (channels, nrows * step_y + padding, ncol * step_x + padding), pad_value
    )
    for k in range(batch):
        row, col = divmod(k, ncol)
        y0 = padding + row * step_y
        x0 = padding + col * step_x
        grid[:, y0 : y0 + height, x0 : x0 + width] = images[k]
    return grid


def save_image(
    path: PathLike,
    image: Tensor,
    value_range: tuple[float, float] = (-1.0, 1.0),
    nrow: int | None = None,
    padding: int = 2,
) -> Path:
    """Save one image or a grid of images with pillow (format from the suffix, e.g. PNG).

    Args:
        path: output file; parent directories are created.
        image: ``(C, H, W)`` or ``(B, C, H, W)`` float tensor, ``C`` in ``{1, 3}``,
            values in ``value_range``. A batch with ``B > 1`` is tiled with
            :func:`make_grid` (``nrow``, ``padding``; black border); ``B == 1`` is
            saved as the single image, unpadded.
        value_range: ``(lo, hi)`` mapped to ``(0, 255)``.
        nrow: images per grid row (see :func:`make_grid`).
        padding: grid border in pixels.

    Returns:
        The written path. One-channel images are saved as 8-bit greyscale (mode ``L``),
        three-channel ones as RGB.
    """
    from PIL import Image

    x = _as_cpu_float(image)
    if x.ndim == 4:
        if x.shape[0] == 1:
            x = x[0]
        else:
            # Black border: the low end of the value range, not a mid grey.
            x = make_grid(x, nrow=nrow, padding=padding, pad_value=float(value_range[0]))
    arr = to_uint8(x, value_range)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # uint8 (H,W) becomes mode "L" and (H,W,3) mode "RGB".
    pil = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    pil.save(path)
    return path


# --------------------------------------------------------------------------- depth / normals

# Viridis control points (perceptually uniform, readable in greyscale and by colour-blind
# viewers), 9 evenly spaced stops in 8-bit sRGB; linear interpolation between them is
# visually indistinguishable from the full 256-entry table at depth-map scales.
_VIRIDIS_STOPS = torch.tensor(
    [
        [68, 1, 84],
        [71, 45, 123],
        [59, 82, 139],
        [44, 114, 142],
        [33, 145, 140],
        [40, 174, 128],
        [94, 201, 98],
        [173, 220, 48],
        [253, 231, 37],
    ],
    dtype=torch.float32,
) / 255.0


def apply_colormap(t: Tensor) -> Tensor:
    """Map ``t`` of any shape with values in ``[0, 1]`` (clamped) to viridis RGB in ``[0, 1]``, returned as
    ``(*t.shape, 3)``: 0 is dark purple, 1 bright yellow."""
    stops = _VIRIDIS_STOPS.to(t.device)
    pos = t.clamp(0.0, 1.0) * (stops.shape[0] - 1)
    lo = pos.floor().long().clamp_(max=stops.shape[0] - 2)
    frac = (pos - lo.to(pos.dtype)).unsqueeze(-1)
    return stops[lo] * (1.0 - frac) + stops[lo + 1] * frac


def colorize_depth(
    depth: Tensor,
    near: float | Tensor | None = None,
    far: float | Tensor | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """Colour a depth map with a viridis-like perceptual colormap.

    Args:
        depth: ``(B, H, W)`` or ``(H, W)`` float tensor, in scene units (e.g. distance
            along the ray).
        near: depth drawn brightest (yellow). ``None`` uses the minimum over the valid
            pixels of the whole batch (one scale for all images, so frames of a video
            do not flicker). A float or a ``(B,)`` tensor (per image).
        far: depth drawn darkest (purple); ``None`` uses the maximum of the valid pixels.
        mask: optional ``(B, H, W)`` / ``(H, W)`` bool (or float, valid where > 0.5)
            tensor; ``False`` pixels are excluded from the min/max and painted black.
            Non-finite depths are treated as masked out too.

    Returns:
        ``(B, 3, H, W)`` float32 tensor in ``[0, 1]`` on ``depth``'s device (``B = 1``
        for a 2-D input). Depths outside ``[near, far]`` are clamped to the end colours.
    """
    d = depth.detach().float()
    if d.ndim == 2:
        d = d.unsqueeze(0)
    if d.ndim != 3:
        raise ValueError(f"depth must be (B,H,W) or (H,W), got shape {tuple(depth.shape)}")
    valid = torch.isfinite(d)
    if mask is not None:
        m = mask.detach().to(d.device)
        m = m if m.dtype == torch.bool else m > 0.5
        if m.ndim == 2:
            m = m.unsqueeze(0)
        if m.ndim == 4 and m.shape[1] == 1:  # tolerate (B,1,H,W) masks from renderers
            m = m[:, 0]
        valid = valid & m.expand_as(d)
    if not bool(valid.any()):
        return d.new_zeros(d.shape[0], 3, d.shape[1], d.shape[2])

    batch = d.shape[0]

    def _per_image(value: float | Tensor | None, default: Tensor) -> Tensor:
        if value is None:
            return default.expand(batch)
        v = torch.as_tensor(value, dtype=torch.float32, device=d.device).reshape(-1)
        return v.expand(batch) if v.numel() == 1 else v

    valid_vals = d[valid]
    near_t = _per_image(near, valid_vals.min()).view(batch, 1, 1)
    far_t = _per_image(far, valid_vals.max()).view(batch, 1, 1)
    span = far_t - near_t
    # Guard a flat depth map (near == far): everything then maps to the near colour.
    span = torch.where(span.abs() < 1e-12, torch.full_like(span, 1e-12), span)
    t = 1.0 - (torch.nan_to_num(d) - near_t) / span  # near -> 1 (bright), far -> 0
    rgb = apply_colormap(t).permute(0, 3, 1, 2)
    return rgb * valid.unsqueeze(1).to(rgb.dtype)


def normals_to_image(normals: Tensor) -> Tensor:
    """Map unit normals to displayable colours.

    Args:
        normals: ``(B, 3, H, W)`` or ``(3, H, W)`` float tensor with components in
            ``[-1, 1]`` (any frame; usually camera or world space).

    Returns:
        Same shape, float, ``n * 0.5 + 0.5`` clamped to ``[0, 1]``.
    """
    if normals.ndim not in (3, 4) or normals.shape[-3] != 3:
        raise ValueError(f"normals must be (B,3,H,W) or (3,H,W), got {tuple(normals.shape)}")
    return (normals.detach().float() * 0.5 + 0.5).clamp(0.0, 1.0)


# --------------------------------------------------------------------------- video


def _check_frame(frame: np.ndarray, index: int) -> np.ndarray:
    arr = np.asarray(frame)
    if arr.dtype != np.uint8:
        raise TypeError(
            f"frame {index}: expected uint8 (H,W,3), got dtype {arr.dtype}; "
            "convert float images with aware3d.io.media.to_uint8 first"
        )
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"frame {index}: expected shape (H,W,3), got {arr.shape}")
    return arr


def _frames_checked(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Yield validated frames, all required to share the first frame's size."""
    size: tuple[int, int] | None = None
    for i, frame in enumerate(frames):
        arr = _check_frame(frame, i)
        if size is None:
            size = arr.shape[:2]
        elif arr.shape[:2] != size:
            raise ValueError(f"frame {i} has size {arr.shape[:2]}, frame 0 had {size}")
        yield arr
    if size is None:
        raise ValueError("write_video got no frames")


def _ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg
    except ImportError as err:  # pragma: no cover - dependency of the package
        raise RuntimeError(
            "writing .mp4 needs the 'imageio-ffmpeg' package (pip install imageio-ffmpeg)"
        ) from err
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as err:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "no ffmpeg executable found for writing .mp4: install imageio-ffmpeg with its "
            "bundled binary, install ffmpeg on PATH, or set IMAGEIO_FFMPEG_EXE"
        ) from err


def _write_mp4(path: Path, frames: Iterator[np.ndarray], fps: float, quality: float) -> int:
    _ffmpeg_exe()
    import imageio_ffmpeg

    writer = None
    count = 0
    try:
        for arr in frames:
            h, w = arr.shape[:2]
            pad_h, pad_w = h % 2, w % 2
            if pad_h or pad_w:
                # yuv420p subsamples chroma 2x2, so H.264 needs even sizes; replicate the
                # last row/column rather than adding a visible black line.
                arr = np.pad(arr, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
            if writer is None:
                writer = imageio_ffmpeg.write_frames(
                    str(path),
                    (arr.shape[1], arr.shape[0]),
                    pix_fmt_in="rgb24",
                    pix_fmt_out="yuv420p",
                    fps=fps,
                    codec="libx264",
                    quality=quality,
                    # We already padded to even sizes; stop imageio from resizing to 16.
                    macro_block_size=1,
                    ffmpeg_log_level="error",
                )
                writer.send(None)  # start the ffmpeg process
            writer.send(np.ascontiguousarray(arr))
            count += 1
    finally:
        if writer is not None:
            writer.close()
    return count


def _write_gif(path: Path, frames: Iterator[np.ndarray], fps: float) -> int:
    """Stream a looping GIF frame by frame (each frame quantised with its own palette)."""
    from PIL import GifImagePlugin, Image

    # GIF delays are stored in centiseconds.
    duration_ms = max(10, int(round(100.0 / fps)) * 10)
    count = 0
    with open(path, "wb") as fh:
        for arr in frames:
            im = Image.fromarray(arr).quantize(colors=256)
            if count == 0:
                # Pillow's GIF saver keeps every frame in memory; its frame-level
                # header/data helpers let us write each frame as soon as it arrives.
                header, _ = GifImagePlugin.getheader(im, info={"loop": 0, "duration": duration_ms})
                for chunk in header:
                    fh.write(chunk)
            for chunk in GifImagePlugin.getdata(
                im, duration=duration_ms, include_color_table=True
            ):
                fh.write(chunk)
            count += 1
        fh.write(b";")  # GIF trailer
    return count


def write_video(
    path: PathLike,
    frames: Iterable[np.ndarray],
    fps: float = 25,
    quality: float = 8,
) -> Path:
    """Encode frames to a video file, consuming ``frames`` lazily.

    Args:
        path: output file; the suffix picks the format: ``.mp4`` (H.264 ``libx264``,
            ``yuv420p``, via imageio-ffmpeg) or ``.gif`` (pillow, loops forever).
            Parent directories are created.
        frames: iterable (a generator is fine: only one frame is held at a time) of
            ``(H, W, 3)`` ``uint8`` RGB arrays, all the same size.
        fps: frames per second (> 0). GIF delays are rounded to whole centiseconds.
        quality: imageio-ffmpeg quality, 0 (worst) to 10 (best); ignored for GIF.

    Returns:
        The written path. MP4 frames with an odd height/width are padded by one
        replicated row/column to even sizes (H.264 requires it).

    Raises:
        ValueError: unsupported suffix, no frames, or inconsistent frame sizes.
        TypeError: non-``uint8`` frames.
        RuntimeError: ``.mp4`` requested but no ffmpeg executable is available.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ValueError(
            f"unsupported video suffix {path.suffix!r} for {path}; supported: "
            + ", ".join(VIDEO_SUFFIXES)
        )
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if not 0 <= quality <= 10:
        raise ValueError(f"quality must be in [0, 10], got {quality}")
    if suffix == ".mp4":
        _ffmpeg_exe()  # fail before consuming any (possibly expensive) frames
    path.parent.mkdir(parents=True, exist_ok=True)
    # Encode into a same-directory temporary file (keeping the suffix, which ffmpeg
    # uses to pick the container) and swap it in at the end: a failure mid-stream
    # leaves neither a truncated video nor a clobbered previous one.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if suffix == ".mp4":
            _write_mp4(tmp, _frames_checked(frames), fps, quality)
        else:
            _write_gif(tmp, _frames_checked(frames), fps)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600 files
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# --------------------------------------------------------------------------- json


def _to_jsonable(obj: Any) -> Any:
    """Recursively convert ``obj`` to JSON-native types (dict keys included)."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {_json_key(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        # Sets have no order; sort when possible so output is reproducible.
        items = [_to_jsonable(v) for v in obj]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, enum.Enum):
        return _to_jsonable(obj.value)
    if isinstance(obj, torch.dtype | torch.device):
        return str(obj)
    raise TypeError(f"write_json cannot serialise object of type {type(obj).__name__}: {obj!r}")


def _json_key(key: Any) -> str | int | float | bool | None:
    key = _to_jsonable(key)
    if key is None or isinstance(key, (str, int, float, bool)):
        return key
    raise TypeError(f"write_json cannot use {key!r} as a JSON object key")


def write_json(path: PathLike, obj: Any) -> Path:
    """Write ``obj`` as pretty JSON, atomically.

    Args:
        path: output file; parent directories are created.
        obj: JSON-native values plus numpy scalars/arrays, torch tensors (``tolist``),
            ``os.PathLike`` (string), dataclass instances (``dataclasses.asdict``),
            tuples/sets (lists), enums (their value), torch dtypes/devices (string).
            Key order is preserved (not sorted). NaN/inf floats are written as
            ``NaN``/``Infinity`` as Python's ``json`` does.

    Returns:
        The written path. The content goes to a temporary file in the same directory
        that is then ``os.replace``-d over ``path``, so readers never see a partial file.
    """
    path = Path(path)
    # Serialise first: a TypeError must not leave a temporary file behind.
    text = json.dumps(_to_jsonable(obj), indent=2, sort_keys=False, ensure_ascii=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600 files; keep an existing file's mode, else a normal 0644.
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path
