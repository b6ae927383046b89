"""Progress of a job inside its widget: a bar and the time left, no napari activity bar."""

from __future__ import annotations

import time

from qtpy.QtWidgets import QWidget

from napari_tarrow.events import Done, Progress
from napari_tarrow.widgets._common import RunButtons, time_left
from napari_tarrow.widgets._jobs import JobRunner


def test_time_left_reads_as_a_person_says_it() -> None:
    assert time_left(12.4) == "12 s"
    assert time_left(170) == "3 min"
    assert time_left(4800) == "1 h 20 min"


def test_the_widget_shows_progress_and_time_left_and_napari_gets_no_bar(qtbot) -> None:
    from napari.utils.progress import progress

    host = QWidget()
    qtbot.addWidget(host)
    runner = JobRunner(host)
    buttons = RunButtons(runner, "Run")
    shown: list[tuple[int, str, int]] = []
    runner.progressed.connect(
        lambda stage, done, total, left: shown.append(
            (done, buttons.eta.value, len(progress._all_instances))
        )
    )
    bars_before = len(progress._all_instances)

    def job(stop):
        for i in range(1, 5):
            time.sleep(0.6)  # slower than the update interval: every step shows
            yield Progress("train", i, 10)
        yield Done(None)

    runner.start(job)
    qtbot.waitUntil(lambda: runner.state == "idle", timeout=20_000)
    assert len(shown) >= 2, shown
    done, text, _ = shown[-1]
    assert text.startswith(f"train: {done}/10") and "left" in text, text
    assert buttons.progress.max == 10
    # no activity-dock bar while running: napari animates its status bar for one
    assert all(bars == bars_before for *_, bars in shown), shown
    assert not buttons.progress.visible and buttons.eta.value == ""  # idle again
