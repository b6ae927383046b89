"""Compose job generators: pass events on and hand back the inner job's result."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..events import Done, Event


def relay(events: Iterator[Event]) -> Iterator[Event]:
    """Pass a job's events on, except its Done, whose result ``yield from`` returns."""
    result: Any = None
    for event in events:
        if isinstance(event, Done):
            result = event.result
        else:
            yield event
    return result
