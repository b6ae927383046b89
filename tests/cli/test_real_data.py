"""Real Cell Tracking Challenge data (../shared/data, not redistributed): skipped when absent."""

import numpy as np
import pytest
import tifffile

from napari_tarrow.cli import main
from napari_tarrow.io.video import read_video

pytestmark = pytest.mark.realdata


def test_hela_folder_with_gaps_is_read(shared_data) -> None:
    v = read_video(shared_data / "hela-ctc02" / "02")
    assert v.shape == (57, 700, 1100)
    assert v.times[:21].tolist() == [*range(20), 21]
    pairs = v.pairs(1)
    assert len(pairs) == 29  # 19 inside 0-19, 10 among the scattered later frames
    assert all(v.times[j] - v.times[i] == 1 for i, j in pairs)
    f = v.frame(0)
    assert f.dtype == np.float32
    assert np.percentile(f, 1) == pytest.approx(0, abs=0.05)  # per-frame percentiles
    assert np.percentile(f, 99.8) == pytest.approx(1, abs=0.05)


def test_cli_attribute_on_hela(shared_data, tiny_model_dir, tmp_path) -> None:
    out, regions = tmp_path / "cam.tif", tmp_path / "r.csv"
    assert (
        main(
            [
                "-q",
                "attribute",
                str(tiny_model_dir),
                str(shared_data / "hela-ctc02" / "02"),
                "--out",
                str(out),
                "--regions",
                str(regions),
                "--top-k",
                "6",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    maps = tifffile.imread(out)
    assert maps.shape == (29, 700, 1100) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and (maps.reshape(29, -1).max(1) > 0).all()
    rows = np.loadtxt(regions, delimiter=",", skiprows=1)
    assert rows.shape == (29 * 6, 4)
    assert set(rows[:, 0].astype(int)) <= set(range(91))
