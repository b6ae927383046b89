"""One training per model folder: a lock file beside the folder, held by an OS lock.

The lock file ``.<folder>.lock`` sits next to the model folder (so a run stopped
before its first save leaves no folder behind) and says who holds it: process id,
host and start time. The operating system's lock on it ends with the process, so a
run killed by a scheduler never blocks the next one: its lock file is recognised
as stale, explained in a warning, and taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import warnings
from pathlib import Path

from ..errors import ConfigError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


class StaleLockWarning(UserWarning):
    """A lock file left by a run that ended without removing it was taken over."""


def lock_path(folder: str | Path) -> Path:
    """Where the lock of the model folder ``folder`` lives: ``.<name>.lock`` beside it."""
    folder = Path(folder).absolute()
    return folder.with_name(f".{folder.name}.lock")


class FolderLock:
    """Context that holds the lock of a model folder, or raises :class:`ConfigError`.

    Parameters
    ----------
    folder : path
        The model folder (it need not exist yet; its parent is created).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = lock_path(folder)
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            if not _try_lock(fd):
                holder = _describe(_read(fd))
                os.close(fd)
                raise ConfigError(
                    f"{self.folder} is being written by another training ({holder}); "
                    "wait for it to end, stop it, or choose another output folder."
                )
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the holder removed the file meanwhile: lock the new one
        left = _read(fd)
        if left:
            warnings.warn(
                f"{self.path} was left by a training that did not end cleanly "
                f"({_describe(left)}); it no longer runs, so this run takes the "
                f"folder {self.folder} over.",
                StaleLockWarning,
                stacklevel=2,
            )
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(holder).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is None:
            return
        removed = _unlink(self.path)  # while still locked: no one holds a removed file
        os.close(self._fd)
        self._fd = None
        if not removed:  # Windows removes no open file
            _unlink(self.path)


def _try_lock(fd: int) -> bool:
    """Take the exclusive OS lock on ``fd`` without waiting; False if another holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except (BlockingIOError, PermissionError):
        return False
    return True


def _same_file(fd: int, path: Path) -> bool:
    """Tell whether ``path`` still names the file open as ``fd``."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _unlink(path: Path) -> bool:
    """Remove ``path``; True if it is gone."""
    with contextlib.suppress(FileNotFoundError, PermissionError):
        path.unlink()
    return not path.exists()


def _read(fd: int) -> bytes:
    """Read a lock file just opened (empty if unreadable: locked on Windows)."""
    try:
        return os.read(fd, 4096)
    except OSError:
        return b""


def _describe(content: bytes) -> str:
    """Say who wrote a lock file, in words."""
    try:
        h = json.loads(content)
        return f"process {h['pid']} on {h['host']}, started {h['started']}"
    except (ValueError, KeyError, TypeError):
        return "a process that left no details"
