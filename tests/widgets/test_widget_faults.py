"""Faults in napari: closed during training, broken model folders, a long lazy video."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_tarrow.config import SCHEMA_VERSION
from napari_tarrow.io.lock import lock_path
from napari_tarrow.model import TapModel
from napari_tarrow.widgets import AttributionWidget, TrainWidget, attribution
from napari_tarrow.widgets._models import ModelPicker, ModelStore, store_of

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CLOSE_DURING_TRAINING = textwrap.dedent(
    """
    import sys
    import numpy as np
    import napari
    from qtpy.QtWidgets import QApplication
    from napari_tarrow.widgets import TrainWidget

    viewer = napari.Viewer(show=False)
    rng = np.random.default_rng(0)
    viewer.add_image(rng.random((8, 64, 64), dtype=np.float32), name="cells")
    w = TrainWidget(viewer)
    w.preset.value = "fast (CPU, minutes)"
    w.size.value, w.features.value, w.batch.value = 32, 8, 8
    w.epochs.value, w.samples.value = 5, 80_000  # epoch 1 takes minutes
    w.device.value = "cpu"
    w.out.value = sys.argv[1]
    w.buttons.run.clicked.emit()
    closed = []

    def close_on_first_step(event):  # the user closes napari during epoch 1
        if not closed:
            closed.append(1)
            viewer.close()
            QApplication.instance().quit()  # as when napari's last window closes

    w.runner.worker.yielded.connect(close_on_first_step)
    napari.run()
    print("napari closed", flush=True)
    """
)


@pytest.mark.threaded
def test_closing_napari_during_training_leaves_no_folder_or_a_loadable_one(
    tmp_path,
) -> None:
    script, out = tmp_path / "close.py", tmp_path / "model"
    script.write_text(CLOSE_DURING_TRAINING)
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    done = subprocess.run(
        [sys.executable, str(script), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "OMP_NUM_THREADS": "1"},
    )
    assert "napari closed" in done.stdout, done.stderr[-3000:]
    # the process has ended with the worker mid-epoch: nothing half-written stays
    assert not out.exists() or TapModel.from_folder(out), sorted(os.listdir(out))


@pytest.fixture
def picker(messages):
    return ModelPicker(ModelStore())


def _broken(tmp_path: Path, source: Path, kind: str) -> Path:
    folder = shutil.copytree(source, tmp_path / kind)
    config = json.loads((folder / "config.json").read_text())
    if kind == "wrong-type":
        config["train"]["lr"] = "fast"
    elif kind == "future-schema":
        config["schema_version"] = SCHEMA_VERSION + 1
    (folder / "config.json").write_text(json.dumps(config))
    if kind == "truncated-weights":
        for name in ("weights_best.safetensors", "weights_last.safetensors"):
            (folder / name).write_bytes((folder / name).read_bytes()[:300])
    if kind == "pickle-only":
        for p in folder.iterdir():
            p.unlink()
        torch.save(torch.nn.Linear(2, 2), folder / "model_full.pt")
    return folder


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("wrong-type", "train.lr='fast' is invalid: expected a number"),
        ("future-schema", "upgrade it"),
        ("truncated-weights", "is corrupt"),
        ("pickle-only", "never loads (unpickling can run any code)"),
    ],
)
def test_a_broken_model_folder_gives_one_notification(
    tmp_path, tiny_model_dir, picker, messages, kind, words
) -> None:
    picker.load(_broken(tmp_path, tiny_model_dir, kind))
    assert len(messages) == 1, messages
    level, text = messages[0]
    assert level == "show_error" and words in text and "\n" not in text
    assert not picker.store.models


def test_attribution_of_a_long_lazy_video_is_kept_on_disk(
    make_napari_viewer, qtbot, tiny_model_dir, messages
) -> None:
    da = pytest.importorskip("dask.array")
    shape = (200, 128, 128)
    frames = da.random.RandomState(0).random(shape, chunks=(1, 128, 128))
    viewer = make_napari_viewer()
    viewer.add_image(frames.astype(np.float32), name="long")
    store_of(viewer).load(tiny_model_dir, device="cpu")
    w = AttributionWidget(viewer)
    w.mode.value = attribution.WHOLE
    w.top_k.value = 1
    w.buttons.run.clicked.emit()
    qtbot.waitUntil(lambda: w.runner.state == "idle", timeout=300_000)
    assert [kind for kind, _ in messages] == [], messages
    maps = viewer.layers["long attribution"]
    assert maps.data.shape == shape
    whole = 4 * np.prod(shape)  # the maps as one float32 array: 13 MB
    held = [  # what the widget keeps in memory
        (name, value.nbytes)
        for name, value in vars(w).items()
        if isinstance(value, np.ndarray) and value.nbytes > whole / 8
    ]
    assert not isinstance(maps.data, np.ndarray) and not held, held
    viewer.dims.set_point(0, 150)  # napari reads the frame on screen from the file
    shown = np.asarray(maps.data[150])
    assert shown.shape == shape[1:] and shown.max() > 0
    assert 0 < maps.contrast_limits[1] <= w._maps.peak
    assert not np.asarray(maps.data[199]).any()  # the last frame has no pair
    assert len(w.rows) == 199 and w.table.rowCount() == 199  # shown at the end


@pytest.mark.parametrize("ending", ["stop", "error"])
@pytest.mark.threaded
def test_stop_or_error_before_the_first_save_leaves_no_lock_and_no_broken_folder(
    make_napari_viewer, qtbot, tmp_path, messages, ending
) -> None:
    viewer = make_napari_viewer()
    video = np.random.default_rng(0).random((8, 64, 64), dtype=np.float32)
    if ending == "error":
        video[5, 3, 3] = np.inf  # found when the frames are read, after the lock
    viewer.add_image(video, name="cells")
    w = TrainWidget(viewer)
    w.preset.value = "fast (CPU, minutes)"
    w.size.value, w.features.value, w.batch.value = 32, 8, 8
    w.epochs.value, w.samples.value = 5, 80_000  # epoch 1 takes minutes
    w.device.value, w.out.value = "cpu", tmp_path / "model"
    w.buttons.run.clicked.emit()
    if ending == "stop":
        w.buttons.stop.clicked.emit()
    qtbot.waitUntil(lambda: w.runner.state == "idle", timeout=120_000)
    out = tmp_path / "model"
    assert not out.exists() or TapModel.from_folder(out)
    assert not lock_path(out).exists()
    kind, text = messages[-1]
    if ending == "error":
        assert kind == "show_error" and "infinite values" in text
    else:
        assert kind == "show_info" and "stopped" in text
