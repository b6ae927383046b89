"""Feature export and Grad-CAM in bf16 where the CPU has it; Grad-CAM checks it first."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch

from napari_tarrow import device
from napari_tarrow.events import drain
from napari_tarrow.inference import attribution
from napari_tarrow.inference.features import export_features, frame_features
from napari_tarrow.io.video import Video
from napari_tarrow.model import TapModel


@pytest.fixture
def model(tiny_model_dir) -> TapModel:
    return TapModel.from_folder(tiny_model_dir)


def test_bf16_export_matches_fp32_and_says_how_it_was_computed(
    model, small_video, tmp_path
) -> None:
    video = Video(small_video[:2])
    out = {}
    for amp in (False, True):
        model.amp = amp
        path = tmp_path / f"{amp}.tif"
        drain(export_features(model, video, path))
        out[amp] = tifffile.imread(path).astype(np.float64)
        meta = json.loads(path.with_name(path.name + ".json").read_text())
        assert meta["computed_in"] == ("bf16 autocast" if amp else "fp32")
    assert out[True].shape == out[False].shape and not np.array_equal(*out.values())
    assert np.corrcoef(out[True].ravel(), out[False].ravel())[0, 1] > 0.999


def test_frame_features_converts_to_the_requested_dtype(model, small_video) -> None:
    z32 = frame_features(model, small_video[0])
    z16 = frame_features(model, small_video[0], tile=32, dtype=torch.float16)
    assert z16.dtype == torch.float16 and z16.is_contiguous()
    torch.testing.assert_close(z16.float(), z32, atol=2e-3, rtol=2e-3)


def _native_bf16(monkeypatch) -> None:
    """Make this CPU one that computes bf16 natively (AVX512-BF16)."""
    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset({"avx512_bf16"}))


def _spy_amp(monkeypatch) -> list[bool]:
    """Record the ``amp`` of every frame_features call of attribution."""
    seen = []
    real = attribution.frame_features

    def spy(model, frame, tile=None, amp=False, *rest, **kw):
        seen.append(amp)
        return real(model, frame, tile, amp, *rest, **kw)

    monkeypatch.setattr(attribution, "frame_features", spy)
    return seen


def _maps(model, video, **kw) -> tuple[list[np.ndarray], list[dict]]:
    events = list(attribution.attribute(model, video, **kw))
    maps = [e.data for e in events if type(e).__name__ == "FrameDone"]
    return maps, [e.info for e in events if type(e).__name__ == "Progress"]


def test_gradcam_keeps_bf16_z_once_the_first_map_passes_the_check(
    model, small_video, monkeypatch
) -> None:
    video = Video(small_video[:3])
    exact, _ = _maps(model, video, amp=False)
    _native_bf16(monkeypatch)
    monkeypatch.setattr(attribution, "MIN_BF16_CORRELATION", -1.0)
    seen = _spy_amp(monkeypatch)
    maps, infos = _maps(model, video)
    # frames 0, 1 in bf16, the same two in fp32 for the check, then frame 2 in bf16
    assert seen == [True, True, False, False, True]
    assert all(i["bf16"] == 1 for i in infos) and "bf16_correlation" in infos[-1]
    np.testing.assert_array_equal(maps[0], exact[0])  # the check's fp32 map
    assert not np.array_equal(maps[1], exact[1])
    bf16_first = _maps(model, Video(small_video[:2]), amp=True)[0][0]
    r = np.corrcoef(bf16_first.ravel(), exact[0].ravel())[0, 1]
    assert infos[0]["bf16_correlation"] == pytest.approx(r, abs=1e-6)


def test_gradcam_falls_back_to_fp32_when_the_check_fails(
    model, small_video, monkeypatch
) -> None:
    video = Video(small_video[:3])
    exact, _ = _maps(model, video, amp=False)
    _native_bf16(monkeypatch)
    monkeypatch.setattr(attribution, "MIN_BF16_CORRELATION", 1.01)
    seen = _spy_amp(monkeypatch)
    maps, infos = _maps(model, video)
    assert seen == [True, True, False, False, False]  # frame 2 in fp32, 0-1 reused
    assert all(np.array_equal(a, b) for a, b in zip(maps, exact, strict=True))
    assert [i["bf16"] for i in infos] == [0, 0]


def test_a_single_pair_gets_fp32_unchecked(model, small_video, monkeypatch) -> None:
    _native_bf16(monkeypatch)
    seen = _spy_amp(monkeypatch)
    _, infos = _maps(model, Video(small_video[:2]))
    assert seen == [False, False] and infos == [{"bf16": 0.0}]


def test_gradcam_precision_given_explicitly_is_not_checked(
    model, small_video, monkeypatch
) -> None:
    _native_bf16(monkeypatch)
    seen = _spy_amp(monkeypatch)
    for amp in (True, False):  # to attribute, then as the model's
        _, infos = _maps(model, Video(small_video[:2]), amp=amp)
        assert infos == [{"bf16": float(amp)}]
        model.amp = amp
        _, infos = _maps(model, Video(small_video[:2]))
        assert infos == [{"bf16": float(amp)}]
    assert seen == [True] * 4 + [False] * 4


def test_attribution_sidecar_says_how_z_was_computed(
    model, small_video, tmp_path, monkeypatch
) -> None:
    _native_bf16(monkeypatch)
    monkeypatch.setattr(attribution, "MIN_BF16_CORRELATION", 1.01)
    path = tmp_path / "cam.tif"
    drain(attribution.export_attribution(model, Video(small_video[:3]), path))
    meta = json.loads(path.with_name(path.name + ".json").read_text())
    assert meta["z_computed_in"].startswith("fp32 (first map against fp32: correlation")
