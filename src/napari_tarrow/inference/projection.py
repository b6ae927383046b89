"""A look at what the network sees: dense features projected on their first 3 principal components.

The components are fitted on a random sample of pixels from all frames, so a
(T, C, Y, X) feature stack (e.g. a memory-mapped export) is read one frame at a
time; the result is an RGB (T, Y, X, 3) uint8 video.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..errors import Cancelled, ConfigError
from ..events import Done, Event, Progress


def principal_components_rgb(
    features: Any,
    n_sample: int = 50_000,
    seed: int = 0,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[Event]:
    """Project (T, C, Y, X) ``features`` on their top 3 components: Done((T, Y, X, 3) uint8).

    Each component is scaled by its 1st-99th percentiles over the sample.
    """
    if getattr(features, "ndim", 0) != 4 or features.shape[1] < 3:
        raise ConfigError(
            f"principal components need (T, C, Y, X) features with C >= 3, got shape "
            f"{tuple(getattr(features, 'shape', ()))}."
        )
    n_t, n_c, ny, nx = features.shape
    rng = np.random.default_rng(seed)
    per_frame = max(1, n_sample // n_t)
    sample = np.concatenate(
        [
            np.asarray(features[t], np.float32)
            .reshape(n_c, -1)[:, rng.integers(0, ny * nx, per_frame)]
            .T
            for t in range(n_t)
        ]
    )
    mean = sample.mean(0)
    _, _, vt = np.linalg.svd(sample - mean, full_matrices=False)
    basis = vt[:3]
    ref = (sample - mean) @ basis.T
    lo, hi = np.percentile(ref, 1, axis=0), np.percentile(ref, 99, axis=0)
    scale = 255.0 / np.maximum(hi - lo, 1e-6)
    out = np.empty((n_t, ny, nx, 3), np.uint8)
    for t in range(n_t):
        if stop():
            raise Cancelled("principal components stopped")
        z = np.asarray(features[t], np.float32).reshape(n_c, -1).T
        rgb = ((z - mean) @ basis.T - lo) * scale
        out[t] = np.clip(rgb, 0, 255).reshape(ny, nx, 3).astype(np.uint8)
        yield Progress("principal components", t + 1, n_t)
    yield Done(out)
