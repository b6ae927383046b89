"""Faults a scheduler or a disk brings: kills, SIGTERM, two runs at once, a full disk.

Each case runs the real command line in a subprocess, as a cluster would.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from napari_tarrow.cli import main
from napari_tarrow.io.lock import lock_path
from napari_tarrow.model import TapModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")
# 4 steps of 4 pairs per epoch: quick epochs, long enough to be killed inside one
TRAIN = [
    *("--size", "32", "--batch-size", "4", "--samples-per-epoch", "16"),
    *("--val-samples", "4", "--features", "8", "--device", "cpu"),
    *("--split-train", "0", "0.7", "--split-val", "0.7", "1"),
]
TIMING = {"samples_per_s"}  # the only metric that may differ between runs
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same arithmetic every run


@pytest.fixture(scope="module")
def video_tif(tmp_path_factory, small_video) -> Path:
    path = tmp_path_factory.mktemp("faults") / "video.tif"
    tifffile.imwrite(path, (small_video * 1000).astype("u2"))
    return path


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "napari_tarrow.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ONE_THREAD,
        **kwargs,
    )


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    proc = _cli(*args, **kwargs)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _metrics(folder: Path) -> list[dict]:
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in TIMING} for x in lines]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_a_killed_training_resumes_exactly_as_if_never_killed(
    tmp_path, video_tif
) -> None:
    epochs = 4
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    uninterrupted = _cli("-q", "train", str(video_tif), "--out", str(whole),
                         "--epochs", str(epochs), *TRAIN)  # fmt: skip
    # the same run beside it, killed at a random moment after its first checkpoint
    proc = _cli("-q", "train", str(video_tif), "--out", str(killed), "--epochs",
                str(epochs), *TRAIN)  # fmt: skip
    _wait_for(killed / "resume.pt", proc)
    time.sleep(np.random.default_rng(17).uniform(0, 0.5))
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    start = torch.load(killed / "resume.pt", weights_only=True)["epoch"]
    assert 0 < start < epochs, "the run ended before it was killed"
    with open(killed / "metrics.jsonl", "a") as f:  # killed while logging the next
        f.write('{"epoch": 99, "loss"')

    resumed = _run("-q", "train", str(video_tif), "--out", str(killed), "--resume",
                   "--epochs", str(epochs), "--device", "cpu")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.communicate()
    (stale,) = [x for x in resumed.stderr.splitlines() if "did not end cleanly" in x]
    assert stale.startswith("WARNING: ") and "takes the folder" in stale  # explained
    assert _metrics(killed) == _metrics(whole)  # every epoch, bit for bit
    assert not lock_path(killed).exists()


def test_sigterm_stops_training_as_cleanly_as_ctrl_c(tmp_path, video_tif) -> None:
    out = tmp_path / "model"
    proc = _cli("-q", "train", str(video_tif), "--out", str(out), "--epochs", "1000",
                *TRAIN)  # fmt: skip
    _wait_for(out / "metrics.jsonl", proc)
    proc.send_signal(signal.SIGTERM)  # what a scheduler sends before SIGKILL
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "stopped early" in stdout and "Traceback" not in stderr
    assert 0 < len(_metrics(out)) < 1000  # stopped after some epochs, not all
    TapModel.from_folder(out)
    assert not lock_path(out).exists()


def test_a_run_killed_before_its_first_save_leaves_no_folder(
    tmp_path, video_tif
) -> None:
    out = tmp_path / "model"
    long_epoch = ["--samples-per-epoch", "40000"]  # minutes: killed inside epoch 1
    proc = _cli("train", str(video_tif), "--out", str(out), *TRAIN, *long_epoch)
    seen, text = threading.Event(), []

    def watch() -> None:  # the progress bar appears after the first step
        while chunk := proc.stderr.read(1):
            text.append(chunk)
            if "train:" in "".join(text[-6:]):
                seen.set()

    threading.Thread(target=watch, daemon=True).start()
    assert seen.wait(120), "".join(text)
    proc.send_signal(signal.SIGKILL)  # as when napari or the session dies
    proc.wait()
    assert not out.exists() or TapModel.from_folder(out)


def test_a_second_training_into_the_same_folder_is_refused(
    tmp_path, video_tif, capsys
) -> None:
    out = tmp_path / "model"
    proc = _cli("-q", "train", str(video_tif), "--out", str(out), "--epochs", "1000",
                *TRAIN)  # fmt: skip
    try:
        _wait_for(lock_path(out), proc)
        argv = ["train", str(video_tif), "--out", str(out), *TRAIN]
        assert main([*argv, "--epochs", "1"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0, err
        assert "being written by another training" in err
        assert f"process {proc.pid} on " in err  # who holds it
        _wait_for(out / "resume.pt", proc)
        assert main([*argv, "--resume"]) == 2  # a resume, too
        assert "being written by another training" in capsys.readouterr().err
        TapModel.from_folder(out)  # the lock never blocks loading
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    assert proc.returncode == 0 and not lock_path(out).exists()


def _limited(nbytes: int):
    """preexec_fn: the child may write no file above ``nbytes`` (``ulimit -f``)."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))


