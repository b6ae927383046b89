"""Classify cell states: a few points with a class each, a linear probe on TAP features, the rest.

Points live in ``<layer> cell states`` with a text feature ``class`` ("" = to be
predicted). The widget sets the class of new or selected points; after a run,
every point gets ``predicted`` and ``confidence`` features and is coloured by its
predicted class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from magicgui.widgets import Container, LineEdit, PushButton, SpinBox
from napari.layers import Points
from napari.utils.notifications import show_error, show_info

from ..downstream.classify import RADIUS, CellStateClassifier
from ..errors import TarrowError
from ..events import Done, Event, relay
from ..io.video import Video
from ._common import (
    LayerChoice,
    ModelVideoWidget,
    RunButtons,
    delta_box,
    scrolled_layout,
)
from ._layers import result_name, spatial_transform

CLASS = "class"


def classify_job(
    classifier: CellStateClassifier, video: Video, points: np.ndarray, classes: np.ndarray,
    stop: Callable[[], bool],
) -> Iterator[Event]:  # fmt: skip
    """Fit on the points with a class, then classify all points: Done(ClassPrediction)."""
    known = classes != ""
    yield from relay(classifier.fit(video, points[known], classes[known], stop))
    prediction = yield from relay(classifier.predict_proba(video, points, stop))
    yield Done(prediction)


class ClassifyWidget(ModelVideoWidget):
    """Plugins > napari-tarrow > Classify cell states."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.points = LayerChoice(
            napari_viewer, "points", Points, "Points layer of the cells to classify."
        )
        self.new_points = PushButton(text="New points layer")
        self.label = LineEdit(label="class", value="interphase")
        self.label.tooltip = (
            "Class of the points you add next (and of selected points)."
        )
        self.assign = PushButton(text="Set class of selected points")
        self.delta = delta_box()
        self.radius = SpinBox(
            label="radius (pixels)",
            min=1,
            max=100,
            value=RADIUS,
            tooltip="Features are averaged over a disc of this radius around each point: about a nucleus radius.",
        )
        self.buttons = RunButtons(self.runner, "Train and classify")
        form = Container(
            widgets=[
                self.model, self.video, self.points, self.new_points, self.label,
                self.assign, self.delta, self.radius, self.buttons,
            ]
        )  # fmt: skip
        scrolled_layout(self).addWidget(form.native)
        self.new_points.changed.connect(self.add_points_layer)
        self.label.changed.connect(self._set_default)
        self.assign.changed.connect(self.assign_selected)
        self.buttons.run.changed.connect(self.start)
        self._classifier: CellStateClassifier | None = None
        self._layer: Any = None

    def add_points_layer(self) -> Any:
        """Add (or select) ``<video> cell states`` for clicking cells of each class."""
        layer = self.video.layer.value
        if layer is None:
            show_error("No image layer: open a time-lapse first.")
            return None
        name = result_name(layer, "cell states")
        if name not in self.viewer.layers:
            self.viewer.add_points(
                np.zeros((0, 3)), name=name, features={CLASS: np.array([], str)},
                size=12, face_color="transparent", border_color="white",
                **spatial_transform(layer, self.video.time_axis.value),
            )  # fmt: skip
        points = self.viewer.layers[name]
        points.mode = "add"
        self.viewer.layers.selection.active = points
        self.points.value = points
        self._set_default()
        return points

    def _set_default(self, _value: object = None) -> None:
        points = self.points.value
        if points is not None:
            points.feature_defaults[CLASS] = self.label.value.strip()

    def assign_selected(self) -> None:
        """Give the selected points the class in the form."""
        points = self.points.value
        if points is None or not points.selected_data:
            show_error("Select points first (Points layer, select mode).")
            return
        classes = self._classes(points)
        classes[list(points.selected_data)] = self.label.value.strip()
        features = points.features.copy()
        features[CLASS] = classes
        points.features = features

    @staticmethod
    def _classes(points: Any) -> np.ndarray:
        if CLASS not in points.features:
            return np.full(len(points.data), "", dtype=object)
        return points.features[CLASS].fillna("").astype(str).to_numpy(dtype=object)

    def start(self) -> None:
        """Check the inputs, then fit the probe and classify every point in a worker."""
        points = self.points.value
        try:
            tap = self.model.require()
            if points is None or len(points.data) == 0:
                raise TarrowError(
                    "No points: press 'New points layer' and click cells of at least two "
                    "classes (set the class in the form before clicking)."
                )
            video = self.video.video()
        except TarrowError as e:
            show_error(str(e))
            return
        c = self._classifier
        if (
            c is None
            or c.tap is not tap
            or (c.delta, c.radius)
            != (
                self.delta.value,
                self.radius.value,
            )
        ):
            c = self._classifier = CellStateClassifier(
                tap, delta=self.delta.value, radius=self.radius.value
            )
        coords = np.asarray(points.data, float)
        classes = self._classes(points).astype(str)
        self._layer = points
        self.runner.start(
            lambda stop: classify_job(c, video, coords, classes, stop),
            on_done=self._on_done,
        )

    def _on_done(self, prediction: Any) -> None:
        points = self._layer
        features = points.features.copy()
        features["predicted"] = prediction.labels.astype(str)
        features["confidence"] = prediction.proba.max(1)
        points.features = features
        points.face_color = "predicted"
        counts = dict(
            zip(*np.unique(prediction.labels, return_counts=True), strict=True)
        )
        show_info(f"Predicted classes: {counts}.")
