"""Progress events yielded by long jobs (training, features, attribution, export).

The CLI maps them to tqdm bars, the napari widgets to ``napari.utils.progress``
and plots, and tests call :func:`drain`. Payloads are small: an index and at most
one frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` units of ``stage`` are finished (batches, tiles, frames)."""

    stage: str
    done: int
    total: int
    info: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Metrics:
    """End-of-epoch metrics, e.g. ``{"loss": .., "acc": .., "val_loss": .., "val_acc": ..}``."""

    epoch: int
    values: dict[str, float]


@dataclass(frozen=True)
class Checkpoint:
    """A model was written to ``path`` (``kind`` is "best", "last" or "resume")."""

    path: str
    kind: str


@dataclass(frozen=True)
class FrameDone:
    """The result at position ``frame`` of the video (e.g. its features, or a map (Y, X)).

    A result of the pair (t, t+Δt) sits at ``frame`` t, and ``pair`` is the pair's number
    in the job's list of pairs; results of single frames have ``pair`` None.
    """

    frame: int
    data: Any = None
    pair: int | None = None


@dataclass(frozen=True)
class Done:
    """The job finished; ``result`` is what the blocking variant returns."""

    result: Any = None


Event = Progress | Metrics | Checkpoint | FrameDone | Done


def drain(events: Iterable[Event]) -> Any:
    """Run a job generator to the end and return the result of its ``Done`` event."""
    result = None
    for event in events:
        if isinstance(event, Done):
            result = event.result
    return result


def relay(events: Iterator[Event]) -> Iterator[Event]:
    """Pass a job's events on, except its Done, whose result ``yield from`` returns."""
    result = None
    for event in events:
        if isinstance(event, Done):
            result = event.result
        else:
            yield event
    return result
