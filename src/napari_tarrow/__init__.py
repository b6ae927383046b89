"""napari-tarrow: time arrow prediction (TAP) for live-cell time-lapses.

Importing the package is cheap: torch is imported when a name below is first
used, and napari and Qt only by the widgets.

    import napari_tarrow as tap
    model = tap.train("video.tif", "my_model", epochs=20)
    maps, pairs = tap.attribute(model, "video.tif")
    z = tap.features(model, "video.tif")
"""

from typing import Any

from ._version import __version__

#: Public names, each imported from its module on first use: name -> module.
_LAZY = {
    "train": "api",
    "attribute": "api",
    "features": "api",
    "TapModel": "model",
    "TapConfig": "config",
    "PRESETS": "config",
    "Video": "io.video",
    "read_video": "io.video",
    "drain": "events",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'napari_tarrow' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
