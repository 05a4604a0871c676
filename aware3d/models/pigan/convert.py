"""Import the official pi-GAN checkpoints (``generator.pth`` whole-module pickles, ``ema.pth``) safely.

Nothing from the files is executed: they are read by the restricted unpickler, which rebuilds tensors
and plain attributes only. The official module tree gives the architecture (z_dim, hidden width, number
of FiLM layers, box warp); the render settings come from the preset, which the files do not name: a TALLSIREN is
CARLA's (``pigan-carla``), a SPATIALSIRENBASELINE is CelebA's or Cats' (the official scripts take ``--curriculum``),
so such a file needs ``preset`` (:func:`~aware3d.models.registry.choose_import_preset`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from torch import Tensor

from ...io.keymap import CheckpointMismatchError, apply_key_map
from ...io.presize import build_bounded_by_weights
from ...io.safe_unpickle import PickledObject, load_torch_file
from ...io.sniff import FileSummary
from ...io.torch_ema import apply_torch_ema
from ..registry import choose_import_preset
from .config import OFFICIAL_CURRICULA, PIGAN_PRESETS
from .generator import PiGANGenerator

STAND_INS = ("generators.", "siren.", "torch.nn.modules.", "torch_ema.")
GENERATOR_CLASS = "generators.generators.ImplicitGenerator3d"
"""The official pi-GAN generator class, pickled whole into ``generator.pth``."""


def is_official_generator(summary: FileSummary) -> bool:
    """Sniffer: a ``torch.save`` of the official whole-module ``ImplicitGenerator3d``."""
    return summary.container == "torch-zip" and GENERATOR_CLASS in summary.globals


def load_official(path: Path, *, ema: bool, preset: str | None) -> PiGANGenerator:
    """The importer's loader: ``ema`` applies ``ema.pth`` from the same folder when present."""
    return import_official_pigan(path, ema_path="auto" if ema else None, preset=preset)


def candidate_presets(siren_class: str) -> dict[str, str]:
    """The official presets (-> their ``--curriculum``) a ``generator.pth`` with this SIREN class may come from:
    TALLSIREN has no box warp (CARLA), SPATIALSIRENBASELINE has one (CelebA and Cats alike)."""
    tall = siren_class == "TALLSIREN"
    return {name: f"--curriculum {curriculum}" for name, curriculum in OFFICIAL_CURRICULA.items()
            if (PIGAN_PRESETS[name].box_warp is None) == tall}


def _modules(obj: PickledObject) -> dict:
    return dict(obj.state.get("_modules") or {})


def named_parameters_in_order(obj: PickledObject, prefix: str = "") -> list[tuple[str, Tensor]]:
    """The official module's ``named_parameters()`` order (what ``ema.copy_to`` pairs by position)."""
    out = [(prefix + k, v) for k, v in (obj.state.get("_parameters") or {}).items() if v is not None]
    for name, child in _modules(obj).items():
        if isinstance(child, PickledObject):
            out += named_parameters_in_order(child, f"{prefix}{name}.")
    return out


def pigan_key_map(num_film_layers: int, num_mapping_linear: int) -> dict[str, str]:
    """Official parameter name -> ours, for a SIREN with ``num_film_layers`` FiLM layers."""
    m = {}
    for i in range(num_film_layers):
        for p in ("weight", "bias"):
            m[f"siren.network.{i}.layer.{p}"] = f"field.film.{i}.linear.{p}"
    for p in ("weight", "bias"):
        m[f"siren.final_layer.{p}"] = f"field.sigma_head.{p}"
        m[f"siren.color_layer_sine.layer.{p}"] = f"field.color_film.linear.{p}"
        m[f"siren.color_layer_linear.0.{p}"] = f"field.color_head.{p}"
        # The official mapping network interleaves Linear and LeakyReLU in one Sequential.
        for j in range(num_mapping_linear):
            m[f"siren.mapping_network.network.{2 * j}.{p}"] = f"mapping_network.layers.{j}.{p}"
    return m


def import_official_pigan(generator_path: str | Path, ema_path: str | Path | None = "auto",
                          preset: str | None = None) -> PiGANGenerator:
    """Build our generator from an official pi-GAN ``generator.pth`` (+ ``ema.pth``).

    Args:
        generator_path: the official whole-module pickle.
        ema_path: a torch_ema ``ema.pth`` whose shadow weights replace the raw ones (as the official render
            scripts do); ``"auto"`` uses ``ema.pth`` beside the generator when present; None uses raw weights.
        preset: render/camera settings to attach; required for a SPATIALSIRENBASELINE (CelebA or Cats), a
            TALLSIREN is ``pigan-carla`` (see module doc).
    """
    generator_path = Path(generator_path)
    if not generator_path.is_file():
        raise FileNotFoundError(f"official pi-GAN checkpoint not found: {generator_path}")
    root = load_torch_file(generator_path, stand_ins=STAND_INS)
    if not isinstance(root, PickledObject) or not root.qualname.endswith("ImplicitGenerator3d"):
        found = root.qualname if isinstance(root, PickledObject) else type(root).__name__
        raise CheckpointMismatchError(
            f"{generator_path} is not an official pi-GAN generator.pth (expected a pickled ImplicitGenerator3d, found {found})")
    siren = _modules(root).get("siren")
    if not isinstance(siren, PickledObject):
        raise CheckpointMismatchError(f"{generator_path}: the pickled generator has no 'siren' submodule")
    siren_class = siren.qualname.rsplit(".", 1)[-1]
    if siren_class not in ("SPATIALSIRENBASELINE", "TALLSIREN"):
        raise CheckpointMismatchError(
            f"{generator_path}: SIREN class {siren_class} is not supported; supported: SPATIALSIRENBASELINE, TALLSIREN")
    preset = choose_import_preset(str(generator_path), "pigan", PIGAN_PRESETS, candidate_presets(siren_class), preset,
                                  f"an official pi-GAN generator.pth with a {siren_class}")

    params = named_parameters_in_order(root)
    film_layers = len(_modules(_modules(siren)["network"]))
    mapping_seq = _modules(_modules(_modules(siren)["mapping_network"])["network"])
    mapping_linear = sum(1 for m in mapping_seq.values() if m.qualname.endswith("Linear"))
    warper = _modules(siren).get("gridwarper")
    box_warp = None if warper is None else 2.0 / float(warper.state["scale_factor"])
    z_dim = int(root.state["z_dim"])
    hidden = int(siren.state.get("hidden_dim", dict(params)["siren.network.0.layer.weight"].shape[0]))
    mapping_hidden = int(dict(params)["siren.mapping_network.network.0.weight"].shape[0])
    config = replace(PIGAN_PRESETS[preset], z_dim=z_dim, hidden_dim=hidden, num_film_layers=film_layers,
                     mapping_hidden_dim=mapping_hidden, mapping_layers=mapping_linear - 1, box_warp=box_warp)

    tensors = dict(params)
    source = {"official": "pi-GAN", "generator": str(generator_path)}
    if ema_path == "auto":
        candidate = generator_path.with_name(generator_path.name.replace("generator", "ema"))
        ema_path = candidate if candidate != generator_path and candidate.is_file() else None
    if ema_path is not None:
        tensors = apply_torch_ema(params, Path(ema_path))
        source["ema"] = str(ema_path)

    G = build_bounded_by_weights(lambda: PiGANGenerator(config), tensors, str(generator_path))
    apply_key_map(G, tensors, pigan_key_map(film_layers, mapping_linear), derived=["w_avg"], what=str(generator_path))
    G.update_w_avg()
    G.preset = preset
    G.source = source
    return G.eval()
