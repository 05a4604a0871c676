"""Import official EG3D pickles (training snapshots ``network-snapshot-*.pkl`` and released ``*.pkl``) safely.

The files are read by the restricted unpickler (:mod:`aware3d.io.safe_unpickle`): the module source that
EG3D's ``torch_utils.persistence`` embeds in every network is kept as a string and never executed, and
no official module is imported; only tensors, constructor arguments (``_init_kwargs``) and plain attributes
come back. From those this module

1. checks that every class in each network is one it knows (an error lists the others and where they are);
2. builds our config from the constructor arguments, taking ``neural_rendering_resolution`` and
   ``rendering_kwargs`` from the pickled object's state (the training loop may change them after
   construction, and ``gen_samples.py --reload_modules`` copies them the same way);
3. copies the weights through a key-mapping table that must fill every tensor of our model, rejects
   unknown keys and checks shapes (:func:`aware3d.io.keymap.apply_key_map`). The resampling filters the
   official layers store as buffers are checked to be the standard [1, 3, 3, 1] filter and not copied.

``G_ema`` (the weights the official scripts render with), ``G`` (the training copy) and ``D`` (the dual
discriminator) are converted when present.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ...io.keymap import CheckpointMismatchError, apply_key_map
from ...io.pickled_modules import unknown_classes, unknown_classes_message
from ...io.presize import build_bounded_by_weights
from ...io.safe_unpickle import PickledObject, load_pickle_file
from ...io.sniff import FileSummary
from ..registry import choose_import_preset
from .config import EG3D_PRESETS, EG3DConfig, eg3d_render
from .discriminator import DualDiscriminator, DualDiscriminatorConfig
from .generator import EG3DGenerator
from ...nn.stylegan2.layers import is_resample_filter, nonstandard_resample_filters
from .superresolution import SR_LAYOUTS

STAND_INS = ("torch_utils.", "training.", "dnnlib.")

# Classes decorated with @persistent_class are recorded by their bare class name.
KNOWN_PERSISTENT = frozenset({
    "TriPlaneGenerator", "Generator", "MappingNetwork", "SynthesisNetwork", "SynthesisBlock", "SynthesisLayer",
    "ToRGBLayer", "FullyConnectedLayer", "SynthesisBlockNoUp", "Conv2dLayer", "DualDiscriminator",
    "DiscriminatorBlock", "DiscriminatorEpilogue", "MinibatchStdLayer", *SR_LAYOUTS,
})
# Plain (non-persistent) classes the official pickles reference by module path, without their source.
KNOWN_PLAIN = frozenset({
    "training.triplane.OSGDecoder",
    "training.volumetric_rendering.renderer.ImportanceRenderer",
    "training.volumetric_rendering.ray_marcher.MipRayMarcher2",
    "training.volumetric_rendering.ray_sampler.RaySampler",
    "torch.nn.modules.container.Sequential",
    "torch.nn.modules.activation.Softplus",
})
NETWORK_KEYS = ("G_ema", "G", "D")

# rendering_kwargs the importer understands; the second group only matters for training (kept in the source record).
_RENDER_KEYS = frozenset({
    "image_resolution", "disparity_space_sampling", "clamp_mode", "superresolution_module", "c_gen_conditioning_zero",
    "c_scale", "superresolution_noise_mode", "decoder_lr_mul", "sr_antialias", "depth_resolution",
    "depth_resolution_importance", "ray_start", "ray_end", "box_warp", "white_back", "density_noise",
    "avg_camera_radius", "avg_camera_pivot",
})
_TRAINING_RENDER_KEYS = frozenset({"gpc_reg_prob", "density_reg", "density_reg_p_dist", "reg_type", "density_reg_every",
                                   "c_disc_bp_conditioning_zero"})
_OURS_TO_OFFICIAL_PREFIX = {"decoder.hidden.": "decoder.net.0.", "decoder.output.": "decoder.net.2."}


class EG3DImportError(CheckpointMismatchError):
    """An official EG3D pickle does not fit our EG3D (unknown classes, options, keys or shapes)."""


@dataclass
class OfficialSnapshot:
    """What :func:`load_official_snapshot` read: inert networks (never executed) and plain metadata."""

    path: str
    """The file read."""
    networks: dict[str, PickledObject]
    """Present networks among 'G_ema', 'G', 'D'."""
    training_set_kwargs: dict | None
    """The dataset settings stored in training snapshots (None in files without them)."""


def load_official_snapshot(path: str | os.PathLike) -> OfficialSnapshot:
    """Read an official EG3D pickle with the restricted unpickler and check the classes it contains.

    Raises:
        FileNotFoundError: the file does not exist.
        UnsafePickleError: the pickle references globals outside the allow-list (nothing was unpickled).
        EG3DImportError: not an EG3D network pickle, or it contains classes we do not know (all listed).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"official EG3D pickle not found: {path}")
    return snapshot_from_data(load_pickle_file(path, stand_ins=STAND_INS), str(path))


