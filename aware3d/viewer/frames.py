"""Frames of the viewer: one render of the current settings, with cached latents and tri-planes.

Nothing here knows about the browser: :class:`FrameRenderer` turns a :class:`ViewState` (the camera and every
control) into a :class:`Frame` (a picture to show and its timings), so it is tested and benchmarked without a
server. Latents are cached per (seeds, mix, truncation, condition); a family with a plane cache
(``capabilities.plane_cache``) also keeps the camera-independent backbone output of the latest latent, so a
camera move only samples the planes and volume-renders.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..export.layouts import REGULAR
from ..export.shapes import extract_mesh, save_mesh
from ..io.depth_pictures import colorize_depth_robust, normals_picture
from ..io.media import to_uint8
from ..models.base import Condition, Generator3D, GeneratorOutput
from ..nn.kernels import low_precision
from .camera import OrbitView, view_cameras

BASE_DISPLAYS = ("image", "depth", "normals")
"""What every family can show (normals only where ``capabilities.normals``)."""


@dataclass(frozen=True)
class ViewState:
    """Everything a frame depends on: the camera and the viewer's controls."""

    view: OrbitView
    """The camera, in the model's convention."""
    seed: int = 0
    """Seed of the first latent."""
    seed_b: int = 1
    """Seed of the second latent (the interpolation's other end)."""
    mix: float = 0.0
    """Position between the two latents in w space: 0 the first, 1 the second."""
    truncation_psi: float = 1.0
    """Truncation psi in w space (1 = none)."""
    resolution: int | None = None
    """Rendering resolution (a super-resolving family's neural one); None: the model's."""
    num_samples: int | None = None
    """Coarse (and fine) samples per ray; None: the model's evaluation setting."""
    display: str = "image"
    """What to show: image, depth, normals, or a lighting map the family renders (albedo, shading, ...)."""
    light: tuple[float, ...] | None = None
    """Light code (ambient, diffuse, dx, dy) for families conditioned on a light; None: the model's default."""
    class_label: int | None = None
    """Class of a class-conditional model; None: unconditional."""
    lock_view_dependence: bool = False
    """Ignore the view direction in the colour (families whose colour depends on it)."""
    delta: float | None = None
    """Band width around the tracked surface (``capabilities.surface_band``); None: the model's."""
    fast: bool = False
    """Fast mode: band sampling around the surface a sparse probe finds, bfloat16 where the device does it fast
    (the tools' ``--fast``)."""

    def condition(self, device) -> Condition | None:
        """The state's condition as one row for every latent, or None when it sets nothing."""
        light = None if self.light is None else torch.tensor([self.light], dtype=torch.float32, device=device)
        label = None if self.class_label is None else torch.tensor([self.class_label], dtype=torch.int64, device=device)
        condition = Condition(light=light, class_label=label)
        return condition if condition.kinds() else None

    def latent_key(self) -> tuple:
        """What the latent w (and a family's tri-planes) depends on."""
        mix = 0.0 if self.seed == self.seed_b else self.mix
        return self.seed, self.seed_b, mix, self.truncation_psi, self.light, self.class_label


@dataclass
class Frame:
    """One rendered frame."""

    picture: np.ndarray
    """(H, W, 3) uint8, what the display shows (row 0 at the top)."""
    state: ViewState
    """The settings it was rendered with."""
    preview: bool
    """Rendered at the preview resolution (the camera or a control is still moving)."""
    resolution: int
    """The rendering resolution used (a super-resolving family's neural one)."""
    backbone_ms: float
    """Milliseconds spent on the camera-independent part (mapping, tri-planes); 0 when reused from the cache."""
    render_ms: float
    """Milliseconds spent rendering the camera (sampling, volume rendering, super-resolution) and the picture."""
    backbone_cached: bool
    """The latent (and tri-planes) came from the cache."""
    latent_ms: float = 0.0
    """Milliseconds the camera-independent part of this latent took when it was computed (cached or not)."""
    displays: tuple[str, ...] = ()
    """The displays this model offers (image, depth, normals where it has them, its lighting maps)."""
    output: GeneratorOutput | None = field(default=None, repr=False)
    """The raw render (for saving)."""


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that wall-clock timings measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def lighting_pictures(G: Generator3D, out: GeneratorOutput, condition: Condition | None, render) -> dict:
    """The family's lighting maps of ``out`` for display (:meth:`Generator3D.relight_maps`: albedo, shading, ...),
    each (B, 1 or 3, H, W) in [0, 1]; none for a family without a light condition (the base default)."""
    return G.relight_maps(out, condition, render)


def display_names(G: Generator3D, lighting: dict) -> tuple[str, ...]:
    """The displays of a model: image, depth, normals (``capabilities.normals``), then its lighting maps."""
    base = tuple(d for d in BASE_DISPLAYS if d != "normals" or G.capabilities.normals)
    return base + tuple(k for k in lighting if k not in base)


def picture(out: GeneratorOutput, display: str, lighting: dict) -> torch.Tensor:
    """(3, H, W) in [0, 1] of the first render of ``out`` for ``display``: the image, the surface depth coloured
    over its robust foreground range (near bright), the normals as n / 2 + 1/2, or a lighting map (grey
    maps repeated to three channels)."""
    if display == "image":
        return (out.image[0].float() / 2 + 0.5).clamp(0, 1)
    if display == "depth":
        depth = out.surface_depth if out.surface_depth is not None else out.depth
        return colorize_depth_robust(depth[:1], out.opacity[:1])[0]
    if display == "normals":
        if out.normals is None:
            raise ValueError("this render has no normals (the family has no density)")
        return normals_picture(out.normals[:1], out.opacity[:1])[0]
    if display in lighting:
        return lighting[display][0].float().expand(3, -1, -1).clamp(0, 1)
    raise ValueError(f"unknown display {display!r}; this model shows: image, depth, normals, {', '.join(lighting)}")


