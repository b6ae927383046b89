"""Segment divisions: paint a few dividing cells, train a small model on TAP features, see all.

The convpaint loop: paint in ``<layer> division labels`` (1 = background,
2 = dividing cell), press the button, look at ``<layer> divisions``, paint more,
press again. Frozen TAP features stay cached between runs, so retraining is quick.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    PushButton,
    RadioButtons,
    SpinBox,
)
from napari.layers import Labels
from napari.utils.notifications import show_error, show_info

from ..downstream import DIVIDING, DivisionSegmenter, SegmentationConfig
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
from ._layers import add_or_update, result_name, spatial_transform

CURRENT, WHOLE = "current frame", "whole video"


def segment_job(
    segmenter: DivisionSegmenter, video: Video, labels: np.ndarray, frames: list[int],
    stop: Callable[[], bool],
) -> Iterator[Event]:  # fmt: skip
    """Fit on the painted frames, then predict ``frames``: Done((frames, Segmentation))."""
    yield from relay(segmenter.fit(video, labels, stop))
    result = yield from relay(segmenter.predict(video, frames, stop))
    yield Done((frames, result))


class SegmentWidget(ModelVideoWidget):
    """Plugins > napari-tarrow > Segment divisions."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.labels = LayerChoice(
            napari_viewer,
            "training labels",
            Labels,
            "Painted labels: 2 on dividing cells, 1 on background, 0 unlabelled.",
        )
        self.new_labels = PushButton(text="New labels layer to paint")
        self.mode = ComboBox(
            label="model",
            tooltip="Frozen features train in seconds; fine-tuning adapts the network (slower); the baseline shows what TAP adds.",
            choices=[
                ("TAP features, frozen (fast)", "frozen"),
                ("TAP network, fine-tuned", "finetune"),
                ("raw pixels, from scratch (baseline)", "baseline"),
            ],
        )
        self.head = ComboBox(
            label="head",
            choices=["conv", "linear"],
            tooltip="The small model on top of the features: 3x3 convolutions, or a per-pixel linear one.",
        )
        self.delta = delta_box()
        self.epochs = SpinBox(
            label="epochs",
            min=1,
            max=1000,
            value=20,
            tooltip="Passes over the painted pixels.",
        )
        self.threshold = FloatSpinBox(
            label="threshold",
            min=0.01,
            max=0.99,
            step=0.05,
            value=0.5,
            tooltip="Probability above which a pixel is labelled dividing.",
        )
        self.frames = RadioButtons(
            label="predict",
            choices=[CURRENT, WHOLE],
            value=CURRENT,
            tooltip="The frame at the time slider, or every frame.",
        )
        self.probability = CheckBox(
            text="also show the probability",
            value=False,
            tooltip="Add the per-pixel probability as an image layer.",
        )
        self.buttons = RunButtons(self.runner, "Train and predict")
        form = Container(
            widgets=[
                self.model, self.video, self.labels, self.new_labels, self.mode, self.head,
                self.delta, self.epochs, self.threshold, self.frames, self.probability,
                self.buttons,
            ]
        )  # fmt: skip
        scrolled_layout(self).addWidget(form.native)
        self.new_labels.changed.connect(self.add_labels_layer)
        self.buttons.run.changed.connect(self.start)
        self.segmenter: DivisionSegmenter | None = None
        self._source: Any = None

    def add_labels_layer(self) -> Any:
        """Add (or select) ``<video> division labels``, ready to paint dividing cells."""
        layer = self.video.layer.value
        try:
            video_shape = self.video.video().shape
        except TarrowError as e:
            show_error(str(e))
            return None
        name = result_name(layer, "division labels")
        if name not in self.viewer.layers:
            geo = spatial_transform(layer, self.video.time_axis.value)
            self.viewer.add_labels(np.zeros(video_shape, np.uint8), name=name, **geo)
        labels = self.viewer.layers[name]
        labels.selected_label = DIVIDING
        labels.mode = "paint"
        self.viewer.layers.selection.active = labels
        self.labels.value = labels
        show_info("Paint dividing cells with label 2 and some background with label 1.")
        return labels

    def settings(self) -> SegmentationConfig:
        """Return the segmenter's settings from the form."""
        return SegmentationConfig(
            mode=self.mode.value,
            head=self.head.value,
            delta=self.delta.value,
            epochs=self.epochs.value,
            threshold=self.threshold.value,
        )

    def _segmenter_for(self, config: SegmentationConfig) -> DivisionSegmenter:
        """Reuse the segmenter (and its cached features) unless model or settings changed."""
        tap, old = self.model.model, self.segmenter
        if old is not None and old.config == config and old.tap is tap:
            return old
        share = (
            old.cache
            if old is not None and config.mode == "frozen" and old.cache.model is tap
            else None
        )
        self.segmenter = DivisionSegmenter(tap, config, cache=share)
        return self.segmenter

    def start(self) -> None:
        """Check the inputs, then train and predict in a worker thread."""
        layer, labels_layer = self.video.layer.value, self.labels.value
        try:
            self.model.require()
            if labels_layer is None:
                raise TarrowError(
                    "No training labels: press 'New labels layer to paint' and paint a few "
                    "dividing cells (2) and background (1)."
                )
            video = self.video.video()
            segmenter = self._segmenter_for(self.settings())
            if self.frames.value == CURRENT:
                frames = [self.video.current_frame()]
            else:
                frames = list(range(len(video)))
        except TarrowError as e:
            show_error(str(e))
            return
        labels = np.asarray(labels_layer.data)
        self._source = layer
        self.runner.start(
            lambda stop: segment_job(segmenter, video, labels, frames, stop),
            on_done=self._on_done,
        )

    def _on_done(self, result: tuple[list[int], Any]) -> None:
        frames, seg = result
        layer = self._source
        geo = spatial_transform(layer, self.video.time_axis.value)
        shape = (layer.data.shape[self.video.time_axis.value], *layer.data.shape[-2:])
        name = result_name(layer, "divisions")
        old = self.viewer.layers[name].data if name in self.viewer.layers else None
        labels = (
            old if old is not None and old.shape == shape else np.zeros(shape, np.int32)
        )
        labels[frames] = seg.labels
        add_or_update(self.viewer, "labels", name, labels, **geo)
        if self.probability.value:
            pname = result_name(layer, "division probability")
            old = (
                self.viewer.layers[pname].data if pname in self.viewer.layers else None
            )
            proba = (
                old
                if old is not None and old.shape == shape
                else np.zeros(shape, np.float32)
            )
            proba[frames] = seg.probability
            add_or_update(
                self.viewer, "image", pname, proba, colormap="magma", blending="additive",
                contrast_limits=(0.0, 1.0), **geo,
            )  # fmt: skip
        n = len(np.unique(seg.labels)) - 1
        show_info(f"{n} dividing-cell objects in {len(frames)} frame(s).")