def snapshot_from_data(data: Any, path: str) -> OfficialSnapshot:
    """Check what the restricted unpickler returned for ``path`` (see :func:`load_official_snapshot`)."""
    if not isinstance(data, dict):
        raise EG3DImportError(f"{path} is not an EG3D network pickle "
                              f"(expected a dict with G_ema, found {type(data).__name__})")
    networks = {k: data[k] for k in NETWORK_KEYS if isinstance(data.get(k), PickledObject)}
    if "G_ema" not in networks and "G" not in networks:
        raise EG3DImportError(f"{path} holds no EG3D generator "
                              f"(keys: {', '.join(map(str, data))}; expected G_ema or G)")
    problems = unknown_classes(networks, KNOWN_PERSISTENT, KNOWN_PLAIN)
    if problems:
        raise EG3DImportError(unknown_classes_message(path, problems, KNOWN_PERSISTENT, KNOWN_PLAIN))
    tsk = data.get("training_set_kwargs")
    return OfficialSnapshot(path, networks, dict(tsk) if isinstance(tsk, dict) else None)


# ---------------------------------------------------------------------------------------------------
# Constructor arguments -> our configs
# ---------------------------------------------------------------------------------------------------
_G_POSITIONAL = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "sr_num_fp16_res", "mapping_kwargs",
                 "rendering_kwargs", "sr_kwargs")
_D_POSITIONAL = ("c_dim", "img_resolution", "img_channels", "architecture", "channel_base", "channel_max",
                 "num_fp16_res", "conv_clamp", "cmap_dim", "disc_c_noise", "block_kwargs", "mapping_kwargs",
                 "epilogue_kwargs")


def init_kwargs(obj: PickledObject, positional: tuple[str, ...], where: str) -> dict[str, Any]:
    """The constructor arguments of a persistent object as one dict (positional ones named)."""
    args = obj.get("_init_args")
    kwargs = obj.get("_init_kwargs")
    if args is None or kwargs is None:
        raise EG3DImportError(f"{where}: no _init_args/_init_kwargs (not a torch_utils.persistence object)")
    if len(args) > len(positional):
        raise EG3DImportError(f"{where}: {len(args)} positional constructor arguments, "
                              f"expected at most {len(positional)}")
    out = dict(zip(positional, args))
    out.update(dict(kwargs))
    return out


def _pop_expected(d: dict, key: str, allowed: tuple, where: str, default: Any = None) -> Any:
    value = d.pop(key, default)
    if value not in allowed:
        raise EG3DImportError(f"{where}: {key}={value!r} is not supported (supported: {', '.join(map(repr, allowed))})")
    return value


def _check_empty(d: dict, what: str, where: str) -> None:
    if d:
        raise EG3DImportError(f"{where}: unknown {what}: {', '.join(sorted(map(str, d)))}")


