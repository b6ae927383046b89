"""All widgets docked at once fit a 1280x800 screen: their contents scroll."""

from __future__ import annotations

from qtpy.QtWidgets import QApplication

from napari_tarrow.widgets import (
    AttributionWidget,
    ClassifyWidget,
    ExportWidget,
    SegmentWidget,
    TrainWidget,
)

SCREEN = (1280, 800)


def test_all_widgets_docked_fit_a_laptop_screen(make_napari_viewer) -> None:
    viewer = make_napari_viewer(show=True)
    for cls in (
        TrainWidget,
        AttributionWidget,
        ExportWidget,
        SegmentWidget,
        ClassifyWidget,
    ):
        viewer.window.add_dock_widget(cls(viewer), area="right", name=cls.__name__)
    QApplication.processEvents()
    needed = viewer.window._qt_window.minimumSizeHint()
    assert needed.width() <= SCREEN[0] and needed.height() <= SCREEN[1], (
        needed.width(),
        needed.height(),
    )
