"""``aware3d <verb>``: a thin layer over the tools; each verb's options come from its dataclass."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

from ..training.trainer import TrainingDiverged
from .args import add_dataclass_arguments, dataclass_from_args


def _verbs() -> dict[str, tuple[type, Callable, str]]:
    from ..tools import convert, dataset, demo, interpolate, render, shapes, train, video
    from ..tools import metrics as metrics_tool

    return {
        "render": (render.RenderOptions, render.run, "multi-view images, depth and normal maps for seeds"),
        "video": (video.VideoOptions, video.run, "a camera path for a grid of seeds, MP4 or GIF"),
        "interpolate": (interpolate.InterpolateOptions, interpolate.run, "a video interpolating seeds in w space"),
        "shapes": (shapes.ShapesOptions, shapes.run, "density volume (.mrc) and coloured mesh (.ply/.obj/.glb)"),
        "convert": (convert.ConvertOptions, convert.run, "official checkpoint -> aware3d checkpoint folder"),
        "dataset": (dataset.DatasetOptions, dataset.run, "a training zip (EG3D layout) from an image folder or a synthetic set"),
        "demo": (demo.DemoOptions, demo.run, "train the tiny preset on synthetic heads for a few minutes, then show it"),
        "train": (train.TrainOptions, train.run, "train a preset on a dataset (torchrun for several GPUs/processes)"),
        "metrics": (metrics_tool.MetricsOptions, metrics_tool.run,
                    "FID/KID/IS, SWD, MS-SSIM, reprojection and SIDE/MAD of a checkpoint -> metrics.json"),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aware3d", description="3D-aware GANs: train, render, export, measure, convert.")
    sub = parser.add_subparsers(dest="verb", required=True)
    for name, (cls, _, help_text) in _verbs().items():
        p = sub.add_parser(name, help=help_text, description=help_text,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        add_dataclass_arguments(p, cls)
    sub.add_parser("presets", help="list the model presets")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verb == "presets":
        from ..models.registry import all_presets

        from ..training.presets import train_presets

        print("model presets (render / convert / --checkpoint):")
        for name, (family, _) in sorted(all_presets().items()):
            print(f"  {name:20s} {family.name}")
        print("training presets (aware3d train --preset):")
        for name, p in sorted(train_presets().items()):
            stages = ", ".join(f"{s.resolution}px@{s.start}" for s in p.curriculum.stages)
            print(f"  {name:20s} {p.family:8s} model {p.model}, data {p.data or '(--data needed)'}, stages {stages}")
        return 0
    cls, run, _ = _verbs()[args.verb]
    try:
        result = run(dataclass_from_args(cls, args))
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"aware3d {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"aware3d {args.verb}: {e}", file=sys.stderr)
        return 3
    summary = {k: v for k, v in result.items()
               if k in ("out", "file", "grid", "shapes", "parameters", "preset", "step", "stopped_by", "generator")}
    if "files" in result:
        summary["files_written"] = len(result["files"])
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
