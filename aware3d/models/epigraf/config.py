"""EpiGRAF configuration, the official presets (FFHQ 512, AFHQ-like cats 256, Megascans plants and food 256)
and a tiny CPU preset.

Values are those of the official hydra configs (universome/epigraf: ``configs/model/epigraf.yaml``,
``configs/dataset/{ffhq_posed,cats_aligned,megascans_plants,megascans_food}.yaml``) as
/work/shared/reference/epigraf/README.md and the seed-system notes give them: z = w = 512, 2 mapping layers,
tri-planes 3 x 32 channels at 512^2 drawn by a StyleGAN2 skip backbone (``cbase`` 32768, ``cmax`` 512, fp32,
conv clamp 256), a 32 -> 64 -> 4 decoder, 48 + 48 samples per ray, softplus density. Numbers the sources do not
give are marked "not known" below (the dataset-mean camera pose, read from an imported checkpoint, and the pose
spread of random views).

Render settings map onto the shared renderer: stratified samples jittered in their bins (``jitter="bins"``,
also at inference, as the official code), pi-GAN-style compositing at the samples with the last interval
1e10 long (1e-3 with a background model), expected depth ``sum w t`` (not normalised), importance sampling
with weights + 1e-5 and a left searchsorted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

from ...cameras import PoseDistribution
from ...checks import (AT_LEAST_ONE, FINITE, FOV_DEGREES, NON_NEGATIVE, POSITIVE, UNIT_INTERVAL, Range, check_config,
                       power_of_two_problem)
from ...errors import ConfigError
from ...nn.stylegan2.layers import NoiseMode
from ...rendering import RenderConfig

BackgroundModel = Literal["none", "plane", "sphere"]
FusedModconv = Literal["inference_only", "always", "never"]

FOREGROUND_LAST_DELTA = {"none": 1e10, "plane": 1e-3, "sphere": 1e-3}
"""Last interval of the foreground rays: an opaque backdrop without a background model, almost nothing with one."""


def epigraf_render(near: float = 0.88, far: float = 1.12, samples: int = 48, importance: int = 48,
                   background_model: BackgroundModel = "none", white_back: bool = False, **changes) -> RenderConfig:
    """EpiGRAF's ``SynthesisNetwork.forward`` rendering as shared-renderer settings.

    Jittered coarse samples (always, also at inference), importance sampling from the coarse weights + 1e-5,
    softplus density, compositing at the samples with the last delta of ``background_model``, expected depth.
    ``max_points=None`` renders every ray at once (training); the tools use chunks.
    """
    base = RenderConfig(near=near, far=far, num_samples=samples, num_importance=importance, perturb=True,
                        jitter="bins", importance_smoothing="none", importance_weight_eps=1e-5, importance_det=False,
                        searchsorted_right=False, density_activation="softplus", density_bias=0.0, midpoint=False,
                        last_delta=FOREGROUND_LAST_DELTA[background_model],
                        background="white" if white_back else "black", depth_mode="expected", noise_std=0.0,
                        max_points=None)
    return replace(base, **changes)


@dataclass(frozen=True)
class EpiGRAFConfig:
    """Every constructor argument of :class:`~aware3d.models.epigraf.EpiGRAFGenerator` (saved in config.json)."""

    z_dim: int = 512
    """Size of the latent code z."""
    w_dim: int = 512
    """Size of each intermediate latent w."""
    c_dim: int = 0
    """Number of classes of a class-conditional model (one-hot labels fed to the mapping network); 0 = none."""
    camera_cond: bool = False
    """Generator pose conditioning (GPC): the camera's (yaw, pitch), wrapped to [-1, 1] by mod 2 pi / 2 pi, are
    appended raw to the mapping network's label."""
    camera_cond_drop_p: float = 0.0
    """Dropout on the camera label in training mode."""
    camera_cond_noise_std: float = 0.0
    """Gaussian noise on the conditioning angles in training mode, in units of their batch std."""
    mean_camera_pose: tuple[float, float, float] = (0.0, math.pi / 2, 0.0)
    """Dataset-mean EpiGRAF camera angles [yaw, pitch, roll]: the conditioning camera in eval mode when none is given
    (a fresh model's buffer; imported models carry the dataset's)."""
    mapping_layers: int = 2
    """Fully connected layers of the mapping network."""
    mapping_lr_mul: float = 0.01
    """Learning-rate multiplier (equalised-lr gain) of the mapping layers."""
    w_avg_beta: float = 0.998
    """Decay of the tracked average w (the truncation centre) during training."""
    channel_base: int = 32768
    """Backbone channels at resolution r are min(channel_base // r, channel_max)."""
    channel_max: int = 512
    """Upper bound on backbone channels."""
    conv_clamp: float | None = 256.0
    """Clamp of the backbone's convolution outputs (+-value): the StyleGAN2 block default EpiGRAF keeps."""
    fused_modconv: FusedModconv = "inference_only"
    """Grouped (fused) modulated convolutions: inference_only = in eval mode, as the official generator."""
    plane_resolution: int = 512
    """Side of each tri-plane in texels (the backbone's output resolution)."""
    plane_channels: int = 32
    """Feature channels per plane (the backbone outputs 3x this, +3 for the plane background)."""
    decoder_hidden: int = 64
    """Width of the tri-plane decoder's hidden layer (32 -> hidden -> 4, lrelu; colours linear)."""
    cube_scale: float = 0.2
    """Half side of the cube (world units, centred at the origin) the tri-planes cover; points outside read 0."""
    fov_deg: float = 12.0
    """Full field of view in degrees, centre of the first pixel to centre of the last (edge_aligned grid)."""
    img_resolution: int = 512
    """Side of a full render in eval mode (the official test_resolution) and of the plane background."""
    patch_resolution: int = 64
    """Side of the patches rendered in training mode (the official train_resolution)."""
    background: BackgroundModel = "none"
    """Background model: none, plane (3 extra backbone channels) or sphere (NeRF++ inverted sphere + INR)."""
    bg_num_blocks: int = 2
    """Blocks of the sphere background's INR."""
    bg_channel_base: int = 32768
    """INR block i has min(bg_channel_base // 2^(i+2), bg_channel_max) channels."""
    bg_channel_max: int = 128
    """Upper bound on the INR's channels."""
    bg_posenc_period: float = 64.0
    """Fourier features of the INR: sin/cos(v * 2^k pi), k < log2 of this."""
    bg_num_steps: int = 8
    """Background samples per ray (inverse distance from bg_start to 0) in training and in the official G.synthesis."""
    bg_start: float = 1.0
    """Inverse distance where the background starts (1 = the unit sphere)."""
    eval_ray_step_multiplier: int = 2
    """scripts/inference.py's ray_step_multiplier, as the official code behaves: it multiplies only the background's
    steps in eval mode (the foreground's count is read from a config copy it does not change: 48 stays 48)."""
    pose: PoseDistribution = field(default_factory=lambda: PoseDistribution(
        "gaussian", math.pi / 2, math.pi / 2, 0.3, 0.155, 1.0))
    """Camera distribution (pi-GAN angles, our world) for random views and paths. Not known for the official models
    (they draw the dataset's poses); FFHQ's yaw/pitch spread here is approximate."""
    render: RenderConfig = field(default_factory=epigraf_render)
    """Sampling/compositing as trained and as G.synthesis renders (jittered, random importance sampling)."""
    eval_render: RenderConfig = field(default_factory=lambda: epigraf_render(max_points=1 << 19))
    """Sampling/compositing for the tools: the official inference settings (48 + 48), rendered in chunks."""
    eval_noise_mode: NoiseMode = "const"
    """Backbone noise used by synthesis() in eval mode unless told otherwise (const: reproducible renders)."""
    eval_truncation_psi: float = 0.7
    """Truncation the tools use unless told otherwise (scripts/inference.py's default)."""
    truncation_cutoff: int | None = None
    """Number of leading ws truncated by default; None = all."""
    shape_half_extent: float = 0.2
    """Half side of the cube sampled by the shapes tool: the whole tri-plane cube (extract_geometry.py samples a
    cube of side 0.3 by default: aware3d shapes --cube-size 0.3)."""
    shape_level: str = "p97.5"
    """Default iso level of the shapes tool: the 97.5th percentile of the sampled densities (extract_geometry.py's
    thresh_percentile); a number is a raw density."""
    w_avg_samples: int = 10000
    """Random z averaged into w_avg by update_w_avg() for a fresh model (imported ones keep their own)."""

    def __post_init__(self) -> None:
        check_config(self, EPIGRAF_RANGES)
        problem = power_of_two_problem("plane_resolution", self.plane_resolution, 4)
        if problem:
            raise ConfigError(problem)
        if self.background not in FOREGROUND_LAST_DELTA:
            raise ConfigError(f"unknown background {self.background!r}; valid: {', '.join(FOREGROUND_LAST_DELTA)}")
        for name in ("render", "eval_render"):
            cfg: RenderConfig = getattr(self, name)
            want = FOREGROUND_LAST_DELTA[self.background]
            if cfg.midpoint or cfg.last_delta != want:
                raise ConfigError(f"{name}: EpiGRAF composites at the samples with the last delta {want:g} for "
                                 f"background {self.background!r} (got midpoint={cfg.midpoint}, "
                                 f"last_delta={cfg.last_delta:g}); build it with epigraf_render(background_model=...)")

    @property
    def resolution(self) -> int:
        """The default render size of the tools: a full eval-mode render."""
        return self.img_resolution

    @property
    def pixel_grid(self) -> str:
        """EpiGRAF puts the first and last pixel centres on the fov borders (NDC linspace(-1, 1))."""
        return "edge_aligned"

    @property
    def camera_radius(self) -> float:
        """Distance of the cameras from the world origin (the dataset's ``camera.radius``)."""
        return self.pose.radius


