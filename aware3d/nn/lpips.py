"""LPIPS ("net-lin", VGG16 trunk, version 0.1; Zhang et al. 2018) in plain torch, from two local files.

The metric compares two images through five feature maps of ImageNet VGG16 (after relu1_2, relu2_2,
relu3_3, relu4_3 and relu5_3). Each map is normalised to unit length over its channels at every pixel;
the squared difference of the two normalised maps is weighted per channel by a learned non-negative
1x1 head, averaged over the pixels, and the five numbers are added:

    d(x, y) = sum_k mean_hw( sum_c w_k[c] * (f_k(x)[c] / |f_k(x)| - f_k(y)[c] / |f_k(y)|)^2 )

Inputs are (B, 3, H, W) images in [-1, 1] (H, W >= 16), first mapped by the fixed per-channel affine
``(x - shift) / scale`` of the reference implementation (ImageNet statistics expressed for [-1, 1]).

Weights are never downloaded; two files are read with aware3d's restricted unpickler (nothing in them
is executed) and checked key by key:

* torchvision's ImageNet VGG16 ``vgg16-397923af.pth`` (a state dict; its ``features.*`` tensors are used,
  ``classifier.*`` is ignored). :class:`VGG16Features` has the same parameter names.
* the LPIPS heads ``lpips/weights/v0.1/vgg.pth`` of the ``lpips`` package / PerceptualSimilarity repository
  (keys ``lin{k}.model.1.weight``, shapes (1, C_k, 1, 1); ``model.0`` there is a weightless Dropout).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..io.safe_unpickle import UnsafePickleError, load_torch_file

VGG16_FILE_NAME = "vgg16-397923af.pth"
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
LPIPS_LIN_FILE = "lpips/weights/v0.1/vgg.pth"
LPIPS_REPO_URL = "https://github.com/richzhang/PerceptualSimilarity"
VGG16_ENV = "AWARE3D_LPIPS_VGG16"
LPIPS_LIN_ENV = "AWARE3D_LPIPS_LIN"

INPUT_SHIFT = (-0.030, -0.088, -0.188)
"""Per-channel shift of [-1, 1] RGB inputs (the reference's ScalingLayer)."""
INPUT_SCALE = (0.458, 0.448, 0.450)
"""Per-channel divisor applied after the shift."""
NORM_EPS = 1e-10
"""Added to the channel norm before dividing (keeps all-zero feature columns at zero)."""

VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
"""torchvision's VGG16 ``features`` up to relu5_3: conv3x3 widths, 'M' = 2x2 max pool (the final pool is unused)."""
TAP_NAMES = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
TAP_CHANNELS = (64, 128, 256, 512, 512)
MIN_SIZE = 16
"""Smallest input height/width: four 2x2 pools must leave at least one pixel for relu5_3."""

_VGG16_SOURCE = (f"torchvision's ImageNet VGG16 weights {VGG16_FILE_NAME}, published at {VGG16_URL} "
                 "(licence: the Oxford VGG group releases the VGG16 models under CC BY 4.0; torchvision, which "
                 "publishes this file, is BSD-3-Clause)")
_LIN_SOURCE = (f"the LPIPS v0.1 VGG linear heads {LPIPS_LIN_FILE} from {LPIPS_REPO_URL} (also inside the pip "
               "package 'lpips' at lpips/weights/v0.1/vgg.pth; licence: BSD-2-Clause)")


class LPIPSWeightsNotFound(FileNotFoundError):
    """An LPIPS weight file is missing; the message names each missing file, where it is published and its licence."""


class LPIPSFormatError(ValueError):
    """An LPIPS weight file is not the expected state dict (unknown or missing keys, wrong shapes, bad values)."""


@dataclass(frozen=True)
class LPIPSConfig:
    """Where the two LPIPS weight files are (None: the environment variable, else an error)."""

    vgg_weights: str | None = None
    """Path of torchvision's ``vgg16-397923af.pth`` (None: ``$AWARE3D_LPIPS_VGG16``)."""
    lin_weights: str | None = None
    """Path of the lpips package's ``weights/v0.1/vgg.pth`` (None: ``$AWARE3D_LPIPS_LIN``)."""


# ------------------------------------------------------------------------------------------- files

def _missing_entry(what: str, path: Path | None, source: str, env: str) -> str:
    name = f"{what} file {str(path)!r} not found" if path is not None else f"no {what} file was given"
    return f"{name}: it is {source}; pass its path or set {env}=PATH"


def resolve_lpips_paths(vgg_path: str | os.PathLike | None, lin_path: str | os.PathLike | None) -> tuple[Path, Path]:
    """The (VGG16, heads) files to read: the given paths, else ``$AWARE3D_LPIPS_VGG16`` / ``$AWARE3D_LPIPS_LIN``.

    Raises:
        LPIPSWeightsNotFound: one error listing every missing file with its source and licence.
    """
    found: list[Path] = []
    problems: list[str] = []
    for what, given, env, source in (("VGG16", vgg_path, VGG16_ENV, _VGG16_SOURCE),
                                     ("LPIPS heads", lin_path, LPIPS_LIN_ENV, _LIN_SOURCE)):
        raw = given if given is not None else os.environ.get(env) or None
        path = Path(raw).expanduser() if raw is not None else None
        if path is None or not path.is_file():
            problems.append(_missing_entry(what, path, source, env))
        else:
            found.append(path)
    if problems:
        raise LPIPSWeightsNotFound("LPIPS needs two local weight files (they are not downloaded). "
                                   + " | ".join(problems))
    return found[0], found[1]


def read_state_dict(path: Path, what: str) -> dict[str, Tensor]:
    """A ``torch.save``'d dict of tensors, read with the restricted unpickler (no code in the file runs).

    Raises:
        UnsafePickleError: the file references code (the error lists the names; nothing was executed).
        LPIPSFormatError: the file is not a torch.save file or not a dict of tensors.
    """
    try:
        state = load_torch_file(path)
    except UnsafePickleError:
        raise
    except Exception as e:  # foreign bytes raise several types (UnpicklingError, BadZipFile, EOFError, ...)
        raise LPIPSFormatError(f"{path} is not a torch.save state dict ({type(e).__name__}: {e}); "
                               f"expected {what}") from e
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise LPIPSFormatError(f"{path}: expected a state dict of named tensors, got {type(state).__name__}; "
                               f"expected {what}")
    return state


def _key_problems(missing: list[str], unknown: list[str]) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:5])})")
    if unknown:
        parts.append(f"{len(unknown)} unknown (e.g. {', '.join(unknown[:5])})")
    return "; ".join(parts)


