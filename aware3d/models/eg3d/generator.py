"""The EG3D generator: camera-conditioned mapping -> StyleGAN2 tri-planes -> decoder + shared volume
renderer -> super-resolution.

Two APIs side by side:

* ours (what the shared tools call): ``mapping(z, psi, cameras=...)`` and
  ``synthesis(ws, cameras, resolution=..., render=..., ...) -> EG3DOutput`` (a :class:`GeneratorOutput`);
* EG3D's: ``G.mapping(z, c, truncation_psi=..., truncation_cutoff=...)`` with ``c`` a (B, 25) label, and
  ``G.synthesis(ws, c, neural_rendering_resolution=...)`` whose result also answers ``out["image"]``,
  ``out["image_raw"]`` and ``out["image_depth"]``.

A class-conditional model (``config.num_classes`` K > 0) maps z with the label [camera label (25), one-hot
class (K)] through the mapping's embedding layer, as StyleGAN2-ADA's conditional models; it needs
``condition=Condition(class_label=...)`` ((B,) or (1,) integers in [0, K)) and an unconditional one refuses it.

Tri-planes can be cached while only the camera changes: ``planes = G.planes(ws)`` then
``G.render_planes(planes, ws, cameras)`` for each view. Nothing is stored on the module as a side effect
(the official ``synthesis`` stores the neural rendering resolution; here it is only ever an argument).

Camera helpers: :meth:`EG3DGenerator.cameras` takes pi-GAN angles (the shared tools' convention, frontal
= (pi/2, pi/2)); :func:`eg3d_lookat_cameras` reproduces EG3D's ``LookAtPoseSampler`` (yaw/pitch offsets,
positive yaw moves the camera toward +x, pitch mapped through arccos) bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ...cameras import Cameras, camera_origin_from_angles, look_at
from ...rendering import RandomDraws, RenderConfig, density_normals, render_rays
from ..base import Capabilities, Condition, Generator3D, GeneratorOutput, expand_latent
from ...inversion.space import LatentSpace, SynthesisLatent, style_groups, style_ws
from ...nn.stylegan2.networks import StyleGAN2Backbone
from ...nn.triplane import TriPlaneDecoder, sample_from_planes, triplane_field
from .config import EG3DConfig, NoiseMode
from .superresolution import SuperResolution
from .rays import eg3d_rays


@dataclass
class EG3DOutput(GeneratorOutput):
    """One batch of EG3D renders. ``image`` is the super-resolved image (B, 3, S, S) (not clamped; a
    trained model gives about [-1, 1]); depth, opacity, normals, ``image_raw`` and ``features`` are at the
    neural rendering resolution R. Depth is the expected distance along the ray divided by the opacity,
    clamped to the range of all sample distances of the batch (EG3D's convention)."""

    features: Tensor | None = None
    """(B, C, R, R) the composited feature image fed to the super-resolution, in [-1, 1]."""

    _EG3D_KEYS = {"image": "image", "image_raw": "image_raw", "image_depth": "depth"}

    def __getitem__(self, key: str) -> Tensor:
        """EG3D's dict keys: 'image', 'image_raw', 'image_depth'."""
        if key not in self._EG3D_KEYS:
            raise KeyError(f"{key!r}; EG3D outputs are {', '.join(self._EG3D_KEYS)}")
        return getattr(self, self._EG3D_KEYS[key])


def eg3d_focal(fov_deg: float) -> float:
    """EG3D's ``FOV_to_intrinsics`` focal length (normalised): ``1 / (tan(fov * 3.14159 / 360) * 1.414)``.

    The rounded pi and sqrt(2) are the official ones (18.837 degrees -> 4.263391).
    """
    return float(1 / (math.tan(fov_deg * 3.14159 / 360) * 1.414))


def eg3d_intrinsics(focal: float, batch: int = 1, device=None) -> Tensor:
    """(B, 3, 3) ``[[f, 0, 0.5], [0, f, 0.5], [0, 0, 1]]``."""
    K = torch.tensor([[focal, 0, 0.5], [0, focal, 0.5], [0, 0, 1]], dtype=torch.float32, device=device)
    return K.expand(batch, 3, 3).clone()


def check_class_label(label: Tensor, num_classes: int) -> None:
    """Raise a clear error unless ``label`` holds integer classes in [0, num_classes) of a class-conditional model."""
    if num_classes == 0:
        raise ValueError("this EG3D model is not class-conditional (num_classes 0): drop the class label (--class), "
                         "or train a class-conditional one (--override model.num_classes=K discriminator.num_classes=K)")
    if label.is_floating_point() or label.is_complex():
        raise ValueError(f"class labels must be integer indices, got a {label.dtype} tensor")
    bad = label[(label < 0) | (label >= num_classes)]
    if bad.numel():
        raise ValueError(f"class label {int(bad.reshape(-1)[0])} is out of range: this EG3D model has {num_classes} "
                         f"classes (labels 0..{num_classes - 1})")


def class_one_hot(label: Tensor, num_classes: int, batch: int) -> Tensor:
    """(B, num_classes) float32 one-hot rows of the classes ``label`` ((B,) or (1,) integers in [0, num_classes))."""
    check_class_label(label, num_classes)
    label = label.reshape(-1).to(torch.int64)
    if label.numel() == 1 and batch > 1:
        label = label.expand(batch)
    if label.numel() != batch:
        raise ValueError(f"{label.numel()} class labels for {batch} latents; pass one or {batch}")
    return F.one_hot(label, num_classes).to(torch.float32)


def _normalize(v: Tensor) -> Tensor:
    return v / torch.norm(v, dim=-1, keepdim=True)


def eg3d_lookat_cameras(yaw: float | Sequence[float], pitch: float | Sequence[float], radius: float = 2.7,
                        pivot: Sequence[float] = (0.0, 0.0, 0.2), focal: float = 4.2647, device=None) -> Cameras:
    """Cameras as EG3D's scripts make them: ``LookAtPoseSampler.sample(pi/2 + yaw, pi/2 + pitch, pivot, radius)``.

    The camera sits at ``radius * (sin(phi) cos(pi - theta), cos(phi), sin(phi) sin(pi - theta))`` with
    ``theta = pi/2 + yaw`` and ``phi = arccos(1 - 2 (pi/2 + pitch) / pi)`` on a sphere around the world
    origin, looking at ``pivot``. Same float32 arithmetic as the official sampler (bitwise-equal labels).
    """
    yaw_l = [float(v) for v in (yaw if isinstance(yaw, (list, tuple)) else [yaw])]
    pitch_l = [float(v) for v in (pitch if isinstance(pitch, (list, tuple)) else [pitch])]
    if len(yaw_l) != len(pitch_l):
        if len(yaw_l) == 1:
            yaw_l = yaw_l * len(pitch_l)
        elif len(pitch_l) == 1:
            pitch_l = pitch_l * len(yaw_l)
        else:
            raise ValueError(f"yaw and pitch lists differ in length ({len(yaw_l)} vs {len(pitch_l)})")
    theta = torch.tensor([[math.pi / 2 + y] for y in yaw_l], dtype=torch.float32, device=device)
    v = torch.tensor([[math.pi / 2 + p] for p in pitch_l], dtype=torch.float32, device=device)
    v = torch.clamp(v, 1e-5, math.pi - 1e-5) / math.pi
    phi = torch.arccos(1 - 2 * v)
    origin = torch.zeros(len(yaw_l), 3, device=device)
    origin[:, 0:1] = radius * torch.sin(phi) * torch.cos(math.pi - theta)
    origin[:, 2:3] = radius * torch.sin(phi) * torch.sin(math.pi - theta)
    origin[:, 1:2] = radius * torch.cos(phi)
    target = torch.tensor(list(pivot), dtype=torch.float32, device=device)
    forward = _normalize(_normalize(target - origin))
    up = torch.tensor([0, 1, 0], dtype=torch.float32, device=device).expand_as(forward)
    right = -_normalize(torch.cross(up, forward, dim=-1))
    down = _normalize(torch.cross(forward, right, dim=-1))
    c2w = torch.eye(4, device=device).unsqueeze(0).repeat(len(yaw_l), 1, 1)
    c2w[:, :3, :3] = torch.stack((right, down, forward), dim=-1)
    c2w[:, :3, 3] = origin
    return Cameras(c2w, eg3d_intrinsics(focal, len(yaw_l), device))


def camera_matrices(cameras: Cameras | Tensor) -> tuple[Tensor, Tensor]:
    """(cam2world (B, 4, 4), intrinsics (B, 3, 3)) from :class:`Cameras` or EG3D (B, 25) labels."""
    if isinstance(cameras, Cameras):
        return cameras.cam2world, cameras.intrinsics
    if isinstance(cameras, Tensor) and cameras.ndim == 2 and cameras.shape[1] == 25:
        return cameras[:, :16].reshape(-1, 4, 4), cameras[:, 16:25].reshape(-1, 3, 3)
    shape = tuple(cameras.shape) if isinstance(cameras, Tensor) else type(cameras).__name__
    raise ValueError(f"cameras must be a Cameras batch or a (B, 25) EG3D label tensor, got {shape}")


class EG3DGenerator(Generator3D):
    """z + camera label -> ws (B, num_ws, w_dim) -> tri-planes -> neural rendering -> super-resolved image."""

    family = "eg3d"
    # The mapping network's running mean is updated in training (update_emas=True). Class labels condition the
    # class-conditional models (num_classes > 0); an unconditional one refuses them naming num_classes.
    capabilities = Capabilities(plane_cache=True, tracks_w_avg=True, raw_image=True, conditions=("class_label",))

    def __init__(self, config: EG3DConfig = EG3DConfig()):
        super().__init__()
        self.config = config
        self.z_dim = config.z_dim
        C = config.plane_channels
        self.backbone = StyleGAN2Backbone(
            config.z_dim, config.c_dim + config.num_classes, config.w_dim, config.plane_resolution, 3 * C, config.mapping_layers,
            config.mapping_lr_mul, config.w_avg_beta, config.channel_base, config.channel_max, config.num_fp16_res,
            config.conv_clamp, config.fused_modconv)
        self.decoder = TriPlaneDecoder(C, config.decoder_hidden, config.decoder_output_dim, config.decoder_lr_mul)
        self.superresolution = SuperResolution(
            config.sr_module, config.decoder_output_dim, config.img_resolution, config.w_dim, config.sr_num_fp16_res,
            config.sr_antialias, config.sr_channels, config.fused_modconv)
        # Per-dimension std of the training labels (registered by the official training loop; kept for import).
        self.register_buffer("dataset_label_std", torch.zeros(config.c_dim))

    def image_resolution(self, render_resolution: int) -> int:
        """The super-resolution always outputs ``config.img_resolution``."""
        return self.config.img_resolution

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def num_ws(self) -> int:
        return self.backbone.num_ws

    @property
    def w_avg(self) -> Tensor:
        """(w_dim,) the truncation centre."""
        return self.backbone.mapping.w_avg

    # -- cameras --------------------------------------------------------------------------------------
    def focal(self, fov_scale: float = 1.0) -> float:
        """Normalised focal length of the model's cameras; ``fov_scale`` > 1 widens the view."""
        cfg = self.config
        if cfg.focal is not None:
            return cfg.focal / fov_scale
        return eg3d_focal(cfg.fov_deg * fov_scale)

    def cameras(self, yaw, pitch, fov_scale: float = 1.0) -> Cameras:
        """Cameras from pi-GAN angles (radians, frontal = (pi/2, pi/2)) at ``camera_radius`` around the origin,
        looking at ``camera_pivot`` (EG3D's look-at convention)."""
        yaw = torch.as_tensor(yaw, dtype=torch.float32, device=self.device).reshape(-1)
        pitch = torch.as_tensor(pitch, dtype=torch.float32, device=self.device).reshape(-1)
        yaw, pitch = torch.broadcast_tensors(yaw, pitch)
        origin = camera_origin_from_angles(yaw, pitch, self.config.camera_radius)
        target = torch.tensor(self.config.camera_pivot, dtype=torch.float32, device=self.device).expand_as(origin)
        return Cameras(look_at(origin, target), eg3d_intrinsics(self.focal(fov_scale), len(yaw), self.device))

    def default_conditioning(self, batch: int) -> Tensor:
        """(B, 25) label of the frontal camera, as ``gen_samples.py`` conditions the mapping network."""
        cfg = self.config
        cams = eg3d_lookat_cameras(0.0, 0.0, cfg.camera_radius, cfg.camera_pivot, self.focal(), device=self.device)
        return cams.eg3d_label().expand(batch, -1)

    def conditioning_label(self, cameras: Cameras | Tensor | None, batch: int) -> Tensor:
        """The (B, c_dim) label fed to the mapping network (zeros / scaled as the config says)."""
        if self.config.c_dim == 0:
            return torch.zeros(batch, 0, device=self.device)
        if cameras is None:
            c = self.default_conditioning(batch)
        elif isinstance(cameras, Cameras):
            c = cameras.eg3d_label()
        elif isinstance(cameras, Tensor):
            c = cameras
        else:
            raise ValueError(f"conditioning must be Cameras or a (B, {self.config.c_dim}) tensor, "
                             f"got {type(cameras).__name__}")
        if c.ndim != 2 or c.shape[1] != self.config.c_dim:
            raise ValueError(f"the conditioning label must be (B, {self.config.c_dim}), got {tuple(c.shape)}")
        if c.shape[0] == 1 and batch > 1:
            c = c.expand(batch, -1)
        if c.shape[0] != batch:
            raise ValueError(f"{c.shape[0]} conditioning cameras for {batch} latents; pass one or {batch}")
        if self.config.c_gen_conditioning_zero:
            c = torch.zeros_like(c)
        return c * self.config.c_scale

    def check_condition(self, condition: Condition | None) -> None:
        """Refuse undeclared kinds, a class label for an unconditional model and labels outside [0, num_classes)."""
        super().check_condition(condition)
        if condition is not None and condition.class_label is not None:
            check_class_label(condition.class_label, self.config.num_classes)

    def mapping_label(self, cameras: Cameras | Tensor | None, condition: Condition | None, batch: int) -> Tensor:
        """(B, c_dim + num_classes) the mapping network's label: the camera label (zeroed / scaled as the config
        says), then, for a class-conditional model, the one-hot class of ``condition`` (StyleGAN2-ADA's layout)."""
        camera = self.conditioning_label(cameras, batch)
        classes = self.config.num_classes
        if classes == 0:
            return camera
        label = None if condition is None else condition.class_label
        if label is None:
            raise ValueError(f"this EG3D model is class-conditional ({classes} classes): pass a class label "
                             f"(--class N, or condition=Condition(class_label=...)) in [0, {classes})")
        return torch.cat([camera, class_one_hot(label.to(camera.device), classes, batch)], 1)

    # -- mapping ----------------------------------------------------------------------------------------
    def mapping(self, z: Tensor, *args, truncation_psi: float | None = None, cameras: Cameras | Tensor | None = None,
                c: Tensor | None = None, truncation_cutoff: int | None = None, update_emas: bool = False,
                condition: Condition | None = None) -> Tensor:
        """z (B, z_dim) -> ws (B, num_ws, w_dim).

        Accepts our order ``mapping(z, psi, cameras)`` and EG3D's ``mapping(z, c, truncation_psi=...)``: a
        positional number is psi, a positional :class:`Cameras` or (B, 25) tensor is the conditioning camera.
        Without a camera the frontal one is used (as ``gen_samples.py``). ``truncation_cutoff`` truncates only
        the first ws (default ``config.truncation_cutoff``, None = all). ``condition``: see
        :class:`~aware3d.models.base.Condition` (the class label of a class-conditional model).
        """
        self.check_condition(condition)
        if len(args) > 2:
            raise TypeError(f"mapping takes z and at most two positional arguments (psi, cameras), got {len(args)}")
        for a in args:
            if isinstance(a, (Cameras, Tensor)):
                if cameras is not None or c is not None:
                    raise TypeError("the conditioning camera was given twice")
                cameras = a
            elif isinstance(a, (int, float)):
                if truncation_psi is not None:
                    raise TypeError("truncation_psi was given twice")
                truncation_psi = float(a)
            elif a is not None:
                raise TypeError(f"unexpected positional argument of type {type(a).__name__}")
        if c is not None:
            if cameras is not None:
                raise TypeError("pass either cameras or c, not both")
            cameras = c
        psi = 1.0 if truncation_psi is None else truncation_psi
        cutoff = self.config.truncation_cutoff if truncation_cutoff is None else truncation_cutoff
        label = self.mapping_label(cameras, condition, z.shape[0])
        return self.backbone.mapping(z, label, truncation_psi=psi, truncation_cutoff=cutoff, update_emas=update_emas)

    @torch.no_grad()
    def update_w_avg(self, num_samples: int | None = None, seed: int = 0, batch: int = 1000) -> Tensor:
        """Set ``w_avg`` to the mean w of ``num_samples`` z (fixed ``seed``) under the frontal conditioning
        (for fresh models; imported ones keep the average tracked in training)."""
        n = num_samples or self.config.w_avg_samples
        g = torch.Generator().manual_seed(seed)
        total = torch.zeros(self.config.w_dim, dtype=torch.float64)
        for s in range(0, n, batch):
            z = torch.randn(min(batch, n - s), self.z_dim, generator=g).to(self.device)
            condition = None
            if self.config.num_classes > 0:  # uniformly random classes (the dataset's frequencies are unknown here)
                condition = Condition(class_label=torch.randint(0, self.config.num_classes, (z.shape[0],), generator=g))
            ws = self.backbone.mapping(z, self.mapping_label(None, condition, z.shape[0]))
            total += ws[:, 0].double().sum(0).cpu()
        self.w_avg.copy_((total / n).to(self.w_avg))
        return self.w_avg

    @torch.no_grad()
    def inversion_space(self, num_samples: int = 1000, seed: int = 0) -> LatentSpace:
        """W then W+: one w shared by every layer from ``w_avg``, then per-layer offsets, with the spread of
        ``num_samples`` mapped z (seeded; frontal conditioning, uniform classes for a class-conditional model).
        The class acts through ws, so the composed latent carries no condition."""
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(num_samples, self.z_dim, generator=g).to(self.device)
        condition = None
        if self.config.num_classes > 0:
            condition = Condition(class_label=torch.randint(0, self.config.num_classes, (num_samples,), generator=g))
        ws = self.backbone.mapping(z, self.mapping_label(None, condition, num_samples))
        return LatentSpace(style_groups(self.w_avg, ws[:, 0], self.num_ws), lambda v: SynthesisLatent(style_ws(v)))

    # -- tri-planes -------------------------------------------------------------------------------------
    def _noise_mode(self, noise_mode: NoiseMode | None) -> NoiseMode:
        # Training uses random noise (the official default); evaluation a reproducible one.
        if noise_mode is not None:
            return noise_mode
        return "random" if self.training else self.config.eval_noise_mode

    def planes(self, ws: Tensor, noise_mode: NoiseMode | None = None, generator: torch.Generator | None = None) -> Tensor:
        """ws (B, num_ws, w_dim) -> tri-planes (B, 3, plane_channels, plane_resolution, plane_resolution)."""
        img = self.backbone.synthesis(ws, noise_mode=self._noise_mode(noise_mode), generator=generator)
        return img.reshape(img.shape[0], 3, self.config.plane_channels, img.shape[-2], img.shape[-1])

    def field_fn(self, planes: Tensor):
        """The shared renderer's field callback over ``planes``."""
        return triplane_field(planes, self.decoder, self.config.box_warp, self.config.plane_axes)

    def sample_planes(self, planes: Tensor, points: Tensor) -> tuple[Tensor, Tensor]:
        """(colour features (B, N, C), raw sigma (B, N, 1)) at world points (B, N, 3) (EG3D's run_model)."""
        return self.decoder(sample_from_planes(planes, points, self.config.box_warp, self.config.plane_axes))

    def density(self, w: Tensor) -> Callable[[Tensor], Tensor]:
        planes = self.planes(w)
        return lambda points: self.sample_planes(expand_latent(planes, points.shape[0]), points)[1][..., 0]

    def color(self, w: Tensor) -> Callable[[Tensor], Tensor]:
        planes = self.planes(w)
        return lambda points: self.sample_planes(expand_latent(planes, points.shape[0]), points)[0][..., :3]

    # -- rendering --------------------------------------------------------------------------------------
    def render_planes(self, planes: Tensor, ws: Tensor, cameras: Cameras | Tensor, *, resolution: int | None = None,
                      render: RenderConfig | None = None, generator: torch.Generator | None = None,
                      draws: RandomDraws | None = None, normals: bool = False, superresolution: bool = True,
                      sr_noise_mode: NoiseMode | None = None, condition: Condition | None = None) -> EG3DOutput:
        """Render cached ``planes`` (B or 1, ...) from B cameras; ``ws`` drives the super-resolution.

        Args:
            resolution: neural rendering resolution R (default ``config.neural_rendering_resolution``).
            render: sampling settings (default ``config.render``; the tools pass ``eval_render``).
            generator, draws: randomness of the renderer (jitter and importance uniforms, (B, R*R, S) each).
            normals: also return normals (negative density gradient at the depth point).
            superresolution: False skips the super-resolution (``image`` is then ``image_raw``).
            condition: see :class:`~aware3d.models.base.Condition` (checked only: the class acts through ws).
        """
        self.check_condition(condition)
        cam2world, K = camera_matrices(cameras)
        B = cam2world.shape[0]
        planes, ws = expand_latent(planes, B), expand_latent(ws, B)
        R = resolution or self.config.neural_rendering_resolution
        cfg = render or self.config.render
        rays_o, rays_d = eg3d_rays(cam2world, K, R)
        out = render_rays(self.field_fn(planes), rays_o, rays_d, cfg, generator=generator, draws=draws, grid=(R, R))
        # EG3D clamps depth to the range of *all* sample distances in the batch; an empty ray (weight 0)
        # gets the maximum.
        t = out.t
        depth = torch.where(out.opacity == 0, t.max(), out.depth).clamp(t.min(), t.max())

        def to_image(x: Tensor) -> Tensor:
            return x.permute(0, 2, 1).reshape(B, x.shape[-1], R, R).contiguous()

        feature_image = to_image(out.features * 2 - 1)
        image_raw = feature_image[:, :3]
        if superresolution:
            mode = sr_noise_mode or self.config.sr_noise_mode
            image, raw_alias = self.superresolution(image_raw, feature_image, ws, noise_mode=mode, generator=generator)
            if raw_alias is not None:
                image_raw = raw_alias
        else:
            image = image_raw
        normal_map = None
        if normals:
            points = rays_o + rays_d * out.surface_depth[..., None]
            n = density_normals(lambda p: self.sample_planes(planes, p)[1][..., 0], points,
                                chunk=cfg.max_points or points.shape[1])
            normal_map = to_image(n * (out.opacity[..., None] > 1e-3))
        return EG3DOutput(image=image, depth=to_image(depth[..., None]), opacity=to_image(out.opacity[..., None]),
                          normals=normal_map, image_raw=image_raw, features=feature_image,
                          surface_depth=to_image(out.surface_depth[..., None]))

    def synthesis(self, ws: Tensor, cameras: Cameras | Tensor, *, resolution: int | None = None,
                  neural_rendering_resolution: int | None = None, render: RenderConfig | None = None,
                  noise_mode: NoiseMode | None = None, lock_view_dependence: bool = False, normals: bool = False,
                  generator: torch.Generator | None = None, draws: RandomDraws | None = None, fast: bool = False,
                  superresolution: bool = True, condition: Condition | None = None) -> EG3DOutput:
        """Render ws (B or 1, num_ws, w_dim) from B cameras (or (B, 25) labels).

        ``resolution`` / ``neural_rendering_resolution`` (aliases) set the raw rendering size; the final image
        is always ``config.img_resolution``. ``noise_mode`` is the backbone noise (default: random in training,
        ``config.eval_noise_mode`` in eval). ``lock_view_dependence`` and ``fast`` are accepted for the shared
        tools and have no effect (the decoder ignores view directions; there is no separate fast path).
        """
        if resolution is not None and neural_rendering_resolution is not None and resolution != neural_rendering_resolution:
            raise ValueError("resolution and neural_rendering_resolution disagree; pass one of them")
        R = resolution or neural_rendering_resolution
        B = camera_matrices(cameras)[0].shape[0]
        ws = expand_latent(ws, B)
        return self.render_planes(self.planes(ws, noise_mode, generator), ws, cameras, resolution=R, render=render,
                                  generator=generator, draws=draws, normals=normals, superresolution=superresolution,
                                  condition=condition)

    def forward(self, z: Tensor, cameras: Cameras | Tensor, *, truncation_psi: float = 1.0,
                condition: Condition | None = None, **kwargs) -> EG3DOutput:
        """Official forward: condition on the rendering cameras, then render from them."""
        return self.synthesis(self.mapping(z, truncation_psi, cameras, condition=condition), cameras,
                              condition=condition, **kwargs)