def _fused(value: Any, where: str) -> str:
    mapping = {"inference_only": "inference_only", True: "always", False: "never"}
    if value not in mapping:
        raise EG3DImportError(f"{where}: fused_modconv_default={value!r} is not supported "
                              "(inference_only, True, False)")
    return mapping[value]


def _clamp(value: Any) -> float | None:
    return None if value is None else float(value)


OFFICIAL_CONFIGS: dict[str, str] = {"eg3d-ffhq": "--cfg=ffhq", "eg3d-afhq": "--cfg=afhq", "eg3d-shapenet": "--cfg=shapenet"}
"""The presets of the official ``train.py`` configs: what an official pickle may be."""


def candidate_presets(rendering: dict, img_resolution: int) -> dict[str, str]:
    """The official presets (-> their ``train.py --cfg``) a pickle fits: those whose camera orbit (radius and pivot,
    which every ``--cfg`` sets apart) is the pickle's ``rendering_kwargs``'; all of them for a camera none has."""
    radius = float(rendering.get("avg_camera_radius", 1.0))
    pivot = [float(v) for v in rendering.get("avg_camera_pivot", (0.0, 0.0, 0.0))]

    def fits(cfg: EG3DConfig) -> bool:
        return abs(cfg.camera_radius - radius) < 1e-6 and all(abs(a - b) < 1e-6 for a, b in zip(cfg.camera_pivot, pivot))

    found = {name: how for name, how in OFFICIAL_CONFIGS.items() if fits(EG3D_PRESETS[name])}
    return found or dict(OFFICIAL_CONFIGS)


