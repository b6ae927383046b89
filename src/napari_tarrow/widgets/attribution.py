"""Attribution maps: Grad-CAM per frame pair over the video, and its top regions to inspect.

The map of pair (t, t+Δt) is shown at frame t of ``<layer> attribution`` (T, Y, X),
blended over the video, so the time slider browses the maps; frames without a map
are zero. The maps live in a temporary file (:class:`DiskFrames`) that napari reads
frame by frame, so a long video's maps never fill the memory. The top-k peaks per map go to ``<layer> top regions`` and to a table:
clicking a row moves the viewer there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from magicgui.widgets import Container, PushButton, RadioButtons, SpinBox
from napari.utils.colormaps.standardize_color import transform_color as to_rgba_array
from napari.utils.notifications import show_error
from qtpy.QtWidgets import (
    QAbstractItemView,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
)

from ..config import TOP_K
from ..errors import TarrowError, VideoError
from ..events import Event, FrameDone
from ..inference.attribution import attribute, pair_at
from ..inference.regions import top_regions
from ..io.video import Video
from ..model import TapModel
from ._common import ModelVideoWidget, RunButtons, delta_box, scrolled_layout
from ._layers import DiskFrames, add_or_update, result_name, spatial_transform

CURRENT, WHOLE = "current frame", "whole video"
SHOW_EVERY = 0.5  # seconds between layer updates while maps arrive
REGION_COLOR, CHOSEN_COLOR = "cyan", "yellow"  # region outlines; the table's choice
#: Behind the "How to read the maps" button (the README's section, in short).
HOW_TO_READ = """\
<b>Which frame.</b> Map t belongs to the pair (t, t+Δt): a division whose daughters first
appear at frame t+1 shows on map t, the mother's last frame.<br><br>
<b>What the value is.</b> Grad-CAM of the log-odds that the pair is in forward order, with
respect to the dense features. Its unit is arbitrary: compare places and frames of one
video, not videos. What both frames share cancels.<br><br>
<b>What chance would give.</b> A bright spot is not yet a division. <tt>napari-tarrow
evaluate</tt> scores the top regions against ground truth beside an untrained network, the
plain frame difference and random points; maps that do not beat the frame difference mostly
show change (moving or growing cells).<br><br>
<b>How long to train.</b> A model stopped within its first epochs is close to an untrained
network (its card says so); a few CPU minutes give maps above random points. See the
README's "How to read the maps" and benchmarks/real_data.md."""


def attribution_job(
    model: TapModel, video: Video, delta: int, pairs: np.ndarray, top_k: int,
    stop: Callable[[], bool],
) -> Iterator[Event]:  # fmt: skip
    """Grad-CAM of ``pairs``: FrameDone(first frame, (cam, regions (k, 3) y/x/score))."""
    for event in attribute(model, video, delta, stop=stop, pairs=pairs):
        if isinstance(event, FrameDone):
            cam = event.data
            regions = top_regions(cam, top_k)
            yield FrameDone(event.frame, (cam, regions), pair=event.pair)
        else:
            yield event


