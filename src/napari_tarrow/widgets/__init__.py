"""napari widgets: thin Qt layers over the core (train, attribution, export, downstream)."""

from .attribution import AttributionWidget
from .classify import ClassifyWidget
from .export import ExportWidget
from .segment import SegmentWidget
from .train import TrainWidget

__all__ = [
    "AttributionWidget",
    "ClassifyWidget",
    "ExportWidget",
    "SegmentWidget",
    "TrainWidget",
]
