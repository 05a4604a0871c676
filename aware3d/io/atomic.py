"""Atomic writes: a folder or file appears complete under its final name, or not at all.

A checkpoint is assembled in a temporary sibling, flushed to disk, then renamed into place. A crash or a
kill at any moment leaves either the previous version or the new one readable, never a mix; a full disk
(whichever writer reports it: an ``OSError`` with ENOSPC/EDQUOT, or safetensors' ``SafetensorError`` naming that
OS error) raises :class:`DiskFullError` and leaves the previous version untouched.

Temporaries are created with the process's umask (0755/0644 under the usual 022), so a finished folder or file
is as readable by a shared group as any other file its writer makes. What a kill can leave behind (a
``.<name>.tmp.*`` temporary, a ``.<name>.old`` folder) is put right by :func:`recover_folder` and
:func:`tidy_folder`.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class DiskFullError(OSError):
    """No space left while writing; the message names the target and says the previous copy is intact."""


_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# How writers that wrap the OS error in their own exception (safetensors' SafetensorError: "I/O error: No space
# left on device (os error 28)") spell it.
_DISK_FULL_TEXTS = ("No space left on device", "Disk quota exceeded", f"os error {errno.ENOSPC})",
                    f"os error {errno.EDQUOT})")


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) reports a full disk or an exhausted quota."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _DISK_FULL_ERRNOS:
            return True
        if any(t in str(e) for t in _DISK_FULL_TEXTS):
            return True
        e = e.__cause__ or e.__context__
    return False


def _disk_full(target: Path, e: BaseException) -> DiskFullError:
    reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
    return DiskFullError(errno.ENOSPC, f"no space left on the device while writing {target}: {reason}. "
                         f"The previous version of {target} (if any) is intact; free some space or write elsewhere")


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


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp.{secrets.token_hex(6)}")


def _new_temporary_folder(path: Path) -> Path:
    """An empty sibling ``.<name>.tmp.<random>`` made with the umask's permissions (not mkdtemp's 0700)."""
    for _ in range(100):
        tmp = _temporary_name(path)
        try:
            os.mkdir(tmp)
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"could not create a temporary folder beside {path}")


def _open_up_files(tmp: Path) -> None:
    """Give every file in ``tmp`` at least the umask's permissions: some writers make 0600 files whatever the
    umask (safetensors' ``save_file`` does). The umask is read off ``tmp`` itself, made by ``os.mkdir``."""
    usual = 0o666 & stat.S_IMODE(tmp.stat().st_mode)
    for f in tmp.iterdir():
        if f.is_file() and not f.is_symlink():
            mode = stat.S_IMODE(f.stat().st_mode)
            if mode | usual != mode:
                os.chmod(f, mode | usual)


def _swap_into_place(tmp: Path, path: Path) -> None:
    """Rename the finished ``tmp`` to ``path``. An existing ``path`` is first moved aside to ``.<name>.old``, so
    ``path`` is missing only between two renames, and :func:`recover_folder` puts it back after a kill there. A
    reader that recovered ``path`` at that very moment makes the second rename fail: the swap is then retried."""
    old = path.with_name(f".{path.name}.old")
    for attempt in range(3):
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        try:
            os.replace(tmp, path)
            break
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST) or attempt == 2:
                raise
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it replaces ``path`` atomically.

    On any error the temporary folder is removed and ``path`` keeps its previous content; a full disk is
    reported as :class:`DiskFullError` whichever writer hit it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temporary_folder(path)
    try:
        yield tmp
        _open_up_files(tmp)
        _fsync_tree(tmp)
        _swap_into_place(tmp, path)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, Exception) and not isinstance(e, DiskFullError) and is_disk_full(e):
            raise _disk_full(path, e) from e
        raise


def recover_folder(path: str | os.PathLike) -> Path:
    """If a kill struck between the two renames of :func:`atomic_folder`, put the previous version back."""
    path = Path(path)
    old = path.with_name(f".{path.name}.old")
    if not path.exists() and old.is_dir():
        try:
            os.replace(old, path)
        except FileNotFoundError:  # another reader put it back first
            pass
    return path


def _is_temporary(name: str) -> bool:
    """Names of this module's temporaries (``.<name>.tmp.<random>``) and of ``write_json``'s (``.<name>.<random>.tmp``)."""
    return name.startswith(".") and (".tmp." in name or name.endswith(".tmp"))


def tidy_folder(folder: str | os.PathLike) -> list[Path]:
    """Put right what kills left in ``folder`` (not recursive): recover every folder killed between the two renames
    of :func:`atomic_folder`, delete ``.<name>.old`` beside a complete ``<name>`` and every leftover temporary.
    Only for a folder whose one writer is not writing (a run folder at the start or end of a session). Returns the
    deleted paths."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if name.startswith(".") and name.endswith(".old") and entry.is_dir():
            target = folder / name[1:-len(".old")]
            if not target.exists():
                recover_folder(target)
                continue
        elif not _is_temporary(name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def link_folder(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Make ``target`` an atomic copy of the folder ``source`` (its plain files), by hard links where the file
    system allows (no space used: :func:`atomic_folder` never rewrites a file in place, it replaces whole
    folders), else by copying."""
    source = Path(source)
    with atomic_folder(target) as tmp:
        for f in sorted(source.iterdir()):
            if not f.is_file():
                continue
            try:
                os.link(f, tmp / f.name)
            except OSError:
                shutil.copy2(f, tmp / f.name)
    return Path(target)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file (umask permissions) + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, Exception) and not isinstance(e, DiskFullError) and is_disk_full(e):
            raise _disk_full(path, e) from e
        raise
    return path
