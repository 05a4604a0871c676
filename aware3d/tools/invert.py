"""``aware3d invert IMAGE --checkpoint C``: the camera and latent (and with ``--pti`` the tuned generator) that render
a picture, for every family, with the reconstructed geometry.

The picture (any size, aspect and mode) is framed as the training images (``--crop``, see
:mod:`aware3d.inversion.crop`), then inverted (:mod:`aware3d.inversion.invert`: a coarse camera search over the
model's pose prior, the joint latent + camera optimisation, optional pivotal tuning). Written to ``--out``:

    input.png                  the framed target the losses compared against
    reconstruction.png         the render of the result from the found camera (depth, colour bar and normals beside:
                               reconstruction_depth.png, reconstruction_depth_bar.png, reconstruction_normal.png)
    comparison.png             input | (latent-only render, with --pti) | reconstruction
    latent.safetensors/.json   the latent and camera, for render / video --latent (the JSON names the checkpoint)
    pti_generator/             with --pti: the tuned generator (the checkpoint the latent goes with)
    orbit.mp4                  a multi-view video of the inverted subject (GIF when MP4 cannot be written)
    shape.ply                  a coloured marching-cubes mesh of its density
    loss.png                   the loss curve (log loss and PSNR per step, by phase)
    inversion.json             the final numbers (PSNR, MS-SSIM, loss terms, camera), settings and files
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..checks import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Range, check_options
from ..errors import OptionError
from ..export.layouts import REGULAR
from ..export.shapes import extract_mesh, save_mesh
from ..io.checkpoint import save_generator
from ..io.media import make_grid, save_image, write_json
from ..inversion.config import InversionConfig, LossConfig, OptimConfig, PTIConfig, SearchConfig
from ..inversion.crop import (Crop, CropMode, Framing, Picture, auto_crop, centre_crop, framing_of,
                              landmark_crop, load_landmark_source, read_picture, squash)
from ..inversion.files import write_latent
from ..faces import load_regressor
from ..inversion.invert import InversionResult, face_condition, invert, mean_render, target_size
from ..inversion.losses import load_discriminator
from ..inversion.plot import plot_history
from .common import LatentViews, ModelOptions, fast_setting, load_model, out_dir, settings_record
from .render import save_view
from .shapes import resolve_level


@dataclass
class InvertOptions(ModelOptions):
    image: str = field(kw_only=True)
    """The picture to invert (PNG, JPEG, WebP or BMP; any size and aspect)."""
    crop: CropMode = "centre"
    """How the picture becomes the square target: centre (largest centred square), none (squashed whole), auto
    (the foreground centred and scaled to the model's training framing) or landmarks (face alignment by
    --landmarks)."""
    crop_threshold: float = 0.08
    """--crop auto: colour distance from the border's colour (0..1) above which a pixel is foreground."""
    crop_extent: float | None = None
    """--crop auto: fraction of the side the foreground spans in the training images (default: measured on the
    model's mean render)."""
    crop_centre: list[float] | None = None
    """--crop auto: x y of the foreground's centre in the training images, fractions of the side (default: measured)."""
    landmarks: str | None = None
    """--crop landmarks: a face-regressor checkpoint folder (aware3d.faces.regressor) that predicts the landmarks."""
    face_regressor: str | None = None
    """For families with a face condition (CGOF): a face-regressor checkpoint folder whose reading of the framed
    picture gives the face code the inversion keeps (default: the family's mean face)."""
    steps: int = 200
    """Latent + camera steps with the first-stage groups (e.g. EG3D's shared w)."""
    refine_steps: int = 100
    """Further steps with every group freed (e.g. EG3D's W+ offsets)."""
    search_steps: int = 30
    """Steps each pose of the coarse search grid takes."""
    search_grid: list[int] = field(default_factory=lambda: [5, 3])
    """Yaw and pitch values of the coarse search grid (quantiles of the model's pose prior)."""
    search_resolution: int = 16
    """Render resolution of the coarse search."""
    lr: float = 0.05
    """Adam step of the latent, in units of its spread over the prior."""
    camera_lr: float = 0.03
    """Adam step of the camera's yaw and pitch, radians."""
    pixel: float = 1.0
    """Weight of the pixel (mean squared error) term."""
    msssim: float = 0.2
    """Weight of the 1 - MS-SSIM term."""
    discriminator: float = 0.1
    """Weight of the discriminator-feature term (used when --checkpoint is a training run folder, which holds D)."""
    lpips: float = 0.0
    """Weight of the LPIPS term (> 0 needs --lpips-vgg and --lpips-lin, or their environment variables)."""
    lpips_vgg: str | None = None
    """torchvision's vgg16-397923af.pth for LPIPS (default: $AWARE3D_LPIPS_VGG16)."""
    lpips_lin: str | None = None
    """The lpips package's weights/v0.1/vgg.pth for LPIPS (default: $AWARE3D_LPIPS_LIN)."""
    pti: bool = False
    """Pivotal tuning after the latent: fine-tune a copy of the generator around it (saved as pti_generator/)."""
    pti_steps: int = 100
    """Pivotal tuning steps."""
    pti_lr: float = 3e-4
    """Pivotal tuning's Adam step on the weights."""
    pti_locality: float = 0.1
    """Weight of pivotal tuning's locality regulariser (latents near the pivot must render as before)."""
    seed: int = 0
    """Seed of every random draw of the inversion."""
    video_frames: int = 48
    """Frames of the multi-view video (0: no video)."""
    mesh_grid: int = 128
    """Grid points per axis of the mesh's density volume (0: no mesh)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_options(self, {"crop_threshold": Range(0, 1), "crop_extent": Range(0, 1, lo_open=True),
                             "crop_centre": Range(0, 1), "steps": NON_NEGATIVE, "refine_steps": NON_NEGATIVE,
                             "search_steps": NON_NEGATIVE, "search_grid": AT_LEAST_ONE,
                             "search_resolution": AT_LEAST_ONE, "lr": POSITIVE, "camera_lr": NON_NEGATIVE,
                             "pixel": NON_NEGATIVE, "msssim": NON_NEGATIVE, "discriminator": NON_NEGATIVE,
                             "lpips": NON_NEGATIVE, "pti_steps": AT_LEAST_ONE, "pti_lr": POSITIVE,
                             "pti_locality": NON_NEGATIVE, "seed": NON_NEGATIVE, "video_frames": NON_NEGATIVE,
                             "mesh_grid": NON_NEGATIVE})
        check_invert_options(self)


def check_invert_options(opts: InvertOptions) -> None:
    """Refuse options that contradict each other or do not apply to inversion (one line naming them)."""
    if not opts.image:
        raise OptionError("aware3d invert needs the picture to invert: aware3d invert IMAGE --checkpoint C")
    given = {"truncation_psi": opts.truncation_psi is not None, "light": opts.light is not None,
             "delta": opts.delta is not None, "class_label": opts.class_label is not None,
             "lock_view_dependence": opts.lock_view_dependence}
    unused = [f"--{name.replace('_', '-')}" for name, set_ in given.items() if set_]
    if unused:
        raise OptionError(f"{', '.join(unused)} do not apply to invert (the inversion finds the latent and its "
                          "condition); drop them")
    if len(opts.search_grid) != 2:
        raise OptionError(f"--search-grid takes two numbers (yaw values, pitch values), got {opts.search_grid}")
    if opts.crop_centre is not None and len(opts.crop_centre) != 2:
        raise OptionError(f"--crop-centre takes two numbers (x y), got {opts.crop_centre}")
    if (opts.crop == "landmarks") != (opts.landmarks is not None):
        raise OptionError("--crop landmarks needs --landmarks (a face-regressor checkpoint folder), and --landmarks "
                          "applies only to --crop landmarks")


def inversion_config(opts: InvertOptions) -> InversionConfig:
    """The :class:`InversionConfig` the options describe."""
    return InversionConfig(
        resolution=opts.resolution, num_samples=opts.num_samples, fast=fast_setting(opts), seed=opts.seed,
        search=SearchConfig(yaw_steps=opts.search_grid[0], pitch_steps=opts.search_grid[1], steps=opts.search_steps,
                            resolution=opts.search_resolution),
        optim=OptimConfig(steps=opts.steps, refine_steps=opts.refine_steps, lr=opts.lr, camera_lr=opts.camera_lr),
        loss=LossConfig(pixel=opts.pixel, msssim=opts.msssim, discriminator=opts.discriminator, lpips=opts.lpips,
                        lpips_vgg=opts.lpips_vgg, lpips_lin=opts.lpips_lin),
        pti=PTIConfig(steps=opts.pti_steps, lr=opts.pti_lr, locality=opts.pti_locality) if opts.pti else None)


def frame_picture(G, picture: Picture, opts: InvertOptions, config: InversionConfig) -> Crop:
    """The picture framed as ``--crop`` says, at the model's image size."""
    size = target_size(G, config)
    if opts.crop == "centre":
        return centre_crop(picture, size)
    if opts.crop == "none":
        return squash(picture, size)
    if opts.crop == "landmarks":
        source = load_landmark_source(opts.landmarks, device=G.device)
        template = source.landmarks(mean_render(G, config))[0].cpu()
        found = source.landmarks(picture.rgb[None].to(G.device))[0].cpu()
        return landmark_crop(picture, size, found, template)
    return auto_crop(picture, size, training_framing(opts, lambda: mean_render(G, config)), opts.crop_threshold)


