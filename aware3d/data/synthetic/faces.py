"""The ``synthetic-faces`` dataset: the morphable face model (:mod:`aware3d.faces`) under random coefficients,
rasterised (:mod:`aware3d.rendering.rasterize`) from pi-GAN's CelebA cameras, with exact ground truth.

The scene. The face sits at the world origin in its canonical pose (model frame turned into aware3d's world
by the model's :class:`~aware3d.faces.FaceFrame`: +y up, the face looking toward +z); the camera moves, drawn
from CGOF's (pi-GAN's) CelebA prior: gaussian yaw / pitch around frontal with std 0.3 / 0.155 rad, fov 12 deg,
radius 1, the same cameras as ``synthetic-heads``. The background is one random colour per item.

Coefficients (Deep3DFaceRecon's meaning, see :mod:`aware3d.faces.layout`) are drawn as whitened Gaussian
codes: identity and texture ``N(0, std^2)`` per component; expression component 0 ``|N(0, jaw_std^2)|``
(the synthetic model's ``jaw_open``, which must stay >= 0; the BFM's first expression component, mostly the
mouth opening, too), the others ``N(0, expression_std^2)``; SH lighting around the model's default light (0.8 ambient): one
9-band light shared by the channels (ambient, linear and quadratic bands with their own std) plus a small
per-channel deviation (a tint).

**Ground truth in Deep3DFaceRecon's convention.** The 257-vector ``coefficients`` describes the image as
Deep3DFaceRecon would: its pose is the face's rotation and translation *seen from a frontal camera* on the
model's +z axis 10 model units away (:data:`~aware3d.faces.DEEP3D_CAMERA_DISTANCE`, i.e. aware3d's frontal
camera at radius 1), so turning the camera left shows as the face turning right, and its lighting acts on
the normals in that camera-aligned frame (lights move with the camera, as in Deep3DFaceRecon). The render is
built exactly that way: the model evaluates the camera-relative coefficients (:func:`camera_relative_pose`)
and the posed mesh is moved back into the world by the camera's rigid motion, which gives back the canonical
face; only the focal length differs from Deep3DFaceRecon's (the dataset's fov). A
:class:`SyntheticFaceSample` adds to a :class:`~aware3d.data.synthetic.SyntheticSample` (whose ``identity`` /
``expression`` hold the 80 / 64 coefficients and ``light_dir`` the direction of the light's linear band,
world frame):

* ``texture`` (80,), ``lighting`` (27,), ``face_pose`` (6,) (camera-relative: 3 Euler angles in radians,
  translation in model units) and ``coefficients`` (257,) in Deep3DFaceRecon's order;
* ``landmarks`` (68, 2): the iBUG-68 landmark vertices projected into the image, in pixels with the centre
  of pixel (row i, column j) at (x, y) = (j, i) (:func:`~aware3d.rendering.rasterize.project_points`);
  ``landmark_visible`` (68,) bool: in the image and not occluded (hidden landmarks are still projected);
  ``landmarks_3d`` (68, 3) world positions;
* ``coverage`` (1, H, W): the fraction of each pixel the face covers (the image is
  ``coverage * face + (1 - coverage) * background``, so backgrounds can be swapped exactly).

Images. Colours are the model's per-vertex shaded colours (albedo x SH irradiance, clamped to [0, 1])
interpolated over the triangles; with ``supersample`` s > 1 the *image* is rendered at s times the
resolution and box-filtered (for the ``pixel_centers`` grid the s x s sub-pixels are centred on the pixel),
while depth (distance along the ray, 0 on background), normals (world, unit, 0 on background) and mask stay
exact at the pixel-centre rays.

Determinism: item ``i`` draws from ``torch.Generator().manual_seed(seed * 1_000_003 + i)`` in the order
pose, lighting, identity, expression, texture, background; meshes are evaluated item by item and the
rasteriser is per-pixel elementwise, so an item is bit-identical in any batch or order.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ...cameras.poses import PoseDistribution, pigan_to_epigraf
from ...cameras.rays import Cameras, PixelGrid
from ...checks import AT_LEAST_ONE, FOV_DEGREES, NON_NEGATIVE, POSITIVE, SEED, check_config
from ...faces.layout import DEEP3D_CAMERA_DISTANCE
from ...faces.model import FACE_MODEL_ENV, FaceCoefficients, MorphableFaceModel, euler_rotation, load_face_model
from ...faces.statistics import CoefficientStatistics
from ...rendering.rasterize import Fragments, interpolate, project_points, rasterize, visible_points
from .dataset import _SEED_STRIDE, SyntheticDataset, SyntheticSample
from .scenes import sample_background

__all__ = ["CELEBA_POSE", "IBUG_MIRROR", "FaceRender", "SyntheticFaceConfig", "SyntheticFaceDataset",
           "SyntheticFaceSample", "camera_relative_pose", "euler_angles", "mirror_landmarks", "render_faces",
           "resolve_face_model"]

CELEBA_POSE = PoseDistribution("gaussian", math.pi / 2, math.pi / 2, 0.3, 0.155, 1.0)
"""CGOF's / pi-GAN's CelebA camera prior (pi-GAN angles): the cameras of ``synthetic-heads`` too."""

IBUG_MIRROR: tuple[int, ...] = (
    *range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, 35, 34, 33, 32, 31,
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65)
"""iBUG-68 left-right permutation: landmark ``k`` of a mirrored face is landmark ``IBUG_MIRROR[k]`` of the
original (jaw, brows, nostrils, eyes and mouth swap sides; the midline maps to itself)."""


@dataclass(frozen=True)
class SyntheticFaceConfig:
    """What a :class:`SyntheticFaceDataset` generates (the ``synthetic-faces`` preset is the default)."""

    kind: Literal["faces"] = "faces"
    """Scene family (always "faces": the synthetic-data adapters read it)."""
    resolution: int = 64
    """Image height = width in pixels."""
    seed: int = 0
    """Dataset seed; item i uses torch.Generator().manual_seed(seed * 1_000_003 + i)."""
    length: int = 10000
    """Number of items (any index in [0, length) is valid; items are rendered on access)."""
    face_model: str | None = None
    """The face model: a Deep3DFaceRecon BFM_model_front.mat path or "synthetic"; None: $AWARE3D_FACE_MODEL if
    set, else the built-in synthetic model (resolved when the dataset is opened)."""
    fov_deg: float = 12.0
    """Full field of view in degrees (CGOF / pi-GAN CelebA)."""
    pose: PoseDistribution = CELEBA_POSE
    """Camera distribution in pi-GAN angles (CGOF's CelebA prior)."""
    background: Literal["random", "white", "black"] = "random"
    """Background: "random" (a grey with a slight tint per item, as synthetic-heads), "white" or "black"."""
    identity_std: float = 1.0
    """Std of the identity coefficients (the bases are scaled so N(0, 1) gives plausible faces)."""
    jaw_std: float = 1.0
    """Std of expression component 0 (the synthetic model's jaw_open, the BFM's mouth opening), drawn folded
    to >= 0 (a half-normal of mean 0.8 std: the mouth from closed to wide open)."""
    expression_std: float = 0.5
    """Std of expression components 1..63 (smaller than the jaw's, as real faces' expression codes are)."""
    texture_std: float = 0.7
    """Std of the texture coefficients (below 1: the synthetic model's skin-tint components at 2 std turn
    faces green or purple)."""
    light_ambient_std: float = 0.1
    """Std of the shared SH band 0 (brightness) around the default 0.8."""
    light_linear_std: float = 0.15
    """Std of each shared SH band 1..3 (the light's direction and strength)."""
    light_quadratic_std: float = 0.05
    """Std of each shared SH band 4..8."""
    light_colour_std: float = 0.03
    """Std of each channel's deviation from the shared light (a tint)."""
    supersample: int = 2
    """Image-only supersampling factor (1: none); depth, normals, mask and landmarks are pixel-centre exact."""
    grid: PixelGrid = "pixel_centers"
    """Pixel-centre convention of the rays (see aware3d.cameras.rays)."""
    landmark_tolerance_px: float = 1.5
    """A landmark is occluded when the depth at its pixel is nearer than its distance by more than this many
    pixel footprints (at the camera's distance from the origin)."""

    def __post_init__(self) -> None:
        if self.kind != "faces":
            raise ValueError(f"SyntheticFaceConfig.kind must be 'faces', got {self.kind!r}")
        if self.background not in ("random", "white", "black"):
            raise ValueError(f"unknown background {self.background!r}; valid: random, white, black")
        check_config(self, {"resolution": AT_LEAST_ONE, "seed": SEED, "length": NON_NEGATIVE, "fov_deg": FOV_DEGREES,
                            "identity_std": NON_NEGATIVE, "jaw_std": NON_NEGATIVE, "expression_std": NON_NEGATIVE, "texture_std": NON_NEGATIVE,
                            "light_ambient_std": NON_NEGATIVE, "light_linear_std": NON_NEGATIVE,
                            "light_quadratic_std": NON_NEGATIVE, "light_colour_std": NON_NEGATIVE,
                            "supersample": AT_LEAST_ONE, "landmark_tolerance_px": POSITIVE})


@dataclass
class SyntheticFaceSample(SyntheticSample):
    """A :class:`SyntheticSample` of ``synthetic-faces`` with the face model's ground truth (module docstring).

    ``identity`` (80,) / ``expression`` (64,) are the face coefficients; per item:
    """

    texture: Tensor
    """(80,) albedo coefficients."""
    lighting: Tensor
    """(27,) SH lighting, channel-major, camera-aligned frame (added to the model's default light)."""
    face_pose: Tensor
    """(6,) the face seen from the camera: Euler angles (pitch, yaw, roll; radians), translation (model units)."""
    coefficients: Tensor
    """(257,) Deep3DFaceRecon's vector: id 80, exp 64, tex 80, angles 3, gamma 27, trans 3."""
    landmarks: Tensor
    """(68, 2) iBUG-68 landmarks in pixels, centre of pixel (row i, column j) at (j, i)."""
    landmark_visible: Tensor
    """(68,) bool: inside the image and not occluded."""
    landmarks_3d: Tensor
    """(68, 3) landmark positions, world frame."""
    coverage: Tensor
    """(1, H, W) fraction of each pixel the face covers (image = coverage * face + (1 - coverage) * background)."""


@dataclass
class FaceRender:
    """What :func:`render_faces` returns (B faces)."""

    image: Tensor
    """(B, 3, H, W) in [-1, 1]."""
    depth: Tensor
    """(B, 1, H, W) distance along the unit ray from the camera centre, world units; 0 on background."""
    normals: Tensor
    """(B, 3, H, W) world-frame unit normals (interpolated vertex normals); 0 on background."""
    mask: Tensor
    """(B, 1, H, W) float in {0, 1}."""
    coverage: Tensor
    """(B, 1, H, W) fraction of the pixel's sub-pixels the face covers (the mask without supersampling): the
    image is ``coverage * face + (1 - coverage) * background``, so the background can be swapped exactly."""
    coefficients: FaceCoefficients
    """The camera-relative (Deep3DFaceRecon) coefficients the image shows."""
    landmarks: Tensor
    """(B, 68, 2) pixels, centre of pixel (row i, column j) at (j, i)."""
    landmark_visible: Tensor
    """(B, 68) bool."""
    landmarks_3d: Tensor
    """(B, 68, 3) world frame."""
    vertices: Tensor
    """(B, V, 3) the rendered mesh, world frame."""
    light_dir: Tensor
    """(B, 3) unit direction toward the light's linear band, world frame ((0, 0, 1) seen from the camera when
    the linear band is zero)."""
    cameras: Cameras
    """The B cameras rendered from (in the model's dtype)."""


# ------------------------------------------------------------------------------------------ geometry

_OPENCV_FRONTAL = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
"""cam2world rotation of the frontal camera (on +z looking toward -z, image up = world +y)."""


def euler_angles(rotation: Tensor) -> Tensor:
    """(B, 3) angles (a, b, c) with ``euler_rotation(angles) == rotation`` for (B, 3, 3) rotations
    (``Rz(c) Ry(b) Rx(a)``; b in [-pi/2, pi/2], a and c in (-pi, pi])."""
    r = rotation
    a = torch.atan2(r[:, 2, 1], r[:, 2, 2])
    b = torch.atan2(-r[:, 2, 0], torch.sqrt(r[:, 0, 0] ** 2 + r[:, 1, 0] ** 2))
    c = torch.atan2(r[:, 1, 0], r[:, 0, 0])
    return torch.stack([a, b, c], -1)


def _deep3d_camera(cameras: Cameras, scale: float, offset: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(C (B, 3, 3), origin (B, 3), D (3,)): the world motion taking the frontal Deep3DFaceRecon camera at D
    (10 model units in front of the model origin) onto each camera: a world point p is seen as the
    frontal camera sees ``q = C^T (p - origin) + D``."""
    rot = cameras.cam2world[:, :3, :3]
    C = rot @ _OPENCV_FRONTAL.to(rot)
    D = offset + torch.tensor([0.0, 0.0, scale * DEEP3D_CAMERA_DISTANCE], dtype=rot.dtype, device=rot.device)
    return C, cameras.cam2world[:, :3, 3], D


def camera_relative_pose(world_pose: Tensor, cameras: Cameras, scale: float,
                         offset: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Tensor:
    """(B, 6) Deep3DFaceRecon pose (angles, translation in model units) of a face whose *world* pose is
    ``world_pose`` (B, 6) (zero: the canonical face at the origin), seen from ``cameras``.

    With ``R = C^T R_w`` and ``scale * t = C^T (scale * t_w + offset - origin) + D - offset`` the frontal
    camera sees the posed face exactly as the camera sees the world face (see :func:`_deep3d_camera`).
    """
    off = torch.tensor(offset, dtype=world_pose.dtype, device=world_pose.device)
    C, origin, D = _deep3d_camera(cameras.to(dtype=world_pose.dtype), scale, off)
    Ct = C.transpose(1, 2)
    rotation = Ct @ euler_rotation(world_pose[:, :3])
    moved = scale * world_pose[:, 3:] + off - origin
    translation = ((Ct @ moved[..., None])[..., 0] + D - off) / scale
    return torch.cat([euler_angles(rotation), translation], -1)


def _linear_light_direction(lighting: Tensor) -> Tensor:
    """(B, 3) unit direction of the SH linear band (channel mean) in the lighting's frame: the band's
    irradiance is ``sqrt(pi) n . (-g3, -g1, g2)``; (0, 0, 1) where the band is zero."""
    g = lighting.reshape(-1, 3, 9).mean(1)
    d = torch.stack([-g[:, 3], -g[:, 1], g[:, 2]], -1)
    n = torch.linalg.norm(d, dim=-1, keepdim=True)
    frontal = torch.tensor([0.0, 0.0, 1.0], dtype=d.dtype, device=d.device).expand_as(d)
    return torch.where(n > 1e-12, d / n.clamp_min(1e-12), frontal)


def _world_item(model: MorphableFaceModel, coefficients: FaceCoefficients, camera: Cameras
                ) -> tuple[FaceCoefficients, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """One face (batch 1): (camera-relative coefficients, world vertices, world normals, colours, world
    landmarks, world light direction)."""
    frame = model.frame
    pose = camera_relative_pose(coefficients.pose, camera, frame.scale, frame.offset)
    relative = replace(coefficients, pose=pose)
    mesh = model(relative)
    off = torch.tensor(frame.offset, dtype=pose.dtype, device=pose.device)
    C, origin, D = _deep3d_camera(camera.to(dtype=pose.dtype), frame.scale, off)

    def to_world(q: Tensor) -> Tensor:
        return (q - D) @ C.transpose(1, 2) + origin[:, None]

    light = (_linear_light_direction(coefficients.lighting)[:, None] @ C.transpose(1, 2))[:, 0]
    return (relative, to_world(mesh.vertices), mesh.normals @ C.transpose(1, 2), mesh.colour.clamp(0, 1),
            to_world(mesh.landmarks), light)


def _images(vertices: Tensor, colours: Tensor, triangles: Tensor, cameras: Cameras, background: Tensor,
            height: int, supersample: int, grid: PixelGrid, fragments: Fragments) -> tuple[Tensor, Tensor]:
    """(image (B, 3, H, W) in [-1, 1], coverage (B, 1, H, W)): interpolated colours over the background,
    box-filtered from s x s sub-pixels."""
    if supersample > 1:
        fragments = rasterize(vertices, triangles, cameras, height * supersample, grid=grid)
    rgb = interpolate(fragments, colours, triangles)
    rgb = torch.where(fragments.mask[..., None], rgb, background[:, None, None, :].to(rgb))
    rgb = rgb.permute(0, 3, 1, 2)
    coverage = fragments.mask[:, None].to(rgb.dtype)
    if supersample > 1:
        rgb, coverage = F.avg_pool2d(rgb, supersample), F.avg_pool2d(coverage, supersample)
    return rgb * 2 - 1, coverage


def render_faces(model: MorphableFaceModel, coefficients: FaceCoefficients, cameras: Cameras, background: Tensor,
                 height: int, *, supersample: int = 2, grid: PixelGrid = "pixel_centers",
                 landmark_tolerance_px: float = 1.5) -> FaceRender:
    """Render B faces from B cameras (conventions in the module docstring).

    Args:
        model: the face model (its dtype is used throughout; cameras are converted to it).
        coefficients: B faces; ``pose`` is the face's pose in the *world* (zero: canonical at the origin, as
            in the dataset), ``lighting`` acts in the camera-aligned frame; the other groups as usual.
        cameras: B cameras (or 1, shared); background: (B, 3) or (3,) RGB in [0, 1]; height: pixels (square).
        supersample, grid, landmark_tolerance_px: see :class:`SyntheticFaceConfig`.
    """
    B = coefficients.batch_size
    dtype = model.mean_shape.dtype
    cameras = cameras.to(dtype=dtype)
    if len(cameras) == 1 and B > 1:
        cameras = Cameras(cameras.cam2world.expand(B, 4, 4), cameras.intrinsics.expand(B, 3, 3))
    items = [_world_item(model, _row(coefficients, b), cameras[b]) for b in range(B)]  # per item: batch-stable
    relative = FaceCoefficients(**{n: torch.cat([getattr(i[0], n) for i in items]) for n in _GROUP_NAMES})
    vertices, normals, colours, landmarks, light = (torch.cat([i[k] for i in items]) for k in range(1, 6))
    triangles = model.triangles
    fragments = rasterize(vertices, triangles, cameras, height, grid=grid)
    mask = fragments.mask[:, None].to(dtype)
    n_map = F.normalize(interpolate(fragments, normals, triangles), dim=-1).permute(0, 3, 1, 2) * mask
    background = background.reshape(-1, 3).expand(B, 3).to(dtype)
    image, coverage = _images(vertices, colours, triangles, cameras, background, height, supersample, grid, fragments)
    xy, _ = project_points(landmarks, cameras, height, height, grid)
    footprint = float(cameras.origins.norm(dim=-1).max()) / (float(cameras.intrinsics[:, 0, 0].min()) * height)
    visible = visible_points(landmarks, fragments, cameras, height, height, landmark_tolerance_px * footprint)
    return FaceRender(image=image, depth=fragments.depth[:, None], normals=n_map, mask=mask, coverage=coverage,
                      coefficients=relative,
                      landmarks=xy, landmark_visible=visible, landmarks_3d=landmarks, vertices=vertices,
                      light_dir=light, cameras=cameras)


_GROUP_NAMES = ("identity", "expression", "texture", "lighting", "pose")


def _row(c: FaceCoefficients, b: int) -> FaceCoefficients:
    return FaceCoefficients(**{n: getattr(c, n)[b:b + 1] for n in _GROUP_NAMES})


def mirror_landmarks(landmarks: Tensor, width: int) -> Tensor:
    """(..., 68, 2) pixel landmarks of an image flipped left-right: x -> W - 1 - x, sides swapped
    (:data:`IBUG_MIRROR`)."""
    flipped = landmarks[..., list(IBUG_MIRROR), :].clone()
    flipped[..., 0] = (width - 1) - flipped[..., 0]
    return flipped


# ------------------------------------------------------------------------------------------ draws

def _draw_lighting(cfg: SyntheticFaceConfig, g: torch.Generator) -> Tensor:
    """(27,) SH lighting: a shared 9-band light (ambient, linear, quadratic stds) plus a per-channel tint."""
    stds = torch.tensor([cfg.light_ambient_std] + [cfg.light_linear_std] * 3 + [cfg.light_quadratic_std] * 5)
    shared = torch.randn(9, generator=g) * stds
    tint = torch.randn(3, 9, generator=g) * cfg.light_colour_std
    return (shared[None] + tint).reshape(27)


def _draw_codes(cfg: SyntheticFaceConfig, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """(identity (80,), expression (64,) with the jaw folded to >= 0, texture (80,))."""
    identity = torch.randn(80, generator=g) * cfg.identity_std
    unit = torch.randn(64, generator=g)
    expression = torch.cat([unit[:1].abs() * cfg.jaw_std, unit[1:] * cfg.expression_std])
    texture = torch.randn(80, generator=g) * cfg.texture_std
    return identity, expression, texture


def resolve_face_model(face_model: str | os.PathLike | None) -> str:
    """The face model a dataset uses: the path given, else ``$AWARE3D_FACE_MODEL``, else "synthetic"."""
    if face_model is None:
        face_model = os.environ.get(FACE_MODEL_ENV) or "synthetic"
    return str(face_model)


# ------------------------------------------------------------------------------------------ dataset

class SyntheticFaceDataset(SyntheticDataset):
    """``synthetic-faces``: the face model rasterised under random coefficients (module docstring).

    ``dataset[i]`` / :meth:`get_batch` return :class:`SyntheticFaceSample`; :meth:`render` renders any
    coefficients from any cameras with the dataset's settings; :meth:`coefficient_statistics` fits whitening
    statistics to the dataset's own draws.
    """

    def __init__(self, name_or_config: str | SyntheticFaceConfig = "synthetic-faces", resolution: int | None = None,
                 length: int | None = None, seed: int | None = None, face_model: str | None = None) -> None:
        super().__init__(name_or_config, resolution=resolution, length=length, seed=seed)
        if not isinstance(self.config, SyntheticFaceConfig):
            raise TypeError(f"SyntheticFaceDataset needs a SyntheticFaceConfig, got {type(self.config).__name__}")
        self.config: SyntheticFaceConfig = replace(
            self.config, face_model=resolve_face_model(face_model if face_model is not None else self.config.face_model))
        self.model = MorphableFaceModel(load_face_model(self.config.face_model))

    def sample_params(self, index: int) -> dict[str, Tensor]:
        """Parameters of item ``index`` (no rendering): yaw, pitch (scalars), lighting (27,), identity (80,),
        expression (64,), texture (80,), background (3,) drawn in this order; then the camera-relative
        face_pose (6,), coefficients (257,) and light_dir (3,, world) they imply, and index."""
        index = self._check(index)
        cfg = self.config
        g = torch.Generator().manual_seed(cfg.seed * _SEED_STRIDE + index)
        yaw, pitch = cfg.pose.sample(1, generator=g)
        lighting = _draw_lighting(cfg, g)
        identity, expression, texture = _draw_codes(cfg, g)
        background = sample_background(cfg.background, g)
        camera = Cameras.from_angles(yaw, pitch, cfg.fov_deg, cfg.pose.radius)
        frame = self.model.frame
        pose = camera_relative_pose(torch.zeros(1, 6), camera, frame.scale, frame.offset)[0]
        C, _, _ = _deep3d_camera(camera, frame.scale, torch.tensor(frame.offset))
        light = (_linear_light_direction(lighting[None]) @ C.transpose(1, 2))[0, 0]
        coefficients = FaceCoefficients(identity[None], expression[None], texture[None], lighting[None], pose[None])
        return dict(yaw=yaw[0], pitch=pitch[0], lighting=lighting, identity=identity, expression=expression,
                    texture=texture, background=background, face_pose=pose,
                    coefficients=coefficients.to_vector()[0], light_dir=light, index=torch.tensor(index))

    def _render_items(self, params: list[dict[str, Tensor]]) -> tuple[Cameras, FaceRender]:
        cfg = self.config
        cams = Cameras.cat([Cameras.from_angles(p["yaw"], p["pitch"], cfg.fov_deg, cfg.pose.radius) for p in params])
        st = {k: torch.stack([p[k] for p in params]) for k in ("identity", "expression", "texture", "lighting")}
        dtype = self.model.mean_shape.dtype
        codes = FaceCoefficients(**{k: v.to(dtype) for k, v in st.items()}, pose=torch.zeros(len(params), 6, dtype=dtype))
        background = torch.stack([p["background"] for p in params])
        return cams, self.render(codes, cams, background)

    def get_batch(self, indices: Sequence[int]) -> SyntheticFaceSample:
        """Render items ``indices``; a :class:`SyntheticFaceSample` with a leading batch dim."""
        params = [self.sample_params(i) for i in indices]
        if not params:
            raise ValueError("get_batch needs at least one index")
        st = {k: torch.stack([p[k] for p in params]) for k in params[0]}
        cams, out = self._render_items(params)
        return SyntheticFaceSample(
            image=out.image.float(), depth=out.depth.float(), normals=out.normals.float(), mask=out.mask.float(),
            cam2world=cams.cam2world, intrinsics=cams.intrinsics, angles=torch.stack([st["yaw"], st["pitch"]], -1),
            camera_angles=pigan_to_epigraf(st["yaw"], st["pitch"]), eg3d_label=cams.eg3d_label(),
            light_dir=st["light_dir"], identity=st["identity"], expression=st["expression"],
            background=st["background"], index=st["index"], texture=st["texture"], lighting=st["lighting"],
            face_pose=st["face_pose"], coefficients=st["coefficients"], landmarks=out.landmarks.float(),
            landmark_visible=out.landmark_visible, landmarks_3d=out.landmarks_3d.float(), coverage=out.coverage.float())

    def render(self, coefficients: FaceCoefficients, cameras: Cameras, background: Tensor | None = None,
               resolution: int | None = None) -> FaceRender:
        """Render any coefficients (``pose`` = the world pose, zero for the dataset's canonical face) from any
        cameras with the dataset's settings; ``background`` defaults to mid grey (white / black for those
        modes). See :func:`render_faces`."""
        cfg = self.config
        if background is None:
            background = torch.full((3,), {"white": 1.0, "black": 0.0}.get(cfg.background, 0.5))
        return render_faces(self.model, coefficients.to(self.model.mean_shape.dtype), cameras, background,
                            resolution or cfg.resolution, supersample=cfg.supersample, grid=cfg.grid,
                            landmark_tolerance_px=cfg.landmark_tolerance_px)

    def coefficient_statistics(self, count: int = 4096, start: int = 0, jitter: float = 1e-6) -> CoefficientStatistics:
        """Whitening statistics fitted to the coefficients of items ``[start, start + count)`` (no rendering)."""
        if count < 2:
            raise ValueError(f"coefficient statistics need at least 2 items, got count={count}")
        table = torch.stack([self.sample_params(i)["coefficients"] for i in range(start, start + count)])
        return CoefficientStatistics.fit(table.to(torch.float64), jitter)

    def __repr__(self) -> str:
        c = self.config
        return (f"SyntheticFaceDataset(face_model={c.face_model!r}, resolution={c.resolution}, length={c.length}, "
                f"seed={c.seed})")

