"""The face-coefficient regressor: a small CNN that reads morphable-model coefficients, pose and 68 landmarks
back from an image, its loss and training loop, and its checkpoint folder.

Images are (B, 3, H, W) RGB in [-1, 1] (aware3d's convention); any size is resized (bilinear, antialiased)
to the network's square input. Landmarks are (B, 68, 2) pixel xy in the image that was passed in, in
aware3d's convention (:func:`aware3d.rendering.rasterize.project_points`): x to the right, y down, the
centre of pixel (row i, column j) at (j, i), so a W x H image spans [-0.5, W - 0.5] x [-0.5, H - 0.5] and
its centre is ((W - 1) / 2, (H - 1) / 2).

Coefficients are predicted in *whitened* units: each group's head outputs a code ``z`` and the
coefficients are ``c = mean + L z`` with the group's mean and lower-triangular (Cholesky) factor ``L`` held
as buffers (:class:`CoefficientWhitening`; identity by default; set them from a
:class:`~aware3d.faces.statistics.CoefficientStatistics` fitted to the training coefficients). The loss compares codes, so groups of very different scales
(radians, translations, SH bands) weigh alike. :class:`FaceReconstruction` is the shared prediction type;
Deep3DFaceRecon's ResNet-50 (:mod:`aware3d.faces.deep3d_import`) returns it too, with no landmarks.

Checkpoints are a folder with ``config.json`` (format ``aware3d-face-regressor``) and
``regressor.safetensors`` (weights and whitening buffers); nothing is pickled.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn

from ..config import from_dict, to_dict
from ..io.atomic import atomic_folder
from ..io.checkpoint import CONFIG, CheckpointError, load_state_strict, read_folder_meta, read_weights
from .layout import COEFFICIENT_GROUPS, NUM_LANDMARKS
from .model import FaceCoefficients
from .statistics import CoefficientStatistics

GROUP_DIMS: dict[str, int] = dict(COEFFICIENT_GROUPS)
"""Size of each coefficient group, by its :class:`FaceCoefficients` field name, in field order."""
REGRESSOR_FORMAT = "aware3d-face-regressor"
"""The ``format`` entry of a regressor's ``config.json``."""
REGRESSOR_VERSION = 1
"""The newest regressor checkpoint version this code reads."""
REGRESSOR_WEIGHTS = "regressor.safetensors"
"""The weights file inside a regressor checkpoint folder."""


@dataclass
class FaceReconstruction:
    """What a face-reconstruction network reads from a batch of images."""

    coefficients: FaceCoefficients
    """Morphable-model coefficients in the face model's own units, each group (B, dim)."""
    landmarks: Tensor | None
    """(B, 68, 2) pixel xy in the input image (see the module docstring), or None (Deep3DFaceRecon's net)."""
    whitened: FaceCoefficients | None = None
    """The same coefficients as whitened codes (what the regressor's heads output), or None."""


class FaceReconstructor(Protocol):
    """Anything that reconstructs faces: images (B, 3, H, W) in [-1, 1] -> :class:`FaceReconstruction`."""

    def reconstruct(self, images: Tensor) -> FaceReconstruction: ...


def resize_images(images: Tensor, size: int) -> Tensor:
    """(B, C, H, W) -> (B, C, size, size), bilinear (antialiased when shrinking); unchanged if already that size."""
    if images.shape[-2:] == (size, size):
        return images
    shrinking = images.shape[-2] > size or images.shape[-1] > size
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)


# ------------------------------------------------------------------------------------------- whitening