@pytest.fixture(scope="module")
def ctc_tracks(tmp_path_factory, small_video) -> Path:
    """A lineage with one division, with masks of the small video's frame size."""
    root = tmp_path_factory.mktemp("tra")
    mask = np.zeros(small_video.shape[1:], np.uint16)
    mask[20:30, 20:30], mask[40:50, 20:30], mask[20:30, 40:50] = 1, 2, 3
    for t in range(len(small_video)):
        tifffile.imwrite(root / f"man_track{t:03d}.tif", mask)
    (root / "man_track.txt").write_text("1 0 4 0\n2 5 11 1\n3 5 11 1\n")
    return root / "man_track.txt"


@pytest.mark.parametrize("command", ["train", "features", "attribute", "segment",
                                     "evaluate"])  # fmt: skip
def test_a_full_disk_names_the_file_and_keeps_what_was_there(
    tmp_path, video_tif, tiny_model_dir, ctc_tracks, command
) -> None:
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    out = tmp_path / "out.tif"
    out.write_bytes(b"previous output")
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    m, v = str(model), str(video_tif)
    args = {
        "train": ["train", v, "--out", m, "--resume", "--epochs", "2"],
        "features": ["features", m, v, "--out", str(out), "--device", "cpu"],
        "attribute": ["attribute", m, v, "--out", str(out), "--device", "cpu"],
        "segment": ["segment", m, v, "--labels", str(tmp_path / "labels.tif"),
                    "--out", str(out), "--epochs", "1", "--device", "cpu"],
        "evaluate": ["evaluate", m, v, "--tracks", str(ctc_tracks), "--out",
                     str(tmp_path / "out.csv"), "--device", "cpu"],
    }[command]  # fmt: skip
    if command == "segment":
        labels = np.zeros(tifffile.imread(video_tif).shape, np.uint8)
        labels[1, 10:20, 10:20], labels[1, 40:60, 40:60] = 2, 1
        tifffile.imwrite(tmp_path / "labels.tif", labels)
    if command == "evaluate":
        (tmp_path / "out.csv").write_bytes(b"previous output")
        out = tmp_path / "out.csv"
    limit = 300 if command == "evaluate" else 20_000  # below each output's size
    done = _run("-q", *args, preexec_fn=_limited(limit))
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(f"napari-tarrow {command}: error: cannot write ")
    assert "file size limit" in line and "it needs about" in line
    assert "Traceback" not in done.stderr
    assert out.read_bytes() == b"previous output"
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before
    left = [p.name for p in tmp_path.rglob(".*.part")]
    assert not left, left
    TapModel.from_folder(model)
