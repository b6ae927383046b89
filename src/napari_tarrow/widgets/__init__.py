"""napari widgets: thin Qt layers over the core (train, attribution maps, feature export)."""

from .attribution import AttributionWidget
from .export import ExportWidget
from .train import TrainWidget

__all__ = ["AttributionWidget", "ExportWidget", "TrainWidget"]
