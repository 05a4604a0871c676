"""``aware3d <verb>``: a thin layer over the tools; each verb's options come from its dataclass."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

from .args import add_dataclass_arguments, dataclass_from_args


def _verbs() -> dict[str, tuple[type, Callable, str]]:
    from ..tools import convert, interpolate, render, shapes, video

    return {
        "render": (render.RenderOptions, render.run, "multi-view images, depth and normal maps for seeds"),
        "video": (video.VideoOptions, video.run, "a camera path for a grid of seeds, MP4 or GIF"),
        "interpolate": (interpolate.InterpolateOptions, interpolate.run, "a video interpolating seeds in w space"),
        "shapes": (shapes.ShapesOptions, shapes.run, "density volume (.mrc) and coloured mesh (.ply/.obj/.glb)"),
        "convert": (convert.ConvertOptions, convert.run, "official checkpoint -> aware3d checkpoint folder"),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aware3d", description="3D-aware GANs: render, export, convert.")
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

        for name, (family, _) in sorted(all_presets().items()):
            print(f"{name:20s} {family.name}")
        return 0
    cls, run, _ = _verbs()[args.verb]
    try:
        result = run(dataclass_from_args(cls, args))
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"aware3d {args.verb}: error: {e}", file=sys.stderr)
        return 2
    summary = {k: v for k, v in result.items() if k in ("out", "file", "grid", "shapes", "parameters", "preset")}
    if "files" in result:
        summary["files_written"] = len(result["files"])
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