def generator_config_from_pickle(root: PickledObject, where: str,
                                 preset: str | None = None) -> tuple[EG3DConfig, str, dict]:
    """(config, preset, rendering_kwargs) for a pickled ``TriPlaneGenerator``."""
    if root.qualname != "TriPlaneGenerator":
        raise EG3DImportError(f"{where}: expected a TriPlaneGenerator, found {root.qualname}")
    kw = init_kwargs(root, _G_POSITIONAL, where)
    mapping = dict(kw.pop("mapping_kwargs", {}) or {})
    sr_kwargs = dict(kw.pop("sr_kwargs", {}) or {})
    kw.pop("rendering_kwargs", None)  # the state's copy is the one rendering uses
    rendering = root.get("rendering_kwargs")
    if not isinstance(rendering, dict):
        raise EG3DImportError(f"{where}: the pickled generator has no rendering_kwargs")
    rendering = dict(rendering)
    nrr = root.get("neural_rendering_resolution")
    if not isinstance(nrr, int):
        raise EG3DImportError(f"{where}: the pickled generator has no integer neural_rendering_resolution")

    z_dim, c_dim, w_dim = int(kw.pop("z_dim")), int(kw.pop("c_dim")), int(kw.pop("w_dim"))
    img_resolution = int(kw.pop("img_resolution"))
    _pop_expected(kw, "img_channels", (3,), where)
    fused = _fused(kw.pop("fused_modconv_default", True), where)
    cfg_arch = dict(
        z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
        channel_base=int(kw.pop("channel_base", 32768)), channel_max=int(kw.pop("channel_max", 512)),
        num_fp16_res=int(kw.pop("num_fp16_res", 4)), conv_clamp=_clamp(kw.pop("conv_clamp", 256)),
        sr_num_fp16_res=int(kw.pop("sr_num_fp16_res", 0)), fused_modconv=fused,
    )
    _pop_expected(kw, "architecture", ("skip",), where, "skip")
    _pop_expected(kw, "resample_filter", ([1, 3, 3, 1],), where, [1, 3, 3, 1])
    _check_empty(kw, "generator constructor arguments", where)

    cfg_arch["mapping_layers"] = int(mapping.pop("num_layers", 8))
    cfg_arch["mapping_lr_mul"] = float(mapping.pop("lr_multiplier", 0.01))
    cfg_arch["w_avg_beta"] = float(mapping.pop("w_avg_beta", 0.998))
    _pop_expected(mapping, "embed_features", (None, w_dim), where)
    _pop_expected(mapping, "layer_features", (None, w_dim), where)
    _pop_expected(mapping, "activation", ("lrelu",), where, "lrelu")
    _check_empty(mapping, "mapping_kwargs", where)

    # The official super-resolution classes ignore these (their widths are hard-coded).
    for ignored in ("channel_base", "channel_max", "num_fp16_res", "conv_clamp"):
        sr_kwargs.pop(ignored, None)
    if _fused(sr_kwargs.pop("fused_modconv_default", True), where) != fused:
        raise EG3DImportError(f"{where}: different fused_modconv_default for the backbone and the super-resolution "
                              "is not supported")
    _check_empty(sr_kwargs, "sr_kwargs", where)

    r = dict(rendering)
    unknown = sorted(set(r) - _RENDER_KEYS - _TRAINING_RENDER_KEYS)
    if unknown:
        raise EG3DImportError(f"{where}: unknown rendering_kwargs: {', '.join(unknown)}")
    sr_name = str(r["superresolution_module"]).rsplit(".", 1)[-1]
    if sr_name not in SR_LAYOUTS:
        raise EG3DImportError(f"{where}: super-resolution module {r['superresolution_module']} is not supported; "
                              f"supported: {', '.join(SR_LAYOUTS)}")
    if SR_LAYOUTS[sr_name].official_resolution != img_resolution:
        raise EG3DImportError(f"{where}: {sr_name} makes {SR_LAYOUTS[sr_name].official_resolution} px images, "
                              f"but img_resolution is {img_resolution}")
    if r.get("disparity_space_sampling", False):
        raise EG3DImportError(f"{where}: disparity_space_sampling=True is not supported")
    if r.get("clamp_mode", "softplus") != "softplus":
        raise EG3DImportError(f"{where}: clamp_mode={r['clamp_mode']!r} is not supported (only softplus, as EG3D)")
    if not all(isinstance(r.get(k), (int, float)) for k in ("ray_start", "ray_end")):
        raise EG3DImportError(f"{where}: ray_start/ray_end must be numbers ('auto' box intersection is not supported), "
                              f"got {r.get('ray_start')!r}, {r.get('ray_end')!r}")
    if "image_resolution" in r and int(r["image_resolution"]) != img_resolution:
        raise EG3DImportError(f"{where}: rendering_kwargs image_resolution {r['image_resolution']} != img_resolution "
                              f"{img_resolution}")
    preset = choose_import_preset(where, "eg3d", EG3D_PRESETS, candidate_presets(r, img_resolution), preset,
                                  f"an EG3D network with cameras at radius {r.get('avg_camera_radius')} around "
                                  f"{r.get('avg_camera_pivot')}")
    background = "white" if r.get("white_back", False) else "black"
    render_kw = dict(near=float(r["ray_start"]), far=float(r["ray_end"]), samples=int(r["depth_resolution"]),
                     importance=int(r["depth_resolution_importance"]), background=background,
                     noise_std=float(r.get("density_noise", 0.0)))
    base = EG3D_PRESETS[preset]
    radius = float(r.get("avg_camera_radius", base.camera_radius))
    config = replace(
        base, **cfg_arch, plane_resolution=256, plane_channels=32, plane_axes="official",
        box_warp=float(r["box_warp"]), decoder_hidden=64, decoder_output_dim=32,
        decoder_lr_mul=float(r.get("decoder_lr_mul", 1.0)), sr_module=sr_name, sr_channels=None,
        sr_antialias=bool(r.get("sr_antialias", True)),
        sr_noise_mode=r.get("superresolution_noise_mode", "none"), neural_rendering_resolution=nrr,
        c_gen_conditioning_zero=bool(r.get("c_gen_conditioning_zero", False)), c_scale=float(r.get("c_scale", 0.0)),
        camera_radius=radius, camera_pivot=tuple(float(v) for v in r.get("avg_camera_pivot", base.camera_pivot)),
        pose=replace(base.pose, radius=radius), render=eg3d_render(**render_kw),
        eval_render=eg3d_render(**render_kw, max_points=base.eval_render.max_points),
        shape_half_extent=float(r["box_warp"]) / 2,
    )
    return config, preset, rendering


