"""``aware3d <verb>``: a thin layer over the tools; each verb's options come from its dataclass.

Bad input (a user error: a damaged or foreign file, an option or config value out of its range, a missing
file, a full disk) is printed as one line, ``aware3d <verb>: error: ...``, naming the file or option and the
fix; ``--debug`` prints the traceback too. Anything else is a bug and keeps its traceback, with a request to
report it. Exit statuses: 0 done, 1 a bug (an unexpected exception), 2 a user error, 3 training diverged,
128 + the signal when a signal stops it (130 for Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tarfile
import textwrap
import traceback
import zipfile
from typing import Any, Callable

import torch
from safetensors import SafetensorError

from ..config import apply_overrides, to_dict
from ..errors import UserError
from ..io.safe_unpickle import UnsafePickleError
from ..training.curriculum import Curriculum
from ..training.presets import TrainPreset
from ..training.schedule import NamedSchedule
from ..training.trainer import TrainingDiverged
from .args import add_dataclass_arguments, dataclass_from_args


def _verbs() -> dict[str, tuple[type, Callable, str]]:
    from ..tools import convert, dataset, demo, interpolate, light_prior, render, runs, shapes, train, video, visualize
    from ..tools import invert as invert_tool
    from ..tools import face_clips, face_regressor, faces
    from ..tools import metrics as metrics_tool
    from ..tools import view

    return {
        "render": (render.RenderOptions, render.run, "multi-view images, depth and normal maps for seeds"),
        "video": (video.VideoOptions, video.run, "a camera path for a grid of seeds, MP4 or GIF"),
        "invert": (invert_tool.InvertOptions, invert_tool.run,
                   "the camera and latent (and with --pti the tuned generator) that render a picture, with its "
                   "depth, normals, mesh and a multi-view video"),
        "interpolate": (interpolate.InterpolateOptions, interpolate.run, "a video interpolating seeds in w space"),
        "shapes": (shapes.ShapesOptions, shapes.run, "density volume (.mrc) and coloured mesh (.ply/.obj/.glb)"),
        "visualize": (visualize.VisualizeOptions, visualize.run,
                      "the EpiGRAF paper's inference visualisations: front_grid, video, video_grid, interp, "
                      "interp_video, density, bg_nobg, minigrid"),
        "convert": (convert.ConvertOptions, convert.run, "official checkpoint -> aware3d checkpoint folder"),
        "dataset": (dataset.DatasetOptions, dataset.run, "a training zip (EG3D layout) from an image folder or a synthetic set"),
        "demo": (demo.DemoOptions, demo.run, "train the tiny preset on synthetic heads for a few minutes, then show it"),
        "train": (train.TrainOptions, train.run, "train a preset on a dataset (torchrun for several GPUs/processes)"),
        "metrics": (metrics_tool.MetricsOptions, metrics_tool.run,
                    "FID/KID/IS, SWD, MS-SSIM, reprojection and SIDE/MAD of a checkpoint -> metrics.json"),
        "runs": (runs.RunsOptions, runs.run, "a training run's evaluated snapshots (list) and the best by a "
                 "recorded metric (best --metric fid2k_full)"),
        "view": (view.ViewOptions, view.run, "a web viewer (viser, 127.0.0.1 by default) rendering the browser's "
                 "orbit camera live, with controls for the seed, truncation, resolution, samples and conditions"),
        "light-prior": (light_prior.LightPriorOptions, light_prior.run,
                        "fit a light prior (mean, covariance) from a dataset's lights or a list of codes, or convert "
                        "an official *_light_mvn.pth; write it as JSON and into a checkpoint"),
        "face-regressor": (face_regressor.FaceRegressorOptions, face_regressor.run,
                           "train the face-coefficient regressor on synthetic-faces (train --out DIR) or evaluate "
                           "one (eval --checkpoint DIR): held-out errors vs the dataset mean, a picture"),
        "face-clip": (face_clips.FaceClipOptions, face_clips.run,
                      "the control clips of face-conditioned families (cgof): --clip expression, pose or identity, "
                      "frames + conditioning mesh renders side by side as MP4 or GIF"),
        "faces": (faces.FacesOptions, faces.run, "show: a grid of morphable faces varying one factor per row "
                  "(identity, expression, texture, light, pose) with their landmarks"),
    }


EXIT_BUG = 1
"""An unexpected exception: a bug in aware3d (the traceback is printed)."""
EXIT_USER_ERROR = 2
"""Bad input: a file, an option or a setting the user can fix (one line names it)."""
EXIT_DIVERGED = 3
"""Training stopped on a divergence (the message names the last good checkpoint)."""
EXIT_INTERRUPTED = 130
"""Interrupted by Ctrl-C (128 + SIGINT, as shells report it)."""

READ_ERRORS: tuple[type[BaseException], ...] = (pickle.UnpicklingError, SafetensorError, EOFError,
                                                 zipfile.BadZipFile, tarfile.TarError, UnicodeDecodeError)
"""What the libraries that read files raise for a damaged, truncated or hostile file (the restricted unpickler's
``UnsafePickleError`` is an ``UnpicklingError``): bad input, not a bug."""
INPUT_OPTIONS = ("checkpoint", "source", "resume", "data", "prior", "codes", "run", "poses", "inception", "image",
                 "latent", "face_model", "face_regressor")
"""Options of the verbs that name a file or folder they read: a read error that names none of them is reported
with the ones given."""
DEBUG_HELP = "on an error, also print the traceback"

_BUG_HINT = ("this is a bug in aware3d, not a problem with your input: please report it with the command and "
             "the traceback above")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aware3d", description="3D-aware GANs: train, render, export, measure, convert.",
                                     epilog="exit status: 0 done, 1 a bug (traceback printed), 2 bad input (one line "
                                            "naming the file or option), 3 training diverged, 128 + the signal when stopped by one "
                                            "(130 Ctrl-C)")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="verb", required=True)
    for name, (cls, _, help_text) in _verbs().items():
        p = sub.add_parser(name, help=help_text, description=help_text,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        add_dataclass_arguments(p, cls)
        _add_debug(p)
    p = sub.add_parser("presets", help="list the model and training presets, or show one (--show NAME)",
                       description="List the model and training presets; --show NAME prints one: a training "
                                   "preset's stages, schedules and settings, or a model preset's config.")
    p.add_argument("--show", metavar="NAME", help="the preset to print (a training preset, else a model preset)")
    p.add_argument("--model", action="store_true", help="with --show: print the model preset NAME (all settings)")
    _add_debug(p)
    return parser


def _add_debug(p: argparse.ArgumentParser) -> None:
    """``--debug`` after the verb too; SUPPRESS keeps a ``--debug`` given before the verb."""
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    opts = None
    try:
        if args.verb == "presets":
            return presets_verb(args.show, args.model)
        cls, run, _ = _verbs()[args.verb]
        opts = dataclass_from_args(cls, args)  # the options' own range checks run here, before anything is read
        result = run(opts)
    except (Exception, KeyboardInterrupt) as e:
        return report_error(args.verb, e, opts, debug=args.debug)
    summary = {k: v for k, v in result.items()
               if k in ("out", "file", "grid", "shapes", "parameters", "preset", "step", "stopped_by", "generator",
                        "light_prior")}
    if "files" in result:
        summary["files_written"] = len(result["files"])
    print(json.dumps(summary, indent=2, default=str))
    return 0


# -------------------------------------------------------------------------------------------- errors
def one_line(e: BaseException) -> str:
    """An exception's message on one line (its type name when it has none)."""
    return " ".join(str(e).split()) or type(e).__name__


