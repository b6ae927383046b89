"""Every field of every widget explains itself in a tooltip."""

from __future__ import annotations

import pytest
from magicgui.widgets import Container, Label, ProgressBar, PushButton
from magicgui.widgets.bases import ValueWidget

from napari_tarrow.widgets import (
    AttributionWidget,
    ClassifyWidget,
    ExportWidget,
    SegmentWidget,
    TrainWidget,
)

#: Widgets that show something rather than take a setting (buttons say what they do).
SHOWN_ONLY = (Label, ProgressBar, PushButton)


def _fields(widget: object) -> dict[str, ValueWidget]:
    """The value widgets reachable from ``widget``'s attributes, by a path name."""
    found: dict[str, ValueWidget] = {}

    def walk(obj: object, path: str) -> None:
        if isinstance(obj, ValueWidget) and not isinstance(obj, SHOWN_ONLY):
            found[path] = obj
        elif isinstance(obj, Container):
            for child in obj:
                walk(child, f"{path}.{child.name or child.label}")
        for name, value in vars(obj).items() if isinstance(obj, Container) else ():
            if isinstance(value, ValueWidget | Container) and not name.startswith("_"):
                walk(value, f"{path}.{name}")

    for name, value in vars(widget).items():
        if isinstance(value, ValueWidget | Container):
            walk(value, name)
    return found


@pytest.mark.parametrize(
    "cls", [TrainWidget, AttributionWidget, ExportWidget, SegmentWidget, ClassifyWidget]
)
def test_every_field_has_a_tooltip(make_napari_viewer, cls) -> None:
    widget = cls(make_napari_viewer())
    fields = _fields(widget)
    assert len(fields) >= 3, fields
    missing = sorted(
        path
        for path, w in fields.items()
        if not (w.tooltip or "").strip()
        and not w.native.isHidden()  # not hidden on purpose
    )
    assert not missing, missing
