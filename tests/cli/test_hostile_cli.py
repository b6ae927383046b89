"""Hostile input on the command line: one line on stderr, exit status 2, never a traceback.

The reasons themselves are checked in tests/core/test_hostile_input.py; here each
kind of file goes through the command that reads it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_tarrow.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FRAMES = (np.random.default_rng(0).random((12, 64, 64)) * 1000).astype("u2")


def _video(tmp: Path, kind: str) -> Path:
    """A broken or odd video of ``kind`` under ``tmp``."""
    path = tmp / "video.tif"
    if kind in ("truncated", "claims-1e6", "complex"):
        data = {"truncated": FRAMES, "claims-1e6": FRAMES[:3]}.get(kind)
        if kind == "complex":
            data = FRAMES.astype(np.complex64)
        header = "ImageJ=1.11a\nimages=1000000\n" if kind == "claims-1e6" else None
        tifffile.imwrite(path, data, description=header, photometric="minisblack")
        if kind == "truncated":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "random-bytes":
        path.write_bytes(np.random.default_rng(1).bytes(4096))
    elif kind == "zero-bytes":
        path.write_bytes(b"")
    elif kind.startswith("folder"):
        path = tmp / "frames"
        path.mkdir()
        for t in range(4):
            odd = {"folder-shapes": FRAMES[t][:32], "folder-dtypes": FRAMES[t] * 1.0}
            frame = odd.get(kind, FRAMES[t]) if t == 2 else FRAMES[t]
            tifffile.imwrite(path / f"t{t:03d}.tif", frame)
        if kind == "folder-non-image":
            (path / "t004.tif").write_text("not an image")
    elif kind == "zarr-2d":
        zarr = pytest.importorskip("zarr")
        path = tmp / "video.zarr"
        zarr.open(str(path), mode="w", shape=(64, 64), dtype="u2")
    return path


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("truncated", "is truncated or damaged"),
        ("claims-1e6", "declares 1000000 frames"),
        ("random-bytes", "not a TIFF file"),
        ("zero-bytes", "not a TIFF file"),
        ("complex", "complex pixels"),
        ("folder-shapes", "same size and pixel type"),
        ("folder-dtypes", "same size and pixel type"),
        ("folder-non-image", "not a readable TIFF frame"),
        ("zarr-2d", "single 2D image"),
    ],
)
def test_broken_videos_exit_2_with_one_line(
    tmp_path, tiny_model_dir, capsys, kind, words
) -> None:
    video = _video(tmp_path, kind)
    out = tmp_path / "out.tif"
    argv = ["-q", "features", str(tiny_model_dir), str(video), "--out", str(out)]
    assert main([*argv, "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith("napari-tarrow features: error: ") and words in err
    assert not out.exists()
