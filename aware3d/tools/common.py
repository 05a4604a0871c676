"""Options and helpers shared by the tools."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..api import load
from ..checks import AT_LEAST_ONE, FINITE, NON_NEGATIVE, SEED, check_options, device_problem
from ..config import to_dict
from ..errors import OptionError
from ..models.base import Condition, Generator3D, GeneratorOutput
from ..nn.kernels import low_precision
from ..rendering.bands import SurfaceBands


@dataclass
class ModelOptions:
    """Which model to use and how to render it (shared by every tool)."""

    checkpoint: str = "pigan-celeba"
    """An aware3d checkpoint folder, a training run folder (its latest generator; see --best), an official
    checkpoint file of a registered family (pi-GAN generator.pth, EG3D .pkl, ...), or a preset name (fresh random
    init, e.g. pigan-tiny, eg3d-ffhq)."""
    best: str | None = None
    """With a training run folder as --checkpoint: its snapshot with the best recorded value of this metric
    (e.g. fid2k_full, fid2k_full@512, swd; lower is better unless the metric says otherwise)."""
    out: str = "out"
    """Output folder (created if missing)."""
    device: str = "cpu"
    """Torch device, e.g. cpu or cuda."""
    preset: str | None = None
    """For official files: the preset whose render and camera settings apply; needed when the file fits several
    (the error lists them, e.g. pigan-celeba or pigan-cats), else read from the file."""
    ema: bool = True
    """For official files: pi-GAN applies ema.pth from the same folder (as the official scripts do), EG3D takes
    G_ema from the pickle (--no-ema: the training copy G)."""
    init_seed: int = 0
    """For preset names: the seed of the random initialisation."""
    truncation_psi: float | None = None
    """Truncation psi in w space (1 = none); default: the model's evaluation value (pi-GAN 0.7)."""
    resolution: int | None = None
    """Output resolution in pixels (default: the model's)."""
    num_samples: int | None = None
    """Coarse (and fine) samples per ray (default: the model's evaluation setting)."""
    lock_view_dependence: bool = False
    """Ignore the view direction in the colour (steadier colours across views)."""
    fast: bool = False
    """Fast mode: sample each ray only in a band around the surface a sparse probe found, and compute in
    bfloat16 where the device does that fast (CPUs with AMX / AVX512-BF16, CUDA). Images differ from the
    exact mode by about 1e-2 mean absolute (per family: benchmarks/compare.py); meshes are unaffected."""
    fast_samples: list[int] | None = None
    """With --fast: stratified and importance samples per ray in each band (default 12 4). Fewer is faster and
    coarser: pigan-celeba at 128 px measured 3.1x the exact mode with 12 4, 4.2x with 8 4, 5.9x with 6 2."""
    light: list[float] | None = None
    """Light code (ambient diffuse dx dy) for families conditioned on a light (ShadeGAN); default: the model's."""
    delta: float | None = None
    """Band width (world units) around the tracked surface that rays sample, for families with a surface
    tracker (ShadeGAN; <= 0: the full ray [near, far]); default: the model's (the released models' value)."""
    class_label: int | None = field(default=None, metadata={"aliases": ("--class",)})
    """Class index for class-conditional models (labels of the training dataset.json)."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        check_options(self, MODEL_OPTION_RANGES)
        problem = device_problem(self.device)
        if problem:
            raise OptionError(problem)
        if self.fast_samples is not None:
            if not self.fast:
                raise OptionError("--fast-samples sets the fast mode's band samples: give it with --fast")
            if len(self.fast_samples) != 2 or self.fast_samples[0] < 2 or self.fast_samples[1] < 0:
                raise OptionError(f"--fast-samples takes two numbers, stratified (>= 2) and importance (>= 0) "
                                  f"samples per ray, e.g. --fast-samples 8 4; got {self.fast_samples}")


MODEL_OPTION_RANGES = {"init_seed": SEED, "truncation_psi": FINITE, "resolution": AT_LEAST_ONE,
                       "num_samples": AT_LEAST_ONE, "light": FINITE, "delta": FINITE, "class_label": NON_NEGATIVE}
"""The allowed range of each numeric option of :class:`ModelOptions` (checked on construction)."""


def load_model(opts: ModelOptions) -> Generator3D:
    return load(opts.checkpoint, device=opts.device, ema=opts.ema, preset=opts.preset, seed=opts.init_seed,
                best=opts.best)


def out_dir(opts: ModelOptions) -> Path:
    p = Path(opts.out)
    p.mkdir(parents=True, exist_ok=True)
    return p


def psi(G: Generator3D, opts: ModelOptions) -> float:
    return G.config.eval_truncation_psi if opts.truncation_psi is None else opts.truncation_psi


def tool_condition(G: Generator3D, opts: ModelOptions) -> Condition | None:
    """The condition the options ask for (one row, shared by every latent), or None; a kind the model does not
    take is refused here, before any rendering, with the kinds it accepts."""
    light = None
    if opts.light is not None:
        if len(opts.light) != 4:
            raise ValueError(f"--light takes 4 numbers (ambient diffuse dx dy), got {len(opts.light)}")
        light = torch.tensor([opts.light], dtype=torch.float32, device=G.device)
    label = None if opts.class_label is None else torch.tensor([opts.class_label], dtype=torch.int64, device=G.device)
    condition = Condition(light=light, class_label=label)
    if not condition.kinds():
        return None
    G.check_condition(condition)
    return condition


def tool_band(G: Generator3D, opts: ModelOptions) -> float | None:
    """The options' ``--delta``, or None; refused for a model without a surface band."""
    if opts.delta is not None and not G.capabilities.surface_band:
        raise ValueError(f"--delta sets the surface-tracking band, and this {G.family} model has no surface tracker; "
                         "drop --delta")
    return opts.delta


