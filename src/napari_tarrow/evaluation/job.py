"""How well a TAP model finds divisions: attribution peaks and accuracy by region type.

:func:`evaluate` scores the top-k Grad-CAM peaks of every frame pair with a
division against ground truth (e.g. Cell Tracking Challenge lineage, see
:mod:`napari_tarrow.io.ctc`), always beside three controls with the same peak picking
(:mod:`.controls`), and breaks TAP accuracy down by crops centred on divisions, on
non-dividing cells and on background (:mod:`.crops`). Hits are counted per pair and
given bootstrap intervals (:mod:`.statistics`); the result is an
:class:`~.table.EvaluationTable`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..config import TOP_K
from ..errors import Cancelled, ConfigError, stopped_means
from ..events import Done, Event, FrameDone, Progress
from ..inference.attribution import attribute
from ..inference.features import DEFAULT_TILE
from ..inference.regions import EDGE, peak_rows
from ..io.ctc import Annotations, Division, TracksError, foreground
from ..io.video import Video
from ..model import TapModel
from .controls import away_from_border, frame_difference, random_points, untrained_like
from .crops import CROP_KINDS, background_centres, cell_centres, crop_accuracy
from .statistics import BOOTSTRAP, PairCounts, bootstrap, mean_metrics, pair_counts
from .table import DIFFERENCE, METHODS, MODEL, RANDOM, UNTRAINED, EvaluationTable

STOPPED = "evaluation stopped; no table written"
#: Crop centres of one pair, by kind (:data:`CROP_KINDS`): (t, y, x) each.
Centres = dict[str, list[tuple[float, float, float]]]


@dataclass(frozen=True)
class Scoring:
    """How peaks are picked and matched: shared by the model and every control."""

    delta: int
    top_k: int
    radius: float
    tolerance: int

    @property
    def min_distance(self) -> int:
        """Least distance between two peaks of a map: the hit radius."""
        return max(1, round(self.radius))


class _Count:
    """The evaluation's units done (pairs sampled, maps, pairs of crops), for Progress."""

    def __init__(self, total: int) -> None:
        self.done, self.total = 0, total

    def step(self, n: int = 1) -> Progress:
        self.done += n
        return Progress("evaluate", self.done, self.total)

    def ahead(self, n: int) -> Progress:
        return Progress("evaluate", self.done + n, self.total)


