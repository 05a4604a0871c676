"""Inception-v3 feature detectors for FID, KID and the Inception Score, loaded from a local file.

Two published files of the same network (TensorFlow's ``inception-2015-12-05`` graph) are accepted:

* NVIDIA's TorchScript detector ``inception-2015-12-05.pt`` (StyleGAN2-ADA / StyleGAN3 / EG3D metrics). It
  takes uint8 (N, 3, H, W) images of any size, resizes them itself, and is called as
  ``detector(images, return_features=True)`` -> (N, 2048) pool features, or
  ``detector(images, no_output_bias=True)`` -> (N, 1008) class probabilities without the logits' bias
  (what the seeds' Inception Score uses).
* pytorch-fid's converted state dict ``pt_inception-2015-12-05-6726825d.pth`` (also used by
  torch-fidelity). It is loaded into :class:`FIDInceptionV3`, written here in plain torch with the layer
  names of that file, after a key-by-key check. Its preprocessing is pytorch-fid's: uint8 -> [0, 1],
  bilinear resize to 299 x 299 (align_corners=False, no antialiasing), then ``2 x - 1``. Probabilities are
  ``softmax(features @ fc.weight.T)`` (no bias, like the TorchScript detector's ``no_output_bias``).

The two give close but not identical features (different resizing); the output JSON records which file
and which kind were used, and the real-image statistics cache is keyed by the file's sha256.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NVIDIA_DETECTOR_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
PYTORCH_FID_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                           "pt_inception-2015-12-05-6726825d.pth")
INCEPTION_ENV = "AWARE3D_INCEPTION"


class InceptionWeightsNotFound(FileNotFoundError):
    """The Inception file is missing; the message says where it is published and how to point at it."""


class InceptionFormatError(ValueError):
    """The Inception file is neither NVIDIA's TorchScript detector nor pytorch-fid's state dict."""


def _missing_message(what: str) -> str:
    return (
        f"{what}. FID, KID and IS need the Inception-v3 weights as a local file (they are not downloaded). "
        f"Use either NVIDIA's TorchScript detector inception-2015-12-05.pt, published at {NVIDIA_DETECTOR_URL}, "
        f"or pytorch-fid's pt_inception-2015-12-05-6726825d.pth, published at {PYTORCH_FID_WEIGHTS_URL}; "
        f"then pass --inception PATH (Python: inception=PATH) or set the environment variable {INCEPTION_ENV}=PATH."
    )


def resolve_inception_path(path: str | os.PathLike | None = None) -> Path:
    """The Inception file to use: ``path`` if given, else ``$AWARE3D_INCEPTION``; raises
    :class:`InceptionWeightsNotFound` naming the file when it does not exist."""
    if path is None:
        env = os.environ.get(INCEPTION_ENV)
        if not env:
            raise InceptionWeightsNotFound(_missing_message("no Inception file was given"))
        path = env
    p = Path(path).expanduser()
    if not p.is_file():
        raise InceptionWeightsNotFound(_missing_message(f"Inception file {str(p)!r} not found"))
    return p


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file (memoised per path, size and mtime: the 100 MB detector is hashed once)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key]


# ------------------------------------------------------------------------------- the FID network

class ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm (eps 1e-3) + ReLU; submodules named ``conv`` and ``bn`` as in the file."""

    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x: Tensor) -> Tensor:
    # TensorFlow's 3x3 SAME average pool divides by the number of real (non-padded) inputs.
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class MixedA(nn.Module):
    """35x35 block (Mixed_5b/c/d): 1x1, 5x5, double 3x3 and pooled branches."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(cin, 64, 1)
        self.branch5x5_1 = ConvBN(cin, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(cin, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_tf_avg_pool(x))], 1)


class ReductionB(nn.Module):
    """35 -> 17 reduction (Mixed_6a)."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBN(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


