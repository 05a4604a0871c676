"""ShadeGAN configuration and named presets (model settings of the official curricula, plus a tiny CPU one).

The official curricula (``curriculums.py`` of XingangPan/ShadeGAN) give: fov 12 degrees, rays 0.88 to 1.12
(Cats 0.8 to 1.2), 12 samples per ray with as many importance samples (Cats 20/20 at the largest), gaussian
poses 0.3 / 0.155 (Cats uniform 0.5 / 0.4), the view / no-view and light switches, and surface tracking
(off for BFM). ``delta`` is the render-time band of the surface tracker, the released models' values
(``weights/pretrain/delta.txt``: 0.06423 celeba_view, 0.06491 celeba_noview).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ...cameras import PixelGrid, PoseDistribution
from ...checks import (AT_LEAST_ONE, FINITE, FOV_DEGREES, NON_NEGATIVE, POSITIVE, UNIT_INTERVAL, check_config,
                       power_of_two_problem)
from ...errors import ConfigError
from ...rendering import RenderConfig

RELIGHT_FRONTAL = (0.17, 0.42, 0.0, 0.3)
"""``render.py --relight``'s light code with dx = 0 (ambient 0.585, diffuse 0.71, light slightly from above)."""
RELIGHT_DX = (-1.5, -1.0, 0.0, 1.0, 1.5)
"""``render.py --relight``'s light positions: ``RELIGHT_FRONTAL`` with these dx (from the left to the right)."""
LIGHT_PATH_DX = 1.5
"""Amplitude of the relighting video's sweep: dx = -1.5 cos(2 pi t) over the loop, the rest ``RELIGHT_FRONTAL``."""


def _render(near: float = 0.88, far: float = 1.12, samples: int = 12, **kw) -> RenderConfig:
    # The official renders always jitter and draw the importance u at random; these are the training settings.
    return replace(RenderConfig(near=near, far=far, num_samples=samples, num_importance=samples), **kw)


def _eval_render(near: float = 0.88, far: float = 1.12, samples: int = 12) -> RenderConfig:
    return _render(near, far, samples, perturb=False, importance_det=True)


@dataclass(frozen=True)
class ShadeGANConfig:
    """Every constructor argument of :class:`~aware3d.models.shadegan.ShadeGANGenerator` (saved in config.json)."""

    z_dim: int = 256
    """Size of the latent code z."""
    hidden_dim: int = 256
    """Width of the FiLM-SIREN layers."""
    num_film_layers: int = 8
    """FiLM-SIREN layers before the density head (the albedo branch adds one more)."""
    mapping_hidden_dim: int = 256
    """Width of the mapping network's hidden layers."""
    mapping_layers: int = 3
    """Hidden (Linear + LeakyReLU) layers of the mapping network before its output layer."""
    box_warp: float | None = 0.24
    """Side of the cube mapped to [-1, 1]^3 before the SIREN (UniformBoxWarp); normals are taken w.r.t. the warped point."""
    view_condition: bool = True
    """Feed the world ray direction to the albedo branch (``_view`` models); False: ``_noview`` (better shapes)."""
    light_condition: bool = True
    """Feed the 4-d light code to the albedo branch (the official ``light_condition``)."""
    fov_deg: float = 12.0
    """Full field of view in degrees, centre of first pixel to centre of last (edge_aligned grid)."""
    resolution: int = 64
    """Default output resolution in pixels (square)."""
    pixel_grid: PixelGrid = "edge_aligned"
    """Pixel placement: as pi-GAN, the first and last pixel centres on the fov borders."""
    pose: PoseDistribution = field(default_factory=lambda: PoseDistribution("gaussian", math.pi / 2, math.pi / 2, 0.3, 0.155, 1.0))
    """Camera distribution used in training (and for random views)."""
    render: RenderConfig = field(default_factory=_render)
    """Sampling/compositing of the official renders and training (jittered, random importance u)."""
    eval_render: RenderConfig = field(default_factory=_eval_render)
    """Sampling/compositing for the tools (render, video, shapes): no jitter, deterministic importance sampling."""
    eval_truncation_psi: float = 0.5
    """Truncation the tools use unless told otherwise (``render.py``'s default psi)."""
    shape_half_extent: float = 0.15
    """Half side of the cube sampled by the shapes tool (``extract_shapes.py --cube_size 0.3``)."""
    shape_level: float = 35.0
    """Iso level (raw density) of the shapes tool's mesh (``extract_shapes.py --sigma_threshold 35``)."""
    w_avg_samples: int = 10000
    """Number of random z averaged into w_avg (the truncation centre)."""
    surface_tracker: bool = True
    """Build the surface tracker (the official ``surf_track``): a conv decoder predicting depth from w and the pose."""
    tracker_size: int = 128
    """Side of the tracker's depth map (the official 128; a power of two, at least 8)."""
    tracker_channels: int = 256
    """Width of the tracker's first layers (halved by each of its log2(size/8) up-sampling residual blocks)."""
    delta: float = 0.06423
    """Render-time width (world units) of the band around the tracked depth that rays sample; <= 0 samples
    [near, far] (the tracker still runs when present)."""
    light_ratio: float = 1.0
    """Shading phase-in ratio r: ``shading = r * s + (1 - r)`` (1 after training's phase-in, 0 = albedo only)."""
    light_mean: tuple[float, float, float, float] = RELIGHT_FRONTAL
    """Light code used when no light is given and no prior is loaded (a loaded prior's mean replaces it)."""
    light_std: tuple[float, float, float, float] = (0.1, 0.1, 0.3, 0.2)
    """Per-entry std of the default prior (diagonal covariance) until a prior file is loaded."""

    def __post_init__(self) -> None:
        check_config(self, SHADEGAN_RANGES)
        if self.surface_tracker:
            problem = power_of_two_problem("tracker_size", self.tracker_size, 8)
            # Each of the tracker's log2(size / 8) blocks halves the channels; its group norms need multiples of 4.
            step = 4 * self.tracker_size // 8
            if problem is None and self.tracker_channels % step:
                problem = (f"tracker_channels must be a multiple of {step} for tracker_size {self.tracker_size}, "
                           f"got {self.tracker_channels}")
            if problem:
                raise ConfigError(problem)


