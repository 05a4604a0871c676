"""Family-agnostic rendering: volume sampling, compositing, the field-callback renderer, and a pure-PyTorch
triangle-mesh rasteriser (:mod:`.rasterize`: :func:`rasterize`, :func:`interpolate`, :func:`project_points`,
:func:`visible_points`)."""

from .compositing import Composited, activate_density, composite, surface_depth
# the function shadows the submodule's attribute here: import the module as `from aware3d.rendering.rasterize import ...`
from .rasterize import Fragments, interpolate, project_points, rasterize, visible_points
from .renderer import (CameraFrameRays, FieldFn, RandomDraws, RayOutput, RenderConfig, density_normals, render_rays,
                       shaped_density)
from .sampling import jitter_in_bins, sample_importance, sample_pdf, sample_stratified, stratified_parts

__all__ = [
    "Fragments", "interpolate", "project_points", "rasterize", "visible_points",
    "CameraFrameRays", "Composited", "FieldFn", "RandomDraws", "RayOutput", "RenderConfig", "activate_density", "composite",
    "density_normals", "jitter_in_bins", "render_rays", "sample_importance", "sample_pdf", "sample_stratified", "shaped_density", "stratified_parts",
    "surface_depth",
]
