"""Widget-test fixtures: the notifications a widget showed."""

from __future__ import annotations

import pytest

from napari_tarrow.widgets import (
    _jobs,
    _models,
    attribution,
    classify,
    export,
    segment,
    train,
)


@pytest.fixture
def messages(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Notifications the widgets showed, as (kind, text)."""
    got: list[tuple[str, str]] = []
    for module in (_jobs, _models, attribution, classify, export, segment, train):
        for kind in ("show_error", "show_info", "show_warning"):
            if hasattr(module, kind):
                monkeypatch.setattr(
                    module, kind, lambda text, _k=kind: got.append((_k, str(text)))
                )
    return got
