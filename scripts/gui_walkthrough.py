"""Walk through the napari plugin as a new user would, then save a screenshot for the docs.

    xvfb-run -s "-screen 0 1600x1000x24" python scripts/gui_walkthrough.py [--out docs/napari-tarrow.png]

Opens the sample data from the plugin's menu entry, docks the three widgets from the
manifest, estimates the training time, trains with the fast CPU preset (with the live
preview), computes attribution maps for the whole
video, exports the features with the principal-component view, jumps to the top
region, and prints how many top regions fall on the simulator's true divisions.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from napari_tarrow.regions import division_hits


def wait(runner) -> float:
    """Keep the GUI responsive until the widget's job has ended; returns seconds."""
    t0 = time.perf_counter()
    while runner.state != "idle":
        QApplication.processEvents()
        time.sleep(0.02)
    return time.perf_counter() - t0


def main() -> None:
    """Run the walk-through and save the screenshot."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/napari-tarrow.png"))
    p.add_argument("--epochs", type=int, default=None, help="override the preset")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tarrow-walkthrough-"))

    viewer = napari.Viewer(title="napari-tarrow")
    viewer.window.resize(1600, 1000)
    layer, truth = viewer.open_sample("napari-tarrow", "dividing_cells")
    _, train_w = viewer.window.add_plugin_dock_widget(
        "napari-tarrow", "Train TAP model"
    )
    _, attr_w = viewer.window.add_plugin_dock_widget(
        "napari-tarrow", "Attribution maps"
    )
    _, export_w = viewer.window.add_plugin_dock_widget(
        "napari-tarrow", "Export features"
    )

    train_w.out.value = work / "model"
    if a.epochs:
        train_w.epochs.value = a.epochs
    train_w.estimate.clicked.emit()
    wait(train_w.runner)
    print(f"estimate: {train_w.estimate_info.value}")
    train_w.buttons.run.clicked.emit()
    print(f"training ({train_w.preset.value}): {wait(train_w.runner):.0f} s")
    loss = train_w.plot.series.get("val_acc", [])
    print(f"validation accuracy per epoch: {[round(v, 2) for _, v in loss]}")
    print(f"{train_w.preview_info.value}; model card: {attr_w.model.card.value}")
    viewer.layers[
        f"{layer.name} attribution preview"
    ].visible = False  # the maps follow

    attr_w.mode.value = "whole video"
    attr_w.buttons.run.clicked.emit()
    print(f"attribution, {len(layer.data) - 1} pairs: {wait(attr_w.runner):.0f} s")
    export_w.path.value = work / "features.tif"
    export_w.preview.value = True
    export_w.buttons.run.clicked.emit()
    print(f"feature export + PCA view: {wait(export_w.runner):.0f} s")
    viewer.layers[f"{layer.name} features PCA"].visible = False

    # the layer sits on the maps' frames; division_hits takes the daughters' frame
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
    best = int(
        np.argmax(np.where(inside, table[:, 3], -np.inf))
    )  # a region off the border
    attr_w.table.selectRow(best)
    attr_w.go_to_row(best)
    viewer.scene.camera.zoom = 1.6
    QApplication.processEvents()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(a.out), canvas_only=False, flash=False)
    print(f"screenshot: {a.out}")
    viewer.close()


def _chance(divisions: np.ndarray, shape: tuple[int, ...]) -> float:
    """Fraction of random points that would hit a division (same radius and tolerance)."""
    rng = np.random.default_rng(0)
    t = rng.integers(0, shape[0] - 1, 5000)
    pts = np.column_stack([t, rng.random(5000) * shape[1], rng.random(5000) * shape[2]])
    return float(division_hits(pts, divisions, radius=12, frame_tolerance=2).mean())


if __name__ == "__main__":
    main()
