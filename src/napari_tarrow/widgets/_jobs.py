"""Run a core job (an event generator) in a napari thread worker, with progress and stop.

The worker only iterates the generator; every event is handled on the main thread,
so widgets touch the viewer there and nowhere else. Expected problems (bad input,
a stop request) end the job with a notification instead of a traceback dialog.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEvent, QObject, Signal
from qtpy.QtWidgets import QApplication, QWidget

from ..device import release_cpu_heap
from ..errors import Cancelled, TarrowError
from ..events import Done, Event, Progress

log = logging.getLogger(__name__)

#: Seconds between two progress updates on screen (each repaint of a window holding
#: napari's OpenGL canvas composes the whole window).
UPDATE_INTERVAL = 1.0
#: ``NAPARI_TARROW_NOTHREADS=1`` runs every job in the calling thread (the widget tests, a
#: debugger), as stardist-napari offers; the GUI does not respond until the job ends.
NO_THREADS = "NAPARI_TARROW_NOTHREADS"

#: A job: given a stop callable, returns the core event generator to run.
JobFactory = Callable[[Callable[[], bool]], Iterator[Event]]


@dataclass(frozen=True)
class Failed:
    """The job ended with an expected problem (``message`` says what and how to fix)."""

    message: str
    cancelled: bool = False


def _guarded(job: JobFactory, stop: Callable[[], bool]) -> Iterator[Event | Failed]:
    """Run ``job`` and turn its exceptions into a final :class:`Failed` event.

    Whatever the outcome, the heap that CPU jobs keep for speed goes back to the OS.
    """
    try:
        yield from job(stop)
    except Cancelled as e:
        yield Failed(str(e), cancelled=True)
    except TarrowError as e:
        yield Failed(str(e))
    except MemoryError:
        yield Failed("Out of memory: use a smaller crop/batch size or a smaller video.")
    except Exception as e:  # an unexpected bug: keep the UI alive, log the traceback
        log.exception("napari-tarrow job failed")
        yield Failed(f"Unexpected error ({type(e).__name__}: {e}); details in the log.")
    finally:
        release_cpu_heap()


def _weak(callback: Callable[..., None]) -> Callable[[], Callable[..., None] | None]:
    """Return a getter of ``callback`` that does not keep a bound method's object alive.

    The worker's handler must not hold the widget (and through it the viewer):
    napari keeps finished workers around a while, and the viewer would leak.
    """
    if inspect.ismethod(callback):
        return weakref.WeakMethod(callback)
    return lambda: callback


class JobRunner(QObject):
    """One job at a time for a widget: state (idle/running/stopping), stop, progress.

    ``state_changed`` emits the new state; ``progressed`` (stage, done, total,
    seconds left or -1) at most every :data:`UPDATE_INTERVAL`, for the widget's own
    bar. napari's activity-dock bars are not used: while one exists napari animates
    its status bar, which re-composes the whole window (with the OpenGL canvas) all
    the time; with software rendering on 2 cores, training ran 2.5x slower than on the
    command line (``benchmarks/widget_overhead.py``). ``on_event`` receives each core event on
    the main thread; ``on_done`` the result of ``Done`` (not called after a failure).
    Closing the main window or the widget stops a running job.
    """

    state_changed = Signal(str)
    progressed = Signal(str, int, int, float)

    def __init__(self, widget: QWidget) -> None:
        super().__init__(widget)
        self.state = "idle"
        self.worker: Any = None
        self._stop = threading.Event()
        self._stage: tuple[str, int, float] | None = None  # stage, total, start
        self._last_update = 0.0
        self._watched: QObject | None = None
        widget.destroyed.connect(self._stop.set)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._stop.set)
        self._widget = widget

    def start(
        self,
        job: JobFactory,
        on_event: Callable[[Event], None] = lambda e: None,
        on_done: Callable[[Any], None] = lambda r: None,
    ) -> None:
        """Start ``job`` in a worker thread unless one is running."""
        if self.state != "idle":
            show_warning("A job is already running: stop it first.")
            return
        self._watch_window()
        self._stop.clear()
        self._set_state("running")

        runner, events, done = weakref.ref(self), _weak(on_event), _weak(on_done)

        def handle(event: Event | Failed) -> None:
            on_event, on_done, me = events(), done(), runner()
            if me is None or on_event is None or on_done is None:
                return  # the widget is gone
            try:
                if isinstance(event, Failed):
                    (show_info if event.cancelled else show_error)(event.message)
                elif isinstance(event, Progress):
                    if me._progress(event):  # throttled: see UPDATE_INTERVAL
                        on_event(event)
                elif isinstance(event, Done):
                    on_done(event.result)
                else:
                    on_event(event)
            except Exception as e:  # a bug in showing results: say so, keep the UI
                log.exception("napari-tarrow could not show a result")
                show_error(f"Could not show the result ({type(e).__name__}: {e}).")

        if os.environ.get(NO_THREADS) == "1":  # tests and debugging: all in this thread
            for event in _guarded(job, self._stop.is_set):
                handle(event)
            self._finished()
            return
        self.worker = create_worker(
            _guarded, job, self._stop.is_set, _start_thread=False
        )
        self.worker.yielded.connect(handle)
        self.worker.finished.connect(self._finished)
        self.worker.start()

    def stop(self) -> None:
        """Ask the running job to end at its next step (models saved so far stay)."""
        if self.state == "running":
            self._stop.set()
            self._set_state("stopping")

    @property
    def stop_requested(self) -> bool:
        """True once a stop was asked for (the job may still be finishing its step)."""
        return self._stop.is_set()

    def _progress(self, event: Progress) -> bool:
        """Emit ``progressed`` for ``event``, at most every UPDATE_INTERVAL; True if emitted."""
        now = time.monotonic()
        if self._stage is None or self._stage[:2] != (event.stage, event.total):
            self._stage, self._last_update = (event.stage, event.total, now), 0.0
        if event.done != event.total and now - self._last_update < UPDATE_INTERVAL:
            return False
        self._last_update = now
        elapsed = now - self._stage[2]
        left = elapsed / event.done * (event.total - event.done) if event.done else -1.0
        self.progressed.emit(event.stage, event.done, event.total, left)
        return True

    def _finished(self) -> None:
        self._stage = None
        self.worker = None
        self._set_state("idle")

    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_changed.emit(state)

    def _watch_window(self) -> None:
        """Stop the job when the window holding the widget closes."""
        window = self._widget.window()
        if window is not self._watched and window is not self._widget:
            window.installEventFilter(self)
            self._watched = window

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Close:
            self._stop.set()
        return False
