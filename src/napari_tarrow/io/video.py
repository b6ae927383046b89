"""Lazy 2D+t videos: arrays, dask/zarr arrays, multi-page TIFFs and folders of frames.

A :class:`Video` knows each frame's number (folders may have gaps) and returns
frames normalised per frame by percentiles (estimated on at most about 512 rows
of the frame), reading one frame at a time: a video never has to fit in memory.
Uncompressed TIFFs are read with positioned reads rather than memory-mapped, so
a video larger than the address-space limit of the process still opens.

Broken files are refused when opened, from their headers, with one line that
names the problem: truncated TIFFs (or headers that claim more frames than the
file holds), non-TIFF files, folders whose frames differ in size or type, and
pixels that are not real numbers. Booleans, integers and floats of any width are
read as float32. A constant frame (e.g. blank) normalises to zeros.
"""

from __future__ import annotations

import json
import logging
import math
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
        if hasattr(frames, "dtype"):
            _check_dtype(np.dtype(frames.dtype), name)
        self._frames = frames
        self._told_constant = False
        n = frames.shape[0]
        self.times = np.arange(n) if times is None else np.asarray(times, dtype=int)
        if len(self.times) != n or np.any(np.diff(self.times) <= 0):
            raise VideoError(
                f"{name}: frame numbers must be increasing, one per frame."
            )
        if n < 2:
            raise VideoError(
                f"'{name}' has a single frame; TAP needs a time-lapse with at least 2 frames."
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
        """Frame ``i`` normalised per frame to [0, 1] by percentiles, (Y, X) float32.

        Where the percentiles coincide (a nearly constant frame), the frame's
        minimum and maximum map to 0 and 1; a constant frame gives zeros (with a
        warning, once per video).
        """
        raw = self.raw(i)
        _check_dtype(raw.dtype, self.name)
        x = raw.astype(np.float32, copy=False)
        if not np.all(np.isfinite(x)):
            raise VideoError(
                f"{self.name}: frame {self.times[i]} contains NaN or infinite values; "
                "replace them (e.g. with the background value) or drop the frame."
            )
        lo, hi = np.percentile(x[:: max(1, x.shape[0] // 512)], self.percentiles)
        if hi <= lo:
            lo, hi = x.min(), x.max()
        if hi <= lo:
            self._tell_constant(i, float(lo))
            return np.zeros_like(x)
        return (x - np.float32(lo)) * np.float32(1.0 / (float(hi) - float(lo)))

    def _tell_constant(self, i: int, value: float) -> None:
        if not self._told_constant:
            self._told_constant = True
            warnings.warn(
                f"{self.name}: frame {self.times[i]} is constant ({value:g}), e.g. "
                "blank; it is normalised to zeros (further constant frames are not "
                "reported).",
                stacklevel=3,
            )

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


def _check_dtype(dtype: np.dtype, name: str) -> None:
    """Refuse pixels that are not real numbers (complex, text, objects, dates)."""
    if dtype.kind == "c":
        raise VideoError(
            f"{name} has complex pixels ({dtype}); TAP needs real intensities: take "
            "the magnitude (numpy.abs) or the real part first."
        )
    if dtype.kind not in "biuf":
        raise VideoError(
            f"{name} has pixels of type {dtype}; TAP needs numbers (integers, floats "
            "or booleans): convert the frames first."
        )


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


def as_video(
    video: Video | Any, percentiles: tuple[float, float] = (1.0, 99.8)
) -> Video:
    """Return a :class:`Video` normalised with ``percentiles`` (of a path, array or Video).

    A Video normalised otherwise is wrapped anew over the same frames, so that a
    model always sees its videos as it was trained.
    """
    if isinstance(video, Video):
        if tuple(video.percentiles) == tuple(percentiles):
            return video
        return Video(video._frames, video.times, video.name, tuple(percentiles))
    if isinstance(video, str | Path):
        return read_video(video, percentiles)
    return Video(video, percentiles=percentiles)


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
        with _quiet_tifffile():
            frames = _open_tiff(path, tifffile)
    except VideoError:
        raise
    except (OSError, ValueError, tifffile.TiffFileError) as e:
        raise VideoError(f"cannot read {path} as TIFF: {e}") from e
    return Video(frames, name=path.name, percentiles=percentiles)


@contextmanager
def _quiet_tifffile() -> Iterator[None]:
    """Silence tifffile's warnings about a damaged file: the VideoError says it once."""
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _open_tiff(path: Path, tifffile: Any) -> Any:
    """Frame-wise reader: positioned reads when uncompressed, else page by page.

    Refuses a file that holds fewer frames than its header declares (truncated).
    """
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        shape, offset = tuple(series.shape), series.dataoffset
        dtype = np.dtype(tif.byteorder + series.dtype.char)
        n_pages = len(series.pages)
        declared = _declared_frames(tif)
        pages = len(tif.pages)
    if offset is not None:
        plane = math.prod(shape[-2:]) * dtype.itemsize
        held = (path.stat().st_size - offset) // plane
    else:
        held = pages
    want = max(declared or 0, math.prod(shape[:-2]) if len(shape) == 3 else 0)
    if held < want:
        raise VideoError(
            f"{path.name} is truncated or damaged: its header declares {want} frames "
            f"but the file holds {held}; copy or export it again."
        )
    if len(shape) == 3 and offset is not None:
        return _ContiguousTiff(path, shape, dtype, offset)
    if len(shape) == 3 and n_pages == shape[0]:
        return _LazyTiffPages(path, shape, dtype, tifffile)
    if len(shape) != 3:  # 2D, RGB, hyperstacks: Video names the shape, nothing read
        return _Shape(shape, dtype)
    return tifffile.imread(path)  # a (T, Y, X) layout tifffile reads only whole


def _declared_frames(tif: Any) -> int | None:
    """Frames (2D planes) that the ImageJ or tifffile header says the file holds."""
    ij = tif.imagej_metadata or {}
    if "images" in ij:
        return int(ij["images"])
    try:  # tifffile's own JSON description, e.g. {"shape": [T, Y, X]}
        shape = json.loads(tif.pages.first.description or "{}").get("shape", ())
    except (ValueError, AttributeError):  # other text: no claim
        return None
    return math.prod(shape[:-2]) if len(shape) == 3 else None


class _Shape:
    """Shape and type of a file's image whose layout a Video refuses (never read)."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.shape, self.dtype, self.ndim = shape, dtype, len(shape)


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

    def __init__(
        self, path: Path, shape: tuple[int, ...], dtype: np.dtype, tifffile: Any
    ) -> None:
        self.path, self.shape, self.dtype = path, shape, dtype
        self.ndim, self._tifffile = len(shape), tifffile

    def __getitem__(self, i: int) -> np.ndarray:
        return self._tifffile.imread(self.path, key=int(i))


class _FrameFiles:
    """(T, Y, X) view of a list of 2D image files, read on indexing."""

    def __init__(
        self, files: list[Path], shape: tuple[int, ...], dtype: np.dtype
    ) -> None:
        self.files = files
        self.shape = (len(files), *shape)
        self.ndim = len(self.shape)
        self.dtype = dtype

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
    files = [f for _, f in numbered]
    with _quiet_tifffile():
        heads = [_frame_header(f, tifffile) for f in files]
    shape, dtype = heads[0]
    if len(shape) != 2:
        raise VideoError(
            f"{files[0].name} has shape {shape}; a folder must hold 2D frames."
        )
    for f, (s, d) in zip(files, heads, strict=True):
        if s != shape or d != dtype:
            raise VideoError(
                f"{path}: {f.name} is {'x'.join(map(str, s))} {d}, but "
                f"{files[0].name} is {'x'.join(map(str, shape))} {dtype}; all "
                "frames of a folder must have the same size and pixel type."
            )
    return Video(
        _FrameFiles(files, shape, dtype),
        times=times,
        name=path.name,
        percentiles=percentiles,
    )


def _frame_header(f: Path, tifffile: Any) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and pixel type of a frame file, from its header (no pixels read)."""
    try:
        with tifffile.TiffFile(f) as tif:
            series = tif.series[0]
            return tuple(series.shape), np.dtype(series.dtype)
    except (OSError, ValueError, IndexError, tifffile.TiffFileError) as e:
        raise VideoError(
            f"{f} is not a readable TIFF frame ({e}); remove it from the folder or "
            "replace it."
        ) from e


def _open_zarr(path: Path) -> Any:
    """Open a zarr array (or a group holding one array) read-only, without loading it."""
    try:
        import zarr
    except ImportError as e:
        raise VideoError(
            f"{path} is a zarr store; reading it needs the zarr package: pip install zarr"
        ) from e
    try:
        z = zarr.open(str(path), mode="r")
    except (OSError, ValueError, KeyError) as e:  # zarr's errors are ValueErrors
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise VideoError(
            f"cannot open {path} as a zarr array ({first}); give a zarr store "
            "holding one (T, Y, X) array."
        ) from e
    if not hasattr(z, "shape"):  # a group: take its only array
        arrays = list(z.array_keys())
        if len(arrays) != 1:
            raise VideoError(
                f"{path} holds {len(arrays)} arrays ({', '.join(arrays)}); give the "
                "path of the one (T, Y, X) array inside it."
            )
        z = z[arrays[0]]
    return z
