"""From napari layers to core inputs and back: videos, result names, layers updated in place.

No Qt here: these functions take and return layers and arrays, so tests can call
them without a window.
"""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np

from ..errors import VideoError
from ..io.video import Video


class AxisFrames:
    """A lazy (T, Y, X) view of an n-D array with one axis as time and the others fixed.

    Axis ``time_axis`` is time, the last two are Y and X, every other axis is held
    at ``fixed[axis]``.

    Reads one frame per index, so dask/zarr layer data is never loaded whole.
    """

    def __init__(self, data: Any, time_axis: int, fixed: dict[int, int]) -> None:
        self.data, self.time_axis, self.fixed = data, time_axis, fixed
        self.shape = (data.shape[time_axis], *data.shape[-2:])
        self.ndim = 3

    def __getitem__(self, i: int) -> np.ndarray:
        index = tuple(
            i if ax == self.time_axis else self.fixed.get(ax, 0)
            for ax in range(self.data.ndim - 2)
        )
        return np.asarray(self.data[index])


class DiskFrames:
    """A (T, Y, X) float32 array-like kept in a temporary file, for result layers.

    napari reads it slice by slice (``__getitem__``), so a layer of maps for a long
    video costs memory for the frames on screen only. Frames are written with
    positioned writes as they are computed; frames never written read as zeros
    (the file is sparse until then) and the file goes away with the object.
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(np.float32)
        self.ndim = len(self.shape)
        self._frame_bytes = self.dtype.itemsize * int(np.prod(self.shape[1:]))
        self._file = tempfile.TemporaryFile(prefix="napari-tarrow-")  # noqa: SIM115
        self._file.truncate(self._frame_bytes * self.shape[0])
        self._peaks: dict[int, tuple[float, float]] = {}  # (99.5th percentile, max)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def peak(self) -> float:
        """Largest value written (0 when nothing was)."""
        return max((p[1] for p in self._peaks.values()), default=0.0)

    @property
    def bright(self) -> float:
        """Largest per-frame 99.5th percentile written: a contrast limit for every map.

        One frame's peak as the limit would leave the other maps faint.
        """
        return max((p[0] for p in self._peaks.values()), default=0.0)

    def __setitem__(self, t: int, frame: np.ndarray) -> None:
        frame = np.ascontiguousarray(frame, self.dtype).reshape(self.shape[1:])
        self._file.seek(int(t) * self._frame_bytes)
        self._file.write(frame.tobytes())
        if frame.size:
            self._peaks[int(t)] = (
                float(np.percentile(frame, 99.5)),
                float(frame.max()),
            )

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` (Y, X), read from the file."""
        self._file.seek(t * self._frame_bytes)
        data = self._file.read(self._frame_bytes)
        return np.frombuffer(data, self.dtype).reshape(self.shape[1:])

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            i = next(n for n, k in enumerate(key) if k is Ellipsis)
            fill = (slice(None),) * (self.ndim - len(key) + 1)
            key = key[:i] + fill + key[i + 1 :]
        times = np.arange(self.shape[0])[key[0]]  # IndexError past the end
        if np.ndim(times) == 0:
            return self.frame(int(times))[key[1:]]
        stack = np.stack([self.frame(int(t)) for t in times]).reshape(
            (len(times), *self.shape[1:])
        )
        return stack[(slice(None), *key[1:])]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)


def layer_data(layer: Any) -> Any:
    """Full-resolution data of an Image layer (level 0 of a multiscale layer)."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def video_from_layer(
    layer: Any, time_axis: int = 0, position: tuple[float, ...] | None = None
) -> Video:
    """Return a lazy :class:`Video` of an Image layer, checked for what TAP needs.

    ``position`` (world coordinates, e.g. ``viewer.dims.point``) picks the index of
    every axis other than time, Y and X; without it those axes are at 0.
    """
    if layer is None:
        raise VideoError(
            "No time-lapse layer chosen: open one (File > Open) and pick it. 2D and RGB "
            "layers are not listed: merge 2D frames with right-click > Merge to Stack, "
            "split an RGB layer with right-click > Split RGB."
        )
    if getattr(layer, "rgb", False):
        raise VideoError(
            f"Layer '{layer.name}' is RGB; TAP needs one grayscale channel. Split it "
            "(right-click the layer > Split RGB) and pick one channel."
        )
    data = layer_data(layer)
    if data.ndim < 3:
        raise VideoError(
            f"Layer '{layer.name}' is a single 2D image {tuple(data.shape)}; TAP needs a "
            "time-lapse (T, Y, X). If the frames are separate layers, select them and "
            "right-click > Merge to Stack."
        )
    if not 0 <= time_axis < data.ndim - 2:
        raise VideoError(
            f"Time axis {time_axis} is not valid for layer '{layer.name}' with shape "
            f"{tuple(data.shape)}: choose one of the axes 0..{data.ndim - 3}."
        )
    fixed: dict[int, int] = {}
    if data.ndim > 3 and position is not None:
        coords = layer.world_to_data(position[-layer.ndim :])
        fixed = {
            ax: int(np.clip(round(float(coords[ax])), 0, data.shape[ax] - 1))
            for ax in range(data.ndim - 2)
        }
    frames = (
        data
        if data.ndim == 3 and time_axis == 0
        else AxisFrames(data, time_axis, fixed)
    )
    return Video(frames, name=layer.name)


def result_name(layer: Any, what: str) -> str:
    """Return the fixed name of a result layer, e.g. ``"cells attribution"``."""
    return f"{layer.name} {what}"


def spatial_transform(layer: Any, time_axis: int = 0) -> dict[str, tuple[float, ...]]:
    """``scale`` and ``translate`` of the (T, Y, X) axes of ``layer``, for result layers."""
    axes = [time_axis, layer.ndim - 2, layer.ndim - 1]
    return {
        "scale": tuple(float(layer.scale[a]) for a in axes),
        "translate": tuple(float(layer.translate[a]) for a in axes),
    }


def add_or_update(viewer: Any, kind: str, name: str, data: Any, **kwargs: Any) -> Any:
    """Put ``data`` into the layer ``name`` and return the layer.

    The layer is created as ``kind`` if missing (or replaced if it has another
    type), so re-runs update the same layer.
    """
    layer = viewer.layers[name] if name in viewer.layers else None  # noqa: SIM401
    if layer is not None and type(layer).__name__.lower() != kind:
        viewer.layers.remove(layer)
        layer = None
    if layer is None:
        return getattr(viewer, f"add_{kind}")(data, name=name, **kwargs)
    layer.data = data
    for key in ("scale", "translate", "features"):
        if key in kwargs:
            setattr(layer, key, kwargs[key])
    return layer
