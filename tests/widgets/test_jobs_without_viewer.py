"""The widgets' jobs run without a viewer: results, and a stop that keeps nothing half-done."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_tarrow.downstream import BACKGROUND, DIVIDING, SegmentationConfig
from napari_tarrow.downstream.classify import CellStateClassifier
from napari_tarrow.downstream.segment import DivisionSegmenter
from napari_tarrow.errors import Cancelled
from napari_tarrow.events import Done, Event, FrameDone, drain
from napari_tarrow.io.video import Video
from napari_tarrow.model import TapModel
from napari_tarrow.widgets.attribution import attribution_job
from napari_tarrow.widgets.classify import classify_job
from napari_tarrow.widgets.export import export_job
from napari_tarrow.widgets.segment import segment_job


def never() -> bool:
    return False


def always() -> bool:
    return True


@pytest.fixture(scope="module")
def model_and_video(tiny_model_dir: Path, small_video: np.ndarray):
    return TapModel.from_folder(tiny_model_dir, device="cpu"), Video(small_video[:4])


def _stopped(job: Iterator[Event]) -> list[Event]:
    events: list[Event] = []
    with pytest.raises(Cancelled):
        events.extend(job)
    assert not any(isinstance(e, Done) for e in events)
    return events


def test_attribution_job_gives_maps_and_regions_per_pair(model_and_video) -> None:
    model, video = model_and_video
    pairs = video.pairs(1)[[0, 2]]
    events = list(attribution_job(model, video, 1, pairs, 3, never))
    done = [e for e in events if isinstance(e, FrameDone)]
    assert [(e.frame, e.pair) for e in done] == [(0, 0), (2, 1)]
    cam, regions = done[0].data
    assert cam.shape == video.shape[1:] and regions.shape[1] == 3 and len(regions) <= 3
    _stopped(attribution_job(model, video, 1, pairs, 3, always))


def test_export_job_writes_features_and_their_pca(model_and_video, tmp_path) -> None:
    model, video = model_and_video
    path, rgb = drain(
        export_job(model, video, tmp_path / "z.tif", "float16", True, never)
    )
    t, y, x = video.shape
    assert tifffile.imread(path).shape == (t, 8, y, x)
    assert rgb.shape == (t, y, x, 3)
    _stopped(
        export_job(model, video, tmp_path / "stopped.tif", "float16", True, always)
    )
    assert not (tmp_path / "stopped.tif").exists()


def test_segment_job_fits_then_predicts_the_frames(model_and_video) -> None:
    model, video = model_and_video
    labels = np.zeros(video.shape, np.uint8)
    labels[0, :, :30], labels[0, 20:30, 40:50] = BACKGROUND, DIVIDING
    config = SegmentationConfig(epochs=1, steps_per_epoch=2, batch_size=2, crop=32)
    seg = DivisionSegmenter(model, config)
    frames, result = drain(segment_job(seg, video, labels, [1, 2], never))
    assert frames == [1, 2] and result.labels.shape == (2, *video.shape[1:])
    _stopped(segment_job(DivisionSegmenter(model, config), video, labels, [1], always))


def test_classify_job_fits_on_the_named_points_and_classifies_all(
    model_and_video,
) -> None:
    model, video = model_and_video
    points = np.array([[0, 10, 10], [0, 60, 60], [1, 10, 12], [1, 62, 58], [2, 40, 40]])
    classes = np.array(["a", "b", "a", "b", ""])  # the last one is to be classified
    clf = CellStateClassifier(model, epochs=5)
    prediction = drain(classify_job(clf, video, points, classes, never))
    assert prediction.labels.shape == (5,) and set(prediction.classes) == {"a", "b"}
    assert prediction.proba.shape == (5, 2)
    _stopped(classify_job(CellStateClassifier(model), video, points, classes, always))