class MixedC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (Mixed_6b/c/d/e)."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
        self.branch1x1 = ConvBN(cin, 192, 1)
        self.branch7x7_1 = ConvBN(cin, c7, 1)
        self.branch7x7_2 = ConvBN(c7, c7, **row)
        self.branch7x7_3 = ConvBN(c7, 192, **col)
        self.branch7x7dbl_1 = ConvBN(cin, c7, 1)
        self.branch7x7dbl_2 = ConvBN(c7, c7, **col)
        self.branch7x7dbl_3 = ConvBN(c7, c7, **row)
        self.branch7x7dbl_4 = ConvBN(c7, c7, **col)
        self.branch7x7dbl_5 = ConvBN(c7, 192, **row)
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            d = layer(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_tf_avg_pool(x))], 1)


class ReductionD(nn.Module):
    """17 -> 8 reduction (Mixed_7a)."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBN(cin, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(cin, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class MixedE(nn.Module):
    """8x8 block with split 1x3 / 3x1 outputs (Mixed_7b/c). ``pool`` is the pooled branch's pooling: the
    FID graph uses a TF average pool in Mixed_7b and a max pool in Mixed_7c."""

    def __init__(self, cin: int, pool: str) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"unknown pooling {pool!r}; valid: avg, max")
        self.pool = pool
        self.branch1x1 = ConvBN(cin, 320, 1)
        self.branch3x3_1 = ConvBN(cin, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(cin, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = _tf_avg_pool(x) if self.pool == "avg" else F.max_pool2d(x, 3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(s), self.branch3x3_2b(s),
                          self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d), self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """The FID variant of Inception-v3 (TF graph 2015-12-05, 1008 classes, no auxiliary head).

    Parameter names equal those of pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``. Input: (N, 3,
    299, 299) float in [-1, 1]; :meth:`forward` returns the (N, 2048) pool features, :meth:`logits` the
    (N, 1008) class logits (optionally without the bias).
    """

    def __init__(self, num_classes: int = 1008) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = MixedA(192, 32)
        self.Mixed_5c = MixedA(256, 64)
        self.Mixed_5d = MixedA(288, 64)
        self.Mixed_6a = ReductionB(288)
        self.Mixed_6b = MixedC(768, 128)
        self.Mixed_6c = MixedC(768, 160)
        self.Mixed_6d = MixedC(768, 160)
        self.Mixed_6e = MixedC(768, 192)
        self.Mixed_7a = ReductionD(768)
        self.Mixed_7b = MixedE(1280, "avg")
        self.Mixed_7c = MixedE(2048, "max")
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))

    def logits(self, features: Tensor, bias: bool = True) -> Tensor:
        """(N, 1008) class logits of (N, 2048) pool features."""
        return F.linear(features, self.fc.weight, self.fc.bias if bias else None)


def check_fid_state_dict(state: dict, model: nn.Module, source: str) -> dict:
    """Validate a state dict against ``model``: every parameter and running statistic present with its
    shape, nothing unknown. BatchNorm ``num_batches_tracked`` counters are optional (older files lack
    them). Returns the dict to load (missing counters filled with 0)."""
    expected = model.state_dict()
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(state) - optional)
    unknown = sorted(set(state) - set(expected))
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:5])})")
        if unknown:
            parts.append(f"{len(unknown)} unknown (e.g. {', '.join(unknown[:5])})")
        raise InceptionFormatError(
            f"{source} is not pytorch-fid's pt_inception-2015-12-05 state dict: {'; '.join(parts)} keys. "
            f"Expected NVIDIA's inception-2015-12-05.pt ({NVIDIA_DETECTOR_URL}) or {PYTORCH_FID_WEIGHTS_URL}")
    bad = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
           if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if bad:
        raise InceptionFormatError(f"{source}: {len(bad)} tensors have the wrong shape, e.g. {'; '.join(bad[:3])}")
    out = dict(state)
    for k in optional - set(state):
        out[k] = torch.zeros((), dtype=torch.long)
    return out


# ------------------------------------------------------------------------------------- detector

def _is_torchscript_archive(path: Path) -> bool:
    """TorchScript archives are zips holding ``code/`` and ``constants.pkl``; torch.save zips do not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


