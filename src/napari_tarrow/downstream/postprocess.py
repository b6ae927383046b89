"""Probability maps -> instance labels: threshold, connected components, small objects removed."""

from __future__ import annotations

import numpy as np
from skimage.measure import label

MIN_SIZE = 64  # the paper removes predicted objects below 64 pixels before scoring


def probability_to_labels(
    proba: np.ndarray, threshold: float = 0.5, min_size: int = MIN_SIZE
) -> np.ndarray:
    """(Y, X) or (T, Y, X) probabilities -> int32 labels, 2D components per frame.

    Ids are unique across frames (frame t's ids follow frame t-1's), so every
    object keeps its own colour in a napari Labels layer.
    """
    proba = np.asarray(proba)
    frames = proba[None] if proba.ndim == 2 else proba
    out = np.zeros(frames.shape, np.int32)
    offset = 0
    for t, p in enumerate(frames):
        out[t] = frame_labels(p, threshold, min_size, offset)
        offset = max(offset, int(out[t].max()))
    return out[0] if proba.ndim == 2 else out


def frame_labels(
    proba: np.ndarray, threshold: float, min_size: int, offset: int = 0
) -> np.ndarray:
    """(Y, X) probabilities -> int32 labels ``offset + 1, offset + 2, ...`` of its objects."""
    lab = label(remove_small_mask(proba >= threshold, min_size), connectivity=2)
    return np.where(lab > 0, lab + offset, 0).astype(np.int32)


def remove_small_mask(mask: np.ndarray, min_size: int) -> np.ndarray:
    """Boolean mask without its connected components (full connectivity) below ``min_size`` pixels.

    Written with ``label`` and ``bincount`` because ``remove_small_objects`` changed
    its size argument across scikit-image versions.
    """
    mask = np.asarray(mask, bool)
    if min_size <= 1:
        return mask
    lab = label(mask, connectivity=mask.ndim)
    keep = np.bincount(lab.ravel()) >= min_size
    keep[0] = False
    return keep[lab]
