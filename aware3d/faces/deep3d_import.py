"""Deep3DFaceRecon's face-reconstruction network (R-Net) and the importer of its released weights.

The network (Deng et al. 2019, PyTorch release by S. Xu) is a ResNet-50 trunk
(:class:`aware3d.faces.resnet.ResNet50Trunk`) whose globally pooled 2048-d feature feeds seven 1x1
convolution heads; their outputs, concatenated in this order, are the 257-d coefficient vector:

    ====  =========  =====================================================================
    dims  slice      meaning
    ====  =========  =====================================================================
    80    0:80       identity (BFM shape basis)
    64    80:144     expression (Exp_Pca basis)
    80    144:224    texture (BFM albedo basis)
    3     224:227    Euler angles (x, y, z) in radians; R = Rz Ry Rx
    27    227:254    SH lighting, colour-major (9 bands of red, then green, then blue), added to the
                     official default light (0.8 on band 0)
    2     254:256    translation x, y (head 5)
    1     256:257    translation z (head 6: the official code splits translation into an xy and a z head)
    ====  =========  =====================================================================

Input convention of the official weights: a 224 x 224 crop of the face aligned by 5 landmarks (the
official ``align_img``), RGB in [0, 1] with no mean/std normalisation, batch norms in eval mode.
Translation is in the units of ``BFM_model_front.mat``'s (re-centred) mean shape; the official renderer
puts the camera at z = 10 looking down -z, focal 1015 px, principal point (112, 112) on the crop.
:meth:`Deep3DFaceReconNet.reconstruct` takes aware3d images ((B, 3, H, W) in [-1, 1], already cropped
like that), maps them to [0, 1] and resizes them to 224 px.

The weights are never downloaded. The released checkpoint ``epoch_20.pth`` (model
``face_recon_feat0.2_augment``) is a ``torch.save`` dict whose ``net_recon`` entry is the network's state
dict (torchvision names under ``backbone.``, heads under ``final_layers.{0..6}``) beside optimizer and
scheduler state. It is read with aware3d's restricted unpickler (nothing in it runs), recognised by its
content, and mapped key by key onto our names (:func:`deep3d_key_map`) with every tensor's shape checked.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from ..io.keymap import CheckpointMismatchError, apply_key_map
from ..io.safe_unpickle import load_torch_file
from ..io.sniff import FileSummary, summarize_bytes
from .layout import DEEP3D_IMAGE_SIZE
from .model import FaceCoefficients
from .regressor import FaceReconstruction, resize_images
from .resnet import FEATURE_DIM, RESNET50_STAGES, ResNet50Trunk

DEEP3D_CHECKPOINT_NAME = "epoch_20.pth"
"""File name of the released checkpoint."""
DEEP3D_MODEL_NAME = "face_recon_feat0.2_augment"
"""The released model's folder (``checkpoints/<name>/epoch_20.pth`` in the official layout)."""
DEEP3D_ENV = "AWARE3D_DEEP3D_RECON"
"""Environment variable with the checkpoint's path, used when no path is given."""
DEEP3D_HEADS: tuple[tuple[str, int], ...] = (
    ("identity", 80), ("expression", 64), ("texture", 80), ("angles", 3), ("lighting", 27),
    ("translation_xy", 2), ("translation_z", 1))
"""Our name and output size of each official head ``final_layers.{i}``, in output order."""
DEEP3D_OUTPUT_DIM = sum(dim for _, dim in DEEP3D_HEADS)
"""257."""

_SOURCE = (f"the released Deep3DFaceRecon_pytorch checkpoint {DEEP3D_MODEL_NAME}/{DEEP3D_CHECKPOINT_NAME} "
           "(https://github.com/sicxu/Deep3DFaceRecon_pytorch, README 'Inference with a pre-trained model': a "
           "Google Drive folder of checkpoints). Licence: the repository is MIT-licensed (Copyright 2022 Sicheng "
           "Xu) and the weights carry no other licence; they predict coefficients of the Basel Face Model 2009, "
           "whose own licence (registration with the University of Basel) governs the face model they decode with")
_BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


class Deep3DWeightsNotFound(FileNotFoundError):
    """The Deep3DFaceRecon checkpoint is missing; the message names the file, where it comes from and its licence."""


