"""Rendering of analytic scenes: pinhole rays, Lambertian shading and edge antialiasing.

:func:`render_scene` ray casts B :class:`~.raycast.Scene` s from B cameras into a :class:`RenderResult`
(image, depth, normals, mask). Shading is Lambertian with ambient,
``albedo * (ambient + diffuse * max(0, n . l))`` clamped to 1, after the scene's procedural paint (mouth
opening, windows, lights) has recoloured some hits. Depth, normals and mask come from the pixel-centre
ray; with ``antialias`` the *image* alone additionally averages 4 rotated-grid sub-samples (plus the
centre) in pixels where the material changes, so silhouettes are smooth and the geometry stays exact.
Ray directions use elementwise arithmetic only, so every pixel is bit-identical whatever the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from ...cameras.rays import Cameras, PixelGrid, pixel_coordinates
from .raycast import Hits, Scene

__all__ = ["RenderResult", "render_scene"]


@dataclass
class RenderResult:
    """Rendered batch; see the module docstring for conventions."""

    image: Tensor
    """(B, 3, H, W) in [-1, 1]."""
    depth: Tensor
    """(B, 1, H, W) ray distance in world units, 0 on background."""
    normals: Tensor
    """(B, 3, H, W) world-space unit normals, 0 on background."""
    mask: Tensor
    """(B, 1, H, W) float in {0, 1}."""


def _rays(cameras: Cameras, uv: Tensor) -> tuple[Tensor, Tensor]:
    """World rays through normalised pixel coordinates, elementwise only (bit-stable across batches).

    Same geometry as :func:`aware3d.cameras.generate_rays` for the ``pixel_centers`` formula (agrees to
    float rounding): ``d_cam = normalize((u - cx - s y) / fx, (v - cy) / fy, 1)``, ``d = R d_cam``.

    Args:
        cameras: B cameras.
        uv: (N, 2) or (B, N, 2) normalised image coordinates.
    Returns:
        rays_o: (B, 3) camera centres (shared by all rays of a camera), rays_d: (B, N, 3) unit directions.
    """
    K, c2w = cameras.intrinsics, cameras.cam2world
    if uv.ndim == 2:
        uv = uv[None]
    u, v = uv[..., 0], uv[..., 1]
    fx, fy, cx, cy, skew = (K[:, i, j, None] for i, j in ((0, 0), (1, 1), (0, 2), (1, 2), (0, 1)))
    y = (v - cy) / fy
    x = (u - cx - skew * y) / fx
    inv = 1.0 / torch.sqrt(x * x + y * y + 1.0)
    dc = (x * inv, y * inv, inv)
    R = c2w[:, :3, :3]
    d = torch.stack([R[:, j, 0, None] * dc[0] + R[:, j, 1, None] * dc[1] + R[:, j, 2, None] * dc[2]
                     for j in range(3)], -1)
    return c2w[:, :3, 3], d


def _shade(scene: Scene, hits: Hits, rays_o: Tensor, rays_d: Tensor, light_dir: Tensor, background: Tensor,
           ambient: float, diffuse: float) -> tuple[Tensor, Tensor]:
    """Colours (B, N, 3) in [0, 1] and material ids (B, N) (-1 background) of hits."""
    hit = hits.mask
    albedo, code = hits.albedo, torch.zeros_like(hits.prim)
    if scene.paint is not None:
        t = torch.where(hit, hits.t, torch.zeros_like(hits.t))
        pts = rays_o[:, None] + t[..., None] * rays_d
        albedo, code = scene.paint(hits.prim, pts, hits.normal, albedo)
    n, l = hits.normal, light_dir[:, None]
    ndl = (n[..., 0] * l[..., 0] + n[..., 1] * l[..., 1] + n[..., 2] * l[..., 2]).clamp_min(0.0)
    color = (albedo * (ambient + diffuse * ndl[..., None])).clamp(0.0, 1.0)
    color = torch.where(hit[..., None], color, background[:, None].expand_as(color))
    prim_mat = hits.prim
    if scene.materials is not None:
        table = torch.tensor(scene.materials, device=prim_mat.device)
        prim_mat = table[prim_mat.clamp_min(0)]
    material = torch.where(hit, prim_mat * 8 + code, torch.full_like(prim_mat, -1))
    return color, material


def _block_order(height: int, width: int, block: int, device=None) -> Tensor:
    """(H*W,) raster pixel indices listed block by block (row-major blocks, row-major inside a block)."""
    r = torch.arange(height, device=device)[:, None]
    c = torch.arange(width, device=device)[None]
    blocks_x = -(-width // block)
    key = ((r // block) * blocks_x + c // block) * block * block + (r % block) * block + c % block
    return torch.argsort(key.reshape(-1))


# Rotated-grid supersampling offsets in pixel units: 4 samples, distinct in x and in y.
_RGSS = ((0.125, 0.375), (0.375, -0.125), (-0.125, -0.375), (-0.375, 0.125))


def render_scene(scene: Scene, cameras: Cameras, light_dir: Tensor, height: int, width: int | None = None,
                 background: Tensor | None = None, ambient: float = 0.35, diffuse: float = 0.75,
                 antialias: bool = True, grid: PixelGrid = "pixel_centers") -> RenderResult:
    """Ray cast B scenes from B cameras.

    Args:
        scene: B scenes (:func:`~.scenes.head_scene`, :func:`~.scenes.object_scene`).
        cameras: B cameras.
        light_dir: (B, 3) or (3,) unit vector toward the directional light, world frame.
        height, width: image size in pixels (width defaults to height).
        background: (B, 3) or (3,) RGB in [0, 1]; default white.
        ambient, diffuse: shading weights, ``albedo * (ambient + diffuse * max(0, n . l))``, clamped to 1.
        antialias: average 4 extra sub-pixel samples into the *image* where the material changes between
            4-neighbouring pixel centres; depth, normals and mask always come from the pixel centre.
        grid: pixel-centre convention (see :mod:`aware3d.cameras.rays`).
    Returns:
        :class:`RenderResult`.
    """
    width = height if width is None else width
    B = scene.batch_size
    if len(cameras) != B:
        raise ValueError(f"{len(cameras)} cameras for {B} scenes")
    dev = cameras.cam2world.device
    light_dir = torch.as_tensor(light_dir, dtype=torch.float32, device=dev).reshape(-1, 3).expand(B, 3)
    if background is None:
        background = torch.ones(3, device=dev)
    background = torch.as_tensor(background, dtype=torch.float32, device=dev).reshape(-1, 3).expand(B, 3)

    uv = pixel_coordinates(height, width, grid, device=dev)
    # Trace in 8x8-block order so that each culling tile of Scene.intersect is compact on screen.
    perm = _block_order(height, width, 8, dev)
    rank = torch.empty_like(perm)
    rank[perm] = torch.arange(perm.numel(), device=dev)
    rays_o, rays_d = _rays(cameras, uv[perm])
    hits = scene.intersect(rays_o, rays_d)
    hits = Hits(*(getattr(hits, f.name)[:, rank] for f in fields(Hits)))  # back to raster order
    rays_d = rays_d[:, rank]
    shading = (light_dir, background, ambient, diffuse)
    color, material = _shade(scene, hits, rays_o, rays_d, *shading)
    if antialias:
        edge = _material_edges(material.reshape(B, height, width)).reshape(B, -1)
        color = _supersample_edges(scene, cameras, uv, rank, color, edge, _subpixel_step(height, width, grid),
                                   shading)

    def img(x: Tensor) -> Tensor:  # (B, N, C) -> (B, C, H, W)
        return x.reshape(B, height, width, -1).permute(0, 3, 1, 2).contiguous()

    hit = hits.mask
    depth = torch.where(hit, hits.t, torch.zeros_like(hits.t))
    return RenderResult(
        image=img(color * 2.0 - 1.0),
        depth=img(depth[..., None]),
        normals=img(hits.normal),
        mask=img(hit[..., None].float()),
    )


def _material_edges(material: Tensor) -> Tensor:
    """(B, H, W) bool: pixels whose material id (B, H, W) differs from a 4-neighbour's (both get marked)."""
    edge = torch.zeros_like(material, dtype=torch.bool)
    dx = material[:, :, 1:] != material[:, :, :-1]
    dy = material[:, 1:, :] != material[:, :-1, :]
    edge[:, :, 1:] |= dx
    edge[:, :, :-1] |= dx
    edge[:, 1:, :] |= dy
    edge[:, :-1, :] |= dy
    return edge


