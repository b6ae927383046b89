"""Feature export in bf16 where the CPU has it; Grad-CAM always from fp32 z."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch

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


def test_gradcam_computes_z_in_fp32_even_where_export_uses_bf16(
    model, small_video, monkeypatch
) -> None:
    model.amp = True
    seen = []
    real = attribution.frame_features
    monkeypatch.setattr(
        attribution,
        "frame_features",
        lambda *a, **k: (
            seen.append(k.get("amp", a[3] if len(a) > 3 else False)) or real(*a, **k)
        ),
    )
    drain(attribution.attribute(model, Video(small_video[:2])))
    assert seen == [False, False]  # amp left at its default (fp32) for both frames
