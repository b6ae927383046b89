"""Train TAP model: pick a time-lapse, train in the background, watch loss and accuracy."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QWidget

from ..config import PRESETS, TapConfig
from ..errors import ConfigError, TarrowError
from ..events import Checkpoint, Event, FrameDone, Metrics, Progress
from ..inference.attribution import PREVIEW_BUDGET, with_previews
from ..model import CONFIG
from ..training.loop import METRICS, estimate_time, fine_tuning_config, train
from ._common import RunButtons, VideoPicker, safe_filename, scrolled_layout, time_left
from ._jobs import JobRunner
from ._layers import DiskFrames, add_or_update, result_name, spatial_transform
from ._models import ask_model_folder, device_choices, store_of
from ._plot import MetricsPlot

#: The "start from" choice that trains a new network instead of fine-tuning a model.
NEW_MODEL = "new model (random weights)"

#: Starting points for the form; the fields then override crop size, epochs, etc.
PRESET_MENU: dict[str, TapConfig] = {
    "fast (CPU, minutes)": PRESETS["fast"],
    "paper (GPU, hours)": PRESETS["paper"],
}


def default_model_folder(layer_name: str, parent: Path | None = None) -> Path:
    """Return a new folder named after the layer, in ``parent`` or ~/napari-tarrow/models."""
    root = parent if parent is not None else Path.home() / "napari-tarrow" / "models"
    base = root / (safe_filename(layer_name) or "video")
    folder, k = base, 2
    while (folder / CONFIG).exists():
        folder, k = base.with_name(f"{base.name}-{k}"), k + 1
    return folder


def parse_deltas(text: str) -> tuple[int, ...]:
    """Parse "1" or "1, 2" into (1,) or (1, 2); anything else is a ConfigError."""
    try:
        deltas = tuple(int(v) for v in text.replace(",", " ").split())
    except ValueError:
        deltas = ()
    if not deltas or min(deltas) < 1:
        raise ConfigError(
            f"Δt {text!r} is invalid: give one or more whole numbers of frames, e.g. 1 or 1, 2."
        )
    return deltas


class TrainWidget(QWidget):
    """Plugins > napari-tarrow > Train TAP model."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.store = store_of(napari_viewer)  # the models of this viewer's widgets
        self.runner = JobRunner(self)
        self.video = VideoPicker(napari_viewer)
        devices = device_choices()
        self.device = ComboBox(
            label="device",
            choices=devices,
            value=devices[0][1],
            tooltip="Where to train: a GPU if there is one, else the CPU.",
        )
        self.preset = ComboBox(
            label="preset",
            choices=list(PRESET_MENU),
            tooltip="Starting values of the fields below: fast for a CPU, paper for a GPU.",
        )
        self.delta = LineEdit(
            label="Δt (frames)",
            value="1",
            tooltip="Frames between the two frames of a pair, e.g. 1 or 1, 2 (comma-separated).",
        )
        self.size = SpinBox(
            label="crop size",
            min=16,
            max=1024,
            step=8,
            tooltip="Side of the square training crops (pixels, multiple of 8): a few nuclei across.",
        )
        self.epochs = SpinBox(
            label="epochs",
            min=1,
            max=10_000,
            tooltip="Training passes; the best model so far is kept after each.",
        )
        self.samples = SpinBox(
            label="samples per epoch",
            min=8,
            max=10_000_000,
            step=32,
            tooltip="Random crop pairs drawn per epoch.",
        )
        self.batch = SpinBox(
            label="batch size",
            min=2,
            max=4096,
            tooltip="Crop pairs per training step; smaller needs less memory.",
        )
        self.features = SpinBox(
            label="features",
            min=2,
            max=256,
            tooltip="Channels of the dense features the network learns (exported and used downstream).",
        )
        self.start_from = ComboBox(label="start from", choices=self._start_choices)
        self.start_from.tooltip = (
            "Fine-tune a trained or loaded model on this video (keeping its "
            "architecture), or train a new one."
        )
        self.out = FileEdit(label="output folder", mode="d")
        self.out.tooltip = (
            "A new folder for the model; an existing model is never overwritten."
        )
        self.preview = CheckBox(
            text="live attribution preview",
            value=True,
            tooltip="After each epoch, the Grad-CAM map of the frame under the time "
            "slider with the weights so far, in '<layer> attribution preview'.",
        )
        self.preview_info = Label(
            value="", tooltip="The last preview: frame, epoch, cost."
        )
        self.estimate = PushButton(text="Estimate time")
        self.estimate.tooltip = (
            "Time a few training steps on this machine and say how long the run takes."
        )
        self.estimate_info = Label(value="", tooltip="The estimated training time.")
        for label in (self.preview_info, self.estimate_info):
            label.native.setWordWrap(True)  # long lines must not widen the dock
        self.buttons = RunButtons(self.runner, "Start training")
        self.load_button = PushButton(text="Load model…")
        form = Container(
            widgets=[
                self.video, self.preset, self.delta, self.size, self.epochs, self.samples,
                self.batch, self.features, self.start_from, self.device, self.out,
                self.preview, self.preview_info, self.estimate, self.estimate_info,
                self.buttons, self.load_button,
            ]
        )  # fmt: skip
        self.plot = MetricsPlot()
        layout = scrolled_layout(self)
        layout.addWidget(form.native)
        layout.addWidget(self.plot)
        self.form = form
        self.preset.changed.connect(self._apply_preset)
        self.preset.value = (
            next(iter(PRESET_MENU)) if devices[0][1] == "cpu" else list(PRESET_MENU)[1]
        )
        self._apply_preset()
        self.video.layer.changed.connect(self._suggest_folder)
        self._suggest_folder()
        self.buttons.run.changed.connect(self.start)
        self.estimate.changed.connect(self.start_estimate)
        self.load_button.changed.connect(self._ask_folder)
        self.start_from.changed.connect(self._apply_start)
        follow, steps = self._follow_slider, self.viewer.dims.events.current_step
        steps.connect(follow)
        self.destroyed.connect(lambda: steps.disconnect(follow))
        self._preview: DiskFrames | None = None
        self._preview_frame = [0]  # the frame to preview, read by the worker (no self)
        self._previewed: int | None = None  # the frame that shows a map
        self._epoch = 0
        self._source: Any = None
        self.preview_budget = PREVIEW_BUDGET  # share of the training time
        self._estimated: tuple[Any, str] | None = None  # (train config, device) timed
        refresh = self.start_from.reset_choices
        store = self.store
        store.changed.connect(refresh)
        self.destroyed.connect(lambda: store.changed.disconnect(refresh))

    def _start_choices(self, _widget: object = None) -> list[str]:
        return [NEW_MODEL, *self.store.models]

    def _apply_start(self, _value: object = None) -> None:
        """Lock the features field to the starting model's (it fixes the architecture)."""
        start = self.store.models.get(self.start_from.value)
        self.features.enabled = start is None
        if start is not None:
            self.features.value = start.config.model.features

    def _apply_preset(self, _value: object = None) -> None:
        c = PRESET_MENU[self.preset.value]
        self.size.value, self.features.value = c.data.size, c.model.features
        self.epochs.value, self.samples.value = (
            c.train.epochs,
            c.train.samples_per_epoch,
        )
        self.batch.value = c.train.batch_size
        self._apply_start()  # a model to fine-tune keeps its own feature count

    def _suggest_folder(self, _value: object = None) -> None:
        """Propose a new model folder beside the current one (the user's choice stays)."""
        layer, current = self.video.layer.value, str(self.out.value or "")
        parent = Path(current).parent if current not in ("", ".") else None
        self.out.value = default_model_folder(layer.name if layer else "video", parent)

    def config(self) -> TapConfig:
        """Return the run's configuration: the preset with the form's values.

        Fine-tuning takes the architecture of the model it starts from.
        """
        c = PRESET_MENU[self.preset.value]
        config = TapConfig(
            data=dataclasses.replace(
                c.data, delta=parse_deltas(self.delta.value), size=self.size.value
            ),
            model=dataclasses.replace(c.model, features=self.features.value),
            train=dataclasses.replace(
                c.train,
                epochs=self.epochs.value,
                samples_per_epoch=self.samples.value,
                batch_size=self.batch.value,
                val_samples=min(c.train.val_samples, self.samples.value),
            ),
        )
        start = self.store.models.get(self.start_from.value)
        return config if start is None else fine_tuning_config(config, start)

    def start(self) -> None:
        """Check the inputs, then train in a worker thread."""
        try:
            video, config = self.video.video(), self.config()
        except TarrowError as e:
            show_error(str(e))
            return
        out = Path(self.out.value)
        if (out / CONFIG).exists():
            show_error(
                f"{out} already holds a model; choose another output folder "
                "(an existing model is never overwritten)."
            )
            return
        self.plot.clear()
        device = self.device.value
        if self.preview.value:
            self._source, self._epoch = self.video.layer.value, 0
            self._preview, self._previewed = DiskFrames(video.shape), None
            self._follow_slider()
            delta, budget = config.data.delta[0], self.preview_budget
            slider = self._preview_frame

            def job(stop):
                training = train(config, [video], out, device=device, stop=stop)
                frame = lambda: slider[0]  # noqa: E731
                return with_previews(
                    training, video, frame, delta, device, stop, budget
                )
        else:

            def job(stop):
                return train(config, [video], out, device=device, stop=stop)

        self.runner.start(job, on_event=self._on_event, on_done=self._on_done)

    def start_estimate(self) -> None:
        """Time a few steps of the run as set up, in a worker thread; show the result."""
        try:
            video, config = self.video.video(), self.config()
        except TarrowError as e:
            show_error(str(e))
            return
        device = self.device.value
        self.estimate_info.value = "timing a few steps…"
        self._estimated = (config.train, device)
        self.runner.start(
            lambda stop: estimate_time(config, [video], device, stop=stop),
            on_done=self._show_estimate,
        )

    def _show_estimate(self, seconds: float) -> None:
        t, device = self._estimated
        self.estimate_info.value = (
            f"about {time_left(seconds)} on {device} ({t.epochs} epochs x "
            f"{t.samples_per_epoch} samples; 3 steps timed)"
        )

    def _follow_slider(self, _event: object = None) -> None:
        """Remember the frame under the time slider, the next preview's frame."""
        if self.video.layer.value is not None:
            self._preview_frame[0] = self.video.current_frame()

    def _show_preview(self, t: int, cam: Any, seconds: float) -> None:
        """Put the newest map at frame ``t`` of the preview layer; older ones go."""
        if self._previewed is not None and self._previewed != t:
            self._preview[self._previewed] = cam * 0
        self._preview[t], self._previewed = cam, t
        layer = add_or_update(
            self.viewer, "image", result_name(self._source, "attribution preview"),
            self._preview, colormap="inferno", blending="additive", opacity=0.8,
            **spatial_transform(self._source, self.video.time_axis.value),
        )  # fmt: skip
        limit = self._preview.bright or self._preview.peak
        layer.contrast_limits = (0.0, limit if limit > 0 else 1.0)
        layer.refresh()
        self.preview_info.value = (
            f"preview: frame {t}, epoch {self._epoch} ({seconds:.1f} s)"
        )

    def _on_event(self, event: Event) -> None:
        if isinstance(event, Metrics):
            self._epoch = event.epoch + 1
            self.plot.add(event.epoch + 1, event.values)
        elif isinstance(event, FrameDone) and self._preview is not None:
            self._show_preview(event.frame, *event.data)
        elif isinstance(event, Checkpoint) and event.kind == "best":
            self.buttons.status.value = f"running; best model saved in {event.path}"
        elif isinstance(event, Progress) and event.info:
            i = event.info
            self.buttons.status.value = (
                f"epoch {int(i.get('epoch', 0))}: loss {i.get('loss', 0):.3f}, "
                f"accuracy {i.get('acc', 0):.2f}, {i.get('samples/s', 0):.0f} samples/s"
            )

    def _on_done(self, model: Any) -> None:
        name = self.store.add(model)
        stopped = "stopped; " if self.runner.stop_requested else ""
        show_info(f"Training {stopped}model '{name}' saved in {model.folder}.")
        self._suggest_folder()

    def load(self, folder: str | Path) -> None:
        """Add an existing model folder to the session and plot its training log."""
        if self.store.load_and_tell(folder) is None:
            return
        self.plot.clear()
        log = Path(folder) / METRICS
        if log.exists():
            for line in log.read_text().splitlines():
                try:
                    record = json.loads(line)
                    self.plot.add(record.pop("epoch") + 1, record)
                except (ValueError, KeyError, TypeError):  # a partial line: skip it
                    continue

    def _ask_folder(self) -> None:
        if folder := ask_model_folder(self):
            self.load(folder)
