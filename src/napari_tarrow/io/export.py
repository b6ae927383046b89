"""Streamed TIFF and OME-Zarr writing: memory does not grow with the video length.

Every writer writes to a temporary name and renames at the end (durably, see
:mod:`napari_tarrow.io.atomic`), so a failed or cancelled job, or a full disk, never
leaves a partial file in place of an existing output. TIFFs get a JSON sidecar;
a zarr store keeps the same record in its attributes.
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

from ..errors import TarrowError
from .atomic import atomic_folder, atomic_output, write_text

BIGTIFF_BYTES = 2**31
#: Output formats by file suffix; anything else is written as TIFF.
FORMATS = {".tif": "tiff", ".tiff": "tiff", ".zarr": "zarr"}
ZARR_TILE = 1024  # chunk side: one chunk per 1024x1024 tile of one channel and frame
NGFF_AXES = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}


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


def output_format(path: str | Path, given: str | None = None) -> str:
    """``"tiff"`` or ``"zarr"``: ``given``, else from the suffix; a mismatch is refused."""
    found = FORMATS.get(Path(path).suffix.lower())
    if given is None:
        return found or "tiff"
    if found is not None and found != given:
        raise TarrowError(
            f"{path} names a {found.upper()} file but the format is {given}; name it "
            f"{Path(path).with_suffix('.zarr' if given == 'zarr' else '.tif')}."
        )
    return given


def _zarr() -> Any:
    """Import zarr (3 or later), or raise a one-line error saying how to get it."""
    try:
        import zarr
    except ImportError:
        zarr = None
    if zarr is None or int(zarr.__version__.split(".")[0]) < 3:
        raise TarrowError(
            "writing OME-Zarr needs the zarr package, version 3 or later: "
            "pip install 'napari-tarrow[zarr]' (or choose TIFF)."
        )
    return zarr


def check_zarr_output(path: str | Path) -> None:
    """Fail early if ``path`` cannot become a zarr store: never replace another folder."""
    path = Path(path)
    _zarr()
    if not path.parent.is_dir():
        raise TarrowError(
            f"output folder {path.parent} does not exist; create it first."
        )
    markers = (".zgroup", ".zarray", "zarr.json")
    if path.is_file() or (
        path.is_dir() and not any((path / m).exists() for m in markers)
    ):
        raise TarrowError(
            f"{path} exists and is not a zarr store; choose another name (it is left as it is)."
        )


@contextmanager
def zarr_stream(
    path: str | Path,
    shape: tuple[int, ...],
    dtype: Any,
    axes: str,
    attrs: dict[str, Any],
) -> Iterator[Callable[[np.ndarray], None]]:
    """Like :func:`tiff_stream`, into an OME-Zarr (NGFF 0.4) store of one array.

    Chunks of one frame, one channel and up to 1024x1024 pixels, Blosc-zstd
    compressed, so napari opens the store lazily and shows one plane at a time.
    ``attrs`` go into the store's attributes under ``napari_tarrow``.
    """
    import numcodecs

    zarr = _zarr()
    path = Path(path)
    check_zarr_output(path)
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize  # compressed it is smaller
    count = 0
    with atomic_folder(path, nbytes + 4096) as tmp:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=2)
        array = root.create_array(
            "0",
            shape=shape,
            chunks=(*(1,) * (len(shape) - 2), *(min(s, ZARR_TILE) for s in shape[-2:])),
            dtype=dtype,
            compressors=numcodecs.Blosc("zstd", 3, numcodecs.Blosc.BITSHUFFLE),
            chunk_key_encoding={"name": "v2", "separator": "/"},  # NGFF 0.4 asks "/"
            fill_value=0,
        )

        def write(block: np.ndarray) -> None:
            nonlocal count
            array[count] = np.asarray(block, dtype=dtype)
            count += 1

        yield write
        if count != shape[0]:
            raise TarrowError(
                f"{path}: wrote {count} of {shape[0]} blocks; output discarded."
            )
        root.attrs.update(
            multiscales=[
                {
                    "version": "0.4",
                    "name": path.stem,
                    "axes": [{"name": a.lower(), "type": NGFF_AXES[a]} for a in axes],
                    "datasets": [
                        {
                            "path": "0",
                            "coordinateTransformations": [
                                {"type": "scale", "scale": [1.0] * len(shape)}
                            ],
                        }
                    ],
                }
            ],
            napari_tarrow=json.loads(json.dumps(attrs, default=str)),
        )


def open_output(path: str | Path) -> Any:
    """Open an output written here lazily: a TIFF memory-mapped, a zarr store's array."""
    if output_format(path) == "zarr":
        return _zarr().open_group(str(path), mode="r")["0"]
    with tifffile.TiffFile(path) as tif:
        return tif.asarray(out="memmap")


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
