"""Families, their presets and their importers, by name. Errors list the valid names.

A family is one package ``aware3d/models/<family>/`` whose ``__init__`` calls :func:`register_family` once
with a :class:`FamilySpec`. Shared code finds families only through this registry: the packages under
``aware3d/models`` are imported on first use (adding a folder edits no shared file), and families
installed by other distributions are found through the ``aware3d.families`` entry-point group (each entry
names a module that registers its family when imported).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

from ..errors import UserError
from .base import Generator3D

if TYPE_CHECKING:
    from ..export.layouts import GridLayout
    from ..io.sniff import FileSummary
    from ..training.presets import TrainPreset

ENTRY_POINT_GROUP = "aware3d.families"
"""Entry-point group through which other distributions add families."""

REQUIRED_CONFIG_FIELDS = ("z_dim", "fov_deg", "pose", "render", "eval_render", "eval_truncation_psi", "shape_half_extent")
"""Fields every family's generator config has (the shared tools read them)."""


class ImportFn(Protocol):
    def __call__(self, path: Path, *, ema: bool, preset: str | None) -> Generator3D: ...


class ConvertFn(Protocol):
    def __call__(self, path: Path, out: Path, *, ema: bool, preset: str | None, discriminator: bool) -> dict: ...


@dataclass(frozen=True)
class Importer:
    """Reads one kind of official checkpoint file into a generator."""

    name: str
    """Short name shown in messages, e.g. ``official pi-GAN generator.pth``."""
    sniff: Callable[["FileSummary"], bool]
    """Whether a file is of this kind, from its :class:`~aware3d.io.sniff.FileSummary` (nothing unpickled)."""
    load: ImportFn
    """``load(path, ema=, preset=)``: the generator (EMA weights when ``ema``), read with the restricted unpickler."""
    convert: ConvertFn | None = None
    """``convert(path, out, ...)``: writes an aware3d folder with every network the file holds and returns a
    summary; None: the generator from :attr:`load` is saved alone."""


@dataclass(frozen=True)
class TrainingSpec:
    """What the trainer needs from a family besides its generator."""

    discriminator_cls: type
    """Discriminator class; its only constructor argument is its config."""
    discriminator_config_cls: type
    """The discriminator's config dataclass."""
    loss_cls: type
    """Loss recipe class, built as ``loss_cls(G, D, loss_config)`` (see :mod:`aware3d.losses.base`)."""
    loss_config_cls: type
    """The loss recipe's config dataclass."""


@dataclass(frozen=True)
class TinyPresets:
    """The family's CPU-sized presets, used by quick checks and by the contract tests every family passes."""

    model: str
    """A model preset that renders in well under a second on one CPU core."""
    train: str | None
    """A training preset whose steps take about a second on CPU (None for an inference-only family)."""
    train_overrides: tuple[str, ...] = ()
    """``--override`` items that shrink :attr:`train` further, for a smoke run of a few steps."""
    inversion_overrides: tuple[str, ...] = ()
    """Model-config overrides of :attr:`model` for the contract suite's self-inversion check, where the untrained
    tiny model's renders would not vary smoothly with the camera (e.g. a SIREN box so narrow that its density's
    normals are pixel-scale speckle)."""


@dataclass(frozen=True)
class FamilySpec:
    """What a family plugs into the shared parts."""

    name: str
    """Family name as written in checkpoints (config.json "family")."""
    config_cls: type
    """The generator's config dataclass (its only constructor argument)."""
    generator_cls: type[Generator3D]
    """The generator class."""
    presets: dict[str, Any]
    """Preset name -> config instance."""
    tiny: TinyPresets
    """CPU-sized presets (every family has them: the contract tests run on them)."""
    training: TrainingSpec | None = None
    """How the family is trained (None: inference only)."""
    train_presets: dict[str, "TrainPreset"] = field(default_factory=dict)
    """Training preset name -> preset (``aware3d presets``, ``aware3d train --preset``)."""
    importers: tuple[Importer, ...] = ()
    """Readers of the family's official checkpoint files, chosen by content."""
    grid_layouts: dict[str, "GridLayout"] = field(default_factory=dict)
    """Extra ``aware3d shapes --grid-layout`` values for this family's models (beside the shared ``regular``)."""


_FAMILIES: dict[str, FamilySpec] = {}
_discovered = False


def register_family(spec: FamilySpec) -> FamilySpec:
    """Add a family (called once by the family's package ``__init__``). Checks that its generator declares
    the family name, that its config has the shared fields, and that no preset name is taken."""
    if spec.name in _FAMILIES and _FAMILIES[spec.name] is not spec:
        raise ValueError(f"a family named {spec.name!r} is already registered")
    if spec.generator_cls.family != spec.name:
        raise ValueError(f"family {spec.name!r}: {spec.generator_cls.__name__}.family is {spec.generator_cls.family!r}")
    has = {f.name for f in dataclasses.fields(spec.config_cls)} if dataclasses.is_dataclass(spec.config_cls) else set()
    missing = [f for f in REQUIRED_CONFIG_FIELDS if f not in has]
    if missing:
        raise ValueError(f"family {spec.name!r}: {spec.config_cls.__name__} lacks the shared config fields {missing}")
    unknown = [n for n in (spec.tiny.model,) if n not in spec.presets]
    if (spec.training is None) != (spec.tiny.train is None):
        unknown.append(f"train={spec.tiny.train!r} (None exactly when the family has no training recipe)")
    elif spec.tiny.train is not None and spec.tiny.train not in spec.train_presets:
        unknown.append(spec.tiny.train)
    if unknown:
        raise ValueError(f"family {spec.name!r}: tiny presets {unknown} are not among its presets")
    taken = {p: f.name for f in _FAMILIES.values() if f.name != spec.name for p in (*f.presets, *f.train_presets)}
    clash = sorted(p for p in (*spec.presets, *spec.train_presets) if p in taken)
    if clash:
        raise ValueError(f"family {spec.name!r}: preset names {clash} are already used by {taken[clash[0]]!r}")
    _FAMILIES[spec.name] = spec
    return spec


