"""Per-frame TAP features kept in memory, so retraining after more painting is fast.

Frames are keyed by a hash of their raw pixels, so the cache survives a new
``Video`` wrapper around the same data (as a napari layer gives each time) and
notices edited frames. The cache holds at most ``max_bytes``: past it, the frames
used least recently are dropped (and computed again when needed).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import torch

from ..device import available_memory
from ..inference.features import DEFAULT_TILE, frame_features
from ..io.video import Video
from ..model import TapModel

#: Default bound: a quarter of the memory available when the cache is made, at most this.
MAX_BYTES = 4 << 30


class FeatureCache:
    """Frozen features z (C, Y, X) of frames, stored as float16 on the CPU, size-bounded."""

    def __init__(
        self,
        model: TapModel,
        tile: int | None = DEFAULT_TILE,
        max_bytes: int | None = None,
    ) -> None:
        self.model = model
        self.tile = tile
        cpu = torch.device("cpu")
        self.max_bytes = (
            min(MAX_BYTES, available_memory(cpu) // 4)
            if max_bytes is None
            else max_bytes
        )
        self._store: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._store)

    @property
    def nbytes(self) -> int:
        """Bytes the cached features take."""
        return self._bytes

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
            self._store.move_to_end(digest)
            return self._store[digest].to(self.model.device, torch.float32)
        z = frame_features(self.model, video.frame(i), self.tile).to(torch.float16)
        if keep:
            self._add(digest, z.cpu())
        return z.to(self.model.device, torch.float32)

    def _add(self, key: bytes, z: torch.Tensor) -> None:
        size = z.numel() * z.element_size()
        while self._store and self._bytes + size > self.max_bytes:
            _, old = self._store.popitem(last=False)
            self._bytes -= old.numel() * old.element_size()
        if size <= self.max_bytes:
            self._store[key] = z
            self._bytes += size

    def clear(self) -> None:
        """Forget all frames (e.g. to free memory)."""
        self._store.clear()
        self._bytes = 0
