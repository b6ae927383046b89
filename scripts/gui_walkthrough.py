"""Walk through the napari plugin as a new user would, saving a screenshot at each step.

    xvfb-run -s "-screen 0 1600x1000x24" python scripts/gui_walkthrough.py [--out docs]

On the sample data from the plugin's menu entry: docks all five widgets in a 1280x800
window (they must fit), estimates the training time, trains with the fast CPU preset and
its live preview, shows the model card, computes attribution maps for the whole video,
opens "How to read the maps", jumps to the top region, exports the features to OME-Zarr
(size shown, confirmation asked) with the principal-component view, and opens the store
lazily with napari's own reader. Prints each figure and how many top regions fall on the
simulator's true divisions. Screenshots: ``<out>/napari-tarrow.png`` (the README's main
picture) and ``<out>/walkthrough/NN-step.png``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication, QMessageBox, QWidget

from napari_tarrow.inference.regions import division_hits
from napari_tarrow.widgets import export as export_widget

WIDGETS = (
    "Train TAP model",
    "Attribution maps",
    "Export features",
    "Segment divisions",
    "Classify cell states",
)


def wait(runner, during: Callable[[], None] | None = None) -> float:
    """Keep the GUI responsive until the widget's job has ended; returns seconds."""
    t0 = time.perf_counter()
    while runner.state != "idle":
        QApplication.processEvents()
        if during is not None:
            during()
        time.sleep(0.02)
    return time.perf_counter() - t0


class Shots:
    """Numbered screenshots of the window, or of one dialog, under ``folder``."""

    def __init__(self, viewer: napari.Viewer, folder: Path) -> None:
        self.viewer, self.folder, self.n = viewer, folder, 0
        folder.mkdir(parents=True, exist_ok=True)

    def window(self, name: str) -> Path:
        """Save the whole window, docked widgets included."""
        for _ in range(5):
            QApplication.processEvents()
        return self._save(
            name, lambda p: self.viewer.screenshot(p, canvas_only=False, flash=False)
        )

    def widget(self, name: str, widget: QWidget) -> Path:
        """Save one widget, a dialog for example."""
        QApplication.processEvents()
        return self._save(name, lambda p: widget.grab().save(p))

    def _save(self, name: str, save: Callable[[str], object]) -> Path:
        self.n += 1
        path = self.folder / f"{self.n:02d}-{name}.png"
        save(str(path))
        print(f"screenshot: {path}")
        return path


