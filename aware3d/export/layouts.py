"""Grid layouts of ``aware3d shapes``: where the density volume is sampled and how it is stored.

The shared ``regular`` layout samples an exact regular N^3 grid over a cube centred at the origin. A family
may register more (``FamilySpec.grid_layouts``), e.g. EG3D's ``official`` layout, which reproduces
``gen_samples.py``'s sheared grid and its .mrc values. A layout turns one latent into
:class:`GridVolumes`; the tool then writes the .mrc and meshes the volume the same way for every layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from torch import Tensor

from .shapes import sample_density_grid

if TYPE_CHECKING:
    from ..models.base import Generator3D


@dataclass
class GridVolumes:
    """One latent's density volume in a layout. Volumes are (N, N, N) float32 on the CPU."""

    file_volume: Tensor
    """What the .mrc stores, in :func:`aware3d.export.shapes.write_mrc`'s axis order (first axis fastest)."""
    mesh_volume: Tensor
    """Raw density indexed [x, y, z] on a regular grid over ``half_extent``, for marching cubes."""
    interior: Tensor
    """The values the level statistics ('mean', min, max) use (a layout's padding excluded)."""
    half_extent: float
    """Half side of the sampled cube, world units."""


@dataclass(frozen=True)
class GridLayout:
    """How one kind of shape export samples and stores the density."""

    name: str
    """The ``--grid-layout`` value."""
    description: str
    """One line for ``--help`` and errors."""
    volumes: Callable[["Generator3D", Tensor, int, "float | None", bool], GridVolumes]
    """``volumes(G, w, grid, half_extent, progress)`` for one latent ``w`` (1, ...); ``half_extent`` None means
    the layout's (or model's) default. Raises ValueError with the fix when the layout cannot be honoured."""


def _regular(G: "Generator3D", w: Tensor, grid: int, half_extent: float | None, progress: bool) -> GridVolumes:
    h = half_extent or G.config.shape_half_extent
    density = G.rendered_density(w)
    volume = sample_density_grid(lambda p: density(p[None])[0], resolution=grid, bounds=((-h, -h, -h), (h, h, h)),
                                 device=G.device, progress=progress)
    return GridVolumes(volume, volume, volume, h)


REGULAR = GridLayout("regular", "density at the exact points of a regular N^3 grid over the cube, .mrc indexed "
                     "x fastest", _regular)
"""The layout every family has."""


__all__ = ["GridLayout", "GridVolumes", "REGULAR"]
