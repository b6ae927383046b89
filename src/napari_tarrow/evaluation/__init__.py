"""Scoring attribution against annotated divisions, beside controls.

:func:`evaluate` (a job generator ending in ``Done(EvaluationTable)``) is the entry
point; the modules hold its parts: controls, crops, statistics and the table.
"""

from .crops import crop_accuracy
from .job import Scoring, evaluate, pairs_with_divisions
from .table import BASELINE, METHODS, METRICS, EvaluationTable

__all__ = [
    "BASELINE",
    "METHODS",
    "METRICS",
    "EvaluationTable",
    "Scoring",
    "crop_accuracy",
    "evaluate",
    "pairs_with_divisions",
]