def main() -> None:
    """Run the walk-through and save the screenshots."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs"))
    p.add_argument("--epochs", type=int, default=None, help="override the preset")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tarrow-walkthrough-"))

    viewer = napari.Viewer(title="napari-tarrow")
    shots = Shots(viewer, a.out / "walkthrough")
    layer, truth = viewer.open_sample("napari-tarrow", "dividing_cells")
    docks = {}
    for name in WIDGETS:
        docks[name] = viewer.window.add_plugin_dock_widget("napari-tarrow", name)
    train_w, attr_w, export_w = (docks[n][1] for n in WIDGETS[:3])

    # 1. all five widgets on a laptop screen
    window = viewer.window._qt_window
    window.resize(1280, 800)
    QApplication.processEvents()
    need = window.minimumSizeHint()
    print(
        f"window with all five widgets: {window.width()}x{window.height()}, "
        f"needs at least {need.width()}x{need.height()}"
    )
    shots.window("all-widgets-1280x800")
    for name in WIDGETS[3:]:
        viewer.window.remove_dock_widget(docks[name][0])
    window.resize(1600, 1000)
    dock = {name: docks[name][0] for name in WIDGETS[:3]}
    for name in WIDGETS[1:3]:  # tabs from here on: each widget gets the full height
        window.tabifyDockWidget(dock[WIDGETS[0]], dock[name])
    dock["Train TAP model"].raise_()

    # 2. time estimate, then training with the live preview
    train_w.out.value = work / "model"
    if a.epochs:
        train_w.epochs.value = a.epochs
    train_w.estimate.clicked.emit()
    wait(train_w.runner)
    print(f"estimate: {train_w.estimate_info.value}")
    viewer.dims.set_current_step(0, len(layer.data) // 2)  # the preview's frame
    shot = []

    def during_training() -> None:
        if not shot and train_w._epoch >= 3:
            shot.append(shots.window("training-preview"))

    train_w.buttons.run.clicked.emit()
    print(
        f"training ({train_w.preset.value}): {wait(train_w.runner, during_training):.0f} s"
    )
    acc = train_w.plot.series.get("val_acc", [])
    print(f"validation accuracy per epoch: {[round(v, 2) for _, v in acc]}")
    print(f"{train_w.preview_info.value}; model card: {attr_w.model.card.value}")
    viewer.layers[
        f"{layer.name} attribution preview"
    ].visible = False  # the maps follow

    # 3. attribution maps of the whole video, the help, the top region
    dock["Attribution maps"].raise_()
    attr_w.mode.value = "whole video"
    attr_w.buttons.run.clicked.emit()
    print(f"attribution, {len(layer.data) - 1} pairs: {wait(attr_w.runner):.0f} s")
    box = attr_w.explain()
    shots.widget("how-to-read-the-maps", box)
    box.close()
    daughters = np.asarray(truth.features["daughters_frame"], float)
    table, divisions = attr_w.rows, np.column_stack([daughters, truth.data[:, 1:]])
    hits = division_hits(table[:, :3], divisions, radius=12, frame_tolerance=2)
    print(
        f"top regions on a true division (12 px, ±2 frames): {hits.mean():.2f} "
        f"of {len(table)}; the true divisions cover "
        f"{_chance(divisions, layer.data.shape):.2f} of the video"
    )
    inside = np.all(
        (table[:, 1:3] > 24) & (table[:, 1:3] < np.array(layer.data.shape[1:]) - 24),
        axis=1,
    )
    best = int(np.argmax(np.where(inside, table[:, 3], -np.inf)))  # off the border
    attr_w.table.selectRow(best)
    attr_w.go_to_row(best)
    viewer.scene.camera.zoom = 1.6
    shots.window("attribution-top-region")
    main_shot = a.out / "napari-tarrow.png"
    viewer.screenshot(str(main_shot), canvas_only=False, flash=False)
    print(f"screenshot: {main_shot}")

    # 4. export to OME-Zarr: the size before, the confirmation, the PCA view
    dock["Export features"].raise_()
    export_w.format.value = next(
        k for k, v in export_widget.FORMATS.items() if v[0] == "zarr"
    )
    export_w.path.value = work / "features.zarr"
    export_w.preview.value = True
    print(f"export size: {export_w.size.value}")
    export_widget.CONFIRM_BYTES = (
        0  # the sample is small: ask anyway, to show the question
    )

    def confirm(question: str) -> bool:
        ask = QMessageBox(
            QMessageBox.Icon.Question,
            "Export features",
            question,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        )
        ask.show()
        shots.widget("export-confirmation", ask)
        ask.close()
        return True

    export_w.confirm = confirm
    export_w.buttons.run.clicked.emit()
    print(f"feature export to OME-Zarr + PCA view: {wait(export_w.runner):.0f} s")
    viewer.layers[f"{layer.name} attribution"].visible = False
    viewer.reset_view()
    shots.window("export-pca-view")
    viewer.layers[f"{layer.name} features PCA"].visible = False
    (store,) = viewer.open(str(work / "features.zarr"), plugin="napari")
    data = store.data
    print(
        f"opened: {store.name} {data.shape}, {type(data).__module__}.{type(data).__name__}"
    )
    viewer.close()


def _chance(divisions: np.ndarray, shape: tuple[int, ...]) -> float:
    """Fraction of random points that would hit a division (same radius and tolerance)."""
    rng = np.random.default_rng(0)
    t = rng.integers(0, shape[0] - 1, 5000)
    pts = np.column_stack([t, rng.random(5000) * shape[1], rng.random(5000) * shape[2]])
    return float(division_hits(pts, divisions, radius=12, frame_tolerance=2).mean())


if __name__ == "__main__":
    main()
