"""Cell-state classification from points: a linear probe on TAP features around each point.

A point (t, y, x) (frame position, pixels; e.g. from a napari Points layer) is
described by the mean of z_t and of z_{t+Δt} over a disk of ``radius`` pixels
around it, concatenated (2C numbers). A multinomial logistic regression on
standardised descriptors, trained in torch with balanced class weights, gives
class probabilities for other points.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import Cancelled, TarrowError
from ..events import Done, Event, Metrics, Progress, relay
from ..inference.features import DEFAULT_TILE
from ..io.video import Video, as_video
from ..model import TapModel
from .cache import FeatureCache
from .labels import LabelsError
from .sampling import partners

#: Radius (pixels) of the disc whose features describe a point: about a nucleus radius.
RADIUS = 6


@dataclass(frozen=True)
class ClassPrediction:
    """Predicted class per point and the probability of every class (columns: ``classes``)."""

    labels: np.ndarray  # (N,)
    proba: np.ndarray  # (N, K) float32
    classes: np.ndarray  # (K,)


def point_features(
    cache: FeatureCache,
    video: Video,
    points: np.ndarray,
    delta: int = 1,
    radius: int = RADIUS,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[Event]:
    """Descriptors (N, 2C) of points (N, 3) = (t, y, x); yields Progress, ``Done(array)``.

    ``t`` is the frame position (index along the video's first axis).
    """
    pts = np.asarray(points, float).reshape(-1, 3)
    t = np.rint(pts[:, 0]).astype(int)
    partner = partners(video, delta)
    lost = [k for k, f in enumerate(t) if f not in partner]
    if lost:
        raise LabelsError(
            f"points {lost[:10]} lie on frames without a frame t+Δt (Δt = {delta}: "
            "the last frames, or before a gap); move them or lower delta."
        )
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disk = torch.from_numpy((yy**2 + xx**2 <= radius**2).astype(np.float32))
    frames = np.unique(t)
    out = np.zeros((len(pts), 2 * cache.model.config.model.features), np.float32)
    for n, f in enumerate(frames):
        if stop():
            raise Cancelled("point features stopped")
        z = torch.cat([cache.features(video, f), cache.features(video, partner[f])])
        z = F.pad(z, (radius, radius, radius, radius)).cpu()
        inside = F.pad(torch.ones(video.shape[1:]), (radius,) * 4)
        for k in np.flatnonzero(t == f):
            y, x = (
                int(np.clip(np.rint(v), 0, s - 1))
                for v, s in zip(pts[k, 1:], video.shape[1:], strict=True)
            )
            window = (slice(y, y + 2 * radius + 1), slice(x, x + 2 * radius + 1))
            w = disk * inside[window]
            out[k] = ((z[(slice(None), *window)] * w).sum((1, 2)) / w.sum()).numpy()
        yield Progress("point features", n + 1, len(frames))
    yield Done(out)


class CellStateClassifier:
    """Linear probe on TAP features of points, one class per point (any hashable values)."""

    def __init__(
        self,
        tap: TapModel,
        delta: int = 1,
        radius: int = RADIUS,
        epochs: int = 300,
        lr: float = 0.05,
        weight_decay: float = 1e-3,
        seed: int = 0,
        tile: int | None = DEFAULT_TILE,
    ) -> None:
        self.tap, self.delta, self.radius = tap, delta, radius
        self.epochs, self.lr, self.weight_decay, self.seed = (
            epochs,
            lr,
            weight_decay,
            seed,
        )
        self.cache = FeatureCache(tap, tile)
        self.classes: np.ndarray | None = None
        self._linear: torch.nn.Linear | None = None
        self._mean = self._std = None

    def fit(
        self,
        video: Video | np.ndarray,
        points: np.ndarray,
        classes: np.ndarray,
        stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[Event]:
        """Train the probe; yields Progress, Metrics (training accuracy) and Done(self)."""
        classes = np.asarray(classes)
        if len(classes) != len(np.asarray(points).reshape(-1, 3)):
            raise LabelsError(
                f"{len(classes)} classes for {len(np.asarray(points).reshape(-1, 3))} "
                "points; give one class per point."
            )
        names, y = np.unique(classes, return_inverse=True)
        if len(names) < 2:
            raise LabelsError(
                "all points have the same class; label points of at least two classes."
            )
        video = as_video(video, self.tap.config.data.percentiles)
        feats = yield from relay(
            point_features(self.cache, video, points, self.delta, self.radius, stop)
        )
        x = torch.from_numpy(feats)
        mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)
        xs, yt = (x - mean) / std, torch.from_numpy(y)
        counts = torch.bincount(yt, minlength=len(names)).float()
        weight = counts.sum() / (len(names) * counts)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            linear = torch.nn.Linear(x.shape[1], len(names))
        opt = torch.optim.Adam(
            linear.parameters(), self.lr, weight_decay=self.weight_decay
        )
        for step in range(self.epochs):
            if stop():
                raise Cancelled("training stopped; the previous probe is kept")
            loss = F.cross_entropy(linear(xs), yt, weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            yield Progress("fit", step + 1, self.epochs, {"loss": float(loss.detach())})
        with torch.no_grad():
            acc = float((linear(xs).argmax(1) == yt).float().mean())
        yield Metrics(self.epochs - 1, {"loss": float(loss.detach()), "train_acc": acc})
        self.classes, self._linear, self._mean, self._std = names, linear, mean, std
        yield Done(self)

    def predict_proba(
        self,
        video: Video | np.ndarray,
        points: np.ndarray,
        stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[Event]:
        """Classify points; yields Progress and ``Done(ClassPrediction)``."""
        if self._linear is None or self.classes is None:
            raise TarrowError("the classifier is not trained yet; run fit first.")
        video = as_video(video, self.tap.config.data.percentiles)
        feats = yield from relay(
            point_features(self.cache, video, points, self.delta, self.radius, stop)
        )
        with torch.no_grad():
            logits = self._linear((torch.from_numpy(feats) - self._mean) / self._std)
        proba = torch.softmax(logits, 1).numpy()
        yield Done(ClassPrediction(self.classes[proba.argmax(1)], proba, self.classes))
