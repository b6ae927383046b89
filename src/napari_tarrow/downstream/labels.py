"""Training labels for division segmentation: sparse scribbles or full masks, checked.

Labels follow napari's Labels layer convention, (T, Y, X) integers aligned with
the video: 0 = unlabelled (ignored by the loss), 1 = background, 2 = dividing cell.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import TarrowError

UNLABELLED, BACKGROUND, DIVIDING = 0, 1, 2


class LabelsError(TarrowError):
    """Training labels or points do not fit the video or hold nothing to learn from."""


def check_labels(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Validate Labels-style training labels for a video of ``shape``; returns uint8 (T, Y, X).

    Raises
    ------
    LabelsError
        Wrong shape, values other than 0/1/2, no dividing or no background pixel.
    """
    labels = np.asarray(labels)
    if labels.shape != tuple(shape):
        raise LabelsError(
            f"labels have shape {labels.shape} but the video has {tuple(shape)}; "
            "paint the labels on a layer of the video's shape (T, Y, X)."
        )
    if labels.dtype.kind not in "biu":
        raise LabelsError(
            f"labels have dtype {labels.dtype}; use integers 0 = unlabelled, "
            "1 = background, 2 = dividing cell."
        )
    values = np.unique([v for frame in labels for v in np.unique(frame)])  # per frame
    bad = values[(values < UNLABELLED) | (values > DIVIDING)]
    if len(bad):
        raise LabelsError(
            f"labels hold the values {bad[:5].tolist()}; use 0 = unlabelled, "
            "1 = background, 2 = dividing cell (or pass a binary mask with "
            "labels_from_mask / --mask)."
        )
    if DIVIDING not in values:
        raise LabelsError(
            "no pixel is labelled as dividing cell (2); paint at least one dividing cell."
        )
    if BACKGROUND not in values:
        raise LabelsError(
            "no pixel is labelled as background (1); paint some background too, "
            "or pass full masks."
        )
    return labels.astype(np.uint8)


def labels_from_mask(
    mask: np.ndarray, frames: Sequence[int] | None = None
) -> np.ndarray:
    """Full binary masks (T, Y, X) -> Labels-style labels on ``frames`` (default: all).

    On the given frame positions every pixel is labelled: mask > 0 -> dividing
    cell (2), else background (1); other frames stay unlabelled (0).
    """
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise LabelsError(f"a mask must be (T, Y, X); got shape {mask.shape}.")
    chosen = np.arange(len(mask)) if frames is None else np.asarray(frames, int)
    if len(chosen) and (chosen.min() < 0 or chosen.max() >= len(mask)):
        raise LabelsError(
            f"mask frames {chosen.tolist()} are outside 0..{len(mask) - 1}."
        )
    out = np.zeros(mask.shape, np.uint8)
    out[chosen] = np.where(mask[chosen] > 0, DIVIDING, BACKGROUND)
    return out
