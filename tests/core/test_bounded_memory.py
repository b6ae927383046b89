"""Division segmentation of a long video needs no more memory than of a short one.

`segment` predicts frame by frame and writes both TIFFs as it goes; frozen features
are cached for the labelled frames only. Measured as the peak resident memory of a
fresh process (``ru_maxrss``) for a 15- and a 60-frame 512x512 video.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from napari_tarrow.config import ModelConfig, TapConfig
from napari_tarrow.downstream.files import segment_files
from napari_tarrow.downstream.segmenter_config import SegmentationConfig
from napari_tarrow.events import Progress
from napari_tarrow.model import TapModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SEGMENT = textwrap.dedent(
    """
    import resource, sys
    import torch
    from napari_tarrow.downstream.files import segment_files
    from napari_tarrow.downstream.segmenter_config import SegmentationConfig
    from napari_tarrow.events import drain

    torch.set_num_threads(1)
    model, video, labels, out, mode = sys.argv[1:]
    config = SegmentationConfig(mode=mode, head="linear", epochs=1, steps_per_epoch=5)
    drain(segment_files(model, video, labels, out, config, device="cpu"))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
    """
)


def _inputs(folder: Path, frames: int, side: int) -> tuple[Path, Path]:
    """A (frames, side, side) uint16 video and labels on frames 1 and 3."""
    video, labels = folder / f"video{frames}.tif", folder / f"labels{frames}.tif"
    rng = np.random.default_rng(frames)
    out = tifffile.memmap(video, shape=(frames, side, side), dtype="u2")
    for t in range(frames):
        out[t] = rng.integers(0, 4000, (side, side), dtype="u2")
    out.flush()
    del out
    lab = np.zeros((frames, side, side), np.uint8)
    for t in (1, 3):
        lab[t, : side // 4, : side // 4] = 1
        lab[t, side // 2 : side // 2 + 24, side // 2 : side // 2 + 24] = 2
    tifffile.imwrite(labels, lab)
    return video, labels


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    """Random weights of a narrow network: the memory of the job, not of the model."""
    torch.manual_seed(0)
    cfg = TapConfig(model=ModelConfig(features=4, unet_channels=4, head_features=4))
    return TapModel(cfg).save(tmp_path_factory.mktemp("model") / "small")


def _peak_rss(*args: str) -> int:
    """Peak RSS (KiB) of a fresh process running SEGMENT with ``args``.

    Address-space randomisation and hash seeds change the heap's layout from run
    to run by up to a sixth of the peak; both are fixed where possible.
    """
    cmd = [sys.executable, "-c", SEGMENT, *args]
    if shutil.which("setarch"):
        cmd = ["setarch", platform.machine(), "-R", *cmd]
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB")
@pytest.mark.parametrize("mode", ["frozen", "finetune"])
def test_segment_peak_memory_does_not_grow_with_the_video(
    tmp_path, small_model, mode
) -> None:
    peaks = {}
    for frames in (15, 60):
        video, labels = _inputs(tmp_path, frames, 512)
        out = tmp_path / f"div{frames}.tif"
        peaks[frames] = _peak_rss(
            str(small_model), str(video), str(labels), str(out), mode
        )
        assert tifffile.imread(out).shape == (frames, 512, 512)
    ratio = peaks[60] / peaks[15]
    assert ratio <= 1.2, f"peak RSS {peaks} KiB: {ratio:.2f}x"


@pytest.mark.parametrize("mode", ["frozen", "finetune"])
def test_prediction_holds_no_array_of_the_whole_video(
    tmp_path, small_model, mode
) -> None:
    """Numpy memory allocated after training, while predicting and writing the TIFFs."""
    grown = {}
    config = SegmentationConfig(mode=mode, head="linear", epochs=1, steps_per_epoch=2)
    for frames in (8, 32):
        video, labels = _inputs(tmp_path, frames, 128)
        job = segment_files(small_model, video, labels, tmp_path / "o.tif", config)
        try:
            for event in job:
                fit = isinstance(event, Progress) and event.stage == "fit"
                if fit and event.done == event.total:  # trained: prediction starts
                    tracemalloc.start()
            grown[frames] = tracemalloc.get_traced_memory()[1]  # the peak since then
        finally:
            tracemalloc.stop()
    frame = 128 * 128 * 4
    assert grown[32] < grown[8] + 4 * frame, grown  # not 8 bytes/pixel more per frame
