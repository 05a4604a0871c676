"""The loss curve of an inversion as a PNG (drawn with Pillow: no plotting library needed).

Two panels share the step axis: the total loss on a log scale (top) and the PSNR in dB of the best candidate's
render (bottom); each phase (search, latent, refine, pti) has its own colour and is labelled at its start.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

PHASE_COLOURS = {"search": (120, 120, 120), "latent": (31, 119, 180), "refine": (44, 160, 44), "pti": (214, 39, 40)}
"""Line colour of each phase (others: black)."""
WIDTH, PANEL, MARGIN = 720, 220, 56


def _panel(draw: ImageDraw.ImageDraw, rows: list[dict], values: list[float], top: int, label: str, fmt: str,
           font) -> None:
    """One panel: axes, min/max labels and the curve coloured by phase."""
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    x0, x1, y0, y1 = MARGIN, WIDTH - 12, top + 10, top + PANEL - 24
    draw.rectangle([x0, y0, x1, y1], outline=(0, 0, 0))
    draw.text((4, y0), fmt.format(hi), fill=(0, 0, 0), font=font)
    draw.text((4, y1 - 10), fmt.format(lo), fill=(0, 0, 0), font=font)
    draw.text((x0 + 4, y0 + 2), label, fill=(0, 0, 0), font=font)
    n = max(len(values) - 1, 1)

    def point(i: int) -> tuple[float, float]:
        return x0 + (x1 - x0) * i / n, y1 - (y1 - y0) * (values[i] - lo) / (hi - lo)

    for i in range(1, len(values)):
        colour = PHASE_COLOURS.get(rows[i]["phase"], (0, 0, 0))
        if rows[i]["phase"] == rows[i - 1]["phase"]:
            draw.line([point(i - 1), point(i)], fill=colour, width=2)
    for i, row in enumerate(rows):
        if i == 0 or row["phase"] != rows[i - 1]["phase"]:
            x = point(i)[0]
            draw.line([(x, y0), (x, y1)], fill=(200, 200, 200))
            draw.text((x + 2, y1 + 4), row["phase"], fill=PHASE_COLOURS.get(row["phase"], (0, 0, 0)), font=font)


def plot_history(rows: list[dict], path: str | os.PathLike) -> Path:
    """Write the loss curve of ``rows`` (:class:`~aware3d.inversion.latent.History` rows) to ``path`` (PNG)."""
    if not rows:
        raise ValueError("no optimisation steps were run, so there is no loss curve to draw")
    image = Image.new("RGB", (WIDTH, 2 * PANEL + 20), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    losses = [math.log10(max(r["loss"], 1e-12)) for r in rows]
    _panel(draw, rows, losses, 0, "log10 loss", "{:.2f}", font)
    _panel(draw, rows, [r["psnr"] for r in rows], PANEL, "PSNR (dB)", "{:.1f}", font)
    draw.text((WIDTH // 2 - 20, 2 * PANEL + 4), f"step (0..{len(rows) - 1})", fill=(0, 0, 0), font=font)
    path = Path(path)
    image.save(path)
    return path


__all__ = ["PHASE_COLOURS", "plot_history"]
