"""Blocking functions for notebooks and scripts: train a model, compute maps and features.

Each runs the same job generator as the widgets and the CLI to its end and returns the
result; the generators themselves (``training.loop.train``,
``inference.attribution.attribute``, ``inference.features.video_features``) give progress
and a stop flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .config import PRESETS, TapConfig
from .errors import ConfigError
from .events import FrameDone, drain
from .inference.features import DEFAULT_TILE
from .io.video import Video, as_video
from .model import TapModel

VideoLike = Video | np.ndarray | str | Path


def as_model(model: TapModel | str | Path, device: str = "auto") -> TapModel:
    """Return ``model``, or the model folder at this path loaded on ``device``."""
    if isinstance(model, TapModel):
        return model
    return TapModel.from_folder(model, device=device)


def train(
    videos: VideoLike | Sequence[VideoLike],
    out: str | Path,
    config: TapConfig | str = "fast",
    device: str = "auto",
    resume: bool = False,
    **settings: Any,
) -> TapModel:
    """Train a TAP model into the folder ``out`` and return it.

    ``config`` is a preset name ("fast", "paper") or a :class:`TapConfig`; keyword
    ``settings`` change single fields, e.g. ``train(video, "model", epochs=5)``.
    ``resume`` continues the run saved in ``out``. Videos are normalised with the
    config's percentiles.
    """
    if isinstance(config, str):
        if config not in PRESETS:
            raise ConfigError(
                f"no preset {config!r}; use one of {', '.join(PRESETS)} or a TapConfig."
            )
        config = PRESETS[config]
    cfg = config.replace(**settings)
    many = isinstance(videos, list | tuple)
    loaded = [as_video(v, cfg.data.percentiles) for v in (videos if many else [videos])]
    from .training.loop import train as train_job

    return drain(train_job(cfg, loaded, out, device, resume))


def attribute(
    model: TapModel | str | Path,
    video: VideoLike,
    delta: int = 1,
    tile: int | None = DEFAULT_TILE,
    device: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM maps of every pair (t, t+Δt): ``(maps (K, Y, X), pairs (K, 2))``.

    ``pairs[k]`` holds the video positions (t, t+Δt) of ``maps[k]``. The video is
    normalised as the model was trained.
    """
    from .inference.attribution import attribute as attribution_job

    model = as_model(model, device)
    video = as_video(video, model.config.data.percentiles)
    events = list(attribution_job(model, video, delta, tile))
    maps = [e.data for e in events if isinstance(e, FrameDone)]
    return np.stack(maps), drain(events)


def features(
    model: TapModel | str | Path,
    video: VideoLike,
    tile: int | None = DEFAULT_TILE,
    device: str = "auto",
) -> np.ndarray:
    """Dense TAP features of every frame, (T, C, Y, X) float32, in memory.

    The video is normalised as the model was trained. For videos larger than memory,
    ``inference.features.export_features`` streams them to TIFF or OME-Zarr instead.
    """
    from .inference.features import video_features

    model = as_model(model, device)
    video = as_video(video, model.config.data.percentiles)
    return np.stack(
        [e.data for e in video_features(model, video, tile) if isinstance(e, FrameDone)]
    )