class Deep3DFaceReconNet(nn.Module):
    """ResNet-50 + seven 1x1 heads: (B, 3, 224, 224) RGB in [0, 1] -> (B, 257) coefficients (module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = ResNet50Trunk()
        self.heads = nn.ModuleDict({name: nn.Conv2d(FEATURE_DIM, dim, kernel_size=1) for name, dim in DEEP3D_HEADS})

    def forward(self, rgb01: Tensor) -> Tensor:
        pooled = self.trunk(rgb01)[:, :, None, None]
        return torch.cat([self.heads[name](pooled).flatten(1) for name, _ in DEEP3D_HEADS], dim=1)

    def reconstruct(self, images: Tensor) -> FaceReconstruction:
        """Aware3d images (B, 3, H, W) in [-1, 1] (face crops) -> coefficients; no landmarks, no codes."""
        rgb01 = resize_images((images + 1.0) * 0.5, DEEP3D_IMAGE_SIZE)
        return FaceReconstruction(coefficients=FaceCoefficients.from_vector(self(rgb01)), landmarks=None)


# ------------------------------------------------------------------------------------------- key map

def _batch_norm_keys(official: str, ours: str) -> dict[str, str]:
    return {f"{official}.{s}": f"{ours}.{s}" for s in _BN_SUFFIXES}


def _block_key_map(stage: int, block: int) -> dict[str, str]:
    """Official ``backbone.layer{stage+1}.{block}.*`` -> our ``trunk.stages.{stage}.{block}.*``."""
    src, dst = f"backbone.layer{stage + 1}.{block}", f"trunk.stages.{stage}.{block}"
    keys: dict[str, str] = {}
    for index, ours in enumerate(("reduce", "spatial", "expand"), start=1):
        keys[f"{src}.conv{index}.weight"] = f"{dst}.{ours}.weight"
        keys |= _batch_norm_keys(f"{src}.bn{index}", f"{dst}.{ours}_norm")
    if block == 0:  # the first block of every ResNet-50 stage changes the channel count: a projection shortcut
        keys[f"{src}.downsample.0.weight"] = f"{dst}.shortcut.conv.weight"
        keys |= _batch_norm_keys(f"{src}.downsample.1", f"{dst}.shortcut.norm")
    return keys


def deep3d_key_map() -> dict[str, str]:
    """Official ``net_recon`` key -> :class:`Deep3DFaceReconNet` key, for every tensor of the network."""
    keys = {"backbone.conv1.weight": "trunk.stem_conv.weight"}
    keys |= _batch_norm_keys("backbone.bn1", "trunk.stem_norm")
    for stage, (_, blocks, _) in enumerate(RESNET50_STAGES):
        for block in range(blocks):
            keys |= _block_key_map(stage, block)
    for index, (name, _) in enumerate(DEEP3D_HEADS):
        keys[f"final_layers.{index}.weight"] = f"heads.{name}.weight"
        keys[f"final_layers.{index}.bias"] = f"heads.{name}.bias"
    return keys


# ------------------------------------------------------------------------------------------- files

def resolve_deep3d_path(path: str | os.PathLike | None = None) -> Path:
    """The checkpoint to read: ``path``, else ``$AWARE3D_DEEP3D_RECON``.

    Raises:
        Deep3DWeightsNotFound: naming the file, where it is published and its licence.
    """
    raw = path if path is not None else os.environ.get(DEEP3D_ENV) or None
    if raw is None:
        raise Deep3DWeightsNotFound(f"no Deep3DFaceRecon checkpoint was given: pass the path of {DEEP3D_CHECKPOINT_NAME} "
                                    f"or set {DEEP3D_ENV}=PATH. It is {_SOURCE}")
    found = Path(raw).expanduser()
    if not found.is_file():
        raise Deep3DWeightsNotFound(f"Deep3DFaceRecon checkpoint {str(found)!r} not found: expected "
                                    f"{DEEP3D_CHECKPOINT_NAME}, which is {_SOURCE}")
    return found


def looks_like_deep3d_checkpoint(summary: FileSummary) -> bool:
    """Whether a file's content is a Deep3DFaceRecon checkpoint (the full dict or a bare ``net_recon`` state dict)."""
    return summary.container in ("torch-zip", "pickle") and "backbone.conv1.weight" in summary.strings \
        and "final_layers.0.weight" in summary.strings


def read_deep3d_state(path: str | os.PathLike) -> dict[str, Tensor]:
    """The ``net_recon`` tensors of a checkpoint file, read once and with the restricted unpickler.

    Accepts the released dict (``net_recon`` beside ``opt_00``/``sched_00``, which are ignored) or a bare
    state dict of the network. Raises CheckpointMismatchError when the content is something else.
    """
    path = Path(path)
    data = path.read_bytes()
    summary = summarize_bytes(data, path)
    if not looks_like_deep3d_checkpoint(summary):
        raise CheckpointMismatchError(f"{path} is not a Deep3DFaceRecon checkpoint ({summary.describe()}); expected "
                                      f"{DEEP3D_CHECKPOINT_NAME} of {DEEP3D_MODEL_NAME} with a 'net_recon' state dict")
    content = load_torch_file(io.BytesIO(data))
    state = content.get("net_recon", content) if isinstance(content, dict) else None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise CheckpointMismatchError(f"{path}: 'net_recon' is not a state dict of named tensors")
    return dict(state)


def load_deep3d_recon(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> Deep3DFaceReconNet:
    """:class:`Deep3DFaceReconNet` with the released weights, in ``eval()`` mode.

    ``path``: the checkpoint (None: ``$AWARE3D_DEEP3D_RECON``). Every tensor of the network must come from
    the file with its shape; unknown keys are refused (all problems are listed at once).
    """
    found = resolve_deep3d_path(path)
    net = Deep3DFaceReconNet()
    apply_key_map(net, read_deep3d_state(found), deep3d_key_map(), what=str(found))
    return net.to(device).eval()


__all__ = ["DEEP3D_CHECKPOINT_NAME", "DEEP3D_ENV", "DEEP3D_HEADS", "DEEP3D_MODEL_NAME",
           "DEEP3D_OUTPUT_DIM", "Deep3DFaceReconNet", "Deep3DWeightsNotFound", "deep3d_key_map",
           "load_deep3d_recon", "looks_like_deep3d_checkpoint", "read_deep3d_state", "resolve_deep3d_path"]
