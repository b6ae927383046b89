"""The napari widgets driven as a user would: layers in, jobs in workers, layers and files out."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_tarrow.io.sample_data import TRUTH_LAYER, dividing_cells
from napari_tarrow.model import TapModel
from napari_tarrow.widgets import (
    AttributionWidget,
    ExportWidget,
    TrainWidget,
    attribution,
)
from napari_tarrow.widgets._models import store_of
from napari_tarrow.widgets.train import NEW_MODEL

GEOMETRY = {"scale": (2.0, 0.5, 0.5), "translate": (0.0, 10.0, -4.0)}


@pytest.fixture
def viewer(make_napari_viewer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A viewer with a small synthetic time-lapse ``cells`` (scaled and translated)."""
    monkeypatch.setenv("HOME", str(tmp_path))  # default model folders go there
    v = make_napari_viewer()
    sim = dividing_cells(n_frames=8, shape=(64, 64), n_cells=6, seed=1)
    v.add_image(sim.video, name="cells", **GEOMETRY)
    return v


@pytest.fixture
def loaded_model(viewer, tiny_model_dir: Path) -> TapModel:
    """The tiny test model, added to the viewer's model store."""
    store = store_of(viewer)
    store.load(tiny_model_dir, device="cpu")
    return next(iter(store.models.values()))


def tiny_settings(w: TrainWidget, out: Path, epochs: int = 2) -> None:
    w.preset.value = "fast (CPU, minutes)"
    w.size.value, w.features.value, w.batch.value = 32, 8, 8
    w.epochs.value, w.samples.value = epochs, 32
    w.device.value = "cpu"
    w.out.value = out


def wait_idle(qtbot, runner, timeout: int = 180_000) -> None:
    qtbot.waitUntil(lambda: runner.state == "idle", timeout=timeout)


@pytest.mark.threaded
def test_training_runs_to_completion_and_plots(viewer, qtbot, tmp_path, messages):
    w = TrainWidget(viewer)
    tiny_settings(w, tmp_path / "model")
    w.buttons.run.clicked.emit()
    assert w.runner.state == "running"
    assert not w.buttons.run.enabled and w.buttons.stop.enabled
    wait_idle(qtbot, w.runner)
    assert (tmp_path / "model" / "config.json").exists()
    assert (tmp_path / "model" / "weights_best.safetensors").exists()
    assert [x for x, _ in w.plot.series["loss"]] == [1.0, 2.0]
    assert len(w.plot.series["val_acc"]) == 2
    assert w.buttons.run.enabled and not w.buttons.stop.enabled
    assert [kind for kind, _ in messages] == ["show_info"], messages
    name = f"{tmp_path.name}/model"  # a folder named "model" is shown with its parent
    assert store_of(viewer).models[name].folder == tmp_path / "model"
    card = AttributionWidget(viewer).model.card.value
    assert card.startswith(f"{name}: 2 epochs, 64 samples, validation accuracy 0.")
    assert card.endswith("Warning: near-untrained: 64 samples seen; train longer")
    assert w.out.value != tmp_path / "model"  # the next run goes to a new folder,
    assert w.out.value.parent == tmp_path  # beside the one the user chose


@pytest.mark.threaded
def test_training_previews_the_map_of_the_frame_under_the_slider(
    viewer, qtbot, tmp_path
):
    w = TrainWidget(viewer)
    tiny_settings(w, tmp_path / "run")
    w.preview_budget = float("inf")  # every epoch: tiny epochs cost less than a map
    viewer.dims.set_point(0, 3 * GEOMETRY["scale"][0])  # frame 3 of the video
    w.buttons.run.clicked.emit()
    viewer.dims.set_point(0, 5 * GEOMETRY["scale"][0])  # moved while training
    wait_idle(qtbot, w.runner)
    maps = viewer.layers["cells attribution preview"]
    assert maps.data.shape == viewer.layers["cells"].data.shape
    assert tuple(maps.scale) == GEOMETRY["scale"] and maps.blending == "additive"
    assert [t for t in range(8) if maps.data[t].any()] == [5]  # the newest map only
    assert w.preview_info.value.startswith("preview: frame 5, epoch 2 (")
    assert maps.contrast_limits[1] > 0