class FrameRenderer:
    """Renders :class:`ViewState` s of one model, reusing the latent (and tri-planes) while only the camera,
    the resolution, the samples or the display change.

    Args:
        G: the model (in eval mode), loaded once.
        sampling_seed: seed of the renderer's random draws, the same for every frame (no flicker while orbiting).
    """

    def __init__(self, G: Generator3D, sampling_seed: int = 0):
        self.G, self.sampling_seed = G, sampling_seed
        self._key: tuple | None = None
        self._w: torch.Tensor | None = None
        self._planes: torch.Tensor | None = None
        self._latent_ms = 0.0

    def latent(self, state: ViewState) -> tuple[torch.Tensor, bool]:
        """(w of the state's latent (1, ...), whether it came from the cache). Both seeds are mapped with the
        truncation and condition, then mixed linearly in w (every mix stays in the truncated region)."""
        key = state.latent_key()
        if key == self._key:
            return self._w, True
        G = self.G
        ws = G.mapping(G.z_from_seeds([state.seed, state.seed_b]), state.truncation_psi,
                       condition=state.condition(G.device))
        mix = key[2]
        self._w = ws[:1] + mix * (ws[1:] - ws[:1])
        self._planes = G.planes(self._w) if G.capabilities.plane_cache else None
        self._key = key
        return self._w, False

    def _render(self, state: ViewState, w: torch.Tensor, resolution: int | None, preview: bool) -> GeneratorOutput:
        G = self.G
        cams = view_cameras(state.view, G.device)
        generator = torch.Generator(device=G.device).manual_seed(self.sampling_seed)
        kwargs = {"resolution": resolution, "render": G.eval_render_config(state.num_samples, fast=state.fast),
                  "normals": state.display == "normals", "generator": generator,
                  "condition": state.condition(G.device)}
        if preview and G.capabilities.raw_image:
            kwargs["superresolution"] = False  # a preview shows the raw volume render
        with low_precision(state.fast):
            if self._planes is not None:
                return G.render_planes(self._planes, w, cams, **kwargs)
            band = {} if state.delta is None else {"delta": state.delta}
            return G.synthesis(w, cams, fast=True, lock_view_dependence=state.lock_view_dependence, **band, **kwargs)

    @torch.no_grad()
    def render(self, state: ViewState, preview_resolution: int | None = None) -> Frame:
        """One frame of ``state``; with ``preview_resolution`` (below the state's resolution) a quick preview."""
        G, device = self.G, self.G.device
        resolution = state.resolution
        preview = preview_resolution is not None and (resolution is None or preview_resolution < resolution)
        if preview:
            resolution = preview_resolution
        _sync(device)
        t0 = time.perf_counter()
        w, cached = self.latent(state)
        _sync(device)
        t1 = time.perf_counter()
        if not cached:
            self._latent_ms = (t1 - t0) * 1e3
        out = self._render(state, w, resolution, preview)
        cfg = G.eval_render_config(state.num_samples, fast=state.fast)
        lighting = lighting_pictures(G, out, state.condition(device), cfg)
        shown = to_uint8(picture(out, state.display, lighting), value_range=(0, 1))
        _sync(device)
        t2 = time.perf_counter()
        return Frame(shown, state, preview, int(out.depth.shape[-1]), 0.0 if cached else (t1 - t0) * 1e3,
                     (t2 - t1) * 1e3, cached, self._latent_ms, display_names(G, lighting), out)

    def completed(self, state: ViewState) -> tuple[ViewState, tuple[str, ...]]:
        """(``state`` with the model's resolution and samples per ray where it leaves them None, the displays the
        model offers), from one render at four samples per ray (which also fills the latent cache)."""
        probe = self.render(replace(state, num_samples=4))
        samples = self.G.eval_render_config().num_samples if state.num_samples is None else state.num_samples
        return replace(state, resolution=state.resolution or probe.resolution, num_samples=samples), probe.displays

    @torch.no_grad()
    def export_shape(self, state: ViewState, path: str | Path, grid: int = 128, level: float | str | None = None) -> dict:
        """Mesh the state's latent as ``aware3d shapes`` does (the regular grid over the model's cube, the family's
        iso level unless ``level``), with vertex colours, to ``path`` (.glb, .ply or .obj)."""
        from ..tools.shapes import resolve_level

        G = self.G
        w, _ = self.latent(state)
        vols = REGULAR.volumes(G, w, grid, None, False)
        h = vols.half_extent
        iso = resolve_level(level, vols.interior, G.shape_level())
        verts, faces = extract_mesh(vols.mesh_volume, iso, ((-h, -h, -h), (h, h, h)))
        colors = G.color(w)(torch.from_numpy(verts)[None].to(G.device))[0].clamp(0, 1).cpu().numpy()
        file = save_mesh(path, verts, faces, vertex_colors=colors.astype(np.float32))
        return {"file": str(file), "level": iso, "vertices": len(verts), "faces": len(faces)}


__all__ = ["BASE_DISPLAYS", "Frame", "FrameRenderer", "ViewState", "display_names", "lighting_pictures", "picture"]
