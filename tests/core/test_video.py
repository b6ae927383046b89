import re

import numpy as np
import pytest
import tifffile

from napari_tarrow.errors import VideoError
from napari_tarrow.io.video import Video, read_video


def test_frames_are_normalised_per_frame() -> None:
    rng = np.random.default_rng(0)
    x = np.stack([rng.random((64, 64)) * 10 + 100, rng.random((64, 64)) * 1000]).astype(
        "u2"
    )
    v = Video(x, percentiles=(1, 99))
    for i in range(2):
        f = v.frame(i)
        assert f.dtype == np.float32
        assert np.percentile(f, 1) == pytest.approx(0, abs=0.02)
        assert np.percentile(f, 99) == pytest.approx(1, abs=0.02)


def test_pairs_respect_gaps_and_interval() -> None:
    v = Video(np.zeros((6, 16, 16), "f4"), times=[0, 1, 2, 4, 5, 7])
    assert v.pairs(1).tolist() == [[0, 1], [1, 2], [3, 4]]
    assert v.pairs(2).tolist() == [[0, 2], [2, 3], [4, 5]]
    # interval is a fraction of the time span 0..8: [0, 0.5) holds frames 0..3
    assert v.pairs(1, (0.0, 0.5)).tolist() == [[0, 1], [1, 2]]
    assert v.pairs(1, (0.5, 1.0)).tolist() == [[3, 4]]


def test_folder_with_gaps(tmp_path) -> None:
    for t in (0, 1, 2, 5, 6):
        tifffile.imwrite(tmp_path / f"t{t:03d}.tif", np.full((20, 24), t, "u2"))
    (tmp_path / "notes.txt").write_text("ignored")
    v = read_video(tmp_path)
    assert v.shape == (5, 20, 24)
    assert v.times.tolist() == [0, 1, 2, 5, 6]
    assert v.pairs(1).tolist() == [[0, 1], [1, 2], [3, 4]]
    assert v.raw(3)[0, 0] == 5


def test_multipage_tiff_is_read_lazily(tmp_path) -> None:
    x = np.arange(4 * 32 * 32, dtype="u2").reshape(4, 32, 32)
    tifffile.imwrite(
        tmp_path / "v.tif", x, compression="zlib", photometric="minisblack"
    )
    v = read_video(tmp_path / "v.tif")
    assert v.shape == (4, 32, 32)
    np.testing.assert_array_equal(v.raw(2), x[2])


@pytest.mark.parametrize(
    ("shape", "words"),
    [
        ((64, 64), "single 2D image"),
        ((1, 64, 64), "single frame"),
        ((5, 64, 64, 3), "RGB"),
        ((128, 96, 3), "single RGB"),
        ((5, 2, 64, 64), "expected (T, Y, X)"),
        ((5, 8, 8), "16x16"),
    ],
)
def test_bad_shapes_name_the_problem(shape, words) -> None:
    with pytest.raises(VideoError, match=re.escape(words)):
        Video(np.zeros(shape, "f4"))


def test_nan_frame_is_reported_with_its_number() -> None:
    x = np.zeros((3, 32, 32), "f4")
    x[1, 5, 5] = np.nan
    v = Video(x, times=[10, 11, 12])
    v.frame(0)
    with pytest.raises(VideoError, match="frame 11 contains NaN"):
        v.frame(1)


def test_missing_path_and_empty_folder(tmp_path) -> None:
    with pytest.raises(VideoError, match="does not exist"):
        read_video(tmp_path / "nope.tif")
    with pytest.raises(VideoError, match="no numbered TIFF"):
        read_video(tmp_path)
