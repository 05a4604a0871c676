"""``aware3d face-clip``: the control clips of face-conditioned families (cGOF's render_exp / render_pose / render_id).

* ``--clip expression``: the first subject's code with only its expression slice moving through a list of
  expression codes (:func:`official_expression_codes`, or ``--expressions FILE``), frontal camera (optional seeded
  jitter ``--angle-multiplier``), a closed loop back to the first expression;
* ``--clip pose``: the first subject's code, the camera on a growing-then-shrinking ellipse in (yaw, pitch)
  (:func:`ellipse_pose_path`), resampled to equal arc length;
* ``--clip identity``: the full latent interpolated linearly between the ``--subjects`` seeds, the expression
  slice held at the first subject's, frontal camera.

Each frame writes ``frames/NNNN.png`` (optionally ``depth/``, ``normals/``) and ``conditioning/NNNN.png`` (mesh depth
| mask | shaded mesh with the 68 landmarks), and the clip ``<clip>.mp4`` (or ``.gif``) shows frame | conditioning
side by side; ``<clip>.json`` records the settings and the per-frame codes and angles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..checks import AT_LEAST_ONE, FINITE, NON_NEGATIVE, POSITIVE, SEED, check_options
from ..errors import OptionError
from ..io.media import normals_to_image, save_image, to_uint8, write_json, write_video
from ..models.base import Condition, FaceCodeLayout, Generator3D
from ..nn.kernels import low_precision
from .common import ModelOptions, load_model, out_dir, psi, require_condition, settings_record, tool_render_config
from .faces import draw_landmarks

CLIPS = ("expression", "pose", "identity")
"""The clip kinds of ``--clip``."""
EXPRESSION_GRID = (12, 12)
"""The candidate grid the official expression list is picked from (rows x columns)."""
EXPRESSION_GRID_SEED = 12
"""Seed of the candidate grid's draws."""
OFFICIAL_EXPRESSIONS = 9
"""How many expressions the official list holds."""


