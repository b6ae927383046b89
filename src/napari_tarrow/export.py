"""Streamed TIFF writing with a JSON sidecar: memory does not grow with the video length.

Every writer writes to a temporary name and renames at the end (durably, see
:mod:`napari_tarrow.atomic`), so a failed or cancelled job, or a full disk, never
leaves a partial file in place of an existing output.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from .atomic import atomic_output, write_text
from .errors import TarrowError

BIGTIFF_BYTES = 2**31


def check_output(path: str | Path) -> None:
    """Fail early, before any work, if ``path`` cannot be written as a file."""
    path = Path(path)
    if path.is_dir():
        raise TarrowError(
            f"{path} is a folder; give a file name for the output, e.g. {path / 'out.tif'}."
        )
    if not path.parent.is_dir():
        raise TarrowError(
            f"output folder {path.parent} does not exist; create it first."
        )


@contextmanager
def tiff_stream(
    path: str | Path,
    shape: tuple[int, ...],
    dtype: Any,
    axes: str,
    metadata: dict[str, Any] | None = None,
) -> Iterator[Callable[[np.ndarray], None]]:
    """Context giving ``write(block)`` for consecutive blocks along the first axis.

    ``shape`` is the full shape (for the BigTIFF decision and the space needed,
    checked before any block is written); blocks have ``shape[1:]``. The file
    appears at ``path`` only if the context exits normally after all blocks were
    written.
    """
    path = Path(path)
    check_output(path)
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    big = nbytes > BIGTIFF_BYTES - 2**25
    count = 0
    need = nbytes + 4096 + 256 * int(shape[0])  # data, header and one IFD per block
    with atomic_output(path, need) as tmp:
        with tifffile.TiffWriter(tmp, bigtiff=big) as tif:

            def write(block: np.ndarray) -> None:
                nonlocal count
                tif.write(
                    np.asarray(block, dtype=dtype),
                    contiguous=True,
                    photometric="minisblack",
                    metadata={"axes": axes, **(metadata or {})},
                )
                count += 1

            yield write
        if count != shape[0]:
            raise TarrowError(
                f"{path}: wrote {count} of {shape[0]} blocks; output discarded."
            )


def write_sidecar(path: str | Path, info: dict[str, Any]) -> Path:
    """Write ``<path>.json`` next to an output file (atomically); returns its path."""
    side = Path(f"{path}.json")
    write_text(side, json.dumps(info, indent=2, default=str) + "\n")
    return side


@contextmanager
def writes_in_background(
    write: Callable[[np.ndarray], None], depth: int = 2
) -> Iterator[Callable[[np.ndarray], None]]:
    """Context giving ``put(block)``: ``write(block)`` runs in a thread, in order.

    Writing the file overlaps with computing the next block; at most ``depth``
    blocks wait, so memory stays bounded. An error in ``write`` is raised by the
    next ``put`` or when the context exits, which waits for every write.
    """
    blocks: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=depth)
    failed: list[BaseException] = []

    def worker() -> None:
        while (block := blocks.get()) is not None:
            if not failed:
                try:
                    write(block)
                except BaseException as e:  # noqa: BLE001 - re-raised in the caller
                    failed.append(e)

    def put(block: np.ndarray) -> None:
        if failed:
            raise failed[0]
        blocks.put(block)

    thread = threading.Thread(target=worker, name="napari-tarrow writer", daemon=True)
    thread.start()
    try:
        yield put
    finally:
        blocks.put(None)
        thread.join()
    if failed:
        raise failed[0]