def discriminator_config_from_pickle(root: PickledObject, where: str) -> DualDiscriminatorConfig:
    """Our config for a pickled ``DualDiscriminator``."""
    if root.qualname != "DualDiscriminator":
        raise EG3DImportError(f"{where}: expected a DualDiscriminator, found {root.qualname}")
    kw = init_kwargs(root, _D_POSITIONAL, where)
    block = dict(kw.pop("block_kwargs", {}) or {})
    mapping = dict(kw.pop("mapping_kwargs", {}) or {})
    epilogue = dict(kw.pop("epilogue_kwargs", {}) or {})
    _pop_expected(kw, "architecture", ("resnet",), where, "resnet")
    cfg = DualDiscriminatorConfig(
        c_dim=int(kw.pop("c_dim")), img_resolution=int(kw.pop("img_resolution")),
        img_channels=int(kw.pop("img_channels")),
        channel_base=int(kw.pop("channel_base", 32768)), channel_max=int(kw.pop("channel_max", 512)),
        num_fp16_res=int(kw.pop("num_fp16_res", 4)), conv_clamp=_clamp(kw.pop("conv_clamp", 256)),
        cmap_dim=kw.pop("cmap_dim", None),
        disc_c_noise=float(kw.pop("disc_c_noise", 0.0)),
        mapping_layers=int(mapping.pop("num_layers", 8)), mapping_lr_mul=float(mapping.pop("lr_multiplier", 0.01)),
        mbstd_group_size=int(epilogue.pop("mbstd_group_size", 4)),
        mbstd_num_channels=int(epilogue.pop("mbstd_num_channels", 1)),
        freeze_layers=int(block.pop("freeze_layers", 0)),
    )
    _check_empty(kw, "discriminator constructor arguments", where)
    _pop_expected(block, "activation", ("lrelu",), where, "lrelu")
    _pop_expected(block, "resample_filter", ([1, 3, 3, 1],), where, [1, 3, 3, 1])
    _pop_expected(block, "fp16_channels_last", (False,), where, False)
    _check_empty(block, "discriminator block_kwargs", where)
    for key in ("embed_features", "layer_features"):
        _pop_expected(mapping, key, (None,), where)
    _pop_expected(mapping, "activation", ("lrelu",), where, "lrelu")
    _check_empty(mapping, "discriminator mapping_kwargs", where)
    _pop_expected(epilogue, "activation", ("lrelu",), where, "lrelu")
    _check_empty(epilogue, "discriminator epilogue_kwargs", where)
    return cfg


# ---------------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------------
def official_name(ours: str) -> str:
    """Our tensor name -> the official state_dict name (the layouts differ only in the decoder)."""
    for mine, theirs in _OURS_TO_OFFICIAL_PREFIX.items():
        if ours.startswith(mine):
            return theirs + ours[len(mine):]
    return ours


def key_map_for(model: nn.Module) -> tuple[dict[str, str], list[str]]:
    """(official name -> ours for every tensor we import, our resampling-filter buffers (constants))."""
    names = [n for n, _ in model.named_parameters()] + [n for n, _ in model.named_buffers()]
    filters = [n for n in names if is_resample_filter(n)]
    return {official_name(n): n for n in names if not is_resample_filter(n)}, filters


def _source_tensors(root: PickledObject, where: str) -> dict[str, Tensor]:
    """The pickled network's state_dict tensors, with the standard resampling filters checked and removed."""
    tensors = root.named_tensors()
    odd = nonstandard_resample_filters(tensors)
    if odd:
        raise EG3DImportError(f"{where}: resampling filters other than [1, 3, 3, 1] are not supported: "
                              f"{', '.join(odd)}")
    return {k: v.detach() for k, v in tensors.items() if not is_resample_filter(k)}