def check_tensors(state: dict[str, Tensor], expected: dict[str, tuple[int, ...]], source: str, what: str) -> None:
    """Every expected key present with its shape, floating point and finite; nothing unknown.

    Raises:
        LPIPSFormatError: naming the offending keys and what the file should have been.
    """
    missing = sorted(set(expected) - set(state))
    unknown = sorted(set(state) - set(expected))
    if missing or unknown:
        raise LPIPSFormatError(f"{source} is not {what}: {_key_problems(missing, unknown)} keys")
    bad = [f"{k} {tuple(state[k].shape)} != {shape}" for k, shape in expected.items()
           if tuple(state[k].shape) != shape]
    if bad:
        raise LPIPSFormatError(f"{source}: {len(bad)} tensors have the wrong shape for {what}, "
                               f"e.g. {'; '.join(bad[:3])}")
    bad = [k for k in expected if not state[k].is_floating_point() or not torch.isfinite(state[k]).all()]
    if bad:
        raise LPIPSFormatError(f"{source}: tensors that are not finite floats: {', '.join(bad[:5])}")


# ------------------------------------------------------------------------------------------- trunk

def _vgg16_feature_layers() -> list[nn.Module]:
    """torchvision's ``vgg16().features[:30]`` as a layer list (same indices, so the same state-dict keys)."""
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG16_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1), nn.ReLU()]
            channels = int(item)
    return layers


def _tap_indices() -> tuple[int, ...]:
    """Layer indices whose outputs are the taps: the ReLU just before each pool, and the last ReLU."""
    layers = _vgg16_feature_layers()
    before_pool = [i - 1 for i, layer in enumerate(layers) if isinstance(layer, nn.MaxPool2d)]
    return (*before_pool, len(layers) - 1)