EPIGRAF_RANGES = {"z_dim": AT_LEAST_ONE, "w_dim": AT_LEAST_ONE, "c_dim": NON_NEGATIVE,
                  "camera_cond_drop_p": UNIT_INTERVAL, "camera_cond_noise_std": NON_NEGATIVE,
                  "mean_camera_pose": FINITE, "mapping_layers": AT_LEAST_ONE, "mapping_lr_mul": POSITIVE,
                  "w_avg_beta": UNIT_INTERVAL, "channel_base": AT_LEAST_ONE, "channel_max": AT_LEAST_ONE,
                  "conv_clamp": POSITIVE, "plane_channels": AT_LEAST_ONE, "decoder_hidden": AT_LEAST_ONE,
                  "cube_scale": POSITIVE, "fov_deg": FOV_DEGREES, "img_resolution": AT_LEAST_ONE,
                  "patch_resolution": AT_LEAST_ONE, "bg_num_blocks": AT_LEAST_ONE, "bg_channel_base": AT_LEAST_ONE,
                  "bg_channel_max": AT_LEAST_ONE, "bg_posenc_period": Range(1), "bg_num_steps": AT_LEAST_ONE,
                  "bg_start": POSITIVE, "eval_ray_step_multiplier": AT_LEAST_ONE, "eval_truncation_psi": FINITE,
                  "truncation_cutoff": NON_NEGATIVE, "shape_half_extent": POSITIVE, "w_avg_samples": AT_LEAST_ONE}
