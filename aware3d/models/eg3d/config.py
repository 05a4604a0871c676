"""EG3D configuration, the official presets (FFHQ, AFHQ cats, ShapeNet cars) and a tiny CPU preset.

Values are those of the official ``train.py`` configs (NVlabs/eg3d): the ``rendering_kwargs`` of each
``--cfg`` become :class:`~aware3d.rendering.RenderConfig` fields, the network sizes are the released
models' (``channel_base`` 32768, ``channel_max`` 512, ``z_dim = w_dim = 512``, 2 mapping layers) and the
neural rendering resolutions those of the released pickles (ffhq512-128, afhqcats512-128,
shapenetcars128-64). Cameras use the official look-at convention: the camera orbits the world origin at
``camera_radius`` and looks at ``camera_pivot``.
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
from ...nn.triplane import PlaneAxes
from ...rendering import RenderConfig

FusedModconv = Literal["inference_only", "always", "never"]
SuperResolutionName = Literal[
    "SuperresolutionHybrid8XDC", "SuperresolutionHybrid8X", "SuperresolutionHybrid4X", "SuperresolutionHybrid2X"]


def eg3d_render(near: float = 2.25, far: float = 3.3, samples: int = 48, importance: int = 48, **changes) -> RenderConfig:
    """EG3D's ImportanceRenderer + MipRayMarcher2 expressed as shared-renderer settings.

    Forward jitter of up to one bin, max-pool/avg-pool smoothed coarse weights + 0.01, searchsorted right,
    softplus(sigma - 1) at interval midpoints, depth divided by the opacity. ``max_points=None`` renders
    every ray in one pass, like the official code (training); the tools use chunks.
    """
    base = RenderConfig(near=near, far=far, num_samples=samples, num_importance=importance, perturb=True,
                        jitter="forward", importance_smoothing="maxblur", importance_weight_eps=0.01,
                        importance_det=False, searchsorted_right=True, density_activation="softplus",
                        density_bias=-1.0, midpoint=True, background="black", depth_mode="normalized",
                        noise_std=0.0, max_points=None)
    return replace(base, **changes)


@dataclass(frozen=True)
class EG3DConfig:
    """Every constructor argument of :class:`~aware3d.models.eg3d.EG3DGenerator` (saved in config.json)."""

    z_dim: int = 512
    """Size of the latent code z."""
    w_dim: int = 512
    """Size of each intermediate latent w (also the super-resolution's style size)."""
    c_dim: int = 25
    """Size of the camera conditioning label (EG3D's 25 floats; 0 disables conditioning)."""
    num_classes: int = 0
    """Classes of a class-conditional model: the mapping sees [camera label, one-hot class]; 0 = unconditional."""
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
    num_fp16_res: int = 0
    """Backbone blocks (highest resolutions) run in float16 on CUDA; 0 = all float32 (official)."""
    conv_clamp: float | None = None
    """Clamp of the backbone's convolution outputs (+-value); None = no clamp (official G)."""
    fused_modconv: FusedModconv = "inference_only"
    """Grouped (fused) modulated convolutions: inference_only = in eval mode, as the official recipe."""
    plane_resolution: int = 256
    """Side of each tri-plane in texels (the StyleGAN2 backbone's output resolution)."""
    plane_channels: int = 32
    """Feature channels per plane (the backbone outputs 3x this)."""
    plane_axes: PlaneAxes = "official"
    """official: planes (x,y), (x,z), (z,x) as the released models (the third is not a y-z plane);
    corrected: (x,y), (x,z), (y,z) for new models."""
    box_warp: float = 1.0
    """Side length of the cube (centred at the origin) covered by the tri-planes, world units."""
    decoder_hidden: int = 64
    """Width of the tri-plane decoder's hidden layer."""
    decoder_lr_mul: float = 1.0
    """Learning-rate multiplier of the decoder layers."""
    decoder_output_dim: int = 32
    """Feature channels the decoder outputs besides density (the first 3 are RGB)."""
    img_resolution: int = 512
    """Output (super-resolved) image size in pixels."""
    sr_module: SuperResolutionName = "SuperresolutionHybrid8XDC"
    """Super-resolution architecture, by its official class name (8XDC/8X: 512 px, 4X: 256 px, 2X: 128 px)."""
    sr_channels: tuple[int, int] | None = None
    """Widths of the two super-resolution blocks; None = the official hard-coded ones."""
    sr_num_fp16_res: int = 4
    """> 0: super-resolution blocks run in float16 on CUDA with conv clamp 256 (the clamp applies on CPU too)."""
    sr_antialias: bool = True
    """Antialiased bilinear resize of the neural rendering to the super-resolution input size."""
    sr_noise_mode: NoiseMode = "none"
    """Noise inputs of the super-resolution layers (official: none)."""
    neural_rendering_resolution: int = 128
    """Default side of the volume-rendered (raw) image in pixels."""
    c_gen_conditioning_zero: bool = False
    """Feed zeros instead of the camera to the mapping network (no generator pose conditioning)."""
    c_scale: float = 1.0
    """Multiplier of the camera label fed to the mapping network."""
    camera_radius: float = 2.7
    """Distance of the cameras from the world origin, world units (avg_camera_radius)."""
    camera_pivot: tuple[float, float, float] = (0.0, 0.0, 0.2)
    """World point the cameras look at (avg_camera_pivot)."""
    fov_deg: float = 18.837
    """Full field of view in degrees; converted to a focal length with EG3D's formula (pi ~ 3.14159, sqrt 2 ~ 1.414)."""
    focal: float | None = None
    """Normalised focal length (units of image width); when set it replaces fov_deg (dataset intrinsics)."""
    pose: PoseDistribution = field(default_factory=lambda: PoseDistribution(
        "gaussian", math.pi / 2, math.pi / 2, 0.3, 0.155, 2.7))
    """Camera distribution (pi-GAN angles) for random views and camera paths (the dataset's, approximately)."""
    render: RenderConfig = field(default_factory=eg3d_render)
    """Sampling/compositing as trained (official: jittered, random importance sampling)."""
    eval_render: RenderConfig = field(default_factory=lambda: eg3d_render(max_points=1 << 19))
    """Sampling/compositing for the tools: the official inference settings, rendered in chunks."""
    eval_noise_mode: NoiseMode = "const"
    """Backbone noise used by synthesis() unless told otherwise (const: reproducible renders)."""
    eval_truncation_psi: float = 0.7
    """Truncation the tools use unless told otherwise."""
    truncation_cutoff: int | None = None
    """Number of leading ws truncated by default; None = all (gen_samples' 14 is all of them)."""
    shape_half_extent: float = 0.5
    """Half side of the cube sampled by the shapes tool (box_warp / 2, as gen_samples)."""
    w_avg_samples: int = 10000
    """Random z averaged into w_avg by update_w_avg() for a fresh model (imported ones keep their own)."""

    def __post_init__(self) -> None:
        check_config(self, EG3D_RANGES)
        problem = (power_of_two_problem("plane_resolution", self.plane_resolution, 4)
                   or power_of_two_problem("img_resolution", self.img_resolution, 8))
        if problem:
            raise ConfigError(problem)
        if self.render.num_samples < 2:
            raise ConfigError("EG3D's midpoint compositing needs render.num_samples >= 2")

    @property
    def resolution(self) -> int:
        """The neural rendering resolution (what the shared tools call ``resolution``)."""
        return self.neural_rendering_resolution

    @property
    def pixel_grid(self) -> str:
        """EG3D places rays at pixel centres."""
        return "pixel_centers"


EG3D_RANGES = {"z_dim": AT_LEAST_ONE, "w_dim": AT_LEAST_ONE, "c_dim": NON_NEGATIVE, "num_classes": NON_NEGATIVE,
               "mapping_layers": AT_LEAST_ONE, "mapping_lr_mul": POSITIVE, "w_avg_beta": UNIT_INTERVAL,
               "channel_base": AT_LEAST_ONE, "channel_max": AT_LEAST_ONE, "num_fp16_res": NON_NEGATIVE,
               "conv_clamp": POSITIVE, "plane_channels": AT_LEAST_ONE, "box_warp": POSITIVE,
               "decoder_hidden": AT_LEAST_ONE, "decoder_lr_mul": POSITIVE, "decoder_output_dim": Range(3),
               "sr_channels": AT_LEAST_ONE, "sr_num_fp16_res": NON_NEGATIVE, "neural_rendering_resolution": AT_LEAST_ONE,
               "c_scale": FINITE, "camera_radius": POSITIVE, "camera_pivot": FINITE, "fov_deg": FOV_DEGREES,
               "focal": POSITIVE, "eval_truncation_psi": FINITE, "truncation_cutoff": NON_NEGATIVE,
               "shape_half_extent": POSITIVE, "w_avg_samples": AT_LEAST_ONE}
"""The allowed range of each numeric field of :class:`EG3DConfig` (checked on construction); decoder_output_dim
holds RGB in its first 3 channels."""


def _ffhq(**kw) -> EG3DConfig:
    return replace(EG3DConfig(), **kw)


EG3D_PRESETS: dict[str, EG3DConfig] = {
    # ffhq512-128.pkl: --cfg=ffhq --gen_pose_cond=True, fine-tuned at neural rendering resolution 128.
    "eg3d-ffhq": _ffhq(),
    # afhqcats512-128.pkl: same renderer, pivot (0, 0, -0.06).
    "eg3d-afhq": _ffhq(camera_pivot=(0.0, 0.0, -0.06)),
    # shapenetcars128-64.pkl: 128 px output, white background, no generator pose conditioning, focal 1.0254
    # (the dataset's 525 / 512), cameras on the upper hemisphere at radius 1.7; the tools' central view is
    # gen_samples' conditioning camera on the equator (its views sit just above it), not the hemisphere's centre.
    "eg3d-shapenet": _ffhq(
        img_resolution=128, sr_module="SuperresolutionHybrid2X", neural_rendering_resolution=64,
        c_gen_conditioning_zero=True, box_warp=1.6, camera_radius=1.7, camera_pivot=(0.0, 0.0, 0.0),
        focal=1.025390625,
        pose=PoseDistribution("spherical_uniform", math.pi / 2, math.pi / 4, math.pi, math.pi / 4, 1.7,
                              frontal_pitch=math.pi / 2),
        render=eg3d_render(0.1, 2.6, 64, 64, background="white"),
        eval_render=eg3d_render(0.1, 2.6, 64, 64, background="white", max_points=1 << 19),
        shape_half_extent=0.8,
    ),
    # Small enough for CPU tests and demos: the same structure with narrow layers and few samples.
    "eg3d-tiny": EG3DConfig(
        z_dim=32, w_dim=32, channel_base=256, channel_max=32, plane_resolution=32, plane_channels=8,
        decoder_hidden=16, decoder_output_dim=8, img_resolution=32, sr_module="SuperresolutionHybrid2X",
        sr_channels=(16, 8), neural_rendering_resolution=16,
        render=eg3d_render(samples=12, importance=12),
        eval_render=eg3d_render(samples=12, importance=12, max_points=1 << 18),
        w_avg_samples=1000,
    ),
}