def vgg16_feature_shapes() -> dict[str, tuple[int, ...]]:
    """State-dict key -> shape of every parameter of :class:`VGG16Features` (what a VGG16 file must provide),
    from :data:`VGG16_LAYOUT` alone (a conv and its ReLU take two indices, a pool one)."""
    shapes: dict[str, tuple[int, ...]] = {}
    index, channels = 0, 3
    for item in VGG16_LAYOUT:
        if item == "M":
            index += 1
            continue
        shapes[f"features.{index}.weight"] = (int(item), channels, 3, 3)
        shapes[f"features.{index}.bias"] = (int(item),)
        index, channels = index + 2, int(item)
    return shapes


TAP_INDICES = _tap_indices()
"""Indices in ``features`` of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3: (3, 8, 15, 22, 29)."""


class VGG16Features(nn.Module):
    """VGG16's convolutional trunk up to relu5_3; parameters named like torchvision's (``features.0.weight``,
    ..., ``features.28.bias``). Input: (B, 3, H, W) ImageNet-normalised images."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(*_vgg16_feature_layers())

    def forward(self, x: Tensor) -> list[Tensor]:
        """The five tap maps: (B, C_k, H / 2^k, W / 2^k) with C_k = 64, 128, 256, 512, 512."""
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in TAP_INDICES:
                taps.append(x)
        return taps


def vgg16_features_state(state: dict[str, Tensor], source: str) -> dict[str, Tensor]:
    """The ``features.*`` part of a torchvision VGG16 state dict, checked against :class:`VGG16Features`;
    ``classifier.*`` keys are dropped (LPIPS does not use them).

    Raises:
        LPIPSFormatError: a feature key missing or unknown (or any key outside features/classifier), a wrong shape.
    """
    trunk = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    check_tensors(trunk, vgg16_feature_shapes(), source,
                  f"torchvision's VGG16 state dict ({VGG16_FILE_NAME}, {VGG16_URL})")
    return trunk


def lin_head_key(tap: int) -> str:
    """The key of head ``tap`` (0..4) in the lpips package's weight file."""
    return f"lin{tap}.model.1.weight"


def lin_heads_state(state: dict[str, Tensor], source: str) -> list[Tensor]:
    """The five (1, C_k, 1, 1) head weights of an lpips ``weights/v0.1/vgg.pth`` state dict, in tap order.

    Raises:
        LPIPSFormatError: a key missing or unknown, a wrong shape, or a negative weight (the published heads
            are non-negative, which keeps the distance >= 0).
    """
    expected = {lin_head_key(k): (1, c, 1, 1) for k, c in enumerate(TAP_CHANNELS)}
    check_tensors(state, expected, source, f"the LPIPS v0.1 VGG heads file ({LPIPS_LIN_FILE}, {LPIPS_REPO_URL})")
    negative = [k for k in expected if (state[k] < 0).any()]
    if negative:
        raise LPIPSFormatError(f"{source}: LPIPS head weights must be non-negative (the published ones are); "
                               f"negative entries in {', '.join(negative)}")
    return [state[k] for k in expected]


# ------------------------------------------------------------------------------------------ metric

def scale_input(x: Tensor) -> Tensor:
    """[-1, 1] images -> the trunk's input, ``(x - shift) / scale`` per channel; (B, 1 or 3, H, W) -> (B, 3, H, W)
    (one channel broadcasts to three, as the reference's scaling layer does)."""
    shift = x.new_tensor(INPUT_SHIFT).view(1, 3, 1, 1)
    scale = x.new_tensor(INPUT_SCALE).view(1, 3, 1, 1)
    return (x - shift) / scale


def unit_normalise(features: Tensor, eps: float = NORM_EPS) -> Tensor:
    """(B, C, H, W) -> the same map divided by its channel norm at each pixel (plus ``eps``)."""
    norm = torch.sqrt(torch.sum(features ** 2, dim=1, keepdim=True))
    return features / (norm + eps)


def tap_distance(features_x: Tensor, features_y: Tensor, head: Tensor) -> Tensor:
    """One tap's term: (B, C, H, W) maps and a (1, C, 1, 1) head -> (B,) mean over pixels of the
    head-weighted squared difference of the unit-normalised maps."""
    diff = (unit_normalise(features_x) - unit_normalise(features_y)) ** 2
    return F.conv2d(diff, head).mean(dim=(2, 3)).flatten()