def _subpixel_step(height: int, width: int, grid: PixelGrid) -> tuple[float, float]:
    """One pixel in normalised (u, v) units for the pixel grid convention."""
    if grid == "edge_aligned":
        return 1.0 / max(width - 1, 1), 1.0 / max(height - 1, 1)
    return 1.0 / width, 1.0 / height


def _supersample_edges(scene: Scene, cameras: Cameras, uv: Tensor, rank: Tensor, color: Tensor, edge: Tensor,
                       step: tuple[float, float], shading: tuple) -> Tensor:
    """Colours (B, N, 3) with each ``edge`` pixel (B, N) replaced by the mean of its centre colour and 4
    rotated-grid sub-samples (:data:`_RGSS`, scaled by ``step`` (u, v)); others unchanged.

    ``uv`` (N, 2) are the raster pixel coordinates and ``rank`` (N,) each pixel's position in 8x8-block
    order; ``shading`` is ``(light_dir, background, ambient, diffuse)`` of :func:`_shade`.
    """
    B, dev = color.shape[0], color.device
    counts = edge.sum(1)
    m = int(counts.max())
    if m == 0:
        return color
    # Pack each image's edge pixels first, in 8x8-block order (compact culling tiles); rows with
    # fewer edge pixels are padded with non-edge ones whose results are discarded.
    n_pix = edge.shape[1]
    key = torch.where(edge, rank[None], n_pix + torch.arange(n_pix, device=dev)[None])
    order = torch.sort(key, dim=1).indices[:, :m]
    valid = torch.arange(m, device=dev)[None] < counts[:, None]
    base = uv[order]  # (B, m, 2)
    offs = torch.tensor(_RGSS, device=dev) * torch.tensor(step, device=dev)  # (4, 2)
    sub_uv = (base[:, :, None] + offs).reshape(B, m * 4, 2)
    so, sd = _rays(cameras, sub_uv)
    sub_color, _ = _shade(scene, scene.intersect(so, sd), so, sd, *shading)
    centre = torch.gather(color, 1, order[..., None].expand(B, m, 3))
    # Sum in a fixed order (not .mean over a dim) so values do not depend on reduction kernels.
    sc = sub_color.reshape(B, m, 4, 3)
    blended = (centre + sc[:, :, 0] + sc[:, :, 1] + sc[:, :, 2] + sc[:, :, 3]) / 5.0
    blended = torch.where(valid[..., None], blended, centre)
    return color.scatter(1, order[..., None].expand(B, m, 3), blended)
