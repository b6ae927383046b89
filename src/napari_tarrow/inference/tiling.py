"""Tile grid with a halo for fully convolutional inference on frames of any size.

Windows start on a grid of ``multiple`` pixels (the U-Net's pooling grid) and
reach ``halo`` pixels beyond their tile, so with a halo covering the receptive
field, stitched tiles equal the untiled result. :class:`AdaptiveTile` halves
the tile side and repeats the work when the device runs out of memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

from ..errors import TarrowError

MIN_TILE = 32
# the same class in torch >= 2.5; both named so that either spelling is caught
OUT_OF_MEMORY = (torch.OutOfMemoryError, torch.cuda.OutOfMemoryError)
T = TypeVar("T")


@dataclass(frozen=True)
class Tile:
    """``window`` is read from the frame; ``inner`` (relative to the window) goes to ``dest``."""

    window: tuple[slice, slice]
    inner: tuple[slice, slice]
    dest: tuple[slice, slice]


def _axis(n: int, tile: int, halo: int) -> list[tuple[slice, slice, slice]]:
    out = []
    for start in range(0, n, tile):
        stop = min(start + tile, n)
        w0, w1 = max(0, start - halo), min(n, stop + halo)
        out.append((slice(w0, w1), slice(start - w0, stop - w0), slice(start, stop)))
    return out


def tile_grid(
    shape: tuple[int, int], tile: int, halo: int, multiple: int = 8
) -> list[Tile]:
    """Tiles covering ``shape`` (Y, X); ``tile`` and ``halo`` are rounded up to ``multiple``."""
    tile = -(-max(tile, multiple) // multiple) * multiple
    halo = -(-halo // multiple) * multiple
    ys, xs = _axis(shape[0], tile, halo), _axis(shape[1], tile, halo)
    return [
        Tile((wy, wx), (iy, ix), (dy, dx)) for wy, iy, dy in ys for wx, ix, dx in xs
    ]


class TileSizeWarning(RuntimeWarning):
    """The device ran out of memory; the tile side was halved and the work repeated."""


class AdaptiveTile:
    """Tile side shared by the frames of one job: halved on out-of-memory, never grown.

    Parameters
    ----------
    size : int or None
        Requested tile side (pixels); None lets the job choose one (:meth:`choose`).
    minimum : int
        Smallest side tried before giving up with a :class:`TarrowError`.
    """

    def __init__(self, size: int | None, minimum: int = MIN_TILE) -> None:
        self.requested = self.size = None if size is None else int(size)
        self.minimum = minimum if size is None else min(minimum, int(size))

    @classmethod
    def of(cls, tile: int | AdaptiveTile | None) -> AdaptiveTile:
        """Wrap a plain side (None: chosen at first use); pass an AdaptiveTile through."""
        return tile if isinstance(tile, AdaptiveTile) else cls(tile)

    def choose(self, side: Callable[[], int]) -> AdaptiveTile:
        """Set the side from ``side()`` if none was requested (the first frame decides)."""
        if self.size is None:
            self.requested = self.size = int(side())
            self.minimum = min(self.minimum, self.size)
        return self

    @property
    def reduced(self) -> bool:
        """True once the side was halved at least once."""
        return self.size < self.requested

    def run(self, work: Callable[[int], T], what: str) -> T:
        """``work(side)``; on out-of-memory halve the side (with a warning) and retry."""
        while True:
            try:
                return work(self.size)
            except OUT_OF_MEMORY:
                pass  # retry outside the handler so the failed attempt's tensors are freed
            self._halve(what)

    def _halve(self, what: str) -> None:
        _empty_device_caches()
        if self.size // 2 < self.minimum:
            raise TarrowError(
                f"out of device memory computing {what} even with {self.size}-pixel "
                "tiles; run on the CPU (--device cpu) or free GPU memory."
            )
        self.size //= 2
        warnings.warn(
            f"out of device memory computing {what}: retrying with {self.size}-pixel "
            "tiles (slower; pass a smaller tile to skip the failed attempts)",
            TileSizeWarning,
            stacklevel=4,
        )


def tile_info(tile: AdaptiveTile) -> dict[str, float]:
    """Progress info naming the reduced tile side (empty while it is as requested)."""
    return {"tile": float(tile.size)} if tile.reduced else {}


def _empty_device_caches() -> None:
    """Return cached blocks to the device so the smaller retry can use them."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and torch.backends.mps.is_available():
        mps.empty_cache()
