"""Import official EpiGRAF files safely: training snapshots ``network-snapshot-*.pkl`` and generator state dicts.

Snapshots are read by the restricted unpickler (:mod:`aware3d.io.safe_unpickle`) with EpiGRAF's classes as inert
stand-ins: the module source that ``src.torch_utils.persistence`` embeds in every network stays a string and is
never executed, no official or omegaconf module is imported, and storages saved on CUDA load on the CPU. From what
comes back this module

1. unwraps the persistence records (``_reconstruct_persistent_obj(meta)``) into class name + instance state and
   checks that every class of the generator is one it knows (an error lists the others and where they are);
2. rebuilds the omegaconf 2.0 config (``G.cfg``, the ``model.generator`` node with its whole parent tree) as plain
   data from the pickled node structure and resolves its ``${...}`` interpolations with a small resolver of its
   own (dotted absolute paths and string concatenations; anything else is an error naming the key);
3. builds our config from the constructor arguments, that config and the synthesis network's state
   (``train_resolution`` / ``test_resolution``), refusing options we do not implement;
4. copies the weights through a key-mapping table that must fill every tensor of our model, rejects unknown keys
   and checks shapes (:func:`aware3d.io.keymap.apply_key_map`); the resampling filters the official layers store
   are checked to be the standard [1, 3, 3, 1] filter and not copied.

``G_ema`` (what the official scripts render) is the default, ``G`` (the training copy, pickled in training mode)
with ``ema=False``. A generator ``state_dict()`` saved with ``torch.save`` (e.g. the reference fixture's
``sphere_G_ema.pt``) is read the same way when a JSON with its constructor kwargs and resolved config sits beside
it (``<stem>.json``: ``init_kwargs``, ``G_cfg_resolved``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ...io.keymap import CheckpointMismatchError, apply_key_map
from ...io.pickled_modules import unknown_classes, unknown_classes_message
from ...io.presize import build_bounded_by_weights
from ...io.safe_unpickle import PickledObject, load_pickle_file, load_torch_file
from ...io.sniff import FileSummary
from ...nn.stylegan2.layers import is_resample_filter, nonstandard_resample_filters
from ..registry import choose_import_preset
from .config import EPIGRAF_PRESETS, EpiGRAFConfig, epigraf_render
from .generator import EpiGRAFGenerator

PERSISTENCE = "src.torch_utils.persistence._reconstruct_persistent_obj"
"""How EpiGRAF's persistence module pickles a network (the repo is imported as the package ``src``)."""
EASYDICT = "src.dnnlib.util.EasyDict"
STAND_INS = ("src.", "omegaconf.", "typing.Any", "torch.optim.", "collections.defaultdict")
"""Classes whose instances come back as inert records: EpiGRAF's own, omegaconf's config nodes, the optimizers."""
NETWORK_KEYS = ("G_ema", "G")

KNOWN_PERSISTENT = frozenset({
    "Generator", "SynthesisNetwork", "SynthesisBlocksSequence", "TriPlaneMLP", "SynthesisBlock", "SynthesisLayer",
    "ToRGBLayer", "FullyConnectedLayer", "MappingNetwork", "ScalarEncoder1d", "FourierEncoder1d", "INR",
    "SynthesisOutputLayer",
})
KNOWN_PLAIN = frozenset({"torch.nn.modules.container.Sequential", "torch.nn.modules.container.ModuleList"})
_OFFICIAL_PREFIXES = (  # official state_dict prefix -> ours
    ("mapping.mean_camera_pose", "mean_camera_pose"),
    ("mapping.", "mapping_network."),
    ("synthesis.tri_plane_decoder.", "backbone."),
    ("synthesis.tri_plane_mlp.model.0.", "decoder.hidden."),
    ("synthesis.tri_plane_mlp.model.1.", "decoder.output."),
    ("synthesis.bg_model.blocks.0.scalar_enc.fourier_encoder.fourier_coefs", "background_inr.blocks.0.fourier_coefs"),
    ("synthesis.bg_model.", "background_inr."),
)
SNAPSHOT_CLASS_NAMES = ("TriPlaneMLP", "SynthesisBlocksSequence")
"""Class names (short strings of the pickle) that mark an EpiGRAF generator."""
STATE_DICT_KEYS = ("synthesis.tri_plane_mlp.model.0.weight", "synthesis.tri_plane_decoder.b4.const")