def training_framing(opts: InvertOptions, model_view: Callable[[], torch.Tensor]) -> Framing:
    """Where ``--crop auto`` puts the foreground: ``--crop-extent`` / ``--crop-centre``, what they leave out measured
    on the model's mean render (``model_view()``, (1, 3, S, S), rendered only then)."""
    if opts.crop_extent is not None and opts.crop_centre is not None:
        return Framing(opts.crop_centre[0], opts.crop_centre[1], opts.crop_extent)
    measured = framing_of(model_view()[0].cpu(), None, opts.crop_threshold, "the model's mean render")
    cx, cy = opts.crop_centre or (measured.centre_x, measured.centre_y)
    return Framing(cx, cy, opts.crop_extent or measured.extent)


def model_options(opts: InvertOptions, checkpoint: str) -> dict:
    """The shared model options of ``opts`` with ``checkpoint`` (for the video of the result)."""
    values = {f.name: getattr(opts, f.name) for f in fields(ModelOptions)}
    values["checkpoint"] = checkpoint
    if checkpoint != opts.checkpoint:  # the tuned generator: a checkpoint folder, not the run or preset named
        values["best"] = None
    return values


def save_pictures(result: InversionResult, out: Path) -> list[str]:
    """input.png, the reconstruction with its depth and normal maps (as render --latent writes them) and
    comparison.png."""
    G, latent = result.G, result.latent
    views = LatentViews(G, latent.w, condition=latent.condition, resolution=result.renderer.resolution,
                        render=result.renderer.render, normals=G.capabilities.normals,
                        sampling_seed=result.renderer.sampling_seed,
                        fast=result.renderer.render.bands is not None)
    with torch.no_grad():
        rendered = views.render(result.angles.cameras(G))
    files = [str(save_image(out / "input.png", result.target[0]))]
    files += save_view(out / "reconstruction", rendered)
    row = [result.target[0]] + ([result.latent_only[0]] if result.latent_only is not None else []) + [rendered.image[0]]
    files.append(str(save_image(out / "comparison.png", make_grid(torch.stack(row).clamp(-1, 1), nrow=len(row)))))
    return files


