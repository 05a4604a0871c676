"""``aware3d view``: a web viewer of a model (viser) that renders the browser's orbit camera live."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from ..checks import POSITIVE, SEED, Range, check_options
from ..models.base import Generator3D
from .common import ModelOptions, load_model, psi, tool_band, tool_condition


@dataclass
class ViewOptions(ModelOptions):
    host: str = "127.0.0.1"
    """Address to listen on: the default is only reachable from this machine (use an SSH port forward, ssh -L
    8080:127.0.0.1:8080 gpu-box, to view from another); 0.0.0.0 exposes the viewer to the network (with a
    warning: there is no password)."""
    port: int = 8080
    """Port to listen on (the next free one when taken; the address is printed)."""
    seed: int = 0
    """Seed of the first latent."""
    seed_b: int = 1
    """Seed of the interpolation slider's other end."""
    preview_resolution: int = 32
    """Rendering resolution while the camera or a control moves (0: no previews, every frame in full)."""
    settle: float = 0.3
    """Seconds without a change before the frame is rendered at the full resolution."""
    mesh_grid: int = 128
    """Grid points per axis of the shape saved by the Save shape button (as aware3d shapes --grid)."""
    display: str = "image"
    """What to show first: image, depth, normals, or a lighting map of the family (albedo, shading, ...)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_options(self, {"port": Range(0, 65535), "seed": SEED, "seed_b": SEED,
                             "preview_resolution": Range(0), "settle": POSITIVE, "mesh_grid": Range(2)})


def initial_state(G: Generator3D, opts: ViewOptions):
    """The viewer's first settings: the model's frontal camera, the options' seeds, truncation, resolution,
    samples and display, and a value for each condition the model takes (the options' --light / --class, else
    the middle light of the family's relighting set and class 0)."""
    from ..viewer import ViewState, home_view

    given = tool_condition(G, opts)  # refuses a --light / --class the model does not take, with the kinds it does
    conditions = G.capabilities.conditions
    light = label = None
    if given is not None and given.light is not None:
        light = tuple(round(float(v), 6) for v in given.light[0])
    elif "light" in conditions:
        codes = G.relight_codes()
        light = tuple(round(float(v), 6) for v in codes[len(codes) // 2])
    if given is not None and given.class_label is not None:
        label = int(given.class_label[0])
    elif "class_label" in conditions and G.num_classes > 0:
        label = 0
    return ViewState(view=home_view(G), seed=opts.seed, seed_b=opts.seed_b, truncation_psi=psi(G, opts),
                     resolution=opts.resolution, num_samples=opts.num_samples, display=opts.display, light=light,
                     class_label=label, lock_view_dependence=opts.lock_view_dependence, delta=tool_band(G, opts),
                     fast=opts.fast)


def start(opts: ViewOptions):
    """Load the model once and start the viewer (returns the running :class:`~aware3d.viewer.Viewer`)."""
    from ..viewer import Viewer, host_warning

    warning = host_warning(opts.host)
    if warning:
        print(f"aware3d view: {warning}", file=sys.stderr)
    G = load_model(opts)
    return Viewer(G, initial_state(G, opts), host=opts.host, port=opts.port,
                  preview_resolution=opts.preview_resolution or None, settle=opts.settle, out=opts.out,
                  mesh_grid=opts.mesh_grid)


def run(opts: ViewOptions) -> dict:
    """Serve until Ctrl-C."""
    viewer = start(opts)
    print(f"aware3d view: serving {viewer.G.family} model {opts.checkpoint} at {viewer.url} (Ctrl-C stops)",
          file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        viewer.stop()
    return {"out": opts.out, "url": viewer.url, "frames": viewer.frames_shown}
