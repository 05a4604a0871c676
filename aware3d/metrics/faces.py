"""Face-model metrics for face-conditioned generators (any family whose ``capabilities.conditions`` hold
``"face"`` and that declares :meth:`~aware3d.models.base.Generator3D.face_code_layout`).

* ``face_disentanglement`` (DiscoFaceGAN's disentanglement score): for ``subjects x variations`` latents that
  vary one factor only (identity, expression or lighting: that slice of the face code is redrawn; pose: the
  camera is redrawn), a face regressor re-estimates the coefficients; per factor the *spread* is the mean L2
  deviation of the re-estimated factor from its subject's mean, divided by the factor's dataset spread, and
  ``DS_target = sigma_target^(n-1) / prod(sigma_others)`` over the n scored factors (large: varying the target
  moves only the target). The default dataset spreads are the official values (identity 0.577, expression
  0.285, pose angles 0.1525, in Basel-Face-Model coefficient units and radians); lighting has no official
  value, so it is scored only when :attr:`FaceMetricsConfig.lighting_spread` is set.
* ``face_mesh_rmse``: the marching-cubes mesh of each generated volume vs the input face mesh, the latter as
  the face's mesh depth seen from the frontal camera lifted to world points (the visible face surface); the
  face points are rigidly aligned to the generated vertices by point-to-point ICP, then the value is the RMSE
  of the nearest-neighbour distances (world units); ``face_mesh_rmse_unaligned`` is the same without ICP.
  ``face_mesh_rmse_cross`` is the official cross-test (each mesh against another latent's face) and
  ``face_mesh_rmse_own_to_cross`` their ratio (< 1: the shape follows its own code).
* ``face_landmark_error``: the regressor's landmarks on each generated image vs the face mesh's projected
  landmarks from the same camera, mean pixel distance divided by the image side.
* ``face_depth_change_correlation``: the expression redrawn per subject; Pearson correlation, at the landmark
  pixels of the frontal view, between the generated depth's change and the input mesh's (no regressor).

Metrics that read images back need a regressor checkpoint (``aware3d face-regressor train``) given as
``FaceMetricsConfig(regressor=PATH)`` (``evaluate(..., configs=[...])``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..cameras import Cameras, generate_rays
from ..config import to_dict
from ..export.shapes import extract_mesh, sample_density_grid
from ..faces import FaceCoefficients, FaceCoefficientRegressor, load_regressor
from ..models.base import Condition, FaceCodeLayout, Generator3D
from .generation import render_generator
from .registry import Metric, MetricContext, Needs, register_metric

FACTORS = ("identity", "expression", "lighting", "pose")
"""The factors a disentanglement latent may vary (pose = the camera; the others = face-code slices)."""
OFFICIAL_SPREADS = {"identity": 0.577, "expression": 0.285, "pose": 0.1525}
"""DiscoFaceGAN's dataset spreads (mean L2 deviation from the mean; pose: the 3 Euler angles in radians)."""


@dataclass(frozen=True)
class FaceMetricsConfig:
    """Settings of the face metrics (read with ``ctx.config(FaceMetricsConfig)``)."""

    regressor: str | None = None
    """Path of a face-regressor checkpoint folder (``aware3d face-regressor train``); needed by
    ``face_disentanglement`` and ``face_landmark_error``."""
    factors: tuple[str, ...] = ("identity", "expression", "pose")
    """Factors scored by the disentanglement score (each is a target and a spread of the others)."""
    variations: int = 8
    """Latents per subject in the disentanglement score (the metric's ``num_gen`` is the subject count)."""
    identity_spread: float = OFFICIAL_SPREADS["identity"]
    """Dataset spread of the identity coefficients (official value 0.577)."""
    expression_spread: float = OFFICIAL_SPREADS["expression"]
    """Dataset spread of the expression coefficients (official value 0.285)."""
    pose_spread: float = OFFICIAL_SPREADS["pose"]
    """Dataset spread of the pose angles in radians (official value 0.1525)."""
    lighting_spread: float | None = None
    """Dataset spread of the SH lighting coefficients; None: no official value (lighting cannot be scored)."""
    grid: int = 64
    """Points per axis of the density grid that is meshed."""
    level: float | str | None = None
    """Iso level of the mesh: raw density, a percentile of the volume ('p97.5'), or None: the model's shape_level()."""
    face_resolution: int = 64
    """Side of the frontal mesh-depth map lifted to the input face's surface points."""
    icp_iterations: int = 40
    """Iterations of point-to-point ICP."""

    def dataset_spread(self, factor: str) -> float:
        """The dataset spread of ``factor`` (a clear error for lighting without one)."""
        if factor not in FACTORS:
            raise ValueError(f"unknown face factor {factor!r}; valid: {', '.join(FACTORS)}")
        value = getattr(self, f"{factor}_spread")
        if value is None or not value > 0:
            raise ValueError(f"FaceMetricsConfig.{factor}_spread must be a positive dataset spread to score "
                             f"{factor!r} (got {value}); there is no official value for lighting")
        return float(value)