def save_mesh_of(result: InversionResult, out: Path, grid: int, progress: bool) -> list[str]:
    """shape.ply: the result's density meshed at the family's level (the volume's mean if that level is outside
    the sampled densities, as for a barely trained model)."""
    G, w = result.G, result.latent.w
    with torch.no_grad():
        volumes = REGULAR.volumes(G, w, grid, None, progress)
        h = volumes.half_extent
        bounds = ((-h, -h, -h), (h, h, h))
        try:
            verts, faces = extract_mesh(volumes.mesh_volume, resolve_level(None, volumes.interior, G.shape_level()),
                                        bounds)
        except ValueError:
            verts, faces = extract_mesh(volumes.mesh_volume, float(volumes.interior.mean()), bounds)
        colours = G.color(w)(torch.from_numpy(verts)[None].to(G.device))[0].clamp(0, 1).cpu().numpy()
    return [str(save_mesh(out / "shape.ply", verts, faces, vertex_colors=colours.astype(np.float32)))]


def save_video_of(opts: InvertOptions, checkpoint: str, latent_file: Path, out: Path) -> str:
    """orbit.mp4 (orbit.gif when no MP4 can be written): ``aware3d video --latent`` of the result."""
    from . import video as video_tool

    common = dict(model_options(opts, checkpoint), out=str(out), latent=str(latent_file), frames=opts.video_frames)
    try:
        return video_tool.run(video_tool.VideoOptions(**common, name="orbit.mp4"))["file"]
    except (OSError, RuntimeError):
        return video_tool.run(video_tool.VideoOptions(**common, name="orbit.gif"))["file"]