class CoefficientWhitening(nn.Module):
    """Per group a mean (dim,) and a lower-triangular factor L (dim, dim), buffers: ``c = mean + L z``
    (the same map as :meth:`CoefficientStatistics.unwhiten`, kept in the checkpoint).

    With L the Cholesky factor of the group's covariance, ``z`` is white (zero mean, identity covariance)
    when ``c`` follows that distribution. Defaults: mean 0, L = I (codes are the coefficients).
    """

    def __init__(self) -> None:
        super().__init__()
        for group, dim in GROUP_DIMS.items():
            self.register_buffer(f"{group}_mean", torch.zeros(dim))
            self.register_buffer(f"{group}_cholesky", torch.eye(dim))

    def statistics(self, group: str) -> tuple[Tensor, Tensor]:
        """The group's (mean (dim,), L (dim, dim)) buffers."""
        return self.get_buffer(f"{group}_mean"), self.get_buffer(f"{group}_cholesky")

    def set_group(self, group: str, mean: Tensor, cholesky: Tensor) -> None:
        """Replace a group's mean and factor (checked: shapes, finite, lower triangular, positive diagonal)."""
        if group not in GROUP_DIMS:
            raise KeyError(f"unknown coefficient group {group!r}; valid: {', '.join(GROUP_DIMS)}")
        dim = GROUP_DIMS[group]
        if tuple(mean.shape) != (dim,) or tuple(cholesky.shape) != (dim, dim):
            raise ValueError(f"whitening of {group}: expected mean ({dim},) and cholesky ({dim}, {dim}), got "
                             f"{tuple(mean.shape)} and {tuple(cholesky.shape)}")
        bad = (not torch.isfinite(mean).all() or not torch.isfinite(cholesky).all()
               or not torch.equal(cholesky, torch.tril(cholesky)) or not (torch.diagonal(cholesky) > 0).all())
        if bad:
            raise ValueError(f"whitening of {group}: the factor must be finite and lower triangular with a "
                             "positive diagonal (a Cholesky factor of the covariance)")
        old_mean, old_factor = self.statistics(group)
        with torch.no_grad():
            old_mean.copy_(mean)
            old_factor.copy_(cholesky)

    def set_statistics(self, statistics: CoefficientStatistics, groups: Iterable[str] | None = None) -> None:
        """Take the mean and Cholesky factor of ``groups`` (None: all) from fitted coefficient statistics."""
        for group in GROUP_DIMS if groups is None else groups:
            fitted = statistics.groups[group]
            mean, factor = self.statistics(group)
            self.set_group(group, fitted.mean.to(mean), fitted.cholesky.to(factor))

    def unwhiten(self, group: str, codes: Tensor) -> Tensor:
        """(B, dim) codes -> (B, dim) coefficients ``mean + L z``."""
        mean, factor = self.statistics(group)
        return mean + codes @ factor.transpose(0, 1)

    def whiten(self, group: str, coefficients: Tensor) -> Tensor:
        """(B, dim) coefficients -> (B, dim) codes ``L^-1 (c - mean)`` (a triangular solve)."""
        mean, factor = self.statistics(group)
        centred = (coefficients - mean).transpose(0, 1)
        return torch.linalg.solve_triangular(factor, centred, upper=False).transpose(0, 1)


# ------------------------------------------------------------------------------------------- network

@dataclass(frozen=True)
class RegressorConfig:
    """Architecture of :class:`FaceCoefficientRegressor`."""

    image_size: int = 64
    """Square input resolution in pixels; other image sizes are resized to it first."""
    channels: tuple[int, ...] = (32, 64, 128, 256)
    """Widths of the conv blocks; each block halves the resolution (image_size must divide by 2**len)."""
    hidden: int = 512
    """Width of the fully connected layer that all heads share."""
    norm: Literal["batch", "none"] = "batch"
    """Normalisation after each convolution: batch norm (running statistics in eval mode) or none. Not a
    per-sample norm (group/instance norm): it would remove the overall brightness that lighting and
    texture codes are read from."""
    coordinate_channels: bool = True
    """Append each pixel's (x, y) in [-1, 1] as two extra input channels (helps to locate landmarks)."""

    def __post_init__(self) -> None:
        if not self.channels or self.image_size % (2 ** len(self.channels)):
            raise ValueError(f"RegressorConfig: image_size {self.image_size} must be divisible by 2**len(channels) "
                             f"= {2 ** len(self.channels)} (and channels non-empty)")

    @property
    def final_size(self) -> int:
        """Resolution after the last block."""
        return self.image_size // 2 ** len(self.channels)


