"""Dense TAP features z per frame, tiled with a halo so that memory stays bounded."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .._version import __version__
from ..device import autocast, available_memory, tune_cpu_allocator
from ..errors import Cancelled, ConfigError, stopped_means
from ..events import Done, Event, FrameDone, Progress
from ..io.export import (
    check_output,
    check_zarr_output,
    output_format,
    tiff_stream,
    write_sidecar,
    writes_in_background,
    zarr_stream,
)
from ..io.video import Video
from ..model import TapModel
from ..nn.tapnet import TapNet
from .tiling import AdaptiveTile, tile_grid, tile_info

#: None: the largest tile whose activations fit a quarter of the free memory
#: (:func:`auto_tile`), whole frames where they fit; an int fixes the side.
DEFAULT_TILE = None
#: Bytes of activations per window pixel and U-Net channel of the first level
#: (measured: a 624-pixel window at 32 channels peaked at about 0.8 GiB), with margin.
ACTIVATION_BYTES = 96
#: Layout of the network's weights and input at inference: on a Zen 3 CPU the U-Net's
#: forward pass on a 512x512 frame ran 1.4-2x faster than in the default layout
#: (same values to 1e-7; benchmarks/README.md), and CUDA convolutions prefer it too.
CHANNELS_LAST = torch.channels_last


def auto_tile(model: TapModel, shape: tuple[int, int]) -> int:
    """Largest tile side for frames of ``shape`` whose window fits the memory budget.

    The budget is a quarter of :func:`~napari_tarrow.device.available_memory`; the
    whole frame when it fits (no halo to recompute), else a multiple of the U-Net's grid.
    """
    cfg = model.config.model
    per_pixel = ACTIVATION_BYTES * cfg.unet_channels / cfg.subsample**2
    window = math.isqrt(int(available_memory(model.device) // 4 / per_pixel))
    if window >= max(shape):
        return max(shape)  # one tile: nothing to recompute
    m = cfg.multiple
    side = window - 2 * (-(-halo(model) // m) * m)  # the halo as tile_grid rounds it
    return max(m, side // m * m)


def halo(model: TapModel) -> int:
    """Tiling halo covering the U-Net's receptive field (input pixels)."""
    return model.net.backbone.receptive_radius * model.config.model.subsample


def inference_copy(model: TapModel) -> TapNet:
    """Copy ``model.net`` for inference, folding each batch norm into its convolution.

    torch's ``fuse_conv_bn_eval`` with the running statistics: one pass over each
    level's activations fewer, z equal to about 1e-7 relative; on an AVX512-BF16 CPU
    fp32 passes took 0.94-0.96 of the time, bf16 ones about the same
    (benchmarks/README.md). Made once per job: later changes to ``model.net`` do not
    reach it. The head's batch norms stay as they are.
    """
    net = copy.deepcopy(model.net).eval()
    for seq in net.modules():
        if isinstance(seq, nn.Sequential):
            for i in range(len(seq) - 1):
                conv, norm = seq[i], seq[i + 1]
                if type(conv) is nn.Conv2d and type(norm) is nn.BatchNorm2d:
                    seq[i], seq[i + 1] = fuse_conv_bn_eval(conv, norm), nn.Identity()
    return net.to(memory_format=CHANNELS_LAST)


@torch.no_grad()
def frame_features(
    model: TapModel,
    frame: np.ndarray,
    tile: int | AdaptiveTile | None = DEFAULT_TILE,
    amp: bool = False,
    dtype: torch.dtype = torch.float32,
    net: TapNet | None = None,
) -> torch.Tensor:
    """Normalised frame (Y, X) -> z (C, Y, X) of ``dtype`` on the model's device.

    Each tile is converted to ``dtype`` as it is copied into place (one pass).
    ``net`` computes z in place of ``model.net``: jobs over many frames pass their
    :func:`inference_copy`.

    ``amp`` computes in bf16 autocast: good for exported features (correlation
    0.99999 with fp32) and for Grad-CAM of trained models, which checks it
    (:func:`~napari_tarrow.inference.attribution.attribute`).

    Out of device memory, the tile side is halved and the frame recomputed (an
    :class:`AdaptiveTile` passed in keeps the smaller side for later frames).
    Runs under ``no_grad`` (not ``inference_mode``) so the result can be marked
    ``requires_grad`` for attribution.
    """
    net, dev = model.net if net is None else net, model.device
    net.eval()
    if dev.type == "cpu":
        tune_cpu_allocator()
    net.to(memory_format=CHANNELS_LAST)  # in place; a no-op once done
    x = torch.as_tensor(np.ascontiguousarray(frame), dtype=torch.float32, device=dev)
    side = AdaptiveTile.of(tile).choose(lambda: auto_tile(model, x.shape))

    def tiled(side: int) -> torch.Tensor:
        z = torch.empty(
            (model.config.model.features, *x.shape), dtype=dtype, device=dev
        )
        for t in tile_grid(x.shape, side, halo(model), model.config.model.multiple):
            window = x[t.window][None, None].contiguous(memory_format=CHANNELS_LAST)
            with autocast(dev, amp):
                zt = net.features(window)
            z[(slice(None), *t.dest)] = zt[0][(slice(None), *t.inner)]
        return z

    return side.run(tiled, "features")


