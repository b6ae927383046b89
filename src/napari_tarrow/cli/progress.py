"""Driving a job generator from a terminal: tqdm bars, Ctrl-C / SIGTERM and time limits."""

from __future__ import annotations

import math
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

from ..events import Done, Metrics, Progress


def run_events(
    events: Iterator[Any],
    desc: str,
    quiet: bool = False,
    deadline: float | None = None,
) -> Any:
    """Drive a job generator with a tqdm bar; returns the ``Done`` result.

    With a ``deadline`` (``time.monotonic()`` seconds, e.g. from ``--time-limit``)
    the bar counts the steps that fit before it, so its time left is the limit's.
    """
    from tqdm import tqdm

    bar, result, start = None, None, time.monotonic()
    try:
        for ev in events:
            if isinstance(ev, Progress):
                if bar is None:
                    bar = tqdm(
                        total=ev.total,
                        desc=desc,
                        disable=quiet,
                        unit="step",
                        dynamic_ncols=True,
                        mininterval=1.0,
                    )
                if deadline is not None:
                    now = time.monotonic()
                    bar.total = expected_steps(
                        ev.done, ev.total, now - start, deadline - now
                    )
                bar.update(ev.done - bar.n)
                if ev.info:
                    bar.set_postfix(
                        {k: f"{v:.3g}" for k, v in ev.info.items()}, refresh=False
                    )
            elif isinstance(ev, Metrics) and not quiet:
                msg = "  ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in ev.values.items()
                )
                (bar.write if bar else print)(f"epoch {ev.epoch + 1}: {msg}")
            elif isinstance(ev, Done):
                result = ev.result
    finally:
        if bar is not None:
            bar.close()
    return result


def expected_steps(done: int, total: int, elapsed: float, left: float) -> int:
    """Return the steps a job will reach: ``total``, or what fits in ``left`` seconds at its pace."""
    if done == 0 or elapsed <= 0:
        return total
    return max(done, min(total, done + math.floor(done / elapsed * max(left, 0.0))))


class StopOnInterrupt:
    """Stop a job at its next step on the first Ctrl-C or SIGTERM, or at a time limit.

    SIGTERM is what a cluster scheduler sends before it kills a job: the job
    stops as cleanly as on Ctrl-C. A second signal aborts at once.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, minutes: float | None = None) -> None:
        self.requested = False
        self.deadline = None if minutes is None else time.monotonic() + 60 * minutes

    def __call__(self) -> bool:
        """Return True once a stop was requested or the time limit passed."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.requested = True
        return self.requested

    def __enter__(self) -> StopOnInterrupt:
        self._old = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, *_: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this step (Ctrl-C again to abort)...", file=sys.stderr)
