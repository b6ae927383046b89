"""Export features: the dense TAP features of a video to a (T, C, Y, X) TIFF or OME-Zarr in one click."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QMessageBox

from ..errors import TarrowError
from ..events import Done, Event, relay
from ..inference.features import export_features, features_shape
from ..inference.projection import principal_components_rgb
from ..io.atomic import human_size
from ..io.export import check_output, check_zarr_output, open_output
from ..io.video import Video
from ..model import TapModel
from ._common import ModelVideoWidget, RunButtons, safe_filename, scrolled_layout
from ._layers import add_or_update, result_name, spatial_transform

#: Exports above this size ask before they start.
CONFIRM_BYTES = 2 * 10**9
#: The format choices: label -> (format, suffix).
FORMATS = {"TIFF": ("tiff", ".tif"), "OME-Zarr": ("zarr", ".zarr")}


def default_export_path(layer: Any) -> Path:
    """``<source>_tap_features.tif`` next to the layer's file, else in the home folder."""
    source = getattr(getattr(layer, "source", None), "path", None)
    stem = f"{layer.name}_tap_features.tif" if layer is not None else "tap_features.tif"
    if source:
        src = Path(source)  # a file, or a folder of frames
        return src.parent / f"{src.stem}_tap_features.tif"
    return Path.home() / safe_filename(stem)


def export_job(
    model: TapModel, video: Video, path: Path, dtype: str, preview: bool,
    stop: Callable[[], bool],
) -> Iterator[Event]:  # fmt: skip
    """Write the features, then (optionally) their principal components: Done((path, rgb)).

    The format follows the suffix of ``path`` (``.zarr``: OME-Zarr, else TIFF).
    """
    yield from relay(export_features(model, video, path, dtype, stop=stop))
    rgb = None
    if preview:
        rgb = yield from relay(principal_components_rgb(open_output(path), stop=stop))
    yield Done((path, rgb))


class ExportWidget(ModelVideoWidget):
    """Plugins > napari-tarrow > Export features."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(napari_viewer)
        self.format = ComboBox(
            label="format",
            choices=list(FORMATS),
            tooltip="TIFF: one file with a .json sidecar. OME-Zarr: a chunked, compressed "
            "folder that napari opens lazily, for big videos (needs pip install zarr).",
        )
        self.path = FileEdit(
            label="save as",
            mode="w",
            filter="*.tif *.tiff *.zarr",
            tooltip="A (T, C, Y, X) TIFF or .zarr store; default next to the source file.",
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
                self.format,
                self.path,
                self.dtype,
                self.size,
                self.preview,
                self.buttons,
            ]
        )
        scrolled_layout(self).addWidget(form.native)
        self.video.layer.changed.connect(self._suggest_path)
        self.format.changed.connect(self._switch_suffix)
        self._suggest_path()
        for field in (
            self.model.combo, self.video.layer, self.dtype, self.path, self.format
        ):  # fmt: skip
            field.changed.connect(self._show_size)
        self._show_size()
        self.buttons.run.changed.connect(self.start)
        self._source: Any = None

    def _suggest_path(self, _value: object = None) -> None:
        """Put the default path for the layer, with the format's suffix."""
        path = default_export_path(self.video.layer.value)
        self.path.value = path.with_suffix(FORMATS[self.format.value][1])

    def _switch_suffix(self, _value: object = None) -> None:
        """Keep the chosen name when the format changes; only its suffix follows."""
        self.path.value = self._output_path()

    def _output_path(self) -> Path:
        """Return the path to write: the chosen one, with the chosen format's suffix."""
        path, (kind, suffix) = Path(self.path.value), FORMATS[self.format.value]
        keep = (".tif", ".tiff") if kind == "tiff" else (".zarr",)
        return path if path.suffix.lower() in keep else path.with_suffix(suffix)

    def _size(self, model: TapModel, video: Video) -> tuple[int, str]:
        """Bytes of the export and a line saying so, with the free space at the path."""
        shape = features_shape(model, video)
        nbytes = int(np.prod(shape)) * np.dtype(self.dtype.value).itemsize
        t, c, y, x = shape
        text = f"about {human_size(nbytes)} ({t} frames x {c} features x {y}x{x}"
        text += f", {self.dtype.value}"
        text += ", less compressed)" if FORMATS[self.format.value][0] == "zarr" else ")"
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
        path, dtype, preview = self._output_path(), self.dtype.value, self.preview.value
        try:  # a missing zarr package or a folder in the way: say so before any work
            zarr = FORMATS[self.format.value][0] == "zarr"
            (check_zarr_output if zarr else check_output)(path)
        except TarrowError as e:
            show_error(str(e))
            return
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
        if path.suffix.lower() == ".zarr":
            show_info(
                f"Features written to {path} (open it in napari: File > Open Folder)."
            )
        else:
            show_info(f"Features written to {path} (with {path.name}.json).")
        if rgb is not None:
            geo = spatial_transform(self._source, self.video.time_axis.value)
            add_or_update(
                self.viewer, "image", result_name(self._source, "features PCA"), rgb,
                rgb=True, **geo,
            )  # fmt: skip