"""The allowed range of each numeric field of :class:`EpiGRAFConfig` (checked on construction)."""


def _megascans(c_dim: int) -> EpiGRAFConfig:
    # configs/dataset/megascans_*.yaml: 256 px, fov 30, rays 0.75..1.25, white background, cube 0.475,
    # cameras spherical-uniform around the object (yaw +-pi, pitch 0..pi), class-conditional.
    render_kw = dict(near=0.75, far=1.25, white_back=True)
    return EpiGRAFConfig(
        c_dim=c_dim, img_resolution=256, plane_resolution=512, cube_scale=0.475, fov_deg=30.0,
        pose=PoseDistribution("spherical_uniform", math.pi / 2, math.pi / 2, math.pi, math.pi / 2, 1.0),
        render=epigraf_render(**render_kw), eval_render=epigraf_render(**render_kw, max_points=1 << 19),
        shape_half_extent=0.475,
    )


EPIGRAF_PRESETS: dict[str, EpiGRAFConfig] = {
    # FFHQ 512 (the released checkpoint): ffhq_posed, fov 12, rays 0.88..1.12, radius 1, cube 0.2. Whether it was
    # trained with GPC is not known (the repo's README advises camera_cond for FFHQ; set it on import).
    "epigraf-ffhq-512": EpiGRAFConfig(),
    # Cats 256 (cats_aligned): the FFHQ camera settings at 256 px; its pose spread is not known.
    "epigraf-cats-256": EpiGRAFConfig(img_resolution=256),
    # Megascans Plants (198 classes) and Food (10 classes), 256 px.
    "epigraf-plants-256": _megascans(198),
    "epigraf-food-256": _megascans(10),
    # Small enough for CPU tests: the same structure with narrow layers, small planes and few samples.
    "epigraf-tiny": EpiGRAFConfig(
        z_dim=32, w_dim=32, channel_base=512, channel_max=16, plane_resolution=32, plane_channels=8,
        decoder_hidden=16, img_resolution=32, patch_resolution=16, camera_cond=True,
        render=epigraf_render(samples=8, importance=8),
        eval_render=epigraf_render(samples=8, importance=8, max_points=1 << 18),
        w_avg_samples=1000,
    ),
}
