"""Durable, atomic file writes: a temporary sibling, fsync'd, renamed, the folder fsync'd.

Every file napari-tarrow writes (model folders, resume state, TIFFs, sidecars,
CSVs) goes through :func:`atomic_output`: a crash, a kill or a full disk never
leaves a partial file in place of the previous one, and a renamed file survives
a power cut. A full disk, file size limit or quota is a :class:`DiskFullError`
naming the file and the space it needs, checked before writing when the size
is known. New files follow the umask (plain ``open``, no private temporary files).
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import TarrowError

try:
    import resource
except ImportError:  # Windows: no file size limit to check
    resource = None  # type: ignore[assignment]

#: errno of a write that failed for lack of room, and what to tell the user.
NO_ROOM = {
    errno.ENOSPC: "the disk is full",
    errno.EFBIG: "the file size limit of this process (ulimit -f) is reached",
    errno.EDQUOT: "the disk quota is exceeded",
}


class DiskFullError(TarrowError):
    """An output does not fit: full disk, file size limit or quota; earlier files stay."""


def atomic_path(path: Path) -> Path:
    """Return a temporary sibling of ``path`` to write to before ``os.replace``."""
    return path.with_name(f".{path.name}.part")


def human_size(n: float) -> str:
    """Bytes as a short text, e.g. ``"3.2 MB"``."""
    if n < 1000:
        return f"{n:.0f} bytes"
    for unit in ("kB", "MB", "GB"):
        n /= 1000
        if n < 1000:
            return f"{n:.1f} {unit}"
    return f"{n / 1000:.1f} TB"


def no_room(path: Path, need: int | None, why: str) -> DiskFullError:
    """Return the one-line error for ``path`` that did not fit (``need`` bytes, if known)."""
    size = f"; it needs about {human_size(need)}" if need is not None else ""
    free = shutil.disk_usage(path.parent).free if path.parent.is_dir() else None
    left = f", {human_size(free)} free there" if free is not None else ""
    return DiskFullError(
        f"cannot write {path}: {why}{size}{left}. Free some space or write elsewhere; "
        "earlier files are unchanged."
    )


def check_room(path: Path, need: int, one_file: bool = True) -> None:
    """Fail before writing if ``need`` bytes exceed the free space or the file size limit.

    The file size limit applies when the bytes go into ``one_file``, not a folder's.
    """
    if path.parent.is_dir() and shutil.disk_usage(path.parent).free < need:
        raise no_room(path, need, NO_ROOM[errno.ENOSPC])
    if one_file and resource is not None:
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY and limit < need:
            raise no_room(
                path, need, f"{NO_ROOM[errno.EFBIG]} ({human_size(limit)} per file)"
            )


@contextmanager
def disk_errors(path: Path, need: int | None = None) -> Iterator[None]:
    """Turn a write that failed for lack of room (an OSError) into a :class:`DiskFullError`."""
    try:
        yield
    except OSError as e:
        if e.errno not in NO_ROOM:
            raise
        raise no_room(path, need, NO_ROOM[e.errno]) from e


@contextmanager
def atomic_output(path: str | Path, need: int | None = None) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; on success it replaces ``path``.

    The temporary file is fsync'd, renamed over ``path``, and the folder fsync'd,
    so ``path`` holds either the previous or the complete new content, even after
    a crash. On any error the temporary file is removed. ``need`` (bytes, an
    estimate) is checked against the free space before the caller writes.
    """
    path = Path(path)
    tmp = atomic_path(path)
    if need is not None:
        check_room(path, need)
    try:
        with disk_errors(path, need):
            yield tmp
            fsync_path(tmp)
            os.replace(tmp, path)
            fsync_path(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_folder(path: str | Path, need: int | None = None) -> Iterator[Path]:
    """Yield a temporary sibling folder of ``path`` to fill; on success it replaces ``path``.

    For outputs that are folders (zarr stores): every file and folder inside is
    fsync'd, the previous ``path`` is moved aside, the new one renamed in, and only
    then the previous one deleted, so one of them is in place at every moment. On
    any error the temporary folder is removed and ``path`` is unchanged.
    """
    path = Path(path)
    tmp, old = atomic_path(path), path.with_name(f".{path.name}.old")
    if need is not None:
        check_room(path, need, one_file=False)
    shutil.rmtree(tmp, ignore_errors=True)  # left by a killed run
    try:
        with disk_errors(path, need):
            tmp.mkdir()
            yield tmp
            for folder, _, files in os.walk(tmp, topdown=False):
                for name in files:
                    fsync_path(Path(folder, name))
                fsync_path(Path(folder))
            if path.exists():
                os.replace(path, old)
            os.replace(tmp, path)
            fsync_path(path.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably (see :func:`atomic_output`)."""
    with atomic_output(path, len(data)) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically and durably."""
    write_bytes(path, text.encode())


def append_line(path: str | Path, line: str) -> None:
    """Append ``line`` and a newline to ``path``, flushed and fsync'd (for logs)."""
    path = Path(path)
    data = (line + "\n").encode()
    with disk_errors(path, len(data)), open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def fsync_path(path: Path) -> None:
    """Flush a file, or a folder's entries, to the disk (folders: POSIX only)."""
    if not path.is_dir():
        flags = os.O_RDWR  # Windows flushes only files open for writing
    elif hasattr(os, "O_DIRECTORY"):
        flags = os.O_RDONLY | os.O_DIRECTORY
    else:
        return  # Windows cannot open a folder; NTFS journals the rename
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
