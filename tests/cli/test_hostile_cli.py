"""Hostile input on the command line: one line on stderr, exit status 2, never a traceback.

The reasons themselves are checked in tests/core/test_hostile_input.py; here each
kind of file goes through the command that reads it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

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


def _model(tmp: Path, source: Path, kind: str) -> Path:
    """A copy of ``source`` damaged as ``kind``."""
    folder = shutil.copytree(source, tmp / "model")
    if kind == "config-type":
        config = json.loads((folder / "config.json").read_text())
        config["model"]["features"] = "8"
        (folder / "config.json").write_text(json.dumps(config))
    elif kind == "config-future":
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "schema_version": 7}))
    elif kind == "truncated-weights":
        for name in ("weights_best.safetensors", "weights_last.safetensors"):
            (folder / name).write_bytes((folder / name).read_bytes()[:500])
    elif kind == "pickle-only":
        for p in folder.iterdir():
            p.unlink()
        torch.save(torch.nn.Linear(2, 2), folder / "model_full.pt")
    elif kind == "corrupt-resume":
        (folder / "resume.pt").write_bytes(b"PK\x03\x04" + b"\x00" * 60)
    return folder


@pytest.mark.parametrize(
    ("kind", "command", "words"),
    [
        ("config-type", "features", "model.features='8' is invalid"),
        ("config-future", "features", "upgrade it"),
        ("truncated-weights", "features", "is corrupt"),
        ("pickle-only", "features", "never loads (unpickling can run any code)"),
        ("corrupt-resume", "train", "cannot resume"),
    ],
)
def test_broken_model_folders_exit_2_with_one_line(
    tmp_path, tiny_model_dir, capsys, kind, command, words
) -> None:
    model = _model(tmp_path, tiny_model_dir, kind)
    video = tmp_path / "video.tif"
    tifffile.imwrite(video, FRAMES)
    argv = {
        "features": ["features", str(model), str(video), "--out", str(tmp_path / "o")],
        "train": ["train", str(video), "--out", str(model), "--resume"],
    }[command]
    assert main(["-q", *argv, "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith(f"napari-tarrow {command}: error: ") and words in err


@pytest.mark.parametrize(
    ("lineage", "mask_side", "words"),
    [
        ("1 0 3 0\n2 4\n", 64, "line 2 ('2 4') is not 4 integers"),
        ("1 0 3 0\n1 4 6 0\n", 64, "on more than one line"),
        ("1 0 3 0\n2 4 11 1\n3 4 11 1\n", 32, "the video's frames are 64x64"),
    ],
    ids=["short-line", "duplicate", "mask-shape"],
)
def test_broken_ground_truth_exits_2_with_one_line(
    tmp_path, tiny_model_dir, capsys, lineage, mask_side, words
) -> None:
    video = tmp_path / "video.tif"
    tifffile.imwrite(video, FRAMES)
    tra = tmp_path / "TRA"
    tra.mkdir()
    (tra / "man_track.txt").write_text(lineage)
    mask = np.zeros((mask_side, mask_side), np.uint16)
    mask[4:8, 4:8], mask[12:16, 4:8], mask[4:8, 12:16] = 1, 2, 3
    for t in range(12):
        tifffile.imwrite(tra / f"man_track{t:03d}.tif", mask)
    argv = ["-q", "evaluate", str(tiny_model_dir), str(video), "--device", "cpu"]
    assert main([*argv, "--tracks", str(tra / "man_track.txt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith("napari-tarrow evaluate: error: ") and words in err
