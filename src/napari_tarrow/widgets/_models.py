"""Models shared by the widgets of a session: trained or loaded once, picked anywhere."""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

from magicgui.widgets import ComboBox, Container, Label, PushButton
from napari.utils.notifications import show_error, show_info
from psygnal import Signal
from qtpy.QtWidgets import QFileDialog

from ..device import available_devices, describe_device
from ..errors import TarrowError
from ..model import TapModel
from ..model.card import display_name, model_card


class ModelStore:
    """Models by display name (:func:`display_name`, made unique); emits ``changed``."""

    changed = Signal()

    def __init__(self) -> None:
        self.models: dict[str, TapModel] = {}

    def add(self, model: TapModel) -> str:
        """Add ``model`` (replacing one from the same folder); returns its name."""
        folder = Path(model.folder) if model.folder else None
        for name, other in list(self.models.items()):
            if folder is not None and other.folder and Path(other.folder) == folder:
                del self.models[name]
        base = display_name(folder)
        name, k = base, 2
        while name in self.models:
            name, k = f"{base} ({k})", k + 1
        self.models[name] = model
        self.changed.emit()
        return name

    def load(self, folder: str | Path, device: str = "auto") -> str:
        """Load a model folder (ours or the reference implementation's) and add it."""
        return self.add(TapModel.from_folder(folder, device=device))

    def load_and_tell(self, folder: str | Path) -> str | None:
        """:meth:`load` with the outcome as a notification; the name, or None on a bad folder."""
        try:
            name = self.load(folder)
        except TarrowError as e:
            show_error(str(e))
            return None
        show_info(f"Loaded model '{name}'.")
        return name


def ask_model_folder(parent: Any) -> str:
    """Ask for a model folder (starting in the home folder); "" when cancelled."""
    return QFileDialog.getExistingDirectory(
        parent, "Open a TAP model folder", str(Path.home())
    )


_STORES: dict[int, ModelStore] = {}


def store_of(viewer: Any) -> ModelStore:
    """Return the models of one viewer, shared by its widgets; they go with the viewer."""
    key = id(viewer)
    if key not in _STORES:
        _STORES[key] = ModelStore()
        weakref.finalize(viewer, _STORES.pop, key, None)
    return _STORES[key]


def device_choices() -> list[tuple[str, str]]:
    """(label, device) for every usable device, the fastest first."""
    return [(describe_device(d), d) for d in available_devices()]


class ModelPicker(Container):
    """A model drop-down fed by a :class:`ModelStore`, the chosen model's card, "Load model…"."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store
        self.combo = ComboBox(
            label="model",
            choices=self._choices,
            tooltip="A TAP model trained or loaded in this session.",
        )
        self.card = Label(label="", tooltip="How long the chosen model trained.")
        self.load_button = PushButton(text="Load model…")
        super().__init__(widgets=[self.combo, self.card, self.load_button], labels=True)
        self.load_button.changed.connect(self._ask_folder)
        self.combo.changed.connect(self._show_card)
        self.card.native.setWordWrap(True)
        self._show_card()
        refresh = self._refresh
        store.changed.connect(refresh)  # until Qt deletes the widget, not longer
        self.native.destroyed.connect(lambda: store.changed.disconnect(refresh))

    def _choices(self, _widget: object = None) -> list[str]:
        return list(self.store.models)

    def _refresh(self) -> None:
        self.combo.reset_choices()
        if self.store.models:
            self.combo.value = list(self.store.models)[-1]
        self._show_card()

    def _show_card(self, _value: object = None) -> None:
        """Show the chosen model's card under the drop-down, a warning in orange."""
        model = self.model
        card = model_card(model, self.combo.value) if model is not None else None
        self.card.value = card.summary() if card else "no model yet"
        style = "color: orange" if card and card.warning else ""
        self.card.native.setStyleSheet(style)

    @property
    def model(self) -> TapModel | None:
        """The chosen model, or None when no model is trained or loaded yet."""
        return self.store.models.get(self.combo.value) if self.combo.value else None

    def require(self) -> TapModel:
        """Return the chosen model; without one, a TarrowError saying how to get one."""
        if self.model is None:
            raise TarrowError(
                "No model: train one (Train TAP model) or load a model folder (Load model…)."
            )
        return self.model

    def load(self, folder: str | Path) -> None:
        """Load ``folder`` and select it; a bad folder gives a notification."""
        name = self.store.load_and_tell(folder)
        if name is not None:
            self.combo.value = name

    def _ask_folder(self) -> None:
        if folder := ask_model_folder(self.native):
            self.load(folder)
