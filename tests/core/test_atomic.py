"""Durable saves: fsync before the rename, the folder after; files follow the umask; full disks."""

from __future__ import annotations

import contextlib
import os
import resource
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from napari_tarrow.config import DataConfig, ModelConfig, TapConfig, TrainConfig
from napari_tarrow.downstream.segment import DivisionSegmenter
from napari_tarrow.events import drain
from napari_tarrow.inference.regions import write_regions_csv
from napari_tarrow.io import atomic
from napari_tarrow.io.atomic import (
    DiskFullError,
    append_line,
    atomic_output,
    write_text,
)
from napari_tarrow.io.export import tiff_stream, write_sidecar
from napari_tarrow.io.video import Video
from napari_tarrow.model import TapModel
from napari_tarrow.training.loop import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")
linux = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="/proc/self/fd names fsync'd files"
)


def _tiny_config() -> TapConfig:
    return TapConfig(
        data=DataConfig(size=32, split_train=(0, 0.7), split_val=(0.7, 1.0)),
        model=ModelConfig(features=4, unet_channels=4, head_features=4),
        train=TrainConfig(epochs=1, samples_per_epoch=8, batch_size=4, val_samples=4),
    )


def _write_every_kind(folder: Path, video: np.ndarray) -> list[Path]:
    """Write each kind of output once (model folder, resume, TIFF, sidecar, CSVs, segmenter)."""
    drain(train(_tiny_config(), [Video(video)], folder / "model", device="cpu"))
    with tiff_stream(folder / "maps.tif", (2, 16, 16), np.float32, "TYX") as write:
        write(np.zeros((16, 16)))
        write(np.ones((16, 16)))
    write_sidecar(folder / "maps.tif", {"kind": "test"})
    write_regions_csv(np.array([[0, 1, 2, 0.5]]), folder / "regions.csv")
    seg = DivisionSegmenter(TapModel.from_folder(folder / "model"))
    seg.fitted = True  # untrained weights: the files are what is tested
    seg.save(folder / "segmenter")
    return sorted(p for p in folder.rglob("*") if p.is_file())


@linux
def test_every_output_is_fsynced_before_its_rename_and_the_folder_after(
    tmp_path, small_video, monkeypatch
) -> None:
    calls: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst) -> None:
        calls.append(("replace", str(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    files = _write_every_kind(tmp_path, small_video)
    renamed = [(i, p) for i, (kind, p) in enumerate(calls) if kind == "replace"]
    names = {Path(p).name for _, p in renamed}
    for final in files:
        if final.name == "metrics.jsonl":  # appended in place, fsync'd per line
            assert ("fsync", str(final)) in calls
            continue
        assert f".{final.name}.part" in names, final
    for i, tmp in renamed:
        assert calls[i - 1] == ("fsync", tmp), calls[i - 2 : i + 2]  # the file...
        assert calls[i + 1] == ("fsync", str(Path(tmp).parent))  # ...then its folder


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_new_files_follow_the_umask(tmp_path, small_video, umask) -> None:
    old = os.umask(umask)
    try:
        files = _write_every_kind(tmp_path, small_video)
    finally:
        os.umask(old)
    modes = {
        p.relative_to(tmp_path).as_posix(): p.stat().st_mode & 0o777 for p in files
    }
    assert "model/weights_best.safetensors" in modes and "model/resume.pt" in modes
    assert set(modes.values()) == {0o666 & ~umask}, modes


@contextlib.contextmanager
def size_limit(nbytes: int) -> Iterator[None]:
    """Limit the file size of this process (as ``ulimit -f``) inside the block only.

    The limit covers every file of the process, pytest's own log too: the progress
    report pytest writes after a test (before fixture teardown) fails while it holds
    once that log is longer than the limit, as CI's is.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_a_write_past_the_size_limit_keeps_the_previous_file(tmp_path) -> None:
    out = tmp_path / "out.bin"
    out.write_bytes(b"previous")
    log = tmp_path / "metrics.jsonl"
    log.write_text("x" * 9_990)
    # Python ignores SIGXFSZ: a write past the limit fails with EFBIG
    with (
        size_limit(10_000),
        pytest.raises(DiskFullError) as e,
        atomic_output(out) as tmp,
    ):
        tmp.write_bytes(b"x" * 20_000)
    message = str(e.value)
    assert str(out) in message and "file size limit" in message
    assert "\n" not in message
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl", "out.bin"]
    with (
        size_limit(10_000),
        pytest.raises(DiskFullError, match=r"needs about 20\.0 kB"),
    ):
        write_text(out, "y" * 20_000)  # a known size is refused before writing
    with size_limit(10_000), pytest.raises(DiskFullError, match=r"metrics\.jsonl"):
        append_line(log, "y" * 100)


def test_a_full_disk_is_named_before_anything_is_written(tmp_path, monkeypatch) -> None:
    out = tmp_path / "features.tif"
    usage = atomic.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(
        atomic.shutil, "disk_usage", lambda p: usage._replace(free=1_000_000)
    )
    with (
        pytest.raises(DiskFullError, match=r"disk is full; it needs about 4\.2 MB"),
        tiff_stream(out, (4, 512, 512), np.float32, "TYX") as write,
    ):
        write(np.zeros((512, 512)))
    assert not list(tmp_path.iterdir())


def test_model_weights_are_written_before_the_config(tmp_path, monkeypatch) -> None:
    order: list[str] = []
    real = atomic.os.replace
    monkeypatch.setattr(
        atomic.os, "replace", lambda a, b: order.append(Path(b).name) or real(a, b)
    )
    TapModel(_tiny_config()).save(tmp_path / "m")
    assert order == ["weights_last.safetensors", "config.json"]  # config: the last


def test_a_full_disk_during_a_zarr_export_keeps_the_previous_store(
    tmp_path, tiny_model_dir, small_video
) -> None:
    pytest.importorskip("zarr", minversion="3")
    from napari_tarrow.events import drain
    from napari_tarrow.inference.features import export_features
    from napari_tarrow.io.export import open_output
    from napari_tarrow.io.video import Video
    from napari_tarrow.model import TapModel

    model, path = TapModel.from_folder(tiny_model_dir), tmp_path / "f.zarr"
    drain(export_features(model, Video(small_video[:2]), path))
    before = open_output(path)[:]
    with size_limit(2_000), pytest.raises(DiskFullError) as e:  # below one chunk
        drain(export_features(model, Video(small_video[:3]), path))
    assert str(e.value).startswith(f"cannot write {path}: the file size limit")
    assert "\n" not in str(e.value)
    assert np.array_equal(open_output(path)[:], before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.zarr"]
