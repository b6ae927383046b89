"""Pieces every napari-tarrow widget shares: the video-layer picker and run/stop buttons."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from magicgui.widgets import (
    ComboBox,
    Container,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
)
from qtpy.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget

from ..io.video import Video
from ._jobs import JobRunner
from ._layers import layer_data, video_from_layer
from ._models import ModelPicker, store_of


def scrolled_layout(widget: QWidget) -> QVBoxLayout:
    """Return the layout for ``widget``'s contents, inside a scroll area filling it.

    napari's docks do not scroll: without this, five docked widgets made the window
    2705 px tall, and the lower buttons were off a laptop screen.
    """
    scroll = QScrollArea(widget)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    inner = QWidget()
    scroll.setWidget(inner)
    outer = QVBoxLayout(widget)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll)
    return QVBoxLayout(inner)


class LayerChoice(ComboBox):
    """Drop-down of the viewer's layers of one type (and ``accept``-ed), kept in sync."""

    def __init__(
        self,
        viewer: Any,
        label: str,
        layer_type: type,
        tooltip: str = "",
        accept: Callable[[Any], bool] = lambda layer: True,
    ) -> None:
        self._viewer, self._type, self._accept = viewer, layer_type, accept
        super().__init__(label=label, choices=self._layers, tooltip=tooltip)
        for name in ("inserted", "removed", "reordered"):
            getattr(viewer.layers.events, name).connect(self.reset_choices)

    def _layers(self, _widget: object = None) -> list[tuple[str, Any]]:
        return [
            (la.name, la)
            for la in self._viewer.layers
            if isinstance(la, self._type) and self._accept(la)
        ]


def delta_box(
    tooltip: str = "Features of frame t are paired with frame t+Δt, as in training.",
) -> SpinBox:
    """Return the Δt (frames) field of the widgets that run a model on frame pairs."""
    return SpinBox(label="Δt (frames)", min=1, max=1000, value=1, tooltip=tooltip)


def can_be_video(layer: Any) -> bool:
    """Whether an image layer can be a time-lapse: one channel, at least (T, Y, X)."""
    return not getattr(layer, "rgb", False) and layer.ndim >= 3


class VideoPicker(Container):
    """Image-layer drop-down (kept in sync with the viewer) and, for n-D layers, the time axis."""

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        from napari.layers import Image

        self.layer = LayerChoice(
            viewer,
            "video layer",
            Image,
            "The time-lapse to work on (T, Y, X); 2D and RGB layers are not listed.",
            can_be_video,
        )
        self.time_axis = ComboBox(
            label="time axis",
            choices=self._axes,
            tooltip="Which slider of the viewer is time (named as napari names it); the "
            "last two axes are Y and X, other axes are taken at the sliders' position.",
        )
        super().__init__(widgets=[self.layer, self.time_axis], labels=True)
        self.layer.changed.connect(self._layer_changed)
        changed, labels = self._layer_changed, viewer.dims.events.axis_labels
        labels.connect(changed)
        self.native.destroyed.connect(lambda: labels.disconnect(changed))
        self._layer_changed()

    def _axes(self, _widget: object = None) -> list[tuple[str, int]]:
        """(napari's label of the slider, e.g. "-4", and its length; layer axis) per axis."""
        layer = self.layer.value
        if layer is None:
            return [("", 0)]
        shape = layer_data(layer).shape
        labels = self.viewer.dims.axis_labels[-len(shape) :]
        return [(f"{labels[i]} ({shape[i]} steps)", i) for i in range(len(shape) - 2)]

    def _layer_changed(self, _value: object = None) -> None:
        self.time_axis.reset_choices()
        axes = self._axes()
        named = [i for text, i in axes if text.split(" ")[0].lower() in ("t", "time")]
        self.time_axis.value = named[0] if named else 0
        self.time_axis.visible = len(axes) > 1

    def current_frame(self) -> int:
        """Return the video frame (index along the time axis) at the viewer's time slider."""
        layer = self.layer.value
        coords = layer.world_to_data(tuple(self.viewer.dims.point)[-layer.ndim :])
        return round(float(coords[self.time_axis.value]))

    def video(self) -> Video:
        """Return the chosen layer as a lazy, checked :class:`Video` (raises VideoError)."""
        return video_from_layer(
            self.layer.value, self.time_axis.value, tuple(self.viewer.dims.point)
        )


class RunButtons(Container):
    """Run / Stop buttons, a progress bar with the time left, and a state line."""

    def __init__(self, runner: JobRunner, run_text: str) -> None:
        self.run = PushButton(text=run_text)
        self.stop = PushButton(text="Stop", enabled=False)
        self.progress = ProgressBar(value=0, min=0, max=1, visible=False)
        self.eta = Label(value="")
        self.status = Label(value="idle")
        buttons = Container(
            widgets=[self.run, self.stop], layout="horizontal", labels=False
        )
        super().__init__(
            widgets=[buttons, self.progress, self.eta, self.status], labels=False
        )
        self.stop.changed.connect(runner.stop)
        runner.state_changed.connect(self._follow)
        runner.progressed.connect(self._show_progress)

    def _follow(self, state: str) -> None:
        self.run.enabled = state == "idle"
        self.stop.enabled = state == "running"
        self.status.value = {"stopping": "stopping after the current step…"}.get(
            state, state
        )
        if state == "idle":
            self.progress.visible = False
            self.eta.value = ""

    def _show_progress(self, stage: str, done: int, total: int, left: float) -> None:
        self.progress.visible = True
        self.progress.max = max(total, 1)
        self.progress.value = min(done, total)
        self.eta.value = f"{stage}: {done}/{total}" + (
            f", about {time_left(left)} left" if left >= 0 and done < total else ""
        )


def safe_filename(name: str) -> str:
    """``name`` with every character but letters, digits and ``-_.`` made ``_`` (a layer name as a file)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def time_left(seconds: float) -> str:
    """'40 s', '3 min', '1 h 20 min': a remaining time as a person says it."""
    if seconds < 60:
        return f"{max(seconds, 1):.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


class ModelVideoWidget(QWidget):
    """Base of the widgets that run a TAP model on a video layer: pickers and a job runner."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.runner = JobRunner(self)
        self.model = ModelPicker(store_of(napari_viewer))
        self.video = VideoPicker(napari_viewer)
