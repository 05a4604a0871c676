"""Named metric protocols: what each metric name computes, on how many images, from which cameras.

The names follow the seeds (StyleGAN2-ADA / EG3D / EpiGRAF ``metric_main.py``): ``fid50k_full`` compares
50k generated images with every real image, ``kid50k_full`` uses up to 1M real images and 100 subsets of
1000, ``is50k`` splits 50k generated images in 10, ``fid2k_full`` is EpiGRAF's quick FID on 2048 images.
The weight-free and 3D metrics (``swd``, ``msssim``, ``reprojection``, ``side``) are ours; their defaults
are ProGAN's (SWD on 16384 images) or chosen to be cheap, and ``num_gen`` overrides any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

MetricKind = Literal["fid", "kid", "is", "swd", "msssim", "reprojection", "depth"]
CameraSource = Literal["auto", "dataset", "prior"]


@dataclass(frozen=True)
class MetricSpec:
    """One named metric protocol."""

    name: str
    """The name used on the command line and as the key of the results."""
    kind: MetricKind
    """Which computation: fid, kid, is, swd, msssim, reprojection or depth (SIDE + MAD)."""
    num_gen: int
    """Generated images (for reprojection: latents, each rendered from every view)."""
    num_real: int | None = None
    """Real images used: None = the whole dataset ("full"); a number caps it (the first ones)."""
    camera: CameraSource = "auto"
    """Cameras of the generated images: dataset poses (labels of random items), the model's pose
    distribution (prior), or auto = dataset poses when every item has a label, else the prior."""
    truncation_psi: float = 1.0
    """Truncation of the generated latents (1 = none, the standard for FID)."""
    needs_real: bool = True
    """Whether real images are needed."""
    needs_inception: bool = False
    """Whether the Inception detector is needed."""
    higher_is_better: bool = False
    """Direction of the main value (for keeping the best checkpoint)."""
    kid_subsets: int = 100
    """KID: number of random subsets."""
    kid_subset_size: int = 1000
    """KID: maximum subset size."""
    is_splits: int = 10
    """Inception Score: number of splits."""
    msssim_pairs: int = 10000
    """MS-SSIM diversity: random pairs of distinct generated images."""

    def with_num_gen(self, num_gen: int | None) -> "MetricSpec":
        """This protocol with another number of generated images (None keeps it)."""
        if num_gen is None:
            return self
        if num_gen < 1:
            raise ValueError(f"num_gen must be >= 1, got {num_gen}")
        return replace(self, num_gen=num_gen)


METRICS: dict[str, MetricSpec] = {s.name: s for s in [
    MetricSpec("fid50k_full", "fid", 50000, needs_inception=True),
    MetricSpec("fid10k_full", "fid", 10000, needs_inception=True),
    MetricSpec("fid2k_full", "fid", 2048, needs_inception=True),
    MetricSpec("kid50k_full", "kid", 50000, num_real=1_000_000, needs_inception=True),
    MetricSpec("is50k", "is", 50000, needs_real=False, needs_inception=True, higher_is_better=True),
    MetricSpec("swd", "swd", 16384),
    MetricSpec("msssim", "msssim", 1000, needs_real=False),
    MetricSpec("reprojection", "reprojection", 64, needs_real=False),
    MetricSpec("side", "depth", 1000),
]}
"""Every metric by name."""


def get_metric(name: str) -> MetricSpec:
    """The protocol called ``name``; the error lists the valid names."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; valid: {', '.join(METRICS)}")
    return METRICS[name]


def parse_metric_list(metrics: str | list[str] | tuple[str, ...]) -> list[MetricSpec]:
    """Names given as a comma-separated string and/or a list (``["fid50k_full,swd", "side"]``), in order,
    without repeats."""
    items = [metrics] if isinstance(metrics, str) else list(metrics)
    names: list[str] = []
    for item in items:
        for name in str(item).split(","):
            name = name.strip()
            if name and name not in names:
                names.append(name)
    if not names:
        raise ValueError(f"no metric given; valid: {', '.join(METRICS)}")
    return [get_metric(n) for n in names]


__all__ = ["CameraSource", "METRICS", "MetricKind", "MetricSpec", "get_metric", "parse_metric_list"]
