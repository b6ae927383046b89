"""``napari-tarrow features``: dense features (T, C, Y, X) to TIFF with a JSON sidecar, or OME-Zarr."""

from __future__ import annotations

import argparse

from ._options import add_model_and_video, load
from .progress import StopOnInterrupt, run_events


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``features`` subcommand."""
    s = sub.add_parser("features", help="export dense TAP features")
    add_model_and_video(s)
    s.add_argument("--out", required=True, help="output TIFF, or .zarr")
    s.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    s.add_argument(
        "--format",
        choices=["tiff", "zarr"],
        help="tiff (with a .json sidecar) or zarr (OME-Zarr, chunked and "
        "compressed, opened lazily by napari; needs pip install zarr); "
        "default: from the --out suffix (.zarr, else tiff)",
    )
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> None:
    """Dense features (T, C, Y, X) to TIFF with a JSON sidecar, or to OME-Zarr."""
    from ..inference.features import export_features
    from ..io.export import output_format

    zarr = (
        output_format(a.out, a.format) == "zarr"
    )  # a mismatch: refused before loading
    model, video = load(a)
    with StopOnInterrupt() as stop:
        job = export_features(
            model, video, a.out, a.dtype, a.tile, stop, str(a.video), a.format
        )
        run_events(job, "features", a.quiet)
    print(f"wrote {a.out}" if zarr else f"wrote {a.out} and {a.out}.json")