def _discover() -> None:
    """Import every family package under ``aware3d/models`` and every entry point, once."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    here = Path(__file__).parent
    for info in pkgutil.iter_modules([str(here)]):
        if info.ispkg:
            importlib.import_module(f"{__package__}.{info.name}")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        importlib.import_module(ep.value.split(":")[0])


def families() -> dict[str, FamilySpec]:
    """Every registered family by name."""
    _discover()
    return dict(_FAMILIES)


def get_family(name: str) -> FamilySpec:
    fams = families()
    if name not in fams:
        raise ValueError(f"unknown model family {name!r}; valid: {', '.join(sorted(fams))}")
    return fams[name]


def family_of(G: Generator3D) -> FamilySpec:
    """The registered family of a generator."""
    return get_family(G.family)


def all_presets() -> dict[str, tuple[FamilySpec, Any]]:
    """Every preset name -> (family, config)."""
    return {p: (f, cfg) for f in families().values() for p, cfg in f.presets.items()}


def get_preset(name: str) -> tuple[FamilySpec, Any]:
    presets = all_presets()
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; valid: {', '.join(sorted(presets))}")
    return presets[name]


def build_generator(preset: str, seed: int = 0, overrides: list[str] | None = None) -> Generator3D:
    """A freshly initialised generator for a preset (weights from ``seed``; ``overrides`` like
    ``render.num_samples=24``), with its truncation centre computed."""
    import torch

    from ..config import apply_overrides

    family, cfg = get_preset(preset)
    cfg = apply_overrides(cfg, overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G = family.generator_cls(cfg)
    G.update_w_avg()
    G.preset = preset
    return G


class NoImporterError(ValueError):
    """No registered importer (or more than one) recognises a file; the message says what the file is."""


class PresetChoiceError(UserError, ValueError):
    """An official file fits several presets of its family (or none) and no preset was given; the message lists
    the candidates and how to pass one."""


def choose_import_preset(where: str, family: str, presets: Mapping[str, Any], candidates: Mapping[str, str],
                         preset: str | None, evidence: str) -> str:
    """The preset an official checkpoint file is imported with: the rule every family's importer follows.

    The files carry the weights and (some families) rendering settings, rarely which curriculum or dataset config
    trained them; the preset supplies the rest (near/far, samples, pose prior). So a given ``preset`` wins, else the
    file's content must single one out: a guess would render a Cats model with CelebA's camera.

    Args:
        where: the file, for messages.
        family: its family's name.
        presets: the family's presets by name (a given ``preset`` must be one of them).
        candidates: the presets the file's content fits, each with what it stands for (e.g. the official
            ``--curriculum``), as the family's importer reads them from the file (and what lies beside it).
        preset: the user's choice (``--preset``, ``aware3d.load(preset=...)``), or None.
        evidence: what the candidates were read from, e.g. ``"a SPATIALSIRENBASELINE generator"``.
    Returns:
        ``preset`` when given, else the only candidate.
    Raises:
        PresetChoiceError: no preset given and the file fits several presets or none; ValueError: ``preset`` is
        not one of ``presets``.
    """
    if preset is not None:
        if preset not in presets:
            raise ValueError(f"{where}: unknown {family} preset {preset!r} for this {family} file; valid: "
                             f"{', '.join(sorted(presets))}")
        return preset
    if len(candidates) == 1:
        return next(iter(candidates))
    how = "pass the one it was trained with as --preset NAME (Python: aware3d.load(path, preset=NAME))"
    if not candidates:
        raise PresetChoiceError(f"{where}: {evidence} fits none of the {family} presets by its content; {how}; "
                                f"valid: {', '.join(sorted(presets))}")
    listed = ", ".join(f"{name} ({what})" if what else name for name, what in candidates.items())
    raise PresetChoiceError(f"{where}: {evidence} fits several {family} presets and the file does not say which "
                            f"trained it: {listed}; {how}")


def find_importer(path: str | Path) -> tuple[FamilySpec, Importer]:
    """The one importer whose sniffer recognises the file at ``path`` (by content, whatever its suffix)."""
    from ..io.sniff import summarize_file

    summary = summarize_file(path)
    tried = [(f, imp) for f in families().values() for imp in f.importers]
    matches = [(f, imp) for f, imp in tried if imp.sniff(summary)]
    if len(matches) == 1:
        return matches[0]
    known = "; ".join(f"{f.name}: {imp.name}" for f, imp in tried) or "none registered"
    if not matches:
        raise NoImporterError(f"{path}: no importer recognises this file ({summary.describe()}). Tried {known}. "
                              "Pass an aware3d checkpoint folder, one of those official files, or a preset name")
    raise NoImporterError(f"{path}: several importers recognise this file ({summary.describe()}): "
                          + "; ".join(f"{f.name}: {imp.name}" for f, imp in matches))


__all__ = ["ENTRY_POINT_GROUP", "FamilySpec", "Importer", "NoImporterError", "PresetChoiceError", "TinyPresets",
           "TrainingSpec", "all_presets", "build_generator", "choose_import_preset", "families", "family_of",
           "find_importer", "get_family", "get_preset", "register_family"]
