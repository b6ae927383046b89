"""Lazy 2D+t videos: arrays, dask/zarr arrays, multi-page TIFFs and folders of frames.

A :class:`Video` knows each frame's number (folders may have gaps) and returns
frames normalised per frame by percentiles (estimated on at most about 512 rows
of the frame), reading one frame at a time: a video never has to fit in memory.
Uncompressed TIFFs are read with positioned reads rather than memory-mapped, so
a video larger than the address-space limit of the process still opens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import VideoError

_FRAME_NUMBER = re.compile(r"(\d+)(?!.*\d)")
_TIFF_SUFFIXES = (".tif", ".tiff")


class Video:
    """A (T, Y, X) time-lapse read frame by frame.

    Parameters
    ----------
    frames : array-like
        (T, Y, X) array: numpy, memory-mapped, dask or zarr (anything indexable
        with ``frames[i]`` that has ``shape`` and ``ndim``).
    times : sequence of int, optional
        Frame number of each entry (default ``0..T-1``). Pairs (t, t+Δt) are
        only formed where both numbers exist.
    name : str
        For messages and metadata.
    percentiles : (float, float)
        Per-frame normalisation: these percentiles map to 0 and 1.
    """

    def __init__(
        self,
        frames: Any,
        times: Sequence[int] | None = None,
        name: str = "video",
        percentiles: tuple[float, float] = (1.0, 99.8),
    ) -> None:
        self.name = name
        self.percentiles = percentiles
        _check_shape(getattr(frames, "shape", None), name)
        self._frames = frames
        n = frames.shape[0]
        self.times = np.arange(n) if times is None else np.asarray(times, dtype=int)
        if len(self.times) != n or np.any(np.diff(self.times) <= 0):
            raise VideoError(
                f"{name}: frame numbers must be increasing, one per frame."
            )
        if n < 2:
            raise VideoError(
                f"{name} has a single frame; TAP needs a time-lapse with at least 2 frames."
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        """(T, Y, X)."""
        return tuple(int(s) for s in self._frames.shape)  # type: ignore[return-value]

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def frame_nbytes(self) -> int:
        """Bytes of one normalised (float32) frame."""
        return 4 * self.shape[1] * self.shape[2]

    def raw(self, i: int) -> np.ndarray:
        """Frame ``i`` (position, not number) as stored, (Y, X); reads only that frame."""
        return np.asarray(self._frames[int(i)])

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` normalised per frame to [0, 1] by percentiles, (Y, X) float32."""
        x = self.raw(i).astype(np.float32, copy=False)
        if not np.all(np.isfinite(x)):
            raise VideoError(
                f"{self.name}: frame {self.times[i]} contains NaN or infinite values; "
                "replace them (e.g. with the background value) or drop the frame."
            )
        lo, hi = np.percentile(x[:: max(1, x.shape[0] // 512)], self.percentiles)
        return (x - float(lo)) * np.float32(1.0 / max(float(hi - lo), 1e-6))

    def pairs(
        self, delta: int, interval: tuple[float, float] = (0.0, 1.0)
    ) -> np.ndarray:
        """Positions (i, j) with ``times[j] - times[i] == delta``, both inside ``interval``.

        ``interval`` is a fraction of the video's time span; a pair belongs to it
        when both of its frame numbers do.
        """
        t0, t1 = self.times[0], self.times[-1] + 1
        lo, hi = (t0 + f * (t1 - t0) for f in interval)
        where = {t: i for i, t in enumerate(self.times)}
        out = [
            (i, where[t + delta])
            for i, t in enumerate(self.times)
            if t + delta in where and lo <= t and t + delta < hi
        ]
        return np.asarray(out, dtype=int).reshape(-1, 2)


def _check_shape(shape: tuple[int, ...] | None, name: str) -> None:
    if shape is None:
        raise VideoError(f"{name} is not an array; expected a (T, Y, X) time-lapse.")
    if len(shape) == 4 and shape[-1] in (3, 4):
        raise VideoError(
            f"{name} looks like an RGB(A) stack {tuple(shape)}; TAP needs one channel: "
            "convert to grayscale or pick one channel."
        )
    if len(shape) == 3 and shape[-1] in (3, 4) and min(shape[:2]) >= 16:
        raise VideoError(
            f"{name} looks like a single RGB(A) image {tuple(shape)}; TAP needs a "
            "(T, Y, X) time-lapse of one channel."
        )
    if len(shape) == 2:
        raise VideoError(
            f"{name} is a single 2D image {tuple(shape)}; TAP needs a (T, Y, X) time-lapse."
        )
    if len(shape) != 3:
        raise VideoError(
            f"{name} has shape {tuple(shape)}; expected (T, Y, X). Select one channel / "
            "z-slice, or choose which axis is time."
        )
    if min(shape[1:]) < 16:
        raise VideoError(f"{name} frames are {shape[1:]} pixels; need at least 16x16.")


def read_video(
    path: str | Path, percentiles: tuple[float, float] = (1.0, 99.8)
) -> Video:
    """Open a (T, Y, X) TIFF, a zarr array or a folder of 2D TIFF frames lazily.

    In a folder, frame numbers come from the last number in each file name; a
    missing number is a gap.
    """
    path = Path(path)
    if not path.exists():
        raise VideoError(
            f"{path} does not exist; give a (T, Y, X) TIFF or a folder of frames."
        )
    if path.suffix.lower() == ".zarr":
        return Video(_open_zarr(path), name=path.name, percentiles=percentiles)
    if path.is_dir():
        return _read_folder(path, percentiles)
    if path.suffix.lower() not in _TIFF_SUFFIXES:
        raise VideoError(
            f"{path}: unsupported file type; give a .tif/.tiff, a .zarr or a folder."
        )
    import tifffile

    try:
        frames = _open_tiff(path, tifffile)
    except (OSError, ValueError, tifffile.TiffFileError) as e:
        raise VideoError(f"cannot read {path} as TIFF: {e}") from e
    return Video(frames, name=path.name, percentiles=percentiles)


def _open_tiff(path: Path, tifffile: Any) -> Any:
    """Frame-wise reader: positioned reads when uncompressed, else page by page."""
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        shape, offset = tuple(series.shape), series.dataoffset
        dtype = np.dtype(tif.byteorder + series.dtype.char)
        n_pages = len(series.pages)
    if len(shape) == 3 and offset is not None:
        return _ContiguousTiff(path, shape, dtype, offset)
    if len(shape) == 3 and n_pages == shape[0]:
        return _LazyTiffPages(path, shape, tifffile)
    return tifffile.imread(path)  # other layouts (2D, RGB, ...): Video rejects them


class _ContiguousTiff:
    """(T, Y, X) view of an uncompressed TIFF: frame i is one read at a known offset."""

    def __init__(
        self, path: Path, shape: tuple[int, ...], dtype: np.dtype, offset: int
    ) -> None:
        self.path, self.shape, self.dtype, self.offset = path, shape, dtype, offset
        self.ndim = len(shape)

    def __getitem__(self, i: int) -> np.ndarray:
        n = self.shape[1] * self.shape[2]
        if not 0 <= i < self.shape[0]:
            raise IndexError(f"frame {i} of {self.shape[0]}")
        with open(self.path, "rb") as f:
            f.seek(self.offset + int(i) * n * self.dtype.itemsize)
            x = np.fromfile(f, self.dtype, n)
        if x.size != n:
            raise VideoError(f"{self.path.name} is truncated at frame {i}.")
        return x.reshape(self.shape[1:])


class _LazyTiffPages:
    """(T, Y, X) view of a multi-page TIFF that reads one page per index."""

    def __init__(self, path: Path, shape: tuple[int, ...], tifffile: Any) -> None:
        self.path, self.shape, self.ndim, self._tifffile = (
            path,
            shape,
            len(shape),
            tifffile,
        )

    def __getitem__(self, i: int) -> np.ndarray:
        return self._tifffile.imread(self.path, key=int(i))


class _FrameFiles:
    """(T, Y, X) view of a list of 2D image files, read on indexing."""

    def __init__(self, files: list[Path], first: np.ndarray) -> None:
        self.files = files
        self.shape = (len(files), *first.shape)
        self.ndim = len(self.shape)
        self.dtype = first.dtype

    def __getitem__(self, i: int) -> np.ndarray:
        import tifffile

        x = tifffile.imread(self.files[int(i)])
        if x.shape != self.shape[1:]:
            raise VideoError(
                f"{self.files[int(i)].name} has shape {x.shape}, the first frame "
                f"{self.shape[1:]}; all frames of a folder must have the same size."
            )
        return x


def _read_folder(path: Path, percentiles: tuple[float, float]) -> Video:
    import tifffile

    numbered = []
    for f in path.iterdir():
        m = _FRAME_NUMBER.search(f.stem)
        if f.suffix.lower() in _TIFF_SUFFIXES and m:
            numbered.append((int(m.group(1)), f))
    if not numbered:
        raise VideoError(
            f"{path} holds no numbered TIFF frames (expected t000.tif, t001.tif, ...)."
        )
    numbered.sort()
    times = [t for t, _ in numbered]
    if len(set(times)) != len(times):
        raise VideoError(
            f"{path}: two files share a frame number; keep one file per frame."
        )
    first = tifffile.imread(numbered[0][1])
    if first.ndim != 2:
        raise VideoError(
            f"{numbered[0][1].name} has shape {first.shape}; a folder must hold 2D frames."
        )
    files = _FrameFiles([f for _, f in numbered], first)
    return Video(files, times=times, name=path.name, percentiles=percentiles)


def _open_zarr(path: Path) -> Any:
    """Open a zarr array (or a group holding one array) read-only, without loading it."""
    try:
        import zarr
    except ImportError as e:
        raise VideoError(
            f"{path} is a zarr store; reading it needs the zarr package: pip install zarr"
        ) from e
    z = zarr.open(str(path), mode="r")
    if not hasattr(z, "shape"):  # a group: take its only array
        arrays = list(z.array_keys())
        if len(arrays) != 1:
            raise VideoError(
                f"{path} holds {len(arrays)} arrays ({', '.join(arrays)}); give the "
                "path of the one (T, Y, X) array inside it."
            )
        z = z[arrays[0]]
    return z
