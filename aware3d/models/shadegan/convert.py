"""Import the official ShadeGAN checkpoints safely: ``generator.pth`` (a state_dict), ``ema.pth`` (a pickled
torch_ema object) and the light prior ``*_light_mvn.pth``.

Nothing from the files is executed: they are read by the restricted unpickler. ShadeGAN's ``train.py``
saves ``generator.state_dict()`` (where pi-GAN pickles the whole module), so the sniffer recognises a
torch-zip state_dict of plain tensors with the SIREN's keys, with the surface tracker's (``surfacenet.*``)
or, for the BFM models trained without surface tracking, without them. The
architecture is read from the tensor shapes (z_dim, widths, layer counts, view / light conditioning, the
tracker's size); the box warp and render settings come from the preset, which the files do not name. A file
without a tracker is BFM's (``shadegan-bfm``), a tracked one without view conditioning CelebA's
(``shadegan-celeba-noview``); a tracked view-conditioned one is CelebA's or Cats' unless the light prior beside it
names its dataset (``celeba_light_mvn.pth``, ``cat_light_mvn.pth``), else it needs ``preset``
(:func:`~aware3d.models.registry.choose_import_preset`).
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
from .config import LIGHT_PRIOR_NAMES, OFFICIAL_CURRICULA, SHADEGAN_PRESETS, ShadeGANConfig
from .generator import ShadeGANGenerator
from .light import load_official_light_prior

STAND_INS = ("torch_ema.",)
TRACKER_KEY = "surfacenet.linear.weight"
SIREN_KEY = "siren.color_layer_sine.layer.weight"
PLAIN_GLOBALS = ("collections.", "torch._utils.", "torch.")
"""A state_dict references only containers, tensor rebuilders and storages (no module class)."""


def is_official_generator(summary: FileSummary) -> bool:
    """Sniffer: a ``torch.save`` of the official ShadeGAN ``generator.state_dict()``, with or without the
    surface tracker. (pi-GAN's official ``generator.pth`` pickles the module, so it references module classes.)"""
    plain = all(g.startswith(PLAIN_GLOBALS) and g.count(".") <= 2 for g in summary.globals)
    return summary.container == "torch-zip" and plain and SIREN_KEY in summary.strings


def load_official(path: Path, *, ema: bool, preset: str | None) -> ShadeGANGenerator:
    """The importer's loader: ``ema`` applies ``ema.pth`` from the same folder when present; a
    ``*_light_mvn.pth`` beside the file becomes the model's light prior."""
    return import_official_shadegan(path, ema_path="auto" if ema else None, preset=preset)


def shadegan_key_map(state: dict[str, Tensor], num_film_layers: int, num_mapping_linear: int) -> dict[str, str]:
    """Official state_dict key -> ours (the tracker keeps its official names under ``tracker.``)."""
    m = {}
    for p in ("weight", "bias"):
        for i in range(num_film_layers):
            m[f"siren.network.{i}.layer.{p}"] = f"field.film.{i}.linear.{p}"
        m[f"siren.final_layer.{p}"] = f"field.sigma_head.{p}"
        m[f"siren.color_layer_sine.layer.{p}"] = f"field.color_film.linear.{p}"
        m[f"siren.color_layer_linear.0.{p}"] = f"field.color_head.{p}"
        # The official mapping network interleaves Linear and LeakyReLU in one Sequential.
        for j in range(num_mapping_linear):
            m[f"siren.mapping_network.network.{2 * j}.{p}"] = f"mapping_network.layers.{j}.{p}"
    m.update({k: "tracker." + k[len("surfacenet."):] for k in state if k.startswith("surfacenet.")})
    return m


def conditioning_from_state(state: dict[str, Tensor]) -> tuple[bool, bool]:
    """(view_condition, light_condition) of an official state_dict, from the albedo layer's input width."""
    hidden = state["siren.network.0.layer.weight"].shape[0]
    extra = state[SIREN_KEY].shape[1] - hidden
    if extra not in (0, 3, 4, 7):
        raise CheckpointMismatchError(f"colour layer input {hidden} + {extra}: not hidden + 3 (view) + 4 (light)")
    return extra in (3, 7), extra in (4, 7)


def candidate_presets(state: dict[str, Tensor], light_prior: Path | None) -> dict[str, str]:
    """The official presets (-> their curricula) an official state_dict may come from: by its surface tracker and
    view conditioning (the BFM curricula, without tracker, come with and without it), then by the dataset that the
    light prior beside it is named after, when that leaves any."""
    view, _ = conditioning_from_state(state)
    tracker = TRACKER_KEY in state
    fits = {name: curriculum for name, curriculum in OFFICIAL_CURRICULA.items()
            if SHADEGAN_PRESETS[name].surface_tracker == tracker
            and (not tracker or SHADEGAN_PRESETS[name].view_condition == view)}
    if light_prior is not None:
        dataset = Path(light_prior).name.removesuffix("_light_mvn.pth")
        named = {name: curriculum for name, curriculum in fits.items() if LIGHT_PRIOR_NAMES[name] == dataset}
        fits = named or fits
    return fits


def config_from_state(state: dict[str, Tensor], preset: str) -> tuple[ShadeGANConfig, int, int]:
    """(config, FiLM layers, mapping Linear layers): ``preset``'s settings with the official tensor shapes."""
    def count(prefix: str) -> int:
        return len({k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)})

    film = count("siren.network.")
    mapping_linear = count("siren.mapping_network.network.")
    hidden = state["siren.network.0.layer.weight"].shape[0]
    view, light = conditioning_from_state(state)
    tracker = TRACKER_KEY in state
    blocks = len({k.split(".")[2] for k in state if k.startswith("surfacenet.network.") and k.endswith(".gn1.weight")})
    config = replace(
        SHADEGAN_PRESETS[preset], z_dim=state["siren.mapping_network.network.0.weight"].shape[1], hidden_dim=hidden,
        num_film_layers=film, mapping_hidden_dim=state["siren.mapping_network.network.0.weight"].shape[0],
        mapping_layers=mapping_linear - 1, view_condition=view, light_condition=light, surface_tracker=tracker,
        tracker_size=8 * 2 ** blocks if tracker else SHADEGAN_PRESETS[preset].tracker_size,
        tracker_channels=state[TRACKER_KEY].shape[0] if tracker else SHADEGAN_PRESETS[preset].tracker_channels)
    return config, film, mapping_linear


