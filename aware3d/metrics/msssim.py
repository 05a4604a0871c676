"""SSIM / MS-SSIM (Wang et al. 2003) and the MS-SSIM diversity of generated images.

SSIM uses an 11-tap Gaussian window (sigma 1.5) applied without padding ("valid"), K1 = 0.01, K2 = 0.03;
images are compared per channel and the channel values averaged. MS-SSIM combines, over M scales
(2x average-pool between scales), the contrast-structure term of scales 1..M-1 and the full SSIM of scale
M: ``prod_j cs_j^w_j * ssim_M^w_M`` with the standard weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333).
Negative terms are clamped to 0 before the powers (as common implementations do).

Images smaller than 11 * 2^4 = 176 px cannot hold five scales: :func:`num_scales` takes the most scales
whose smallest image still fits the window, and the first M weights are renormalised to sum to 1 (the
evaluation JSON records the scales and weights used). Below 11 px the window shrinks to the image.

Diversity (ACGAN / ProGAN use): the mean MS-SSIM over random pairs of distinct generated images; lower
means more diverse.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""Wang et al.'s per-scale exponents, finest scale first."""


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float64) -> Tensor:
    """(size,) normalised 1D Gaussian centred on the middle tap."""
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    w = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return w / w.sum()


def _filter(x: Tensor, win: Tensor) -> Tensor:
    """Separable 'valid' Gaussian filtering of (B, C, H, W) per channel."""
    C = x.shape[1]
    k = win.to(x)
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(C, 1, -1, 1), groups=C)


def ssim_terms(x: Tensor, y: Tensor, data_range: float = 1.0, win: Tensor | None = None,
               k1: float = 0.01, k2: float = 0.03) -> tuple[Tensor, Tensor]:
    """Mean SSIM and mean contrast-structure term per image and channel, each (B, C).

    ``x``, ``y``: (B, C, H, W) in a range of width ``data_range``.
    """
    win = gaussian_window() if win is None else win
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mx, my = _filter(x, win), _filter(y, win)
    sxx = _filter(x * x, win) - mx * mx
    syy = _filter(y * y, win) - my * my
    sxy = _filter(x * y, win) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    ssim = (2 * mx * my + c1) / (mx * mx + my * my + c1) * cs
    return ssim.mean(dim=(2, 3)), cs.mean(dim=(2, 3))


def num_scales(size: int, win_size: int = 11, max_scales: int = 5) -> int:
    """Most scales (<= max_scales) whose coarsest image (size / 2^(M-1)) is at least the window size."""
    m = 1
    while m < max_scales and size // (2 ** m) >= win_size:
        m += 1
    return m


def msssim_settings(size: int, win_size: int = 11) -> dict:
    """Scales, weights and window used for ``size``-pixel images (what the JSON records)."""
    win = min(win_size, size if size % 2 else size - 1)
    m = num_scales(size, win)
    w = torch.tensor(MSSSIM_WEIGHTS[:m], dtype=torch.float64)
    return {"scales": m, "weights": (w / w.sum()).tolist(), "window": win, "sigma": 1.5,
            "reduced": m < len(MSSSIM_WEIGHTS)}


def ms_ssim(x: Tensor, y: Tensor, data_range: float = 1.0, win_size: int = 11) -> Tensor:
    """(B,) MS-SSIM of image pairs (B, C, H, W), averaged over channels, computed in float64.

    The number of scales follows :func:`msssim_settings` for ``min(H, W)``.
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ms_ssim needs two (B, C, H, W) batches of one shape, got {tuple(x.shape)}, {tuple(y.shape)}")
    settings = msssim_settings(min(x.shape[-2:]), win_size)
    weights = torch.tensor(settings["weights"], dtype=torch.float64, device=x.device)
    win = gaussian_window(settings["window"])
    x, y = x.double(), y.double()
    values = []
    for s in range(settings["scales"]):
        ssim, cs = ssim_terms(x, y, data_range, win)
        values.append((ssim if s == settings["scales"] - 1 else cs).clamp_min(0))
        if s < settings["scales"] - 1:
            x = F.avg_pool2d(x, 2, ceil_mode=True)
            y = F.avg_pool2d(y, 2, ceil_mode=True)
    stacked = torch.stack(values)  # (M, B, C)
    return torch.prod(stacked ** weights[:, None, None], dim=0).mean(1)


def random_pairs(n: int, num_pairs: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``num_pairs`` index pairs (i, j) of distinct items among ``n``, drawn uniformly."""
    if n < 2:
        raise ValueError(f"MS-SSIM diversity needs at least 2 images, got {n}")
    i = torch.randint(0, n, (num_pairs,), generator=generator)
    # j = i + a non-zero offset modulo n: uniform over the other n - 1 items.
    j = (i + torch.randint(1, n, (num_pairs,), generator=generator)) % n
    return i, j


def msssim_diversity(images: Tensor, num_pairs: int = 10000, batch: int = 256,
                     generator: torch.Generator | None = None) -> dict:
    """Mean and std of MS-SSIM over random pairs of distinct images of a (N, 3, H, W) set in [-1, 1]."""
    i, j = random_pairs(images.shape[0], num_pairs, generator)
    x01 = (images.double() + 1) / 2
    vals = torch.cat([ms_ssim(x01[i[s:s + batch]], x01[j[s:s + batch]], data_range=1.0)
                      for s in range(0, num_pairs, batch)])
    return {"mean": float(vals.mean()), "std": float(vals.std(unbiased=False)), "pairs": num_pairs,
            **msssim_settings(min(images.shape[-2:]))}


__all__ = ["MSSSIM_WEIGHTS", "gaussian_window", "ms_ssim", "msssim_diversity", "msssim_settings", "num_scales",
           "random_pairs", "ssim_terms"]
