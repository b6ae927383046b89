"""The controls every TAP map is scored beside: an untrained network, the frame difference, random points."""

from __future__ import annotations

import math

import numpy as np
import torch
from skimage.filters import gaussian

from ..model import TapModel


def untrained_like(model: TapModel, seed: int = 0) -> TapModel:
    """Build a freshly initialised network of the same architecture, on the same device (seeded)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = TapModel(model.config)
    fresh.net.eval()
    fresh.amp = model.amp  # the precision asked for the model (e.g. --no-amp)
    return fresh.to(model.device)


def random_points(
    mask: np.ndarray, k: int, min_distance: float, rng: np.random.Generator
) -> np.ndarray:
    """Up to ``k`` (y, x) points drawn uniformly in ``mask``, at least ``min_distance`` apart.

    The chance level of peak picking: unlike peaks of a smoothed noise image, the
    points are not drawn to the frame border.
    """
    ys, xs = np.nonzero(mask)
    chosen: list[tuple[int, int]] = []
    for n in rng.permutation(len(ys)):
        if all(math.hypot(ys[n] - y, xs[n] - x) >= min_distance for y, x in chosen):
            chosen.append((int(ys[n]), int(xs[n])))
            if len(chosen) == k:
                break
    return np.asarray(chosen, float).reshape(-1, 2)


def frame_difference(a: np.ndarray, b: np.ndarray, radius: float) -> np.ndarray:
    """Compute the control map: |b - a| of two normalised frames, smoothed by ``radius`` / 6."""
    return gaussian(np.abs(b - a), sigma=radius / 6)


def away_from_border(mask: np.ndarray, border: int) -> np.ndarray:
    """``mask`` without its ``border``-px frame band, where ``top_regions`` picks no peaks."""
    if border <= 0:
        return mask.copy()
    inner = np.zeros_like(mask)
    inner[border:-border, border:-border] = mask[border:-border, border:-border]
    return inner
