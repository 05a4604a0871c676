"""The metric registry: every metric name, what it needs, and the function that computes it.

A metric is a :class:`Metric`: its name (the command-line name and the key of the results), its protocol
(how many generated / real images, from which cameras, at which truncation), its :class:`Needs` (real
images, the Inception detector, the dataset's ground truth, the generator's depth), and ``run(ctx)``, which
gets a :class:`MetricContext` (the generator, the generation settings, the dataset, the seed, the batch
size, the cache folder, the detector...) and returns a JSON-ready dict with at least ``"value"``.
:func:`aware3d.metrics.evaluate` checks the needs of every asked-for metric before any long work (a clear
error names the missing piece), runs each, and flattens each entry into the results with the metric's
``flatten`` (default: ``{name: entry["value"]}``).

Metrics that score the same generated images declare a :class:`SharedPass`: ``evaluate`` calls the pass once
per set of them with equal image count, camera source and truncation, and each metric's ``run`` reads the
pass's product as ``ctx.shared`` (FID, KID and IS share one pass of Inception features: see
:mod:`.builtin`).

The built-in protocols are registered in :mod:`.protocols`. A family adds its own metrics the same way, from
its own package at import (shared code never imports a family), e.g. in
``aware3d/models/<family>/metrics.py`` imported by that family's ``__init__``::

    from aware3d.metrics.registry import Metric, MetricContext, Needs, register_metric

    def mean_brightness(ctx: MetricContext) -> dict:
        total = 0.0
        for out, _ in ctx.generate(desc="generate (brightness)"):
            total += float(out.image.mean(dim=(1, 2, 3)).sum())
        return {"value": total / ctx.num_gen, "num_gen": ctx.num_gen, "camera": ctx.settings.camera}

    register_metric(Metric("brightness", mean_brightness, num_gen=256, needs=Needs(),
                           higher_is_better=True))

after which ``evaluate(G, ["brightness", "fid50k_full"], data)`` and ``aware3d metrics --metrics brightness``
know it (a name not registered yet makes :func:`get_metric` import every family first, so a family's
metrics are known before its model is loaded). Settings a metric reads come as typed config objects:
``ctx.config(MyConfig)`` is the instance the caller passed to ``evaluate(..., configs=[MyConfig(...)])``,
else ``MyConfig()``. Tests register temporarily with :func:`registered_metric` (a context manager that
unregisters on exit).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterator, Literal, Mapping, Sequence, TypeVar

from ..cameras import Cameras
from ..models.base import Condition, Generator3D, GeneratorOutput
from .generation import GenerationSettings, generate
from .inception import InceptionDetector

CameraSource = Literal["auto", "dataset", "prior"]
C = TypeVar("C")


@dataclass(frozen=True)
class Needs:
    """What a metric needs besides the generator; :func:`~aware3d.metrics.evaluate` refuses to start when
    one is missing, naming it and the fix."""

    real: bool = False
    """Real images: a dataset (``--data``)."""
    inception: bool = False
    """The Inception-v3 detector file (``--inception`` or ``$AWARE3D_INCEPTION``), given as ``ctx.detector``."""
    ground_truth: bool = False
    """The dataset's ground truth (synthetic depth, normals and masks through ``data.ground_truth(indices)``):
    a synthetic dataset, not an image folder. Implies a dataset."""
    depth: bool = False
    """The generator's depth and opacity maps (a geometry metric). Every family renders them today
    (:class:`~aware3d.models.base.GeneratorOutput`), so this only documents the metric (and the JSON)."""
    cameras: bool = True
    """Renders from the chosen camera source (dataset poses or the model's prior), so dataset cameras are
    checked against the model's ray range. False for metrics with their own fixed views (reprojection)."""

    @property
    def dataset(self) -> bool:
        """Whether a dataset is needed at all."""
        return self.real or self.ground_truth

    def names(self) -> list[str]:
        """The needs that are set, as recorded in the JSON (e.g. ``["real", "inception"]``)."""
        return [f.name for f in fields(self) if f.name != "cameras" and getattr(self, f.name)]


@dataclass(frozen=True)
class SharedPass:
    """Work several metrics share (one generation pass scored by several metrics).

    ``run(metrics, ctx)`` computes the product once for ``metrics`` (the asked-for metrics with this pass and
    equal ``num_gen``, camera source and truncation; ``ctx`` is the first one's context) and each metric's
    ``run`` reads it as ``ctx.shared``. A metric's :attr:`Metric.uses` says what it reads, so the pass
    computes only what its metrics use."""

    name: str
    """A short name (for messages)."""
    run: Callable[[Sequence[Metric], MetricContext], Any]
    """(metrics, context of the first) -> the shared product."""


def main_value(name: str, entry: dict) -> dict[str, float]:
    """The default flattening: the main value under the metric's name."""
    return {name: entry["value"]}


@dataclass(frozen=True)
class Metric:
    """One named metric protocol (see the module docstring)."""

    name: str
    """The name used on the command line and as the key of the results (no commas or spaces)."""
    run: Callable[[MetricContext], dict]
    """ctx -> JSON-ready details with at least ``"value"`` (the main number). Protocol parameters of the
    computation (e.g. KID's subsets) are bound into it (``functools.partial``)."""
    num_gen: int = 1000
    """Generated images (for reprojection: latents, each rendered from every view)."""
    needs: Needs = Needs()
    """What the metric needs besides the generator."""
    num_real: int | None = None
    """Real images used: None = the whole dataset ("full"); a number caps it."""
    camera: CameraSource = "auto"
    """Cameras of the generated images: dataset poses (labels of random items), the model's pose
    distribution (prior), or auto = dataset poses when every item has a label, else the prior."""
    truncation_psi: float = 1.0
    """Truncation of the generated latents (1 = none, the standard for FID)."""
    higher_is_better: bool = False
    """Direction of the main value (for keeping the best checkpoint)."""
    flatten: Callable[[str, dict], dict[str, float]] = main_value
    """(name, details) -> the flat results this metric adds (its main value and any extras)."""
    shared: SharedPass | None = None
    """Work shared with other metrics (its product is ``ctx.shared`` in :attr:`run`), or None."""
    uses: frozenset[str] = frozenset()
    """What the metric reads from its shared pass (the pass documents the choices)."""
    kind: str = ""
    """Which computation, as recorded in the JSON (e.g. ``"fid"`` for every FID protocol); default: the name."""
    counted_name: bool = False
    """The name states how many images the protocol generates (``fid2k_full``, ``is50k``): run on another number
    it is recorded as ``<name>@<number>`` (``fid2k_full@512``), so a quick FID is never mistaken for FID@2k."""

    def __post_init__(self):
        if not self.name or any(c in self.name for c in ", \t\n"):
            raise ValueError(f"metric name {self.name!r} must be non-empty, without commas or spaces")
        if self.num_gen < 1:
            raise ValueError(f"metric {self.name!r}: num_gen must be >= 1, got {self.num_gen}")
        if self.camera not in ("auto", "dataset", "prior"):
            raise ValueError(f"metric {self.name!r}: unknown camera source {self.camera!r}; "
                             "valid: auto, dataset, prior")
        if self.uses and self.shared is None:
            raise ValueError(f"metric {self.name!r} uses {sorted(self.uses)} of a shared pass but has none")
        if not self.kind:
            object.__setattr__(self, "kind", self.name)

    def with_num_gen(self, num_gen: int | None) -> Metric:
        """This protocol with another number of generated images (None keeps it); a :attr:`counted_name` protocol
        then records its results as ``<name>@<num_gen>``."""
        if num_gen is None or num_gen == self.num_gen:
            return self
        if num_gen < 1:
            raise ValueError(f"num_gen must be >= 1, got {num_gen}")
        name = f"{self.name}@{num_gen}" if self.counted_name else self.name
        return replace(self, num_gen=num_gen, name=name)


@dataclass(frozen=True)
class MetricContext:
    """Everything a metric's ``run`` gets (one per metric; built by :func:`~aware3d.metrics.evaluate`)."""

    metric: Metric
    """The metric being run (with any ``num_gen`` override applied)."""
    G: Generator3D
    """The generator, in eval mode."""
    settings: GenerationSettings
    """How generated images are made for this metric (resolution, truncation, camera source, render)."""
    data: Any
    """The dataset (an :class:`aware3d.data.ImageDataset` at the generated images' size), or None."""
    seed: int
    """Seed of the latents, cameras and every random draw of the metric."""
    batch: int
    """Images per generator / detector call."""
    cache_dir: Path
    """Where metrics cache what is costly to recompute (real statistics, the SIDE depth network)."""
    progress: bool = True
    """Whether to show progress bars."""
    detector: InceptionDetector | None = None
    """The Inception detector (set when the metric's needs include it)."""
    condition: Condition | None = None
    """What generation is conditioned on besides z and the camera, or None."""
    configs: Mapping[type, Any] = field(default_factory=dict)
    """Metric settings by type (see :meth:`config`)."""
    shared: Any = None
    """The product of the metric's shared pass, or None."""

    @property
    def num_gen(self) -> int:
        """Number of generated images of this metric."""
        return self.metric.num_gen

    def config(self, cls: type[C]) -> C:
        """The caller's settings of type ``cls`` (``evaluate(..., configs=[...])``), else ``cls()``."""
        value = self.configs.get(cls)
        return cls() if value is None else value

    def generate(self, n: int | None = None, *, normals: bool = False,
                 desc: str = "generate") -> Iterator[tuple[GeneratorOutput, Cameras]]:
        """:func:`~aware3d.metrics.generation.generate` with this context's settings: ``n`` (default
        :attr:`num_gen`) images as ``(render, cameras)`` batches, deterministic for the seed."""
        return generate(self.G, self.num_gen if n is None else n, self.settings, seed=self.seed, batch=self.batch,
                        data=self.data, normals=normals, progress=self.progress, desc=desc,
                        condition=self.condition)


# ------------------------------------------------------------------------------------- the registry

_METRICS: dict[str, Metric] = {}
METRICS: Mapping[str, Metric] = MappingProxyType(_METRICS)
"""Every registered metric by name, in registration order (a read-only live view)."""


def metric_names() -> list[str]:
    """The registered names, in registration order."""
    return list(_METRICS)


def register_metric(metric: Metric, *, replace_existing: bool = False) -> Metric:
    """Add ``metric`` to the registry (and return it). A taken name is refused unless ``replace_existing``."""
    if not isinstance(metric, Metric):
        raise TypeError(f"register_metric takes a Metric, got {type(metric).__name__}")
    if metric.name in _METRICS and not replace_existing:
        raise ValueError(f"metric {metric.name!r} is already registered (pass replace_existing=True to replace "
                         "it, or pick another name)")
    _METRICS[metric.name] = metric
    return metric


def unregister_metric(name: str) -> Metric:
    """Remove the metric called ``name`` and return it; the error lists the registered names."""
    return _METRICS.pop(get_metric(name).name)


@contextmanager
def registered_metric(metric: Metric) -> Iterator[Metric]:
    """Register ``metric`` for the duration of a ``with`` block (tests); unregistered on exit."""
    register_metric(metric)
    try:
        yield metric
    finally:
        if _METRICS.get(metric.name) is metric:
            del _METRICS[metric.name]


def _discover_family_metrics() -> None:
    """Import every model family (through the family registry), so the metrics they register at import exist."""
    from ..models.registry import families

    families()


def get_metric(name: str) -> Metric:
    """The metric called ``name``; the error lists the valid names. A name not registered yet makes the
    family registry import every family first (families register their metrics at import)."""
    if name not in _METRICS:
        _discover_family_metrics()
    if name not in _METRICS:
        raise ValueError(f"unknown metric {name!r}; valid: {', '.join(_METRICS)}")
    return _METRICS[name]


def parse_metric_list(metrics: str | list[str] | tuple[str, ...]) -> list[Metric]:
    """Names given as a comma-separated string and/or a list (``["fid50k_full,swd", "side"]``), in order,
    without repeats."""
    items = [metrics] if isinstance(metrics, str) else list(metrics)
    names: list[str] = []
    for item in items:
        for name in str(item).split(","):
            name = name.strip()
            if name and name not in names:
                names.append(name)
    if not names:
        raise ValueError(f"no metric given; valid: {', '.join(_METRICS)}")
    return [get_metric(n) for n in names]


__all__ = ["CameraSource", "METRICS", "Metric", "MetricContext", "Needs", "SharedPass", "get_metric", "main_value",
           "metric_names", "parse_metric_list", "register_metric", "registered_metric", "unregister_metric"]
