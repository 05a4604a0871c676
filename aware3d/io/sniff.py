"""What an official checkpoint file is, read from its content without building anything.

Importers are chosen by what a file holds, never by its suffix (pi-GAN, ShadeGAN and CGOF all write
``.pth``; EG3D and EpiGRAF both write ``.pkl``). :func:`summarize_file` reads the container type, every
global name the (top-level) pickle references and its short string constants, from the pickle opcodes
alone: nothing is unpickled, no tensor is rebuilt, no code runs. Each family's importer then decides from
that summary whether the file is its own (a *sniffer*). A file the restricted unpickler would refuse for its
shape alone (objects nested too deep, a zip whose ``data.pkl`` would inflate past the loader's budget) raises
:class:`~aware3d.io.unpickle_limits.LoadLimitError` here already, naming it.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .pickle_vm import scan_globals
from .unpickle_limits import DEFAULT_SLACK, LoadLimitError, UnsafePickleError

Container = Literal["torch-zip", "torchscript", "pickle", "unknown"]

MAX_STRING = 200
"""String constants longer than this (embedded source code, long paths) are not kept in a summary."""


@dataclass(frozen=True)
class FileSummary:
    """A checkpoint file as its sniffers see it."""

    path: Path
    """The file."""
    container: Container
    """torch-zip: ``torch.save`` (>= 1.6, its ``data.pkl``); torchscript: a TorchScript archive; pickle: a plain
    pickle stream (or legacy ``torch.save``, whose first pickle is a magic number); unknown: not a pickle."""
    globals: frozenset[str]
    """Every ``module.name`` global the pickle references (classes, rebuild functions)."""
    strings: frozenset[str]
    """The pickle's string constants up to :data:`MAX_STRING` characters (keys, class names, ...)."""

    def describe(self) -> str:
        """One line for error messages: the container and the most telling globals."""
        if self.container == "unknown":
            return "not a pickle or torch.save file"
        shown = sorted(g for g in self.globals if not g.startswith(("torch._utils.", "collections.", "builtins.")))
        names = ", ".join(shown[:8]) + (", ..." if len(shown) > 8 else "")
        return f"a {self.container} file referencing {names or 'only tensors and plain containers'}"


def _strings(stream: io.BytesIO) -> set[str]:
    """The short string constants of the one pickle at the stream's position (the stream ends after it)."""
    return {arg for _op, arg, _pos in pickletools.genops(stream) if isinstance(arg, str) and len(arg) <= MAX_STRING}


def _pickle_contents(body: bytes, source: str) -> tuple[frozenset[str], frozenset[str]]:
    """Globals and short strings of the pickles at the start of ``body``. A legacy ``torch.save`` stream
    is several pickles (magic number, protocol, system info, the object, storage keys) followed by raw
    storage bytes: pickles are read until the bytes stop being one."""
    stream = io.BytesIO(body)
    found: set[str] = set()
    strings: set[str] = set()
    count = 0
    while stream.tell() < len(body):
        start = stream.tell()
        try:
            found.update(f"{m}.{n}" for m, n in scan_globals(stream, source))
            end = stream.tell()
            stream.seek(start)
            strings |= _strings(stream)
        except UnsafePickleError:  # a pickle the loader would refuse (nested too deep): say so, naming the file
            raise
        except (pickle.UnpicklingError, ValueError):
            if count == 0:
                raise
            break
        count += 1
        stream.seek(end)
    return frozenset(found), frozenset(strings)


def summarize_bytes(data: bytes, path: str | os.PathLike = "<bytes>") -> FileSummary:
    """:class:`FileSummary` of a file's bytes."""
    path = Path(path)
    unknown = FileSummary(path, "unknown", frozenset(), frozenset())
    container: Container = "pickle"
    body = data
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                names = zf.namelist()
                pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") <= 1]
                if len(pkl) != 1:  # none, or several the loader could not choose between
                    return unknown
                if pkl[0][: -len("data.pkl")] + "constants.pkl" in names:
                    return FileSummary(path, "torchscript", frozenset(), frozenset())
                declared = zf.getinfo(pkl[0]).file_size
                if declared > DEFAULT_SLACK:  # inflating it is what a zip bomb wants
                    raise LoadLimitError(f"its {pkl[0]} declares {declared} bytes; a torch.save pickle holds "
                                         "only the tensors' metadata", str(path))
                body, container = zf.read(pkl[0]), "torch-zip"
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, ValueError):
            return unknown
    try:
        found, strings = _pickle_contents(body, str(path))
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, ValueError):
        return unknown
    return FileSummary(path, container, found, strings)


def summarize_file(path: str | os.PathLike) -> FileSummary:
    """:class:`FileSummary` of the file at ``path`` (read once; nothing in it is executed)."""
    path = Path(path)
    with open(path, "rb") as fh:
        return summarize_bytes(fh.read(), path)


__all__ = ["Container", "FileSummary", "summarize_bytes", "summarize_file"]
