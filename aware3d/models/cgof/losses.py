"""CGOF's loss terms (cGOF v1, seed description section 3.3) as pure functions, each unweighted.

Signatures (the recipe multiplies each term by its :class:`CGOFLossWeights` field):

    depth_prior(t, weights, mesh_depth, face_mask, thickness, near, far) -> Tensor         # x narrow_ratio at the call
    background_prior(t, weights, z_world, face_mask, near, nearest_face_depth, face_max_z) -> Tensor
    background_prior_bounds(mesh_depth, face_mask, z_world, near) -> (nearest_face_depth (B,), face_max_z (B,))
    normal_smoothness(normals, neighbour_normals) -> Tensor
    depth_smoothness(depth, background_mask) -> Tensor
    charbonnier(a, b, eps=1e-8, mask=None) -> Tensor
    gaussian_blur_reflect(images, size=5, sigma=2.0) -> Tensor (same shape)
    warp3d_loss(outputs_1, outputs_0_warped, volume_mask, images_1, images_0, image_mask=None) -> Tensor
    lift_landmarks(landmarks_px, depth, cameras, height, width=None, grid="pixel_centers",
                   interpolation="bilinear") -> Tensor (B, N, 3)
    landmark_loss(pred_px, target_px, lifted_3d, mesh_landmarks_3d, indices=range(17, 68), scale_2d=1.0)
        -> (loss_2d, loss_3d)                                                               # lm3d = (2d + 3d) x weight
    coefficient_loss(predicted_whitened, target_whitened, groups=RECON_GROUPS) -> Tensor
    near_mesh_ramp(step, shrink_steps=200) -> float
    band_thickness(step, start=1.0, end=0.005, shrink_steps=200) -> float
    CGOFLossWeights(recon=4, lm3d=10, warp3d=10, depth_prior=1e4, bg_prior=1e4, normal=1000, geo=500, r1=0.2, pos=15)

and in :mod:`aware3d.rendering.sampling` (the fine2 pass; ratio = near_mesh_ramp, width = (far - near) * 0.005):

    blend_toward_band(t, guide_depth, guide_mask, band_width, ratio) -> Tensor (B, R, S)

Conventions. Rays are (B, R) (R = H * W, row-major) with S samples each. ``t`` is the distance along the
unit ray from the camera centre (world units), the convention of aware3d's renderer and rasteriser, so
mesh depths from :func:`aware3d.rendering.rasterize.rasterize` compare with ``t`` directly (the official
code compares camera-space z with a z-buffer: its bands are measured in z, ours along the ray, which differ
by the factor cos(angle off axis), at most about 1% at the corners of a 12-degree view). Pixel coordinates are those of
:func:`aware3d.rendering.rasterize.project_points`: the centre of pixel (row i, column j) is (x, y) = (j, i).
The two priors shape densities only: their gradients reach ``weights``, never the sample positions
(the official code detaches the distances).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ...cameras.rays import Cameras, PixelGrid, generate_rays
from ...faces.model import FaceCoefficients

__all__ = [
    "LANDMARK_3D_INDICES", "RECON_GROUPS", "CGOFLossWeights", "background_prior", "background_prior_bounds",
    "band_thickness", "charbonnier", "coefficient_loss", "depth_prior", "depth_smoothness", "gaussian_blur_reflect",
    "landmark_loss", "lift_landmarks", "near_mesh_ramp", "normal_smoothness", "warp3d_loss",
]

DEPTH_PRIOR_SHARPNESS = 20.0
"""Rate of the depth prior's exponential (per world unit beyond the band)."""
BACKGROUND_NEAR_FRACTION = 0.9
"""Background samples nearer than this fraction of the way from the near plane to the face are penalised."""
LANDMARK_3D_INDICES = range(17, 68)
"""iBUG-68 landmarks of the 3-D landmark term: brows, nose, eyes, mouth (the jaw contour 0-16 excluded)."""
RECON_GROUPS: tuple[str, ...] = ("identity", "expression", "texture", "lighting")
"""The coefficient groups the recon term compares (the official id, exp, tex, gamma)."""