def given_inputs(opts: Any) -> list[str]:
    """``--option value`` for each :data:`INPUT_OPTIONS` field of the options dataclass ``opts`` that is set."""
    if opts is None:
        return []
    values = to_dict(opts)
    return [f"--{k.replace('_', '-')} {values[k]}" for k in INPUT_OPTIONS if isinstance(values.get(k), str)]


def unnamed_inputs(opts: Any, line: str) -> str:
    """`` (reading --checkpoint x.pth)`` when ``line`` names none of the input options given, else ``""``."""
    given = given_inputs(opts)
    if not given or any(i.split(" ", 1)[1] in line for i in given):
        return ""
    return f" (reading {', '.join(given)})"


def classify_error(e: BaseException, opts: Any = None) -> tuple[int, str] | None:
    """(exit status, one line) for an exception the user can act on, or None for a bug.

    User errors: :class:`~aware3d.errors.UserError` and the built-in classes the code base raises for bad input
    (``ValueError`` with a message naming the option or file, ``OSError`` for missing files and full disks),
    the readers' :data:`READ_ERRORS` (completed with the input options when the message names none of them),
    running out of memory, a divergence and Ctrl-C.
    """
    if isinstance(e, TrainingDiverged):
        return EXIT_DIVERGED, one_line(e)
    if isinstance(e, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(e, READ_ERRORS) and not isinstance(e, UserError):
        line, inputs = one_line(e), unnamed_inputs(opts, one_line(e))
        if isinstance(e, UnsafePickleError):  # its message says what was refused and that nothing ran
            return EXIT_USER_ERROR, line + inputs
        return EXIT_USER_ERROR, (f"cannot read the input{inputs}: {line}; the file is damaged, truncated or not "
                                 "the kind of file this option takes")
    if isinstance(e, torch.cuda.OutOfMemoryError):
        return EXIT_USER_ERROR, (f"out of memory: {one_line(e).split('. ')[0]}; try a smaller --resolution, --batch "
                                 "or --num-samples, or another --device")
    if isinstance(e, (UserError, ValueError, OSError)):
        return EXIT_USER_ERROR, one_line(e)
    return None


def report_error(verb: str, e: BaseException, opts: Any = None, debug: bool = False) -> int:
    """Print ``e`` for ``aware3d <verb>`` on stderr and return the exit status: a user error as one line (after
    the traceback with ``debug``), a bug with its traceback and a request to report it."""
    known = classify_error(e, opts)
    if known is None or debug:
        traceback.print_exception(e, file=sys.stderr)
    if known is None:
        print(f"aware3d {verb}: internal error: {type(e).__name__}: {one_line(e)}. {_BUG_HINT}", file=sys.stderr)
        return EXIT_BUG
    status, line = known
    label = "error: " if status == EXIT_USER_ERROR else ""
    print(f"aware3d {verb}: {label}{line}", file=sys.stderr)
    return status


# ------------------------------------------------------------------------------------------- presets
def presets_verb(show: str | None, model: bool = False) -> int:
    """``aware3d presets [--show NAME [--model]]``: list every preset, or print one (exit status 2 for an
    unknown name, with the valid names)."""
    from ..models.registry import all_presets
    from ..training.presets import train_presets

    models, trains = all_presets(), train_presets()
    if show is None:
        _list_presets(models, trains)
        return 0
    if show in trains and not model:
        print("\n".join(train_preset_lines(show, trains[show])))
        return 0
    if show in models:
        print("\n".join(model_preset_lines(show)))
        return 0
    what = "model preset" if model else "preset"
    valid = f"model presets: {', '.join(sorted(models))}"
    if not model:
        valid = f"training presets: {', '.join(sorted(trains))}; {valid}"
    print(f"aware3d presets: error: unknown {what} {show!r}; {valid}", file=sys.stderr)
    return 2


def _list_presets(models: dict, trains: dict) -> None:
    print("model presets (render / convert / --checkpoint):")
    for name, (family, _) in sorted(models.items()):
        print(f"  {name:20s} {family.name}")
    print("training presets (aware3d train --preset):")
    for name, p in sorted(trains.items()):
        stages = ", ".join(f"{s.resolution}px@{s.start}" for s in p.curriculum.stages)
        print(f"  {name:20s} {p.family:8s} model {p.model}, data {p.data or '(--data needed)'}, stages {stages}")
    print("details of one: aware3d presets --show NAME")


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _settings(cfg: Any, nested: bool) -> list[str]:
    """``key=value`` for a config's fields; nested sections as ``section.key=value`` (or left out)."""
    data = to_dict(cfg)
    return _flat(data if nested else {k: v for k, v in data.items() if not isinstance(v, dict)})


def _flat(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        out += _flat(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}={_fmt(v)}"]
    return out


def _wrapped(title: str, items: list[str]) -> list[str]:
    return textwrap.wrap(", ".join(items) or "(none)", 100, initial_indent=f"{title}: ", subsequent_indent="    ")


def _table(headers: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    return [indent + "  ".join(c.rjust(w) for c, w in zip(r, widths)).rstrip() for r in [headers, *rows]]


def _kimg(images: float) -> str:
    return f"{images / 1e3:g}"


def schedule_lines(named: NamedSchedule, cur: Curriculum, total_steps: int) -> list[str]:
    """A schedule as a table of values at its key points and at 0, 1/4 ... 1 of the run (in the schedule's
    unit), each row with the step and the thousands of real images shown (kimg) it corresponds to."""
    sch = named.schedule
    unit = "steps" if sch.unit == "step" else "images shown"
    if sch.is_constant():
        return [f"  {named.name} = {_fmt(sch.value_at(0))} throughout ({named.about})"]
    end = total_steps if sch.unit == "step" else cur.images_seen(total_steps)
    xs = sch.key_points(until=end) + [round(end * i / 4) for i in range(5)]
    if sch.unit == "step":
        rows = [[str(x), _kimg(cur.images_seen(x)), _fmt(v)] for x, v in sch.table(xs)]
    else:  # the step column: the first step that has seen that many images
        rows = [[str(cur.step_at_images(x)), _kimg(x), _fmt(v)] for x, v in sch.table(xs)]
    return [f"  {named.name} ({named.about}; by {unit}):", *_table(["step", "kimg", "value"], rows, "    ")]


def train_preset_lines(name: str, p: TrainPreset) -> list[str]:
    """What ``aware3d presets --show NAME`` prints for a training preset."""
    from ..models.registry import get_preset

    cur = p.curriculum
    family, model_cfg = get_preset(p.model)
    model_cfg = apply_overrides(model_cfg, list(p.model_overrides))
    lines = [f"training preset {name} (family {p.family})",
             *textwrap.wrap(f"model preset: {p.model}" + (f" with {' '.join(p.model_overrides)}" if p.model_overrides
                                                          else ""), 100, subsequent_indent="    "),
             f"data: {p.data or '(none: --data needed)'}",
             f"total steps: {p.total_steps} ({_kimg(cur.images_seen(p.total_steps))} kimg of real images)",
             "stages:"]
    rows = [[str(s.start), _kimg(cur.images_seen(s.start)), str(s.resolution), str(s.batch_size), str(s.batch_split),
             str(s.num_samples), str(s.num_samples if s.num_importance is None else s.num_importance),
             _fmt(s.g_lr), _fmt(s.d_lr)] for s in cur.stages]
    lines += _table(["start", "kimg", "resolution", "batch", "split", "samples", "importance", "g_lr", "d_lr"], rows)
    lines += _wrapped("curriculum", [item for item in _settings(cur, nested=False) if not item.startswith("stages=")])
    lines.append("schedules (key points and 0, 1/4 ... 1 of the run; kimg = thousands of real images shown):")
    for named in (*cur.schedules(), *p.loss.schedules()):
        lines += schedule_lines(named, cur, p.total_steps)
    lines += _wrapped(f"loss ({type(p.loss).__name__})", _settings(p.loss, nested=True))
    lines += _wrapped(f"discriminator ({type(p.discriminator).__name__})", _settings(p.discriminator, nested=True))
    ema = (f"half-life {_fmt(p.ema.half_life_kimg)} kimg, ramp-up {p.ema.rampup}" if p.ema is not None
           else "fixed per-step decays (--ema-decays)")
    lines.append(f"EMA of G: {ema}")
    aug = p.augment
    lines += _wrapped("D-input augmentation", [f"mode={aug.mode}"] if aug.mode == "noaug" else
                      [f"mode={aug.mode}", f"p={_fmt(aug.p)}", *_settings(aug.ada, nested=False),
                       *[f"pipe.{k}" for k in _settings(aug.pipe, nested=False)]])
    lines += _wrapped(f"model ({family.name}, key settings)", _settings(model_cfg, nested=False))
    lines.append(f"every model setting: aware3d presets --show {p.model} --model")
    return lines


def model_preset_lines(name: str) -> list[str]:
    """What ``aware3d presets --show NAME`` prints for a model preset: every setting of its config."""
    from ..models.registry import get_preset

    family, cfg = get_preset(name)
    return [f"model preset {name} (family {family.name}, {type(cfg).__name__}):",
            *(f"  {item}" for item in _settings(cfg, nested=True))]


if __name__ == "__main__":
    sys.exit(main())