def require_condition(G: Generator3D, kind: str, flag: str) -> None:
    """Refuse ``flag`` (e.g. ``--relight``) unless ``G`` accepts condition ``kind``; the error names the
    registered families that do."""
    if kind in G.capabilities.conditions:
        return
    from ..models.registry import families

    takers = sorted(f.name for f in families().values() if kind in f.generator_cls.capabilities.conditions)
    accepted = ", ".join(G.capabilities.conditions) or "none"
    raise ValueError(f"{flag} needs a model conditioned on a {kind} (families: {', '.join(takers) or 'none registered'}"
                     f"); this {G.family} model accepts no {kind} condition (its conditions: {accepted})")


def with_light(condition: Condition | None, code: torch.Tensor) -> Condition:
    """``condition`` (or none) with its light replaced by ``code`` (4,) or (1, 4): one light for every latent."""
    light = code.reshape(1, 4)
    return Condition(light=light) if condition is None else replace(condition, light=light)


def map_seeds(G: Generator3D, opts: ModelOptions, seeds: list[int]) -> torch.Tensor:
    """w for one latent per seed, with the options' truncation and condition."""
    return G.mapping(G.z_from_seeds(seeds), psi(G, opts), condition=tool_condition(G, opts))


@dataclass(frozen=True)
class ToolLatents:
    """The latents a tool renders: one per seed, or the one of a ``--latent`` file (``aware3d invert``)."""

    w: torch.Tensor
    """The synthesis latents, one row per name."""
    names: list[str]
    """File stems, one per row: ``seed0000`` ..., or ``latent``."""
    condition: Condition | None
    """Their condition: the options' (``--light``, ``--class``), over the latent file's for the kinds not given."""
    centre: tuple[float, float] | None
    """pi-GAN (yaw, pitch) the ``--yaw`` / ``--pitch`` offsets start from: the latent file's view (None: the
    model's frontal pose)."""


def tool_latents(G: Generator3D, opts: ModelOptions, seeds: list[int], latent: str | None = None) -> ToolLatents:
    """The seeds' latents (truncated as the options say), or with ``latent`` the file's latent, condition and view
    (its w is used as written: no truncation)."""
    given = tool_condition(G, opts)
    if latent is None:
        return ToolLatents(map_seeds(G, opts, seeds), [f"seed{s:04d}" for s in seeds], given, None)
    from ..inversion.files import read_latent

    found = read_latent(latent, G)
    return ToolLatents(found.latent.w, ["latent"], merged_condition(found.latent.condition, given),
                       (found.yaw, found.pitch))


def merged_condition(base: Condition | None, over: Condition | None) -> Condition | None:
    """``base`` with every kind ``over`` sets replaced by ``over``'s (None when neither sets any)."""
    if base is None or over is None:
        return over if base is None else base
    pairs = zip((base.light, base.face, base.class_label), (over.light, over.face, over.class_label))
    return Condition(*(o if o is not None else b for b, o in pairs))


