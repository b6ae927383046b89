"""Random frame pairs (t, t+Δt) at a shared crop location, in random order.

Frames are normalised once and held as one tensor per video on the training
device; crops are gathered with tensor indexing for the whole batch at once.
Label 0: the pair is in forward order; 1: reversed. With the network's
one-logit-per-frame head the label is the index of the earlier frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import VideoError
from .augment import augment_pairs, input_size
from .video import Video


class PairSampler:
    """Draws batches of pairs from the given time interval of each video.

    Parameters
    ----------
    videos : sequence of Video
    deltas : sequence of int
        Time steps; each pair uses one of them (only where both frames exist).
    interval : (float, float)
        Fraction of each video's time span used (train/val split by time).
    size : int
        Crop side (pixels).
    device : torch.device
    augment : bool
        Apply :func:`augment_pairs` (crops of :func:`input_size` are gathered first).
    """

    def __init__(
        self,
        videos: Sequence[Video],
        deltas: Sequence[int],
        interval: tuple[float, float],
        size: int,
        device: torch.device,
        augment: bool = False,
    ) -> None:
        self.size, self.device, self.augment = size, device, augment
        self.crop = input_size(size) if augment else size
        self.frames: list[torch.Tensor] = []
        self.pairs: list[torch.Tensor] = []
        for video in videos:
            pairs = np.concatenate([video.pairs(d, interval) for d in deltas])
            if len(pairs) == 0:
                continue
            used = np.unique(pairs)
            stack = np.stack([video.frame(i) for i in used])
            remap = np.searchsorted(used, pairs)
            self.frames.append(self._to_tensor(stack))
            self.pairs.append(torch.as_tensor(remap, device=device))
        if not self.pairs:
            names = ", ".join(v.name for v in videos)
            raise VideoError(
                f"no frame pairs with delta {list(deltas)} inside the time interval "
                f"{interval} of {names}; use more frames, a smaller delta or a wider split."
            )
        counts = torch.tensor([len(p) for p in self.pairs], dtype=torch.float64)
        self.weights = (counts / counts.sum()).to(device)

    def _to_tensor(self, stack: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(stack, device=self.device)
        pad_y, pad_x = (max(0, self.crop - s) for s in stack.shape[1:])
        return F.pad(x, (0, pad_x, 0, pad_y)) if pad_y or pad_x else x

    @property
    def n_pairs(self) -> int:
        """Number of distinct frame pairs available."""
        return sum(len(p) for p in self.pairs)

    def sample(
        self, batch: int, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(pairs (B, 2, size, size) float32, labels (B,) int64)."""
        if len(self.frames) == 1:
            x = self._crops(self.frames[0], self.pairs[0], batch, gen)
        else:  # gather for every video, then select: no host synchronisation
            which = torch.multinomial(
                self.weights, batch, replacement=True, generator=gen
            )
            x = torch.zeros((batch, 2, self.crop, self.crop), device=self.device)
            for v, (frames, pairs) in enumerate(
                zip(self.frames, self.pairs, strict=True)
            ):
                x = torch.where(
                    (which == v).view(-1, 1, 1, 1),
                    self._crops(frames, pairs, batch, gen),
                    x,
                )
        labels = torch.randint(0, 2, (batch,), generator=gen, device=self.device)
        x = torch.where(labels.view(-1, 1, 1, 1).bool(), x.flip(1), x)
        if self.augment:
            x = augment_pairs(x, self.size, gen)
        return x, labels

    def _crops(
        self, frames: torch.Tensor, pairs: torch.Tensor, n: int, gen: torch.Generator
    ) -> torch.Tensor:
        dev, s = self.device, self.crop
        k = torch.randint(0, len(pairs), (n,), generator=gen, device=dev)
        h, w = frames.shape[1:]
        y0 = torch.randint(0, h - s + 1, (n, 1), generator=gen, device=dev)
        x0 = torch.randint(0, w - s + 1, (n, 1), generator=gen, device=dev)
        ar = torch.arange(s, device=dev)
        yy, xx = (y0 + ar)[:, None, :, None], (x0 + ar)[:, None, None, :]
        return frames[pairs[k][:, :, None, None], yy, xx]  # (n, 2, s, s)