def build_generator(root: PickledObject, path: str, network: str = "G_ema", preset: str | None = None) -> EG3DGenerator:
    """Our generator with the weights of a pickled ``TriPlaneGenerator`` (``network`` of file ``path``)."""
    where = f"{path} [{network}]"
    config, preset, rendering = generator_config_from_pickle(root, where, preset)
    axes = (root.children().get("renderer") or PickledObject("")).get("plane_axes")
    if isinstance(axes, Tensor):
        expected = torch.tensor([[[1, 0, 0], [0, 1, 0], [0, 0, 1]], [[1, 0, 0], [0, 0, 1], [0, 1, 0]],
                                 [[0, 0, 1], [1, 0, 0], [0, 1, 0]]], dtype=axes.dtype)
        if not torch.equal(axes, expected):
            raise EG3DImportError(f"{where}: renderer.plane_axes differ from EG3D's generate_planes(); not supported")
    source = _source_tensors(root, where)
    G = build_bounded_by_weights(lambda: EG3DGenerator(config), source, where)
    key_map, filters = key_map_for(G)
    derived = list(filters)
    if "dataset_label_std" not in source:
        key_map.pop("dataset_label_std")
        derived.append("dataset_label_std")
    apply_key_map(G, source, key_map, derived=derived, what=where)
    G.preset = preset
    G.source = {"official": "EG3D", "file": str(path), "network": network,
                "rendering_kwargs": json.loads(json.dumps(rendering, default=float))}
    return G.eval()


def build_discriminator(root: PickledObject, path: str) -> DualDiscriminator:
    """Our dual discriminator with the weights of a pickled ``DualDiscriminator`` (the ``D`` of file ``path``)."""
    where = f"{path} [D]"
    config, source = discriminator_config_from_pickle(root, where), _source_tensors(root, where)
    D = build_bounded_by_weights(lambda: DualDiscriminator(config), source, where)
    key_map, filters = key_map_for(D)
    apply_key_map(D, source, key_map, derived=filters, what=where)
    return D.eval()


def convert_snapshot(snapshot: OfficialSnapshot, preset: str | None = None) -> dict[str, nn.Module]:
    """Every network present in a loaded snapshot: {'G_ema': EG3DGenerator, 'G': ..., 'D': DualDiscriminator}."""
    out: dict[str, nn.Module] = {}
    for name, net in snapshot.networks.items():
        if name == "D":
            out[name] = build_discriminator(net, snapshot.path)
        else:
            out[name] = build_generator(net, snapshot.path, name, preset)
    return out


def import_official_eg3d(path: str | os.PathLike, network: str = "G_ema", preset: str | None = None) -> EG3DGenerator:
    """Our generator from an official EG3D pickle.

    Args:
        path: ``network-snapshot-*.pkl`` or a released ``*.pkl``.
        network: 'G_ema' (what the official scripts render) or 'G' (the training copy).
        preset: camera/pose settings to attach (default: the official config whose camera orbit the pickle has;
            required when it has none of theirs).
    """
    if network not in ("G_ema", "G"):
        raise ValueError(f"network must be 'G_ema' or 'G', got {network!r}")
    snap = load_official_snapshot(path)
    if network not in snap.networks:
        raise EG3DImportError(f"{path} has no {network} (present: {', '.join(snap.networks)})")
    return build_generator(snap.networks[network], snap.path, network, preset)


def import_official_eg3d_discriminator(path: str | os.PathLike) -> DualDiscriminator:
    """Our dual discriminator from the ``D`` of an official EG3D pickle."""
    snap = load_official_snapshot(path)
    if "D" not in snap.networks:
        raise EG3DImportError(f"{path} has no discriminator D (present: {', '.join(snap.networks)})")
    return build_discriminator(snap.networks["D"], snap.path)