# ------------------------------------------------------------------------------------ pure: disentanglement

def factor_spread(values: Tensor) -> Tensor:
    """Mean L2 deviation from the subject mean: values (S, V, D) (S subjects x V variations) -> scalar."""
    if values.ndim != 3:
        raise ValueError(f"factor_spread takes (subjects, variations, dim), got {tuple(values.shape)}")
    return (values - values.mean(dim=1, keepdim=True)).norm(dim=-1).mean()


def disentanglement_score(spreads: dict[str, float], target: str, dataset_spreads: dict[str, float]) -> float:
    """``sigma_target^(n-1) / prod(sigma_others)`` with ``sigma_f = spreads[f] / dataset_spreads[f]`` over the n
    factors of ``spreads`` (measured while varying ``target`` only)."""
    sigma = {f: spreads[f] / dataset_spreads[f] for f in spreads}
    others = [sigma[f] for f in sigma if f != target]
    return sigma[target] ** len(others) / math.prod(others)


def factor_values(coefficients: FaceCoefficients, factor: str) -> Tensor:
    """(B, D) what a factor's spread is measured on: a coefficient group, or for pose the 3 Euler angles."""
    return coefficients.angles if factor == "pose" else getattr(coefficients, factor)


# ------------------------------------------------------------------------------------ pure: geometry

def nearest_neighbours(query: Tensor, points: Tensor, chunk: int = 4096) -> tuple[Tensor, Tensor]:
    """For each of query (N, 3) its nearest of points (M, 3): (distances (N,), indices (N,)), by chunked cdist."""
    dists, index = [], []
    for s in range(0, query.shape[0], chunk):
        d, i = torch.cdist(query[s:s + chunk], points).min(dim=1)
        dists.append(d)
        index.append(i)
    return torch.cat(dists), torch.cat(index)