@pytest.mark.threaded
def test_stop_returns_to_idle_and_leaves_a_loadable_model(viewer, qtbot, tmp_path):
    w = TrainWidget(viewer)
    tiny_settings(w, tmp_path / "model", epochs=1000)
    w.buttons.run.clicked.emit()
    qtbot.waitUntil(
        lambda: (tmp_path / "model" / "config.json").exists(), timeout=30_000
    )
    w.buttons.stop.clicked.emit()
    assert w.runner.state == "stopping"
    wait_idle(qtbot, w.runner, timeout=60_000)
    model = TapModel.from_folder(tmp_path / "model")
    assert model.config.train.epochs == 1000


@pytest.mark.threaded
def test_closing_the_window_stops_training(viewer, qtbot, tmp_path):
    from qtpy.QtCore import QEvent, QObject
    from qtpy.QtGui import QCloseEvent
    from qtpy.QtWidgets import QApplication

    class KeepOpen(QObject):  # runs after the widget's filter; napari keeps its window
        def eventFilter(self, obj, event):
            return event.type() == QEvent.Type.Close

    w = TrainWidget(viewer)
    viewer.window.add_dock_widget(w)
    window = w.window()
    keep = KeepOpen()
    window.installEventFilter(keep)
    tiny_settings(w, tmp_path / "model", epochs=1000)
    w.buttons.run.clicked.emit()
    QApplication.sendEvent(window, QCloseEvent())
    assert w.runner.stop_requested
    wait_idle(qtbot, w.runner, timeout=60_000)
    window.removeEventFilter(keep)


def test_existing_model_folder_is_never_overwritten(viewer, tiny_model_dir, messages):
    w = TrainWidget(viewer)
    w.out.value = tiny_model_dir
    w.buttons.run.clicked.emit()
    assert w.runner.state == "idle"
    assert messages[0][0] == "show_error" and "already holds a model" in messages[0][1]


@pytest.mark.parametrize(
    ("data", "kwargs"),
    [(np.zeros((32, 32)), {}), (np.zeros((4, 32, 32, 3), np.uint8), {"rgb": True})],
    ids=["2d", "rgb"],
)
def test_2d_and_rgb_layers_are_not_offered_and_the_message_says_why(
    make_napari_viewer, messages, data, kwargs
):
    viewer = make_napari_viewer()
    viewer.add_image(data, name="not a video", **kwargs)
    w = TrainWidget(viewer)
    assert viewer.layers["not a video"] not in w.video.layer.choices
    assert w.video.layer.value is None
    w.buttons.run.clicked.emit()
    errors = [text for kind, text in messages if kind == "show_error"]
    assert len(errors) == 1 and "2D and RGB layers are not listed" in errors[0]


@pytest.mark.parametrize(
    ("data", "kwargs", "expected"),
    [
        (np.zeros((1, 64, 64), np.float32), {}, "single frame"),
        (np.full((6, 64, 64), np.nan, np.float32), {}, "NaN"),
    ],
    ids=["too-few-frames", "nan"],
)
def test_bad_video_gives_a_message_and_stays_idle(
    viewer, qtbot, tmp_path, messages, data, kwargs, expected
):
    viewer.add_image(data, name="bad", **kwargs)
    w = TrainWidget(viewer)
    tiny_settings(w, tmp_path / "model")
    w.video.layer.value = viewer.layers["bad"]
    w.buttons.run.clicked.emit()
    wait_idle(qtbot, w.runner)
    errors = [text for kind, text in messages if kind == "show_error"]
    assert len(errors) == 1 and expected in errors[0], messages


