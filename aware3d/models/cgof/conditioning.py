"""What the morphable-face-model mesh of a latent tells CGOF's renderer and losses, per pixel of a render.

The face code's coefficients (unwhitened, canonical pose: the face sits at the world origin looking toward +z,
:class:`~aware3d.faces.FaceFrame`) build a mesh with :class:`~aware3d.faces.MorphableFaceModel`; it is
rasterised with :func:`aware3d.rendering.rasterize.rasterize` from the very cameras and pixel grid the
generator renders with, so ray ``r`` of a render and pixel ``r`` (row-major) of these maps are one ray.

* ``mesh_depth``: distance along the ray to the mesh (the renderer's ``t`` convention), 0 off the mask;
* ``face_mask``: rays that hit the mesh, with *mouth holes* filled: background components enclosed by the face
  (not touching the image border) smaller than a fraction of the image become face, their depth the mean mesh
  depth on their one-pixel border (an open mouth of a front-only mesh such as the BFM's);
* ``shaded``: the mesh's albedo under its SH lighting, the lighting acting in the camera-aligned frame as in
  Deep3DFaceRecon and ``synthetic-faces`` (lights move with the camera), black background;
* ``landmarks_2d`` / ``landmarks_3d``: the 68 landmark vertices projected (pixel centre (i, j) at (j, i)) and in
  the world;
* ``flow``: with a reference code, the per-pixel 3-D displacement from this mesh's surface point to the same
  surface point (same barycentrics) of the reference mesh: CGOF's warping between two expressions.

Nothing here carries gradients to the generator (the code is an input; everything runs without autograd).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ...cameras import Cameras, PixelGrid
from ...faces import FaceCoefficients, MorphableFaceModel, sh_shading
from ...rendering.rasterize import Fragments, interpolate, project_points, rasterize


@dataclass
class MeshConditioning:
    """The conditioning maps of B latents seen from B cameras at H x W pixels (see the module docstring)."""

    mesh_depth: Tensor
    """(B, H, W) distance along each pixel's ray to the mesh, world units; filled holes hold their border's
    mean; 0 off the mask."""
    face_mask: Tensor
    """(B, H, W) bool: the mesh covers the pixel, or the pixel lies in a filled mouth hole."""
    shaded: Tensor
    """(B, 3, H, W) the shaded mesh in [-1, 1] (albedo x SH irradiance, clamped), black off the mesh."""
    landmarks_2d: Tensor
    """(B, 68, 2) landmark pixels, centre of pixel (row i, column j) at (j, i)."""
    landmarks_3d: Tensor
    """(B, 68, 3) landmark positions, world units."""
    hole_mask: Tensor
    """(B, H, W) bool: the pixels the mouth-hole filling added to the mask."""
    flow: Tensor | None = None
    """(B, H, W, 3) world displacement toward the reference mesh at each covered pixel (0 elsewhere), or None."""

    def rays(self) -> tuple[Tensor, Tensor]:
        """(mesh depth, face mask), each (B, R) in the renderer's row-major ray order."""
        B = self.mesh_depth.shape[0]
        return self.mesh_depth.reshape(B, -1), self.face_mask.reshape(B, -1)


# ------------------------------------------------------------------------------------------ masks

def connected_components(mask: Tensor) -> Tensor:
    """(B, H, W) int64 labels of the 8-connected components of ``mask`` (B, H, W) bool: each component holds
    1 + the largest row-major pixel index among its pixels; 0 where ``mask`` is False.

    Label propagation by 3x3 max-pooling until nothing changes (exact; labels below 2^24 are exact in float32).
    """
    B, H, W = mask.shape
    m = mask[:, None].to(torch.float32)
    labels = torch.arange(1, H * W + 1, device=mask.device, dtype=torch.float32).reshape(1, 1, H, W) * m
    while True:
        grown = F.max_pool2d(labels, 3, stride=1, padding=1) * m
        if torch.equal(grown, labels):
            return labels[:, 0].long()
        labels = grown


