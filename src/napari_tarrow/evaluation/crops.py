"""TAP accuracy on crops centred on divisions, on other cells and on background (Fig. 2a of the paper)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from ..inference.features import CHANNELS_LAST
from ..io.ctc import Annotations, label_centroids
from ..io.resample import downscale
from ..io.video import Video
from ..model import TapModel
from .statistics import hit_matrix

CROP_KINDS = ("division", "cell", "background")


@torch.inference_mode()
def crop_accuracy(
    model: TapModel, video: Video, centers: np.ndarray, size: int = 64, delta: int = 1
) -> float:
    """TAP accuracy on crops centred on ``centers`` (N, 3) = (t, y, x) of pairs (t-Δt, t).

    ``t`` is a frame number (e.g. the first frame of a division's daughters). Each
    crop is scored in both orders, so a constant guess gives exactly 0.5.
    """
    net = model.net.eval().to(memory_format=CHANNELS_LAST)  # as inference runs
    where = {int(t): i for i, t in enumerate(video.times)}
    centers = np.asarray(centers, float).reshape(-1, 3)
    crops, frames = [], {}  # by time: each frame normalised once, two held at a time
    for t, y, x in centers[np.argsort(centers[:, 0], kind="stable")]:
        i, j = where.get(int(t) - delta), where.get(int(t))
        if i is None or j is None:
            continue
        frames = {k: frames[k] if k in frames else video.frame(k) for k in (i, j)}
        crops.append(np.stack([_crop(frames[k], y, x, size) for k in (i, j)]))
    if not crops:
        return float("nan")
    x = torch.as_tensor(np.stack(crops), device=model.device)
    both = torch.cat([x, x.flip(1)])
    labels = torch.cat([torch.zeros(len(x)), torch.ones(len(x))]).to(model.device)
    k = model.config.model.subsample  # the network takes pairs at its own scale
    logits = torch.cat([net(downscale(b, k))[0] for b in both.split(64)])
    return float((logits.argmax(1) == labels).float().mean())


def _crop(frame: np.ndarray, y: float, x: float, size: int) -> np.ndarray:
    """``size`` x ``size`` window centred at (y, x), shifted inside the frame (zero-padded if small)."""
    pad = np.pad(frame, [(0, max(0, size - s)) for s in frame.shape])
    y0 = int(np.clip(round(y) - size // 2, 0, pad.shape[0] - size))
    x0 = int(np.clip(round(x) - size // 2, 0, pad.shape[1] - size))
    return pad[y0 : y0 + size, x0 : x0 + size]


def cell_centres(
    truth: Annotations,
    t: int,
    window: tuple[int, int, int],
    radius: float,
    n: int,
    rng: np.random.Generator,
) -> list[tuple[float, float]]:
    """Up to ``n`` marker centroids near frame ``t`` that lie away from any division.

    ``window`` is (t0, delta, tolerance) of the pair; cells within ``radius`` of
    a division inside that window (± tolerance) are left out. Markers come from
    the nearest mask frame no more than ``tolerance`` frames away.
    """
    t0, delta, tol = window
    near = sorted((abs(f - t), f) for f in truth.markers if abs(f - t) <= tol)
    if not near:
        return []
    yx = np.array(list(label_centroids(truth.markers[near[0][1]]).values()), float)
    rows = np.column_stack([np.full(len(yx), t0), yx.reshape(-1, 2), np.zeros(len(yx))])
    busy = hit_matrix(rows, truth.divisions, delta, radius, tol).any(1)
    free = yx.reshape(-1, 2)[~busy]
    pick = rng.permutation(len(free))[:n]
    return [tuple(p) for p in free[pick]]


def background_centres(
    fg: np.ndarray, radius: float, n: int, rng: np.random.Generator
) -> list[tuple[float, float]]:
    """``n`` random points farther than ``radius`` from any foreground pixel."""
    ys, xs = np.nonzero(distance_transform_edt(~fg) > radius)
    pick = rng.choice(len(ys), size=min(n, len(ys)), replace=False)
    return [(float(ys[p]), float(xs[p])) for p in pick]
