"""Hits of attribution peaks on divisions, counted per frame pair, and paired bootstrap intervals.

A metric is a ratio of sums over pairs, so resampling the pairs (within which peaks
are correlated) gives its 95 % interval, and the same resamples for every method give
paired differences.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..inference.regions import division_hits
from ..io.ctc import Division

#: The metrics of attribution peaks, which :func:`bootstrap` gives intervals for.
PEAK_METRICS = ("precision", "recall", "precision_tol", "recall_tol")
#: Resamples of the frame pairs behind the 95 % intervals.
BOOTSTRAP = 2000


@dataclass(frozen=True)
class PairCounts:
    """Numerators and denominators of the peak metrics, per frame pair: (4, K) each.

    Rows follow :data:`PEAK_METRICS`. A metric is a ratio of sums over pairs, so
    reweighting pairs (the unit within which peaks are correlated) gives its
    bootstrap distribution.
    """

    hits: np.ndarray
    totals: np.ndarray

    def metrics(self) -> dict[str, float]:
        """Each peak metric over all pairs (NaN without peaks or divisions)."""
        once = np.ones((1, self.hits.shape[1]))
        return dict(zip(PEAK_METRICS, self.weighted(once)[:, 0].tolist(), strict=True))

    def weighted(self, weights: np.ndarray) -> np.ndarray:
        """(4, B) metrics when pair k counts ``weights[b, k]`` times, for B weightings."""
        hits, totals = self.hits @ weights.T, self.totals @ weights.T
        return np.where(totals > 0, hits / np.maximum(totals, 1), np.nan)


def pair_counts(
    table: np.ndarray,
    divisions: Sequence[Division],
    own: Sequence[np.ndarray],
    starts: np.ndarray,
    delta: int,
    radius: float,
    tolerance: int,
) -> PairCounts:
    """Per-pair hits of peaks (rows t, y, x, score; t = a pair's first frame) on divisions.

    ``starts`` (K,) are the pairs' first frames and ``own[k]`` indexes the
    divisions inside pair k. Precision counts peaks within ``radius`` of a
    division of the same pair or, with ``_tol``, of one within ± ``tolerance``
    frames. Recall counts each of these divisions once, in the first pair that
    holds it (pairs overlap when Δt > 1), as hit by a peak of any pair (with a
    tolerance, a neighbouring pair's peak may find it).
    """
    table = np.asarray(table, float).reshape(-1, 4)
    where = {int(t): k for k, t in enumerate(starts)}
    try:
        pair = np.array([where[int(t)] for t in table[:, 0]], int)
    except KeyError as e:
        raise ValueError(f"a peak of frame {e} belongs to none of the pairs") from None
    k = len(starts)
    first: dict[int, int] = {}  # division -> the pair that counts it for recall
    for i, o in enumerate(own):
        for d in o:
            first.setdefault(int(d), i)
    counted, owner = np.array(list(first), int), np.array(list(first.values()), int)
    hits, totals = [], []
    for tol in (0, tolerance):
        on = hit_matrix(table, divisions, delta, radius, tol)
        hits += [
            np.bincount(pair, weights=on.any(1), minlength=k),
            np.bincount(owner, weights=on[:, counted].any(0), minlength=k),
        ]
        totals += [np.bincount(pair, minlength=k), np.bincount(owner, minlength=k)]
    return PairCounts(np.array(hits, float), np.array(totals, float))


def mean_metrics(draws: Sequence[PairCounts]) -> dict[str, float]:
    """Each peak metric, averaged over draws (random points: one :class:`PairCounts` each)."""
    values = np.mean([list(c.metrics().values()) for c in draws], axis=0)
    return dict(zip(PEAK_METRICS, values.tolist(), strict=True))


def bootstrap(
    counts: dict[str, Sequence[PairCounts]],
    reference: str,
    n: int = BOOTSTRAP,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[
    dict[str, dict[str, tuple[float, float]]],
    dict[str, dict[str, tuple[float, float, float]]],
]:
    """Percentile intervals of each method's peak metrics, and of ``reference`` minus each other.

    ``counts[method]`` holds one :class:`PairCounts` per draw (random points) or
    a single one; a method's metric is the mean over them. All methods share
    the same ``n`` resamples of the pairs (drawn with replacement, from a
    stream of their own), so the differences are paired. Resamples where a
    metric is undefined (no peak at all) are left out of its interval. Returns
    ``(intervals[method][metric] = (lo, hi), differences[other][metric] =
    (estimate, lo, hi))``.
    """
    sizes = {c.hits.shape[1] for draws in counts.values() for c in draws}
    if len(sizes) != 1:
        raise ValueError(f"methods were counted on different numbers of pairs: {sizes}")
    k = sizes.pop()
    rng = np.random.default_rng([seed, 1])  # not the stream of the random points
    weights = rng.multinomial(k, np.full(k, 1 / k), size=n).astype(float)
    tails = [50 * (1 - level), 50 * (1 + level)]

    def interval(samples: np.ndarray) -> list[tuple[float, float]]:
        with warnings.catch_warnings():  # a metric never defined: NaN bounds
            warnings.simplefilter("ignore", RuntimeWarning)
            bounds = np.nanpercentile(samples, tails, axis=1).T
        return [(float(lo), float(hi)) for lo, hi in bounds]

    sampled = {  # (4, n) per method: the mean over its draws, resample by resample
        name: np.mean([d.weighted(weights) for d in draws], axis=0)
        for name, draws in counts.items()
    }
    point = {
        name: np.array(list(mean_metrics(c).values())) for name, c in counts.items()
    }
    intervals = {
        name: dict(zip(PEAK_METRICS, interval(s), strict=True))
        for name, s in sampled.items()
    }
    differences = {
        name: {
            m: (float(d), *ci)
            for m, d, ci in zip(
                PEAK_METRICS,
                point[reference] - point[name],
                interval(sampled[reference] - sampled[name]),
                strict=True,
            )
        }
        for name in counts
        if name != reference
    }
    return intervals, differences


def hit_matrix(
    table: np.ndarray,
    divisions: Sequence[Division],
    delta: int,
    radius: float,
    tolerance: int = 0,
) -> np.ndarray:
    """(N, D) bool: peak n (row t, y, x, score) lies on division d (any of its positions)."""
    cols = [
        division_hits(
            table,
            np.column_stack([np.full(len(d.points), d.t), d.points]),
            delta,
            radius,
            tolerance,
        )
        for d in divisions
    ]
    return np.stack(cols, axis=1) if cols else np.zeros((len(table), 0), bool)