PERSISTENCE = "torch_utils.persistence._reconstruct_persistent_obj"
"""How NVIDIA's persistence module pickles a network (its class name and source travel as data)."""
GENERATOR_CLASS_NAME = "TriPlaneGenerator"


def is_official_snapshot(summary: FileSummary) -> bool:
    """Sniffer: a plain pickle of NVIDIA persistent networks that holds EG3D's ``TriPlaneGenerator``."""
    return summary.container == "pickle" and PERSISTENCE in summary.globals and GENERATOR_CLASS_NAME in summary.strings


def load_official(path: Path, *, ema: bool, preset: str | None) -> EG3DGenerator:
    """The importer's loader: ``G_ema`` (``ema``) or the training copy ``G``."""
    return import_official_eg3d(path, network="G_ema" if ema else "G", preset=preset)


def convert_official(path: Path, out: Path, *, ema: bool, preset: str | None, discriminator: bool) -> dict:
    """One restricted read of the pickle for every network in it: the generator folder, plus the dual
    discriminator beside it (``discriminator``)."""
    from ...io.checkpoint import save_generator

    snapshot = load_official_snapshot(path)
    wanted = "G_ema" if ema else "G"
    if wanted not in snapshot.networks:
        raise ValueError(f"{path} has no {wanted} (present: {', '.join(snapshot.networks)}); "
                         f"{'use --no-ema' if ema else 'drop --no-ema'}")
    nets = convert_snapshot(snapshot, preset=preset)
    G = nets[wanted]
    folder = save_generator(G, out)
    info = {"out": str(folder), "family": G.family, "preset": G.preset, "source": G.source,
            "parameters": sum(p.numel() for p in G.parameters()), "networks": sorted(nets)}
    if discriminator and "D" in nets:
        info["discriminator"] = str(save_discriminator(nets["D"], folder))
    return info


# ---------------------------------------------------------------------------------------------------
# Discriminator files beside a converted generator
# ---------------------------------------------------------------------------------------------------
DISCRIMINATOR_WEIGHTS = "discriminator.safetensors"
DISCRIMINATOR_CONFIG = "discriminator.json"


def save_discriminator(D: DualDiscriminator, folder: str | os.PathLike) -> Path:
    """Write ``discriminator.safetensors`` + ``discriminator.json`` into ``folder`` (each file atomically)."""
    from safetensors.torch import save_file

    from ...config import to_dict

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights, meta = folder / DISCRIMINATOR_WEIGHTS, folder / DISCRIMINATOR_CONFIG
    tmp_w, tmp_m = folder / f".{DISCRIMINATOR_WEIGHTS}.tmp", folder / f".{DISCRIMINATOR_CONFIG}.tmp"
    save_file({k: v.detach().cpu().contiguous() for k, v in D.state_dict().items()}, str(tmp_w),
              metadata={"format": "aware3d-discriminator", "family": "eg3d"})
    tmp_m.write_text(json.dumps({"format": "aware3d-discriminator", "version": 1, "family": "eg3d",
                                 "config": to_dict(D.config)}, indent=2))
    os.replace(tmp_w, weights)
    os.replace(tmp_m, meta)
    return weights


def load_discriminator(folder: str | os.PathLike, device: str | torch.device = "cpu") -> DualDiscriminator:
    """Read what :func:`save_discriminator` wrote."""
    from safetensors.torch import load_file

    from ...config import from_dict

    folder = Path(folder)
    weights, meta = folder / DISCRIMINATOR_WEIGHTS, folder / DISCRIMINATOR_CONFIG
    for f in (weights, meta):
        if not f.is_file():
            raise FileNotFoundError(f"{f} not found: {folder} holds no converted discriminator")
    info = json.loads(meta.read_text())
    D = DualDiscriminator(from_dict(DualDiscriminatorConfig, info["config"], where=str(meta)))
    D.load_state_dict(load_file(str(weights)))
    return D.to(device).eval()