class LatentViews:
    """Renders one fixed batch of latents ``w`` from many cameras.

    With a generator that offers a tri-plane cache (``G.capabilities.plane_cache``) the backbone runs once, here, with
    the model's default noise mode (``config.eval_noise_mode`` in eval), and each :meth:`render` only samples
    the planes, volume-renders and super-resolves; otherwise each :meth:`render` is a ``synthesis`` call. Both
    paths give what ``G.synthesis(w, cameras, ...)`` gives (up to the last bits when ``w`` has one row and the
    cameras several: the cached planes are then computed at batch 1 instead of the expanded batch).

    Args:
        w: latents, (B or 1, w_dim) for pi-GAN, (B or 1, num_ws, w_dim) for EG3D.
        resolution: rendering resolution (EG3D: the neural rendering one); default the model's.
        render: sampling settings (the tools pass ``G.eval_render_config(...)``).
        lock_view_dependence: pi-GAN only (EG3D's colour ignores the view direction).
        normals: also return normal maps.
        sampling_seed: seed of the renderer's random draws (EG3D's jittered and importance samples), the
            same for every call, so consecutive video frames do not flicker and reruns are identical;
            None draws from the global RNG.
        condition: what the latents are conditioned on (see :class:`~aware3d.models.base.Condition`).
        delta: band width of surface-tracked sampling (``G.capabilities.surface_band``); None: the model's.
        fast: compute in bfloat16 where the device does it fast (:func:`~aware3d.nn.kernels.low_precision`,
            the tools' ``--fast``, with ``render`` from ``G.eval_render_config(..., fast=True)``).
    """

    def __init__(self, G: Generator3D, w: torch.Tensor, *, resolution: int | None = None, render=None,
                 lock_view_dependence: bool = False, normals: bool = False, sampling_seed: int | None = 0,
                 condition: Condition | None = None, delta: float | None = None, fast: bool = False):
        self.G, self.w = G, w
        self.band = {} if delta is None else {"delta": delta}
        self.resolution, self.render_config = resolution, render
        self.lock_view_dependence, self.normals = lock_view_dependence, normals
        self.sampling_seed = sampling_seed
        self.condition = condition
        self.fast = fast
        with low_precision(fast):
            self.planes = G.planes(w) if G.capabilities.plane_cache else None

    def _generator(self) -> torch.Generator | None:
        if self.sampling_seed is None:
            return None
        return torch.Generator(device=self.G.device).manual_seed(self.sampling_seed)

    def render(self, cameras, condition: Condition | None = None) -> GeneratorOutput:
        """The latents seen from ``cameras`` (B cameras, or as many as ``w`` has rows), under ``condition`` if
        given (e.g. one light of a sweep), else the one given at construction."""
        condition = self.condition if condition is None else condition
        with low_precision(self.fast):
            return self._render(cameras, condition)

    def _render(self, cameras, condition: Condition | None) -> GeneratorOutput:
        if self.planes is not None:
            return self.G.render_planes(self.planes, self.w, cameras, resolution=self.resolution,
                                        render=self.render_config, normals=self.normals, generator=self._generator(),
                                        condition=condition)
        return self.G.synthesis(self.w, cameras, resolution=self.resolution, render=self.render_config,
                                lock_view_dependence=self.lock_view_dependence, normals=self.normals, fast=True,
                                generator=self._generator(), condition=condition, **self.band)


def fast_setting(opts: ModelOptions) -> bool | SurfaceBands:
    """``--fast`` (and ``--fast-samples``) as :meth:`~aware3d.models.base.Generator3D.eval_render_config` takes
    it: False, True (the default bands) or the bands to sample."""
    if not opts.fast or opts.fast_samples is None:
        return opts.fast
    return SurfaceBands(samples=opts.fast_samples[0], importance=opts.fast_samples[1])


def tool_render_config(G: Generator3D, opts: ModelOptions, **changes):
    """The render settings a tool uses: the model's evaluation ones with ``--num-samples`` and ``--fast``."""
    return G.eval_render_config(opts.num_samples, fast=fast_setting(opts), **changes)


def settings_record(tool: str, opts: Any, G: Generator3D, **extra) -> dict:
    """What a tool writes beside its outputs: the exact options, the model and the environment."""
    return {
        "tool": tool,
        "aware3d": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "options": to_dict(opts),
        "model": {"family": G.family, "preset": G.preset, "source": G.source,
                  "config": to_dict(G.config)},
        **extra,
    }
