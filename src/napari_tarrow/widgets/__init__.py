"""napari widgets: thin Qt layers over the core (train, attribution, export, segmentation)."""

from .attribution import AttributionWidget
from .export import ExportWidget
from .segment import SegmentWidget
from .train import TrainWidget

__all__ = ["AttributionWidget", "ExportWidget", "SegmentWidget", "TrainWidget"]