def test_attribution_without_a_model_says_so(viewer, messages):
    w = AttributionWidget(viewer)
    w.buttons.run.clicked.emit()
    assert w.runner.state == "idle"
    assert messages == [
        (
            "show_error",
            "No model: train one (Train TAP model) or load a model folder (Load model…).",
        )
    ]


def test_attribution_current_frame_then_whole_video(viewer, qtbot, loaded_model):
    w = AttributionWidget(viewer)
    assert w.model.model is loaded_model
    w.top_k.value = 3
    viewer.dims.set_point(0, 3 * GEOMETRY["scale"][0])  # frame 3 of the video
    w.buttons.run.clicked.emit()
    wait_idle(qtbot, w.runner)
    maps = viewer.layers["cells attribution"]
    points = viewer.layers["cells top regions"]
    assert maps.data.shape == viewer.layers["cells"].data.shape
    assert tuple(maps.scale) == GEOMETRY["scale"]
    assert tuple(maps.translate) == GEOMETRY["translate"]
    assert tuple(points.scale) == GEOMETRY["scale"]
    assert maps.blending == "additive"
    assert [t for t in range(8) if maps.data[t].any()] == [3]
    assert 0 < len(points.data) <= 3
    assert set(points.features["frame"]) == {3}
    assert w.table.rowCount() == len(points.data)

    w.mode.value = attribution.WHOLE
    w.buttons.run.clicked.emit()
    wait_idle(qtbot, w.runner)
    assert viewer.layers["cells attribution"] is maps  # updated in place
    assert [t for t in range(8) if maps.data[t].any()] == list(range(7))
    assert set(points.features["frame"]) == set(range(7))
    assert len(viewer.layers) == 3
    # contrast from the maps' own 99.5th percentiles: one hot pixel does not dim the rest
    bright = max(np.percentile(maps.data[t], 99.5) for t in range(7))
    assert maps.contrast_limits[1] == pytest.approx(bright, rel=1e-5)
    assert bright < max(maps.data[t].max() for t in range(7))

    row = 4
    w.go_to_row(row)
    yellow, cyan = [1.0, 1.0, 0.0, 1.0], [0.0, 1.0, 1.0, 1.0]
    assert points.border_color[row].tolist() == yellow  # the chosen region stands out
    others = np.delete(points.border_color, row, axis=0)
    assert len(others) and (others == cyan).all()
    t, y, x = points.data[row]
    assert viewer.dims.point[0] == pytest.approx(t * 2.0)
    assert tuple(getattr(viewer, "scene", viewer).camera.center[-2:]) == pytest.approx(
        (10 + y / 2, -4 + x / 2)
    )


def test_export_writes_tiff_sidecar_and_principal_components(
    viewer, qtbot, tmp_path, loaded_model, messages
):
    w = ExportWidget(viewer)
    assert w.path.value == tmp_path / "cells_tap_features.tif"  # HOME, no source file
    w.path.value = tmp_path / "features.tif"
    w.preview.value = True
    w.buttons.run.clicked.emit()
    wait_idle(qtbot, w.runner)
    z = tifffile.imread(tmp_path / "features.tif")
    assert z.shape == (8, 8, 64, 64) and z.dtype == np.float16
    side = json.loads((tmp_path / "features.tif.json").read_text())
    assert side["axes"] == "TCYX" and side["input"] == "cells"
    pca = viewer.layers["cells features PCA"]
    assert pca.rgb and pca.data.shape == (8, 64, 64, 3)
    assert tuple(pca.scale) == GEOMETRY["scale"]
    assert messages[-1][0] == "show_info"


