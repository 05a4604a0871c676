"""Family-agnostic volume rendering: sampling, compositing and the field-callback renderer."""

from .compositing import Composited, activate_density, composite, surface_depth
from .renderer import CameraFrameRays, FieldFn, RandomDraws, RayOutput, RenderConfig, density_normals, render_rays
from .sampling import jitter_in_bins, sample_importance, sample_pdf, sample_stratified, stratified_parts

__all__ = [
    "CameraFrameRays", "Composited", "FieldFn", "RandomDraws", "RayOutput", "RenderConfig", "activate_density", "composite",
    "density_normals", "jitter_in_bins", "render_rays", "sample_importance", "sample_pdf", "sample_stratified", "stratified_parts",
    "surface_depth",
]
