"""EG3D's shape extraction as ``gen_samples.py --shapes`` does it, for .mrc files with the official values.

``gen_samples.create_samples`` computes the y and x grid indices with *float* division, so its grid is
sheared rather than regular: for flat index ``i = ix * N^2 + iy * N + iz``,
``z = o + iz * h``, ``y = o + ((i / N) mod N) * h`` and ``x = o + ((i / N / N) mod N) * h`` in float32, i.e.
``y ~ o + (iy + iz / N) h`` and ``x ~ o + (ix + iy / N + iz / N^2) h`` (``o = -box_warp / 2``,
``h = box_warp / (N - 1)``; the last x values pass the box by up to a voxel). The raw density at those
points is reshaped to [ix, iy, iz], flipped along x and its outer ``int(30 N / 256)`` voxels on every face
are set to -1000. gen_samples trims with ``sigmas[:pad]`` and ``sigmas[-pad:]``; for ``N < 9`` the pad is 0 and
numpy's ``sigmas[-0:]`` is the whole array, so the official volume is -1000 everywhere (reproduced here). The
regular-grid export of ``aware3d shapes`` is the geometrically exact alternative.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...export.layouts import GridLayout, GridVolumes
from .generator import EG3DGenerator

OFFICIAL_PAD_VALUE = -1000.0


def official_shape_points(n: int, box_warp: float = 1.0, flat_index: Tensor | None = None) -> Tensor:
    """(M, 3) float32 points of ``create_samples(n, cube_length=box_warp)`` for ``flat_index`` (default: all n^3)."""
    idx = torch.arange(n ** 3, dtype=torch.int64) if flat_index is None else flat_index.to(torch.int64)
    origin = -box_warp / 2
    h = box_warp / (n - 1)
    fidx = idx.float()
    cols = [((fidx / n) / n) % n, (fidx / n) % n, (idx % n).float()]
    return torch.stack([c * h + origin for c in cols], dim=-1)


def official_border(n: int) -> int:
    """Voxels set to the pad value on every face: ``int(30 * n / 256)``."""
    return int(30 * n / 256)


@torch.no_grad()
def official_sigma_volume(G: EG3DGenerator, ws: Tensor, n: int, chunk: int = 1 << 20, raw: bool = False,
                          index: tuple[Tensor, Tensor, Tensor] | None = None, planes: Tensor | None = None) -> Tensor:
    """gen_samples' density volume for one latent ``ws`` (1, num_ws, w_dim) (const backbone noise).

    Args:
        n: grid points per axis.
        raw: return the (n, n, n) sigma before the flip and the border (indexed [ix, iy, iz]).
        index: optional (ix, iy, iz) index tensors into the *final* (flipped) volume: only those voxels are
            evaluated and returned (cheap spot checks of big grids).
        planes: the tri-planes of ``ws`` if already computed (const noise).
    Returns:
        (n, n, n) float32 (or the values at ``index``), final = flipped along x with the border at -1000.
    """
    planes = G.planes(ws, noise_mode="const") if planes is None else planes
    box = G.config.box_warp
    if index is None:
        flat = None
    else:
        fx, fy, fz = (i.to(torch.int64) for i in index)
        # final[x] = raw[n - 1 - x] (flip along x), unless a raw volume is asked for.
        flat = ((fx if raw else n - 1 - fx) * n + fy) * n + fz
    points = official_shape_points(n, box, flat).to(G.device)
    sigma = torch.cat([G.sample_planes(planes, points[None, s:s + chunk])[1][0, :, 0].cpu()
                       for s in range(0, points.shape[0], chunk)])
    if raw:
        return sigma if index is not None else sigma.reshape(n, n, n)
    pad = official_border(n)
    if index is not None:
        border = torch.full_like(sigma, pad == 0, dtype=torch.bool)  # pad 0: everything (see module doc)
        for i in (fx, fy, fz):
            border |= (i < pad) | (i >= n - pad)
        return torch.where(border, torch.full_like(sigma, OFFICIAL_PAD_VALUE), sigma)
    vol = sigma.reshape(n, n, n).flip(0).clone()
    if pad == 0:
        # numpy's sigmas[-0:] = -1000 in gen_samples overwrites everything.
        return vol.fill_(OFFICIAL_PAD_VALUE)
    for axis in range(3):
        vol.narrow(axis, 0, pad).fill_(OFFICIAL_PAD_VALUE)
        vol.narrow(axis, n - pad, pad).fill_(OFFICIAL_PAD_VALUE)
    return vol


def _official_volumes(G: EG3DGenerator, w: Tensor, n: int, half_extent: float | None, progress: bool) -> GridVolumes:
    """gen_samples' final sigma array for one latent, stored as its .mrc (C order: z fastest, hence the
    transpose for write_mrc, which stores its first axis fastest), and the flip undone for meshing (the sub-voxel
    shear of the official points is ignored there, so the mesh sits on the regular grid of the box_warp cube)."""
    if official_border(n) == 0:
        raise ValueError(f"--grid {n} is too small for --grid-layout official: gen_samples trims int(30 N / 256) "
                         "voxels per face, which is 0 below N = 9 and then (numpy's [-0:]) sets the whole volume to "
                         "-1000; use --grid 9 or more, or --grid-layout regular")
    if half_extent is not None:
        raise ValueError("--half-extent does not apply to --grid-layout official (gen_samples samples the box_warp "
                         "cube); drop it or use --grid-layout regular")
    final = official_sigma_volume(G, w, n)
    volume = final.flip(0)
    pad = official_border(n)
    # The level statistics skip the -1000 border, which is not a density of the model.
    interior = volume[pad:n - pad, pad:n - pad, pad:n - pad]
    return GridVolumes(final.permute(2, 1, 0), volume, interior, G.config.box_warp / 2)


OFFICIAL_LAYOUT = GridLayout(
    "official", "EG3D's gen_samples.py: its sheared create_samples grid over the box_warp cube, flipped along x, "
    "the outer int(30 N / 256) voxels set to -1000, stored as gen_samples' .mrc (needs --grid >= 9)", _official_volumes)