def render_command(checkpoint: str, latent_file: Path, resolution: int, num_samples: int | None) -> str:
    """The ``aware3d render`` line that re-renders the reconstruction (the found view, the same settings)."""
    samples = "" if num_samples is None else f" --num-samples {num_samples}"
    return (f"aware3d render --checkpoint {checkpoint} --latent {latent_file} --yaw 0 --pitch 0 "
            f"--resolution {resolution}{samples}")


def run(opts: InvertOptions) -> dict:
    picture = read_picture(opts.image)  # before the model: a bad picture fails at once
    G = load_model(opts)
    config = inversion_config(opts)
    crop = frame_picture(G, picture, opts, config)
    discriminator = load_discriminator(opts.checkpoint, G.device) if opts.discriminator > 0 else None
    lpips = None
    if opts.lpips > 0:
        from ..nn.lpips import load_lpips

        lpips = load_lpips(opts.lpips_vgg, opts.lpips_lin, device=G.device)
    fixed = None
    if opts.face_regressor is not None:
        if "face" not in G.capabilities.conditions:
            raise OptionError(f"--face-regressor sets the face code of families with a face condition (CGOF); the "
                              f"{G.family} model takes none: drop --face-regressor")
        fixed = face_condition(G, load_regressor(opts.face_regressor, device=G.device), crop.target)
    result = invert(G, crop.target, config, discriminator, lpips, progress=opts.progress, fixed=fixed)
    out = out_dir(opts)
    checkpoint = opts.checkpoint
    files = save_pictures(result, out)
    if result.latent_only is not None:
        checkpoint = str(save_generator(result.G, out / "pti_generator", source={"tuned_from": opts.checkpoint}))
        files.append(checkpoint)
    latent_file = write_latent(out / "latent.safetensors", result.G, result.latent, result.angles, result.groups)
    latent_record = {"checkpoint": checkpoint, "resolution": result.renderer.resolution,
                     "num_samples": opts.num_samples, "camera": result.numbers["camera"], "family": G.family,
                     "groups": {g.name: list(g.start.shape[1:]) for g in result.space.groups},
                     "render": render_command(checkpoint, latent_file, result.renderer.resolution, opts.num_samples)}
    files += [str(latent_file), str(write_json(out / "latent.json", latent_record))]
    if opts.video_frames > 0:
        files.append(save_video_of(opts, checkpoint, latent_file, out))
    if opts.mesh_grid > 0:
        files += save_mesh_of(result, out, opts.mesh_grid, opts.progress)
    files.append(str(plot_history(result.history, out / "loss.png")))
    record = settings_record("invert", opts, G, numbers=result.numbers, inversion=config,
                             crop={"mode": crop.mode, "box": crop.box},
                             discriminator_features=discriminator is not None,
                             checkpoint_for_latent=checkpoint, history=result.history, files=files)
    write_json(out / "inversion.json", record)
    return {**record, "out": str(out), "file": str(latent_file)}