class InceptionDetector:
    """One interface over both files: uint8 (N, 3, H, W) images -> features or class probabilities."""

    def __init__(self, module: nn.Module, kind: str, path: Path, sha256: str) -> None:
        self.module = module
        self.kind = kind
        """'torchscript' (NVIDIA's detector) or 'pytorch_fid' (the converted state dict)."""
        self.path = path
        self.sha256 = sha256

    def to(self, device) -> "InceptionDetector":
        self.module = self.module.to(device)
        return self

    @property
    def device(self) -> torch.device:
        for t in list(self.module.parameters()) + list(self.module.buffers()):
            return t.device
        return torch.device("cpu")

    def describe(self) -> dict:
        """What the output JSON records about the detector."""
        return {"kind": self.kind, "file": str(self.path), "sha256": self.sha256,
                "preprocessing": ("NVIDIA TorchScript detector: uint8 in, its own resize to 299"
                                  if self.kind == "torchscript" else
                                  "pytorch-fid: uint8/255, bilinear resize to 299 (align_corners=False), 2x-1")}

    @staticmethod
    def _check(images: Tensor) -> Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"the Inception detector takes uint8 (N, 3, H, W) images, got {images.dtype} "
                             f"{tuple(images.shape)}")
        return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images

    def _fid_input(self, images: Tensor) -> Tensor:
        x = images.float() / 255
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return 2 * x - 1

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        """(N, D) float32 pool features (D = 2048 for the real files)."""
        images = self._check(images).to(self.device)
        if self.kind == "torchscript":
            return self.module(images, return_features=True).float()
        return self.module(self._fid_input(images)).float()

    @torch.no_grad()
    def probabilities(self, images: Tensor) -> Tensor:
        """(N, K) float32 class probabilities from logits without their bias (the seeds' IS)."""
        images = self._check(images).to(self.device)
        if self.kind == "torchscript":
            return self.module(images, no_output_bias=True).float()
        feats = self.module(self._fid_input(images))
        return torch.softmax(self.module.logits(feats, bias=False), dim=1).float()


_DETECTORS: dict[tuple[str, str], InceptionDetector] = {}


def load_inception(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> InceptionDetector:
    """Load the Inception detector from ``path`` (or ``$AWARE3D_INCEPTION``), TorchScript or state dict.

    Raises:
        InceptionWeightsNotFound: no such file (the message gives the published URLs, ``--inception`` and
            ``AWARE3D_INCEPTION``).
        InceptionFormatError: the file is neither of the two formats.
    """
    p = resolve_inception_path(path)
    digest = file_sha256(p)
    key = (digest, str(device))
    if key in _DETECTORS:
        return _DETECTORS[key]
    if _is_torchscript_archive(p):
        try:
            with warnings.catch_warnings():
                # NVIDIA's detector only exists as TorchScript; torch's deprecation notice is no news to the user.
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(p), map_location="cpu").eval()
        except RuntimeError as e:
            raise InceptionFormatError(f"{p}: not a loadable TorchScript detector ({e})") from e
        det = InceptionDetector(module, "torchscript", p, digest)
    else:
        try:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises several types for foreign files (UnpicklingError, RuntimeError)
            raise InceptionFormatError(
                f"{p} is neither a TorchScript detector nor a tensor-only state dict ({type(e).__name__}: {e}). "
                f"Expected NVIDIA's inception-2015-12-05.pt ({NVIDIA_DETECTOR_URL}) or pytorch-fid's "
                f"pt_inception-2015-12-05-6726825d.pth ({PYTORCH_FID_WEIGHTS_URL}); StyleGAN3's .pkl detector is a "
                "Python pickle that aware3d does not execute: use the .pt file of the same network") from e
        if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
            raise InceptionFormatError(f"{p}: expected a state dict of tensors, got {type(state).__name__}")
        model = FIDInceptionV3()
        model.load_state_dict(check_fid_state_dict(state, model, str(p)))
        det = InceptionDetector(model.eval().requires_grad_(False), "pytorch_fid", p, digest)
    _DETECTORS[key] = det.to(device)
    return det


__all__ = [
    "FIDInceptionV3", "INCEPTION_ENV", "InceptionDetector", "InceptionFormatError", "InceptionWeightsNotFound",
    "NVIDIA_DETECTOR_URL", "PYTORCH_FID_WEIGHTS_URL", "check_fid_state_dict", "file_sha256", "load_inception",
    "resolve_inception_path",
]