class LPIPS(nn.Module):
    """The frozen LPIPS-VGG metric: ``lpips(x, y)`` -> (B,) distances of (B, 3, H, W) images in [-1, 1].

    Parameters never take gradients (``requires_grad`` False, no dropout or batch-norm, so train/eval mode
    makes no difference), but the inputs do: use it as a loss. Build it with :func:`load_lpips`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.vgg = VGG16Features()
        self.heads = nn.ParameterList([nn.Parameter(torch.zeros(1, c, 1, 1)) for c in TAP_CHANNELS])
        self.requires_grad_(False)
        self.eval()

    def load_weights(self, vgg_features: dict[str, Tensor], heads: list[Tensor]) -> None:
        """Copy checked weights in (see :func:`vgg16_features_state`, :func:`lin_heads_state`)."""
        self.vgg.load_state_dict(vgg_features)
        with torch.no_grad():
            for param, weight in zip(self.heads, heads, strict=True):
                param.copy_(weight)

    @staticmethod
    def _check_pair(x: Tensor, y: Tensor) -> None:
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"LPIPS compares two (B, 3, H, W) (or (B, 1, H, W)) images of one shape, got "
                             f"{tuple(x.shape)} and {tuple(y.shape)}")
        if min(x.shape[2:]) < MIN_SIZE:
            raise ValueError(f"LPIPS needs images of at least {MIN_SIZE}x{MIN_SIZE} px (four 2x2 poolings), "
                             f"got {tuple(x.shape[2:])}; upsample them first")

    def distance_per_tap(self, x: Tensor, y: Tensor) -> list[Tensor]:
        """The five (B,) terms (relu1_2 ... relu5_3) of the distance of x and y, (B, 1|3, H, W) in [-1, 1]."""
        self._check_pair(x, y)
        features_x = self.vgg(scale_input(x))
        features_y = self.vgg(scale_input(y))
        return [tap_distance(fx, fy, head) for fx, fy, head in zip(features_x, features_y, self.heads, strict=True)]

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """(B,) LPIPS distances (the reference returns the same numbers shaped (B, 1, 1, 1))."""
        terms = self.distance_per_tap(x, y)
        total = terms[0]
        for term in terms[1:]:  # added in tap order, like the reference
            total = total + term
        return total


def load_lpips(vgg_path: str | os.PathLike | None = None, lin_path: str | os.PathLike | None = None,
               device: str | torch.device = "cpu") -> LPIPS:
    """The frozen LPIPS-VGG metric from torchvision's ``vgg16-397923af.pth`` and lpips' ``weights/v0.1/vgg.pth``
    (None: ``$AWARE3D_LPIPS_VGG16`` / ``$AWARE3D_LPIPS_LIN``), on ``device``.

    Raises:
        LPIPSWeightsNotFound: a file is missing (every missing one is named with its source and licence).
        LPIPSFormatError: a file is not the expected state dict (keys and shapes are checked).
        UnsafePickleError: a file's pickle references code (nothing is executed).
    """
    vgg_file, lin_file = resolve_lpips_paths(vgg_path, lin_path)
    trunk = vgg16_features_state(read_state_dict(vgg_file, _VGG16_SOURCE), str(vgg_file))
    heads = lin_heads_state(read_state_dict(lin_file, _LIN_SOURCE), str(lin_file))
    model = LPIPS()
    model.load_weights(trunk, heads)
    return model.to(device)


def load_lpips_from_config(config: LPIPSConfig, device: str | torch.device = "cpu") -> LPIPS:
    """:func:`load_lpips` with the paths of an :class:`LPIPSConfig`."""
    return load_lpips(config.vgg_weights, config.lin_weights, device)


__all__ = [
    "INPUT_SCALE", "INPUT_SHIFT", "LPIPS", "LPIPSConfig", "LPIPSFormatError", "LPIPSWeightsNotFound", "LPIPS_LIN_ENV",
    "LPIPS_LIN_FILE", "LPIPS_REPO_URL", "TAP_CHANNELS", "TAP_INDICES", "TAP_NAMES", "VGG16Features", "VGG16_ENV",
    "VGG16_FILE_NAME", "VGG16_URL", "lin_head_key", "lin_heads_state", "load_lpips", "load_lpips_from_config",
    "read_state_dict", "resolve_lpips_paths", "scale_input", "tap_distance", "unit_normalise", "vgg16_feature_shapes",
    "vgg16_features_state",
]
