"""Evaluation: object-level F1 at an IoU threshold (2D per frame or 2D+t) and average precision.

Objects are matched one-to-one: Hungarian matching (scipy) maximises the
number of pairs with IoU >= the threshold (ties broken by IoU, as in StarDist's
``matching``); greedy matching takes pairs by decreasing IoU. A pair counts
when its IoU is >= the threshold (inclusive).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from skimage.measure import label
from skimage.segmentation import relabel_sequential

from ..errors import ConfigError
from .labels import LabelsError

MATCHING = ("hungarian", "greedy")
MODES = ("2d", "3d")


@dataclass(frozen=True)
class ObjectScores:
    """Counts and scores of a matching; a ratio with nothing to count is 1.0."""

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float

    @classmethod
    def from_counts(cls, tp: int, fp: int, fn: int) -> ObjectScores:
        """Scores from true positives, false positives and false negatives."""

        def ratio(a: int, b: int) -> float:
            return a / b if b else 1.0

        return cls(
            tp,
            fp,
            fn,
            ratio(tp, tp + fp),
            ratio(tp, tp + fn),
            ratio(2 * tp, 2 * tp + fp + fn),
        )

    def as_dict(self) -> dict[str, float]:
        """Plain dict (for JSON and tables)."""
        return asdict(self)


def iou_matrix(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """IoU of every ground-truth object (rows) with every predicted object (columns).

    Inputs are label images of the same shape with sequential ids 1..n (0 = none).
    """
    n_g, n_p = int(gt.max()), int(pred.max())
    inter = coo_matrix(
        (np.ones(gt.size, np.int64), (gt.ravel(), pred.ravel())),
        shape=(n_g + 1, n_p + 1),
    ).toarray()[1:, 1:]
    area_g = np.bincount(gt.ravel(), minlength=n_g + 1)[1:]
    area_p = np.bincount(pred.ravel(), minlength=n_p + 1)[1:]
    union = area_g[:, None] + area_p[None, :] - inter
    return inter / np.maximum(union, 1)


def match(iou: np.ndarray, threshold: float, method: str = "hungarian") -> np.ndarray:
    """One-to-one pairs (k, 2) of (row, column) with IoU >= ``threshold``."""
    if method not in MATCHING:
        raise ConfigError(f"matching={method!r} is unknown; use one of {MATCHING}.")
    if iou.size == 0:
        return np.zeros((0, 2), int)
    ok = iou >= threshold
    if method == "hungarian":
        # each match is worth 1; the IoU term (< 1 in total) only breaks ties
        cost = -(ok + iou / (2 * min(iou.shape)))
        rows, cols = linear_sum_assignment(cost)
        keep = ok[rows, cols]
        return np.stack([rows[keep], cols[keep]], axis=1)
    rows, cols = np.nonzero(ok)
    used_r, used_c, out = set(), set(), []
    for k in np.argsort(-iou[rows, cols], kind="stable"):
        r, c = int(rows[k]), int(cols[k])
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            out.append((r, c))
    return np.asarray(out, int).reshape(-1, 2)


def _objects(x: np.ndarray, min_size: int = 0) -> np.ndarray:
    """Sequential label image without objects below ``min_size`` pixels.

    Boolean input is split into connected components (full connectivity);
    integer labels are kept as given.
    """
    lab = label(x) if x.dtype == bool else np.asarray(x, np.int64)
    if min_size > 1:
        small = np.bincount(lab.ravel()) < min_size
        small[0] = False
        lab = np.where(small[lab], 0, lab)
    return relabel_sequential(lab)[0]


def object_f1(
    gt: np.ndarray,
    pred: np.ndarray,
    iou: float = 0.5,
    mode: str = "2d",
    matching: str = "hungarian",
    min_size: int = 0,
) -> ObjectScores:
    """Object-level precision, recall and F1 of ``pred`` against ``gt``.

    Parameters
    ----------
    gt, pred : np.ndarray
        (Y, X) or (T, Y, X) label images (0 = background) or boolean masks
        (split into connected components).
    iou : float
        A pair matches when its IoU is >= this, in (0, 1].
    mode : {"2d", "3d"}
        "2d": objects are matched frame by frame and the counts summed; "3d":
        objects are the 3D connected components of ``gt > 0`` and ``pred > 0``
        over (T, Y, X) (2D+t events such as budding yeast or mitoses).
    matching : {"hungarian", "greedy"}
    min_size : int
        Predicted objects (per frame in "2d", over (T, Y, X) in "3d") below this
        many pixels are removed first, as in the paper's evaluation (64 px).
    """
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape:
        raise LabelsError(
            f"prediction {pred.shape} and ground truth {gt.shape} differ in shape; "
            "compare arrays of the same (T, Y, X) or (Y, X) shape."
        )
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r} is unknown; use one of {MODES}.")
    if not 0 < iou <= 1:
        raise ConfigError(f"iou={iou} must lie in (0, 1].")
    if mode == "3d" or gt.ndim == 2:
        if mode == "3d":
            gt, pred = gt > 0, pred > 0
        g, p = _objects(gt), _objects(pred, min_size)
        found = len(match(iou_matrix(g, p), iou, matching))
        return ObjectScores.from_counts(
            found, int(p.max()) - found, int(g.max()) - found
        )
    totals = np.zeros(3, int)
    for g_t, p_t in zip(gt, pred, strict=True):
        s = object_f1(g_t, p_t, iou, "2d", matching, min_size)
        totals += (s.tp, s.fp, s.fn)
    return ObjectScores.from_counts(*totals.tolist())


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Average precision Σ (R_n - R_{n-1}) P_n over distinct score thresholds.

    The same definition as scikit-learn's ``average_precision_score`` (no
    interpolation); NaN when there is no positive.
    """
    y = np.asarray(y_true, bool).ravel()
    s = np.asarray(scores, float).ravel()
    if not y.any():
        return float("nan")
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # end of each tie group
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def classification_ap(
    true: np.ndarray, proba: np.ndarray, classes: np.ndarray
) -> dict[str, float]:
    """One-vs-rest average precision per class and their mean (key "mean").

    ``proba`` is (N, K), column k for ``classes[k]``; classes without a true
    example are left out of the mean.
    """
    true = np.asarray(true)
    per = {
        str(c): average_precision(true == c, np.asarray(proba)[:, k])
        for k, c in enumerate(classes)
    }
    valid = [v for v in per.values() if not np.isnan(v)]
    return {**per, "mean": float(np.mean(valid)) if valid else float("nan")}