def import_official_shadegan(generator_path: str | Path, ema_path: str | Path | None = "auto",
                             preset: str | None = None, light_prior: str | Path | None = "auto") -> ShadeGANGenerator:
    """Build our generator from an official ShadeGAN ``generator.pth`` (+ ``ema.pth``, + light prior).

    Args:
        generator_path: the official state_dict.
        ema_path: a torch_ema ``ema.pth`` whose ``shadow_params`` replace the weights, paired by position
            with the state_dict order (``ema.copy_to``); its ``collected_params`` are ignored. ``"auto"``:
            ``ema.pth`` beside the generator when present; None: the raw weights.
        preset: render/camera settings to attach; required when the file fits several official presets (a tracked,
            view-conditioned file: CelebA or Cats, unless the light prior's name tells; see the module doc).
        light_prior: an official ``{'mean', 'cov'}`` file; ``"auto"``: the one ``*_light_mvn.pth`` beside the
            generator, if exactly one; None: the preset's default prior.
    """
    generator_path = Path(generator_path)
    if not generator_path.is_file():
        raise FileNotFoundError(f"official ShadeGAN checkpoint not found: {generator_path}")
    state = load_torch_file(generator_path, stand_ins=STAND_INS)
    if not isinstance(state, dict) or SIREN_KEY not in state:
        found = state.qualname if isinstance(state, PickledObject) else type(state).__name__
        raise CheckpointMismatchError(f"{generator_path} is not an official ShadeGAN generator.pth "
                                      f"(expected a state_dict with {SIREN_KEY}, found {found})")
    state = dict(state)
    if light_prior == "auto":
        found = sorted(generator_path.parent.glob("*_light_mvn.pth"))
        light_prior = found[0] if len(found) == 1 else None
    preset = choose_import_preset(str(generator_path), "shadegan", SHADEGAN_PRESETS,
                                  candidate_presets(state, None if light_prior is None else Path(light_prior)), preset,
                                  "an official ShadeGAN generator.pth" + _described(state))
    config, film, mapping_linear = config_from_state(state, preset)
    source = {"official": "ShadeGAN", "generator": str(generator_path)}
    if ema_path == "auto":
        candidate = generator_path.with_name(generator_path.name.replace("generator", "ema"))
        ema_path = candidate if candidate != generator_path and candidate.is_file() else None
    if ema_path is not None:
        state = apply_torch_ema(list(state.items()), Path(ema_path))
        source["ema"] = str(ema_path)
    G = build_bounded_by_weights(lambda: ShadeGANGenerator(config), state, str(generator_path))
    apply_key_map(G, state, shadegan_key_map(state, film, mapping_linear),
                  derived=["w_avg", "light_mean", "light_cov"], what=str(generator_path))
    if light_prior is not None:
        G.set_light_prior(load_official_light_prior(light_prior))
        source["light_prior"] = str(light_prior)
    G.update_w_avg()
    G.preset = preset
    G.source = source
    return G.eval()


def _described(state: dict[str, Tensor]) -> str:
    """What makes the presets differ in a state_dict, for messages: `` (view-conditioned, with a surface tracker)``."""
    view, _ = conditioning_from_state(state)
    return (f" ({'view-conditioned' if view else 'without view conditioning'}, "
            f"{'with' if TRACKER_KEY in state else 'without'} a surface tracker)")


__all__ = ["candidate_presets", "import_official_shadegan", "is_official_generator", "load_official", "shadegan_key_map"]
