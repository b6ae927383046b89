"""Dense TAP features z per frame, tiled with a halo so that memory stays bounded."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .data.video import Video
from .device import tune_cpu_allocator
from .errors import Cancelled, ConfigError
from .events import Done, Event, FrameDone, Progress
from .export import check_output, tiff_stream, write_sidecar
from .model import TapModel
from .tiling import AdaptiveTile, tile_grid, tile_info

DEFAULT_TILE = 512


def halo(model: TapModel) -> int:
    """Tiling halo covering the U-Net's receptive field (input pixels)."""
    return model.net.backbone.receptive_radius * model.config.model.subsample


@torch.no_grad()
def frame_features(
    model: TapModel, frame: np.ndarray, tile: int | AdaptiveTile = DEFAULT_TILE
) -> torch.Tensor:
    """Normalised frame (Y, X) -> z (C, Y, X) float32 on the model's device.

    Out of device memory, the tile side is halved and the frame recomputed (an
    :class:`AdaptiveTile` passed in keeps the smaller side for later frames).
    Runs under ``no_grad`` (not ``inference_mode``) so the result can be marked
    ``requires_grad`` for attribution.
    """
    net, dev = model.net, model.device
    net.eval()
    if dev.type == "cpu":
        tune_cpu_allocator()
    x = torch.as_tensor(np.ascontiguousarray(frame), dtype=torch.float32, device=dev)

    def tiled(side: int) -> torch.Tensor:
        z = torch.empty((model.config.model.features, *x.shape), device=dev)
        for t in tile_grid(x.shape, side, halo(model), model.config.model.multiple):
            z[(slice(None), *t.dest)] = net.features(x[t.window][None, None])[0][
                (slice(None), *t.inner)
            ]
        return z

    return AdaptiveTile.of(tile).run(tiled, "features")


def video_features(
    model: TapModel,
    video: Video,
    tile: int | AdaptiveTile = DEFAULT_TILE,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[Event]:
    """Yield ``FrameDone(i, z)`` with z (C, Y, X) float32 numpy for each frame, then Done.

    Progress carries ``{"tile": side}`` once out-of-memory retries reduced the tile.
    """
    n, side = len(video), AdaptiveTile.of(tile)
    for i in range(n):
        if stop():
            break
        z = frame_features(model, video.frame(i), side)
        yield FrameDone(i, z.cpu().numpy())
        yield Progress("features", i + 1, n, tile_info(side))
    yield Done(n)


def export_features(
    model: TapModel,
    video: Video,
    path: str | Path,
    dtype: str = "float16",
    tile: int | AdaptiveTile = DEFAULT_TILE,
    stop: Callable[[], bool] = lambda: False,
    source: str | None = None,
) -> Iterator[Event]:
    """Stream z of every frame to a (T, C, Y, X) TIFF plus a JSON sidecar.

    Yields Progress per frame and ``Done(path)``. A stop request discards the
    partial file (:class:`~napari_tarrow.errors.Cancelled` is raised).
    """
    if dtype not in ("float16", "float32"):
        raise ConfigError(f"dtype={dtype!r} is invalid: use float16 or float32.")
    check_output(path)
    shape = (len(video), model.config.model.features, *video.shape[1:])
    with tiff_stream(path, shape, dtype, "TCYX") as write:
        for event in video_features(model, video, tile, stop):
            if isinstance(event, FrameDone):
                write(event.data)
            elif isinstance(event, Progress):
                yield event
        if stop():
            raise Cancelled("feature export stopped; no file written")
    write_sidecar(
        path,
        {
            "napari_tarrow": __version__,
            "kind": "TAP dense features",
            "axes": "TCYX",
            "shape": list(shape),
            "dtype": dtype,
            "input": source or video.name,
            "frame_numbers": video.times.tolist(),
            "model": str(model.folder),
            "config": model.config.to_dict(),
        },
    )
    yield Done(Path(path))
