"""Errors a user can act on: each message names the problem and the fix."""

from collections.abc import Iterator
from contextlib import contextmanager


class TarrowError(ValueError):
    """Base class for problems caused by input, files or settings (not by bugs)."""


class VideoError(TarrowError):
    """The video cannot be used: wrong dimensions, too few frames, NaN, RGB, missing."""


class ModelFolderError(TarrowError):
    """A model folder is missing, corrupt, or not written by napari-tarrow."""


class ConfigError(TarrowError):
    """A setting is out of its valid range or unknown."""


class Cancelled(Exception):
    """A job was stopped on request; whatever it saved before stays valid."""


@contextmanager
def stopped_means(message: str) -> Iterator[None]:
    """Turn a stop of a nested job into the outer job's own :class:`Cancelled` message."""
    try:
        yield
    except Cancelled:
        raise Cancelled(message) from None
