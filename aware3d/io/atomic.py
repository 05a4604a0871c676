"""Atomic writes: a folder or file appears complete under its final name, or not at all.

A checkpoint is assembled in a temporary sibling, flushed to disk, then renamed into place. A crash or a
kill at any moment leaves either the previous version or the new one readable, never a mix; a full disk
raises :class:`DiskFullError` and leaves the previous version untouched.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class DiskFullError(OSError):
    """No space left while writing; the message names the target and says the previous copy is intact."""


def _fsync_tree(path: Path) -> None:
    for f in path.iterdir():
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _disk_full(target: Path, e: OSError) -> DiskFullError:
    return DiskFullError(errno.ENOSPC, f"no space left on the device while writing {target}: {e.strerror}. "
                         f"The previous version of {target} (if any) is intact; free some space or write elsewhere")


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it replaces ``path`` atomically.

    On any error the temporary folder is removed and ``path`` keeps its previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp.", dir=path.parent))
    try:
        yield tmp
        _fsync_tree(tmp)
        if path.exists():
            # Two renames: the old folder is moved aside first, so `path` is missing only between two
            # renames (readers retry via `latest_complete`), and never half-written.
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if e.errno == errno.ENOSPC and not isinstance(e, DiskFullError):
            raise _disk_full(path, e) from e
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def recover_folder(path: str | os.PathLike) -> Path:
    """If a kill struck between the two renames of :func:`atomic_folder`, put the previous version back."""
    path = Path(path)
    old = path.with_name(f".{path.name}.old")
    if not path.exists() and old.exists():
        os.replace(old, path)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if e.errno == errno.ENOSPC:
            raise _disk_full(path, e) from e
        raise
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