def test_export_to_ome_zarr_opens_lazily_in_napari(
    viewer, qtbot, tmp_path, loaded_model, messages
):
    pytest.importorskip("zarr", minversion="3")
    w = ExportWidget(viewer)
    w.path.value = tmp_path / "my features.tif"
    w.format.value = "OME-Zarr"  # the chosen name stays, its suffix follows
    assert w.path.value == tmp_path / "my features.zarr"
    assert w.size.value.startswith("about 524.3 kB (8 frames x 8 features x 64x64")
    assert "less compressed" in w.size.value
    w.preview.value = True
    w.buttons.run.clicked.emit()
    wait_idle(qtbot, w.runner)
    store = tmp_path / "my features.zarr"
    assert messages[-1] == (
        "show_info",
        f"Features written to {store} (open it in napari: File > Open Folder).",
    )
    assert viewer.layers["cells features PCA"].data.shape == (8, 64, 64, 3)
    (layer,) = viewer.open(str(store), plugin="napari")  # napari's own reader
    data = layer.data[0] if layer.multiscale else layer.data
    assert data.shape == (8, 8, 64, 64) and not isinstance(data, np.ndarray)  # lazy


def test_export_to_ome_zarr_without_zarr_says_how_to_get_it(
    viewer, tmp_path, loaded_model, messages, monkeypatch
):
    monkeypatch.setitem(sys.modules, "zarr", None)
    w = ExportWidget(viewer)
    w.format.value = "OME-Zarr"
    w.path.value = tmp_path / "f.zarr"
    w.buttons.run.clicked.emit()
    assert w.runner.state == "idle" and not (tmp_path / "f.zarr").exists()
    assert messages[-1][0] == "show_error" and "pip install" in messages[-1][1]


def test_export_shows_its_size_and_asks_before_a_big_one(
    viewer, qtbot, tmp_path, loaded_model, monkeypatch
):
    from napari_tarrow.widgets import export

    w = ExportWidget(viewer)
    w.path.value = tmp_path / "features.tif"
    assert w.size.value.startswith(
        "about 524.3 kB (8 frames x 8 features x 64x64, float16)"
    )
    assert w.size.value.endswith(" free there")
    w.dtype.value = "float32"
    assert w.size.value.startswith("about 1.0 MB (8 frames")
    asked = []
    monkeypatch.setattr(export, "CONFIRM_BYTES", 1_000_000)
    monkeypatch.setattr(w, "confirm", lambda q: asked.append(q) or False)
    w.buttons.run.clicked.emit()  # above the threshold, declined: nothing starts
    assert w.runner.state == "idle" and not (tmp_path / "features.tif").exists()
    assert len(asked) == 1 and "will take about 1.0 MB" in asked[0]
    monkeypatch.setattr(w, "confirm", lambda q: asked.append(q) or True)
    w.buttons.run.clicked.emit()
    wait_idle(qtbot, w.runner)
    assert tifffile.imread(tmp_path / "features.tif").dtype == np.float32


@pytest.mark.threaded
def test_a_second_start_while_running_is_refused(
    viewer, qtbot, tmp_path, loaded_model, messages
):
    w = ExportWidget(viewer)
    w.path.value = tmp_path / "features.tif"
    w.runner.start(
        lambda stop: iter(())
    )  # occupy the runner: a second start is refused
    w.buttons.run.clicked.emit()
    wait_idle(qtbot, w.runner)
    assert not (tmp_path / "features.tif").exists()
    assert ("show_warning", "A job is already running: stop it first.") in messages


def test_screenshot_of_video_and_attribution_is_not_black(viewer, qtbot, loaded_model):
    w = AttributionWidget(viewer)
    w.mode.value = attribution.WHOLE
    w.buttons.run.clicked.emit()
    wait_idle(qtbot, w.runner)
    viewer.dims.set_point(0, 2 * GEOMETRY["scale"][0])
    viewer.show()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot.ndim == 3 and shot[..., :3].std() > 5
    without = viewer.layers["cells attribution"]
    without.visible = False
    assert np.abs(viewer.screenshot(canvas_only=True, flash=False) - shot).max() > 0


