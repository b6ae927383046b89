"""How well a TAP model tells the time arrow at given places (e.g. at divisions)."""

from __future__ import annotations

import numpy as np
import torch

from .data.video import Video
from .model import TapModel


@torch.inference_mode()
def crop_accuracy(
    model: TapModel, video: Video, centers: np.ndarray, size: int = 64, delta: int = 1
) -> float:
    """TAP accuracy on crops centred on ``centers`` (N, 3) = (t, y, x) of pairs (t-Δt, t).

    ``t`` is a frame number (e.g. the first frame of a division's daughters). Each
    crop is scored in both orders, so a constant guess gives exactly 0.5.
    """
    net = model.net.eval()
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
    logits = torch.cat([net(b)[0] for b in both.split(64)])
    return float((logits.argmax(1) == labels).float().mean())


def _crop(frame: np.ndarray, y: float, x: float, size: int) -> np.ndarray:
    """``size`` x ``size`` window centred at (y, x), shifted inside the frame (zero-padded if small)."""
    pad = np.pad(frame, [(0, max(0, size - s)) for s in frame.shape])
    y0 = int(np.clip(round(y) - size // 2, 0, pad.shape[0] - size))
    x0 = int(np.clip(round(x) - size // 2, 0, pad.shape[1] - size))
    return pad[y0 : y0 + size, x0 : x0 + size]