SHADEGAN_RANGES = {"z_dim": AT_LEAST_ONE, "hidden_dim": AT_LEAST_ONE, "num_film_layers": AT_LEAST_ONE,
                   "mapping_hidden_dim": AT_LEAST_ONE, "mapping_layers": NON_NEGATIVE, "box_warp": POSITIVE,
                   "fov_deg": FOV_DEGREES, "resolution": AT_LEAST_ONE, "eval_truncation_psi": FINITE,
                   "shape_half_extent": POSITIVE, "shape_level": FINITE, "w_avg_samples": AT_LEAST_ONE,
                   "tracker_channels": AT_LEAST_ONE, "delta": FINITE, "light_ratio": UNIT_INTERVAL,
                   "light_mean": FINITE, "light_std": NON_NEGATIVE}
"""The allowed range of each numeric field of :class:`ShadeGANConfig` (checked on construction)."""


OFFICIAL_CURRICULA: dict[str, str] = {
    "shadegan-celeba-view": "CelebA_ShadeGAN_view",
    "shadegan-celeba-noview": "CelebA_ShadeGAN_noview",
    "shadegan-cats": "CATS_ShadeGAN",
    "shadegan-bfm": "BFM_ShadeGAN_noview or BFM_ShadeGAN_view",
}
"""The presets of the official curricula (``curriculums.py``), with their names: what an official file may be."""

LIGHT_PRIOR_NAMES: dict[str, str] = {"shadegan-celeba-view": "celeba", "shadegan-celeba-noview": "celeba",
                                     "shadegan-cats": "cat", "shadegan-bfm": "synface"}
"""The dataset name of each official preset's light prior (the official ``LSampler`` reads
``weights/light_mvn/<name>_light_mvn.pth`` for its curriculum's dataset)."""

_TINY_RENDER = {"near": 0.88, "far": 1.12, "samples": 6}

SHADEGAN_PRESETS: dict[str, ShadeGANConfig] = {
    "shadegan-celeba-view": ShadeGANConfig(),
    "shadegan-celeba-noview": ShadeGANConfig(view_condition=False, delta=0.06491),
    "shadegan-cats": ShadeGANConfig(
        pose=PoseDistribution("uniform", math.pi / 2, math.pi / 2, 0.5, 0.4, 1.0),
        render=_render(0.8, 1.2, 20), eval_render=_eval_render(0.8, 1.2, 20),
        # No released delta for cats: the end of the curriculum's band schedule (delta_min).
        delta=0.06,
    ),
    # BFM trains without surface tracking (delta -1 throughout), so no tracker is built.
    "shadegan-bfm": ShadeGANConfig(view_condition=False, surface_tracker=False, delta=-1.0),
    # Small enough for CPU tests: same structure, narrow layers, a 32 px tracker, few samples.
    "shadegan-tiny": ShadeGANConfig(
        z_dim=32, hidden_dim=32, num_film_layers=3, mapping_hidden_dim=32, mapping_layers=2, resolution=16,
        render=_render(**_TINY_RENDER), eval_render=_eval_render(**_TINY_RENDER),
        tracker_size=32, tracker_channels=64, delta=0.1, w_avg_samples=1000,
    ),
}
