"""Random frame pairs (t, t+Δt) at a shared crop location, in random order.

When the normalised frames fit comfortably in memory (a quarter of what the
device and the host have free), they are held as one tensor per video on the
training device and crops are gathered with tensor indexing for the whole batch
at once, without host synchronisation. Otherwise (videos larger than memory)
each batch reads a few pairs of frames, through a small cache, and draws its
crops from them. Label 0: the pair is in forward order; 1: reversed. With the
network's one-logit-per-frame head the label is the index of the earlier frame.

With a ``foreground`` fraction, each crop is the first of a few random places
whose pixels are foreground (above the frame's Otsu threshold) at least that
often in both frames, like the reference implementation's background rejection;
where none is, the place with the most foreground is kept.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
from skimage.filters import threshold_otsu

from ..device import available_memory
from ..errors import VideoError
from ..io.resample import downscale
from ..io.video import Video
from .augment import augment_pairs, input_size

log = logging.getLogger(__name__)
CROPS_PER_PAIR = 32  # lazy sampling: about this many crops come from each pair read
FOREGROUND_TRIES = 8  # places tried per crop when a foreground fraction is asked


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
        Crop side (pixels of the video).
    device : torch.device
    augment : bool
        Apply :func:`augment_pairs` (crops of :func:`input_size` are gathered first).
    memory_budget : int, optional
        Bytes the normalised frames may take to be held at once; default a quarter
        of :func:`~napari_tarrow.device.available_memory`. Above it, frames are
        read lazily, a few pairs per batch.
    pairs_per_batch : int
        Lazy sampling: the fewest distinct pairs a batch draws its crops from.
    subsample : int
        Frames are downscaled this many times (block means) when loaded, and crops of
        ``size // subsample`` are drawn (and augmented) at that scale: what a network
        with ``ModelConfig.subsample`` sees.
    foreground : float
        Fewest fraction of foreground pixels a crop should hold (0: uniform crops).
    """

    def __init__(
        self,
        videos: Sequence[Video],
        deltas: Sequence[int],
        interval: tuple[float, float],
        size: int,
        device: torch.device,
        augment: bool = False,
        memory_budget: int | None = None,
        pairs_per_batch: int = 4,
        subsample: int = 1,
        foreground: float = 0.0,
    ) -> None:
        self.k, self.foreground = subsample, foreground
        self.size, self.device, self.augment = size // subsample, device, augment
        self.crop = input_size(self.size) if augment else self.size
        self.pairs_per_batch = pairs_per_batch
        found = [
            (v, np.concatenate([v.pairs(d, interval) for d in deltas])) for v in videos
        ]
        found = [(v, p) for v, p in found if len(p)]
        if not found:
            names = ", ".join(v.name for v in videos)
            raise VideoError(
                f"no frame pairs with delta {list(deltas)} inside the time interval "
                f"{interval} of {names}; use more frames or a smaller Δt (command line: "
                "also a wider --split-train / --split-val)."
            )
        need = sum(len(np.unique(p)) * v.frame_nbytes for v, p in found) // self.k**2
        need += need // 4 if foreground else 0  # the foreground masks, a byte a pixel
        budget = (
            available_memory(device) // 4 if memory_budget is None else memory_budget
        )
        self.lazy = need > budget
        self.videos = [v for v, _ in found]
        self.frames: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        self.pairs: list[torch.Tensor] = []
        self._cache: OrderedDict[tuple[int, int], tuple] = OrderedDict()
        for video, pairs in found:
            if self.lazy:
                self.pairs.append(
                    torch.as_tensor(pairs)
                )  # frame positions, on the host
                continue
            used = np.unique(pairs)
            self.frames.append(self._stack(video, used))
            self.pairs.append(
                torch.as_tensor(np.searchsorted(used, pairs), device=device)
            )
        if self.lazy:
            log.info(
                "frames need %.1f GiB, over the %.1f GiB budget: reading them lazily",
                need / 2**30,
                budget / 2**30,
            )
        counts = torch.tensor([len(p) for p in self.pairs], dtype=torch.float64)
        self.weights = (counts / counts.sum()).to(device)

    def _stack(
        self, video: Video, used: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Normalised, downscaled frames ``used`` of ``video`` as one (N, Y, X) tensor.

        Zero-padded to the crop where the frames are smaller. With a foreground
        fraction, also their foreground masks (N, Y, X) bool, else None.
        """
        h, w = (-(-s // self.k) for s in video.shape[1:])
        shape = (len(used), max(h, self.crop), max(w, self.crop))
        x = torch.zeros(shape, device=self.device)
        masks = torch.zeros(shape, dtype=torch.bool, device=self.device)
        for n, i in enumerate(used):  # frame by frame: no second copy on the host
            frame = torch.from_numpy(video.frame(i)).to(self.device)
            x[n, :h, :w] = small = downscale(frame[None, None], self.k)[0, 0]
            if self.foreground:
                masks[n, :h, :w] = small > float(threshold_otsu(small.cpu().numpy()))
        return x, masks if self.foreground else None

    def _cached_pair(
        self, v: int, pair: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Frames (2, Y, X) of a pair of video ``v`` and their masks, through a cache."""
        out = []
        for i in pair.tolist():
            key = (v, i)
            if key not in self._cache:
                self._cache[key] = self._stack(self.videos[v], np.array([i]))
            self._cache.move_to_end(key)
            out.append(self._cache[key])
        while len(self._cache) > 2 * self.pairs_per_batch:
            self._cache.popitem(last=False)
        frames = torch.cat([f for f, _ in out])
        return frames, None if out[0][1] is None else torch.cat([m for _, m in out])

    @property
    def n_pairs(self) -> int:
        """Number of distinct frame pairs available."""
        return sum(len(p) for p in self.pairs)

    def sample(
        self, batch: int, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(pairs (B, 2, size // subsample, ...) float32, labels (B,) int64)."""
        if self.lazy:
            x = self._lazy_crops(batch, gen)
        elif len(self.frames) == 1:
            x = self._crops(*self.frames[0], self.pairs[0], batch, gen)
        else:  # gather for every video, then select: no host synchronisation
            which = torch.multinomial(
                self.weights, batch, replacement=True, generator=gen
            )
            x = torch.zeros((batch, 2, self.crop, self.crop), device=self.device)
            for v, ((frames, masks), pairs) in enumerate(
                zip(self.frames, self.pairs, strict=True)
            ):
                x = torch.where(
                    (which == v).view(-1, 1, 1, 1),
                    self._crops(frames, masks, pairs, batch, gen),
                    x,
                )
        labels = torch.randint(0, 2, (batch,), generator=gen, device=self.device)
        x = torch.where(labels.view(-1, 1, 1, 1).bool(), x.flip(1), x)
        if self.augment:
            x = augment_pairs(x, self.size, gen)
        return x, labels

    def _lazy_crops(self, batch: int, gen: torch.Generator) -> torch.Tensor:
        """Crops from a few random pairs, read one pair at a time (videos larger than memory)."""
        dev = self.device
        m = max(self.pairs_per_batch, -(-batch // CROPS_PER_PAIR))
        videos = torch.multinomial(self.weights, m, replacement=True, generator=gen)
        where = torch.rand(m, generator=gen, device=dev).tolist()
        slots = torch.randint(0, m, (batch,), generator=gen, device=dev)
        counts = torch.bincount(slots, minlength=m).tolist()
        one_pair = torch.tensor([[0, 1]], device=dev)
        parts = []
        for v, u, n in zip(videos.tolist(), where, counts, strict=True):
            if n:
                pairs = self.pairs[v]
                frames, masks = self._cached_pair(v, pairs[int(u * len(pairs))])
                parts.append(self._crops(frames, masks, one_pair, n, gen))
        return torch.cat(parts)

    def _crops(
        self,
        frames: torch.Tensor,
        masks: torch.Tensor | None,
        pairs: torch.Tensor,
        n: int,
        gen: torch.Generator,
    ) -> torch.Tensor:
        """``n`` crops (n, 2, s, s) of random ``pairs``; foreground places where asked."""
        dev, s = self.device, self.crop
        tries = 1 if masks is None else FOREGROUND_TRIES
        k = torch.randint(0, len(pairs), (n * tries,), generator=gen, device=dev)
        h, w = frames.shape[1:]
        y0 = torch.randint(0, h - s + 1, (n * tries, 1), generator=gen, device=dev)
        x0 = torch.randint(0, w - s + 1, (n * tries, 1), generator=gen, device=dev)
        ar = torch.arange(s, device=dev)
        at = (
            pairs[k][:, :, None, None],
            (y0 + ar)[:, None, :, None],
            (x0 + ar)[:, None, None, :],
        )
        if masks is not None:  # the first place foreground enough, else the most
            share = masks[at].flatten(2).float().mean(2).amin(1).view(n, tries)
            order = torch.arange(tries, device=dev) / tries
            choice = torch.where(share >= self.foreground, 2 - order, share).argmax(1)
            pick = torch.arange(n, device=dev) * tries + choice
            at = tuple(i[pick] for i in at)
        return frames[at]
