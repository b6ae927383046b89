"""Export features: the dense TAP features of a video to a (T, C, Y, X) TIFF in one click."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QMessageBox

from ..atomic import human_size
from ..data.video import Video
from ..errors import TarrowError
from ..events import Done, Event
from ..features import export_features, features_shape
from ..model import TapModel
from ..projection import principal_components_rgb
from ._common import ModelVideoWidget, RunButtons, scrolled_layout
from ._layers import add_or_update, result_name, spatial_transform

#: Exports above this size ask before they start.
CONFIRM_BYTES = 2 * 10**9


def default_export_path(layer: Any) -> Path:
    """``<source>_tap_features.tif`` next to the layer's file, else in the home folder."""
    source = getattr(getattr(layer, "source", None), "path", None)
    stem = f"{layer.name}_tap_features.tif" if layer is not None else "tap_features.tif"
    if source:
        src = Path(source)  # a file, or a folder of frames
        return src.parent / f"{src.stem}_tap_features.tif"
    return Path.home() / "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)


def export_job(
    model: TapModel, video: Video, path: Path, dtype: str, preview: bool,
    stop: Callable[[], bool],
) -> Iterator[Event]:  # fmt: skip
    """Write the features, then (optionally) their principal components: Done((path, rgb))."""
    for event in export_features(model, video, path, dtype, stop=stop):
        if not isinstance(event, Done):
            yield event
    rgb = None
    if preview:
        with tifffile.TiffFile(path) as tif:
            rgb = yield from principal_components_rgb(
                tif.asarray(out="memmap"), stop=stop
            )
    yield Done((path, rgb))


class ExportWidget(ModelVideoWidget):
    """Plugins > napari-tarrow > Export features."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.path = FileEdit(
            label="save as",
            mode="w",
            filter="*.tif",
            tooltip="A (T, C, Y, X) TIFF with a .json sidecar; default next to the source file.",
        )
        self.dtype = ComboBox(
            label="precision",
            choices=["float16", "float32"],
            tooltip="float16 halves the file and is precise enough for features.",
        )
        self.preview = CheckBox(
            text="show the first 3 principal components",
            value=False,
            tooltip="Also add the first three principal components of the features as an RGB layer, to see what they separate.",
        )
        self.size = Label(label="file size", tooltip="The size of the file to write.")
        self.buttons = RunButtons(self.runner, "Export features")
        form = Container(
            widgets=[
                self.model,
                self.video,
                self.path,
                self.dtype,
                self.size,
                self.preview,
                self.buttons,
            ]
        )
        scrolled_layout(self).addWidget(form.native)
        self.video.layer.changed.connect(self._suggest_path)
        self._suggest_path()
        for field in (self.model.combo, self.video.layer, self.dtype, self.path):
            field.changed.connect(self._show_size)
        self._show_size()
        self.buttons.run.changed.connect(self.start)
        self._source: Any = None

    def _suggest_path(self, _value: object = None) -> None:
        self.path.value = default_export_path(self.video.layer.value)

    def _size(self, model: TapModel, video: Video) -> tuple[int, str]:
        """Bytes of the export and a line saying so, with the free space at the path."""
        shape = features_shape(model, video)
        nbytes = int(np.prod(shape)) * np.dtype(self.dtype.value).itemsize
        t, c, y, x = shape
        text = f"about {human_size(nbytes)} ({t} frames x {c} features x {y}x{x}"
        text += f", {self.dtype.value})"
        folder = Path(self.path.value).parent
        if folder.is_dir():
            text += f"; {human_size(shutil.disk_usage(folder).free)} free there"
        return nbytes, text

    def _show_size(self, _value: object = None) -> None:
        try:
            model, video = self.model.require(), self.video.video()
        except TarrowError:
            self.size.value = "(choose a model and a video)"
            return
        self.size.value = self._size(model, video)[1]

    def confirm(self, question: str) -> bool:
        """Ask the user a yes/no question (tests replace this)."""
        answer = QMessageBox.question(self.native, "Export features", question)
        return answer == QMessageBox.StandardButton.Yes

    def start(self) -> None:
        """Check the inputs, then stream the features to the file in a worker thread."""
        layer = self.video.layer.value
        try:
            model = self.model.require()
            video = self.video.video()
        except TarrowError as e:
            show_error(str(e))
            return
        path, dtype, preview = (
            Path(self.path.value),
            self.dtype.value,
            self.preview.value,
        )
        if path.suffix.lower() not in (".tif", ".tiff"):
            path = path.with_suffix(".tif")
        nbytes, size = self._size(model, video)
        if nbytes > CONFIRM_BYTES and not self.confirm(
            f"The features of {video.name} will take {size}. Export them to {path}?"
        ):
            return
        self._source = layer
        self.runner.start(
            lambda stop: export_job(model, video, path, dtype, preview, stop),
            on_done=self._on_done,
        )

    def _on_done(self, result: tuple[Path, Any]) -> None:
        path, rgb = result
        show_info(f"Features written to {path} (with {path.name}.json).")
        if rgb is not None:
            geo = spatial_transform(self._source, self.video.time_axis.value)
            add_or_update(
                self.viewer, "image", result_name(self._source, "features PCA"), rgb,
                rgb=True, **geo,
            )  # fmt: skip
