"""Depth and normal pictures that show shape: a robust colour range, a neutral background and a colour bar.

Conventions:

* Depth is a ``(B, 1, H, W)`` float tensor of distances along the pixel rays, in world units (a render's
  ``surface_depth``). Opacity, when given, is ``(B, 1, H, W)`` in ``[0, 1]``; a pixel is foreground where it
  exceeds ``threshold`` (0.5) and its depth is finite.
* The colour range is one :class:`DepthRange` for the whole batch (so the rows of a grid and the frames of a
  video share one scale and one colour bar). It spans the 2nd..98th percentiles of the foreground depths, not
  their min..max: a few stray pixels (a floater at the far plane, a hole) then cannot squeeze every other
  depth into one colour.
* Pictures are ``(B, 3, H, W)`` / ``(3, H, W)`` float tensors in ``[0, 1]``. Near depths are bright (yellow),
  far ones dark (purple), with :func:`aware3d.io.media.apply_colormap`; background is :data:`BACKGROUND` grey,
  a colour the map never uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .media import apply_colormap, normals_to_image

__all__ = [
    "BACKGROUND",
    "DepthRange",
    "robust_depth_range",
    "colorize_depth_robust",
    "normals_picture",
    "colorbar_ticks",
    "depth_colorbar",
    "attach_colorbar",
]

#: Grey of pixels without a surface (depth and normal pictures), RGB in [0, 1].
BACKGROUND: tuple[float, float, float] = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class DepthRange:
    """The depths at the two ends of the colour map (world units, ``near <= far``)."""

    near: float
    """Depth drawn with the brightest colour (yellow); nearer depths are clamped to it."""
    far: float
    """Depth drawn with the darkest colour (purple); farther depths are clamped to it."""


def _foreground(depth: Tensor, opacity: Tensor | None, threshold: float) -> Tensor:
    """(B, 1, H, W) bool: finite depth and (with ``opacity``) opacity above ``threshold``."""
    if depth.ndim != 4 or depth.shape[1] != 1:
        raise ValueError(f"depth must be (B,1,H,W), got shape {tuple(depth.shape)}")
    valid = torch.isfinite(depth)
    if opacity is not None:
        if opacity.shape != depth.shape:
            raise ValueError(f"opacity must have the depth's shape {tuple(depth.shape)}, got {tuple(opacity.shape)}")
        valid = valid & (opacity.to(depth.device) > threshold)
    return valid


def robust_depth_range(depth: Tensor, opacity: Tensor | None = None, *, percentiles: tuple[float, float] = (2.0, 98.0),
                       threshold: float = 0.5) -> DepthRange:
    """The colour range of a batch of depth maps: percentiles of its foreground depths.

    Args:
        depth: ``(B, 1, H, W)`` distances along the rays, world units.
        opacity: ``(B, 1, H, W)`` accumulated alpha in ``[0, 1]``; None: every finite pixel is foreground.
        percentiles: ``(low, high)`` in ``[0, 100]``, linear interpolation between order statistics (as
            ``numpy.percentile``), over the foreground pixels of the whole batch.
        threshold: opacity above which a pixel is foreground.

    Returns:
        ``DepthRange(near=P_low, far=P_high)``. With no foreground pixel the finite pixels are used instead
        (a render with no surface still gets a readable picture); with none of those, ``(0, 1)``. A flat range
        (``far - near`` below ``1e-6 * max(1, |near|)``) is widened to ``near -+ 1e-3 * max(1, |near|)``, so a
        constant depth shows as the map's middle colour and the colour bar still has distinct labels.
    """
    low, high = percentiles
    if not 0.0 <= low <= high <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low <= high <= 100, got {percentiles}")
    d = depth.detach().float()
    fg = _foreground(d, opacity, threshold)
    if not bool(fg.any()):
        fg = torch.isfinite(d)
    if not bool(fg.any()):
        return DepthRange(0.0, 1.0)
    values = d[fg].cpu().double().numpy()
    near, far = (float(v) for v in np.percentile(values, [low, high]))
    scale = max(1.0, abs(near))
    if far - near < 1e-6 * scale:
        centre = 0.5 * (near + far)
        near, far = centre - 1e-3 * scale, centre + 1e-3 * scale
    return DepthRange(near, far)


def colorize_depth_robust(depth: Tensor, opacity: Tensor | None = None, *, depth_range: DepthRange | None = None,
                          threshold: float = 0.5) -> Tensor:
    """Colour depth maps over a robust range, background grey.

    Args:
        depth: ``(B, 1, H, W)`` distances along the rays, world units.
        opacity: ``(B, 1, H, W)`` in ``[0, 1]``; pixels at or below ``threshold`` are background. None: every
            finite pixel is foreground.
        depth_range: the depths at the map's ends; None: :func:`robust_depth_range` of this batch.

    Returns:
        ``(B, 3, H, W)`` float32 in ``[0, 1]`` on the depth's device: ``apply_colormap(1 - (d - near) /
        (far - near))`` (near bright) on the foreground, depths outside the range clamped to the end
        colours, :data:`BACKGROUND` elsewhere (and on non-finite depths). A batch without any foreground pixel
        (a fog nowhere opaque, as a fresh model renders) colours every finite pixel, as its range does.
    """
    d = depth.detach().float()
    fg = _foreground(d, opacity, threshold)
    if not bool(fg.any()):
        fg = torch.isfinite(d)
    r = robust_depth_range(d, opacity, threshold=threshold) if depth_range is None else depth_range
    span = max(r.far - r.near, 1e-12)  # a caller's flat range: everything gets the near colour
    t = 1.0 - (torch.nan_to_num(d[:, 0], posinf=r.far, neginf=r.near) - r.near) / span
    rgb = apply_colormap(t).permute(0, 3, 1, 2)
    grey = torch.tensor(BACKGROUND, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return torch.where(fg, rgb, grey)


def normals_picture(normals: Tensor, opacity: Tensor | None = None, *, threshold: float = 0.5) -> Tensor:
    """``(B, 3, H, W)`` unit normals (components in ``[-1, 1]``) as ``n / 2 + 1/2`` in ``[0, 1]``, with
    :data:`BACKGROUND` where ``opacity`` (``(B, 1, H, W)``) is at or below ``threshold`` (nowhere when no pixel of
    the batch is above it, as :func:`colorize_depth_robust`)."""
    rgb = normals_to_image(normals)
    if rgb.ndim != 4:
        raise ValueError(f"normals must be (B,3,H,W), got shape {tuple(normals.shape)}")
    if opacity is None:
        return rgb
    fg = opacity.to(rgb.device) > threshold
    if not bool(fg.any()):
        return rgb
    grey = torch.tensor(BACKGROUND, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return torch.where(fg, rgb, grey)


def colorbar_ticks(depth_range: DepthRange, count: int = 3) -> list[tuple[float, str]]:
    """``count`` (>= 2) evenly spaced depths from ``near`` to ``far`` (both included) with their labels.

    The labels have as many decimals as it takes for neighbouring ticks to differ (one more than the tick
    spacing's leading digit, 0 to 6), e.g. ``0.90 / 1.00 / 1.10`` for the range 0.9..1.1.
    """
    if count < 2:
        raise ValueError(f"a colour bar needs at least 2 ticks, got {count}")
    step = (depth_range.far - depth_range.near) / (count - 1)
    decimals = 6 if step <= 0 else min(6, max(0, math.ceil(-math.log10(step) - 1e-9) + 1))
    values = [depth_range.near + step * i for i in range(count - 1)] + [depth_range.far]
    return [(v, f"{v:.{decimals}f}") for v in values]


def _font():
    from PIL import ImageFont

    return ImageFont.load_default()


def _fitting_ticks(depth_range: DepthRange, width: int, count: int, draw, font) -> list[tuple[float, str]]:
    """The most ticks (``count`` down to 2) whose labels fit side by side in ``width`` pixels."""
    for n in range(count, 2, -1):
        ticks = colorbar_ticks(depth_range, n)
        widths = [draw.textbbox((0, 0), text, font=font)[2] for _, text in ticks]
        # Centred labels: neighbours are width/(n-1) apart, the end ones are pushed inside the bar.
        if max(widths) + 4 <= width / (n - 1) and sum(widths) + 4 * n <= width:
            return ticks
    return colorbar_ticks(depth_range, 2)


def depth_colorbar(depth_range: DepthRange, width: int, *, ticks: int = 3, gradient_height: int = 8,
                   caption: str = "depth (world units)") -> Tensor:
    """A horizontal colour bar for :func:`colorize_depth_robust` pictures, labelled in world units.

    Args:
        depth_range: the range the pictures were coloured with.
        width: bar width in pixels (>= 2); column ``x`` shows depth ``near + x / (width - 1) * (far - near)``.
        ticks: labels wanted (evenly spaced, ends included); fewer (at least 2) when they do not fit.
        gradient_height: rows of the colour gradient.
        caption: a line under the labels (omitted when it does not fit, or when empty).

    Returns:
        ``(3, H, width)`` float32 in ``[0, 1]`` on the CPU: the gradient (near bright on the left), white tick
        marks and labels (:func:`colorbar_ticks`) on black.
    """
    from PIL import Image, ImageDraw

    if width < 2:
        raise ValueError(f"a colour bar needs a width of at least 2 pixels, got {width}")
    font = _font()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line = probe.textbbox((0, 0), "0123456789.-", font=font)[3] + 2
    show_caption = bool(caption) and probe.textbbox((0, 0), caption, font=font)[2] <= width
    top = gradient_height + 3  # gradient, then 3-pixel tick marks
    canvas = Image.new("RGB", (width, top + line * (2 if show_caption else 1) + 1))
    draw = ImageDraw.Draw(canvas)
    gradient = apply_colormap(1.0 - torch.linspace(0.0, 1.0, width))  # (width, 3)
    rows = (gradient.numpy() * 255.0).round().astype(np.uint8)[None].repeat(gradient_height, axis=0)
    canvas.paste(Image.fromarray(rows), (0, 0))
    span = depth_range.far - depth_range.near
    label_end = -3  # right edge of the last label drawn: a bar too narrow for two labels keeps the first
    for value, text in _fitting_ticks(depth_range, width, ticks, draw, font):
        x = round((value - depth_range.near) / span * (width - 1)) if span > 0 else 0
        draw.line([(x, gradient_height), (x, top - 1)], fill=(255, 255, 255))
        text_width = draw.textbbox((0, 0), text, font=font)[2]
        left = min(max(0, x - text_width // 2), width - text_width)
        if left > label_end + 2:
            draw.text((left, top), text, fill=(255, 255, 255), font=font)
            label_end = left + text_width
    if show_caption:
        caption_width = draw.textbbox((0, 0), caption, font=font)[2]
        draw.text(((width - caption_width) // 2, top + line), caption, fill=(200, 200, 200), font=font)
    return torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def attach_colorbar(picture: Tensor, depth_range: DepthRange, **bar_options) -> Tensor:
    """``(3, H, W)`` picture in ``[0, 1]`` with :func:`depth_colorbar` (``bar_options``) of its width under it:
    ``(3, H + bar height, W)`` on the picture's device."""
    if picture.ndim != 3 or picture.shape[0] != 3:
        raise ValueError(f"picture must be (3,H,W), got shape {tuple(picture.shape)}")
    bar = depth_colorbar(depth_range, picture.shape[-1], **bar_options).to(picture.device, picture.dtype)
    return torch.cat([picture, bar], dim=1)
