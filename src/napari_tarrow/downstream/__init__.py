"""Downstream tasks on TAP features: division segmentation, cell-state classification, metrics."""

from .labels import BACKGROUND, DIVIDING, UNLABELLED, LabelsError, labels_from_mask
from .metrics import ObjectScores, average_precision, classification_ap, object_f1
from .postprocess import probability_to_labels
from .segment import DivisionSegmenter, Segmentation
from .segmenter_config import SegmentationConfig

__all__ = [
    "BACKGROUND",
    "DIVIDING",
    "UNLABELLED",
    "DivisionSegmenter",
    "LabelsError",
    "ObjectScores",
    "Segmentation",
    "SegmentationConfig",
    "average_precision",
    "classification_ap",
    "labels_from_mask",
    "object_f1",
    "probability_to_labels",
]
