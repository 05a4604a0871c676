"""The ball scene of the learning tests: one orange ball at the origin on black, scaled x100.

The camera sits 100 units from the origin with a 30-degree view, the ball has radius 15, and rays are sampled
over [80, 120]. Why the x100: the densities a tiny SIREN reaches in a few hundred Adam steps (of order 1 per
unit) make the 30-unit-deep ball opaque; at pi-GAN's scale (a ball of radius 0.08) they cannot (see
tests/test_training.py).

Helpers: the ray-ball intersection (:func:`ball_hits`), the flat-coloured frontal view of the pi-GAN test
(:func:`ball_view`), the ball under ShadeGAN light codes seen from any camera (:func:`lit_ball`), the flat
disk that imitates it (:func:`flat_disk`), and a dataset serving a fixed tensor of images (:class:`ImagePool`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from aware3d.cameras import Cameras, generate_rays
from aware3d.data.base import ImageDataset

BALL_CAMERA_RADIUS, BALL_RADIUS, BALL_FOV, BALL_COLOUR = 100.0, 15.0, 30.0, (0.9, 0.5, 0.2)
BALL_NEAR, BALL_FAR = 80.0, 120.0


def frontal_camera(n: int = 1) -> Cameras:
    """``n`` copies of the camera on +z looking at the ball (pi-GAN angles pi/2, pi/2)."""
    return Cameras.from_angles([math.pi / 2] * n, [math.pi / 2] * n, BALL_FOV, radius=BALL_CAMERA_RADIUS)


def ball_hits(cameras: Cameras, res: int) -> tuple[Tensor, Tensor, Tensor]:
    """Where each pixel-centre ray (edge-aligned grid, row-major) meets the ball.

    Returns hit (B, res*res) bool, the distance to the surface along the unit ray (B, res*res) (0 where the
    ray misses) and the world outward unit normal there (B, res*res, 3) (0 where it misses)."""
    o, d = generate_rays(cameras, res, res, grid="edge_aligned")
    b = -(o * d).sum(-1)
    disc = b * b - ((o * o).sum(-1) - BALL_RADIUS ** 2)
    hit = disc > 0
    depth = torch.where(hit, b - disc.clamp_min(0).sqrt(), torch.zeros(()))
    normal = torch.where(hit[..., None], (o + depth[..., None] * d) / BALL_RADIUS, torch.zeros(()))
    return hit, depth, normal


def ball_view(res: int) -> tuple[Tensor, Tensor]:
    """The flat-coloured ball from the frontal camera: image (1, 3, res, res) in [-1, 1] and the distance to
    its surface along each pixel's ray (res, res) (0 where the ray misses)."""
    hit, depth, _ = ball_hits(frontal_camera(), res)
    img = torch.zeros(1, res * res, 3)
    img[hit] = torch.tensor(BALL_COLOUR)
    return img.reshape(1, res, res, 3).permute(0, 3, 1, 2) * 2 - 1, depth.reshape(res, res)


def lambert(normal: Tensor, light: Tensor) -> Tensor:
    """ShadeGAN's shading written from the light model's definition (not the library's code): light codes
    (B, 4) = (a, d, dx, dy) give ambient ``a/2 + 0.5``, diffuse ``d/2 + 0.5`` and the world direction
    ``normalise(dx, dy, 1)``; normals (B, R, 3) (unit, or 0 off the object) shade as
    ``ambient + diffuse * clamp(n . l, 0, 1)``. Returns (B, R)."""
    ambient, diffuse = light[:, 0] / 2 + 0.5, light[:, 1] / 2 + 0.5
    toward = torch.cat([light[:, 2:4], torch.ones(len(light), 1)], -1)
    toward = toward / toward.norm(dim=-1, keepdim=True)
    cos = torch.einsum("brc,bc->br", normal, toward).clamp(0, 1)
    return ambient[:, None] + diffuse[:, None] * cos


def shaded_images(shading: Tensor, hit: Tensor, res: int) -> Tensor:
    """``clamp(colour * shading, 0, 1)`` where ``hit`` (B, R), black elsewhere: (B, 3, res, res) in [-1, 1]."""
    rgb = (torch.tensor(BALL_COLOUR) * shading[..., None]).clamp(0, 1) * hit[..., None]
    return rgb.reshape(-1, res, res, 3).permute(0, 3, 1, 2) * 2 - 1


def lit_ball(cameras: Cameras, light: Tensor, res: int) -> tuple[Tensor, Tensor]:
    """The ball seen by ``cameras`` under light codes ``light`` (B, 4) (:func:`lambert`): image
    (B, 3, res, res) in [-1, 1] and shading (B, 1, res, res) (ambient off the ball)."""
    hit, _, normal = ball_hits(cameras, res)
    shading = lambert(normal, light)
    return shaded_images(shading, hit, res), shading.reshape(-1, 1, res, res)


def flat_disk(cameras: Cameras, light: Tensor, res: int) -> tuple[Tensor, Tensor]:
    """A flat sheet cut to the ball's outline and facing the camera (every normal (0, 0, 1), the frontal
    camera's direction): what a generator that paints the disk on a plane shades. As :func:`lit_ball`."""
    hit, _, _ = ball_hits(cameras, res)
    normal = torch.zeros(*hit.shape, 3)
    normal[..., 2] = 1
    shading = lambert(normal, light)
    return shaded_images(shading, hit, res), shading.reshape(-1, 1, res, res)


class ImagePool(ImageDataset):
    """A dataset serving the rows of a fixed (N, 3, R, R) tensor in [-1, 1], without cameras."""

    name, has_labels = "ball", False

    def __init__(self, images: Tensor):
        super().__init__()
        self.images = images
        self.resolution = images.shape[-1]

    @property
    def base_length(self) -> int:
        return len(self.images)

    def _load(self, idx):
        n = len(idx)
        return self.images[idx].clone(), torch.zeros(n, 25), torch.zeros(n, dtype=bool)

    def _fingerprint_parts(self):
        return {}
