"""Per-frame TAP features kept in memory, so retraining after more painting is fast.

Frames are keyed by a hash of their raw pixels, so the cache survives a new
``Video`` wrapper around the same data (as a napari layer gives each time) and
notices edited frames.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from ..inference.features import DEFAULT_TILE, frame_features
from ..io.video import Video
from ..model import TapModel


class FeatureCache:
    """Frozen features z (C, Y, X) of frames, stored as float16 on the CPU."""

    def __init__(self, model: TapModel, tile: int | None = DEFAULT_TILE) -> None:
        self.model = model
        self.tile = tile
        self._store: dict[bytes, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._store)

    def features(self, video: Video, i: int, keep: bool = True) -> torch.Tensor:
        """Return the features of frame position ``i`` as float32 on the model's device.

        ``keep=False`` computes a frame not in the cache without storing it (e.g.
        to predict every frame of a video in bounded memory).
        """
        raw = np.ascontiguousarray(video.raw(i))
        key = hashlib.blake2b(raw.data, digest_size=16)
        key.update(repr((raw.shape, raw.dtype.str, video.percentiles)).encode())
        digest = key.digest()
        if digest in self._store:
            return self._store[digest].to(self.model.device, torch.float32)
        z = frame_features(self.model, video.frame(i), self.tile).to(torch.float16)
        if keep:
            self._store[digest] = z.cpu()
        return z.to(self.model.device, torch.float32)

    def clear(self) -> None:
        """Forget all frames (e.g. to free memory)."""
        self._store.clear()
