"""Evaluation against true divisions: metrics by hand, then the whole job on the simulator."""

import math

import numpy as np
import pytest

from napari_tarrow.ctc import Annotations, Division
from napari_tarrow.data.video import Video
from napari_tarrow.evaluate import (
    METHODS,
    METRICS,
    EvaluationTable,
    evaluate,
    peak_metrics,
    random_points,
)
from napari_tarrow.events import Done, Progress
from napari_tarrow.model import TapModel
from napari_tarrow.sample_data import dividing_cells


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
    m = peak_metrics(peaks, divisions, np.array([0, 1]), 1, 10.0, 2)
    assert m["precision"] == pytest.approx(1 / 3)
    assert m["recall"] == pytest.approx(1 / 2)
    assert m["precision_tol"] == pytest.approx(2 / 3)
    assert m["recall_tol"] == pytest.approx(1.0)
    # a peak on the parent's last position counts as well
    on_parent = np.array([(4, 12, 9, 1.0)])
    assert peak_metrics(on_parent, divisions, np.array([0]), 1, 10.0, 0) == {
        "precision": 1.0,
        "recall": 1.0,
        "precision_tol": 1.0,
        "recall_tol": 1.0,
    }


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
def events(sim, tiny_model_dir) -> list:
    truth = Annotations(
        tuple(
            Division(d.t, ((d.y, d.x),), parent_yx=(d.mother_y, d.mother_x))
            for d in sim.divisions
        ),
        dict(enumerate(sim.labels)),
    )
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
