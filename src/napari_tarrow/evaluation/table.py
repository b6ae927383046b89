"""The evaluation's result: metrics per method, their intervals, the settings; as text and CSV."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..io.atomic import write_text
from .crops import CROP_KINDS
from .statistics import PEAK_METRICS, PairCounts, bootstrap

#: Metric columns of :class:`EvaluationTable`, in print order.
METRICS = (*PEAK_METRICS, *(f"acc_{kind}" for kind in CROP_KINDS))


#: The rows every evaluation has: the model, then the three controls.
MODEL, UNTRAINED, DIFFERENCE, RANDOM = METHODS = (
    "TAP model",
    "untrained network",
    "frame difference",
    "random foreground",
)


#: The row of the CLI's ``--baseline`` model (e.g. the same model before fine-tuning).
BASELINE = "baseline model"


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
                f"{MODEL} - {name}",
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
                f"{f'{MODEL} - {name}':<34}" + "".join(f"{c:>24}" for c in cells)
            )
        return "\n".join(lines)


def _fmt(value: float) -> str:
    """Three decimals, or "-" for a metric that does not apply."""
    return "-" if math.isnan(value) else f"{value:.3f}"
