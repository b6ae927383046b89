"""Feature export to OME-Zarr: the TIFF's values, chunked per plane, replaced safely."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import tifffile

from napari_tarrow.errors import Cancelled, TarrowError
from napari_tarrow.events import drain
from napari_tarrow.inference.features import export_features
from napari_tarrow.io.export import open_output, output_format
from napari_tarrow.io.video import Video
from napari_tarrow.model import TapModel

pytest.importorskip("zarr", minversion="3")


@pytest.fixture
def model(tiny_model_dir) -> TapModel:
    m = TapModel.from_folder(tiny_model_dir)
    m.amp = False  # the same values on every CPU
    return m


@pytest.fixture
def video(small_video) -> Video:
    return Video(small_video[:3])


def test_zarr_holds_the_tiffs_values_as_ome_ngff(model, video, tmp_path) -> None:
    drain(export_features(model, video, tmp_path / "f.tif"))
    drain(export_features(model, video, tmp_path / "f.zarr"))
    z = open_output(tmp_path / "f.zarr")
    tiff = tifffile.imread(tmp_path / "f.tif")
    assert z.shape == tiff.shape and z.dtype == np.float16
    assert np.array_equal(z[:], tiff)  # bit for bit
    assert z.chunks == (1, 1, *tiff.shape[2:])  # one plane per chunk: lazy in napari
    attrs = json.loads((tmp_path / "f.zarr" / ".zattrs").read_text())
    (scales,) = attrs["multiscales"]
    assert scales["version"] == "0.4" and scales["datasets"][0]["path"] == "0"
    assert [a["name"] for a in scales["axes"]] == ["t", "c", "y", "x"]
    side = json.loads((tmp_path / "f.tif.json").read_text())
    assert attrs["napari_tarrow"] == side  # the sidecar's record, inside the store
    array = json.loads((tmp_path / "f.zarr" / "0" / ".zarray").read_text())
    assert array["dimension_separator"] == "/"  # as NGFF 0.4 asks
    assert array["compressor"]["cname"] == "zstd"
    assert not list(tmp_path.glob(".*"))  # no temporary folder left


def test_a_stopped_export_keeps_the_previous_store(
    model, video, small_video, tmp_path
) -> None:
    small = small_video
    path = tmp_path / "f.zarr"
    drain(export_features(model, video, path))
    before = open_output(path)[:]
    calls = iter(range(100))
    with pytest.raises(Cancelled):  # stopped after the first frame
        drain(export_features(model, video, path, stop=lambda: next(calls) >= 1))
    assert np.array_equal(open_output(path)[:], before)
    drain(export_features(model, Video(small[:2]), path))  # a new one replaces it
    assert open_output(path).shape[0] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.zarr"]


def test_a_folder_that_is_not_a_zarr_store_is_never_replaced(
    model, video, tmp_path
) -> None:
    folder = tmp_path / "results.zarr"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(TarrowError, match="exists and is not a zarr store"):
        drain(export_features(model, video, folder))
    assert (folder / "notes.txt").read_text() == "mine"


def test_the_format_follows_the_suffix_and_a_mismatch_is_named(tmp_path) -> None:
    assert output_format("a.zarr") == "zarr" and output_format("a.TIF") == "tiff"
    assert (
        output_format("a.tif", "tiff") == "tiff"
        and output_format("a", "zarr") == "zarr"
    )
    with pytest.raises(TarrowError, match=r"names a TIFF file .* name it a.zarr"):
        output_format("a.tif", "zarr")


def test_without_zarr_the_message_says_how_to_get_it(
    model, video, tmp_path, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "zarr", None)  # import zarr fails
    with pytest.raises(TarrowError, match=r"pip install 'napari-tarrow\[zarr\]'"):
        drain(export_features(model, video, tmp_path / "f.zarr"))
    assert not list(tmp_path.iterdir())