def evaluate(
    model: TapModel,
    video: Video,
    truth: Annotations,
    delta: int = 1,
    top_k: int = TOP_K,
    radius: float = 25.0,
    frames: tuple[int, int] | None = None,
    tolerance: int = 2,
    tile: int | None = DEFAULT_TILE,
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
    compare = dict(compare or {})
    clash = set(compare) & set(METHODS)
    if clash:
        raise ConfigError(f"compare: the rows {sorted(clash)} are taken; rename them.")
    nets = [(MODEL, model), *compare.items()]
    nets.append((UNTRAINED, untrained_like(model, seed)))
    scoring = Scoring(delta, top_k, radius, tolerance)
    count = _Count((1 + 2 * len(nets)) * len(pairs))
    rng = np.random.default_rng(seed)
    peaks: dict[str, list[np.ndarray]] = {}
    peaks[DIFFERENCE], draws, centres = yield from _sample_pairs(
        video, truth, pairs, own, scoring, crops, random_draws, rng, stop, count
    )
    accuracy: dict[str, dict[str, float]] = {}
    for name, net in nets:
        peaks[name], accuracy[name] = yield from _score_network(
            net, video, pairs, centres, scoring, tile, stop, count
        )
    starts = video.times[pairs[:, 0]]

    def counts(tables: list[np.ndarray]) -> PairCounts:
        return pair_counts(
            np.concatenate(tables),
            truth.divisions,
            own,
            starts,
            delta,
            radius,
            tolerance,
        )

    by_method = {name: [counts(peaks[name])] for name in [*dict(nets), DIFFERENCE]}
    by_method[RANDOM] = [counts(d) for d in draws]
    intervals, differences = bootstrap(by_method, MODEL, seed=seed)
    no_accuracy = {f"acc_{kind}": math.nan for kind in CROP_KINDS}
    rows = {
        name: {**mean_metrics(cs), **accuracy.get(name, no_accuracy)}
        for name, cs in by_method.items()
    }
    times = video.times
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


def _sample_pairs(
    video: Video,
    truth: Annotations,
    pairs: np.ndarray,
    own: Sequence[np.ndarray],
    s: Scoring,
    crops: int,
    random_draws: int,
    rng: np.random.Generator,
    stop: Callable[[], bool],
    count: _Count,
) -> Iterator[Event]:
    """Pair by pair: the frame difference's peaks, the random points, the crop centres.

    Returns (difference peak rows per pair, random draws of rows per pair, centres per pair).
    """
    times, divs = video.times, truth.divisions
    difference: list[np.ndarray] = []
    draws: list[list[np.ndarray]] = [[] for _ in range(random_draws)]
    centres: list[Centres] = []
    held: dict[int, np.ndarray] = {}
    for k, (i, j) in enumerate(pairs):
        if stop():
            raise Cancelled(STOPPED)
        held = {f: held[f] if f in held else video.frame(f) for f in (i, j)}
        t0, t1 = int(times[i]), int(times[j])
        diff = frame_difference(held[i], held[j], s.radius)
        difference.append(peak_rows(diff, t0, s.top_k, s.min_distance))
        fg = foreground(held[i], truth.markers.get(t0)) | foreground(
            held[j], truth.markers.get(t1)
        )
        inner = away_from_border(fg, EDGE)  # where peaks may lie
        for draw in draws:
            pts = random_points(inner, s.top_k, s.min_distance, rng)
            draw.append(
                np.column_stack([np.full(len(pts), t0), pts, np.zeros(len(pts))])
            )
        window = (t0, t1 - t0, s.tolerance)
        cells = cell_centres(truth, t1, window, s.radius, crops, rng)
        background = background_centres(fg, s.radius, crops, rng)
        centres.append(
            {
                "division": [(t1, *divs[d].center) for d in own[k]],
                "cell": [(t1, y, x) for y, x in cells],
                "background": [(t1, y, x) for y, x in background],
            }
        )
        yield count.step()
    return difference, draws, centres


def _score_network(
    net: TapModel,
    video: Video,
    pairs: np.ndarray,
    centres: Sequence[Centres],
    s: Scoring,
    tile: int | None,
    stop: Callable[[], bool],
    count: _Count,
) -> Iterator[Event]:
    """One network's Grad-CAM peaks per pair and its accuracy on each kind of crop.

    Returns (peak rows per pair, ``{"acc_<kind>": accuracy}``).
    """
    peaks = []
    with stopped_means(STOPPED):
        for ev in attribute(net, video, s.delta, tile, stop, pairs):
            if isinstance(ev, FrameDone):
                t0 = int(video.times[ev.frame])
                peaks.append(peak_rows(ev.data, t0, s.top_k, s.min_distance))
            elif isinstance(ev, Progress):
                yield count.ahead(ev.done)
    count.done += len(pairs)
    correct, n = dict.fromkeys(CROP_KINDS, 0.0), dict.fromkeys(CROP_KINDS, 0)
    size = net.config.data.size
    for per_kind in centres:  # pair by pair, for progress and stop
        if stop():
            raise Cancelled(STOPPED)
        for kind, c in per_kind.items():
            if c:
                acc = crop_accuracy(net, video, np.array(c), size, s.delta)
                correct[kind] += acc * len(c)
                n[kind] += len(c)
        yield count.step()
    accuracy = {
        f"acc_{kind}": correct[kind] / n[kind] if n[kind] else math.nan
        for kind in CROP_KINDS
    }
    return peaks, accuracy


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
