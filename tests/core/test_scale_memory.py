"""Videos larger than memory: training, attribution and export under an address-space limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from napari_tarrow.errors import VideoError
from napari_tarrow.io.video import Video, read_video
from napari_tarrow.training.pairs import PairSampler

# Address space allowed above what the warmed-up interpreter holds. The run's peak sits
# 310-330 MiB above it (VmPeak, Intel Xeon with AMX, 2026-12-04: the heap of one arena,
# oneDNN's primitives and scratchpads for fp32 and bf16); at 300 MiB oneDNN failed in
# two runs of three ("could not create a primitive"). The video is larger still.
HEADROOM_MIB = 450

LIMITED_RUN = textwrap.dedent(
    """
    import json, os, resource, sys
    from pathlib import Path
    import numpy as np, torch
    from napari_tarrow.inference.attribution import attribute
    from napari_tarrow.config import DataConfig, ModelConfig, TapConfig, TrainConfig
    from napari_tarrow.io.video import Video, read_video
    from napari_tarrow.events import FrameDone, drain
    from napari_tarrow.inference.features import export_features
    from napari_tarrow.training.loop import train

    video_path, out, headroom = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    torch.nn.functional.conv2d(torch.rand(1, 1, 64, 64), torch.rand(1, 1, 3, 3))  # threads up
    page = os.sysconf("SC_PAGE_SIZE")
    used = int(Path("/proc/self/statm").read_text().split()[0]) * page
    limit = used + headroom * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    try:  # the limit bites: the video cannot be held in memory
        np.ones(video_path.stat().st_size, np.uint8)
        sys.exit("the memory limit does not stop loading the whole video")
    except MemoryError:
        pass

    # the working set is set by the crop, the batch and the tile, not by the video
    video = read_video(video_path)
    cfg = TapConfig(
        data=DataConfig(size=32, augment=False),
        model=ModelConfig(features=8, unet_channels=8, head_features=8),
        train=TrainConfig(epochs=1, samples_per_epoch=32, batch_size=8, val_samples=16),
    )
    model = drain(train(cfg, [video], out / "model", device="cpu"))
    cam = next(e.data for e in attribute(model, video, tile=256, pairs=np.array([[5, 6]]))
               if isinstance(e, FrameDone))

    class FirstFrames:  # numpy-like: shape and __getitem__ are all a Video needs
        def __init__(self, video, n):
            self.video, self.shape, self.ndim = video, (n, *video.shape[1:]), 3
        def __getitem__(self, i):
            return self.video.raw(i)

    drain(export_features(model, Video(FirstFrames(video, 3)), out / "features.tif",
                         tile=256))
    print(json.dumps({"limit": limit, "video_bytes": video_path.stat().st_size,
                      "cam_shape": list(cam.shape), "cam_max": float(cam.max())}))
    """
)


@pytest.fixture(scope="module")
def big_tif(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 600 MiB uncompressed (T, Y, X) uint16 TIFF, written in chunks."""
    path = tmp_path_factory.mktemp("big") / "big.tif"
    shape = (1200, 512, 512)
    out = tifffile.memmap(path, shape=shape, dtype="u2", photometric="minisblack")
    rng = np.random.default_rng(0)
    base = rng.integers(0, 3000, shape[1:], dtype="u2")
    for t in range(0, shape[0], 100):  # frames differ beyond an offset (noise)
        noise = rng.integers(0, 300, (100, *shape[1:]), dtype="u2")
        out[t : t + 100] = (
            base + noise + np.arange(t, t + 100, dtype="u2")[:, None, None]
        )
    out.flush()
    del out
    return path


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="uses /proc, RLIMIT_AS"
)
def test_train_attribute_export_a_video_larger_than_the_memory_limit(
    tmp_path, big_tif
) -> None:
    script = tmp_path / "limited.py"
    script.write_text(LIMITED_RUN)
    # RLIMIT_AS counts address space, and each extra glibc arena (made when threads
    # contend, so by timing) reserves 64 MiB of it without using memory. With one arena
    # the limit counts what is used.
    done = subprocess.run(
        [sys.executable, str(script), str(big_tif), str(tmp_path), str(HEADROOM_MIB)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MALLOC_ARENA_MAX": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["video_bytes"] > HEADROOM_MIB * 2**20 + 100 * 2**20
    assert result["cam_shape"] == [512, 512] and result["cam_max"] > 0
    assert (tmp_path / "model" / "weights_best.safetensors").exists()
    features = tifffile.imread(tmp_path / "features.tif")
    assert features.shape == (3, 8, 512, 512) and features.dtype == np.float16


def test_uncompressed_tiff_frames_are_read_one_at_a_time(big_tif) -> None:
    video = read_video(big_tif)
    assert video.shape == (1200, 512, 512)
    with tifffile.TiffFile(big_tif) as tif:
        np.testing.assert_array_equal(video.raw(700), tif.asarray(key=700))
    with pytest.raises(IndexError):
        video.raw(1200)


class _CountingFrames:
    """Numpy-like (T, Y, X) source that records which frames were read."""

    def __init__(self, frames: np.ndarray) -> None:
        self.frames, self.shape, self.ndim, self.reads = frames, frames.shape, 3, []

    def __getitem__(self, i: int) -> np.ndarray:
        self.reads.append(i)
        return self.frames[i]


def test_lazy_sampling_reads_a_few_frames_per_batch() -> None:
    rng = np.random.default_rng(0)
    source = _CountingFrames(rng.random((200, 64, 64), dtype=np.float32))
    sampler = PairSampler(
        [Video(source)], [1], (0, 1), 32, torch.device("cpu"), memory_budget=2**20
    )
    assert sampler.lazy and sampler.n_pairs == 199
    assert source.reads == []  # nothing is read up front
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        before = len(source.reads)
        x, y = sampler.sample(16, gen)
        assert x.shape == (16, 2, 32, 32) and y.shape == (16,)
        assert len(source.reads) - before <= 2 * sampler.pairs_per_batch
    assert len(set(source.reads)) > 8  # different pairs over the batches


def test_dask_arrays_are_read_frame_by_frame() -> None:
    da = pytest.importorskip("dask.array")
    x = np.random.default_rng(1).random((6, 40, 48), dtype=np.float32)
    video = Video(da.from_array(x, chunks=(1, 40, 48)))
    np.testing.assert_allclose(video.frame(3), Video(x).frame(3))


def test_zarr_store_without_zarr_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "zarr", None)  # as if zarr were not installed
    (tmp_path / "movie.zarr").mkdir()
    with pytest.raises(VideoError, match="needs the zarr package: pip install zarr"):
        read_video(tmp_path / "movie.zarr")