@dataclass
class FaceClipOptions(ModelOptions):
    checkpoint: str = "cgof-tiny"
    """A checkpoint of a family with a face condition (e.g. cgof), or such a preset name."""
    clip: str = "expression"
    """Which clip: expression, pose or identity."""
    subjects: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Subject seeds: the identity clip morphs through them all; the expression and pose clips film the first."""
    num_frames: int = 200
    """Frames of the clip."""
    expressions: str | None = None
    """A .npy or .json file of (K, E) expression codes (whitened, E the expression slice's size) to move through;
    default: the official 9 (:func:`official_expression_codes`)."""
    exp_multiplier: float = 1.0
    """Scale of the expression codes of the expression clip."""
    angle_multiplier: float = 0.0
    """Expression clip: per-frame seeded camera jitter, in units of the pose prior's std (0: frontal)."""
    pose_range: float = 1.2
    """Pose clip: the ellipse's largest radius, in units of the pose prior's yaw / pitch std."""
    pose_turns: float = 2.0
    """Pose clip: turns of the ellipse over the clip."""
    depth: bool = False
    """Also save depth maps (near..far as black..white)."""
    normals: bool = False
    """Also save normal maps (n / 2 + 0.5)."""
    fps: float = 25
    """Frames per second of the clip."""
    name: str | None = None
    """File name of the clip inside --out (the suffix picks .mp4 or .gif); default ``<clip>.mp4``."""
    seed: int = 0
    """Seed of the renderer's draws and of the --angle-multiplier jitter."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_options(self, {"subjects": SEED, "num_frames": AT_LEAST_ONE, "exp_multiplier": FINITE,
                             "angle_multiplier": NON_NEGATIVE, "pose_range": POSITIVE, "pose_turns": FINITE,
                             "fps": POSITIVE, "seed": SEED})
        if self.clip not in CLIPS:
            raise OptionError(f"--clip must be one of {', '.join(CLIPS)}, got {self.clip!r}")
        if not self.subjects:
            raise OptionError("--subjects needs at least one seed")
        if self.clip == "identity" and len(self.subjects) < 2:
            raise OptionError(f"--clip identity morphs between subjects: give at least 2 --subjects, got {self.subjects}")


# ------------------------------------------------------------------------------------------ pure paths

def official_expression_codes(dim: int, seed: int = EXPRESSION_GRID_SEED, grid: tuple[int, int] = EXPRESSION_GRID,
                              count: int = OFFICIAL_EXPRESSIONS) -> torch.Tensor:
    """(count, dim) whitened expression codes: a 12 x 12 grid of N(0, I) candidates drawn from ``seed`` (row-major),
    of which ``count`` are picked by farthest-point selection (start at the candidate of largest norm, then add
    the candidate farthest from those picked), so the list spans distinct expressions. Deterministic."""
    candidates = torch.randn(grid[0] * grid[1], dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    picked = [int(candidates.norm(dim=1).argmax())]
    nearest = (candidates - candidates[picked[0]]).norm(dim=1)
    while len(picked) < count:
        picked.append(int(nearest.argmax()))
        nearest = torch.minimum(nearest, (candidates - candidates[picked[-1]]).norm(dim=1))
    return candidates[picked].float()


def loop_weights(frames: int, keys: int, closed: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per frame (index a (F,), index b (F,), weight t (F,)) of linear interpolation through ``keys`` key frames:
    value = (1 - t) key[a] + t key[b]. ``closed`` loops back to key 0 (frame f at f / F of the loop); open paths
    put frame 0 on key 0 and the last frame on the last key."""
    if keys == 1:
        zeros = torch.zeros(frames, dtype=torch.long)
        return zeros, zeros, torch.zeros(frames, dtype=torch.float64)
    segments = keys if closed else keys - 1
    denominator = frames if closed else max(frames - 1, 1)
    s = torch.arange(frames, dtype=torch.float64) / denominator * segments
    a = s.floor().long().clamp(max=segments - 1)
    t = s - a
    return a, (a + 1) % keys, t


def interpolate_keys(keys: torch.Tensor, frames: int, closed: bool) -> torch.Tensor:
    """(frames, D) linear interpolation through the rows of ``keys`` (K, D) (see :func:`loop_weights`)."""
    a, b, t = loop_weights(frames, len(keys), closed)
    t = t.to(keys.dtype)[:, None]
    return (1 - t) * keys[a] + t * keys[b]


def ellipse_pose_path(frames: int, pose_range: float, yaw_std: float, pitch_std: float, turns: float = 2.0,
                      dense: int | None = None) -> torch.Tensor:
    """(frames, 2) float64 (yaw, pitch) offsets in radians on an ellipse whose radius grows then shrinks.

    The curve, for t in [0, 1]: r(t) = pose_range sin(pi t), theta = 2 pi turns t,
    (yaw, pitch) = r (yaw_std cos theta, pitch_std sin theta): in units of the stds its radius peaks at
    ``pose_range`` mid-clip. The frames are resampled to equal arc length in (yaw, pitch) radians: the curve is
    evaluated at ``dense`` points, its cumulative length inverted by linear interpolation; then, since the spiral
    curls tightly near the centre (where chords fall short of arcs), the frame parameters are refined until
    consecutive frames are equidistant (straight-line distance; :func:`equalise_chords`).
    """
    if yaw_std <= 0 or pitch_std <= 0:
        raise ValueError(f"the pose clip's ellipse is in units of the pose prior's std, which is zero here (yaw std "
                         f"{yaw_std}, pitch std {pitch_std}): this model has no pose spread to scale --pose-range by")
    dense = dense or max(20000, 200 * frames)

    def curve(t: np.ndarray) -> np.ndarray:
        r, theta = pose_range * np.sin(np.pi * t), 2 * np.pi * turns * t
        return np.stack([r * yaw_std * np.cos(theta), r * pitch_std * np.sin(theta)], -1)

    t = np.linspace(0.0, 1.0, dense)
    length = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(curve(t), axis=0), axis=1))])
    targets = np.linspace(0.0, length[-1], frames)
    return torch.from_numpy(curve(equalise_chords(curve, np.interp(targets, length, t))))