class AttributionWidget(ModelVideoWidget):
    """Plugins > napari-tarrow > Attribution maps."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.delta = delta_box(
            "Frames between the two frames of a pair: map t is the pair (t, t+Δt)."
        )
        self.mode = RadioButtons(
            label="frames",
            choices=[CURRENT, WHOLE],
            value=CURRENT,
            tooltip="The pair at the time slider (seconds), or every pair of the video.",
        )
        self.top_k = SpinBox(
            label="top regions per frame",
            min=0,
            max=100,
            value=TOP_K,
            tooltip="Strongest peaks of each map listed in the table and drawn as points (0: none).",
        )
        self.buttons = RunButtons(self.runner, "Compute attribution")
        self.help = PushButton(text="How to read the maps")
        self.help.tooltip = (
            "The frame convention, what the value means, what chance gives."
        )
        self.help.changed.connect(self.explain)
        form = Container(
            widgets=[
                self.model,
                self.video,
                self.delta,
                self.mode,
                self.top_k,
                self.buttons,
                self.help,
            ]
        )
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["frame", "y", "x", "score"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setToolTip("Click a row to go to that region.")
        self.table.cellClicked.connect(self.go_to_row)
        layout = scrolled_layout(self)
        layout.addWidget(form.native)
        layout.addWidget(self.table)
        self.buttons.run.changed.connect(self.start)
        self.runner.state_changed.connect(self._show_at_end)
        self.rows = np.zeros((0, 4))  # (frame, y, x, score), as in the table
        self._maps: DiskFrames | None = None
        self._source: Any = None
        self._shown = 0.0  # when the layers were last updated

    def explain(self) -> QMessageBox:
        """Show how to read the maps in a window that does not block napari."""
        box = QMessageBox(
            QMessageBox.Icon.Information, "How to read the maps", HOW_TO_READ
        )
        box.setParent(self, box.windowFlags())
        box.setModal(False)
        box.show()
        return box

    def start(self) -> None:
        """Check the inputs, then compute the maps in a worker thread."""
        layer = self.video.layer.value
        try:
            model = self.model.require()
            video = self.video.video()
            delta = self.delta.value
            if self.mode.value == CURRENT:
                pairs = pair_at(video, self.video.current_frame(), delta)
            else:
                pairs = video.pairs(delta)
            if len(pairs) == 0:
                raise VideoError(
                    f"{video.name} has no pair of frames {delta} apart; use a smaller Δt."
                )
        except TarrowError as e:
            show_error(str(e))
            return
        self._prepare_layers(layer, video, pairs)
        top_k = self.top_k.value
        self.runner.start(
            lambda stop: attribution_job(model, video, delta, pairs, top_k, stop),
            on_event=self._on_event,
        )

    def _prepare_layers(self, layer: Any, video: Video, pairs: np.ndarray) -> None:
        """Reuse this video's maps for a current-frame look; start afresh otherwise."""
        fresh = (
            self._maps is None
            or self._maps.shape != video.shape
            or self._source is not layer
            or self.mode.value == WHOLE
        )
        if fresh:
            self._maps = DiskFrames(video.shape)
            self.rows = np.zeros((0, 4))
        else:
            redo = np.isin(self.rows[:, 0], pairs[:, 0])
            self.rows = self.rows[~redo]
        self._source = layer
        self._show()

    def _on_event(self, event: Event) -> None:
        if not isinstance(event, FrameDone) or self._maps is None:
            return
        t, (cam, regions) = event.frame, event.data
        self._maps[t] = cam
        rows = np.column_stack([np.full(len(regions), t, float), regions])
        self.rows = np.concatenate([self.rows, rows])
        self.rows = self.rows[np.lexsort((-self.rows[:, 3], self.rows[:, 0]))]
        if time.monotonic() - self._shown > SHOW_EVERY:  # spare the GUI on long videos
            self._show()

    def _show_at_end(self, state: str) -> None:
        """Show every map computed, also those of a stopped run."""
        if state == "idle" and self._source is not None:
            self._show()

    def _show(self) -> None:
        """Put maps and regions into their layers (created once, then updated)."""
        self._shown = time.monotonic()
        layer = self._source
        geo = spatial_transform(layer, self.video.time_axis.value)
        bright = self._maps.bright if self._maps is not None else 0.0
        if bright <= 0:  # maps zero nearly everywhere: their peak, else any limit
            bright = self._maps.peak if self._maps is not None else 0.0
        maps = add_or_update(
            self.viewer, "image", result_name(layer, "attribution"), self._maps,
            colormap="inferno", blending="additive", opacity=0.8, **geo,
        )  # fmt: skip
        maps.contrast_limits = (0.0, bright if bright > 0 else 1.0)
        maps.refresh()
        add_or_update(
            self.viewer, "points", result_name(layer, "top regions"), self.rows[:, :3],
            features={"frame": self.rows[:, 0].astype(int), "score": self.rows[:, 3]},
            size=max(8.0, min(layer.data.shape[-2:]) / 16), face_color="transparent",
            border_color=REGION_COLOR, border_width=0.1, out_of_slice_display=False,
            **geo,
        )  # fmt: skip
        self.viewer.layers.selection.active = layer
        self._fill_table()

    def _fill_table(self) -> None:
        self.table.setRowCount(len(self.rows))
        for r, (t, y, x, s) in enumerate(self.rows):
            for c, text in enumerate((f"{int(t)}", f"{y:.0f}", f"{x:.0f}", f"{s:.3g}")):
                self.table.setItem(r, c, QTableWidgetItem(text))

    def go_to_row(self, row: int, _column: int = 0) -> None:
        """Move the time slider to the region's frame and centre the view on it."""
        layer = self.viewer.layers[result_name(self._source, "top regions")]
        world = layer.data_to_world(self.rows[row, :3])
        time_axis = self.viewer.dims.ndim - 3
        self.viewer.dims.set_point(time_axis, world[0])
        camera = getattr(
            self.viewer, "scene", self.viewer
        ).camera  # napari >= 0.9: scene
        camera.center = tuple(world[1:])
        colors = np.tile(to_rgba_array(REGION_COLOR), (len(layer.data), 1))
        colors[row] = to_rgba_array(CHOSEN_COLOR)[0]
        layer.border_color = colors  # the chosen region stands out, in any mode
        layer.selected_data = {row}
