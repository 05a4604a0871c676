"""pi-GAN's training presets: the seeds' curricula (numbers from the released ``curriculums.py``; the
progressive CelebA schedule is the one published with ShadeGAN as ``CelebA_piGAN``) and the ``-tiny`` /
``-demo`` ones, small enough for a laptop CPU (tests, ``aware3d demo``).
"""

from __future__ import annotations

from ...losses.pigan import PiGANLossConfig
from ...nn.progressive_discriminator import ProgressiveDiscriminatorConfig
from ...training.curriculum import Curriculum, Stage
from ...training.presets import TrainPreset


def pigan_train_presets() -> dict[str, TrainPreset]:
    """pi-GAN's released curricula and the CPU-sized ones."""
    ccs = ProgressiveDiscriminatorConfig(coord_conv=True)
    # The official train.py's pose term is torch.nn.MSELoss (the CPU presets keep the smooth L1 they were tuned with).
    celeba_loss = PiGANLossConfig(r1_gamma=0.2, pos_lambda=15, topk_v=0.6, topk_interval=2000, grad_clip=10,
                                  identity_loss="mse")
    return {
        "pigan-celeba": TrainPreset(
            "pigan", "pigan-celeba", ccs, celeba_loss,
            Curriculum((
                Stage(0, 32, 26, 1, 12, g_lr=2e-5, d_lr=2e-4),
                Stage(30_000, 64, 16, 2, 5, g_lr=2e-5, d_lr=2e-4),
                Stage(70_000, 64, 16, 2, 5, g_lr=1e-5, d_lr=1e-4),
                Stage(100_000, 128, 4, 2, 4, g_lr=2e-6, d_lr=2e-5),
            )),
            data="synthetic-heads", total_steps=150_000,
        ),
        "pigan-celeba-64": TrainPreset(
            "pigan", "pigan-celeba", ccs, celeba_loss,
            Curriculum((Stage(0, 64, 56, 2, 12, g_lr=6e-5, d_lr=2e-4),)),
            data="synthetic-heads", total_steps=200_000,
        ),
        "pigan-cats": TrainPreset(
            "pigan", "pigan-cats", ProgressiveDiscriminatorConfig(coord_conv=False),
            PiGANLossConfig(r1_gamma=0.2, pos_lambda=0, topk_v=0.6, topk_interval=2000, grad_clip=10),
            Curriculum((Stage(0, 64, 28, 4, 24, g_lr=6e-5, d_lr=2e-4),)),
            data="synthetic-heads", total_steps=200_000,
        ),
        "pigan-carla": TrainPreset(
            "pigan", "pigan-carla", ProgressiveDiscriminatorConfig(coord_conv=False),
            PiGANLossConfig(r1_gamma=10, pos_lambda=0, topk_v=1.0, topk_interval=1000, grad_clip=1),
            Curriculum((
                Stage(0, 32, 30, 1, 48, g_lr=4e-5, d_lr=4e-4),
                Stage(10_000, 64, 14, 2, 48, g_lr=2e-5, d_lr=2e-4),
                Stage(55_000, 128, 10, 5, 48, g_lr=1e-5, d_lr=1e-4),
            )),
            data="synthetic-objects", total_steps=200_000,
        ),
        # CPU-sized: narrow networks, 32x32 images, few samples; D fades in quickly. Used by `aware3d demo`.
        "pigan-tiny": TrainPreset(
            "pigan", "pigan-tiny", ProgressiveDiscriminatorConfig(max_resolution=64, channel_base=1024, channel_max=128,
                                                                  latent_dim=0),
            PiGANLossConfig(r1_gamma=1.0, pos_lambda=15, topk_v=0.6, topk_interval=200, grad_clip=10),
            Curriculum((Stage(0, 32, 16, 1, 12, 12, g_lr=2e-4, d_lr=4e-4),), fade_steps=200,
                       density_noise=0.5, density_noise_steps=300),
            data="synthetic-heads", total_steps=2000,
        ),
        # `aware3d demo`: pigan-tiny's model with a recipe tuned for heads within minutes on 2 CPU cores.
        # Measured against pigan-tiny at 32 px on 1 thread: no hierarchical sampling makes a step 2.2x faster
        # and the half-width discriminator 1.2x more; a wider box warp (lower SIREN frequencies over the head),
        # R1 0.3 instead of 1 and a faster G gave head-shaped samples in fewer steps; batch 8 (twice the steps
        # per minute) sharper ones. View-independent colour stops the generator from painting the turning
        # head on a flat backdrop (it did so with view-dependent colour: constant depth maps).
        # Real 3D (issue 19; measured at 6 min on 1 thread, 128 images at 64 px against the data's true depth):
        # that recipe still ended as a painted sheet behind the background (foreground depth error 0.158,
        # head/background separation 0.0002). Three changes, each needed:
        # - density x20: the tiny SIREN's raw densities are ~1, too thin to make a 0.1-wide head opaque, so a
        #   sheet at the far bound was its cheapest picture;
        # - a ball-shaped density prior fading out over the first 400 steps: a shape in front of empty space to
        #   start from (alone, with the x20, error 0.035, separation 0.11, SWD 140);
        # - D sees the silhouette (real masks, generated opacity, with a near-zero last interval so the far
        #   sample does not count as foreground): error 0.027, separation 0.157 (truth 0.170), SWD 111 (152 before);
        # - a plain background per latent (the field's colour at a point behind the head) instead of the far
        #   samples' SIREN texture, as the data's plain backdrops: SWD 79 (error 0.019, separation 0.163).
        "pigan-demo": TrainPreset(
            "pigan", "pigan-tiny", ProgressiveDiscriminatorConfig(max_resolution=64, channel_base=512, channel_max=64,
                                                                  latent_dim=0, in_channels=4),
            PiGANLossConfig(r1_gamma=0.3, pos_lambda=15, topk_v=0.6, topk_interval=200, grad_clip=10,
                            silhouette=True),
            Curriculum((Stage(0, 32, 8, 1, 12, 0, g_lr=3e-4, d_lr=4e-4),), fade_steps=200,
                       density_noise=0.5, density_noise_steps=300,
                       density_prior=100, density_prior_steps=400, density_prior_radius=0.09),
            data="synthetic-heads", total_steps=5000,
            model_overrides=("box_warp=0.36", "view_dependent=false", "render.background=last_sample",
                             "render.last_delta=0.001", "eval_render.last_delta=0.001", "render.density_scale=20",
                             "eval_render.density_scale=20", "background_point=[0,0,-0.15]"),
        ),
    }
