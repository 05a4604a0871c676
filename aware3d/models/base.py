"""What every family's generator returns and offers to the shared tools."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, ClassVar, Literal

import torch
from torch import Tensor, nn

from ..cameras import Cameras

if TYPE_CHECKING:
    from ..faces import FaceCoefficients
    from ..inversion.space import LatentSpace
    from ..rendering import RenderConfig
    from ..rendering.bands import SurfaceBands
    from .light_prior import LightPrior


ConditionKind = Literal["light", "face", "class_label"]
"""Kinds of condition a family may accept besides z and the camera (see :class:`Condition`)."""


@dataclass(frozen=True)
class Condition:
    """What a generator is conditioned on besides z and the camera. Each field is optional; a family declares
    the kinds it accepts in :attr:`Capabilities.conditions`, and :meth:`Generator3D.check_condition` refuses
    any other. Tensors have the batch first (one row per latent, or one row for all)."""

    light: Tensor | None = None
    """(B, 4) light code (ambient, diffuse, dx, dy) as ShadeGAN draws it."""
    face: Tensor | None = None
    """(B, D) morphable-face-model code (identity, expression, texture, lighting) as the family lays it out."""
    class_label: Tensor | None = None
    """(B,) int64 class index (the dataset's ``dataset.json`` classes)."""

    def kinds(self) -> tuple[ConditionKind, ...]:
        """The kinds this condition sets."""
        return tuple(k for k in ("light", "face", "class_label") if getattr(self, k) is not None)

    def to(self, device) -> "Condition":
        return Condition(*(None if v is None else v.to(device) for v in (self.light, self.face, self.class_label)))

    def rows(self, index) -> "Condition":
        """The rows ``index`` (a slice or index tensor) of every set field (one-row fields are kept whole)."""
        def take(v: Tensor | None) -> Tensor | None:
            return None if v is None or len(v) == 1 else v[index]
        return Condition(take(self.light), take(self.face), take(self.class_label))


@dataclass(frozen=True)
class FaceCodeLayout:
    """Where each factor lies in a family's face code (:attr:`Condition.face`, (B, D)): slices of its last dim."""

    identity: slice
    """The identity (shape) coefficients."""
    expression: slice
    """The expression coefficients."""
    texture: slice
    """The albedo (texture) coefficients."""
    lighting: slice
    """The lighting (e.g. spherical-harmonics) coefficients."""
    dim: int
    """D, the size of the whole face code."""


@dataclass
class FaceRenders:
    """The conditioning renders of B face codes from B cameras at H x W pixels (the mesh the codes build)."""

    mesh_depth: Tensor
    """(B, 1, H, W) distance along each pixel's ray to the mesh, world units; 0 off the mask."""
    mask: Tensor
    """(B, 1, H, W) float in {0, 1}: the pixels the face covers."""
    shaded: Tensor
    """(B, 3, H, W) the shaded mesh in [-1, 1], black off the mesh."""
    landmarks: Tensor
    """(B, 68, 2) landmark pixels, centre of pixel (row i, column j) at (j, i)."""


@dataclass(frozen=True)
class Capabilities:
    """What a family's generator offers beyond the base contract (declared, never probed)."""

    plane_cache: bool = False
    """``planes(w)`` computes the camera-independent part once and ``render_planes(planes, w, cameras, ...)``
    renders any camera from it (EG3D's tri-planes)."""
    tracks_w_avg: bool = False
    """Training itself tracks the truncation centre (EG3D's mapping network); else :meth:`update_w_avg`
    sets it from random latents (fresh and exported models)."""
    raw_image: bool = False
    """The output carries ``image_raw``, the volume-rendered image before super-resolution, at the neural
    rendering resolution (depth, opacity and normals are at that resolution too), and
    ``synthesis(..., superresolution=False)`` skips the super-resolution (``image`` is then ``image_raw``)."""
    normals: bool = True
    """``synthesis(..., normals=True)`` returns normal maps (the family has a density)."""
    conditions: tuple[ConditionKind, ...] = ()
    """The condition kinds ``mapping``/``synthesis`` accept (see :class:`Condition`)."""
    surface_band: bool = False
    """``synthesis(..., delta=)`` takes the width (world units) of a band around a predicted surface that
    the rays sample instead of [near, far] (ShadeGAN's surface tracker; <= 0: the full ray)."""
    separate_background: bool = False
    """The family can render a background model behind the foreground, and ``synthesis(..., ignore_bg=True)``
    (``render_planes`` too, with ``plane_cache``) renders the foreground alone, composited over
    ``render.background`` instead; a model built without a background model renders the same either way."""


@dataclass
class GeneratorOutput:
    """One batch of renders. Images are (B, C, H, W) with row 0 at the top. Optional maps are None when the
    family does not produce them (see :class:`Capabilities`) or they were not requested."""

    image: Tensor
    """(B, 3, H, W) colour in [-1, 1]."""
    depth: Tensor
    """(B, 1, H, W) distance along each pixel's ray, world units (the family's depth convention)."""
    opacity: Tensor
    """(B, 1, H, W) accumulated alpha in [0, 1]."""
    normals: Tensor | None = None
    """(B, 3, H, W) world-space unit normals (only when requested)."""
    surface_depth: Tensor | None = None
    """(B, 1, H, W) the surface distance along each ray (rendering.surface_depth): normalised unfilled weights,
    far on empty rays."""
    image_raw: Tensor | None = None
    """(B, 3, R, R) the volume-rendered image before super-resolution, in [-1, 1] (``raw_image`` families)."""
    maps: dict[str, Tensor] = field(default_factory=dict)
    """Further named per-pixel maps a family renders (e.g. ``albedo``, ``shading``), each (B, C, H, W)."""


class Generator3D(nn.Module, abc.ABC):
    """Base class of the families' generators: z (and camera, and condition) -> w -> render.

    Subclasses implement :meth:`mapping`, :meth:`synthesis`, :meth:`density`, :meth:`color`,
    :meth:`update_w_avg` (:meth:`eval_render_config` reads ``config.eval_render``), set :attr:`family` and
    :attr:`capabilities`, and keep their config in ``self.config``: a dataclass with at least the fields of
    :data:`aware3d.models.registry.REQUIRED_CONFIG_FIELDS` (``z_dim``, ``fov_deg``, ``pose``
    (:class:`PoseDistribution`), ``render`` / ``eval_render`` (:class:`RenderConfig`),
    ``eval_truncation_psi``, ``shape_half_extent``), checked when the family registers.
    """

    family: ClassVar[str] = ""
    """The registry name, as written in checkpoints."""
    capabilities: ClassVar[Capabilities] = Capabilities()
    """What this family offers beyond the base contract."""
    z_dim: int
    preset: str | None = None
    """The preset this model was built from or imported as (recorded in checkpoints and tool JSONs)."""
    source: dict | None = None
    """Where the weights came from (e.g. the official files imported), recorded in checkpoints."""

    def check_condition(self, condition: Condition | None) -> None:
        """Raise a clear error when ``condition`` sets a kind this family does not accept."""
        if condition is None:
            return
        extra = [k for k in condition.kinds() if k not in self.capabilities.conditions]
        if extra:
            accepted = ", ".join(self.capabilities.conditions) or "none"
            raise ValueError(f"the {self.family} generator takes no {', '.join(extra)} condition "
                             f"(it accepts: {accepted})")

    @abc.abstractmethod
    def mapping(self, z: Tensor, truncation_psi: float = 1.0, cameras: Cameras | None = None,
                condition: Condition | None = None) -> Tensor:
        """z (B, z_dim) -> the family's latent w; psi < 1 truncates toward the mean w."""

    @abc.abstractmethod
    def synthesis(self, w: Tensor, cameras: Cameras, *, condition: Condition | None = None,
                  **kwargs) -> GeneratorOutput:
        """Render latents w from cameras. Every family accepts ``condition``, ``resolution``, ``render``,
        ``lock_view_dependence``, ``normals``, ``generator``, ``draws`` and ``fast`` (inference-only kernels
        that may round differently from the reference path); families with ``capabilities.separate_background``
        also ``ignore_bg``."""

    @abc.abstractmethod
    def density(self, w: Tensor) -> Callable[[Tensor], Tensor]:
        """A function mapping (B, N, 3) world points to (B, N) raw density for latent ``w``."""

    def rendered_density(self, w: Tensor) -> Callable[[Tensor], Tensor]:
        """:meth:`density` in the units the tools render with: times ``config.eval_render.density_scale``, so
        that a mesh's iso level means the same density the pictures show (the scale is 1 in the seeds)."""
        density, scale = self.density(w), self.config.eval_render.density_scale
        return density if scale == 1.0 else (lambda points: density(points) * scale)

    @abc.abstractmethod
    def color(self, w: Tensor) -> Callable[[Tensor], Tensor]:
        """A function mapping (B, N, 3) world points to (B, N, 3) colour in [0, 1] (for mesh vertex colours)."""

    @abc.abstractmethod
    def update_w_avg(self, *args, **kwargs) -> Tensor:
        """Recompute the truncation centre from random latents (fresh and imported models)."""

    def eval_render_config(self, num_samples: int | None = None, fast: "bool | SurfaceBands" = False,
                           **changes) -> "RenderConfig":
        """The tools' render settings (``config.eval_render``) with the coarse and fine sample counts set to
        ``num_samples`` if given (the fine ones only where the config importance-samples), the fast mode's
        band sampling if ``fast`` (True: :class:`~aware3d.rendering.bands.SurfaceBands`' defaults; or the
        bands to use), then ``changes``."""
        from ..rendering.bands import SurfaceBands

        cfg = self.config.eval_render
        if num_samples is not None:
            changes.update(num_samples=num_samples, num_importance=num_samples if cfg.num_importance else 0)
        if fast:
            changes.setdefault("bands", fast if isinstance(fast, SurfaceBands) else SurfaceBands())
        return replace(cfg, **changes)

    def image_resolution(self, render_resolution: int) -> int:
        """Side of ``image`` when rendering at ``render_resolution``: the same, unless the family super-resolves."""
        return render_resolution

    def forward(self, z: Tensor, cameras: Cameras, *, truncation_psi: float = 1.0, condition: Condition | None = None,
                **kwargs) -> GeneratorOutput:
        w = self.mapping(z, truncation_psi, cameras=cameras, condition=condition)
        return self.synthesis(w, cameras, condition=condition, **kwargs)

    # Shared conveniences -------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def num_classes(self) -> int:
        """Classes a class-conditional model takes (``Condition.class_label`` in 0..K-1); 0: not class-conditional
        (a family whose capabilities include ``class_label`` overrides it from its config)."""
        return 0

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Standard normal latents (n, z_dim) on the model's device."""
        return torch.randn(n, self.z_dim, generator=generator).to(self.device)

    def z_from_seeds(self, seeds: list[int]) -> Tensor:
        """One latent per integer seed: the same seed always gives the same z (CPU generator)."""
        return torch.cat([torch.randn(1, self.z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]).to(self.device)

    def cameras(self, yaw, pitch, fov_scale: float = 1.0) -> Cameras:
        """Cameras in pi-GAN angles at the model's radius and fov (``fov_scale`` zooms)."""
        cfg = self.config
        return Cameras.from_angles(yaw, pitch, cfg.fov_deg * fov_scale, radius=cfg.pose.radius, device=self.device)

    def sample_cameras(self, n: int, generator: torch.Generator | None = None) -> Cameras:
        """n cameras from the model's training pose distribution."""
        yaw, pitch = self.config.pose.sample(n, generator=generator)
        return self.cameras(yaw, pitch)

    # Lights and shapes: defaults that families override ------------------------------------------
    # A family whose capabilities.conditions include "light" overrides relight_codes, light_path,
    # set_light_prior and relight_maps; the others keep these defaults, which refuse with the reason.
    def _no_light(self, what: str) -> ValueError:
        accepted = ", ".join(self.capabilities.conditions) or "none"
        return ValueError(f"the {self.family} generator takes no light condition (it accepts: {accepted}), so it "
                          f"has no {what}")

    def relight_codes(self) -> Tensor:
        """(L, 4) light codes of the family's official relighting set (``aware3d render --relight``), on the
        model's device. Default: a ValueError (no light condition)."""
        raise self._no_light("relighting set")

    def light_path(self, frames: int) -> Tensor:
        """(frames, 4) light codes of a looping relighting sweep (``aware3d video --light-path``), on the model's
        device. Default: a ValueError (no light condition)."""
        raise self._no_light("light path")

    def set_light_prior(self, prior: "LightPrior") -> None:
        """Replace the multivariate normal the family draws training light codes from (kept in the weights, so
        saved checkpoints carry it). Default: a ValueError (no light condition)."""
        raise self._no_light("light prior")

    def relight_maps(self, out: GeneratorOutput, condition: Condition, render: "RenderConfig") -> dict[str, Tensor]:
        """The lighting maps ``aware3d render --relight`` saves for ``out`` (rendered under ``condition`` with
        ``render``), by name, each (B, 1 or 3, H, W) in [0, 1] for display. Default: none."""
        return {}

    def inversion_space(self, num_samples: int = 1000, seed: int = 0) -> "LatentSpace":
        """The latent ``aware3d invert`` optimises (:class:`~aware3d.inversion.space.LatentSpace`): named groups
        starting at the family's mean latent with the spread of ``num_samples`` mapped z (drawn from ``seed``),
        and how they compose into ``synthesis``' latent and condition. Default: a ValueError (none declared)."""
        raise ValueError(f"the {self.family} family declares no inversion space (Generator3D.inversion_space), so "
                         "aware3d invert cannot invert its models")

    # Faces: defaults that families override ------------------------------------------------------
    # A family whose capabilities.conditions include "face" overrides face_code_layout, face_code and face_renders.
    def face_code_layout(self) -> FaceCodeLayout | None:
        """Where identity / expression / texture / lighting lie in this family's face code; None: no face condition."""
        return None

    def face_code(self, z: Tensor) -> Tensor:
        """(B, D) the face code latents z (B, z_dim) carry (what ``Condition(face=...)`` replaces). Default: a
        ValueError (no face condition)."""
        raise ValueError(f"the {self.family} generator takes no face condition, so its latents carry no face code")

    def face_code_of(self, coefficients: "FaceCoefficients") -> Tensor:
        """(B, D) the face code of face-model coefficients (e.g. a face regressor's reading of a picture), as
        ``Condition(face=...)`` takes it. Default: a ValueError (no face condition)."""
        raise ValueError(f"the {self.family} generator takes no face condition, so coefficients have no face code")

    def face_renders(self, code: Tensor, cameras: Cameras, resolution: int) -> FaceRenders:
        """The conditioning renders (:class:`FaceRenders`) of face codes (B, D) from B cameras. Default: a
        ValueError (no face condition)."""
        raise ValueError(f"the {self.family} generator takes no face condition, so it has no conditioning mesh")

    def shape_level(self) -> float | str:
        """Iso level ``aware3d shapes`` meshes at when ``--level`` is not given, in raw density or as a percentile
        of the sampled volume ('p97.5'): 10 (pi-GAN's ``extract_shapes.py --sigma_threshold``); a family
        overrides it from its config."""
        return 10.0


def expand_latent(w: Tensor, batch: int) -> Tensor:
    """Broadcast a (1, ...) latent to ``batch`` rows; a (batch, ...) latent passes through."""
    if w.shape[0] == batch:
        return w
    if w.shape[0] == 1:
        return w.expand(batch, *w.shape[1:])
    raise ValueError(f"latent batch {w.shape[0]} does not match {batch} cameras")


__all__ = ["Capabilities", "Condition", "ConditionKind", "FaceCodeLayout", "FaceRenders", "GeneratorOutput",
           "Generator3D", "expand_latent"]
