"""pi-GAN configuration and named presets (the seeds' CelebA, Cats and CARLA settings, plus a tiny CPU one)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ...cameras import PixelGrid, PoseDistribution
from ...checks import AT_LEAST_ONE, FINITE, FOV_DEGREES, NON_NEGATIVE, POSITIVE, check_config
from ...rendering import RenderConfig


def _celeba_render(**kw) -> RenderConfig:
    return replace(RenderConfig(near=0.88, far=1.12, num_samples=12, num_importance=12), **kw)


@dataclass(frozen=True)
class PiGANConfig:
    """Every constructor argument of :class:`~aware3d.models.pigan.PiGANGenerator` (saved in config.json)."""

    z_dim: int = 256
    """Size of the latent code z."""
    hidden_dim: int = 256
    """Width of the FiLM-SIREN layers."""
    num_film_layers: int = 8
    """FiLM-SIREN layers before the density head (the colour branch adds one more)."""
    mapping_hidden_dim: int = 256
    """Width of the mapping network's hidden layers."""
    mapping_layers: int = 3
    """Hidden (Linear + LeakyReLU) layers of the mapping network before its output layer."""
    box_warp: float | None = 0.24
    """Side length of the cube mapped to [-1, 1]^3 before the SIREN (UniformBoxWarp); None: no warp (TALLSIREN)."""
    fov_deg: float = 12.0
    """Full field of view in degrees, centre of first pixel to centre of last (edge_aligned grid)."""
    resolution: int = 64
    """Default output resolution in pixels (square)."""
    pixel_grid: PixelGrid = "edge_aligned"
    """Pixel placement: pi-GAN puts the first and last pixel centres on the fov borders."""
    pose: PoseDistribution = field(default_factory=lambda: PoseDistribution("gaussian", math.pi / 2, math.pi / 2, 0.3, 0.155, 1.0))
    """Camera distribution used in training (and for random views)."""
    render: RenderConfig = field(default_factory=_celeba_render)
    """Sampling/compositing during training (the official forward())."""
    eval_render: RenderConfig = field(default_factory=lambda: _celeba_render(
        num_samples=24, num_importance=24, background="last_sample", perturb=False, importance_det=True))
    """Sampling/compositing for the tools (render, video, shapes): more samples, no jitter."""
    eval_truncation_psi: float = 0.7
    """Truncation the tools use unless told otherwise."""
    shape_half_extent: float = 0.15
    """Half side of the cube (world units, centred at the origin) sampled by the shapes tool."""
    w_avg_samples: int = 10000
    """Number of random z averaged into w_avg (the truncation centre)."""
    view_dependent: bool = True
    """Feed the view direction to the colour branch (pi-GAN); False fixes it, like ShadeGAN's view_condition=False,
    so colour cannot fake geometry with view-dependent effects."""
    background_point: tuple[float, float, float] | None = None
    """None: pi-GAN's background (the render config's). A world point: every ray of a latent is composited over
    the field's colour at that point, one plain colour per latent seen alike from every camera, as a dataset
    of subjects on plain backdrops has (the far samples would paint it with the SIREN's texture)."""

    def __post_init__(self) -> None:
        check_config(self, PIGAN_RANGES)


PIGAN_RANGES = {"z_dim": AT_LEAST_ONE, "hidden_dim": AT_LEAST_ONE, "num_film_layers": AT_LEAST_ONE,
                "mapping_hidden_dim": AT_LEAST_ONE, "mapping_layers": NON_NEGATIVE, "box_warp": POSITIVE,
                "fov_deg": FOV_DEGREES, "resolution": AT_LEAST_ONE, "eval_truncation_psi": FINITE,
                "shape_half_extent": POSITIVE, "w_avg_samples": AT_LEAST_ONE, "background_point": FINITE}
"""The allowed range of each numeric field of :class:`PiGANConfig` (checked on construction)."""


OFFICIAL_CURRICULA: dict[str, str] = {"pigan-celeba": "CelebA", "pigan-cats": "CATS", "pigan-carla": "CARLA"}
"""The presets of the official curricula (``curriculums.py``), with their names: what an official file may be."""


PIGAN_PRESETS: dict[str, PiGANConfig] = {
    "pigan-celeba": PiGANConfig(),
    "pigan-cats": PiGANConfig(
        pose=PoseDistribution("uniform", math.pi / 2, math.pi / 2, 0.5, 0.4, 1.0),
        render=RenderConfig(near=0.8, far=1.2, num_samples=24, num_importance=24),
        eval_render=RenderConfig(near=0.8, far=1.2, num_samples=48, num_importance=48, background="last_sample",
                                 perturb=False, importance_det=True),
    ),
    "pigan-carla": PiGANConfig(
        box_warp=None,
        fov_deg=30.0,
        resolution=32,
        pose=PoseDistribution("spherical_uniform", math.pi / 2, math.pi / 4 * 85 / 90, math.pi, math.pi / 4 * 85 / 90, 1.0),
        render=RenderConfig(near=0.7, far=1.3, num_samples=48, num_importance=48, background="white"),
        # The render scripts double the curriculum's 48 steps (--ray_step_multiplier 2); CARLA has no eval_last_back.
        eval_render=RenderConfig(near=0.7, far=1.3, num_samples=96, num_importance=96, background="white",
                                 perturb=False, importance_det=True),
        shape_half_extent=0.35,
    ),
    # Small enough for CPU tests and the demo: same structure, narrow layers, few samples.
    "pigan-tiny": PiGANConfig(
        z_dim=32,
        hidden_dim=32,
        num_film_layers=3,
        mapping_hidden_dim=32,
        mapping_layers=2,
        resolution=16,
        render=RenderConfig(near=0.88, far=1.12, num_samples=6, num_importance=6),
        eval_render=RenderConfig(near=0.88, far=1.12, num_samples=8, num_importance=8, background="last_sample",
                                 perturb=False, importance_det=True),
        w_avg_samples=1000,
    ),
}