def _conv_block(in_channels: int, out_channels: int, norm: str) -> nn.Sequential:
    """3x3 stride-2 conv -> norm -> SiLU -> 3x3 conv -> norm -> SiLU: halves the resolution."""
    def normalise() -> nn.Module:
        return nn.BatchNorm2d(out_channels) if norm == "batch" else nn.Identity()

    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1), normalise(), nn.SiLU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=1), normalise(), nn.SiLU(),
    )


def coordinate_grid(batch: int, size: int, like: Tensor) -> Tensor:
    """(batch, 2, size, size): x and y of each pixel centre in [-1, 1] (x right, y down)."""
    axis = (torch.arange(size, device=like.device, dtype=like.dtype) + 0.5) * (2.0 / size) - 1.0
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([x, y]).expand(batch, -1, -1, -1)


class FaceCoefficientRegressor(nn.Module):
    """Images -> whitened coefficient codes per group and 68 landmarks (see the module docstring).

    Heads start at zero: an untrained regressor predicts the whitening mean and the image centre.
    Construction is deterministic for a ``seed`` and leaves the global random state untouched.
    """

    def __init__(self, config: RegressorConfig = RegressorConfig(), seed: int = 0) -> None:
        super().__init__()
        self.config = config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._build(config)
        self.whitening = CoefficientWhitening()

    def _build(self, config: RegressorConfig) -> None:
        widths = ((5 if config.coordinate_channels else 3), *config.channels)
        self.blocks = nn.Sequential(*(_conv_block(a, b, config.norm) for a, b in pairwise(widths)))
        self.shared = nn.Sequential(nn.Flatten(), nn.Linear(widths[-1] * config.final_size ** 2, config.hidden),
                                    nn.SiLU())
        heads = {group: nn.Linear(config.hidden, dim) for group, dim in GROUP_DIMS.items()}
        heads["landmarks"] = nn.Linear(config.hidden, 2 * NUM_LANDMARKS)
        self.heads = nn.ModuleDict(heads)
        for head in self.heads.values():
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, images: Tensor) -> FaceReconstruction:
        """(B, 3, H, W) in [-1, 1] -> :class:`FaceReconstruction` with codes, coefficients and landmarks."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"the face regressor takes (B, 3, H, W) images, got {tuple(images.shape)}")
        height, width = images.shape[-2:]
        x = resize_images(images, self.config.image_size)
        if self.config.coordinate_channels:
            x = torch.cat([x, coordinate_grid(x.shape[0], self.config.image_size, x)], dim=1)
        features = self.shared(self.blocks(x))
        codes = {group: self.heads[group](features) for group in GROUP_DIMS}
        unit = self.heads["landmarks"](features).view(-1, NUM_LANDMARKS, 2)
        scale = torch.tensor([width, height], dtype=unit.dtype, device=unit.device)
        return FaceReconstruction(
            coefficients=FaceCoefficients(**{g: self.whitening.unwhiten(g, z) for g, z in codes.items()}),
            landmarks=(unit + 1.0) * 0.5 * scale - 0.5,  # unit -1 / +1: the image's left / right border
            whitened=FaceCoefficients(**codes),
        )

    def reconstruct(self, images: Tensor) -> FaceReconstruction:
        """The shared :class:`FaceReconstructor` interface (same as calling the module)."""
        return self(images)


# ------------------------------------------------------------------------------------------- loss

@dataclass(frozen=True)
class RegressorLossWeights:
    """Weights of the regressor's loss terms (a term whose target the batch lacks is left out).

    A coefficient term is the squared distance between predicted and target codes in whitened units,
    summed over the group's dimensions (a Mahalanobis distance, so every whitened dimension counts alike)
    and averaged over the batch.
    """

    identity: float = 1.0
    """Weight of the identity code distance."""
    expression: float = 1.0
    """Weight of the expression code distance."""
    texture: float = 1.0
    """Weight of the texture code distance."""
    lighting: float = 1.0
    """Weight of the lighting code distance."""
    pose: float = 1.0
    """Weight of the pose code distance."""
    landmarks: float = 1.0
    """Weight of the squared landmark distance in half-image units (the image spans [-1, 1] on each axis),
    averaged over landmarks and batch."""


def batch_targets(batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The coefficient targets of a batch, by group.

    A batch holds ``coefficients`` (B, 257) in Deep3DFaceRecon order and/or per-group keys (``identity``,
    ``expression``, ``texture``, ``lighting``, ``pose`` (B, 6)); a per-group key overrides that group of the
    vector. Groups absent from both are absent from the result.
    """
    targets: dict[str, Tensor] = {}
    if "coefficients" in batch:
        vector = FaceCoefficients.from_vector(batch["coefficients"])
        targets = {group: getattr(vector, group) for group in GROUP_DIMS}
    for group in GROUP_DIMS:
        if group in batch:
            targets[group] = batch[group]
    for group, value in targets.items():
        if value.ndim != 2 or value.shape[1] != GROUP_DIMS[group]:
            raise ValueError(f"batch {group} targets must be (B, {GROUP_DIMS[group]}), got {tuple(value.shape)}")
    return targets


