"""``aware3d face-regressor train | eval``: the face-coefficient regressor trained on ``synthetic-faces``.

``train`` renders a pool of training items ``[0, --train-items)`` and a held-out pool
``[HELD_OUT_START, HELD_OUT_START + --eval-items)`` of ``synthetic-faces`` (split by index: the held-out
items are never drawn for training), fits coefficient statistics to the training pool's coefficients,
trains :class:`~aware3d.faces.regressor.FaceCoefficientRegressor` for ``--steps`` or ``--minutes`` (wall
clock, rendering included) on batches drawn from the pool (each with a fresh background colour), and writes
to ``--out``:

* the checkpoint (``config.json`` + ``regressor.safetensors``, :func:`~aware3d.faces.regressor.save_regressor`),
  whose ``source`` records the dataset settings, the split and the dataset-mean landmarks;
* ``coefficient_statistics.safetensors`` (+ ``.json``): the fitted statistics (means, Cholesky factors) of
  the training coefficients, for whitened codes. The regressor's own codes are not whitened but weighted by
  what each coefficient does to the picture (:func:`loss_whitening`): whitened codes would give the 63
  expression components that move the face by a fraction of a pixel 63 times the jaw's weight in the loss;
* ``heldout.json``: the held-out errors, each beside the dataset-mean baseline (predicting the training
  pool's mean) and their ratio: **expression** (mean per-vertex displacement error of the expression part of
  the mesh, model units, so components count by how much they move the face), the jaw coefficient, the
  expression coefficients' RMS, **pose** (mean geodesic angle between predicted and true face rotations,
  radians) and yaw / pitch / roll, and **landmarks** (mean distance in pixels);
* ``heldout.png``: held-out images with true (green) and predicted (red) landmarks above the face
  re-rendered from the predicted coefficients (and pose) with its predicted landmarks.

``eval --checkpoint DIR`` renders the held-out pool again (from the recorded settings) and writes the same
two files (to ``--out``, default the checkpoint folder).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

import torch
from torch import Tensor

from ..cameras.rays import Cameras
from ..checks import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, SEED, check_options
from ..data.synthetic.faces import SyntheticFaceConfig, SyntheticFaceDataset, render_faces
from ..errors import OptionError
from ..faces.layout import EXPRESSION_DIM, IDENTITY_DIM
from ..faces.model import FaceCoefficients, MorphableFaceModel, euler_rotation
from ..faces.regressor import (
    FaceCoefficientRegressor, FaceReconstruction, RegressorConfig, RegressorLossWeights, load_regressor, read_regressor_meta,
    save_regressor, train_regressor,
)
from ..faces.statistics import CoefficientStatistics
from ..io.media import make_grid, save_image, write_json
from .faces import draw_landmarks, enlargement

__all__ = ["DEFAULT_MINUTES", "HELD_OUT_START", "SYNTHETIC_LOSS_WEIGHTS", "Baseline", "FacePool", "FaceRegressorOptions",
           "TrainSettings", "heldout_errors", "loss_whitening", "pool_batches", "predict", "prediction_sheet",
           "regressor_config_for", "render_pool", "run", "train_on_synthetic_faces"]

HELD_OUT_START = 1_000_000
"""First index of the held-out items of ``synthetic-faces`` (training items are ``[0, train_items)``)."""
DEFAULT_MINUTES = 3.0
"""Training budget when neither --minutes nor --steps is given."""
SYNTHETIC_LOSS_WEIGHTS = RegressorLossWeights(identity=0.05, expression=1.0, texture=0.05, lighting=0.2, pose=1.0,
                                              landmarks=50.0)
"""Loss weights of the tool: identity and texture (hard to read at 32-64 px, easy to memorise) count little,
landmarks (squared half-image units: 1 px at 64 px is 1e-3) much, so the trunk learns the geometry."""
MAX_TIMED_STEPS = 1_000_000
"""Upper bound of the steps of a timed run (its schedule follows the clock)."""
RENDER_SHARE = 0.4
"""Share of a --minutes budget spent rendering (the held-out and training pools) when --train-items is not given."""
MAX_TIMED_ITEMS = 50_000
"""Upper bound of the training pool of a timed run."""
STATISTICS_FILE = "coefficient_statistics.safetensors"
"""The whitening statistics inside the output folder."""
ERRORS_FILE = "heldout.json"
"""The held-out errors inside the output folder."""
SHEET_FILE = "heldout.png"
"""The held-out predictions picture inside the output folder."""


@dataclass
class FaceRegressorOptions:
    action: Literal["train", "eval"]
    """train: train a regressor on synthetic-faces and evaluate it; eval: evaluate --checkpoint again."""
    out: str | None = None
    """train: the checkpoint folder to write (required); eval: where to write the errors (default: --checkpoint)."""
    checkpoint: str | None = None
    """eval: a regressor checkpoint folder written by train."""
    face_model: str | None = None
    """A Deep3DFaceRecon BFM_model_front.mat (default: $AWARE3D_FACE_MODEL if set, else the built-in synthetic
    model); eval: default the one recorded in the checkpoint."""
    resolution: int = 64
    """Image side in pixels (the regressor's input size; a multiple of 8, at least 16)."""
    minutes: float | None = None
    """Wall-clock training budget in minutes, rendering included (default 3 when --steps is not given)."""
    steps: int | None = None
    """Train for exactly this many steps instead of --minutes."""
    seed: int = 0
    """Seed of the network's initialisation, the batch order and the noise (the dataset seed is --data-seed)."""
    data_seed: int = 0
    """Seed of synthetic-faces."""
    train_items: int | None = None
    """Training items rendered once and drawn from (default: with --minutes, as many as 40 percent of the budget
    renders; with --steps, 4000)."""
    eval_items: int = 256
    """Held-out items (eval: default the recorded number)."""
    batch: int = 32
    """Images per step."""
    lr: float = 2e-3
    """Peak AdamW learning rate (linear warm-up, then cosine decay)."""
    width: int = 32
    """Channels of the first conv block (doubling per block, at most 256)."""
    image_noise: float = 0.02
    """Std of the Gaussian noise added to training images ([-1, 1] units)."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        check_options(self, {"resolution": AT_LEAST_ONE, "minutes": POSITIVE, "steps": AT_LEAST_ONE, "seed": SEED,
                             "data_seed": SEED, "train_items": AT_LEAST_ONE, "eval_items": AT_LEAST_ONE,
                             "batch": AT_LEAST_ONE, "lr": POSITIVE, "width": AT_LEAST_ONE,
                             "image_noise": NON_NEGATIVE})
        if self.minutes is not None and self.steps is not None:
            raise OptionError("give --minutes or --steps, not both")
        if self.resolution < 16 or self.resolution % 8:
            raise OptionError(f"--resolution must be a multiple of 8 and at least 16, got {self.resolution}")
        if self.train_items is not None and self.train_items < 2:
            raise OptionError(f"--train-items must be at least 2 (the whitening statistics need 2), got {self.train_items}")


@dataclass(frozen=True)
class TrainSettings:
    """How :func:`train_on_synthetic_faces` trains (the tool's options without the file names)."""

    train_items: int | None = None
    """Training pool size; None: what renders in 40% of ``seconds`` (4000 with ``steps``)."""
    eval_items: int = 256
    """Held-out pool size."""
    steps: int | None = None
    """Exact step count, or None to fill ``seconds``."""
    seconds: float = 180.0
    """Wall-clock budget (rendering included) when ``steps`` is None."""
    batch: int = 32
    """Images per step."""
    lr: float = 2e-3
    """Peak learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    width: int = 32
    """First block's channels."""
    image_noise: float = 0.02
    """Training image noise std."""
    loss_weights: RegressorLossWeights = SYNTHETIC_LOSS_WEIGHTS
    """Weights of the loss terms."""
    seed: int = 0
    """Initialisation / batch order / noise seed."""
    progress: bool = False
    """Progress bars."""


# ------------------------------------------------------------------------------------------ pools

@dataclass
class FacePool:
    """Rendered items held in memory (N of them)."""

    indices: list[int]
    """Dataset indices."""
    images: Tensor
    """(N, 3, H, W) in [-1, 1]."""
    coefficients: Tensor
    """(N, 257) Deep3DFaceRecon coefficients (camera-relative pose)."""
    landmarks: Tensor
    """(N, 68, 2) pixels."""
    visible: Tensor
    """(N, 68) bool."""
    background: Tensor
    """(N, 3) RGB in [0, 1]."""
    coverage: Tensor
    """(N, 1, H, W) face coverage of each pixel (for exact background swaps)."""


def render_pool(dataset: SyntheticFaceDataset, indices: list[int], chunk: int = 64,
                seconds: float | None = None) -> FacePool:
    """Render ``indices`` of ``dataset`` in chunks into a :class:`FacePool`; with ``seconds``, stop after the
    first chunk that ends past that wall-clock time (at least one chunk)."""
    start, parts = time.perf_counter(), []
    for s in range(0, len(indices), chunk):
        parts.append(dataset.get_batch(indices[s:s + chunk]))
        if seconds is not None and time.perf_counter() - start >= seconds:
            break
    kept = list(indices[: sum(p.image.shape[0] for p in parts)])
    return FacePool(kept, *(torch.cat([getattr(p, k) for p in parts]) for k in
                            ("image", "coefficients", "landmarks", "landmark_visible", "background", "coverage")))


def pool_batches(pool: FacePool, batch: int, seed: int, swap_backgrounds: bool = True) -> Iterator[dict[str, Tensor]]:
    """Endless batches drawn uniformly (with replacement) from the pool by a generator seeded with ``seed``.

    ``swap_backgrounds``: give every drawn image a new uniform background colour (exactly, through the
    coverage), so the network cannot recognise an item by its backdrop; the targets are unchanged."""
    g = torch.Generator().manual_seed(seed)
    n = pool.images.shape[0]
    while True:
        pick = torch.randint(n, (batch,), generator=g)
        images = pool.images[pick]
        if swap_backgrounds:
            new = 0.1 + 0.8 * torch.rand(batch, 3, generator=g)
            change = (new - pool.background[pick])[:, :, None, None]
            images = images + 2 * (1 - pool.coverage[pick]) * change
        yield {"image": images, "coefficients": pool.coefficients[pick], "landmarks": pool.landmarks[pick]}


def regressor_config_for(resolution: int, width: int = 32) -> RegressorConfig:
    """Blocks down to 4 x 4 (log2(resolution / 4) of them, widths ``width * 2**k`` capped at 256)."""
    blocks = max(1, int(round(math.log2(resolution / 4))))
    return RegressorConfig(image_size=resolution, channels=tuple(min(256, width * 2 ** k) for k in range(blocks)),
                           hidden=64 if resolution <= 32 else 128)


# ------------------------------------------------------------------------------------------ errors

@dataclass(frozen=True)
class Baseline:
    """The dataset-mean prediction (the training pool's means)."""

    expression: Tensor
    """(64,) mean expression coefficients."""
    angles: Tensor
    """(3,) mean pose angles (radians)."""
    landmarks: Tensor
    """(68, 2) mean landmark pixels."""


def _geodesic(a: Tensor, b: Tensor) -> Tensor:
    """(B,) angle in radians of the rotation between Euler angles a and b (B, 3)."""
    rel = euler_rotation(a.double()).transpose(1, 2) @ euler_rotation(b.double())
    cos = ((rel.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1)
    return torch.arccos(cos)


def _expression_displacement(delta: Tensor, model: MorphableFaceModel) -> Tensor:
    """(B,) mean per-vertex length (model units) of the shape change ``expression_basis @ delta`` (B, 64)."""
    basis = model.shape_basis[:, IDENTITY_DIM:IDENTITY_DIM + EXPRESSION_DIM].double()
    return (delta.double() @ basis.T).reshape(delta.shape[0], -1, 3).norm(dim=-1).mean(-1)


def _figure(error: Tensor, baseline: Tensor, unit: str) -> dict[str, Any]:
    e, b = float(error.mean()), float(baseline.mean())
    return {"error": e, "baseline": b, "ratio": e / b if b > 0 else math.inf, "unit": unit}


def heldout_errors(prediction: FaceReconstruction, pool: FacePool, baseline: Baseline,
                   model: MorphableFaceModel) -> dict[str, dict[str, Any]]:
    """Held-out errors of ``prediction`` on ``pool`` beside the :class:`Baseline`'s (see the module docstring)."""
    truth = FaceCoefficients.from_vector(pool.coefficients.double())
    pred = prediction.coefficients
    e_true, e_pred = truth.expression, pred.expression.double()
    e_base = baseline.expression.double().expand_as(e_true)
    a_true, a_pred = truth.angles, pred.angles.double()
    a_base = baseline.angles.double().expand_as(a_true)
    out = {
        "expression": _figure(_expression_displacement(e_pred - e_true, model),
                              _expression_displacement(e_base - e_true, model),
                              "model units: mean per-vertex error of the expression displacement"),
        "jaw_open": _figure((e_pred[:, 0] - e_true[:, 0]).abs(), (e_base[:, 0] - e_true[:, 0]).abs(),
                            "expression coefficient 0, mean absolute error"),
        "expression_coefficients": _figure((e_pred - e_true).pow(2).mean(1).sqrt(), (e_base - e_true).pow(2).mean(1).sqrt(),
                                           "RMS over the 64 expression coefficients"),
        "pose": _figure(_geodesic(a_pred, a_true), _geodesic(a_base, a_true),
                        "radians: mean geodesic angle between predicted and true face rotations"),
    }
    for k, name in enumerate(("pitch", "yaw", "roll")):
        out[name] = _figure((a_pred[:, k] - a_true[:, k]).abs(), (a_base[:, k] - a_true[:, k]).abs(),
                            f"radians: mean absolute error of the {name} angle")
    if prediction.landmarks is not None:
        lm_base = baseline.landmarks.double().expand_as(pool.landmarks)
        out["landmarks"] = _figure((prediction.landmarks.double() - pool.landmarks).norm(dim=-1).mean(-1),
                                   (lm_base - pool.landmarks).norm(dim=-1).mean(-1),
                                   f"pixels at {pool.images.shape[-1]} px: mean landmark distance")
    return out


@torch.no_grad()
def predict(regressor: FaceCoefficientRegressor, images: Tensor, chunk: int = 128) -> FaceReconstruction:
    """The regressor's predictions for (N, 3, H, W) images, in chunks, in eval mode."""
    regressor.eval()
    parts = [regressor(images[s:s + chunk]) for s in range(0, images.shape[0], chunk)]
    coefficients = FaceCoefficients(**{g: torch.cat([getattr(p.coefficients, g) for p in parts])
                                       for g in ("identity", "expression", "texture", "lighting", "pose")})
    return FaceReconstruction(coefficients, torch.cat([p.landmarks for p in parts]))


# ------------------------------------------------------------------------------------------ picture

def prediction_sheet(prediction: FaceReconstruction, pool: FacePool, model: MorphableFaceModel,
                     count: int = 8) -> Tensor:
    """(3, H, W) in [-1, 1]: top row the first ``count`` held-out images with true (green) and predicted (red)
    landmarks; bottom row the faces re-rendered from the predicted coefficients (pose included, seen from the
    frontal camera) with the predicted landmarks."""
    n = min(count, pool.images.shape[0])
    res = pool.images.shape[-1]
    scale = enlargement(res, 192)
    green, red = torch.tensor([0.1, 1.0, 0.2]), torch.tensor([1.0, 0.15, 0.1])
    points = torch.cat([pool.landmarks[:n], prediction.landmarks[:n].float()], 1)
    colours = torch.cat([green.expand(n, 68, 3), red.expand(n, 68, 3)], 1)
    top = draw_landmarks(pool.images[:n], points, colours, scale, radius=max(1.5, 0.6 * scale))
    codes = FaceCoefficients(**{g: getattr(prediction.coefficients, g)[:n].to(model.mean_shape.dtype)
                                for g in ("identity", "expression", "texture", "lighting", "pose")})
    frontal = Cameras.from_angles(math.pi / 2, math.pi / 2, 12.0, 1.0)
    again = render_faces(model, codes, frontal, pool.background[:n], res)
    bottom = draw_landmarks(again.image.float(), prediction.landmarks[:n].float(), red, scale,
                            radius=max(1.5, 0.6 * scale))
    return make_grid(torch.cat([top, bottom]), nrow=n, padding=2, pad_value=-1.0)


# ------------------------------------------------------------------------------------------ training

def _basis_sizes(model: MorphableFaceModel) -> dict[str, Tensor]:
    """Per coefficient of the identity, expression and texture groups, the RMS per-vertex length of its
    basis column (model units, or albedo units for texture): how much one unit of it changes the face."""
    V = model.num_vertices
    shape = model.shape_basis.double().reshape(V, 3, -1).pow(2).sum(1).mean(0).sqrt()
    albedo = model.albedo_basis.double().reshape(V, 3, -1).pow(2).sum(1).mean(0).sqrt()
    return {"identity": shape[:IDENTITY_DIM], "expression": shape[IDENTITY_DIM:IDENTITY_DIM + EXPRESSION_DIM],
            "texture": albedo}


def loss_whitening(statistics: CoefficientStatistics, model: MorphableFaceModel) -> dict[str, tuple[Tensor, Tensor]]:
    """(mean, diagonal factor L) per group for the regressor's codes ``z = L^-1 (c - mean)``, weighting each
    coefficient by how much it changes the picture rather than whitening it.

    Whitened codes give every component one unit of loss, so 63 expression components that move the face by
    a fraction of a pixel would drown the jaw. Here identity / expression / texture coefficient k is scaled
    by its basis column's size (:func:`_basis_sizes`), lighting and pose by one scale per group, and each
    group's codes by a common factor so that they keep a mean squared norm of the group's size (as whitened
    codes have): the code distance is then proportional to the mean vertex (albedo) change.
    """
    sizes = _basis_sizes(model)
    out = {}
    for group, fitted in statistics.groups.items():
        variance = fitted.std.pow(2)
        weight = sizes[group] if group in sizes else torch.ones_like(variance)
        weight = weight.clamp_min(1e-6 * float(weight.max()))
        scale = math.sqrt(max(float((variance * weight ** 2).sum()) / variance.numel(), 1e-12))
        out[group] = (fitted.mean, torch.diag(scale / weight))
    return out


def _baseline(pool: FacePool) -> Baseline:
    mean = FaceCoefficients.from_vector(pool.coefficients.double().mean(0, keepdim=True))
    return Baseline(mean.expression[0], mean.angles[0], pool.landmarks.double().mean(0))


def train_on_synthetic_faces(dataset: SyntheticFaceDataset, settings: TrainSettings
                             ) -> tuple[FaceCoefficientRegressor, dict[str, Any]]:
    """Train a regressor on ``dataset`` (module docstring); returns it and a record (pools, statistics,
    baseline, steps, timings, held-out errors and predictions)."""
    start = time.perf_counter()
    heldout = render_pool(dataset, list(range(HELD_OUT_START, HELD_OUT_START + settings.eval_items)))
    if settings.train_items is None and settings.steps is None:  # a time budget: render for a share of it
        share = max(0.0, RENDER_SHARE * settings.seconds - (time.perf_counter() - start))
        train = render_pool(dataset, list(range(MAX_TIMED_ITEMS)), seconds=share)
    else:
        train = render_pool(dataset, list(range(settings.train_items or 4000)))
    render_seconds = time.perf_counter() - start
    statistics = CoefficientStatistics.fit(train.coefficients.double())
    regressor = FaceCoefficientRegressor(regressor_config_for(dataset.resolution, settings.width), seed=settings.seed)
    for group, (mean, factor) in loss_whitening(statistics, dataset.model).items():
        regressor.whitening.set_group(group, mean.float(), factor.float())
    batches = pool_batches(train, settings.batch, settings.seed)
    steps, time_limit = settings.steps, None
    if steps is None:  # a time budget: the schedule follows the clock (steps is only an upper bound)
        time_limit = max(1.0, settings.seconds - (time.perf_counter() - start) - 2.0)  # ~2 s to evaluate
        steps = MAX_TIMED_STEPS
    train_start = time.perf_counter()
    result = train_regressor(regressor, batches, steps, lr=settings.lr, warmup_steps=min(100, steps // 10),
                             loss_weights=settings.loss_weights, weight_decay=settings.weight_decay,
                             image_noise=settings.image_noise, seed=settings.seed, progress=settings.progress,
                             time_limit=time_limit)
    train_seconds = time.perf_counter() - train_start
    steps = len(result.losses)
    baseline = _baseline(train)
    prediction = predict(regressor, heldout.images)
    record = {"train": train, "heldout": heldout, "statistics": statistics, "baseline": baseline, "steps": steps,
              "render_seconds": render_seconds, "train_seconds": train_seconds,
              "seconds": time.perf_counter() - start, "final_loss": result.losses[-1], "prediction": prediction,
              "errors": heldout_errors(prediction, heldout, baseline, dataset.model)}
    return regressor, record


# ------------------------------------------------------------------------------------------ the verbs

def _dataset(face_model: str | None, resolution: int, data_seed: int) -> SyntheticFaceDataset:
    config = SyntheticFaceConfig(resolution=resolution, seed=data_seed, length=HELD_OUT_START + 1_000_000)
    return SyntheticFaceDataset(config, face_model=face_model)


def _write_results(out: Path, errors: dict, prediction: FaceReconstruction, pool: FacePool,
                   model: MorphableFaceModel, extra: dict[str, Any]) -> dict[str, str]:
    errors_path = write_json(out / ERRORS_FILE, {**extra, "errors": errors})
    sheet = save_image(out / SHEET_FILE, prediction_sheet(prediction, pool, model))
    return {"errors": str(errors_path), "sheet": str(sheet)}


def _print_errors(errors: dict[str, dict[str, Any]]) -> None:
    for name, f in errors.items():
        print(f"{name:24s} error {f['error']:.4g}  baseline {f['baseline']:.4g}  ratio {f['ratio']:.3f}  ({f['unit']})")


def _train(opts: FaceRegressorOptions) -> dict:
    if not opts.out:
        raise OptionError("aware3d face-regressor train needs --out (the checkpoint folder to write)")
    minutes = opts.minutes if opts.minutes is not None or opts.steps is not None else DEFAULT_MINUTES
    settings = TrainSettings(train_items=opts.train_items, eval_items=opts.eval_items, steps=opts.steps,
                             seconds=60.0 * (minutes or 0.0), batch=opts.batch, lr=opts.lr, width=opts.width,
                             image_noise=opts.image_noise, seed=opts.seed, progress=opts.progress)
    dataset = _dataset(opts.face_model, opts.resolution, opts.data_seed)
    regressor, record = train_on_synthetic_faces(dataset, settings)
    cfg = dataset.config
    source = {"dataset": "synthetic-faces", "face_model": cfg.face_model, "face_model_name": dataset.model.name,
              "resolution": cfg.resolution, "data_seed": cfg.seed, "seed": opts.seed,
              "train_items": len(record["train"].indices),
              "eval_items": opts.eval_items, "held_out_start": HELD_OUT_START, "steps": record["steps"],
              "batch": opts.batch, "lr": opts.lr, "image_noise": opts.image_noise,
              "seconds": round(record["seconds"], 2), "baseline_landmarks": record["baseline"].landmarks.tolist()}
    out = save_regressor(regressor, opts.out, source=source)
    record["statistics"].save(out / STATISTICS_FILE)
    timing = {k: round(record[k], 2) for k in ("render_seconds", "train_seconds", "seconds")}
    files = _write_results(out, record["errors"], record["prediction"], record["heldout"], dataset.model,
                           {"checkpoint": str(out), "steps": record["steps"], **timing, "source": source})
    _print_errors(record["errors"])
    return {"out": str(out), "step": record["steps"], "errors": record["errors"], **files,
            "files": [str(out), str(out / STATISTICS_FILE), files["errors"], files["sheet"]]}


def _eval(opts: FaceRegressorOptions) -> dict:
    if not opts.checkpoint:
        raise OptionError("aware3d face-regressor eval needs --checkpoint (a folder written by face-regressor train)")
    source = read_regressor_meta(opts.checkpoint).get("source", {})
    regressor = load_regressor(opts.checkpoint)
    dataset = _dataset(opts.face_model if opts.face_model is not None else source.get("face_model"),
                       regressor.config.image_size, int(source.get("data_seed", 0)))
    count = int(source.get("eval_items", opts.eval_items))
    heldout = render_pool(dataset, list(range(HELD_OUT_START, HELD_OUT_START + count)))
    whitening = {g: regressor.whitening.statistics(g)[0].double() for g in ("expression", "pose")}
    landmarks = source.get("baseline_landmarks")
    baseline = Baseline(whitening["expression"], whitening["pose"][:3],
                        torch.tensor(landmarks, dtype=torch.float64) if landmarks is not None
                        else heldout.landmarks.double().mean(0))
    prediction = predict(regressor, heldout.images)
    errors = heldout_errors(prediction, heldout, baseline, dataset.model)
    out = Path(opts.out or opts.checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    files = _write_results(out, errors, prediction, heldout, dataset.model,
                           {"checkpoint": str(opts.checkpoint), "eval_items": count, "source": source})
    _print_errors(errors)
    return {"out": str(out), "errors": errors, **files, "files": [files["errors"], files["sheet"]]}


def run(opts: FaceRegressorOptions) -> dict:
    return _train(opts) if opts.action == "train" else _eval(opts)
