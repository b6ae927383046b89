"""Object-level F1 and average precision against hand-worked cases."""

import numpy as np
import pytest

from napari_tarrow.downstream.metrics import (
    average_precision,
    classification_ap,
    iou_matrix,
    match,
    object_f1,
)
from napari_tarrow.downstream.postprocess import probability_to_labels
from napari_tarrow.errors import ConfigError, TarrowError


def _squares() -> np.ndarray:
    """Two frames: objects 1 and 2 (4x4 = 16 px) in frame 0, object 3 in frame 1."""
    gt = np.zeros((2, 20, 20), np.int32)
    gt[0, 2:6, 2:6] = 1
    gt[0, 10:14, 10:14] = 2
    gt[1, 5:9, 5:9] = 3
    return gt


def test_perfect_match() -> None:
    gt = _squares()
    s = object_f1(gt, gt)
    assert (s.tp, s.fp, s.fn, s.f1) == (3, 0, 0, 1.0)
    # other ids, and a boolean mask split into components, give the same
    assert object_f1(gt, gt * 7).f1 == 1.0
    assert object_f1(gt, gt > 0).f1 == 1.0


def test_one_missed_object() -> None:
    gt = _squares()
    pred = gt.copy()
    pred[pred == 2] = 0
    s = object_f1(gt, pred)
    assert (s.tp, s.fp, s.fn) == (2, 0, 1)
    assert s.precision == 1.0 and s.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(0.8)  # 2*2 / (2*2 + 0 + 1)


def test_split_object_gives_one_match_and_one_false_positive() -> None:
    gt = np.zeros((20, 20), np.int32)
    gt[2:6, 2:10] = 1  # 32 px
    pred = np.zeros_like(gt)
    pred[2:6, 2:7] = 1  # 20 px: IoU 20/32 = 0.625
    pred[2:6, 7:10] = 2  # 12 px: IoU 12/32 = 0.375
    s = object_f1(gt, pred, iou=0.5)
    assert (s.tp, s.fp, s.fn) == (1, 1, 0)
    assert s.f1 == pytest.approx(2 / 3)


def test_merged_objects_match_at_most_one() -> None:
    gt = np.zeros((20, 20), np.int32)
    gt[2:6, 2:6], gt[2:6, 7:11] = 1, 2
    pred = (gt > 0).astype(np.int32)
    pred[2:6, 6] = 1  # one object covering both: IoU 16/36 < 0.5 with each
    s = object_f1(gt, pred, iou=0.4)
    assert (s.tp, s.fp, s.fn) == (1, 0, 1)


def test_iou_threshold_is_inclusive_at_the_boundary() -> None:
    gt = np.zeros((10, 10), np.int32)
    gt[0:4, 0:4] = 1  # 16 px
    pred = np.zeros_like(gt)
    pred[0:4, 0:2] = 1  # 8 px inside: IoU exactly 0.5
    assert iou_matrix(gt, pred)[0, 0] == 0.5
    assert object_f1(gt, pred, iou=0.5).tp == 1
    assert object_f1(gt, pred, iou=0.51).tp == 0


def test_hungarian_maximises_matches_where_greedy_does_not() -> None:
    iou = np.array([[0.6, 0.55], [0.58, 0.0]])
    # greedy takes (0, 0) first and leaves row 1 unmatched; Hungarian matches both
    assert len(match(iou, 0.5, "greedy")) == 1
    assert sorted(map(tuple, match(iou, 0.5, "hungarian"))) == [(0, 1), (1, 0)]


def test_min_size_drops_small_predictions() -> None:
    gt = _squares()
    pred = gt.copy()
    pred[0, 17:19, 17:19] = 9  # 4 px false positive
    assert object_f1(gt, pred).fp == 1
    assert object_f1(gt, pred, min_size=5).fp == 0


def test_3d_objects_are_connected_through_time() -> None:
    gt = np.zeros((3, 10, 10), bool)
    gt[0:2, 2:5, 2:5] = True  # one 2D+t event over frames 0-1
    gt[2, 7:9, 7:9] = True
    pred = gt.copy()
    pred[2] = False
    s3 = object_f1(gt, pred, mode="3d")
    assert (s3.tp, s3.fp, s3.fn) == (1, 0, 1)
    s2 = object_f1(gt, pred, mode="2d")
    assert (s2.tp, s2.fn) == (2, 1)


def test_bad_metric_input_is_a_clear_error() -> None:
    with pytest.raises(TarrowError, match="differ in shape"):
        object_f1(np.zeros((4, 4), int), np.zeros((4, 5), int))
    with pytest.raises(ConfigError, match="mode"):
        object_f1(np.zeros((4, 4), int), np.zeros((4, 4), int), mode="4d")


def test_average_precision_hand_worked() -> None:
    # ranks: 0.9 (+), 0.8 (-), 0.7 (+, +) tie, 0.1 (-)
    # thresholds: R 1/3 at P 1, then R 1 at P 3/4 -> AP = 1/3 + 2/3 * 3/4
    ap = average_precision([1, 0, 1, 1, 0], [0.9, 0.8, 0.7, 0.7, 0.1])
    assert ap == pytest.approx(1 / 3 + 2 / 3 * 3 / 4)
    assert average_precision([0, 1], [0.2, 0.9]) == 1.0
    assert np.isnan(average_precision([0, 0], [0.2, 0.9]))


def test_classification_ap_per_class_and_mean() -> None:
    true = np.array(["a", "b", "a"])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.15, 0.85]])
    ap = classification_ap(true, proba, np.array(["a", "b"]))
    assert ap["a"] == pytest.approx(1 / 2 + 1 / 2 * 2 / 3)  # 0.9 (+), 0.2 (-), 0.15 (+)
    assert ap["b"] == pytest.approx(1 / 2)  # 0.85 (-), 0.8 (+), 0.1 (-)
    assert ap["mean"] == pytest.approx((5 / 6 + 1 / 2) / 2)


def test_probability_to_labels_thresholds_and_removes_small_objects() -> None:
    p = np.zeros((2, 20, 20), np.float32)
    p[0, 0:10, 0:10] = 0.9  # 100 px
    p[0, 15:18, 15:18] = 0.9  # 9 px: removed
    p[1, 5:15, 5:15] = 0.6
    p[1, 0:2, 0:2] = 0.4  # below threshold
    lab = probability_to_labels(p, threshold=0.5, min_size=64)
    assert lab.shape == p.shape
    assert np.unique(lab[0]).tolist() == [0, 1]
    assert np.unique(lab[1]).tolist() == [0, 2]  # ids continue across frames
    assert (lab[0] > 0).sum() == 100
