"""npe2 writer: save an Image layer (e.g. an attribution layer) as a float32 TIFF with a sidecar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ._version import __version__
from .io.export import check_output, tiff_stream, write_sidecar


def write_image_tiff(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Write ``data`` (T, Y, X) or (Y, X) frame by frame; scale/translate go to ``<path>.json``."""
    out = Path(path)
    if out.suffix.lower() not in (".tif", ".tiff"):
        out = out.with_suffix(".tif")
    check_output(out)
    data = np.asarray(data) if not hasattr(data, "shape") else data
    stack = data if data.ndim >= 3 else data[None]
    axes = "TYX" if stack.ndim == 3 else "Q" * (stack.ndim - 2) + "YX"
    dtype = np.float32 if np.issubdtype(stack.dtype, np.floating) else stack.dtype
    with tiff_stream(out, stack.shape, dtype, axes) as write:
        for frame in stack:
            write(np.asarray(frame))
    write_sidecar(
        out,
        {
            "napari_tarrow": __version__,
            "layer": attributes.get("name"),
            "axes": axes,
            "scale": list(map(float, attributes.get("scale", ()))),
            "translate": list(map(float, attributes.get("translate", ()))),
        },
    )
    return [str(out)]
