"""Evaluation against true divisions: metrics by hand, then the whole job on the simulator."""

import math

import numpy as np
import pytest

from napari_tarrow.errors import ConfigError
from napari_tarrow.evaluation import (
    BASELINE,
    METHODS,
    METRICS,
    EvaluationTable,
    evaluate,
)
from napari_tarrow.evaluation.controls import random_points
from napari_tarrow.evaluation.statistics import (
    PEAK_METRICS,
    PairCounts,
    bootstrap,
    pair_counts,
)
from napari_tarrow.events import Done, Progress, drain
from napari_tarrow.io.ctc import Annotations, Division
from napari_tarrow.io.sample_data import dividing_cells
from napari_tarrow.io.video import Video
from napari_tarrow.model import TapModel


def test_precision_and_recall_by_hand() -> None:
    divisions = [
        Division(5, ((20.0, 20.0),), parent_yx=(10.0, 10.0)),
        Division(9, ((50.0, 50.0),)),
    ]
    peaks = np.array(
        [
            (4, 21, 21, 1.0),  # pair (4, 5): on the first division's daughter
            (4, 10, 21, 1.0),  # just over 10 px from both of its positions
            (7, 50, 50, 1.0),  # on the second division, but it happens in pair (8, 9)
        ],
        float,
    )
    starts, own = np.array([4, 7, 8]), [np.array([0]), np.array([], int), np.array([1])]
    m = pair_counts(peaks, divisions, own, starts, 1, 10.0, 2).metrics()
    assert m["precision"] == pytest.approx(1 / 3)
    assert m["recall"] == pytest.approx(1 / 2)
    assert m["precision_tol"] == pytest.approx(2 / 3)
    assert m["recall_tol"] == pytest.approx(1.0)
    # a peak on the parent's last position counts as well
    on_parent = np.array([(4, 12, 9, 1.0)])
    assert pair_counts(
        on_parent, divisions, own[:1], starts[:1], 1, 10.0, 0
    ).metrics() == {
        "precision": 1.0,
        "recall": 1.0,
        "precision_tol": 1.0,
        "recall_tol": 1.0,
    }

    # per pair: pair 4 has one hit of two peaks and its division found; pair 7 a
    # peak that hits only with the tolerance; pair 8 no peak, its division found then
    c = pair_counts(peaks, divisions, own, starts, 1, 10.0, 2)
    assert c.hits.tolist() == [[1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 0, 1]]
    assert c.totals.tolist() == [[2, 1, 0], [1, 0, 1], [2, 1, 0], [1, 0, 1]]
    # Δt = 2: pairs (0, 2) ... (3, 5) overlap; the division at 2 lies in the first
    # two and counts once for recall
    two = [Division(2, ((20.0, 20.0),)), Division(5, ((50.0, 50.0),))]
    own2 = [np.array([0]), np.array([0]), np.array([], int), np.array([1])]
    on_first = np.array([(0, 20, 20, 1.0)])
    m2 = pair_counts(on_first, two, own2, np.arange(4), 2, 10.0, 0).metrics()
    assert m2["recall"] == 0.5 and m2["precision"] == 1.0
    with pytest.raises(ValueError, match="belongs to none of the pairs"):
        pair_counts(peaks, divisions, own[:1], starts[:1], 1, 10.0, 2)


def _counts(hits: np.ndarray, totals: np.ndarray) -> PairCounts:
    """The same per-pair hits and totals for all four peak metrics."""
    rows = len(PEAK_METRICS)
    return PairCounts(np.tile(hits, (rows, 1)), np.tile(totals, (rows, 1)))


def test_bootstrap_interval_is_the_binomial_one() -> None:
    # 400 pairs of one peak each, half of them hits: 0.5 ± 1.96 * sqrt(0.25 / 400)
    c = _counts(np.arange(400) % 2, np.ones(400))
    intervals, _ = bootstrap({"model": [c]}, "model", n=4000)
    lo, hi = intervals["model"]["precision"]
    assert lo == pytest.approx(0.451, abs=0.01) and hi == pytest.approx(0.549, abs=0.01)


def test_bootstrap_differences_are_paired() -> None:
    # a control that misses exactly one of the model's six hits in every pair:
    # their intervals overlap, but the paired difference is 1/6 on every resample
    rng = np.random.default_rng(0)
    hits = rng.integers(1, 7, size=19).astype(float)
    six = np.full(19, 6.0)
    model, control = _counts(hits, six), _counts(hits - 1, six)
    same = _counts(hits, six)
    intervals, diff = bootstrap(
        {"model": [model], "control": [control], "same": [same]}, "model"
    )
    assert intervals["model"]["precision"][0] < intervals["control"]["precision"][1]
    assert diff["control"]["precision"] == pytest.approx((1 / 6,) * 3)
    assert diff["same"]["precision_tol"] == (0.0, 0.0, 0.0)
    assert "model" not in diff
    # a method measured by several draws is the mean of their metrics, resample by
    # resample (not the ratio of pooled counts: the draws' totals differ here)
    three = np.full(19, 3.0)
    draw_a, draw_b = _counts(hits, six), _counts(np.minimum(hits, 3), three)
    _, d = bootstrap({"model": [model], "draws": [draw_a, draw_b]}, "model")
    mean = (hits.sum() / 114 + np.minimum(hits, 3).sum() / 57) / 2
    assert d["draws"]["recall"][0] == pytest.approx(hits.sum() / 114 - mean)
    with pytest.raises(ValueError, match="different numbers of pairs"):
        bootstrap({"model": [model], "short": [_counts(hits[:5], six[:5])]}, "model")


