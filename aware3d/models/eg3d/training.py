"""EG3D's training presets: the official recipes and a CPU-sized one on the built-in synthetic heads."""

from __future__ import annotations

import math

from ...augment.run import DAugmentConfig
from ...training.curriculum import Curriculum, Stage
from ...training.ema import HalfLifeEMA
from ...training.presets import TrainPreset
from .discriminator import DualDiscriminatorConfig
from .loss import EG3DLossConfig


def eg3d_train_presets() -> dict[str, TrainPreset]:
    """EG3D's official recipes (``train.py`` defaults with each dataset's --gamma / --gpc_reg_prob, batch 32)
    and a CPU-sized one on the built-in synthetic heads.

    StyleGAN2's lazy regularisation also scales the Adam learning rates by interval / (interval + 1)
    (G: 4/5, D: 16/17), which these stages apply; the betas (0, 0.99) are shared by G and D here.
    The official presets have no default dataset: pass ``--data`` (a zip with EG3D labels). Their EMA is
    ``train.py``'s: a half-life of batch x 10 / 32 kimg (10 at batch 32) with the loop's 0.05 ramp-up (the
    official script drops the ramp-up only when fine-tuning from a pickle: ``--override ema.rampup=null``);
    ``eg3d-tiny`` keeps the fixed per-step decays. AFHQ trains with ADA (the README's ``--aug=ada``: the 'bgc'
    pipeline, target 0.6, the final and raw images augmented as one stack); FFHQ and ShapeNet without.
    """

    def official(model: str, img: int, samples: int, loss: EG3DLossConfig,
                 augment: DAugmentConfig = DAugmentConfig()) -> TrainPreset:
        stage = Stage(0, img, 32, 1, samples, samples, g_lr=0.0025 * 4 / 5, d_lr=0.002 * 16 / 17)
        return TrainPreset("eg3d", model, DualDiscriminatorConfig(img_resolution=img), loss,
                           Curriculum((stage,), fade_steps=0, density_noise=0.0, betas=(0.0, 0.99)),
                           data="", total_steps=25_000_000 // 32, ema=HalfLifeEMA(32 * 10 / 32, rampup=0.05),
                           augment=augment)

    # Synthetic heads are seen at radius 1 with a 12-degree field of view (focal 0.5 / tan 6 deg) and fill
    # about +-0.11 world units, as pi-GAN's CelebA set-up: the tri-planes cover a 0.24 cube.
    heads_camera = ("camera_radius=1.0", "camera_pivot=[0,0,0]", f"focal={0.5 / math.tan(math.radians(6)):.6f}",
                    "fov_deg=12", "pose.radius=1.0", "box_warp=0.24", "shape_half_extent=0.12",
                    "render.near=0.88", "render.far=1.12", "eval_render.near=0.88", "eval_render.far=1.12")
    return {
        # ffhq512-128: trained at neural rendering resolution 64, then moved to 128.
        "eg3d-ffhq": official("eg3d-ffhq", 512, 48, EG3DLossConfig(
            r1_gamma=1.0, gpc_reg_prob=0.5, neural_rendering_resolution_initial=64,
            neural_rendering_resolution_final=128)),
        "eg3d-afhq": official("eg3d-afhq", 512, 48, EG3DLossConfig(
            r1_gamma=5.0, gpc_reg_prob=0.8, neural_rendering_resolution_initial=64,
            neural_rendering_resolution_final=128), augment=DAugmentConfig(mode="ada")),  # README: --aug=ada
        "eg3d-shapenet": official("eg3d-shapenet", 128, 64, EG3DLossConfig(
            r1_gamma=0.3, gpc_reg_prob=None, neural_rendering_resolution_initial=64)),
        # CPU-sized: 16 px neural rendering super-resolved to 32 px, batch 8, a short blur.
        "eg3d-tiny": TrainPreset(
            "eg3d", "eg3d-tiny",
            DualDiscriminatorConfig(img_resolution=32, channel_base=256, channel_max=32, num_fp16_res=0,
                                    mapping_layers=2),
            EG3DLossConfig(r1_gamma=1.0, r1_interval=4, gpc_reg_prob=0.5, gpc_reg_fade_kimg=1.0,
                           density_reg=0.25, density_reg_extent=0.12, density_reg_points=256,
                           blur_init_sigma=2.0, blur_fade_kimg=1.0, neural_rendering_resolution_initial=16),
            Curriculum((Stage(0, 32, 8, 1, 12, 12, g_lr=0.0025 * 4 / 5, d_lr=0.002 * 4 / 5),), fade_steps=0,
                       density_noise=0.0, betas=(0.0, 0.99)),
            data="synthetic-heads", total_steps=2000, model_overrides=heads_camera,
        ),
        # `aware3d demo --preset eg3d-demo`: eg3d-tiny with the demo recipe of pigan-demo (issue 19), for data with
        # foreground masks. Measured at 6 min on 1 thread against the data's true depth (128 images at 64 px):
        # eg3d-tiny's blob behind the head (5 min demo: depth error 0.040, separation 0.0085) becomes a head
        # with a ball-shaped density prior fading over 400 steps and D seeing the silhouette in both its images
        # (error 0.015, separation 0.067 of the 0.12 the far bound allows, normals 25.7 deg, the data's own 24.7);
        # a density x5 kept the depth (0.017, 0.069) and made the images closer to the data (SWD 97 vs 113).
        # D's channel_base 256 -> 1024 (8 -> 32 channels at 32 px, 16 -> 32 at 16 px): at 12 min on 1 thread, seed 1
        # (the seed that collapsed with every other change: SWD 157-160 with R1 x4, lr / 2, lr / 4 or ADA) gave
        # SWD 83, depth error 0.013, separation 0.059; a D that was 8 channels wide at full resolution could not
        # see colour fringes or mode collapse (a wider D with channel_max 64 too: SWD 90, depth error 0.025).
        # The demo at 10 min (1 thread, ~3,000 steps), seeds 0/1/2: SWD 73/83/72 (D 256: seed 0 119; seeds 1 and 2
        # only measured with learning rates / 4, 12 min: 157 and 113), depth error 0.022/0.014/0.029, separation 0.037/0.082/0.030 (about as before).
        "eg3d-demo": TrainPreset(
            "eg3d", "eg3d-tiny",
            DualDiscriminatorConfig(img_resolution=32, channel_base=1024, channel_max=32, num_fp16_res=0,
                                    mapping_layers=2, img_channels=4),
            EG3DLossConfig(r1_gamma=1.0, r1_interval=4, gpc_reg_prob=0.5, gpc_reg_fade_kimg=1.0,
                           density_reg=0.25, density_reg_extent=0.12, density_reg_points=256,
                           blur_init_sigma=2.0, blur_fade_kimg=1.0, neural_rendering_resolution_initial=16,
                           silhouette=True),
            Curriculum((Stage(0, 32, 8, 1, 12, 12, g_lr=0.0025 * 4 / 5, d_lr=0.002 * 4 / 5),), fade_steps=0,
                       density_noise=0.0, betas=(0.0, 0.99), density_prior=100, density_prior_steps=400,
                       density_prior_radius=0.09),
            data="synthetic-heads", total_steps=2000,
            model_overrides=(*heads_camera, "render.density_scale=5", "eval_render.density_scale=5"),
        ),
    }
