"""The synthetic datasets: :class:`SyntheticConfig` presets and :class:`SyntheticDataset`, which draws each
item's parameters from its own seeded generator and renders them (see :mod:`aware3d.data.synthetic` for
the conventions of a :class:`SyntheticSample`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Literal, Sequence

import torch
from torch import Tensor

from ...cameras.poses import PoseDistribution, pigan_to_epigraf
from ...cameras.rays import Cameras, PixelGrid
from .render import RenderResult, render_scene
from .scenes import (
    head_scene, object_scene, render_head, render_object, sample_background, sample_head_params, sample_light,
    sample_object_params,
)

__all__ = ["SYNTHETIC_DATASETS", "SyntheticConfig", "SyntheticDataset", "SyntheticSample", "make_synthetic"]

_SEED_STRIDE = 1_000_003
"""Per-item generator seed = dataset seed * stride + index (a prime, so nearby seeds do not collide)."""



@dataclass
class SyntheticSample:
    """One item (no batch dim) or a batch (leading dim B) of a :class:`SyntheticDataset`.

    Shapes below are per item. See the module docstring for every convention.
    """

    image: Tensor
    """(3, H, W) float in [-1, 1]."""
    depth: Tensor
    """(1, H, W) distance along the unit ray from the camera, world units; 0 on background."""
    normals: Tensor
    """(3, H, W) world-space unit outward normals; 0 on background."""
    mask: Tensor
    """(1, H, W) float foreground mask in {0, 1}."""
    cam2world: Tensor
    """(4, 4) OpenCV camera-to-world."""
    intrinsics: Tensor
    """(3, 3) normalised intrinsics."""
    angles: Tensor
    """(2,) pi-GAN (yaw, pitch), radians; frontal (pi/2, pi/2)."""
    camera_angles: Tensor
    """(3,) EpiGRAF [yaw, pitch, roll] = [yaw - pi/2, pitch, 0] (the official convention, pitch from +y)."""
    eg3d_label: Tensor
    """(25,) EG3D label: flattened cam2world + flattened intrinsics."""
    light_dir: Tensor
    """(3,) unit vector toward the light, world frame."""
    identity: Tensor
    """(D_id,) shape/appearance parameters (:data:`HEAD_IDENTITY_NAMES` or :data:`OBJECT_IDENTITY_NAMES`)."""
    expression: Tensor
    """(D_expr,) expression parameters (:data:`HEAD_EXPRESSION_NAMES`; empty for objects)."""
    background: Tensor
    """(3,) background RGB in [0, 1]."""
    index: Tensor
    """() int64 dataset index."""

    def to(self, *args, **kwargs) -> "SyntheticSample":
        """Move every tensor (``Tensor.to`` arguments)."""
        return type(self)(**{f.name: getattr(self, f.name).to(*args, **kwargs) for f in fields(self)})

    def __getitem__(self, i: int) -> "SyntheticSample":
        """Item ``i`` of a batched sample."""
        return type(self)(**{f.name: getattr(self, f.name)[i] for f in fields(self)})

    @staticmethod
    def collate(samples: Sequence["SyntheticSample"]) -> "SyntheticSample":
        """Stack items into a batch (``collate_fn`` for a ``torch.utils.data.DataLoader``); the items' class
        (a subclass such as the faces' sample) is kept."""
        kind = type(samples[0])
        return kind(**{f.name: torch.stack([getattr(s, f.name) for s in samples]) for f in fields(kind)})


_KIND_DEFAULTS = {
    "heads": dict(fov_deg=12.0, background="random",
                  pose=PoseDistribution("gaussian", math.pi / 2, math.pi / 2, 0.3, 0.155, 1.0)),
    "objects": dict(fov_deg=30.0, background="white",
                    pose=PoseDistribution("spherical_uniform", math.pi / 2, math.pi / 4 * 85 / 90, math.pi,
                                          math.pi / 4 * 85 / 90, 1.0)),
}


@dataclass(frozen=True)
class SyntheticConfig:
    """What a :class:`SyntheticDataset` generates. Fields left None take the kind's default."""

    kind: Literal["heads", "objects"]
    """Scene family: "heads" (faces toward +z) or "objects" (cars, front toward +x)."""
    resolution: int = 64
    """Image height = width in pixels."""
    seed: int = 0
    """Dataset seed; item i uses torch.Generator().manual_seed(seed * 1_000_003 + i)."""
    length: int = 10000
    """Number of items (any index in [0, length) is valid; items are generated on access)."""
    fov_deg: float | None = None
    """Full field of view in degrees (heads 12, objects 30)."""
    pose: PoseDistribution | None = None
    """Camera distribution in pi-GAN angles (heads: pi-GAN CelebA gaussian; objects: pi-GAN CARLA)."""
    background: Literal["random", "white", "black"] | None = None
    """Background: "random" (uniform random grey with a slight tint per sample; heads), "white" (objects)
    or "black"."""
    ambient: float = 0.35
    """Ambient shading weight."""
    diffuse: float = 0.75
    """Lambertian shading weight (image = albedo * (ambient + diffuse * max(0, n.l)), clamped to 1)."""
    antialias: bool = True
    """Supersample the image (only) at material edges; depth/normals/mask stay pixel-centre exact."""
    grid: PixelGrid = "pixel_centers"
    """Pixel-centre convention of the rays (see aware3d.cameras.rays)."""

    def __post_init__(self) -> None:
        if self.kind not in _KIND_DEFAULTS:
            raise ValueError(f"unknown synthetic kind {self.kind!r}; valid: {', '.join(_KIND_DEFAULTS)}")
        for name, value in _KIND_DEFAULTS[self.kind].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.background not in ("random", "white", "black"):
            raise ValueError(f"unknown background {self.background!r}; valid: random, white, black")
        if self.resolution < 1 or self.length < 0:
            raise ValueError(f"resolution must be >= 1 and length >= 0, got {self.resolution}, {self.length}")


SYNTHETIC_DATASETS: dict[str, SyntheticConfig] = {
    "synthetic-heads": SyntheticConfig(kind="heads"),
    "synthetic-objects": SyntheticConfig(kind="objects"),
}
"""Presets: face-like heads (pi-GAN CelebA cameras), toy cars (pi-GAN CARLA cameras) and, added at the end of
this module, ``synthetic-faces`` (the morphable face model rasterised, :mod:`.faces`)."""


def _resolve(name: str) -> SyntheticConfig:
    if name not in SYNTHETIC_DATASETS:
        raise KeyError(f"unknown synthetic dataset {name!r}; valid: {', '.join(sorted(SYNTHETIC_DATASETS))}")
    return SYNTHETIC_DATASETS[name]


class SyntheticDataset(torch.utils.data.Dataset):
    """Procedurally generated 3D dataset with exact ground truth; items are rendered on access.

    ``dataset[i]`` returns a :class:`SyntheticSample` without batch dim; :meth:`get_batch` renders many
    items at once (the fast path: vectorised ray casting) with the same values bit for bit.
    """

    def __init__(self, name_or_config: str | SyntheticConfig, resolution: int | None = None,
                 length: int | None = None, seed: int | None = None) -> None:
        config = _resolve(name_or_config) if isinstance(name_or_config, str) else name_or_config
        if type(self) is SyntheticDataset and not isinstance(config, SyntheticConfig):
            raise TypeError(f"{name_or_config!r} is not a heads/objects config: open it with make_synthetic(...) "
                            f"(it picks {type(config).__name__}'s dataset class)")
        overrides = {k: v for k, v in dict(resolution=resolution, length=length, seed=seed).items() if v is not None}
        self.config: SyntheticConfig = replace(config, **overrides)

    @property
    def pose_distribution(self) -> PoseDistribution:
        """Camera distribution (pi-GAN angles) the items are drawn from."""
        return self.config.pose

    @property
    def fov_deg(self) -> float:
        """Full field of view in degrees."""
        return self.config.fov_deg

    @property
    def resolution(self) -> int:
        return self.config.resolution

    def __len__(self) -> int:
        return self.config.length

    def __getitem__(self, index: int) -> SyntheticSample:
        return self.get_batch([index])[0]

    def _check(self, index: int) -> int:
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of length {len(self)}")
        return index

    def sample_params(self, index: int) -> dict[str, Tensor]:
        """Parameters of item ``index`` (no rendering): yaw, pitch (scalars), light_dir (3,), identity,
        expression, background (3,). Drawn from the item's own generator in this order."""
        index = self._check(index)
        cfg = self.config
        g = torch.Generator().manual_seed(cfg.seed * _SEED_STRIDE + index)
        yaw, pitch = cfg.pose.sample(1, generator=g)
        light = sample_light(cfg.kind, g)
        if cfg.kind == "heads":
            identity, expression = sample_head_params(g)
        else:
            identity, expression = sample_object_params(g)
        background = sample_background(cfg.background, g)
        return dict(yaw=yaw[0], pitch=pitch[0], light_dir=light, identity=identity, expression=expression,
                    background=background, index=torch.tensor(index))

    def cameras(self, indices: Sequence[int]) -> Cameras:
        """The cameras of items ``indices`` without rendering (the same as in :meth:`get_batch`)."""
        cfg = self.config
        params = [self.sample_params(i) for i in indices]
        return Cameras.cat([Cameras.from_angles(p["yaw"], p["pitch"], cfg.fov_deg, cfg.pose.radius) for p in params])

    def get_batch(self, indices: Sequence[int]) -> SyntheticSample:
        """Render items ``indices`` at once; returns a :class:`SyntheticSample` with a leading batch dim."""
        cfg = self.config
        params = [self.sample_params(i) for i in indices]
        if not params:
            raise ValueError("get_batch needs at least one index")
        st = {k: torch.stack([p[k] for p in params]) for k in params[0]}
        # Cameras are built per item so their trigonometry never depends on the batch (bit-stable items).
        cams = Cameras.cat([Cameras.from_angles(p["yaw"], p["pitch"], cfg.fov_deg, cfg.pose.radius) for p in params])
        if cfg.kind == "heads":
            scene = head_scene(st["identity"], st["expression"])
        else:
            scene = object_scene(st["identity"])
        out = render_scene(scene, cams, st["light_dir"], cfg.resolution, cfg.resolution, st["background"],
                           cfg.ambient, cfg.diffuse, cfg.antialias, cfg.grid)
        return SyntheticSample(
            image=out.image, depth=out.depth, normals=out.normals, mask=out.mask,
            cam2world=cams.cam2world, intrinsics=cams.intrinsics,
            angles=torch.stack([st["yaw"], st["pitch"]], -1),
            camera_angles=pigan_to_epigraf(st["yaw"], st["pitch"]),
            eg3d_label=cams.eg3d_label(), light_dir=st["light_dir"], identity=st["identity"],
            expression=st["expression"], background=st["background"], index=st["index"],
        )

    def render(self, identity: Tensor, expression: Tensor, cameras: Cameras, light_dir: Tensor,
               background: Tensor | None = None, resolution: int | None = None) -> RenderResult:
        """Render any parameters of this dataset's kind with its shading settings (morphable-model use).

        ``background`` (B, 3)/(3,) RGB in [0, 1] defaults to the config's (white / black; mid grey for
        "random", whose colour is per item: pass ``sample_params(i)["background"]`` to reproduce item i).
        """
        cfg = self.config
        res = resolution or cfg.resolution
        if background is None:
            background = torch.full((3,), {"white": 1.0, "black": 0.0}.get(cfg.background, 0.5))
        kw = dict(ambient=cfg.ambient, diffuse=cfg.diffuse, antialias=cfg.antialias, grid=cfg.grid)
        if cfg.kind == "heads":
            return render_head(identity, expression, cameras, light_dir, res, res, background, **kw)
        return render_object(identity, cameras, light_dir, res, res, background, **kw)

    def __repr__(self) -> str:
        c = self.config
        return f"SyntheticDataset(kind={c.kind!r}, resolution={c.resolution}, length={c.length}, seed={c.seed})"


def make_synthetic(name: str | SyntheticConfig, **overrides) -> SyntheticDataset:
    """A :class:`SyntheticDataset` from a preset name of :data:`SYNTHETIC_DATASETS` (or a config) with config
    overrides (any field of the preset's config, e.g. ``resolution=128, seed=3``). ``synthetic-faces`` (a
    :class:`~aware3d.data.synthetic.faces.SyntheticFaceConfig`) gives a
    :class:`~aware3d.data.synthetic.faces.SyntheticFaceDataset`."""
    config = replace(_resolve(name) if isinstance(name, str) else name, **overrides)
    if isinstance(config, SyntheticFaceConfig):
        return SyntheticFaceDataset(config)
    return SyntheticDataset(config)


# The faces' module subclasses SyntheticDataset / SyntheticSample above, so it is imported last (the package
# __init__ imports this module first, so every name faces.py takes from here exists by then).
from .faces import SyntheticFaceConfig, SyntheticFaceDataset  # noqa: E402

SYNTHETIC_DATASETS["synthetic-faces"] = SyntheticFaceConfig()
