"""Segment divisions widget: paint labels, train and predict in a worker, labels layer out."""

from __future__ import annotations

import numpy as np

from napari_tarrow.io.sample_data import dividing_cells
from napari_tarrow.widgets import SegmentWidget, segment
from napari_tarrow.widgets._models import store_of

SCALE = (1.0, 0.5, 0.5)


def test_paint_train_predict_and_retrain_in_place(
    make_napari_viewer, qtbot, tiny_model_dir, messages
):
    viewer = make_napari_viewer()
    store_of(viewer).load(tiny_model_dir, device="cpu")
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


def test_classify_points_of_two_states(
    make_napari_viewer, qtbot, tiny_model_dir, messages
):
    from napari_tarrow.widgets import ClassifyWidget

    viewer = make_napari_viewer()
    store_of(viewer).load(tiny_model_dir, device="cpu")
    sim = dividing_cells(n_frames=6, shape=(64, 64), n_cells=8, seed=2)
    viewer.add_image(sim.video, name="cells", scale=SCALE)
    w = ClassifyWidget(viewer)
    w.start()
    assert messages[-1][0] == "show_error" and "No points" in messages[-1][1]

    points = w.add_points_layer()
    assert points.name == "cells cell states" and tuple(points.scale) == SCALE
    for label, where in (
        ("dividing", [(1, 20, 20), (2, 30, 40)]),
        ("interphase", [(1, 50, 10), (3, 10, 50)]),
    ):
        w.label.value = label
        for p in where:
            points.add(np.array(p, float))
    w.label.value = ""
    points.add(np.array((2, 25, 25), float))  # no class: to be predicted
    assert list(points.features["class"]) == ["dividing"] * 2 + ["interphase"] * 2 + [
        ""
    ]
    points.selected_data = {4}
    w.label.value = "interphase"
    w.assign_selected()
    assert points.features["class"][4] == "interphase"
    points.features.loc[4, "class"] = ""

    w.start()
    qtbot.waitUntil(lambda: w.runner.state == "idle", timeout=120_000)
    assert messages[-1][0] == "show_info", messages
    assert set(points.features["predicted"]) <= {"dividing", "interphase"}
    assert len(points.features["confidence"]) == 5
    assert points.features["confidence"].between(0.5, 1.0).all()
