"""Settings of an inversion: the coarse camera search, the latent optimisation, the losses and pivotal tuning.

Latent step sizes and perturbations are in *spread units* (the per-element std of the family's latent over its
prior, see :mod:`aware3d.inversion.space`); camera step sizes in radians.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..checks import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, UNIT_INTERVAL, Range, check_config
from ..rendering.bands import SurfaceBands


@dataclass(frozen=True)
class SearchConfig:
    """The coarse camera search: a grid of poses over the model's prior, each optimised briefly in one batch."""

    yaw_steps: int = 5
    """Yaw values of the grid (quantiles of the prior's yaw, evenly spaced in probability)."""
    pitch_steps: int = 3
    """Pitch values of the grid (quantiles of the prior's pitch)."""
    coverage: float = 0.9
    """Central probability mass of the prior the grid spans per angle (0.9: from its 5th to its 95th percentile)."""
    steps: int = 30
    """Adam steps every grid pose takes (latent and camera together) before the best one is kept."""
    resolution: int = 16
    """Render resolution of the search (the target is resized to the model's image size at it)."""

    def __post_init__(self) -> None:
        check_config(self, {"yaw_steps": AT_LEAST_ONE, "pitch_steps": AT_LEAST_ONE,
                            "coverage": Range(0, 1, lo_open=True),
                            "steps": NON_NEGATIVE, "resolution": AT_LEAST_ONE})


@dataclass(frozen=True)
class OptimConfig:
    """The joint latent + camera optimisation from the best grid pose (Adam, cosine-decayed rates)."""

    steps: int = 200
    """Steps with the stage-0 groups (e.g. pi-GAN's frequencies and phases, EG3D's shared w) and the camera."""
    refine_steps: int = 100
    """Further steps with every group freed (e.g. EG3D's W+ offsets); families with one stage just continue."""
    lr: float = 0.05
    """Adam step of the latent, in spread units."""
    camera_lr: float = 0.03
    """Adam step of the camera's yaw and pitch, radians (the camera must be able to cross a grid cell)."""
    final_lr: float = 0.05
    """Fraction of the rates left at the end of each phase (cosine decay)."""
    prior: float = 1e-3
    """Weight of the prior penalty mean(offset^2) (offsets in spread units from the family's mean latent)."""
    optimise_camera: bool = True
    """Optimise the camera (False: keep the grid's best pose)."""

    def __post_init__(self) -> None:
        check_config(self, {"steps": NON_NEGATIVE, "refine_steps": NON_NEGATIVE, "lr": POSITIVE,
                            "camera_lr": NON_NEGATIVE, "final_lr": UNIT_INTERVAL, "prior": NON_NEGATIVE})


@dataclass(frozen=True)
class LossConfig:
    """Weights of the reconstruction terms (each a per-image mean; 0 turns a term off)."""

    pixel: float = 1.0
    """Mean squared error of the [-1, 1] images."""
    msssim: float = 0.2
    """1 - multi-scale SSIM of the [0, 1] images (aware3d.metrics.msssim; fewer scales on small images)."""
    discriminator: float = 0.1
    """Discriminator-feature distance (each block's features, normalised by the target's mean square); only when
    the checkpoint is a training run folder, which holds D (the result says whether it was used)."""
    lpips: float = 0.0
    """LPIPS-VGG distance; > 0 needs its two weight files (lpips_vgg, lpips_lin or their environment variables)."""
    lpips_vgg: str | None = None
    """torchvision's vgg16-397923af.pth for LPIPS (None: $AWARE3D_LPIPS_VGG16)."""
    lpips_lin: str | None = None
    """The lpips package's weights/v0.1/vgg.pth for LPIPS (None: $AWARE3D_LPIPS_LIN)."""
    lpips_min_size: int = 64
    """Images smaller than this are upsampled (bilinear) before LPIPS, whose VGG needs at least 16 px."""

    def __post_init__(self) -> None:
        check_config(self, {"pixel": NON_NEGATIVE, "msssim": NON_NEGATIVE, "discriminator": NON_NEGATIVE,
                            "lpips": NON_NEGATIVE, "lpips_min_size": Range(16)})


@dataclass(frozen=True)
class PTIConfig:
    """Pivotal tuning: the generator's weights fine-tuned around the found latent and camera (the pivot)."""

    steps: int = 100
    """Adam steps on the generator's weights."""
    lr: float = 3e-4
    """Adam step of the weights."""
    locality: float = 0.1
    """Weight of the locality regulariser: the tuned and the original generator must agree on latents near the
    pivot (pixel + multi-scale SSIM terms) seen from random cameras of the prior (0.1 as the PTI paper)."""
    locality_strength: float = 1.0
    """How far the regulariser's latents lie from the pivot: Gaussian offsets of this many spreads per element."""
    locality_resolution: int = 16
    """Render resolution of the regulariser's views."""

    def __post_init__(self) -> None:
        check_config(self, {"steps": AT_LEAST_ONE, "lr": POSITIVE, "locality": NON_NEGATIVE,
                            "locality_strength": NON_NEGATIVE, "locality_resolution": AT_LEAST_ONE})


@dataclass(frozen=True)
class InversionConfig:
    """Everything an inversion does; every part is seeded by ``seed``."""

    resolution: int | None = None
    """Render resolution of the optimisation (None: the model's; families with super-resolution output their
    fixed image size whatever it is)."""
    num_samples: int | None = None
    """Samples per ray (None: the model's evaluation setting)."""
    fast: bool | SurfaceBands = False
    """The fast mode's band sampling in every render of the inversion (the tools' ``--fast``): fewer samples
    per ray around the surface a sparse probe finds; approximate (about 1e-2 mean absolute image error). True:
    the default bands; or the bands to use."""
    search: SearchConfig = field(default_factory=SearchConfig)
    """The coarse camera search."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """The latent + camera optimisation."""
    loss: LossConfig = field(default_factory=LossConfig)
    """The reconstruction terms."""
    pti: PTIConfig | None = None
    """Pivotal tuning after the latent optimisation (None: none)."""
    space_samples: int = 1000
    """Mapped z whose spread sets the latent's units (Generator3D.inversion_space)."""
    seed: int = 0
    """Seed of every random draw (the spread's z, the regulariser's latents and cameras)."""
    sampling_seed: int = 0
    """Seed of the renderer's own draws (jittered families), the same at every step and in render --latent."""

    def __post_init__(self) -> None:
        check_config(self, {"resolution": AT_LEAST_ONE, "num_samples": AT_LEAST_ONE, "space_samples": Range(2)})


__all__ = ["InversionConfig", "LossConfig", "OptimConfig", "PTIConfig", "SearchConfig"]
