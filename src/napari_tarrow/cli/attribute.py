"""``napari-tarrow attribute``: Grad-CAM maps per frame pair to TIFF, the top regions to CSV."""

from __future__ import annotations

import argparse

from ..config import TOP_K
from ._options import add_model_and_video, load
from .progress import StopOnInterrupt, run_events


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``attribute`` subcommand."""
    s = sub.add_parser("attribute", help="Grad-CAM maps per frame pair")
    add_model_and_video(s)
    s.add_argument("--out", required=True, help="output TIFF (T', Y, X) float32")
    s.add_argument("--delta", type=int, default=1)
    s.add_argument("--regions", help="CSV of the top-k regions per pair (t,y,x,score)")
    s.add_argument("--top-k", type=int, default=TOP_K)
    s.set_defaults(func=run)


def run(a: argparse.Namespace) -> None:
    """Grad-CAM maps per frame pair to TIFF, optionally the top regions to CSV."""
    from ..inference.attribution import export_attribution

    model, video = load(a)
    with StopOnInterrupt() as stop:
        job = export_attribution(
            model,
            video,
            a.out,
            a.delta,
            a.regions,
            a.top_k,
            a.tile,
            stop,
            str(a.video),
        )
        table = run_events(job, "attribute", a.quiet)
    extra = f" and {len(table)} regions to {a.regions}" if a.regions else ""
    print(f"wrote {a.out}{extra}")