# ------------------------------------------------------------------------------------ helpers

def _check_samples(name: str, t: Tensor, weights: Tensor, **per_ray: Tensor) -> None:
    if t.ndim != 3 or weights.shape != t.shape:
        raise ValueError(f"{name}: t and weights must both be (B, R, S), got {tuple(t.shape)} and "
                         f"{tuple(weights.shape)}")
    for key, value in per_ray.items():
        if value.shape != t.shape[:-1]:
            raise ValueError(f"{name}: {key} must be (B, R) = {tuple(t.shape[:-1])}, got {tuple(value.shape)}")


def _mean_where(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` over the entries where ``mask`` (same shape) is true; 0 when there are none."""
    return torch.where(mask, values, torch.zeros_like(values)).sum() / mask.sum().clamp_min(1)


def _per_image(value: float | Tensor, like: Tensor) -> Tensor:
    """A float or a (B,) tensor as (B, 1, 1) (or a scalar), broadcastable against (B, R, S)."""
    v = torch.as_tensor(value, device=like.device, dtype=like.dtype)
    return v.reshape(-1, 1, 1) if v.ndim == 1 else v


# ------------------------------------------------------------------------------------ priors

def depth_prior(t: Tensor, weights: Tensor, mesh_depth: Tensor, face_mask: Tensor, thickness: float,
                near: float, far: float) -> Tensor:
    """The volumetric depth prior: rendering weight far from the mesh surface costs exponentially.

    Per sample on a ray inside the mesh mask, ``relu(w) * (exp(20 * relu(|t - d_mesh| - tau / 2)) - 1)`` with
    ``tau = (far - near) * thickness``: zero inside the band of width tau centred on the mesh depth.
    The mean over those samples (all S samples of every masked ray) is returned; the official recipe
    multiplies it by its weight and by ``narrow_ratio`` (:func:`near_mesh_ramp`) at the call site.

    Args:
        t: (B, R, S) sample distances (world units); detached here (only the weights get gradient).
        weights: (B, R, S) compositing weights of those samples.
        mesh_depth: (B, R) rasterised mesh depth, the same distance convention; ignored off the mask.
        face_mask: (B, R) bool, rays inside the (mouth-filled) mesh mask.
        thickness: band width as a fraction of ``far - near`` (:func:`band_thickness`: 1.0 -> 0.005).
        near, far: the render's ray range (world units).
    Returns:
        scalar, 0 when no ray is masked.
    """
    _check_samples("depth_prior", t, weights, mesh_depth=mesh_depth, face_mask=face_mask)
    half_band = 0.5 * (far - near) * thickness
    mask = face_mask.unsqueeze(-1).expand_as(t)
    beyond = F.relu((t.detach() - mesh_depth.detach().unsqueeze(-1)).abs() - half_band)
    # Zeroed off the mask before the exponential: a garbage depth there must not overflow into NaN gradients.
    beyond = torch.where(mask, beyond, torch.zeros_like(beyond))
    return _mean_where(F.relu(weights) * torch.expm1(DEPTH_PRIOR_SHARPNESS * beyond), mask)


def background_prior(t: Tensor, weights: Tensor, z_world: Tensor, face_mask: Tensor, near: float,
                     nearest_face_depth: float | Tensor, face_max_z: float | Tensor) -> Tensor:
    """Keep background rays' weight behind the face: two means over the background samples that break a rule.

    On rays outside the mesh mask, (a) a sample nearer than ``near + 0.9 * (nearest_face_depth - near)``
    costs ``w * (that limit - t)``; (b) a sample whose world z lies in front of the face's largest z costs
    ``w * (z - face_max_z)``. Each part is the mean over the samples it penalises (0 when none); the sum is
    returned.

    Args:
        t: (B, R, S) sample distances (world units); z_world: (B, R, S) their world z (world +z faces a
            frontal camera). Both detached here.
        weights: (B, R, S) compositing weights.
        face_mask: (B, R) bool, rays inside the mesh mask (these are not penalised).
        near: the render's near distance.
        nearest_face_depth, face_max_z: floats or (B,) per image (see :func:`background_prior_bounds`;
            the official code takes one value over the whole batch, its minimum / maximum).
    Returns:
        scalar.
    """
    _check_samples("background_prior", t, weights, face_mask=face_mask)
    if z_world.shape != t.shape:
        raise ValueError(f"background_prior: z_world must be (B, R, S) = {tuple(t.shape)}, got {tuple(z_world.shape)}")
    background = ~face_mask.unsqueeze(-1).expand_as(t)
    limit = near + BACKGROUND_NEAR_FRACTION * (_per_image(nearest_face_depth, t) - near)
    too_near = limit - t.detach()
    in_front = z_world.detach() - _per_image(face_max_z, t)
    return (_mean_where(weights * too_near, background & (too_near > 0))
            + _mean_where(weights * in_front, background & (in_front > 0)))


def background_prior_bounds(mesh_depth: Tensor, face_mask: Tensor, z_world: Tensor,
                            near: float) -> tuple[Tensor, Tensor]:
    """Per image, the nearest mesh depth inside the mask and the largest world z of samples on masked rays.

    Args:
        mesh_depth: (B, R) rasterised depth; face_mask: (B, R) bool; z_world: (B, R, S) samples' world z.
        near: returned as the nearest depth of an image without face pixels (its near-side rule then only
            catches samples in front of the near plane).
    Returns:
        nearest_face_depth (B,), face_max_z (B,) (+inf for an image without face pixels: no z rule), no gradient.
    """
    with torch.no_grad():
        inf = torch.tensor(float("inf"), device=mesh_depth.device, dtype=mesh_depth.dtype)
        nearest = torch.where(face_mask, mesh_depth, inf).amin(-1)
        has_face = face_mask.any(-1)
        nearest = torch.where(has_face, nearest, torch.full_like(nearest, near))
        face_z = torch.where(face_mask.unsqueeze(-1), z_world, -inf).flatten(1).amax(-1)
        return nearest, torch.where(has_face, face_z, inf)


# ------------------------------------------------------------------------------------ smoothness

def normal_smoothness(normals: Tensor, neighbour_normals: Tensor) -> Tensor:
    """Mean squared difference between surface normals and those at random points 1e-3 away.

    Args:
        normals, neighbour_normals: (B, N, 3) each (unit normals, normalised -grad sigma).
    Returns:
        scalar, the mean over all B * N * 3 components (``torch.nn.MSELoss``).
    """
    if normals.shape != neighbour_normals.shape or normals.shape[-1] != 3:
        raise ValueError(f"normal_smoothness: normals and neighbour_normals must be the same (B, N, 3), got "
                         f"{tuple(normals.shape)} and {tuple(neighbour_normals.shape)}")
    return F.mse_loss(normals, neighbour_normals)


def depth_smoothness(depth: Tensor, background_mask: Tensor) -> Tensor:
    """Squared finite differences of a rendered depth map, over the image plus over the background.

    At every pixel (i, j) with i < H-1, j < W-1: ``(d[i, j] - d[i, j+1])^2 + (d[i, j] - d[i+1, j])^2``; the
    result is the mean of that over the (H-1) x (W-1) pixels plus its mean over those of them in the
    background (``sum / (count + 1e-8)``, so 0 without background).

    Args:
        depth: (B, H, W) depth map (world units); background_mask: (B, H, W) bool, outside the mesh mask.
    Returns:
        scalar.
    """
    if depth.ndim != 3 or background_mask.shape != depth.shape:
        raise ValueError(f"depth_smoothness: depth and background_mask must both be (B, H, W), got "
                         f"{tuple(depth.shape)} and {tuple(background_mask.shape)}")
    corner = depth[:, :-1, :-1]
    cost = (corner - depth[:, :-1, 1:]).square() + (corner - depth[:, 1:, :-1]).square()
    background = background_mask[:, :-1, :-1].to(cost.dtype)
    return cost.mean() + (cost * background).sum() / (background.sum() + 1e-8)


# ------------------------------------------------------------------------------------ warping

def charbonnier(a: Tensor, b: Tensor, eps: float = 1e-8, mask: Tensor | None = None) -> Tensor:
    """Mean Charbonnier distance ``sqrt((a - b)^2 + eps)`` (so ``sqrt(eps)`` = 1e-4 for equal inputs).

    Args:
        a, b: tensors of one shape.
        mask: optional, broadcastable against ``a``: the result is ``sum(c * mask) / sum(mask)`` with the
            mask's *own* sum, so a (B, N, 1) mask against (B, N, C) values averages over the masked samples
            the sum over their C channels (the official volume term); 0 for an empty mask.
    Returns:
        scalar.
    """
    if a.shape != b.shape:
        raise ValueError(f"charbonnier: inputs must have one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    cost = torch.sqrt((a - b).square() + eps)
    if mask is None:
        return cost.mean()
    mask = mask.to(cost.dtype)
    return (cost * mask).sum() / mask.sum().clamp_min(1e-8)


def gaussian_blur_reflect(images: Tensor, size: int = 5, sigma: float = 2.0) -> Tensor:
    """Blur (B, C, H, W) with a ``size`` x ``size`` Gaussian (taps ``exp(-x^2 / (2 sigma^2))`` normalised to sum
    1, x = -size//2 .. size//2 pixels), reflect padding, same size out: the warp term's 5 x 5, sigma 2 blur
    (kornia's ``gaussian_blur2d`` defaults; :func:`aware3d.losses.gan.gaussian_blur` is the StyleGAN one,
    another kernel and zero padding)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"gaussian_blur_reflect: size must be odd and positive, got {size}")
    half = size // 2
    if images.ndim != 4 or min(images.shape[-2:]) <= half:
        raise ValueError(f"gaussian_blur_reflect: need (B, C, H, W) images larger than {half} pixels a side for "
                         f"reflect padding, got {tuple(images.shape)}")
    x = torch.arange(-half, half + 1, device=images.device, dtype=images.dtype)
    taps = torch.exp(-x.square() / (2 * sigma * sigma))
    taps = taps / taps.sum()
    C = images.shape[1]
    out = F.conv2d(F.pad(images, [half, half, 0, 0], mode="reflect"), taps.reshape(1, 1, 1, -1).repeat(C, 1, 1, 1),
                   groups=C)
    return F.conv2d(F.pad(out, [0, 0, half, half], mode="reflect"), taps.reshape(1, 1, -1, 1).repeat(C, 1, 1, 1),
                    groups=C)


def _sample_mask(mask: Tensor, outputs: Tensor) -> Tensor:
    """A per-sample mask (outputs.shape[:-1], optionally with a trailing 1) as outputs.shape[:-1] + (1,)."""
    if mask.shape == outputs.shape[:-1]:
        mask = mask.unsqueeze(-1)
    if mask.shape != (*outputs.shape[:-1], 1):
        raise ValueError(f"warp3d_loss: volume_mask must be one value per sample, {tuple(outputs.shape[:-1])}, "
                         f"got {tuple(mask.shape)}")
    return mask


def warp3d_loss(outputs_1: Tensor | Sequence[Tensor], outputs_0_warped: Tensor | Sequence[Tensor],
                volume_mask: Tensor, images_1: Tensor, images_0: Tensor, image_mask: Tensor | None = None) -> Tensor:
    """The 3-D expression-warping term: code 1 at its samples vs code 0 at the samples moved by the mesh flow.

    Sum over passes of :func:`charbonnier` between the field outputs, averaged over the samples in the
    face volume (per sample, the sum over output channels), plus the Charbonnier mean between the two
    images after :func:`gaussian_blur_reflect` (5 x 5, sigma 2) over the pixels of ``image_mask``.

    Args:
        outputs_1: (B, N, C) raw field outputs of code 1 at its samples, or a sequence of them, one per pass
            (the official fine and fine2).
        outputs_0_warped: the same shapes: code 0 queried at those samples displaced by the 3-D flow.
        volume_mask: (B, N) or (B, N, 1), bool or float, samples on rays inside the face mask.
        images_1: (B, 3, H, W) code 1's render; images_0: (B, 3, H, W) code 0's render at the warped samples.
        image_mask: optional (B, H, W), (B, 1, H, W) or (B, 3, H, W) pixels to compare (the official
            ``mask_0 <= mask_1``); None compares every pixel.
    Returns:
        scalar (batch 1 in the official recipe, with its own backward).
    """
    outs_1 = [outputs_1] if isinstance(outputs_1, Tensor) else list(outputs_1)
    outs_0 = [outputs_0_warped] if isinstance(outputs_0_warped, Tensor) else list(outputs_0_warped)
    if len(outs_1) != len(outs_0) or not outs_1:
        raise ValueError(f"warp3d_loss: need one warped output per pass, got {len(outs_1)} and {len(outs_0)}")
    volume = sum(charbonnier(o1, o0, mask=_sample_mask(volume_mask, o1)) for o1, o0 in zip(outs_1, outs_0))
    pixel_mask = None
    if image_mask is not None:
        pixel_mask = image_mask.unsqueeze(1) if image_mask.ndim == 3 else image_mask
        pixel_mask = pixel_mask.expand_as(images_1)
    return charbonnier(gaussian_blur_reflect(images_1), gaussian_blur_reflect(images_0), mask=pixel_mask) + volume


# ------------------------------------------------------------------------------------ landmarks

def _unit_from_pixels(xy: Tensor, height: int, width: int, grid: PixelGrid) -> Tensor:
    """Pixel coordinates (centre of pixel (i, j) at (j, i)) -> normalised (u, v) of :mod:`aware3d.cameras.rays`."""
    if grid == "pixel_centers":
        return torch.stack([(xy[..., 0] + 0.5) / width, (xy[..., 1] + 0.5) / height], -1)
    if grid == "edge_aligned":
        return torch.stack([xy[..., 0] / max(width - 1, 1), xy[..., 1] / max(height - 1, 1)], -1)
    raise ValueError(f"unknown pixel grid {grid!r}; valid: pixel_centers, edge_aligned")


def _pixels_from_unit(uv: Tensor, height: int, width: int, grid: PixelGrid) -> Tensor:
    """Inverse of :func:`_unit_from_pixels`."""
    if grid == "pixel_centers":
        return torch.stack([uv[..., 0] * width - 0.5, uv[..., 1] * height - 0.5], -1)
    if grid == "edge_aligned":
        return torch.stack([uv[..., 0] * max(width - 1, 1), uv[..., 1] * max(height - 1, 1)], -1)
    raise ValueError(f"unknown pixel grid {grid!r}; valid: pixel_centers, edge_aligned")


def _depth_at(depth: Tensor, xy: Tensor, interpolation: Literal["bilinear", "nearest"]) -> Tensor:
    """Depth (B, h, w) read at pixel coordinates xy (B, N, 2) of its own grid, clamped to the image: (B, N)."""
    B, h, w = depth.shape
    if interpolation == "nearest":
        col = xy[..., 0].round().clamp(0, w - 1).long()
        row = xy[..., 1].round().clamp(0, h - 1).long()
        return depth.reshape(B, h * w).gather(1, row * w + col)
    if interpolation != "bilinear":
        raise ValueError(f"unknown landmark depth interpolation {interpolation!r}; valid: bilinear, nearest")
    # align_corners=True: -1 and +1 are the centres of the first and last pixels, i.e. x = 0 and x = w - 1.
    scale = xy.new_tensor([max(w - 1, 1), max(h - 1, 1)])
    where = (2 * xy / scale - 1).unsqueeze(2)  # (B, N, 1, 2)
    return F.grid_sample(depth.unsqueeze(1), where, mode="bilinear", padding_mode="border",
                         align_corners=True)[:, 0, :, 0]


def lift_landmarks(landmarks_px: Tensor, depth: Tensor, cameras: Cameras, height: int, width: int | None = None,
                   grid: PixelGrid = "pixel_centers",
                   interpolation: Literal["bilinear", "nearest"] = "bilinear") -> Tensor:
    """2-D landmarks lifted into the world with a rendered depth map: the exact inverse of ``project_points``.

    Each landmark's ray is that of :func:`aware3d.cameras.generate_rays` through its (sub-pixel) position;
    the point is ``origin + depth * direction`` with the depth map read there, so
    ``project_points(lift_landmarks(xy, ...))`` gives back ``xy`` and the depth read.

    Args:
        landmarks_px: (B, N, 2) pixel coordinates in the (height, width) image (centre of pixel (i, j) at (j, i)).
        depth: (B, h, w) distance along the unit ray (world units) of a render of the same view, at any
            resolution (it is read at the same normalised image position).
        cameras: B cameras (or 1, shared), those of the render.
        height, width: the landmarks' image size in pixels (width defaults to height).
        grid: the pixel grid of both the landmarks' image and the depth map (CGOF, as pi-GAN: edge_aligned).
        interpolation: ``"bilinear"`` (gradients reach the depth and the positions) or ``"nearest"`` (the
            official: the landmark snaps to the depth map's nearest pixel, and its ray goes through that pixel).
    Returns:
        (B, N, 3) world points.
    """
    width = height if width is None else width
    if landmarks_px.ndim != 3 or landmarks_px.shape[-1] != 2 or depth.ndim != 3:
        raise ValueError(f"lift_landmarks: need landmarks (B, N, 2) and depth (B, h, w), got "
                         f"{tuple(landmarks_px.shape)} and {tuple(depth.shape)}")
    B = landmarks_px.shape[0]
    if depth.shape[0] != B or len(cameras) not in (1, B):
        raise ValueError(f"lift_landmarks: {B} landmark sets, {depth.shape[0]} depth maps, {len(cameras)} cameras")
    if len(cameras) == 1 and B > 1:
        cameras = Cameras(cameras.cam2world.expand(B, 4, 4), cameras.intrinsics.expand(B, 3, 3))
    h, w = depth.shape[-2:]
    uv = _unit_from_pixels(landmarks_px, height, width, grid)
    xy_depth = _pixels_from_unit(uv, h, w, grid)
    if interpolation == "nearest":
        xy_depth = xy_depth.round().clamp_min(0).minimum(xy_depth.new_tensor([w - 1, h - 1]))
        uv = _unit_from_pixels(xy_depth, h, w, grid)
    distance = _depth_at(depth, xy_depth, interpolation)
    rays_o, rays_d = generate_rays(cameras.to(device=uv.device, dtype=uv.dtype), h, w, grid, pixels=uv)
    return rays_o + rays_d * distance.unsqueeze(-1)


def landmark_loss(pred_px: Tensor, target_px: Tensor, lifted_3d: Tensor, mesh_landmarks_3d: Tensor,
                  indices: Sequence[int] = LANDMARK_3D_INDICES, scale_2d: float = 1.0) -> tuple[Tensor, Tensor]:
    """The lm3d term's two parts: 2-D landmark L1 and 3-D L1 of lifted landmarks (the term is their sum).

    Args:
        pred_px: (B, 68, 2) landmarks detected on the generated image (pixels; the official clips them to
            the image); target_px: (B, 68, 2) the input mesh's projected landmarks, same frame.
        lifted_3d: (B, 68, 3) the detected landmarks lifted with the generated depth (:func:`lift_landmarks`);
            mesh_landmarks_3d: (B, 68, 3) the mesh's landmark vertices, world units.
        indices: landmarks of the 3-D part (17-67: the jaw contour is excluded); the 2-D part uses all.
        scale_2d: multiplies the 2-D part: the official measures it in a 256-pixel frame, so
            ``256 / image_width`` for pixel coordinates of a smaller render.
    Returns:
        (loss_2d, loss_3d): means over the compared coordinates.
    """
    if pred_px.shape != target_px.shape or lifted_3d.shape != mesh_landmarks_3d.shape:
        raise ValueError(f"landmark_loss: shapes differ: 2-D {tuple(pred_px.shape)} vs {tuple(target_px.shape)}, "
                         f"3-D {tuple(lifted_3d.shape)} vs {tuple(mesh_landmarks_3d.shape)}")
    idx = torch.as_tensor(list(indices), device=lifted_3d.device, dtype=torch.long)
    loss_2d = (pred_px - target_px).abs().mean() * scale_2d
    loss_3d = (lifted_3d[:, idx] - mesh_landmarks_3d[:, idx]).abs().mean()
    return loss_2d, loss_3d


# ------------------------------------------------------------------------------------ coefficients

def coefficient_loss(predicted_whitened: FaceCoefficients, target_whitened: FaceCoefficients,
                     groups: Sequence[str] = RECON_GROUPS) -> Tensor:
    """The recon term: L1 between regressed and input coefficients in whitened space, group by group.

    Each group contributes its mean absolute difference and the groups are averaged with equal weight (the
    official per-group variant with 1/4 each; group sizes 80/64/80/27 do not weigh in).

    Args:
        predicted_whitened: coefficients read back from the generated image by the frozen regressor,
            whitened with the training statistics; target_whitened: the code's own groups (whitened).
        groups: :class:`FaceCoefficients` fields to compare (default identity, expression, texture, lighting).
    Returns:
        scalar.
    """
    valid = {f.name for f in fields(FaceCoefficients)}
    unknown = [g for g in groups if g not in valid]
    if unknown or not groups:
        raise ValueError(f"coefficient_loss: unknown or no groups {unknown or list(groups)}; valid: {sorted(valid)}")
    losses = [(getattr(predicted_whitened, g) - getattr(target_whitened, g)).abs().mean() for g in groups]
    return torch.stack(losses).mean()


# ------------------------------------------------------------------------------------ schedule

def near_mesh_ramp(step: int, shrink_steps: int = 200) -> float:
    """``narrow_ratio``: 0 at step 0 rising linearly to 1 at ``shrink_steps`` (then 1); 1 when shrink_steps <= 0.

    It blends the fine2 samples toward the mesh band (:func:`aware3d.rendering.sampling.blend_toward_band`)
    and multiplies the depth prior."""
    if shrink_steps <= 0:
        return 1.0
    return min(max(step, 0) / shrink_steps, 1.0)


def band_thickness(step: int, start: float = 1.0, end: float = 0.005, shrink_steps: int = 200) -> float:
    """The depth prior's band width as a fraction of ``far - near``: ``start`` annealed linearly to ``end``
    (the official ``thick_ratio``) with :func:`near_mesh_ramp`."""
    return start + (end - start) * near_mesh_ramp(step, shrink_steps)


@dataclass(frozen=True)
class CGOFLossWeights:
    """Weights of CGOF's generator terms (the official curriculum
    ``pigan_recon4_snm_depr10000_norm1000_lm3d10_warp3d10_bgdepr10000_georeg500_lastback``)."""

    recon: float = 4.0
    """``recon_lambda``: :func:`coefficient_loss` of the regressed coefficients."""
    lm3d: float = 10.0
    """``lm3d_lambda``: the sum of both parts of :func:`landmark_loss`."""
    warp3d: float = 10.0
    """``warping3d_lambda``: :func:`warp3d_loss`."""
    depth_prior: float = 1e4
    """``dist_depr_lambda``: :func:`depth_prior` (also times ``narrow_ratio``)."""
    bg_prior: float = 1e4
    """``bg_depr_lambda``: :func:`background_prior`."""
    normal: float = 1000.0
    """``norm_reg_lambda``: :func:`normal_smoothness`."""
    geo: float = 500.0
    """``geo_reg_lambda``: :func:`depth_smoothness`."""
    r1: float = 0.2
    """pi-GAN's ``r1_lambda`` (the penalty is ``0.5 * r1 * ||grad D||^2`` on reals)."""
    pos: float = 15.0
    """pi-GAN's ``pos_lambda``: MSE of the discriminator's predicted pose, in both players' losses."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"CGOFLossWeights.{f.name} must be a finite number >= 0 (0 switches the term off), "
                                 f"got {value!r}")
