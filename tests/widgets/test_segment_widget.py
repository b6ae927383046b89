"""Segment divisions widget: paint labels, train and predict in a worker, labels layer out."""

from __future__ import annotations

import numpy as np
import pytest

from napari_tarrow.sample_data import dividing_cells
from napari_tarrow.widgets import SegmentWidget, _jobs, segment
from napari_tarrow.widgets._models import STORE

SCALE = (1.0, 0.5, 0.5)


@pytest.fixture
def messages(monkeypatch):
    got = []
    for module in (_jobs, segment):
        for kind in ("show_error", "show_info"):
            monkeypatch.setattr(
                module, kind, lambda t, _k=kind: got.append((_k, str(t)))
            )
    return got


def test_paint_train_predict_and_retrain_in_place(
    make_napari_viewer, qtbot, tiny_model_dir, messages
):
    STORE.models.clear()
    STORE.load(tiny_model_dir, device="cpu")
    viewer = make_napari_viewer()
    sim = dividing_cells(n_frames=6, shape=(64, 64), n_cells=8, seed=2)
    viewer.add_image(sim.video, name="cells", scale=SCALE)
    w = SegmentWidget(viewer)
    w.start()
    assert messages[-1][0] == "show_error" and "No training labels" in messages[-1][1]

    paint = w.add_labels_layer()
    assert paint.name == "cells division labels" and paint.data.shape == (6, 64, 64)
    assert tuple(paint.scale) == SCALE and paint.selected_label == 2
    labels = np.ones_like(paint.data)
    labels[sim.division_mask() > 0] = 2
    labels[3:] = 0  # frames 3-5 unlabelled
    paint.data = labels
    w.epochs.value, w.frames.value = 2, segment.WHOLE
    w.start()
    qtbot.waitUntil(lambda: w.runner.state == "idle", timeout=180_000)
    out = viewer.layers["cells divisions"]
    assert out.data.shape == (6, 64, 64) and tuple(out.scale) == SCALE
    assert messages[-1][0] == "show_info" and "dividing-cell objects" in messages[-1][1]
    first = w.segmenter

    w.probability.value = True
    w.start()
    qtbot.waitUntil(lambda: w.runner.state == "idle", timeout=180_000)
    assert w.segmenter is first  # same settings: cached features are reused
    assert viewer.layers["cells divisions"] is out
    assert viewer.layers["cells division probability"].data.shape == (6, 64, 64)
    assert len(viewer.layers) == 4