def regressor_loss(model: FaceCoefficientRegressor, batch: Mapping[str, Tensor],
                   weights: RegressorLossWeights = RegressorLossWeights(),
                   images: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
    """The weighted loss on one batch and its unweighted terms (floats) by name.

    ``images`` replaces ``batch['image']`` (e.g. with noise added); landmark targets are pixels of it.
    """
    images = batch["image"] if images is None else images
    prediction = model(images)
    assert prediction.whitened is not None
    total = images.new_zeros(())
    terms: dict[str, float] = {}
    for group, target in batch_targets(batch).items():
        target_codes = model.whitening.whiten(group, target.to(images))
        term = (getattr(prediction.whitened, group) - target_codes).pow(2).sum(1).mean()
        total = total + getattr(weights, group) * term
        terms[group] = float(term.detach())
    if "landmarks" in batch and prediction.landmarks is not None:
        half_size = torch.tensor([images.shape[-1], images.shape[-2]], dtype=images.dtype, device=images.device) / 2
        offsets = (prediction.landmarks - batch["landmarks"].to(images)) / half_size
        term = offsets.pow(2).sum(-1).mean()
        total = total + weights.landmarks * term
        terms["landmarks"] = float(term.detach())
    return total, terms


# ------------------------------------------------------------------------------------------- training

@dataclass
class RegressorTrainResult:
    """What :func:`train_regressor` measured."""

    losses: list[float]
    """Weighted total loss of every step."""
    terms: dict[str, list[float]] = field(default_factory=dict)
    """Each unweighted loss term per step (in the order the steps ran)."""


def _learning_rate(step: int, steps: int, lr: float, schedule: str, warmup_steps: int) -> float:
    """Linear warm-up over ``warmup_steps``, then constant or cosine decay to zero at ``steps``."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    progress = (step - warmup_steps) / max(steps - warmup_steps, 1)
    return lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def _to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in batch.items()}


def train_regressor(model: FaceCoefficientRegressor, batches: Iterable[Mapping[str, Tensor]], steps: int,
                    lr: float = 1e-3, *, loss_weights: RegressorLossWeights = RegressorLossWeights(),
                    weight_decay: float = 0.0, schedule: Literal["cosine", "constant"] = "cosine",
                    warmup_steps: int = 0, image_noise: float = 0.0, grad_clip: float | None = 1.0,
                    seed: int = 0, progress: bool = True, device: str | torch.device | None = None,
                    time_limit: float | None = None) -> RegressorTrainResult:
    """Train ``model`` in place for ``steps`` AdamW steps, one batch per step; returns the losses.

    Args:
        batches: dicts with ``image`` (B, 3, H, W) in [-1, 1] and targets (see :func:`batch_targets`;
            ``landmarks`` (B, 68, 2) pixels of that image); at least ``steps`` of them.
        lr: peak learning rate; ``schedule`` and ``warmup_steps`` shape it (:func:`_learning_rate`).
        image_noise: std of Gaussian noise added to the images (in [-1, 1] units), drawn from a generator
            seeded by ``seed``, the loop's only randomness: same model, batches and seed give the same run.
        grad_clip: clip the gradient's global norm to this (None: no clipping).
        device: where to train (None: where the model is). The model is left in ``eval()`` mode.
        time_limit: wall-clock seconds: the schedule then advances by ``max(step, steps * elapsed / time_limit)``
            and training stops when that reaches ``steps`` (so ``steps`` is an upper bound); the step count, and
            so the run, then depends on the machine's speed.
    """
    from tqdm import tqdm

    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    noise = torch.Generator(device=device).manual_seed(seed)
    result = RegressorTrainResult(losses=[])
    iterator = iter(batches)
    started = time.perf_counter()
    with tqdm(total=steps, desc="face regressor", unit="step", disable=not progress, leave=False) as bar:
        for step in range(steps):
            if time_limit is not None:
                step = max(step, int(steps * (time.perf_counter() - started) / time_limit))
                if step >= steps:
                    break
            try:
                batch = _to_device(next(iterator), device)
            except StopIteration:
                raise ValueError(f"train_regressor: the batches ran out after {step} of {steps} steps") from None
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(step, steps, lr, schedule, warmup_steps)
            images = batch["image"]
            if image_noise > 0:
                images = images + image_noise * torch.randn(images.shape, generator=noise, device=device,
                                                            dtype=images.dtype)
            loss, terms = regressor_loss(model, batch, loss_weights, images)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            result.losses.append(float(loss.detach()))
            for name, value in terms.items():
                result.terms.setdefault(name, []).append(value)
            bar.set_postfix(loss=f"{result.losses[-1]:.4f}")
            bar.update(1)
    model.eval()
    return result


# ------------------------------------------------------------------------------------------- checkpoints

def save_regressor(model: FaceCoefficientRegressor, path: str | os.PathLike,
                   source: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (weights + whitening buffers, config) to the folder ``path`` atomically.

    ``source`` (JSON-ready) records where the weights came from (dataset, steps, seed...).
    """
    path = Path(path)
    meta = {"format": REGRESSOR_FORMAT, "version": REGRESSOR_VERSION, "source": source or {},
            "config": to_dict(model.config)}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_folder(path) as tmp:
        save_file(tensors, str(tmp / REGRESSOR_WEIGHTS), metadata={"format": REGRESSOR_FORMAT})
        (tmp / CONFIG).write_text(json.dumps(meta, indent=2))
    return path


def read_regressor_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The checked ``config.json`` of a regressor checkpoint folder."""
    return read_folder_meta(path, REGRESSOR_FORMAT, REGRESSOR_VERSION,
                            "train one with `aware3d face-regressor train`")[1]


def load_regressor(path: str | os.PathLike, device: str | torch.device = "cpu") -> FaceCoefficientRegressor:
    """A regressor saved by :func:`save_regressor`, in ``eval()`` mode (key sets and shapes checked)."""
    path = Path(path)
    meta = read_regressor_meta(path)
    config = from_dict(RegressorConfig, meta["config"], where=f"{path / CONFIG} config")
    weights = path / REGRESSOR_WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights} is missing; the regressor checkpoint at {path} is incomplete")
    model = FaceCoefficientRegressor(config)
    load_state_strict(model, read_weights(weights), f"{weights} does not match its config")
    return model.to(device).eval()


__all__ = [
    "GROUP_DIMS",
    "REGRESSOR_FORMAT",
    "REGRESSOR_VERSION",
    "REGRESSOR_WEIGHTS",
    "CoefficientWhitening",
    "FaceCoefficientRegressor",
    "FaceReconstruction",
    "FaceReconstructor",
    "RegressorConfig",
    "RegressorLossWeights",
    "RegressorTrainResult",
    "batch_targets",
    "load_regressor",
    "read_regressor_meta",
    "regressor_loss",
    "resize_images",
    "save_regressor",
    "train_regressor",
]