class EpiGRAFImportError(CheckpointMismatchError):
    """An official EpiGRAF file does not fit our EpiGRAF (unknown classes, options, keys or shapes)."""


# ---------------------------------------------------------------------------------------------------
# Persistence records and plain data
# ---------------------------------------------------------------------------------------------------
def unwrap_persistent(obj: Any) -> Any:
    """``_reconstruct_persistent_obj(meta)`` records -> ``PickledObject(class_name, state)`` (source kept in
    ``extra['module_src']``, never run), through every ``_modules`` entry; other values pass through."""
    if not isinstance(obj, PickledObject):
        return obj
    if obj.qualname == PERSISTENCE:
        meta = obj.args[0] if obj.args else None
        if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str):
            raise EpiGRAFImportError("unsupported src.torch_utils.persistence record (expected a class record)")
        obj = PickledObject(meta["class_name"], state=meta.get("state"),
                            extra={"persistent_version": meta.get("version"), "module_src": meta.get("module_src")})
    mods = obj.get("_modules")
    if isinstance(mods, dict):
        for name, child in list(mods.items()):
            mods[name] = unwrap_persistent(child)
    return obj


def plain(value: Any) -> Any:
    """EasyDicts (inert records) -> dicts, recursively through dicts, lists and tuples."""
    if isinstance(value, PickledObject) and value.qualname == EASYDICT:
        base = value.state if isinstance(value.state, dict) else {}
        return {k: plain(v) for k, v in {**base, **value.dictitems}.items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


def check_classes(networks: dict[str, PickledObject], path: str) -> None:
    """Raise an error listing every class of the (unwrapped) networks that this importer does not know."""
    problems = unknown_classes(networks, KNOWN_PERSISTENT, KNOWN_PLAIN)
    if problems:
        raise EpiGRAFImportError(unknown_classes_message(path, problems, KNOWN_PERSISTENT, KNOWN_PLAIN))


# ---------------------------------------------------------------------------------------------------
# omegaconf 2.0 nodes -> plain data, and ${...} interpolations
# ---------------------------------------------------------------------------------------------------
_DICT_NODE = "omegaconf.dictconfig.DictConfig"
_LIST_NODE = "omegaconf.listconfig.ListConfig"
_VALUE_NODES = frozenset(f"omegaconf.nodes.{n}" for n in
                         ("AnyNode", "StringNode", "IntegerNode", "FloatNode", "BooleanNode", "EnumNode"))
_INTERPOLATION = re.compile(r"\$\{([^}]*)\}")


def omegaconf_to_plain(node: Any, where: str = "cfg") -> Any:
    """A pickled omegaconf 2.0 node (inert record) as plain dicts / lists / values; interpolations stay strings."""
    if not isinstance(node, PickledObject):
        return node
    if node.qualname == _DICT_NODE:
        content = node.get("_content")
        if not isinstance(content, dict):
            return content  # None or an interpolation string stored for the whole node
        return {k: omegaconf_to_plain(v, f"{where}.{k}") for k, v in content.items()}
    if node.qualname == _LIST_NODE:
        content = node.get("_content")
        if not isinstance(content, list):
            return content
        return [omegaconf_to_plain(v, f"{where}[{i}]") for i, v in enumerate(content)]
    if node.qualname in _VALUE_NODES:
        return node.get("_val")
    raise EpiGRAFImportError(f"{where}: unexpected omegaconf object {node.qualname}")


def config_root(node: PickledObject) -> tuple[PickledObject, list[str]]:
    """(the root of an omegaconf node's parent chain, the keys leading from the root to the node)."""
    keys: list[str] = []
    seen: set[int] = set()
    while isinstance(node.get("_parent"), PickledObject):
        if id(node) in seen:
            raise EpiGRAFImportError("the pickled config's parent chain loops")
        seen.add(id(node))
        meta = node.get("_metadata")
        keys.append(str(meta.get("key")) if isinstance(meta, PickledObject) else "?")
        node = node.get("_parent")
    return node, keys[::-1]


def _lookup(root: dict, path: str, where: str) -> Any:
    value: Any = root
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise EpiGRAFImportError(f"{where}: interpolation ${{{path}}} names no value of the config")
        value = value[part]
    return value


_MAX_INTERPOLATED_CHARS = 65536
"""Longest text an interpolation may produce: a real config's strings are short; a hostile ``${b}${b}`` chain
doubles at every level."""


def resolve_interpolations(value: Any, root: dict, where: str = "cfg", depth: int = 0,
                           resolved: dict[str, Any] | None = None) -> Any:
    """``value`` with every ``${a.b}`` replaced by the (resolved) config value at that absolute path; a string that
    is a single interpolation takes the value itself (a node, a number), others are concatenated as text.
    ``resolved`` memoises each path within one call, so shared references cost once (not exponentially)."""
    resolved = {} if resolved is None else resolved
    if depth > 32:
        raise EpiGRAFImportError(f"{where}: interpolations nest too deep (a cycle?)")
    if isinstance(value, dict):
        return {k: resolve_interpolations(v, root, f"{where}.{k}", depth, resolved) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_interpolations(v, root, f"{where}[{i}]", depth, resolved) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    refs = _INTERPOLATION.findall(value)
    bad = [r for r in refs if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", r)]
    if bad:
        raise EpiGRAFImportError(f"{where}: interpolation(s) {', '.join('${' + b + '}' for b in bad)} are not plain "
                                 "absolute config paths (resolvers and relative paths are not supported)")

    def target(path: str) -> Any:
        if path not in resolved:
            resolved[path] = resolve_interpolations(_lookup(root, path, where), root, where, depth + 1, resolved)
        return resolved[path]

    if _INTERPOLATION.fullmatch(value):
        return target(refs[0])
    text = _INTERPOLATION.sub(lambda m: str(target(m.group(1))), value)
    if len(text) > _MAX_INTERPOLATED_CHARS:
        raise EpiGRAFImportError(f"{where}: interpolations expand to over {_MAX_INTERPOLATED_CHARS} characters "
                                 "(a hostile or broken config)")
    return text


def generator_config_tree(cfg_node: PickledObject, where: str) -> dict:
    """The generator's config (``model.generator``) as plain data with its interpolations resolved."""
    root_node, keys = config_root(cfg_node)
    root = omegaconf_to_plain(root_node, where)
    node = _lookup(root, ".".join(keys), where) if keys else root
    return resolve_interpolations(node, root, where)


# ---------------------------------------------------------------------------------------------------
# Official settings -> our config
# ---------------------------------------------------------------------------------------------------
def _require(value: Any, allowed: tuple, what: str, where: str) -> Any:
    if value not in allowed:
        raise EpiGRAFImportError(f"{where}: {what}={value!r} is not supported (supported: "
                                 f"{', '.join(map(repr, allowed))})")
    return value


def _fused(value: Any, where: str) -> str:
    mapping = {"inference_only": "inference_only", True: "always", False: "never"}
    if value not in mapping:
        raise EpiGRAFImportError(f"{where}: fused_modconv_default={value!r} is not supported (inference_only, True, "
                                 "False)")
    return mapping[value]


def guess_preset(cfg: dict, c_dim: int, img_resolution: int) -> str:
    """The official preset an imported model is (by cube scale, classes and resolution, which set the official
    dataset configs apart; their camera settings come from the file itself)."""
    if abs(float(cfg["dataset"].get("cube_scale", 0.2)) - 0.475) < 1e-6:
        return "epigraf-food-256" if c_dim == 10 else "epigraf-plants-256"
    return "epigraf-ffhq-512" if img_resolution >= 512 else "epigraf-cats-256"


def _check_architecture(cfg: dict, where: str) -> None:
    tp = cfg["tri_plane"]
    _require(cfg.get("backbone"), ("stylegan2",), "backbone", where)
    _require(bool(tp.get("fp32", True)), (True,), "tri_plane.fp32", where)
    _require(bool(tp.get("has_view_cond", False)), (False,), "tri_plane.has_view_cond", where)
    _require(tp.get("posenc_period_len", 0) or 0, (0,), "tri_plane.posenc_period_len", where)
    _require(int(tp["mlp"]["n_layers"]), (2,), "tri_plane.mlp.n_layers", where)
    _require(bool(cfg.get("use_noise", True)), (True,), "use_noise", where)
    _require(cfg.get("clamp_mode", "softplus"), ("softplus",), "clamp_mode", where)
    bg = cfg.get("bg_model") or {}
    if bg.get("type") == "sphere":
        _require(int(bg.get("coord_dim", 4)), (4,), "bg_model.coord_dim", where)
        _require(int(bg.get("output_channels", 4)), (4,), "bg_model.output_channels", where)
        _require(bool((bg.get("fmm") or {}).get("enabled", False)), (False,), "bg_model.fmm.enabled", where)
        _require(int(bg.get("num_fp16_blocks", 0)), (0,), "bg_model.num_fp16_blocks", where)


def _render_settings(cfg: dict, background: str, base: EpiGRAFConfig, where: str) -> dict:
    cam, data = cfg["dataset"]["camera"], cfg["dataset"]
    white, last = bool(data.get("white_back", False)), bool(data.get("last_back", False))
    if white and last and background != "none":
        raise EpiGRAFImportError(f"{where}: dataset.white_back and dataset.last_back together with a background model "
                                 f"({background}) are not supported")
    kw = dict(near=float(cam["ray_start"]), far=float(cam["ray_end"]), samples=int(cfg["num_ray_steps"]),
              importance=int(cfg["num_ray_steps"]), background_model=background, white_back=white,
              density_bias=float(cfg.get("density_shift", 0.0)))
    if last:
        # fancy_integration fills the last weight, then adds white with the weight left before the fill (as pi-GAN).
        kw["background"] = "last_sample+white" if white else "last_sample"
    return dict(render=epigraf_render(**kw), eval_render=epigraf_render(**kw, max_points=base.eval_render.max_points))


def config_from_official(init_kwargs: dict, cfg: dict, synthesis_state: dict, where: str,
                         preset: str | None = None) -> tuple[EpiGRAFConfig, str]:
    """(our config, preset) from a Generator's constructor arguments, its resolved config and synthesis state."""
    kw = plain(dict(init_kwargs))
    mapping = plain(dict(kw.get("mapping_kwargs") or {}))
    _require(int(kw.get("img_channels", 3)), (3,), "img_channels", where)
    _check_architecture(cfg, where)
    bg = cfg.get("bg_model") or {}
    background = {None: "none", "plane": "plane", "sphere": "sphere"}.get(bg.get("type"))
    if background is None:
        raise EpiGRAFImportError(f"{where}: bg_model.type={bg.get('type')!r} is not supported (None, plane, sphere)")
    img_resolution = int(synthesis_state.get("test_resolution", kw["img_resolution"]))
    c_dim = int(kw.get("c_dim", 0))
    guess = guess_preset(cfg, c_dim, int(kw["img_resolution"]))
    preset = choose_import_preset(where, "epigraf", EPIGRAF_PRESETS, {guess: ""}, preset, "an EpiGRAF generator")
    base = EPIGRAF_PRESETS[preset]
    pose = cfg["dataset"]["camera"]
    mean = mapping.get("mean_camera_pose")
    patch = cfg.get("patch") or {}
    config = replace(
        base, z_dim=int(kw["z_dim"]), w_dim=int(kw["w_dim"]), c_dim=c_dim,
        camera_cond=bool(mapping.get("camera_cond", False)),
        camera_cond_drop_p=float(mapping.get("camera_cond_drop_p", 0.0)),
        camera_cond_noise_std=float(mapping.get("camera_cond_noise_std", 0.0)),
        mean_camera_pose=tuple(float(v) for v in mean.tolist()) if isinstance(mean, Tensor) else base.mean_camera_pose,
        mapping_layers=int(mapping.get("num_layers", 2)), mapping_lr_mul=float(mapping.get("lr_multiplier", 0.01)),
        w_avg_beta=float(mapping.get("w_avg_beta", 0.998)),
        channel_base=int(kw.get("channel_base", 32768)), channel_max=int(kw.get("channel_max", 512)),
        fused_modconv=_fused(kw.get("fused_modconv_default", "inference_only"), where),
        plane_resolution=int(cfg["tri_plane"]["res"]), plane_channels=int(cfg["tri_plane"]["feat_dim"]),
        decoder_hidden=int(cfg["tri_plane"]["mlp"]["hid_dim"]), cube_scale=float(cfg["dataset"]["cube_scale"]),
        fov_deg=float(pose["fov"]), img_resolution=img_resolution,
        patch_resolution=int(synthesis_state.get("train_resolution", patch.get("resolution", img_resolution))),
        background=background, bg_num_blocks=int(bg.get("num_blocks", 2)), bg_channel_base=int(bg.get("cbase", 32768)),
        bg_channel_max=int(bg.get("cmax", 128)), bg_posenc_period=float(bg.get("posenc_period_len", 64.0)),
        bg_num_steps=int(bg.get("num_steps", 8)), bg_start=float(bg.get("start", 1.0)),
        pose=replace(base.pose, radius=float(pose["radius"])), shape_half_extent=float(cfg["dataset"]["cube_scale"]),
        **_render_settings(cfg, background, base, where),
    )
    unknown = sorted(set(mapping) - {"num_layers", "camera_cond", "camera_cond_drop_p", "camera_cond_noise_std",
                                     "mean_camera_pose", "lr_multiplier", "w_avg_beta"})
    if unknown:
        raise EpiGRAFImportError(f"{where}: unknown mapping_kwargs: {', '.join(unknown)}")
    return config, preset


_INIT_KWARGS = frozenset({"img_resolution", "cfg", "z_dim", "w_dim", "mapping_kwargs", "channel_base", "channel_max",
                          "fused_modconv_default", "c_dim", "img_channels"})


def _check_init_kwargs(kw: dict, where: str) -> None:
    unknown = sorted(set(kw) - _INIT_KWARGS)
    if unknown:
        raise EpiGRAFImportError(f"{where}: unknown generator constructor arguments: {', '.join(unknown)}")


# ---------------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------------
def official_name(ours: str) -> str:
    """Our tensor name -> the official state_dict name."""
    for theirs, mine in _OFFICIAL_PREFIXES:
        if ours.startswith(mine):
            return theirs + ours[len(mine):]
    raise ValueError(f"no official name for {ours!r}")


def key_map_for(model: nn.Module) -> tuple[dict[str, str], list[str]]:
    """(official name -> ours for every tensor we import, our resampling-filter buffers (constants))."""
    names = [n for n, _ in model.named_parameters()] + [n for n, _ in model.named_buffers()]
    filters = [n for n in names if is_resample_filter(n)]
    return {official_name(n): n for n in names if not is_resample_filter(n)}, filters


def _source_tensors(tensors: dict[str, Tensor], where: str) -> dict[str, Tensor]:
    """The official tensors with the standard resampling filters checked and removed."""
    odd = nonstandard_resample_filters(tensors)
    if odd:
        raise EpiGRAFImportError(f"{where}: resampling filters other than [1, 3, 3, 1] are not supported: "
                                 f"{', '.join(odd)}")
    return {k: v.detach() for k, v in tensors.items() if not is_resample_filter(k)}


def generator_from_tensors(config: EpiGRAFConfig, tensors: dict[str, Tensor], where: str) -> EpiGRAFGenerator:
    """Our generator for ``config`` with the official ``tensors`` (state_dict names) copied in."""
    source = _source_tensors(tensors, where)
    G = build_bounded_by_weights(lambda: EpiGRAFGenerator(config), source, where)
    key_map, derived = key_map_for(G)
    if "mapping.mean_camera_pose" not in source:  # registered only when the dataset had camera poses
        key_map.pop("mapping.mean_camera_pose")
        derived.append("mean_camera_pose")
    apply_key_map(G, source, key_map, derived=derived, what=where)
    return G.eval()


# ---------------------------------------------------------------------------------------------------
# Snapshots
# ---------------------------------------------------------------------------------------------------
def load_snapshot_networks(path: str | os.PathLike) -> tuple[dict[str, PickledObject], dict]:
    """({'G_ema': record, 'G': record} of those present, the snapshot's other plain entries) of an official
    ``network-snapshot-*.pkl``, read with the restricted unpickler (nothing in it runs).

    Raises:
        FileNotFoundError, UnsafePickleError (globals outside the allow-list; nothing was unpickled), or
        EpiGRAFImportError (not an EpiGRAF snapshot, or classes we do not know: all listed).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"official EpiGRAF snapshot not found: {path}")
    data = load_pickle_file(path, stand_ins=STAND_INS)
    if not isinstance(data, dict):
        raise EpiGRAFImportError(f"{path} is not an EpiGRAF snapshot (expected a dict with G_ema, found "
                                 f"{type(data).__name__})")
    networks = {k: unwrap_persistent(data[k]) for k in NETWORK_KEYS if isinstance(data.get(k), PickledObject)}
    if not networks:
        raise EpiGRAFImportError(f"{path} holds no EpiGRAF generator (keys: {', '.join(map(str, data))}; "
                                 "expected G_ema or G)")
    check_classes(networks, str(path))
    extras = {"training_set_kwargs": plain(data.get("training_set_kwargs")), "stats": plain(data.get("stats"))}
    return networks, extras


def build_generator(root: PickledObject, path: str, network: str = "G_ema",
                    preset: str | None = None) -> EpiGRAFGenerator:
    """Our generator with the weights of a pickled (unwrapped) EpiGRAF ``Generator`` record."""
    where = f"{path} [{network}]"
    if root.qualname != "Generator" or "module_src" not in root.extra:
        raise EpiGRAFImportError(f"{where}: expected an EpiGRAF Generator, found {root.qualname}")
    check_classes({network: root}, path)
    kw = root.get("_init_kwargs")
    if not isinstance(kw, dict) or root.get("_init_args"):
        raise EpiGRAFImportError(f"{where}: no keyword constructor arguments (not a persistence record)")
    _check_init_kwargs(kw, where)
    mapping = root.children().get("mapping")
    if mapping is None or not (mapping.get("_init_kwargs") or {}).get("camera_raw_scalars", True):
        raise EpiGRAFImportError(f"{where}: the mapping network must take raw camera scalars (camera_raw_scalars)")
    cfg_node = root.get("cfg")
    if not isinstance(cfg_node, PickledObject):
        raise EpiGRAFImportError(f"{where}: the pickled generator has no omegaconf cfg")
    cfg = generator_config_tree(cfg_node, f"{where} cfg")
    synthesis = root.children().get("synthesis") or PickledObject("")
    state = {k: synthesis.get(k) for k in ("train_resolution", "test_resolution", "nerf_noise_std")}
    config, preset = config_from_official(kw, cfg, {k: v for k, v in state.items() if v is not None}, where, preset)
    G = generator_from_tensors(config, root.named_tensors(), where)
    G.preset = preset
    G.source = {"official": "EpiGRAF", "file": str(path), "network": network,
                "config": json.loads(json.dumps(cfg, default=str)), "synthesis_state": state,
                "pickled_in_training_mode": bool(root.get("training", False))}
    return G


def import_official_epigraf(path: str | os.PathLike, network: str = "G_ema",
                            preset: str | None = None) -> EpiGRAFGenerator:
    """Our generator from an official ``network-snapshot-*.pkl``: ``G_ema`` (default) or ``G`` (training copy)."""
    if network not in NETWORK_KEYS:
        raise ValueError(f"network must be 'G_ema' or 'G', got {network!r}")
    networks, _ = load_snapshot_networks(path)
    if network not in networks:
        raise EpiGRAFImportError(f"{path} has no {network} (present: {', '.join(networks)})")
    return build_generator(networks[network], str(path), network, preset)


def is_official_snapshot(summary: FileSummary) -> bool:
    """Sniffer: a plain pickle of EpiGRAF's persistent networks (``src.torch_utils.persistence``) holding its
    tri-plane generator's class names."""
    return (summary.container == "pickle" and PERSISTENCE in summary.globals
            and all(name in summary.strings for name in SNAPSHOT_CLASS_NAMES))


def load_official(path: Path, *, ema: bool, preset: str | None) -> EpiGRAFGenerator:
    """The snapshot importer's loader: ``G_ema`` (``ema``) or the training copy ``G``."""
    return import_official_epigraf(path, network="G_ema" if ema else "G", preset=preset)


# ---------------------------------------------------------------------------------------------------
# Generator state dicts (+ their constructor kwargs as JSON)
# ---------------------------------------------------------------------------------------------------
def is_generator_state_dict(summary: FileSummary) -> bool:
    """Sniffer: a ``torch.save`` of a plain EpiGRAF generator ``state_dict()`` (tensors under its module names)."""
    plain_globals = all(g.startswith(("torch._utils.", "collections.OrderedDict", "torch.")) for g in summary.globals)
    return (summary.container == "torch-zip" and plain_globals
            and all(k in summary.strings for k in STATE_DICT_KEYS))


def import_generator_state_dict(path: str | os.PathLike, kwargs_json: str | os.PathLike | None = None,
                                preset: str | None = None) -> EpiGRAFGenerator:
    """Our generator from a ``state_dict()`` file and the JSON beside it (``<stem>.json`` unless given) holding the
    generator's ``init_kwargs`` and its resolved config ``G_cfg_resolved`` (as the reference fixture ships them)."""
    path = Path(path)
    meta_path = Path(kwargs_json) if kwargs_json is not None else path.with_suffix(".json")
    if not meta_path.is_file():
        raise FileNotFoundError(f"{path} is an EpiGRAF generator state_dict; its constructor arguments are needed "
                                f"beside it as {meta_path.name} (init_kwargs + G_cfg_resolved), not found")
    meta = json.loads(meta_path.read_text())
    missing = [k for k in ("init_kwargs", "G_cfg_resolved") if k not in meta]
    if missing:
        raise EpiGRAFImportError(f"{meta_path}: missing {', '.join(missing)}")
    tensors = load_torch_file(path)
    if not isinstance(tensors, dict) or not all(isinstance(v, Tensor) for v in tensors.values()):
        raise EpiGRAFImportError(f"{path} is not a state_dict (a dict of tensors)")
    kw = dict(meta["init_kwargs"])
    kw.pop("cfg", None)
    mapping = dict(kw.get("mapping_kwargs") or {})
    if "mapping.mean_camera_pose" in tensors:
        mapping["mean_camera_pose"] = tensors["mapping.mean_camera_pose"]
    else:
        mapping.pop("mean_camera_pose", None)
    kw["mapping_kwargs"] = mapping
    _check_init_kwargs(kw, str(path))
    cfg = meta["G_cfg_resolved"]
    state = {"test_resolution": int(kw["img_resolution"]),
             "train_resolution": int((cfg.get("patch") or {}).get("resolution", kw["img_resolution"]))}
    config, preset = config_from_official(kw, cfg, state, str(path), preset)
    G = generator_from_tensors(config, dict(tensors), str(path))
    G.preset = preset
    G.source = {"official": "EpiGRAF", "file": str(path), "network": "state_dict", "kwargs": str(meta_path)}
    return G


def load_state_dict_file(path: Path, *, ema: bool, preset: str | None) -> EpiGRAFGenerator:
    """The state-dict importer's loader (the file holds one generator; ``ema=False`` has nothing else to read)."""
    if not ema:
        raise ValueError(f"{path} holds one generator state_dict (no separate training copy); drop --no-ema")
    return import_generator_state_dict(path, preset=preset)


__all__ = ["EpiGRAFImportError", "PERSISTENCE", "STAND_INS", "build_generator", "config_from_official",
           "generator_config_tree", "import_generator_state_dict", "import_official_epigraf",
           "is_generator_state_dict", "is_official_snapshot", "load_official", "load_snapshot_networks",
           "load_state_dict_file", "omegaconf_to_plain", "resolve_interpolations", "unwrap_persistent"]


# ---------------------------------------------------------------------------------------------------
# The snapshot's discriminator
# ---------------------------------------------------------------------------------------------------
KNOWN_D_PERSISTENT = frozenset({
    "Discriminator", "DiscriminatorBlock", "DiscriminatorEpilogue", "MinibatchStdLayer", "Conv2dLayer",
    "FullyConnectedLayer", "MappingNetwork", "ScalarEncoder1d", "FourierEncoder1d",
})
KNOWN_D_PLAIN = frozenset({"torch.nn.modules.sparse.Embedding"})
_D_INIT_KWARGS = frozenset({"img_resolution", "cfg", "block_kwargs", "mapping_kwargs", "epilogue_kwargs",
                            "channel_base", "channel_max", "c_dim", "img_channels", "num_fp16_res", "conv_clamp",
                            "cmap_dim"})
_D_FOURIER_BUFFERS = {"scalar_enc.fourier_encoder.fourier_coefs": "patch_fourier_coefs",
                      "head_mapping.camera_scalar_enc.fourier_encoder.fourier_coefs": "camera_fourier_coefs"}


def load_snapshot_discriminator(path: str | os.PathLike) -> PickledObject:
    """The (unwrapped) ``D`` record of an official snapshot, read with the restricted unpickler (nothing runs)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"official EpiGRAF snapshot not found: {path}")
    data = load_pickle_file(path, stand_ins=STAND_INS)
    if not isinstance(data, dict) or not isinstance(data.get("D"), PickledObject):
        raise EpiGRAFImportError(f"{path} holds no EpiGRAF discriminator 'D'")
    D = unwrap_persistent(data["D"])
    problems = unknown_classes({"D": D}, KNOWN_D_PERSISTENT, KNOWN_D_PLAIN)
    if problems:
        raise EpiGRAFImportError(unknown_classes_message(str(path), problems, KNOWN_D_PERSISTENT, KNOWN_D_PLAIN))
    return D


def discriminator_config_from_official(kw: dict, cfg: dict, where: str):
    """Our :class:`PatchDiscriminatorConfig` from the official constructor kwargs and (resolved) ``D.cfg``."""
    from .discriminator import PatchDiscriminatorConfig
    unknown = sorted(set(kw) - _D_INIT_KWARGS)
    if unknown:
        raise EpiGRAFImportError(f"{where}: unknown discriminator constructor arguments: {', '.join(unknown)}")
    _require(bool(cfg.get("hyper_mod")), (True,), "hyper_mod", where)
    _require(bool((cfg.get("patch") or {}).get("patch_params_cond")), (True,), "patch.patch_params_cond", where)
    _require(cfg.get("camera_cond_raw", False), (False,), "camera_cond_raw", where)
    _require(float(cfg.get("camera_cond_noise_std", 0.0)), (0.0,), "camera_cond_noise_std", where)
    mapping = plain(kw.get("mapping_kwargs") or {})
    if set(mapping) - {"num_layers"}:
        raise EpiGRAFImportError(f"{where}: unsupported discriminator mapping_kwargs {sorted(mapping)}")
    patch_res = int(kw["img_resolution"])
    return PatchDiscriminatorConfig(
        patch_resolution=patch_res, image_resolution=patch_res * 2 ** int(cfg["num_additional_start_blocks"]),
        img_channels=int(kw.get("img_channels", 3)), c_dim=int(kw.get("c_dim", 0)),
        channel_base=int(kw.get("channel_base", 32768)), channel_max=int(kw.get("channel_max", 512)),
        num_fp16_res=int(kw.get("num_fp16_res", 4)), conv_clamp=kw.get("conv_clamp", 256),
        cmap_dim=kw.get("cmap_dim"), mapping_layers=int(mapping.get("num_layers", 2)),
        camera_cond=bool(cfg.get("camera_cond", False)), camera_dropout=float(cfg.get("camera_cond_drop_p", 0.0)),
        mbstd_group_size=int(plain(kw.get("epilogue_kwargs") or {}).get("mbstd_group_size", 4)))


def discriminator_key_map(D: nn.Module) -> tuple[dict[str, str], list[str]]:
    """(official name -> ours for every imported tensor, official names that are read but not copied: the dead
    ``fromrgb`` layers of every block but the first, which the official forward never uses)."""
    key_map = {("scalar_enc.const_embed.weight" if n == "patch_embed.weight" else n): n
               for n, _ in D.named_parameters()}
    first = f"b{D.block_resolutions[0]}."
    dead = [f"b{r}.fromrgb.{p}" for r in D.block_resolutions if f"b{r}." != first for p in ("weight", "bias")]
    return key_map, dead


def discriminator_from_tensors(config, tensors: dict[str, Tensor], where: str):
    """Our :class:`PatchDiscriminator` for ``config`` with the official D ``tensors`` (state_dict names) copied in;
    the Fourier frequency buffers are checked against ours, the dead ``fromrgb`` layers dropped."""
    from .discriminator import PatchDiscriminator
    source = _source_tensors(tensors, where)
    D = build_bounded_by_weights(lambda: PatchDiscriminator(config), source, where)
    for theirs, ours in _D_FOURIER_BUFFERS.items():
        if theirs in source and not torch.allclose(source.pop(theirs).float(), getattr(D, ours)):
            raise EpiGRAFImportError(f"{where}: {theirs} are not the log-spaced frequencies we compute")
    key_map, dead = discriminator_key_map(D)
    for name in dead:
        source.pop(name, None)
    constants = [n for n, _ in D.named_buffers() if is_resample_filter(n)] + list(_D_FOURIER_BUFFERS.values())
    apply_key_map(D, source, key_map, derived=constants, what=where)
    return D


def import_official_discriminator(path: str | os.PathLike):
    """Our :class:`PatchDiscriminator` with the weights of an official snapshot's ``D`` (pickled in training mode;
    returned in eval mode)."""
    where = f"{path} [D]"
    root = load_snapshot_discriminator(path)
    kw = root.get("_init_kwargs")
    cfg_node = root.get("cfg")
    if root.qualname != "Discriminator" or not isinstance(kw, dict) or not isinstance(cfg_node, PickledObject):
        raise EpiGRAFImportError(f"{where}: expected an EpiGRAF Discriminator persistence record with its cfg")
    config = discriminator_config_from_official(kw, generator_config_tree(cfg_node, f"{where} cfg"), where)
    return discriminator_from_tensors(config, root.named_tensors(), where).eval()
