"""CGOF configuration and named presets: the official cGOF v1 CelebA settings (BFM from a user file) and a tiny
CPU one on the built-in synthetic face model.

The official curriculum (seed description section 3.3): fov 12 degrees, rays 0.88 to 1.12, 12 coarse + 12 fine
+ 12 "fine2" samples per ray, gaussian yaw / pitch std 0.3 / 0.155, ``last_back`` compositing, a 411-d latent
(:mod:`.layout`), sample-near-mesh rendering with a band of ``(far - near) * 0.005`` around the mesh depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

from ...cameras import PixelGrid, PoseDistribution
from ...checks import AT_LEAST_ONE, FINITE, FOV_DEGREES, NON_NEGATIVE, POSITIVE, UNIT_INTERVAL, check_config
from ...errors import ConfigError
from ...rendering import RenderConfig
from .layout import FACE_CODE_DIM

StatisticsSource = Literal["standard", "synthetic-faces"]
"""Where a fresh model's whitening statistics come from (a file's are set with
:meth:`~aware3d.models.cgof.CGOFGenerator.set_coefficient_statistics`; checkpoints carry them)."""


def _render(samples: int = 12, **kw) -> RenderConfig:
    # last_back: the farthest sample takes the weight the ray has left (the official training and renders).
    return replace(RenderConfig(near=0.88, far=1.12, num_samples=samples, num_importance=samples,
                                background="last_sample"), **kw)


def _eval_render(samples: int = 12) -> RenderConfig:
    return _render(samples, perturb=False, importance_det=True)


@dataclass(frozen=True)
class CGOFConfig:
    """Every constructor argument of :class:`~aware3d.models.cgof.CGOFGenerator` (saved in config.json)."""

    z_dim: int = 411
    """Size of the latent: identity 80, expression 64, background geometry, texture 80, lighting 27,
    background texture (must equal their sum)."""
    background_geometry_dim: int = 80
    """Size of the background-geometry slice of the latent (pure noise for the non-face content)."""
    background_texture_dim: int = 80
    """Size of the background-texture slice of the latent."""
    hidden_dim: int = 256
    """Width of the FiLM-SIREN layers."""
    num_film_layers: int = 8
    """FiLM-SIREN layers before the density head (the colour branch adds one more)."""
    mapping_hidden_dim: int = 256
    """Width of the mapping network's hidden layers (its input is the whole latent)."""
    mapping_layers: int = 3
    """Hidden (Linear + LeakyReLU) layers of the mapping network before its output layer."""
    box_warp: float | None = 0.24
    """Side of the cube mapped to [-1, 1]^3 before the SIREN (UniformBoxWarp); None: no warp."""
    view_dependent: bool = True
    """Feed the view direction to the colour branch (the official SPATIALSIRENBASELINE)."""
    fov_deg: float = 12.0
    """Full field of view in degrees; the conditioning mesh is rasterised with the same cameras."""
    resolution: int = 64
    """Default output resolution in pixels (square)."""
    pixel_grid: PixelGrid = "edge_aligned"
    """Pixel placement of the rays and of the mesh rasteriser (pi-GAN: first and last centres on the fov borders)."""
    pose: PoseDistribution = field(default_factory=lambda: PoseDistribution("gaussian", math.pi / 2, math.pi / 2, 0.3, 0.155, 1.0))
    """Camera distribution used in training (and for random views); the discriminator's pose target is it
    normalised, ``(angle - mean) / std`` (the official ``PoseImplicitGenerator3d``)."""
    render: RenderConfig = field(default_factory=_render)
    """Coarse / fine sampling and compositing in training (``fine2_samples`` adds the third pass)."""
    eval_render: RenderConfig = field(default_factory=_eval_render)
    """Sampling and compositing for the tools: no jitter, deterministic importance sampling."""
    fine2_samples: int | None = None
    """Samples of the second importance pass ("fine2"); None: as many as the fine pass; 0: no third pass
    (and no near-mesh sampling): coarse + fine as pi-GAN."""
    near_mesh: bool = True
    """Sample near the mesh (the official ``sample_near_mesh``): on rays inside the mesh mask the fine2 samples
    are blended toward a band around the mesh depth; the final compositing then uses fine + fine2."""
    thick_ratio: float = 0.005
    """Width of that band as a fraction of ``far - near`` (the official ``thick_ratio``)."""
    near_mesh_ratio: float = 1.0
    """Blend factor toward the band at render time (the tools); training ramps it from 0 (``narrow_ratio``)."""
    mouth_hole_fraction: float = 0.05
    """Background components enclosed by the face mask smaller than this fraction of the image are filled as
    face (the mesh's open mouth; the official H * W / 20)."""
    face_model: str | None = "synthetic"
    """The morphable face model: "synthetic" (built in), a Deep3DFaceRecon ``BFM_model_front.mat`` path, or
    None: the path in $AWARE3D_FACE_MODEL (an error when unset). Never stored in checkpoints (licence)."""
    statistics: StatisticsSource = "synthetic-faces"
    """Whitening statistics of a fresh model: "synthetic-faces" (fitted to that dataset's coefficient draws
    with this face model) or "standard" (mean 0, identity covariance); checkpoints carry their own."""
    statistics_samples: int = 2048
    """Dataset items the "synthetic-faces" statistics are fitted to."""
    eval_truncation_psi: float = 0.7
    """Truncation of the FiLM code the tools use unless told otherwise (the face code is never truncated)."""
    shape_half_extent: float = 0.15
    """Half side of the cube (world units, centred at the origin) sampled by the shapes tool."""
    w_avg_samples: int = 10000
    """Number of random latents averaged into w_avg (the truncation centre of the FiLM code)."""

    def __post_init__(self) -> None:
        check_config(self, CGOF_RANGES)
        total = FACE_CODE_DIM + self.background_geometry_dim + self.background_texture_dim
        if self.z_dim != total:
            raise ConfigError(f"CGOFConfig.z_dim must be {total} (identity 80 + expression 64 + texture 80 + lighting "
                              f"27 + background_geometry_dim {self.background_geometry_dim} + background_texture_dim "
                              f"{self.background_texture_dim}), got {self.z_dim}")
        if self.statistics not in ("standard", "synthetic-faces"):
            raise ConfigError(f"CGOFConfig.statistics must be 'standard' or 'synthetic-faces', got {self.statistics!r} "
                              "(a statistics file is loaded with loss.statistics or set_coefficient_statistics)")

    def fine2_count(self, render: RenderConfig) -> int:
        """Samples of the third pass under ``render``: ``fine2_samples`` (None: ``render.num_importance``); 0
        without a fine pass."""
        if render.num_importance == 0:
            return 0
        return render.num_importance if self.fine2_samples is None else self.fine2_samples


