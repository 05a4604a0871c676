"""How the metrics make generated images: settings, seeded generation, cameras, and the image size.

Generation is deterministic: latents (and dataset-pose indices) come from a CPU generator seeded with
``seed``, and any random draw of the renderer (EG3D's inference sampling jitters and draws importance
uniforms; pi-GAN's evaluation settings draw nothing) from a generator on the model's device seeded with
``seed + 2``, so the same call gives the same images.

Two resolutions (they differ for EG3D): the *rendering* resolution (EG3D's neural rendering resolution, the
size of depth, opacity and ``image_raw``) and the *image* resolution, the size of ``out.image``
(:func:`image_resolution`: a ``raw_image`` family's super-resolved ``config.img_resolution``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor
from tqdm import tqdm

from ..cameras import Cameras
from ..models.base import Condition, Generator3D, GeneratorOutput
from ..rendering import RenderConfig

QUANTIZE = "uint8 = round((x + 1) * 127.5) clamped to [0, 255] (StyleGAN's x * 127.5 + 128, truncated)"
"""How images in [-1, 1] become the detector's uint8 input (real and generated alike)."""

RENDER_SEED_OFFSET = 2
"""The renderer's random draws use ``seed + RENDER_SEED_OFFSET`` (``seed + 1`` picks the real images)."""

CAMERA_SOURCES = ("auto", "dataset", "prior")
"""Camera sources a metric may ask for (see :func:`resolve_camera`)."""


def to_uint8(images: Tensor) -> Tensor:
    """(B, C, H, W) float in [-1, 1] -> uint8 (see :data:`QUANTIZE`)."""
    return ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class GenerationSettings:
    """How generated images are made (recorded in the output JSON)."""

    resolution: int
    """Rendering resolution in pixels (EG3D: the neural rendering resolution of depth and ``image_raw``)."""
    truncation_psi: float
    """Truncation in w space (1 = none)."""
    camera: str
    """Resolved camera source: "dataset" (labels of random items) or "prior" (the model's pose distribution)."""
    render: RenderConfig
    """Sampling and compositing settings."""
    lock_view_dependence: bool = False
    """Whether colours ignore the view direction."""
    image_resolution: int | None = None
    """Size of the final ``image`` in pixels (None: the rendering resolution; EG3D: ``img_resolution``)."""

    @property
    def image_size(self) -> int:
        """The final image's side in pixels."""
        return self.image_resolution or self.resolution


def image_resolution(G: Generator3D, render_resolution: int) -> int:
    """Side of ``G``'s final images when rendering at ``render_resolution``: a ``raw_image`` family (EG3D)
    super-resolves to ``config.img_resolution``; the others output the rendering resolution."""
    return int(G.image_resolution(render_resolution))


def render_generator(G: Generator3D, seed: int) -> torch.Generator:
    """The seeded source of the renderer's draws, on the model's device (where the renderer draws them)."""
    return torch.Generator(device=G.device).manual_seed(seed + RENDER_SEED_OFFSET)


def condition_rows(condition: Condition | None, start: int, stop: int, device) -> Condition | None:
    """Rows start..stop of ``condition`` on ``device`` (one-row fields apply to all), or None."""
    return None if condition is None else condition.rows(slice(start, stop)).to(device)


def resolve_camera(requested: str, data) -> str:
    """"dataset" or "prior" for a requested source ("auto": dataset poses when every item has a label)."""
    if requested not in CAMERA_SOURCES:
        raise ValueError(f"unknown camera source {requested!r}; valid: {', '.join(CAMERA_SOURCES)}")
    has_labels = data is not None and bool(data.has_labels)
    if requested == "dataset" and not has_labels:
        raise ValueError("camera source 'dataset' needs a dataset whose items all have camera labels "
                         "(pass --data with labels, or use --camera prior)")
    if requested == "auto":
        return "dataset" if has_labels else "prior"
    return requested


def check_dataset_cameras(G: Generator3D, data, render: RenderConfig, items: int = 16) -> None:
    """Refuse dataset cameras that cannot see the model's object: the camera's distance to the world origin
    (where every family's object sits) must lie in the rays' [near, far] range for at least one of the first
    ``items`` labels. E.g. synthetic-heads' cameras (radius 1) and EG3D (rays from 2.25 to 3.3)."""
    label = data.get_labels(list(range(min(items, len(data)))))[0].to(torch.float32)
    dist = label[:, :16].reshape(-1, 4, 4)[:, :3, 3].norm(dim=-1)
    if bool(((dist < render.near) | (dist > render.far)).all()):
        raise ValueError(
            f"the dataset's cameras are {float(dist.min()):.3g}..{float(dist.max()):.3g} from the origin, but this "
            f"{G.family} model renders {render.near:g}..{render.far:g} along each ray (its cameras sit at "
            f"{G.config.pose.radius:g}): from there it would show empty space. Use --camera prior (the model's pose "
            "distribution) or a dataset whose cameras match the model")


def _cameras(G: Generator3D, b: int, settings: GenerationSettings, data, g: torch.Generator) -> Cameras:
    """``b`` cameras from the settings' source: labels of random dataset items, or the model's prior."""
    if settings.camera == "dataset":
        idx = torch.randint(0, len(data), (b,), generator=g)
        label = data.get_labels(idx)[0].to(G.device, torch.float32)
        return Cameras(label[:, :16].reshape(-1, 4, 4), label[:, 16:].reshape(-1, 3, 3))
    return G.sample_cameras(b, generator=g).to(G.device)


@torch.no_grad()
def generate(G: Generator3D, n: int, settings: GenerationSettings, *, seed: int, batch: int, data=None,
             normals: bool = False, progress: bool = True, desc: str = "generate",
             condition: Condition | None = None) -> Iterator[tuple[GeneratorOutput, Cameras]]:
    """Yield ``(render, cameras)`` batches of ``n`` images in total; deterministic for a seed.

    ``condition`` (optional) holds one row for every image, or one row for all; it is passed to the
    generator only when given."""
    g = torch.Generator().manual_seed(seed)
    g_render = render_generator(G, seed)
    with tqdm(total=n, desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for s in range(0, n, batch):
            b = min(batch, n - s)
            z = torch.randn(b, G.z_dim, generator=g).to(G.device)
            cams = _cameras(G, b, settings, data, g)
            out = G(z, cams, truncation_psi=settings.truncation_psi, resolution=settings.resolution,
                    render=settings.render, lock_view_dependence=settings.lock_view_dependence, normals=normals,
                    fast=True, generator=g_render, condition=condition_rows(condition, s, s + b, G.device))
            bar.update(b)
            yield out, cams


__all__ = ["CAMERA_SOURCES", "GenerationSettings", "QUANTIZE", "RENDER_SEED_OFFSET", "check_dataset_cameras",
           "condition_rows", "generate", "image_resolution", "render_generator", "resolve_camera", "to_uint8"]
