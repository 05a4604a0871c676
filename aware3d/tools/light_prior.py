"""``aware3d light-prior``: the multivariate-normal prior over light codes (mean (4,), cov (4, 4), the official
``*_light_mvn.pth`` format) fitted from a dataset that carries lights or from a list of codes, or converted from
an official file, written as our JSON and, with ``--checkpoint``, put into a checkpoint's weights.

A light code is ``(a, d, dx, dy)``: ambient ``k_a = a/2 + 0.5``, diffuse ``k_d = d/2 + 0.5`` and the direction
toward the light ``normalise(dx, dy, 1)`` in world axes (see :mod:`aware3d.models.light_prior`). From a dataset
item's unit ``light_dir`` (lx, ly, lz) the code is ``dx = lx / lz``, ``dy = ly / lz`` (the same direction
scaled to z = 1), which exists only for lights in front (lz > 0): items with ``lz <= --min-lz`` are skipped
and counted. ``a`` and ``d`` come from the dataset renderer's weights (``image = albedo (k_a + k_d max(0,
n.l))``, the same Lambertian form): ``a = 2 k_a - 1``, ``d = 2 k_d - 1``, constant over a dataset, so such a
fit's covariance is singular in those entries and gets the ``--ridge``.

The fit is the sample mean and the unbiased sample covariance (divided by N - 1) in float64, stored in
float32. A covariance that is not positive definite in float32 (Cholesky fails: an entry is constant or
entries are linearly dependent) gets ``--ridge`` added to its diagonal; ``--ridge 0`` refuses it instead.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from ..checks import AT_LEAST_ONE, FINITE, NON_NEGATIVE, SEED, Range, check_options
from ..io.checkpoint import CONFIG, WEIGHTS, is_checkpoint_dir, load_generator, save_generator
from ..models.light_prior import LightPrior
from .common import require_condition

PRIOR_COPY = "light_prior.json"
"""The readable copy of the prior that ``--checkpoint`` writes into the checkpoint folder."""


@dataclass
class LightPriorOptions:
    """Where the codes come from (exactly one of --data, --codes, --prior) and where the prior goes."""

    data: str | None = None
    """A dataset whose items carry the light_dir extra (synthetic-heads, synthetic-heads:4096, ...): each item's
    light becomes a code (see --ambient, --diffuse, --min-lz)."""
    codes: str | None = None
    """A file of light codes, one row a,d,dx,dy each: .json (a list of rows, or {"codes": [rows]}), else text or
    CSV (numbers split by commas or spaces; blank lines, '#' comments and one header line are skipped)."""
    prior: str | None = None
    """An existing prior to convert: the official *_light_mvn.pth (read safely, never unpickled) or our JSON."""
    out: str | None = None
    """Our JSON prior to write (default: light_prior.json, or with --checkpoint only the copy in that folder)."""
    checkpoint: str | None = None
    """An aware3d checkpoint folder of a family with a light condition: the prior replaces the one in its weights
    (the folder is re-saved atomically, so aware3d.load and every tool use it) and a copy goes to
    <checkpoint>/light_prior.json."""
    ambient: float | None = None
    """With --data: the renderer's ambient weight k_a (a = 2 k_a - 1); default: the dataset's (synthetic 0.35)."""
    diffuse: float | None = None
    """With --data: the renderer's diffuse weight k_d (d = 2 k_d - 1); default: the dataset's (synthetic 0.75)."""
    min_lz: float = 0.1
    """With --data: skip items whose light_dir z (toward the frontal camera) is at most this: lights from the side
    or behind have no code, and dx = lx/lz, dy = ly/lz grow without bound as lz -> 0 (0.1: |dx|, |dy| < 10)."""
    length: int | None = None
    """With --data: number of dataset items (default: the dataset's own, synthetic sets 10000)."""
    seed: int = 0
    """With --data: the dataset seed (synthetic sets)."""
    mirror: bool = False
    """With --data: also use the mirrored items (their light's x negated), as training with --mirror sees them."""
    resolution: int = 8
    """With --data: the resolution items are read at (only their lights are used; small is fast)."""
    batch: int = 256
    """With --data: items read per batch."""
    ridge: float = 1e-4
    """Added to the covariance's diagonal when the fit is not positive definite (e.g. a dataset's constant ambient
    and diffuse: their std becomes sqrt(ridge) = 0.01); 0 refuses such a fit."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        check_options(self, {"ambient": FINITE, "diffuse": FINITE, "min_lz": Range(0, 1, hi_open=True),
                             "length": AT_LEAST_ONE, "seed": SEED, "resolution": AT_LEAST_ONE, "batch": AT_LEAST_ONE,
                             "ridge": NON_NEGATIVE})


# ------------------------------------------------------------------------------------------ codes
def codes_from_directions(light_dir: Tensor, ambient: float, diffuse: float, min_lz: float) -> tuple[Tensor, Tensor]:
    """Light codes of unit directions toward the light.

    Args:
        light_dir: (N, 3) world directions toward the light.
        ambient, diffuse: the renderer's weights k_a, k_d (the codes get a = 2 k_a - 1, d = 2 k_d - 1).
        min_lz: directions with z <= min_lz have no usable code (dx = lx/lz) and are left out.
    Returns:
        (M, 4) float64 codes (a, d, lx/lz, ly/lz) of the kept directions, and the (N,) bool mask of those kept.
    """
    if light_dir.ndim != 2 or light_dir.shape[1] != 3:
        raise ValueError(f"light directions are (N, 3), got {tuple(light_dir.shape)}")
    d = light_dir.double()
    kept = d[:, 2] > min_lz
    d = d[kept]
    a = torch.full_like(d[:, 0], 2 * ambient - 1)
    return torch.stack([a, torch.full_like(a, 2 * diffuse - 1), d[:, 0] / d[:, 2], d[:, 1] / d[:, 2]], -1), kept


def _numbers(line: str) -> list[str]:
    return [t for t in re.split(r"[,\s;]+", line.strip()) if t]


def parse_code_rows(text: str, where: str) -> Tensor:
    """(N, 4) float64 codes of a text/CSV file's rows (blank lines, '#' comments and one header line skipped)."""
    rows, header_seen = [], False
    for number, line in enumerate(text.splitlines(), 1):
        items = _numbers(line.split("#", 1)[0])
        if not items:
            continue
        try:
            values = [float(v) for v in items]
        except ValueError:
            if rows or header_seen:
                raise ValueError(f"{where}:{number}: {line.strip()!r} is not 4 numbers (a d dx dy)") from None
            header_seen = True
            continue
        if len(values) != 4:
            raise ValueError(f"{where}:{number}: {len(values)} numbers, a light code has 4 (a d dx dy)")
        rows.append(values)
    return torch.tensor(rows, dtype=torch.float64).reshape(-1, 4)


def read_light_codes(path: str | Path) -> Tensor:
    """(N, 4) float64 light codes from a .json list of rows (or ``{"codes": rows}``) or a text / CSV file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--codes file not found: {path}")
    if path.suffix.lower() != ".json":
        return parse_code_rows(path.read_text(), str(path))
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    rows = data.get("codes") if isinstance(data, dict) else data
    if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) == 4 for r in rows):
        raise ValueError(f"{path}: expected a list of [a, d, dx, dy] rows (or {{\"codes\": [...]}})")
    return torch.tensor(rows, dtype=torch.float64).reshape(-1, 4)


# ------------------------------------------------------------------------------------------ the fit
def is_positive_definite(cov: Tensor) -> bool:
    """Whether the float32 Cholesky of ``cov`` (what sampling computes) succeeds."""
    return bool(torch.linalg.cholesky_ex(cov.to(torch.float32)).info == 0)


def fit_light_prior(codes: Tensor, ridge: float = 1e-4) -> tuple[LightPrior, float]:
    """Mean and unbiased covariance of (N, 4) codes (float64, stored float32), and the ridge added (0 if none).

    A covariance that is not positive definite gets ``ridge`` on its diagonal; ``ridge <= 0`` refuses it."""
    if codes.ndim != 2 or codes.shape[1] != 4:
        raise ValueError(f"light codes are (N, 4) rows (a, d, dx, dy), got {tuple(codes.shape)}")
    if len(codes) < 2:
        raise ValueError(f"fitting a light prior needs at least 2 codes (a covariance), got {len(codes)}")
    if not torch.isfinite(codes).all():
        raise ValueError("the light codes contain NaN or infinite values")
    x = codes.double()
    mean = x.mean(0)
    centred = x - mean
    cov = centred.T @ centred / (len(x) - 1)
    cov = (cov + cov.T) / 2
    added = 0.0
    if not is_positive_definite(cov):
        eig = ", ".join(f"{v:.3g}" for v in torch.linalg.eigvalsh(cov).tolist())
        if ridge <= 0:
            raise ValueError(f"the fitted light covariance is not positive definite (eigenvalues {eig}): an entry is "
                             "constant or entries are linearly dependent; pass --ridge R > 0 to add R to its diagonal")
        cov = cov + ridge * torch.eye(4, dtype=cov.dtype)
        added = ridge
        if not is_positive_definite(cov):
            raise ValueError(f"the fitted light covariance (eigenvalues {eig}) is not positive definite even with "
                             f"--ridge {ridge}; pass a larger --ridge")
    return LightPrior(mean.to(torch.float32), cov.to(torch.float32)), added


# ------------------------------------------------------------------------------------------ sources
def dataset_shading_weights(dataset, opts: LightPriorOptions) -> tuple[float, float]:
    """(k_a, k_d): the options' --ambient / --diffuse, else the synthetic renderer's."""
    from ..data.synthetic_images import SyntheticImageDataset

    known = dataset.synthetic.config if isinstance(dataset, SyntheticImageDataset) else None
    ambient = opts.ambient if opts.ambient is not None else None if known is None else known.ambient
    diffuse = opts.diffuse if opts.diffuse is not None else None if known is None else known.diffuse
    if ambient is None or diffuse is None:
        raise ValueError(f"dataset {opts.data!r} does not say how its lights were weighted: pass --ambient K_A and "
                         "--diffuse K_D (image = albedo (k_a + k_d max(0, n.l)))")
    return float(ambient), float(diffuse)


def dataset_codes(opts: LightPriorOptions) -> tuple[Tensor, dict]:
    """(N, 4) codes of the --data items' lights, and what the record says about them."""
    from ..data import open_dataset

    kw = {} if opts.length is None else {"length": opts.length}
    dataset = open_dataset(opts.data, opts.resolution, mirror=opts.mirror, seed=opts.seed, **kw)
    if "light_dir" not in dataset.extra_names:
        have = ", ".join(dataset.extra_names) or "none"
        raise ValueError(f"dataset {opts.data!r} carries no light_dir extra (its extras: {have}); fit from a file of "
                         "codes with --codes instead")
    ambient, diffuse = dataset_shading_weights(dataset, opts)
    if opts.batch < 1:
        raise ValueError(f"--batch must be at least 1, got {opts.batch}")
    starts = range(0, len(dataset), opts.batch)
    lights = [dataset.get_batch(list(range(s, min(s + opts.batch, len(dataset))))).extra("light_dir")
              for s in tqdm(starts, desc="light-prior", unit="batch", disable=not opts.progress)]
    codes, kept = codes_from_directions(torch.cat(lights), ambient, diffuse, opts.min_lz)
    return codes, {"data": opts.data, "items": len(kept), "skipped_lz": int((~kept).sum()), "min_lz": opts.min_lz,
                   "ambient": ambient, "diffuse": diffuse, "mirror": opts.mirror}


def source_prior(opts: LightPriorOptions) -> tuple[LightPrior, dict]:
    """The prior the options ask for (fitted or converted) and a JSON-ready account of where it came from."""
    given = [name for name in ("data", "codes", "prior") if getattr(opts, name) is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of --data, --codes and --prior (got {', '.join(given) or 'none'})")
    if opts.prior is not None:
        prior = LightPrior.load(opts.prior)
        if not is_positive_definite(prior.cov):
            raise ValueError(f"{opts.prior}: its covariance is not positive definite")
        return prior, {"converted_from": str(opts.prior)}
    if opts.codes is not None:
        codes, about = read_light_codes(opts.codes), {"codes_file": str(opts.codes)}
    else:
        codes, about = dataset_codes(opts)
    prior, ridge = fit_light_prior(codes, opts.ridge)
    return prior, {**about, "codes": len(codes), "ridge_added": ridge}


# ------------------------------------------------------------------------------------------ output
def update_checkpoint(folder: Path, prior: LightPrior, about: dict) -> Path:
    """Put ``prior`` into the weights of our checkpoint ``folder`` (re-saved atomically) and write its copy."""
    if not is_checkpoint_dir(folder):
        raise ValueError(f"--checkpoint {folder} is not an aware3d checkpoint folder (config.json + {WEIGHTS}); "
                         "convert an official file first: aware3d convert FILE FOLDER")
    others = sorted(p.name for p in folder.iterdir() if p.name not in (CONFIG, WEIGHTS, PRIOR_COPY))
    if others:
        raise ValueError(f"--checkpoint {folder} holds more than a generator ({', '.join(others)}), which re-saving "
                         "would drop; copy its config.json and generator.safetensors to a folder of their own")
    G = load_generator(folder)
    require_condition(G, "light", "--checkpoint")
    G.set_light_prior(prior)
    save_generator(G, folder, source={**(G.source or {}), "light_prior": about})
    return prior.save(folder / PRIOR_COPY, about)


def prior_summary(prior: LightPrior, about: dict) -> dict:
    """What the command prints: the mean, the per-entry std and where the prior came from."""
    return {"mean": [round(v, 6) for v in prior.mean.tolist()],
            "std": [round(v, 6) for v in prior.cov.diagonal().sqrt().tolist()], **about}


def run(opts: LightPriorOptions) -> dict:
    prior, about = source_prior(opts)
    about = {"made_by": "aware3d light-prior", **about}
    files = []
    # The checkpoint first: a refused folder then leaves nothing written.
    if opts.checkpoint is not None:
        files.append(str(update_checkpoint(Path(opts.checkpoint), prior, about)))
    if opts.out is not None or opts.checkpoint is None:
        files.append(str(prior.save(opts.out or PRIOR_COPY, about)))
    return {"out": files[0], "files": files, "light_prior": prior_summary(prior, about),
            "prior": {"mean": prior.mean.tolist(), "cov": prior.cov.tolist()},
            **({"generator": opts.checkpoint} if opts.checkpoint else {})}