def test_load_model_plots_its_training_log(viewer, tiny_model_dir, tmp_path, messages):
    import shutil

    folder = shutil.copytree(tiny_model_dir, tmp_path / "tiny")
    with open(folder / "metrics.jsonl", "a") as log:
        log.write('{"epoch": 1, "loss": 0.6')  # a run killed mid-write
    w = TrainWidget(viewer)
    w.load(folder)
    assert len(w.plot.series["loss"]) == 1
    assert "tiny" in store_of(viewer).models
    w.load(tiny_model_dir.parent / "missing")
    assert messages[-1][0] == "show_error" and "does not exist" in messages[-1][1]


def test_time_axis_of_a_4d_layer(viewer, qtbot, loaded_model):
    video = viewer.layers["cells"].data
    viewer.add_image(
        np.stack([video, video[::-1]], axis=1), name="tcyx"
    )  # (T, C, Y, X)
    w = AttributionWidget(viewer)
    w.video.layer.value = viewer.layers["tcyx"]
    assert not w.video.time_axis.native.isHidden()
    # the sliders as napari labels them, with their lengths
    assert list(w.video.time_axis.choices) == [0, 1]
    texts = [w.video.time_axis.native.itemText(i) for i in range(2)]
    assert texts == ["-4 (8 steps)", "-3 (2 steps)"]
    assert w.video.video().shape == video.shape
    w.video.time_axis.value = 1
    assert w.video.video().shape == (2, 64, 64)
    viewer.dims.axis_labels = ("c", "t", "y", "x")  # an axis named t is chosen
    assert w.video.time_axis.value == 1
    assert w.video.time_axis.native.itemText(1) == "t (2 steps)"
    w.video.layer.value = viewer.layers["cells"]  # T, Y, X: nothing to choose
    assert w.video.time_axis.native.isHidden() and w.video.time_axis.value == 0


def test_sample_data_and_writer(make_napari_viewer, tmp_path):
    v = make_napari_viewer()
    layer, truth = v.open_sample("napari-tarrow", "dividing_cells")
    assert layer.data.shape == (12, 256, 256)
    assert truth.name == TRUTH_LAYER and truth.data.shape[1] == 3
    layer.data = layer.data[:3]
    (path,) = layer.save(str(tmp_path / "maps.tif"), plugin="napari-tarrow")
    np.testing.assert_array_equal(tifffile.imread(path), layer.data.astype(np.float32))
    assert json.loads(Path(f"{path}.json").read_text())["axes"] == "TYX"


@pytest.mark.parametrize("outcome", ["done", "bad input", "bug"])
def test_every_job_gives_the_cpu_heap_back(monkeypatch, outcome) -> None:
    # CPU jobs keep freed memory in the heap for speed; napari lives on after them
    from napari_tarrow.errors import VideoError
    from napari_tarrow.events import Done
    from napari_tarrow.widgets import _jobs

    released: list[str] = []
    monkeypatch.setattr(_jobs, "release_cpu_heap", lambda: released.append(outcome))

    def job(stop):
        if outcome == "bad input":
            raise VideoError("one frame only")
        if outcome == "bug":
            raise RuntimeError("oops")
        yield Done(1)

    events = list(_jobs._guarded(job, lambda: False))
    assert isinstance(events[-1], Done if outcome == "done" else _jobs.Failed)
    assert released == [outcome]


