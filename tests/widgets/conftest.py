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


@pytest.fixture(autouse=True)
def jobs_without_threads(request: pytest.FixtureRequest, monkeypatch) -> None:
    """Run widget jobs in the test's own thread (NAPARI_TARROW_NOTHREADS), except in tests
    that act while a job runs (Stop, closing a window): those are marked ``threaded``."""
    if request.node.get_closest_marker("threaded") is None:
        monkeypatch.setenv(_jobs.NO_THREADS, "1")
