"""CGOF's three-pass volume rendering: coarse, importance-sampled fine, and a second importance pass ("fine2")
that on rays inside the mesh mask is blended toward a thin band around the mesh depth (sample-near-mesh).

As the official ``PoseImplicitGenerator3d``: the coarse pass (``num_samples``, stratified) only decides where to
look; the fine pass draws ``num_importance`` distances from the coarse weights; fine2 draws as many again from
the fine pass's own weights, and on guided rays sample k becomes ``(1 - ratio) t_k + ratio b_k`` with ``b_k`` the
k-th of evenly spaced distances in ``[d - w/2, d + w/2]`` around the mesh depth d
(:func:`aware3d.rendering.sampling.blend_toward_band`). The final compositing merges fine + fine2 (sorted);
without the third pass (``fine2 = 0``) it merges coarse + fine, as pi-GAN. (The official code blends the
points but keeps the unblended distances for compositing; here the distances and points agree.)

Randomness: every uniform is drawn up front for the whole batch (:class:`PassDraws`), so chunking the rays
changes nothing but the density noise (training renders are never chunked).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from ...rendering import FieldFn, RenderConfig, shaped_density
from ...rendering.bands import band_last_delta, band_limits, probe_pixels
from ...rendering.compositing import Composited, composite
from ...rendering.sampling import blend_toward_band, sample_importance, stratified_parts


@dataclass
class NearMeshGuide:
    """Where the fine2 samples of each ray are pulled to."""

    depth: Tensor
    """(B, R) band centre: the mesh depth along each ray, world units."""
    mask: Tensor
    """(B, R) bool: the rays that are pulled (inside the mesh mask)."""
    band_width: float
    """Full width of the band, world units (``(far - near) * thick_ratio``)."""
    ratio: float
    """Blend factor toward the band, in [0, 1] (the official ``narrow_ratio``)."""


@dataclass
class SamplePass:
    """One pass's samples: distances (sorted within the pass) and the field's outputs there."""

    name: str
    """"coarse", "fine" or "fine2" (the fast mode's band passes: "band", "band_fine")."""
    t: Tensor
    """(B, R, S) distances along the unit rays, world units."""
    rgb: Tensor
    """(B, R, S, 3) colour in [0, 1]."""
    sigma: Tensor
    """(B, R, S) raw density (before the activation)."""

    def outputs(self) -> Tensor:
        """(B, R, S, 4) ``[rgb, sigma]``, the official siren output layout."""
        return torch.cat([self.rgb, self.sigma[..., None]], -1)


@dataclass
class PassDraws:
    """Uniform draws of the three passes, each (B, R, n) or None (drawn from the generator)."""

    stratified: Tensor | None = None
    fine: Tensor | None = None
    fine2: Tensor | None = None

    def slice(self, sl: slice) -> "PassDraws":
        return PassDraws(*(None if d is None else d[:, sl] for d in (self.stratified, self.fine, self.fine2)))


@dataclass
class ThreePassRays:
    """What :func:`render_three_pass` returns (R rays, S final samples per ray)."""

    composited: Composited
    """The final compositing (colour (B, R, 3), depth, opacity, weights (B, R, S) after any last-sample fill, ...)."""
    t: Tensor
    """(B, R, S) the final samples' distances, sorted."""
    passes: list[SamplePass]
    """The passes merged into the final compositing, in merge order."""
    order: Tensor
    """(B, R, S) int64: final sample s is sample ``order[..., s]`` of the passes concatenated along S."""


def query(field: FieldFn, rays_o: Tensor, rays_d: Tensor, t: Tensor, name: str, cfg: RenderConfig,
          offset: Tensor | None = None) -> SamplePass:
    """Evaluate the field at ``o + d t (+ offset)`` for t (B, R, S) (offset: (B, R, S or 1, 3) world units), with
    the rays' directions as view directions; the density shaped as ``cfg`` renders it
    (:func:`~aware3d.rendering.shaped_density`)."""
    B, R, S = t.shape
    points = rays_o.unsqueeze(2) + rays_d.unsqueeze(2) * t.unsqueeze(-1)
    if offset is not None:
        points = points + offset
    dirs = rays_d.unsqueeze(2).expand(B, R, S, 3)
    rgb, sigma = field(points.reshape(B, R * S, 3), dirs.reshape(B, R * S, 3))
    return SamplePass(name, t, rgb.reshape(B, R, S, -1), shaped_density(sigma.reshape(B, R, S), points, cfg))


def _composite(cfg: RenderConfig, rgb: Tensor, sigma: Tensor, t: Tensor, background, generator,
               last_delta: Tensor | None = None) -> Composited:
    return composite(rgb, sigma, t, density_activation=cfg.density_activation, density_bias=cfg.density_bias,
                     midpoint=cfg.midpoint, last_delta=cfg.last_delta if last_delta is None else last_delta,
                     background=background,
                     depth_mode=cfg.depth_mode, noise_std=cfg.noise_std, generator=generator)


def importance_distances(p: SamplePass, cfg: RenderConfig, count: int, u: Tensor | None,
                         generator: torch.Generator | None) -> Tensor:
    """(B, R, count) sorted distances drawn from the weights of pass ``p`` composited alone (no gradient)."""
    with torch.no_grad():
        weights = _composite(cfg, p.rgb.detach(), p.sigma.detach(), p.t, "black", generator).weights
        t = sample_importance(p.t, weights, count, smoothing=cfg.importance_smoothing,
                              weight_eps=cfg.importance_weight_eps, right=cfg.searchsorted_right, u=u,
                              det=cfg.importance_det, generator=generator)
    return torch.sort(t, -1).values


def merge_passes(passes: list[SamplePass], cfg: RenderConfig, generator: torch.Generator | None,
                 background=None, last_delta: Tensor | None = None) -> tuple[Composited, Tensor, Tensor]:
    """Composite the passes' samples merged in distance order (a stable sort: ties keep the passes' order).
    Returns (compositing, sorted t (B, R, S), order (B, R, S)); ``background`` defaults to ``cfg.background``,
    ``last_delta`` (B, R) to ``cfg.last_delta``."""
    t, order = torch.sort(torch.cat([p.t for p in passes], -1), dim=-1, stable=True)
    rgb = torch.cat([p.rgb for p in passes], -2).gather(-2, order[..., None].expand(-1, -1, -1, 3))
    sigma = torch.cat([p.sigma for p in passes], -1).gather(-1, order)
    out = _composite(cfg, rgb, sigma, t, cfg.background if background is None else background, generator, last_delta)
    return out, t, order


def render_three_pass(field: FieldFn, rays_o: Tensor, rays_d: Tensor, cfg: RenderConfig, fine2: int,
                      guide: NearMeshGuide | None, generator: torch.Generator | None = None,
                      draws: PassDraws | None = None) -> ThreePassRays:
    """Render rays (B, R, 3) through ``field`` with ``cfg``'s coarse / fine counts and ``fine2`` third-pass
    samples (0: none), the third pass pulled toward ``guide`` (None: plain importance samples)."""
    draws = draws or PassDraws()
    B, R, _ = rays_o.shape
    lattice, offset = stratified_parts(cfg.near, cfg.far, cfg.num_samples, (B, R), perturb=cfg.perturb,
                                       jitter=cfg.jitter, u=draws.stratified, generator=generator,
                                       device=rays_o.device, dtype=rays_o.dtype, spacing=cfg.spacing)
    t_coarse = lattice if offset is None else lattice + offset
    third = fine2 > 0 and cfg.num_importance > 0
    with torch.set_grad_enabled(torch.is_grad_enabled() and not third):  # coarse only places samples then
        coarse = query(field, rays_o, rays_d, t_coarse, "coarse", cfg)
    if cfg.num_importance == 0:
        passes = [coarse]
    else:
        fine = query(field, rays_o, rays_d, importance_distances(coarse, cfg, cfg.num_importance, draws.fine,
                                                                  generator), "fine", cfg)
        passes = [coarse, fine]
        if third:
            t2 = importance_distances(fine, cfg, fine2, draws.fine2, generator)
            if guide is not None:
                t2 = torch.sort(blend_toward_band(t2, guide.depth.to(t2), guide.mask, guide.band_width,
                                                  guide.ratio), -1).values
            passes = [fine, query(field, rays_o, rays_d, t2, "fine2", cfg)]
    out, t, order = merge_passes(passes, cfg, generator)
    return ThreePassRays(out, t, passes, order)


def draws_up_front(cfg: RenderConfig, fine2: int, draws: PassDraws | None, like: Tensor,
                   generator: torch.Generator | None) -> PassDraws:
    """``draws`` with every missing uniform of the three passes drawn now for all rays of ``like`` (B, R, 3)."""
    B, R, _ = like.shape
    draws = draws or PassDraws()

    def rand(n: int) -> Tensor:
        return torch.rand((B, R, n), generator=generator, device=like.device, dtype=like.dtype)
    stratified = draws.stratified if draws.stratified is not None or not cfg.perturb or cfg.num_samples < 2 \
        else rand(cfg.num_samples)
    random_fine = cfg.num_importance > 0 and not cfg.importance_det
    fine = draws.fine if draws.fine is not None or not random_fine else rand(cfg.num_importance)
    fine2_u = draws.fine2 if draws.fine2 is not None or not (random_fine and fine2 > 0) else rand(fine2)
    return PassDraws(stratified, fine, fine2_u)


def _cat(parts: list, dim: int = 1):
    """Join chunk results along the rays (dataclasses field by field, tensors with torch.cat, lists item-wise)."""
    first = parts[0]
    if isinstance(first, Tensor):
        return torch.cat(parts, dim)
    if isinstance(first, list):
        return [_cat([p[i] for p in parts], dim) for i in range(len(first))]
    if isinstance(first, str):
        return first
    return type(first)(**{f.name: _cat([getattr(p, f.name) for p in parts], dim) for f in fields(first)})


def render_chunked(field: FieldFn, rays_o: Tensor, rays_d: Tensor, cfg: RenderConfig, fine2: int,
                   guide: NearMeshGuide | None, generator: torch.Generator | None = None,
                   draws: PassDraws | None = None) -> ThreePassRays:
    """:func:`render_three_pass` over chunks of rays of at most ``cfg.max_points`` field evaluations per pass
    (None: all at once), with the draws made up front so the result does not depend on the chunk size."""
    draws = draws_up_front(cfg, fine2, draws, rays_o, generator)
    B, R, _ = rays_o.shape
    per_ray = cfg.num_samples + cfg.num_importance + fine2
    if cfg.max_points is None or B * R * per_ray <= cfg.max_points:
        return render_three_pass(field, rays_o, rays_d, cfg, fine2, guide, generator, draws)
    step = max(1, cfg.max_points // (B * per_ray))
    outs = []
    for s in range(0, R, step):
        sl = slice(s, s + step)
        part = None if guide is None else NearMeshGuide(guide.depth[:, sl], guide.mask[:, sl], guide.band_width,
                                                        guide.ratio)
        outs.append(render_three_pass(field, rays_o[:, sl], rays_d[:, sl], cfg, fine2, part, generator,
                                      draws.slice(sl)))
    return _cat(outs)


def _query_chunked(field: FieldFn, rays_o: Tensor, rays_d: Tensor, t: Tensor, name: str, cfg: RenderConfig) -> SamplePass:
    """:func:`query` over chunks of rays of at most ``cfg.max_points`` field evaluations (None: all at once)."""
    B, R, S = t.shape
    step = R if cfg.max_points is None else max(1, cfg.max_points // (B * S))
    parts = [query(field, rays_o[:, s:s + step], rays_d[:, s:s + step], t[:, s:s + step], name, cfg)
             for s in range(0, R, step)]
    return _cat(parts)


def render_banded(field: FieldFn, rays_o: Tensor, rays_d: Tensor, cfg: RenderConfig, fine2: int,
                  guide: NearMeshGuide | None, image_hw: tuple[int, int],
                  generator: torch.Generator | None = None) -> ThreePassRays:
    """``cfg.bands``' fast sampling (:mod:`aware3d.rendering.bands`) around the three-pass render: the probe
    pixels rendered by :func:`render_chunked` (all three passes, the mesh guide included), then every ray
    sampled only in its band (one "band" pass, plus importance samples in it if ``cfg.bands.importance``)."""
    bands, exact = cfg.bands, replace(cfg, bands=None)
    index, hp, wp = probe_pixels(*image_hw, bands.probe_stride, device=rays_o.device)
    part = None if guide is None else NearMeshGuide(guide.depth[:, index], guide.mask[:, index], guide.band_width,
                                                    guide.ratio)
    B, R, _ = rays_o.shape
    with torch.no_grad():
        probe = render_chunked(field, rays_o[:, index], rays_d[:, index], exact, fine2, part, generator)
        near, far = band_limits(bands, probe.t, probe.composited.weights, cfg.num_samples, (hp, wp), image_hw,
                                cfg.near, cfg.far)
    lattice, _ = stratified_parts(near, far, bands.samples, (B, R), perturb=False, device=rays_o.device,
                                  dtype=rays_o.dtype, spacing=cfg.spacing)
    passes = [_query_chunked(field, rays_o, rays_d, lattice, "band", exact)]
    if bands.importance > 0:
        fine_cfg = replace(exact, importance_det=True)
        t_fine = importance_distances(passes[0], fine_cfg, bands.importance, None, generator)
        passes.append(_query_chunked(field, rays_o, rays_d, t_fine, "band_fine", exact))
    out, t, order = merge_passes(passes, exact, generator,
                                 last_delta=band_last_delta(near, far, cfg.far, cfg.last_delta, bands.samples))
    return ThreePassRays(out, t, passes, order)


__all__ = ["NearMeshGuide", "PassDraws", "SamplePass", "ThreePassRays", "draws_up_front", "importance_distances",
           "merge_passes", "query", "render_banded", "render_chunked", "render_three_pass"]
