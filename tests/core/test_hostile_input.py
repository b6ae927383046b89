"""Hostile input: broken files and odd pixels give one clear line, never a traceback or a hang.

Each case is refused with a :class:`TarrowError` whose message names the problem
(the command line prints it as one line with exit status 2: tests/cli/test_faults.py
and tests/cli/test_cli.py; napari shows it as a notification: tests/widgets).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from napari_tarrow.config import (
    SCHEMA_VERSION,
    DataConfig,
    ModelConfig,
    TapConfig,
    TrainConfig,
)
from napari_tarrow.downstream.segment import FORMAT_VERSION, DivisionSegmenter
from napari_tarrow.errors import ModelFolderError, TarrowError, VideoError
from napari_tarrow.events import drain
from napari_tarrow.io.ctc import read_ctc, read_lineage
from napari_tarrow.io.video import Video, read_video
from napari_tarrow.model import TapModel
from napari_tarrow.training.loop import train

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


# -- model and run files -------------------------------------------------------


def _with_config(tmp_path: Path, model_dir: Path, change) -> Path:
    folder = shutil.copytree(model_dir, tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            lambda c: c["data"].update(size="96"),
            "data.size='96' is invalid: expected an integer",
        ),
        (lambda c: c["data"].update(delta="12"), "data.delta='12' is invalid"),
        (lambda c: c["model"].update(features=8.5), "model.features=8.5"),
        (lambda c: c["data"].update(augment="no"), "expected true or false"),
        (lambda c: c["train"].update(epochs=True), "train.epochs=True"),
        (lambda c: c["data"].update(percentiles=[1]), "a list of 2 numbers"),
        (lambda c: c.update(data=None), "data=None is invalid: expected a JSON object"),
        (lambda c: c["model"].update(colour="red"), "model keys=['colour']"),
        (lambda c: c.update(extra={}), "config keys=['extra']"),
        (
            lambda c: c.update(schema_version=SCHEMA_VERSION + 1),
            "newer napari-tarrow? upgrade it",
        ),
    ],
    ids=[
        "str-int",
        "str-list",
        "float-int",
        "str-bool",
        "bool-int",
        "short-list",
        "null-section",
        "unknown-key",
        "unknown-section",
        "future-schema",
    ],
)
def test_config_with_wrong_types_unknown_keys_or_a_future_schema(
    tmp_path, tiny_model_dir, change, words
) -> None:
    folder = _with_config(tmp_path, tiny_model_dir, change)
    with pytest.raises(ModelFolderError) as e:
        TapModel.from_folder(folder)
    _one_line(e, "corrupt config.json", words)


@pytest.mark.parametrize("which", ["best", "last"])
def test_truncated_safetensors(tmp_path, tiny_model_dir, which) -> None:
    folder = shutil.copytree(tiny_model_dir, tmp_path / "model")
    path = folder / f"weights_{which}.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelFolderError) as e:
        TapModel.from_folder(folder, which=which)
    _one_line(e, str(path), "is corrupt")


def test_a_pickled_model_is_refused_with_the_reason(tmp_path) -> None:
    folder = tmp_path / "reference-run"
    folder.mkdir()
    torch.save(torch.nn.Linear(2, 2), folder / "model_full.pt")  # a whole module
    with pytest.raises(ModelFolderError) as e:
        TapModel.from_folder(folder)
    _one_line(e, "model_full.pt, a pickled model", "never loads", "model_kwargs.yaml")


def _tiny_config(features: int = 8, epochs: int = 2) -> TapConfig:
    return TapConfig(
        data=DataConfig(size=32, split_train=(0, 0.7), split_val=(0.7, 1.0)),
        model=ModelConfig(features=features, unet_channels=8, head_features=8),
        train=TrainConfig(
            epochs=epochs, samples_per_epoch=8, batch_size=4, val_samples=4
        ),
    )


@pytest.fixture(scope="module")
def other_resume(tmp_path_factory, small_video) -> Path:
    """``resume.pt`` of a run with another architecture (16 features, not 8)."""
    out = tmp_path_factory.mktemp("other") / "model"
    drain(train(_tiny_config(16, 1), [Video(small_video)], out, device="cpu"))
    return out / "resume.pt"


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda p, other: p.write_bytes(b"not a checkpoint" * 8), "cut short"),
        (lambda p, other: p.write_bytes(p.read_bytes()[:2000]), "cut short"),
        (lambda p, other: shutil.copy(other, p), "does not fit the architecture"),
    ],
    ids=["garbage", "truncated", "other-architecture"],
)
def test_a_corrupt_or_foreign_resume_file(
    tmp_path, small_video, other_resume, damage, words
) -> None:
    out = tmp_path / "model"
    drain(train(_tiny_config(epochs=1), [Video(small_video)], out, device="cpu"))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "resume.pt"}
    damage(out / "resume.pt", other_resume)
    with pytest.raises(ModelFolderError) as e:
        drain(train(_tiny_config(), [Video(small_video)], out, "cpu", resume=True))
    _one_line(e, "cannot resume", words, f"--init {out}")
    assert {
        p.name: p.read_bytes() for p in out.iterdir() if p.name != "resume.pt"
    } == before
    TapModel.from_folder(out)  # the model itself still loads


@pytest.fixture(scope="module")
def segmenter_dir(tmp_path_factory, tiny_model_dir) -> Path:
    seg = DivisionSegmenter(TapModel.from_folder(tiny_model_dir))
    seg.fitted = True  # untrained weights: only the files matter here
    return seg.save(tmp_path_factory.mktemp("seg") / "segmenter")


@pytest.mark.parametrize(
    "content",
    [
        b'{"config": {"mode": "frozen"',
        b"\xff\xfe\x00\x81",
        b"[1, 2]",
        b'{"config": {"epochs": "3"}, "tap_config": {}}',
        b'{"config": {}, "tap_config": {"model": 5}}',
        b'{"config": {}, "tap_config": {}, "tap_model": 7}',
        b'{"config": {}, "tap_config": {}, "trained_on_frames": "abc"}',
    ],
    ids=[
        "cut-short",
        "not-utf8",
        "a-list",
        "wrong-type",
        "bad-section",
        "bad-source",
        "bad-frames",
    ],
)
def test_a_corrupt_segmenter_json(tmp_path, segmenter_dir, content) -> None:
    folder = shutil.copytree(segmenter_dir, tmp_path / "seg")
    (folder / "segmenter.json").write_bytes(content)
    with pytest.raises(ModelFolderError) as e:
        DivisionSegmenter.load(folder)
    _one_line(e, "segmenter.json is corrupt")


def test_a_segmenter_json_of_version_1_loads_and_a_newer_one_is_refused(
    tmp_path, segmenter_dir
) -> None:
    folder = shutil.copytree(segmenter_dir, tmp_path / "seg")
    info = json.loads((folder / "segmenter.json").read_text())
    assert info["format_version"] == FORMAT_VERSION == 2
    del info["format_version"]  # as version 1 wrote it
    (folder / "segmenter.json").write_text(json.dumps(info))
    old = DivisionSegmenter.load(folder)
    assert old.config == DivisionSegmenter.load(segmenter_dir).config
    (folder / "segmenter.json").write_text(json.dumps({**info, "format_version": 3}))
    with pytest.raises(ModelFolderError) as e:
        DivisionSegmenter.load(folder)
    _one_line(e, "written by a newer napari-tarrow")


# -- Cell Tracking Challenge ground truth --------------------------------------


@pytest.mark.parametrize(
    ("lineage", "words"),
    [
        ("1 0 3 0\n2 4 6\n", "line 2 ('2 4 6') is not 4 integers"),
        ("1 0 1.5 0\n", "line 1 ('1 0 1.5 0') is not 4 integers"),
        ("1 0 99999999999999999999 0\n", "line 1"),
        ("# only a comment\n\n", "holds no line of 4 integers"),
        ("1 0 3 0\n1 4 6 0\n", "track 1 is on more than one line"),
        ("1 0 3 1\n", "track 1 is its own parent"),
        ("0 0 3 0\n", "track 0 is 0, the background"),
        ("1 5 3 0\n", "ends before it begins"),
    ],
    ids=[
        "short-line",
        "float",
        "huge",
        "empty",
        "duplicate",
        "own-parent",
        "label-0",
        "ends-first",
    ],
)
def test_bad_lineage_lines_are_named(tmp_path, lineage, words) -> None:
    path = tmp_path / "man_track.txt"
    path.write_text(lineage)
    with pytest.raises(TarrowError) as e:
        read_lineage(path)
    _one_line(e, words)


def test_binary_lineage_file(tmp_path) -> None:
    path = tmp_path / "man_track.txt"
    path.write_bytes(os.urandom(64) + b"\xff")
    with pytest.raises(TarrowError) as e:
        read_lineage(path)
    _one_line(e, "is not a CTC lineage")


def test_masks_of_another_size_than_the_video(tmp_path) -> None:
    (tmp_path / "man_track.txt").write_text("1 0 1 0\n2 2 3 1\n3 2 3 1\n")
    mask = np.zeros((32, 32), np.uint16)
    mask[5:8, 5:8], mask[20:23, 5:8], mask[5:8, 20:23] = 1, 2, 3
    for t in range(4):
        tifffile.imwrite(tmp_path / f"man_track{t:03d}.tif", mask)
    assert len(read_ctc(tmp_path / "man_track.txt").divisions) == 1
    with pytest.raises(TarrowError) as e:
        read_ctc(tmp_path / "man_track.txt", shape=(64, 64))
    _one_line(e, "is 32x32 pixels but the video's frames are 64x64")