def video_features(
    model: TapModel,
    video: Video,
    tile: int | AdaptiveTile | None = DEFAULT_TILE,
    stop: Callable[[], bool] = lambda: False,
    dtype: torch.dtype = torch.float32,
) -> Iterator[Event]:
    """Yield ``FrameDone(i, z)`` with z (C, Y, X) numpy of ``dtype`` for each frame, then Done.

    A stop request raises :class:`~napari_tarrow.errors.Cancelled` before the next frame.

    The conversion happens on the device (float16 halves the copy to the host).
    In bf16 autocast where the device computes it natively (``model.inference_amp``).
    Progress carries ``{"tile": side}`` once out-of-memory retries reduced the tile.
    """
    n, side, net = len(video), AdaptiveTile.of(tile), inference_copy(model)
    for i in range(n):
        if stop():
            raise Cancelled(f"features stopped after {i} of {n} frames")
        z = frame_features(model, video.frame(i), side, model.inference_amp, dtype, net)
        yield FrameDone(i, z.cpu().numpy())
        yield Progress("features", i + 1, n, tile_info(side))
    yield Done(n)


def features_shape(model: TapModel, video: Video) -> tuple[int, int, int, int]:
    """Shape (T, C, Y, X) of the exported features: full resolution, C = model features."""
    return (len(video), model.config.model.features, *video.shape[1:])


def export_features(
    model: TapModel,
    video: Video,
    path: str | Path,
    dtype: str = "float16",
    tile: int | AdaptiveTile | None = DEFAULT_TILE,
    stop: Callable[[], bool] = lambda: False,
    source: str | None = None,
    file_format: str | None = None,
) -> Iterator[Event]:
    """Stream z of every frame to a (T, C, Y, X) TIFF plus a JSON sidecar, or OME-Zarr.

    ``file_format`` is "tiff" or "zarr" (default: from the suffix, ``.zarr`` or TIFF);
    a zarr store holds the sidecar's record in its attributes. Yields Progress per
    frame and ``Done(path)``. A stop request discards the partial output
    (:class:`~napari_tarrow.errors.Cancelled` is raised).
    """
    if dtype not in ("float16", "float32"):
        raise ConfigError(f"dtype={dtype!r} is invalid: use float16 or float32.")
    zarr = output_format(path, file_format) == "zarr"
    (check_zarr_output if zarr else check_output)(path)
    shape = features_shape(model, video)
    info = {
        "napari_tarrow": __version__,
        "kind": "TAP dense features",
        "axes": "TCYX",
        "shape": list(shape),
        "dtype": dtype,
        "computed_in": "bf16 autocast" if model.inference_amp else "fp32",
        "input": source or video.name,
        "frame_numbers": video.times.tolist(),
        "model": str(model.folder),
        "config": model.config.to_dict(),
    }
    stream = (
        zarr_stream(path, shape, dtype, "TCYX", info)
        if zarr
        else tiff_stream(path, shape, dtype, "TCYX")
    )
    frames = video_features(model, video, tile, stop, getattr(torch, dtype))
    with (
        stopped_means("feature export stopped; no file written"),
        stream as write,
        writes_in_background(write) as put,  # the file overlaps the compute
    ):
        for event in frames:
            if isinstance(event, FrameDone):
                put(event.data)
            elif isinstance(event, Progress):
                yield event
    if not zarr:
        write_sidecar(path, info)
    yield Done(Path(path))
