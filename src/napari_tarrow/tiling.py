"""Tile grid with a halo for fully convolutional inference on frames of any size.

Windows start on a grid of ``multiple`` pixels (the U-Net's pooling grid) and
reach ``halo`` pixels beyond their tile, so with a halo covering the receptive
field, stitched tiles equal the untiled result.
"""

from __future__ import annotations

from dataclasses import dataclass


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