CGOF_RANGES = {"z_dim": AT_LEAST_ONE, "background_geometry_dim": NON_NEGATIVE, "background_texture_dim": NON_NEGATIVE,
               "hidden_dim": AT_LEAST_ONE, "num_film_layers": AT_LEAST_ONE, "mapping_hidden_dim": AT_LEAST_ONE,
               "mapping_layers": NON_NEGATIVE, "box_warp": POSITIVE, "fov_deg": FOV_DEGREES, "resolution": AT_LEAST_ONE,
               "fine2_samples": NON_NEGATIVE, "thick_ratio": POSITIVE, "near_mesh_ratio": UNIT_INTERVAL,
               "mouth_hole_fraction": UNIT_INTERVAL, "statistics_samples": AT_LEAST_ONE,
               "eval_truncation_psi": FINITE, "shape_half_extent": POSITIVE, "w_avg_samples": AT_LEAST_ONE}
"""The allowed range of each numeric field of :class:`CGOFConfig` (checked on construction)."""


CGOF_PRESETS: dict[str, CGOFConfig] = {
    # The official model; the Basel Face Model comes from $AWARE3D_FACE_MODEL (licence-restricted, user-supplied).
    "cgof-celeba": CGOFConfig(face_model=None, statistics="standard",
                              eval_render=_eval_render(24)),
    # Small enough for CPU tests: the same structure and latent on the synthetic face model, narrow layers,
    # few samples, the rays of synthetic-faces (pixel centres), so the conditioning mesh is the data's.
    "cgof-tiny": CGOFConfig(
        hidden_dim=32, num_film_layers=3, mapping_hidden_dim=32, mapping_layers=2, resolution=32,
        pixel_grid="pixel_centers", render=_render(6), eval_render=_eval_render(8), w_avg_samples=1000,
        statistics_samples=1024,
    ),
}
"""The CGOF model presets."""