def equalise_chords(curve, t: np.ndarray, iterations: int = 200, tolerance: float = 1e-7) -> np.ndarray:
    """Increasing parameters t (F,) (first and last kept) moved so that consecutive points ``curve(t)`` (F, 2) are
    equally far apart: each round re-spaces t uniformly in the cumulative chord length of the current points
    (a fixed point exactly when the chords are equal); stops when max / min chord - 1 < ``tolerance``."""
    for _ in range(iterations):
        chords = np.linalg.norm(np.diff(curve(t), axis=0), axis=1)
        if len(chords) == 0 or chords.max() / max(chords.min(), 1e-300) - 1 < tolerance:
            break
        cumulative = np.concatenate([[0.0], np.cumsum(chords)])
        t = np.interp(np.linspace(0.0, cumulative[-1], len(t)), cumulative, t)
    return t


def frame_angles(G: Generator3D, opts: FaceClipOptions) -> torch.Tensor:
    """(F, 2) pi-GAN (yaw, pitch) radians of every frame: the pose ellipse, or the frontal view with the expression
    clip's seeded jitter."""
    pose = G.config.pose
    frontal = torch.tensor(pose.frontal(), dtype=torch.float64)
    if opts.clip == "pose":
        return frontal + ellipse_pose_path(opts.num_frames, opts.pose_range, pose.yaw_std, pose.pitch_std,
                                           opts.pose_turns)
    offsets = torch.zeros(opts.num_frames, 2, dtype=torch.float64)
    if opts.clip == "expression" and opts.angle_multiplier > 0:
        noise = torch.randn(opts.num_frames, 2, generator=torch.Generator().manual_seed(opts.seed), dtype=torch.float64)
        offsets = noise * opts.angle_multiplier * torch.tensor([pose.yaw_std, pose.pitch_std], dtype=torch.float64)
    return frontal + offsets


# ------------------------------------------------------------------------------------------ codes

