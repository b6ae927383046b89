"""Top-k most discriminative regions: local maxima of smoothed Grad-CAM maps."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from skimage.feature import peak_local_max
from skimage.filters import gaussian

from ..io.atomic import write_text

COLUMNS = ("t", "y", "x", "score")


EDGE = 8
"""Frame band (px) where no peak is picked: one cell (2**3 px) of a depth-3 U-Net's
coarsest level. There the network's receptive field reaches past the frame into
padding (zeros or replicated edge pixels, by ``ModelConfig.padding_mode``), so features
and Grad-CAM near the edge differ from those inside for reasons that are not the cells."""


def top_regions(
    cam: np.ndarray,
    k: int = 8,
    min_distance: int = 12,
    sigma: float = 2.0,
    border: int = EDGE,
) -> np.ndarray:
    """(k', 3) array of (y, x, score) for the k strongest separated peaks of ``cam`` (Y, X).

    A peak is a local maximum of the whole smoothed map, so a map that rises
    towards the edge yields no peak at all, rather than one at the band's edge.
    """
    smooth = gaussian(
        np.asarray(cam, dtype=np.float32), sigma=sigma, preserve_range=True
    )
    peaks = peak_local_max(
        smooth, min_distance=min_distance, num_peaks=k, exclude_border=border or False
    )
    scores = smooth[tuple(peaks.T)] if len(peaks) else np.zeros(0)
    return np.column_stack([peaks.astype(float), scores]).reshape(-1, 3)


def regions_table(
    cams: list[np.ndarray] | np.ndarray,
    times: np.ndarray,
    k: int = 8,
    min_distance: int = 12,
) -> np.ndarray:
    """(N, 4) rows (t, y, x, score) for the top-k regions of each map; t = first frame number."""
    rows = [
        peak_rows(cam, t, k, min_distance) for t, cam in zip(times, cams, strict=True)
    ]
    return np.concatenate(rows) if rows else np.zeros((0, 4))


def peak_rows(
    cam: np.ndarray, t: int, k: int = 8, min_distance: int = 12
) -> np.ndarray:
    """(k', 4) rows (t, y, x, score) of the top-k regions of one map (Y, X)."""
    r = top_regions(cam, k, min_distance)
    return np.column_stack([np.full(len(r), t, float), r]).reshape(-1, 4)


def write_regions_csv(table: np.ndarray, path: str | Path) -> None:
    """Write (t, y, x, score) rows to CSV (atomically and durably, see :mod:`napari_tarrow.io.atomic`)."""
    text = io.StringIO(newline="")
    w = csv.writer(text)
    w.writerow(COLUMNS)
    for t, y, x, s in table:
        w.writerow([int(t), int(y), int(x), f"{s:.6g}"])
    write_text(path, text.getvalue())


def division_hits(
    table: np.ndarray,
    divisions: np.ndarray,
    delta: int = 1,
    radius: float = 20.0,
    frame_tolerance: int = 0,
) -> np.ndarray:
    """Which regions (rows t, y, x, score) lie on a division, (N,) bool.

    ``divisions`` is (M, 3): (t, y, x) with t the first frame of the daughters
    (the Cell Tracking Challenge convention), so a pair starting at t0 contains
    the event when t0 < t <= t0 + delta. ``frame_tolerance`` widens that window
    on both sides (a mitotic cell is visible for a few frames around it).
    """
    table, divisions = (
        np.asarray(table, float),
        np.asarray(divisions, float).reshape(-1, 3),
    )
    if len(table) == 0 or len(divisions) == 0:
        return np.zeros(len(table), bool)
    t0, td = table[:, :1], divisions[None, :, 0]
    in_time = (td > t0 - frame_tolerance) & (td <= t0 + delta + frame_tolerance)
    dist = np.hypot(
        table[:, 1:2] - divisions[None, :, 1], table[:, 2:3] - divisions[None, :, 2]
    )
    return np.any(in_time & (dist <= radius), axis=1)
