"""Out of device memory: tiled inference halves its tile and retries, with the same result."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from napari_tarrow.config import ModelConfig, TapConfig
from napari_tarrow.errors import TarrowError
from napari_tarrow.events import FrameDone, Progress
from napari_tarrow.inference.attribution import attribute, gradcam
from napari_tarrow.inference.features import frame_features
from napari_tarrow.inference.tiling import TileSizeWarning
from napari_tarrow.io.video import Video
from napari_tarrow.model import TapModel
from napari_tarrow.nn.tapnet import TapNet


@pytest.fixture
def model() -> TapModel:
    torch.manual_seed(0)
    m = TapModel(
        TapConfig(model=ModelConfig(features=8, unet_channels=8, head_features=8))
    )
    return m.to("cpu")


def _fail_above(fn, side: int):
    """Wrap ``fn`` so that inputs larger than ``side`` pixels raise out-of-memory."""

    def wrapped(x: torch.Tensor, *args, **kwargs):
        if max(x.shape[-2:]) > side:
            raise torch.OutOfMemoryError(f"test: {tuple(x.shape)} does not fit")
        return fn(x, *args, **kwargs)

    return wrapped


def _with_halvings(job):
    """Run ``job()``; return its result and the tile sides of the retries it warned about."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = job()
    sides = [
        int(str(w.message).split("retrying with ")[1].split("-pixel")[0])
        for w in caught
        if issubclass(w.category, TileSizeWarning)
    ]
    return result, sides


def test_features_halve_the_tile_until_it_fits(model, monkeypatch) -> None:
    frame = np.random.default_rng(0).random((300, 260), dtype=np.float32)
    full = frame_features(model, frame, tile=4096)
    # windows are the tile plus a 56-pixel halo on each side: 64-pixel tiles fit
    monkeypatch.setattr(model.net, "features", _fail_above(model.net.features, 200))
    tiled, sides = _with_halvings(lambda: frame_features(model, frame, tile=512))
    assert sides == [256, 128, 64]
    torch.testing.assert_close(tiled, full, rtol=0, atol=1e-4)


def test_gradcam_halves_the_tile_until_it_fits(model, monkeypatch) -> None:
    rng = np.random.default_rng(1)
    z0, z1 = (frame_features(model, rng.random((90, 110), dtype="f4")) for _ in "ab")
    full = gradcam(model, z0, z1, tile=4096)
    head = model.net.head
    monkeypatch.setattr(head, "pixelwise", _fail_above(head.pixelwise, 40))
    tiled, sides = _with_halvings(lambda: gradcam(model, z0, z1, tile=512))
    assert sides == [256, 128, 64, 32]
    torch.testing.assert_close(tiled, full, rtol=1e-4, atol=1e-7)


def test_a_job_keeps_the_reduced_tile_and_reports_it(model, monkeypatch) -> None:
    video = Video(np.random.default_rng(2).random((4, 150, 170), dtype=np.float32))
    expected = [
        e.data for e in attribute(model, video, amp=False) if isinstance(e, FrameDone)
    ]
    real = TapNet.features  # on the class, so the job's inference_copy has it too

    def features(net, x):
        return _fail_above(lambda x: real(net, x), 160)(x)

    monkeypatch.setattr(TapNet, "features", features)
    events, sides = _with_halvings(
        lambda: list(attribute(model, video, tile=512, amp=False))
    )
    assert sides == [256, 128, 64, 32]  # once, not again for the later frames
    assert {e.info.get("tile") for e in events if isinstance(e, Progress)} == {32.0}
    maps = [e.data for e in events if isinstance(e, FrameDone)]
    assert len(maps) == len(expected) == 3
    for got, want in zip(maps, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-6)


def test_out_of_memory_at_the_smallest_tile_is_a_clear_error(
    model, monkeypatch
) -> None:
    monkeypatch.setattr(model.net, "features", _fail_above(model.net.features, 0))
    frame = np.zeros((64, 64), np.float32)
    with pytest.raises(TarrowError, match=r"even with 32-pixel tiles; run on the CPU"):
        _with_halvings(lambda: frame_features(model, frame, tile=256))
