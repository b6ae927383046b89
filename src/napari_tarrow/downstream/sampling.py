"""Training crops for the downstream heads: frame partners of a pair, crops of labelled frames."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..io.video import Video
from .labels import DIVIDING


def partners(video: Video, delta: int) -> dict[int, int]:
    """Frame position i -> position j of frame number times[i] + Δt (where it exists)."""
    return {int(i): int(j) for i, j in video.pairs(delta)}


class CropSampler:
    """Random crops of labelled frames; a share of them containing a dividing-cell pixel."""

    def __init__(
        self,
        targets: Sequence[np.ndarray],
        crop: int,
        positive_fraction: float,
        seed: int,
    ) -> None:
        self.shape = targets[0].shape
        self.crop = tuple(min(crop, s) for s in self.shape)
        self.labelled = [np.flatnonzero(t) for t in targets]
        self.positive = [np.flatnonzero(t == DIVIDING) for t in targets]
        self.with_positive = [k for k, p in enumerate(self.positive) if len(p)]
        self.positive_fraction = positive_fraction
        self.rng = np.random.default_rng(seed)

    def windows(self, n: int) -> list[tuple[int, slice, slice]]:
        """``n`` crops as (target index, rows, columns)."""
        out = []
        for _ in range(n):
            if self.with_positive and self.rng.random() < self.positive_fraction:
                k = int(self.rng.choice(self.with_positive))
                flat = self.rng.choice(self.positive[k])
            else:
                k = int(self.rng.integers(len(self.labelled)))
                flat = self.rng.choice(self.labelled[k])
            centre = np.unravel_index(flat, self.shape)
            starts = [
                int(np.clip(c - self.rng.integers(w), 0, s - w))
                for c, w, s in zip(centre, self.crop, self.shape, strict=True)
            ]
            out.append(
                (k, *(slice(a, a + w) for a, w in zip(starts, self.crop, strict=True)))
            )
        return out
