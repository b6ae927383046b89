"""How well a TAP model finds divisions: attribution peaks and accuracy by region type.

:func:`evaluate` scores the top-k Grad-CAM peaks of every frame pair with a
division against ground truth (e.g. Cell Tracking Challenge lineage, see
:mod:`.ctc`), always beside three controls with the same peak picking: an
untrained network of the same architecture, the smoothed absolute frame
difference, and random points in the foreground. It also breaks TAP accuracy
down by crops centred on divisions, on non-dividing cells and on background
(Fig. 2a of the TAP paper).
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt
from skimage.filters import gaussian

from .atomic import write_text
from .attribution import attribute
from .config import TOP_K
from .ctc import Annotations, Division, TracksError, foreground, label_centroids
from .data.resample import downscale
from .data.video import Video
from .errors import Cancelled, ConfigError, stopped_means
from .events import Done, Event, FrameDone, Progress
from .features import DEFAULT_TILE
from .model import TapModel
from .regions import EDGE, division_hits, top_regions

#: Metric columns of :class:`EvaluationTable`, in print order.
METRICS = (
    "precision",
    "recall",
    "precision_tol",
    "recall_tol",
    "acc_division",
    "acc_cell",
    "acc_background",
)
#: The metrics of attribution peaks, which :func:`bootstrap` gives intervals for.
PEAK_METRICS = METRICS[:4]
METHODS = ("TAP model", "untrained network", "frame difference", "random foreground")
#: The row of the optional second TAP model (e.g. the same model before fine-tuning).
BASELINE = "baseline model"
CROP_KINDS = ("division", "cell", "background")
#: Resamples of the frame pairs behind the 95 % intervals.
BOOTSTRAP = 2000
STOPPED = "evaluation stopped; no table written"


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
    k = model.config.model.subsample  # the network takes pairs at its own scale
    logits = torch.cat([net(downscale(b, k))[0] for b in both.split(64)])
    return float((logits.argmax(1) == labels).float().mean())


def _crop(frame: np.ndarray, y: float, x: float, size: int) -> np.ndarray:
    """``size`` x ``size`` window centred at (y, x), shifted inside the frame (zero-padded if small)."""
    pad = np.pad(frame, [(0, max(0, size - s)) for s in frame.shape])
    y0 = int(np.clip(round(y) - size // 2, 0, pad.shape[0] - size))
    x0 = int(np.clip(round(x) - size // 2, 0, pad.shape[1] - size))
    return pad[y0 : y0 + size, x0 : x0 + size]


@dataclass(frozen=True)
class EvaluationTable:
    """Metrics (:data:`METRICS`) per method (rows), their bootstrap intervals and settings.

    ``intervals[method][metric]`` is the 95 % interval (lo, hi) of a peak metric
    over resampled frame pairs; ``differences[control][metric]`` is (estimate,
    lo, hi) of the TAP model's metric minus the control's, on the same resamples.
    """

    rows: dict[str, dict[str, float]]
    settings: dict[str, int | float | str]
    intervals: dict[str, dict[str, tuple[float, float]]]
    differences: dict[str, dict[str, tuple[float, float, float]]]
    counts: dict[str, list[PairCounts]] = field(default_factory=dict, repr=False)

    def differences_to(
        self, reference: str
    ) -> dict[str, dict[str, tuple[float, float, float]]]:
        """Paired differences (estimate, lo, hi) of row ``reference`` minus each other row.

        On the same resamples as :attr:`differences` (the same seed), e.g. to compare
        each of several TAP models evaluated in one run with the controls.
        """
        seed = int(self.settings["seed"])
        return bootstrap(self.counts, reference, seed=seed)[1]

    def to_csv(self, path: str | Path) -> None:
        """Write one row per method, then one per "TAP model - control" difference.

        Columns: the metrics, ``<metric>_lo``/``_hi`` for the peak metrics, then
        the settings repeated. Written under a temporary name, then renamed.
        """
        nan = math.nan
        bounds = [f"{m}_{end}" for m in PEAK_METRICS for end in ("lo", "hi")]
        lines = [
            (name, row, self.intervals[name]) for name, row in self.rows.items()
        ] + [
            (
                f"{METHODS[0]} - {name}",
                {m: diff.get(m, (nan,))[0] for m in METRICS},
                {m: diff[m][1:] for m in PEAK_METRICS},
            )
            for name, diff in self.differences.items()
        ]
        text = io.StringIO(newline="")
        w = csv.writer(text)
        w.writerow(["method", *METRICS, *bounds, *self.settings])
        for name, row, ci in lines:
            w.writerow(
                [
                    name,
                    *(f"{row[m]:.4f}" for m in METRICS),
                    *(f"{v:.4f}" for m in PEAK_METRICS for v in ci[m]),
                    *self.settings.values(),
                ]
            )
        write_text(path, text.getvalue())

    def __str__(self) -> str:
        s = self.settings
        k, tol = s["k"], s["tolerance"]
        head = (
            f"{s['video']}, frames {s['frames']}, {s['pairs']} pairs with "
            f"{s['divisions']} divisions; top-{k} peaks per pair, hit within "
            f"{s['radius']:g} px; crops of {s['crop_size']} px: "
            f"{s['crops_division']} division, {s['crops_cell']} cell, "
            f"{s['crops_background']} background"
        )
        labels = (
            f"P@{k}",
            f"R@{k}",
            f"P@{k} ±{tol}",
            f"R@{k} ±{tol}",
            "acc div",
            "acc cell",
            "acc bg",
        )
        lines = [head, f"{'method':<20}" + "".join(f"{c:>10}" for c in labels)]
        for name, row in self.rows.items():
            cells = (_fmt(row[m]) for m in METRICS)
            lines.append(f"{name:<20}" + "".join(f"{c:>10}" for c in cells))
        shown = ("precision", "precision_tol")
        lines += [
            "",
            f"95 % intervals, resampling the {s['pairs']} pairs {s['bootstrap']} times:",
            f"{'':<34}" + "".join(f"{labels[METRICS.index(m)]:>24}" for m in shown),
        ]
        for name, ci in self.intervals.items():
            cells = (
                f"{_fmt(self.rows[name][m])} [{_fmt(ci[m][0])}, {_fmt(ci[m][1])}]"
                for m in shown
            )
            lines.append(f"{name:<34}" + "".join(f"{c:>24}" for c in cells))
        for name, diff in self.differences.items():
            cells = (
                f"{diff[m][0]:+.3f} [{diff[m][1]:+.3f}, {diff[m][2]:+.3f}]"
                for m in shown
            )
            lines.append(
                f"{f'{METHODS[0]} - {name}':<34}" + "".join(f"{c:>24}" for c in cells)
            )
        return "\n".join(lines)


def _fmt(value: float) -> str:
    """Three decimals, or "-" for a metric that does not apply."""
    return "-" if math.isnan(value) else f"{value:.3f}"


def evaluate(
    model: TapModel,
    video: Video,
    truth: Annotations,
    delta: int = 1,
    top_k: int = TOP_K,
    radius: float = 25.0,
    frames: tuple[int, int] | None = None,
    tolerance: int = 2,
    tile: int = DEFAULT_TILE,
    seed: int = 0,
    crops: int = 16,
    random_draws: int = 10,
    stop: Callable[[], bool] = lambda: False,
    compare: Mapping[str, TapModel] | None = None,
) -> Iterator[Event]:
    """Score attribution peaks and TAP accuracy against true divisions, beside controls.

    For every pair (t, t+Δt) whose frames lie in ``frames`` (inclusive frame
    numbers) and that contains a division (t < division <= t+Δt), the top-k
    peaks (at least ``radius`` apart, none within ``EDGE`` px of the frame edge)
    of four maps are picked: the model's Grad-CAM, the Grad-CAM of an untrained
    network of the same architecture (seeded), the smoothed |x_{t+Δt} - x_t|,
    and ``random_draws`` draws of random foreground points (averaged). A peak
    hits when it lies within ``radius`` px of a division position (parent's last
    or a daughter's first) of the same pair, or, for the ``_tol`` columns,
    within ± ``tolerance`` frames. Recall is the share of the pairs' divisions
    hit by a peak (each division counted once). TAP accuracy (both orders, so
    chance is 0.5) is measured on crops of the model's training size centred on
    divisions, on up to ``crops`` cells per pair away from divisions, and on
    ``crops`` background points per pair. Peak metrics come with 95 % bootstrap
    intervals over the pairs, and so do the model's differences to each control
    (paired, see :func:`bootstrap`). More TAP models in ``compare`` (row name ->
    model; e.g. :data:`BASELINE`: the same model before more training, or the
    snapshots of a learning curve) are scored like the model, next to the same
    controls computed once; the model's paired difference to each says whether
    the change helped beyond the noise of the pairs, and
    :meth:`EvaluationTable.differences_to` gives any row's.

    Yields Progress, then ``Done(EvaluationTable)``.
    """
    if top_k < 1 or crops < 1 or random_draws < 1 or not radius > 0:
        raise ConfigError(
            f"top_k ({top_k}), crops ({crops}) and random_draws ({random_draws}) must be "
            f">= 1 and radius ({radius}) > 0."
        )
    pairs, own = pairs_with_divisions(video, truth.divisions, delta, frames)
    _check_positions(truth.divisions, video.shape[1:])
    times, divs = video.times, truth.divisions
    rng = np.random.default_rng(seed)
    min_distance = max(1, round(radius))
    compare = dict(compare or {})
    clash = set(compare) & set(METHODS)
    if clash:
        raise ConfigError(f"compare: the rows {sorted(clash)} are taken; rename them.")
    nets = [(METHODS[0], model), *compare.items()]
    nets.append((METHODS[1], untrained_like(model, seed)))
    total, done = (1 + 2 * len(nets)) * len(pairs), 0
    peaks: dict[str, list[np.ndarray]] = {m: [] for m, _ in nets}
    peaks[METHODS[2]] = []
    draws: list[list[np.ndarray]] = [[] for _ in range(random_draws)]
    centres: list[dict[str, list[tuple[float, float, float]]]] = []  # per pair, kind
    held: dict[int, np.ndarray] = {}
    for k, (i, j) in enumerate(pairs):
        if stop():
            raise Cancelled(STOPPED)
        held = {f: held[f] if f in held else video.frame(f) for f in (i, j)}
        t0, t1 = int(times[i]), int(times[j])
        diff = frame_difference(held[i], held[j], radius)
        peaks["frame difference"].append(peak_rows(diff, t0, top_k, min_distance))
        fg = foreground(held[i], truth.markers.get(t0)) | foreground(
            held[j], truth.markers.get(t1)
        )
        inner = _away_from_border(fg, EDGE)  # where peaks may lie
        for draw in draws:
            pts = random_points(inner, top_k, min_distance, rng)
            draw.append(
                np.column_stack([np.full(len(pts), t0), pts, np.zeros(len(pts))])
            )
        window = (t0, t1 - t0, tolerance)
        cells = _cell_centres(truth, t1, window, radius, crops, rng)
        background = _background_centres(fg, radius, crops, rng)
        centres.append(
            {
                "division": [(t1, *divs[d].center) for d in own[k]],
                "cell": [(t1, y, x) for y, x in cells],
                "background": [(t1, y, x) for y, x in background],
            }
        )
        done += 1
        yield Progress("evaluate", done, total)

    accuracy: dict[str, dict[str, float]] = {}
    for name, net in nets:
        size = net.config.data.size
        with stopped_means(STOPPED):
            for ev in attribute(net, video, delta, tile, stop, pairs):
                if isinstance(ev, FrameDone):
                    t0 = int(times[ev.frame])
                    peaks[name].append(peak_rows(ev.data, t0, top_k, min_distance))
                elif isinstance(ev, Progress):
                    yield Progress("evaluate", done + ev.done, total)
        done += len(pairs)
        correct, count = dict.fromkeys(CROP_KINDS, 0.0), dict.fromkeys(CROP_KINDS, 0)
        for per_kind in centres:  # pair by pair, for progress and stop
            if stop():
                raise Cancelled(STOPPED)
            for kind, c in per_kind.items():
                if c:
                    acc = crop_accuracy(net, video, np.array(c), size, delta)
                    correct[kind] += acc * len(c)
                    count[kind] += len(c)
            done += 1
            yield Progress("evaluate", done, total)
        accuracy[name] = {
            f"acc_{kind}": correct[kind] / count[kind] if count[kind] else math.nan
            for kind in CROP_KINDS
        }

    starts = times[pairs[:, 0]]

    def counts(tables: list[np.ndarray]) -> PairCounts:
        return pair_counts(
            np.concatenate(tables), divs, own, starts, delta, radius, tolerance
        )

    by_method = {name: [counts(tables)] for name, tables in peaks.items()}
    by_method[METHODS[3]] = [counts(d) for d in draws]
    intervals, differences = bootstrap(by_method, METHODS[0], seed=seed)
    no_accuracy = {f"acc_{kind}": math.nan for kind in CROP_KINDS}
    rows = {
        name: {
            **mean_metrics(cs),
            **accuracy.get(name, no_accuracy),
        }
        for name, cs in by_method.items()
    }
    settings: dict[str, int | float | str] = {
        "model": str(model.folder or "unsaved"),
        **{name: str(m.folder or "unsaved") for name, m in compare.items()},
        "video": video.name,
        "frames": f"{times[pairs[0, 0]]}-{times[pairs[-1, 1]]}",
        "delta": delta,
        "pairs": len(pairs),
        "divisions": len(np.unique(np.concatenate(own))),
        "k": top_k,
        "radius": radius,
        "border": EDGE,
        "tolerance": tolerance,
        "crop_size": model.config.data.size,
        **{f"crops_{kind}": sum(len(c[kind]) for c in centres) for kind in CROP_KINDS},
        "seed": seed,
        "random_draws": random_draws,
        "bootstrap": BOOTSTRAP,
    }
    yield Done(EvaluationTable(rows, settings, intervals, differences, by_method))


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


def untrained_like(model: TapModel, seed: int = 0) -> TapModel:
    """Build a freshly initialised network of the same architecture, on the same device (seeded)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = TapModel(model.config)
    fresh.net.eval()
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


def peak_rows(score_map: np.ndarray, t0: int, k: int, min_distance: int) -> np.ndarray:
    """Rows (t0, y, x, score) of the top-k peaks of a map."""
    r = top_regions(score_map, k, min_distance)
    return np.column_stack([np.full(len(r), t0, float), r]).reshape(-1, 4)


def _away_from_border(mask: np.ndarray, border: int) -> np.ndarray:
    """``mask`` without its ``border``-px frame band, where ``top_regions`` picks no peaks."""
    inner = np.zeros_like(mask)
    inner[border:-border, border:-border] = mask[border:-border, border:-border]
    return inner


def pairs_with_divisions(
    video: Video,
    divisions: Sequence[Division],
    delta: int,
    frames: tuple[int, int] | None,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Pairs (positions i, j) inside ``frames`` that contain a division, and those divisions."""
    pairs, t = video.pairs(delta), video.times
    lo, hi = frames if frames is not None else (t[0], t[-1])
    pairs = pairs[(t[pairs[:, 0]] >= lo) & (t[pairs[:, 1]] <= hi)]
    if len(pairs) == 0:
        raise TracksError(
            f"{video.name} has no pair of frames {delta} apart within frames {lo}-{hi}; "
            "widen the frame range or use a smaller delta."
        )
    td = np.array([d.t for d in divisions], int)
    own = [np.flatnonzero((td > t[i]) & (td <= t[j])) for i, j in pairs]
    keep = np.array([len(o) > 0 for o in own])
    if not keep.any():
        raise TracksError(
            f"no division of the ground truth falls inside a pair of frames {lo}-{hi} of "
            f"{video.name}; check the frame range and that the lineage belongs to this video."
        )
    return pairs[keep], [o for o, kept in zip(own, keep, strict=True) if kept]


def _check_positions(divisions: Sequence[Division], shape: tuple[int, ...]) -> None:
    """Fail when division positions lie outside the frames (ground truth of another video)."""
    pts = (
        np.concatenate([d.points for d in divisions]) if divisions else np.zeros((0, 2))
    )
    if len(pts) and (pts.min() < -0.5 or np.any(pts.max(0) > np.array(shape) - 0.5)):
        raise TracksError(
            f"division positions reach {pts.max(0).round().astype(int).tolist()} (y, x), "
            f"outside the video's {shape[0]}x{shape[1]} frames; give the lineage of this video."
        )


def _cell_centres(
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


def _background_centres(
    fg: np.ndarray, radius: float, n: int, rng: np.random.Generator
) -> list[tuple[float, float]]:
    """``n`` random points farther than ``radius`` from any foreground pixel."""
    ys, xs = np.nonzero(distance_transform_edt(~fg) > radius)
    pick = rng.choice(len(ys), size=min(n, len(ys)), replace=False)
    return [(float(ys[p]), float(xs[p])) for p in pick]