def kabsch(source: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """The rotation R (3, 3) and translation t (3,) minimising ``sum |R s_i + t - t_i|^2`` over paired (N, 3)
    points (SVD of the cross-covariance, a proper rotation: det R = +1)."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    h = (source - mu_s).T @ (target - mu_t)
    u, _, vt = torch.linalg.svd(h)
    d = torch.sign(torch.linalg.det(vt.T @ u.T))
    fix = torch.diag(torch.stack([torch.ones_like(d), torch.ones_like(d), d]))
    rot = vt.T @ fix @ u.T
    return rot, mu_t - rot @ mu_s


def icp(source: Tensor, target: Tensor, iterations: int = 40, tolerance: float = 1e-10) -> tuple[Tensor, Tensor]:
    """Rigid point-to-point ICP: (R, t) moving source (N, 3) onto target (M, 3); each step pairs every moved
    source point with its nearest target point and solves :func:`kabsch`; stops when the mean squared distance
    improves by less than ``tolerance``."""
    rot, trans = torch.eye(3, dtype=source.dtype, device=source.device), source.new_zeros(3)
    previous = math.inf
    for _ in range(iterations):
        moved = source @ rot.T + trans
        dist, idx = nearest_neighbours(moved, target)
        error = float(dist.pow(2).mean())
        if previous - error < tolerance:
            break
        previous = error
        rot, trans = kabsch(source, target[idx])
    return rot, trans


def nearest_rmse(points: Tensor, target: Tensor) -> float:
    """Root mean square of each point's (N, 3) distance to its nearest target point (M, 3)."""
    return float(nearest_neighbours(points, target)[0].pow(2).mean().sqrt())


def landmark_error(predicted: Tensor, reference: Tensor, image_size: int) -> Tensor:
    """(B,) mean distance between (B, 68, 2) landmark pixels, divided by the image side."""
    return (predicted - reference).norm(dim=-1).mean(dim=-1) / image_size


def iso_level(volume: Tensor, level: float | str) -> float:
    """A raw density level, or 'pNN' as that percentile of the volume's values."""
    if isinstance(level, str):
        if not level.startswith("p"):
            raise ValueError(f"an iso level is a number or a percentile 'pNN', got {level!r}")
        return float(torch.quantile(volume.flatten().double(), float(level[1:]) / 100))
    return float(level)


# ------------------------------------------------------------------------------------ the generator side

def face_layout(G: Generator3D, metric: str) -> FaceCodeLayout:
    """The generator's face-code layout, or a clear error naming the metric."""
    layout = G.face_code_layout() if "face" in G.capabilities.conditions else None
    if layout is None:
        raise ValueError(f"metric {metric!r} needs a face-conditioned generator (a family with the 'face' "
                         f"condition, e.g. cgof); the {G.family} generator has none")
    return layout


def regressor_from(config: FaceMetricsConfig, metric: str, device) -> FaceCoefficientRegressor:
    """The regressor at ``config.regressor``, or a clear error naming the option."""
    if config.regressor is None:
        raise ValueError(f"metric {metric!r} reads faces back with a face regressor: set FaceMetricsConfig.regressor "
                         "to a checkpoint folder (evaluate(..., configs=[FaceMetricsConfig(regressor=PATH)])); train "
                         "one with `aware3d face-regressor train`")
    return load_regressor(config.regressor, device)


def _frontal_cameras(G: Generator3D, n: int) -> Cameras:
    yaw, pitch = G.config.pose.frontal()
    return G.cameras([yaw] * n, [pitch] * n)


def _render_output(ctx: MetricContext, z: Tensor, code: Tensor, cameras: Cameras, g_render):
    """The renders of latents z with face codes ``code`` (B, D) from ``cameras``."""
    st, condition = ctx.settings, Condition(face=code)
    w = ctx.G.mapping(z, st.truncation_psi, cameras=cameras, condition=condition)
    return ctx.G.synthesis(w, cameras, condition=condition, resolution=st.resolution, render=st.render,
                           lock_view_dependence=st.lock_view_dependence, fast=True, generator=g_render)


def _render(ctx: MetricContext, z: Tensor, code: Tensor, cameras: Cameras, g_render) -> Tensor:
    """Final images (B, 3, H, W) of latents z with face codes ``code`` from ``cameras``."""
    return _render_output(ctx, z, code, cameras, g_render).image


def variation_latents(G: Generator3D, layout: FaceCodeLayout, target: str, subjects: int, variations: int,
                       g: torch.Generator) -> tuple[Tensor, Tensor, Cameras]:
    """(z, face codes, cameras) of subjects x variations latents (subject-major) varying ``target`` only."""
    n = subjects * variations
    z = torch.randn(subjects, G.z_dim, generator=g).repeat_interleave(variations, 0).to(G.device)
    code = G.face_code(z).clone()
    yaw, pitch = G.config.pose.sample(subjects, generator=g)
    yaw, pitch = yaw.repeat_interleave(variations), pitch.repeat_interleave(variations)
    if target == "pose":
        yaw, pitch = G.config.pose.sample(n, generator=g)
    else:
        part = getattr(layout, target)
        code[:, part] = G.face_code(torch.randn(n, G.z_dim, generator=g).to(G.device))[:, part]
    return z, code, G.cameras(yaw.tolist(), pitch.tolist())


@torch.no_grad()
def _spreads_varying(ctx: MetricContext, regressor, layout, target: str, factors, g, g_render) -> dict[str, float]:
    """Each factor's raw spread of the re-estimated coefficients when only ``target`` varies."""
    config, subjects = ctx.config(FaceMetricsConfig), ctx.num_gen
    z, code, cams = variation_latents(ctx.G, layout, target, subjects, config.variations, g)
    values: dict[str, list[Tensor]] = {f: [] for f in factors}
    for s in range(0, len(z), ctx.batch):
        rows = slice(s, s + ctx.batch)
        cam = Cameras(cams.cam2world[rows], cams.intrinsics[rows])
        rec = regressor.reconstruct(_render(ctx, z[rows], code[rows], cam, g_render)).coefficients
        for f in factors:
            values[f].append(factor_values(rec, f).float().cpu())
    return {f: float(factor_spread(torch.cat(v).reshape(subjects, config.variations, -1))) for f, v in values.items()}


def disentanglement(ctx: MetricContext) -> dict:
    """The disentanglement score of every factor (``value``: their mean)."""
    config, name = ctx.config(FaceMetricsConfig), ctx.metric.name
    layout = face_layout(ctx.G, name)
    if len(config.factors) < 2 or len(set(config.factors)) != len(config.factors):
        raise ValueError(f"FaceMetricsConfig.factors needs two or more distinct factors, got {config.factors}")
    dataset = {f: config.dataset_spread(f) for f in config.factors}
    if config.variations < 2:
        raise ValueError(f"FaceMetricsConfig.variations must be >= 2, got {config.variations}")
    regressor = regressor_from(config, name, ctx.G.device)
    g, g_render = torch.Generator().manual_seed(ctx.seed), render_generator(ctx.G, ctx.seed)
    spreads = {t: _spreads_varying(ctx, regressor, layout, t, config.factors, g, g_render) for t in config.factors}
    scores = {t: disentanglement_score(spreads[t], t, dataset) for t in config.factors}
    return {"value": sum(scores.values()) / len(scores), "scores": scores, "spreads": spreads,
            "dataset_spreads": dataset, "subjects": ctx.num_gen, "variations": config.variations,
            "truncation_psi": ctx.settings.truncation_psi, "resolution": ctx.settings.resolution, "seed": ctx.seed,
            "regressor": config.regressor}


def with_factor_scores(name: str, entry: dict) -> dict[str, float]:
    """Flat results of the disentanglement score: the mean under ``name``, each factor's as ``name_<factor>``."""
    return {name: entry["value"], **{f"{name}_{f}": v for f, v in entry["scores"].items()}}


def face_surface_points(G: Generator3D, code: Tensor, resolution: int) -> Tensor:
    """(N, 3) world points of one face code's (1, D) mesh surface seen from the frontal camera (its mesh depth
    along each covered pixel's ray)."""
    cams = _frontal_cameras(G, 1)
    renders = G.face_renders(code, cams, resolution)
    rays_o, rays_d = generate_rays(cams, resolution, resolution, grid=G.config.pixel_grid)
    depth, mask = renders.mesh_depth.reshape(-1), renders.mask.reshape(-1) > 0.5
    return (rays_o[0] + rays_d[0] * depth[:, None].to(rays_d))[mask]


def generated_vertices(G: Generator3D, w: Tensor, config: FaceMetricsConfig) -> Tensor | None:
    """(V, 3) marching-cubes vertices of latent w's (1, w_dim) density, or None when there is no surface."""
    h = G.config.shape_half_extent
    density = G.rendered_density(w)
    volume = sample_density_grid(lambda p: density(p[None])[0], resolution=config.grid,
                                 bounds=((-h, -h, -h), (h, h, h)), device=G.device, progress=False)
    try:
        level = iso_level(volume, G.shape_level() if config.level is None else config.level)
        vertices, _ = extract_mesh(volume, level, ((-h, -h, -h), (h, h, h)))
    except ValueError:
        return None
    return torch.from_numpy(vertices)


@torch.no_grad()
def mesh_consistency(ctx: MetricContext) -> dict:
    """ICP-aligned and unaligned RMSE (world units) between the input face surface and the generated mesh."""
    G, config = ctx.G, ctx.config(FaceMetricsConfig)
    face_layout(G, ctx.metric.name)
    g = torch.Generator().manual_seed(ctx.seed)
    pairs, empty = [], 0
    for _ in range(ctx.num_gen):
        z = torch.randn(1, G.z_dim, generator=g).to(G.device)
        vertices = generated_vertices(G, G.mapping(z, ctx.settings.truncation_psi), config)
        face = face_surface_points(G, G.face_code(z), config.face_resolution).float().cpu()
        if vertices is None or len(face) == 0:
            empty += 1
            continue
        pairs.append((face, vertices))
    aligned = [aligned_rmse(face, vertices, config.icp_iterations) for face, vertices in pairs]
    # The official cross-test: each generated mesh against the *next* latent's face. A shape that follows its own
    # code fits its own face better than another's (own / cross < 1); one shape for every code scores ~1.
    cross = [aligned_rmse(pairs[(i + 1) % len(pairs)][0], pairs[i][1], config.icp_iterations)
             for i in range(len(pairs))] if len(pairs) > 1 else []

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else float("nan")
    return {"value": mean(aligned), "unaligned": mean([nearest_rmse(f, v) for f, v in pairs]), "cross": mean(cross),
            "own_to_cross": mean(aligned) / mean(cross) if cross else float("nan"), "num_gen": ctx.num_gen,
            "meshes_without_surface": empty, "truncation_psi": ctx.settings.truncation_psi, "seed": ctx.seed,
            "config": to_dict(config), "units": "world units; RMSE of each face-surface point's distance to the "
                                                "nearest generated mesh vertex"}


def aligned_rmse(face: Tensor, vertices: Tensor, iterations: int) -> float:
    """:func:`nearest_rmse` of face points (N, 3) moved onto mesh vertices (M, 3) by :func:`icp`."""
    rot, trans = icp(face, vertices, iterations)
    return nearest_rmse(face @ rot.T + trans, vertices)


def with_unaligned(name: str, entry: dict) -> dict[str, float]:
    """Flat results of the mesh RMSE: the ICP-aligned value, ``name_unaligned``, the cross-test ``name_cross``
    (each mesh against another latent's face) and ``name_own_to_cross``."""
    return {name: entry["value"], f"{name}_unaligned": entry["unaligned"], f"{name}_cross": entry["cross"],
            f"{name}_own_to_cross": entry["own_to_cross"]}


def pearson(a: Tensor, b: Tensor) -> float:
    """Pearson correlation of two equally long 1-D tensors (nan when either is constant)."""
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    denominator = float(a.norm() * b.norm())
    return float((a * b).sum()) / denominator if denominator > 0 else float("nan")


def at_pixels(maps: Tensor, points: Tensor) -> Tensor:
    """(B, K) values of maps (B, 1, H, W) at the nearest pixels of points (B, K, 2) (x = column, y = row)."""
    B, _, H, W = maps.shape
    col = points[..., 0].round().long().clamp(0, W - 1)
    row = points[..., 1].round().long().clamp(0, H - 1)
    return maps[:, 0].reshape(B, -1).gather(1, row * W + col)


@torch.no_grad()
def depth_change_correlation(ctx: MetricContext) -> dict:
    """The official depth-change correlation: per subject the expression is redrawn; at the face's landmarks the
    change of the generated depth is correlated (Pearson, over every visible landmark of every subject) with the
    change of the input mesh's depth, frontal camera. 1: the geometry moves exactly as the code's mesh; ~0: the
    expression code does not reach the geometry."""
    G, st = ctx.G, ctx.settings
    layout = face_layout(G, ctx.metric.name)
    g, g_render = torch.Generator().manual_seed(ctx.seed), render_generator(G, ctx.seed)
    generated, mesh = [], []
    for s in range(0, ctx.num_gen, ctx.batch):
        b = min(ctx.batch, ctx.num_gen - s)
        z = torch.randn(b, G.z_dim, generator=g).to(G.device)
        code = G.face_code(z)
        codes = [code, code.clone()]
        other = G.face_code(torch.randn(b, G.z_dim, generator=g).to(G.device))
        codes[1][:, layout.expression] = other[:, layout.expression]
        cams = _frontal_cameras(G, b)
        depth = [_render_output(ctx, z, c, cams, g_render).depth for c in codes]
        renders = [G.face_renders(c, cams, depth[0].shape[-1]) for c in codes]
        points = renders[0].landmarks
        seen = (at_pixels(renders[0].mask, points) > 0.5) & (at_pixels(renders[1].mask, points) > 0.5)
        generated.append((at_pixels(depth[1], points) - at_pixels(depth[0], points))[seen].cpu())
        mesh.append((at_pixels(renders[1].mesh_depth, points) - at_pixels(renders[0].mesh_depth, points))[seen].cpu())
    generated_change, mesh_change = torch.cat(generated), torch.cat(mesh)
    return {"value": pearson(generated_change, mesh_change), "landmarks": len(mesh_change),
            "mean_abs_mesh_change": float(mesh_change.abs().mean()) if len(mesh_change) else float("nan"),
            "mean_abs_generated_change": float(generated_change.abs().mean()) if len(mesh_change) else float("nan"),
            "num_gen": ctx.num_gen, "truncation_psi": st.truncation_psi, "resolution": st.resolution,
            "seed": ctx.seed, "units": "Pearson correlation of depth changes (world units) at landmark pixels"}


@torch.no_grad()
def landmark_consistency(ctx: MetricContext) -> dict:
    """Mean normalised distance between the regressor's landmarks on generated images and the face mesh's
    projected landmarks (cameras from the model's prior)."""
    G, config, st = ctx.G, ctx.config(FaceMetricsConfig), ctx.settings
    face_layout(G, ctx.metric.name)
    regressor = regressor_from(config, ctx.metric.name, G.device)
    g, g_render = torch.Generator().manual_seed(ctx.seed), render_generator(G, ctx.seed)
    errors = []
    for s in range(0, ctx.num_gen, ctx.batch):
        b = min(ctx.batch, ctx.num_gen - s)
        z = torch.randn(b, G.z_dim, generator=g).to(G.device)
        cams = G.sample_cameras(b, generator=g)
        code = G.face_code(z)
        image = _render(ctx, z, code, cams, g_render)
        reference = G.face_renders(code, cams, image.shape[-1]).landmarks
        predicted = regressor.reconstruct(image).landmarks
        errors.append(landmark_error(predicted.float(), reference.float(), image.shape[-1]).cpu())
    values = torch.cat(errors)
    return {"value": float(values.mean()), "std": float(values.std()) if len(values) > 1 else 0.0,
            "num_gen": ctx.num_gen, "truncation_psi": st.truncation_psi, "resolution": st.resolution,
            "seed": ctx.seed, "regressor": config.regressor,
            "units": "mean landmark distance in pixels divided by the image side"}


FACE_METRIC_NEEDS = Needs(cameras=False)
"""The face metrics choose their own cameras (the model's prior or frontal view) and need no dataset."""

register_metric(Metric("face_disentanglement", disentanglement, num_gen=16, needs=FACE_METRIC_NEEDS,
                       higher_is_better=True, flatten=with_factor_scores))
register_metric(Metric("face_mesh_rmse", mesh_consistency, num_gen=8, needs=Needs(depth=True, cameras=False),
                       flatten=with_unaligned))
register_metric(Metric("face_landmark_error", landmark_consistency, num_gen=64, needs=FACE_METRIC_NEEDS))
register_metric(Metric("face_depth_change_correlation", depth_change_correlation, num_gen=16, needs=FACE_METRIC_NEEDS,
                       higher_is_better=True))

__all__ = ["FACTORS", "FACE_METRIC_NEEDS", "OFFICIAL_SPREADS", "FaceMetricsConfig", "aligned_rmse", "at_pixels",
           "depth_change_correlation", "disentanglement",
           "disentanglement_score", "face_layout", "face_surface_points", "factor_spread", "factor_values",
           "generated_vertices", "icp", "iso_level", "kabsch", "landmark_consistency", "landmark_error",
           "mesh_consistency", "nearest_neighbours", "nearest_rmse", "pearson", "regressor_from", "variation_latents", "with_factor_scores",
           "with_unaligned"]