def _dilate(mask: Tensor) -> Tensor:
    """(H, W) bool grown by one pixel in the 8-neighbourhood."""
    return F.max_pool2d(mask[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0


def enclosed_holes(mask: Tensor, max_fraction: float) -> Tensor:
    """(B, H, W) int64 labels of the holes of ``mask`` (B, H, W) bool: 8-connected components of its complement
    that touch no image border and have fewer than ``max_fraction * H * W`` pixels; 0 elsewhere."""
    B, H, W = mask.shape
    labels = connected_components(~mask)
    border = torch.zeros_like(mask)
    border[:, 0, :] = border[:, -1, :] = True
    border[:, :, 0] = border[:, :, -1] = True
    holes = torch.zeros_like(labels)
    for b in range(B):
        ids, counts = torch.unique(labels[b][labels[b] > 0], return_counts=True)
        touching = torch.unique(labels[b][border[b] & (labels[b] > 0)])
        small = ids[(counts < max_fraction * H * W) & ~torch.isin(ids, touching)]
        holes[b] = torch.where(torch.isin(labels[b], small), labels[b], torch.zeros_like(labels[b]))
    return holes


def fill_mouth_holes(mask: Tensor, depth: Tensor, max_fraction: float = 0.05) -> tuple[Tensor, Tensor, Tensor]:
    """The face mask with its small enclosed holes filled and their depth set to the mean of their border.

    Args:
        mask: (B, H, W) bool coverage of the mesh; depth: (B, H, W) its depth (0 off the mask).
        max_fraction: holes of at least this fraction of the image are kept as background.
    Returns:
        (filled mask, filled depth, hole mask), each (B, H, W); a hole's depth is the mean depth of the mask
        pixels 8-adjacent to it (all of them face pixels, the hole being a whole 8-connected component).
    """
    holes = enclosed_holes(mask, max_fraction)
    depth = depth.clone()
    for b in range(mask.shape[0]):
        for label in torch.unique(holes[b][holes[b] > 0]).tolist():
            hole = holes[b] == label
            ring = _dilate(hole) & ~hole
            depth[b][hole] = depth[b][ring].mean()
    filled = holes > 0
    return mask | filled, depth, filled


# ------------------------------------------------------------------------------------------ the mesh

def camera_aligned(vectors: Tensor, cameras: Cameras) -> Tensor:
    """World vectors (B, N, 3) in each camera's Deep3DFaceRecon-style frame (x right, y up, z toward the viewer):
    ``(R diag(1, -1, -1))^T v`` with R the camera-to-world rotation (OpenCV axes)."""
    rot = cameras.cam2world[:, :3, :3].to(vectors)
    flip = torch.tensor([1.0, -1.0, -1.0], dtype=vectors.dtype, device=vectors.device)
    return (vectors @ rot) * flip


def _shaded(fragments: Fragments, model: MorphableFaceModel, coefficients: FaceCoefficients, mesh,
            cameras: Cameras) -> Tensor:
    """(B, 3, H, W) in [-1, 1]: albedo x SH irradiance with camera-aligned normals, black off the mesh."""
    irradiance = sh_shading(camera_aligned(mesh.normals, cameras), coefficients.lighting, model.init_light)
    rgb = interpolate(fragments, (mesh.albedo * irradiance).clamp(0, 1), mesh.triangles)
    return rgb.permute(0, 3, 1, 2) * 2 - 1


@torch.no_grad()
def build_conditioning(model: MorphableFaceModel, coefficients: FaceCoefficients, cameras: Cameras, resolution: int,
                       grid: PixelGrid, reference: FaceCoefficients | None = None,
                       mouth_hole_fraction: float = 0.05) -> MeshConditioning:
    """The conditioning of B faces seen from B cameras (or one shared camera), ``resolution`` pixels square.

    Args:
        model: the face model (its dtype is used; the outputs are float32).
        coefficients: B faces in the model's units; their pose is used as given (zero: canonical).
        cameras, resolution, grid: the render's cameras, size and pixel grid.
        reference: B other faces (e.g. the same code with another expression): sets ``flow``.
        mouth_hole_fraction: see :func:`fill_mouth_holes`.
    """
    dtype = model.mean_shape.dtype
    coefficients = coefficients.to(device=model.mean_shape.device, dtype=dtype)
    B = coefficients.batch_size
    cameras = cameras.to(device=model.mean_shape.device, dtype=dtype)
    if len(cameras) == 1 and B > 1:
        cameras = Cameras(cameras.cam2world.expand(B, 4, 4), cameras.intrinsics.expand(B, 3, 3))
    mesh = model(coefficients)
    fragments = rasterize(mesh.vertices, mesh.triangles, cameras, resolution, grid=grid)
    mask, depth, holes = fill_mouth_holes(fragments.mask, fragments.depth, mouth_hole_fraction)
    xy, _ = project_points(mesh.landmarks, cameras, resolution, resolution, grid)
    flow = None
    if reference is not None:
        other = model(reference.to(device=model.mean_shape.device, dtype=dtype))
        flow = interpolate(fragments, other.vertices - mesh.vertices, mesh.triangles).float()
    return MeshConditioning(mesh_depth=depth.float(), face_mask=mask, shaded=_shaded(fragments, model, coefficients,
                                                                                    mesh, cameras).float(),
                            landmarks_2d=xy.float(), landmarks_3d=mesh.landmarks.float(), hole_mask=holes, flow=flow)


__all__ = ["MeshConditioning", "build_conditioning", "camera_aligned", "connected_components", "enclosed_holes",
           "fill_mouth_holes"]