def read_expressions(path: str, dim: int) -> torch.Tensor:
    """(K, dim) expression codes from a .npy or .json file (a (K, dim) array or list of lists)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--expressions {path}: no such file (a .npy or .json of (K, {dim}) expression codes)")
    if file.suffix == ".npy":
        values = np.load(file, allow_pickle=False)
    elif file.suffix == ".json":
        values = np.asarray(json.loads(file.read_text()), dtype=np.float64)
    else:
        raise OptionError(f"--expressions {path}: give a .npy or .json file of (K, {dim}) expression codes")
    if values.ndim != 2 or values.shape[1] != dim or len(values) < 1:
        raise OptionError(f"--expressions {path} must hold (K, {dim}) expression codes (K >= 1), got shape "
                          f"{values.shape}")
    return torch.as_tensor(values, dtype=torch.float32)


@dataclass(frozen=True)
class ClipPlan:
    """What every frame of a clip renders."""

    z: torch.Tensor
    """(F, z_dim) the latents."""
    face: torch.Tensor
    """(F, D) the face codes (``Condition(face=...)``; they replace the latents' face slices)."""
    angles: torch.Tensor
    """(F, 2) pi-GAN (yaw, pitch) radians of the cameras."""
    keys: torch.Tensor
    """The key values the clip moves through: expression codes (K, E), subjects' face codes (S, D), or the one code."""


def clip_plan(G: Generator3D, opts: FaceClipOptions) -> ClipPlan:
    """The per-frame latents, face codes and cameras of the options' clip (no rendering)."""
    layout: FaceCodeLayout = G.face_code_layout()
    frames = opts.num_frames
    z_subjects = G.z_from_seeds(opts.subjects).double()
    codes = G.face_code(z_subjects)
    angles = frame_angles(G, opts)
    if opts.clip == "identity":
        z = interpolate_keys(z_subjects, frames, closed=False)
        face = G.face_code(z).clone()
        face[:, layout.expression] = codes[:1, layout.expression]
        return ClipPlan(z.float(), face.float(), angles, codes.float())
    z = z_subjects[:1].expand(frames, -1)
    face = codes[:1].expand(frames, -1).clone()
    keys = codes[:1]
    if opts.clip == "expression":
        dim = layout.expression.stop - layout.expression.start
        keys = (read_expressions(opts.expressions, dim) if opts.expressions else official_expression_codes(dim))
        keys = keys.double() * opts.exp_multiplier
        face[:, layout.expression] = interpolate_keys(keys, frames, closed=True)
    return ClipPlan(z.float(), face.float(), angles, keys.float())


# ------------------------------------------------------------------------------------------ rendering

def conditioning_panel(G: Generator3D, code: torch.Tensor, cameras, resolution: int, near: float,
                       far: float) -> torch.Tensor:
    """(3, H, 3 W) in [-1, 1]: mesh depth (near..far as white..black, black off the mesh) | mask | shaded mesh with
    the 68 landmarks (green dots)."""
    maps = G.face_renders(code, cameras, resolution)
    depth = ((far - maps.mesh_depth[0]) / (far - near)).clamp(0, 1) * maps.mask[0]
    shaded = draw_landmarks(maps.shaded.float().cpu(), maps.landmarks.cpu(), torch.tensor([0.1, 1.0, 0.2]),
                            radius=max(0.5, resolution / 96))[0]
    return torch.cat([_grey(depth), _grey(maps.mask[0]), shaded], dim=-1)


def _grey(values: torch.Tensor) -> torch.Tensor:
    """(1, H, W) in [0, 1] -> (3, H, W) grey in [-1, 1] on the CPU."""
    return (values * 2 - 1).expand(3, -1, -1).cpu()


def render_frame(G: Generator3D, opts: FaceClipOptions, plan: ClipPlan, i: int, cfg, out: Path) -> np.ndarray:
    """Render and save frame ``i``; returns its video frame (H, W', 3) uint8: image | conditioning."""
    resolution = opts.resolution or G.config.resolution
    yaw, pitch = plan.angles[i].tolist()
    cams = G.cameras([yaw], [pitch])
    condition = Condition(face=plan.face[i:i + 1].to(G.device))
    w = G.mapping(plan.z[i:i + 1].to(G.device), psi(G, opts), cameras=cams, condition=condition)
    with low_precision(opts.fast):
        res = G.synthesis(w, cams, condition=condition, resolution=resolution, render=cfg, normals=opts.normals,
                          fast=True, generator=torch.Generator(device=G.device).manual_seed(opts.seed))
    stem = f"{i:04d}.png"
    image = res.image[0].cpu()
    save_image(out / "frames" / stem, image)
    if opts.depth:
        save_image(out / "depth" / stem, res.depth[0], value_range=(cfg.near, cfg.far))
    if opts.normals and res.normals is not None:
        save_image(out / "normals" / stem, normals_to_image(res.normals)[0], value_range=(0, 1))
    panel = conditioning_panel(G, plan.face[i:i + 1], cams, image.shape[-1], cfg.near, cfg.far)
    save_image(out / "conditioning" / stem, panel)
    return to_uint8(torch.cat([image.clamp(-1, 1), panel], dim=-1))


@torch.no_grad()
def run(opts: FaceClipOptions) -> dict:
    G = load_model(opts)
    require_condition(G, "face", "aware3d face-clip")
    out = out_dir(opts)
    plan = clip_plan(G, opts)
    cfg = tool_render_config(G, opts)
    frames = (render_frame(G, opts, plan, i, cfg, out)
              for i in tqdm(range(opts.num_frames), desc=f"{opts.clip} clip", unit="frame", disable=not opts.progress))
    target = out / (opts.name or f"{opts.clip}.mp4")
    write_video(target, frames, fps=opts.fps)
    record = settings_record("face-clip", opts, G, truncation_psi=psi(G, opts), render=cfg, file=str(target),
                             frames=opts.num_frames, keys=plan.keys.tolist(),
                             angles=[{"yaw": y, "pitch": p} for y, p in plan.angles.tolist()])
    write_json(target.with_suffix(".json"), record)
    return record


__all__ = ["CLIPS", "ClipPlan", "FaceClipOptions", "clip_plan", "ellipse_pose_path", "interpolate_keys",
           "loop_weights", "official_expression_codes", "run"]