def test_random_points_lie_in_the_mask_and_apart() -> None:
    mask = np.zeros((60, 60), bool)
    mask[10:30, 20:50] = True
    pts = random_points(mask, 5, 6.0, np.random.default_rng(1))
    assert pts.shape == (5, 2)
    assert mask[tuple(pts.astype(int).T)].all()
    gaps = np.hypot(*(pts[:, None] - pts[None]).transpose(2, 0, 1))
    assert gaps[~np.eye(5, dtype=bool)].min() >= 6.0
    again = random_points(mask, 5, 6.0, np.random.default_rng(1))
    assert np.array_equal(pts, again)
    tiny = np.zeros((60, 60), bool)
    tiny[0:3, 0:3] = True  # room for one point only
    assert len(random_points(tiny, 5, 6.0, np.random.default_rng(1))) == 1


@pytest.fixture(scope="module")
def sim():
    return dividing_cells(n_frames=4, shape=(64, 64), n_cells=10, seed=4)


@pytest.fixture(scope="module")
def truth(sim) -> Annotations:
    return Annotations(
        tuple(
            Division(d.t, ((d.y, d.x),), parent_yx=(d.mother_y, d.mother_x))
            for d in sim.divisions
        ),
        dict(enumerate(sim.labels)),
    )


@pytest.fixture(scope="module")
def events(sim, truth, tiny_model_dir) -> list:
    model = TapModel.from_folder(tiny_model_dir)
    return list(evaluate(model, Video(sim.video), truth, top_k=2, radius=10.0))


def test_evaluate_on_the_simulator(sim, events) -> None:
    assert isinstance(events[-1], Done)
    table: EvaluationTable = events[-1].result
    assert tuple(table.rows) == METHODS
    s = table.settings
    with_division = {d.t - 1 for d in sim.divisions}
    assert s["pairs"] == len(with_division)
    assert s["divisions"] == s["crops_division"] == len(sim.divisions)
    assert s["crops_cell"] > 0 and s["crops_background"] > 0
    for name, row in table.rows.items():
        assert set(row) == set(METRICS)
        for m in ("precision", "recall", "precision_tol", "recall_tol"):
            assert row[m] >= 0 and row[m] <= 1, (name, m, row[m])
        # a wider time window can only add hits
        assert row["precision_tol"] >= row["precision"]
        assert row["recall_tol"] >= row["recall"]
    for name in ("TAP model", "untrained network"):
        accs = [table.rows[name][f"acc_{k}"] for k in ("division", "cell")]
        assert min(accs) >= 0 and max(accs) <= 1
    assert math.isnan(table.rows["frame difference"]["acc_division"])
    # on the simulator the big changes are the divisions: the frame difference finds them
    diff, chance = table.rows["frame difference"], table.rows["random foreground"]
    assert diff["recall"] == 1.0  # one division per pair: precision@2 is at most 0.5
    assert diff["precision"] > 2 * chance["precision"]
    assert chance["precision"] > 0  # chance is small but not zero on crowded fields
    progress = [e for e in events if isinstance(e, Progress)]
    assert [p.done for p in progress] == sorted(p.done for p in progress)
    assert progress[-1].done == progress[-1].total
    assert "random foreground" in str(table) and "P@2 ±2" in str(table)
    # intervals are ordered and within [0, 1]; differences are model minus control
    for name in table.rows:
        for m in PEAK_METRICS:
            lo, hi = table.intervals[name][m]
            assert 0 <= lo <= hi <= 1, (name, m)
    model = table.rows["TAP model"]
    for name, diff in table.differences.items():
        for m in PEAK_METRICS:
            assert diff[m][0] == pytest.approx(model[m] - table.rows[name][m])
            assert diff[m][1] <= diff[m][2]
    assert "TAP model - frame difference" in str(table)


def test_a_baseline_model_is_scored_like_the_model(
    sim, truth, events, tiny_model_dir
) -> None:
    model = TapModel.from_folder(tiny_model_dir)
    twin = TapModel.from_folder(tiny_model_dir)
    run = evaluate(
        model, Video(sim.video), truth, top_k=2, radius=10.0, compare={BASELINE: twin}
    )
    table: EvaluationTable = drain(run)
    assert tuple(table.rows) == (METHODS[0], BASELINE, *METHODS[1:])
    assert table.rows[BASELINE] == table.rows[METHODS[0]]
    for m in PEAK_METRICS:  # paired: the same model differs by exactly zero
        assert table.differences[BASELINE][m] == (0.0, 0.0, 0.0)
    # the rows of the first run, without a baseline, are unchanged
    alone = events[-1].result
    for name in METHODS:
        assert table.rows[name] == pytest.approx(alone.rows[name], nan_ok=True)
    assert table.settings[BASELINE] == str(tiny_model_dir)
    assert "TAP model - baseline model" in str(table)
    # any row against the controls, on the same resamples
    twin_diff = table.differences_to(BASELINE)
    for name in METHODS[1:]:
        assert twin_diff[name] == table.differences[name]
    with pytest.raises(ConfigError, match="taken"):
        drain(evaluate(model, Video(sim.video), truth, compare={METHODS[2]: twin}))
