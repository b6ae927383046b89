"""napari-tarrow: time arrow prediction (TAP) for live-cell time-lapses.

Importing the package is cheap: torch, napari and Qt are imported only by the
modules that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
