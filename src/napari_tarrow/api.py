"""Blocking functions for notebooks and scripts: train a model, compute maps and features.

Each runs the same job generator as the widgets and the CLI to its end (``events.drain``)
and returns the result; the generators themselves (``training.loop.train``,
``inference.attribution.attribute``, ``inference.features.video_features``) give progress
and a stop flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .config import PRESETS, TapConfig
from .events import FrameDone, drain
from .inference.features import DEFAULT_TILE
from .io.video import Video, as_video
from .model import TapModel

VideoLike = Video | np.ndarray | str | Path


def as_model(model: TapModel | str | Path, device: str = "auto") -> TapModel:
    """Return ``model``, or the model folder at this path as a :class:`TapModel`."""
    if isinstance(model, TapModel):
        return model
    return TapModel.from_folder(model, device=device)


def train(
    videos: VideoLike | Sequence[VideoLike],
    out: str | Path,
    config: TapConfig | str = "fast",
    device: str = "auto",
    **settings: Any,
) -> TapModel:
    """Train a TAP model into the folder ``out`` and return it.

    ``config`` is a preset name ("fast", "paper") or a :class:`TapConfig`; keyword
    ``settings`` change single fields, e.g. ``train(video, "model", epochs=5)``.
    """
    cfg = PRESETS[config] if isinstance(config, str) else config
    cfg = cfg.replace(**settings)
    many = isinstance(videos, list | tuple)
    loaded = [as_video(v, cfg.data.percentiles) for v in (videos if many else [videos])]
    from .training.loop import train as train_job

    return drain(train_job(cfg, loaded, out, device))


def attribute(
    model: TapModel | str | Path,
    video: VideoLike,
    delta: int = 1,
    tile: int | None = DEFAULT_TILE,
) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM maps of every pair (t, t+Δt): ``(maps (K, Y, X), pairs (K, 2))``.

    ``pairs[k]`` holds the video positions (t, t+Δt) of ``maps[k]``.
    """
    from .inference.attribution import attribute as attribution_job

    model = as_model(model)
    events = list(
        attribution_job(
            model, as_video(video, model.config.data.percentiles), delta, tile
        )
    )
    maps = [e.data for e in events if isinstance(e, FrameDone)]
    return np.stack(maps), drain(events)


def features(
    model: TapModel | str | Path,
    video: VideoLike,
    tile: int | None = DEFAULT_TILE,
) -> np.ndarray:
    """Dense TAP features of every frame, (T, C, Y, X) float32, in memory.

    For videos larger than memory, ``inference.features.export_features`` streams
    them to TIFF or OME-Zarr instead.
    """
    from .inference.features import video_features

    model = as_model(model)
    job = video_features(model, as_video(video, model.config.data.percentiles), tile)
    return np.stack([e.data for e in job if isinstance(e, FrameDone)])