def test_fine_tuning_a_loaded_model_keeps_its_architecture(
    viewer, qtbot, tmp_path, loaded_model, messages
):
    w = TrainWidget(viewer)
    tiny_settings(w, tmp_path / "tuned", epochs=1)
    assert w.start_from.value == NEW_MODEL and w.features.enabled
    w.features.value = 16
    w.start_from.value = "tiny"
    assert not w.features.enabled and w.features.value == 8  # the model's, locked
    w.preset.value = "paper (GPU, hours)"
    assert w.features.value == 8  # a preset does not change it either
    tiny_settings(w, tmp_path / "tuned", epochs=1)
    w.buttons.run.clicked.emit()
    wait_idle(qtbot, w.runner)
    assert [kind for kind, _ in messages] == ["show_info"], messages
    tuned = TapModel.from_folder(tmp_path / "tuned")
    assert tuned.config.model == loaded_model.config.model
    assert tuned.config.train.init_from == str(loaded_model.folder)
    assert set(w.start_from.choices) == {NEW_MODEL, "tiny", "tuned"}
    w.start_from.value = NEW_MODEL
    assert w.features.enabled


def test_deleted_widgets_stop_listening_to_the_model_store(viewer, tiny_model_dir):
    from qtpy.QtCore import QEvent
    from qtpy.QtWidgets import QApplication

    for w in (TrainWidget(viewer), AttributionWidget(viewer)):
        w.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    store_of(viewer).load(
        tiny_model_dir, device="cpu"
    )  # raised "wrapped C/C++ object ... deleted"


def test_the_time_estimate_times_a_few_steps(viewer, qtbot, tmp_path):
    w = TrainWidget(viewer)
    tiny_settings(w, tmp_path / "run", epochs=30)
    w.estimate.clicked.emit()
    wait_idle(qtbot, w.runner)
    text = w.estimate_info.value
    assert text.startswith("about ") and text.endswith(
        " on cpu (30 epochs x 32 samples; 3 steps timed)"
    )
    assert not (tmp_path / "run").exists()  # nothing written


def test_how_to_read_the_maps_opens_without_blocking(viewer, qtbot):
    w = AttributionWidget(viewer)
    box = w.explain()
    assert box.isVisible() and not box.isModal()
    assert "Map t belongs to the pair (t, t+Δt)" in box.text()
    assert "frame difference" in box.text()
    box.close()


def test_a_stopped_whole_video_attribution_shows_the_maps_it_made(
    viewer, qtbot, loaded_model, messages, monkeypatch
):
    job, asked = attribution.attribution_job, iter(range(1000))
    monkeypatch.setattr(  # Stop pressed once two pairs are done
        attribution,
        "attribution_job",
        lambda *a: job(*a[:-1], stop=lambda: next(asked) >= 2 or a[-1]()),
    )
    w = AttributionWidget(viewer)
    w.mode.value = attribution.WHOLE
    w.buttons.run.clicked.emit()
    wait_idle(qtbot, w.runner)
    maps = viewer.layers["cells attribution"]
    assert [t for t in range(8) if maps.data[t].any()] == [0, 1]
    assert set(viewer.layers["cells top regions"].features["frame"]) == {0, 1}
    assert ("show_info", "attribution stopped after 2 of 7 pairs") in messages


def test_each_viewer_has_its_own_models(make_napari_viewer, tiny_model_dir):
    first, second = make_napari_viewer(), make_napari_viewer()
    widgets = AttributionWidget(first), AttributionWidget(second)
    picker_1, picker_2 = (w.model for w in widgets)
    store_of(first).load(tiny_model_dir, device="cpu")
    assert picker_1.model is not None and picker_1.combo.value == "tiny"
    assert picker_2.model is None and not store_of(second).models
    assert store_of(first) is picker_1.store is store_of(first)


def test_without_threads_a_job_has_ended_when_the_click_returns(
    viewer, loaded_model, monkeypatch
):
    from napari_tarrow.widgets import _jobs

    monkeypatch.setenv(_jobs.NO_THREADS, "1")
    w = AttributionWidget(viewer)
    w.mode.value = attribution.WHOLE
    w.buttons.run.clicked.emit()  # no waiting: the job ran in this thread
    assert w.runner.state == "idle" and w.runner.worker is None
    maps = viewer.layers["cells attribution"]
    assert [t for t in range(8) if maps.data[t].any()] == list(range(7))
