"""Hostile input: broken files and odd pixels give one clear line, never a traceback or a hang.

Each case is refused with a :class:`TarrowError` whose message names the problem
(the command line prints it as one line with exit status 2: tests/cli).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_tarrow.data.video import Video, read_video
from napari_tarrow.errors import VideoError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FRAMES = (np.random.default_rng(0).random((12, 64, 64)) * 1000).astype("u2")


def _one_line(e: pytest.ExceptionInfo, *words: str) -> None:
    message = str(e.value)
    assert "\n" not in message, message
    for w in words:
        assert w in message, message


# -- video files -------------------------------------------------------------


def _truncated(path: Path) -> Path:
    tifffile.imwrite(path, FRAMES)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _truncated_compressed(path: Path) -> Path:
    tifffile.imwrite(path, FRAMES, compression="zlib")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _random_bytes(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(1).bytes(5000))
    return path


def _zero_bytes(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _claims_a_million_frames(path: Path) -> Path:
    """Three frames under an ImageJ header that declares 10^6."""
    header = "ImageJ=1.11a\nimages=1000000\nframes=1000000\nhyperstack=true\n"
    tifffile.imwrite(
        path, FRAMES[:3], description=header, metadata=None, photometric="minisblack"
    )
    return path


def _frame_folder(path: Path, odd: str) -> Path:
    path.mkdir()
    for t in range(6):
        frame = FRAMES[t]
        if t == 3 and odd == "shape":
            frame = frame[:32]
        if t == 3 and odd == "dtype":
            frame = frame.astype(np.float32)
        tifffile.imwrite(path / f"t{t:03d}.tif", frame)
    if odd == "not-an-image":
        (path / "t006.tif").write_text("written by a text editor")
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (_truncated, ["truncated", "declares 12 frames", "holds 6"]),
        (_truncated_compressed, ["truncated", "declares 12 frames", "holds 6"]),
        (_random_bytes, ["cannot read", "not a TIFF"]),
        (_zero_bytes, ["cannot read", "not a TIFF"]),
        (_claims_a_million_frames, ["declares 1000000 frames", "holds 3"]),
        (lambda p: _frame_folder(p, "shape"), ["t003.tif is 32x64", "same size"]),
        (lambda p: _frame_folder(p, "dtype"), ["t003.tif is 64x64 float32", "uint16"]),
        (lambda p: _frame_folder(p, "not-an-image"), ["t006.tif", "not a readable"]),
    ],
    ids=[
        "truncated",
        "truncated-zlib",
        "random-bytes",
        "zero-bytes",
        "claims-1e6",
        "folder-shapes",
        "folder-dtypes",
        "folder-non-image",
    ],
)
def test_broken_video_files_are_refused_when_opened(
    tmp_path, make, words, caplog
) -> None:
    path = make(tmp_path / "video.tif")
    with pytest.raises(VideoError) as e:
        read_video(path)  # at once: before any training or export
    _one_line(e, *words)
    assert not [r for r in caplog.records if r.name == "tifffile"]  # said once, by us


def test_a_folder_frame_is_read_from_its_header_only(tmp_path) -> None:
    folder = _frame_folder(tmp_path / "frames", "none")
    (folder / "notes.txt").write_text("not a frame: ignored")
    video = read_video(folder)
    assert video.shape == (6, 64, 64)
    np.testing.assert_array_equal(video.raw(5), FRAMES[5])


# -- pixels ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.int8, np.bool_, np.float16])
def test_real_pixel_types_are_read_as_float32(dtype) -> None:
    x = np.random.default_rng(2).random((4, 32, 32)) * 100 - 50
    frame = Video((x > 0) if dtype is np.bool_ else x.astype(dtype)).frame(1)
    assert frame.dtype == np.float32 and np.all(np.isfinite(frame))
    assert 0.9 < frame.max() < 1.5 and -0.5 < frame.min() <= 0.01


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (np.ones((4, 32, 32), np.complex64), ["complex pixels", "numpy.abs"]),
        (np.full((4, 32, 32), "a"), ["pixels of type <U1", "numbers"]),
    ],
    ids=["complex", "text"],
)
def test_pixels_that_are_not_real_numbers_are_refused(data, words) -> None:
    with pytest.raises(VideoError) as e:
        Video(data)
    _one_line(e, *words)


def test_complex_frames_of_a_source_without_dtype_are_refused_when_read() -> None:
    class Frames:  # shape and __getitem__ only, like a napari layer's view
        shape, ndim = (4, 32, 32), 3

        def __getitem__(self, i):
            return np.ones((32, 32), np.complex64)

    with pytest.raises(VideoError, match="complex pixels"):
        Video(Frames()).frame(0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_one_frame_names_the_frame(bad) -> None:
    x = np.random.default_rng(3).random((4, 32, 32)).astype(np.float32)
    x[2, 3, 3] = bad
    video = Video(x, times=[5, 6, 7, 8])
    video.frame(1)
    with pytest.raises(VideoError) as e:
        video.frame(2)
    _one_line(e, "frame 7 contains NaN or infinite values")


def test_constant_frames_normalise_to_zeros_with_one_warning() -> None:
    x = np.random.default_rng(4).random((5, 32, 32)).astype(np.float32) * 100
    x[1], x[3] = 0, 7  # a blank frame and a constant one
    near = np.full((32, 32), 100.0, np.float32)
    near[5, 5] = 4000  # constant but for one hot pixel: percentiles coincide
    x[4] = near
    video = Video(x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = [video.frame(i) for i in range(5)]
    assert [str(w.message) for w in caught] == [
        (
            "video: frame 1 is constant (0), e.g. blank; it is normalised to zeros "
            "(further constant frames are not reported)."
        )
    ]
    assert not frames[1].any() and not frames[3].any()
    assert frames[4].max() == pytest.approx(1) and frames[4].min() == 0  # not 10^9


# -- zarr ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "words"),
    [((64, 64), "single 2D image"), ((2, 3, 4, 64, 64), "expected (T, Y, X)")],
)
def test_zarr_of_the_wrong_dimensionality(tmp_path, shape, words) -> None:
    zarr = pytest.importorskip("zarr")
    zarr.open(str(tmp_path / "v.zarr"), mode="w", shape=shape, dtype="u2")
    with pytest.raises(VideoError) as e:
        read_video(tmp_path / "v.zarr")
    _one_line(e, words)


def test_a_zarr_path_that_is_no_store(tmp_path) -> None:
    pytest.importorskip("zarr")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(VideoError) as e:
        read_video(tmp_path / "empty.zarr")
    _one_line(e, "cannot open", "as a zarr array")
