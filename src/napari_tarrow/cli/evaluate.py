"""``napari-tarrow evaluate``: attribution peaks on annotated divisions, beside controls."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import TOP_K
from ._options import add_model_and_video, load_model
from .progress import StopOnInterrupt, run_events


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` subcommand."""
    e = sub.add_parser(
        "evaluate",
        help="attribution peaks on annotated divisions (CTC lineage), beside controls",
    )
    add_model_and_video(e)
    e.add_argument(
        "--tracks",
        required=True,
        help="CTC lineage man_track.txt, with its man_trackNNN.tif masks beside it",
    )
    e.add_argument("--out", help="CSV table to write (one row per method)")
    e.add_argument("--top-k", type=int, default=TOP_K, help="peaks per frame pair")
    e.add_argument(
        "--radius",
        type=float,
        default=25.0,
        help="hit radius in pixels (about one nucleus diameter)",
    )
    e.add_argument(
        "--frames", type=frame_range, help="frame numbers A-B (default: all)"
    )
    e.add_argument("--delta", type=int, default=1)
    e.add_argument(
        "--weights",
        choices=["best", "last"],
        help="weights_best (lowest validation loss, the default) or weights_last",
    )
    e.add_argument(
        "--baseline",
        metavar="MODEL_DIR",
        help="a second TAP model (e.g. the same before fine-tuning; --weights, else "
        "the other file) scored alongside, with the paired difference to it",
    )
    e.add_argument(
        "--seed", type=int, default=0, help="random points and untrained network"
    )
    e.set_defaults(func=run)


def frame_range(text: str) -> tuple[int, int]:
    """Parse ``A-B`` (inclusive frame numbers) for ``--frames``."""
    first, sep, last = text.partition("-")
    try:
        lo, hi = int(first), int(last if sep else first)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a range of frame numbers like 0-19"
        ) from None
    if lo > hi:
        raise argparse.ArgumentTypeError(f"{text!r}: the first frame is after the last")
    return lo, hi


def run(a: argparse.Namespace) -> None:
    """Attribution peaks and TAP accuracy on annotated divisions, beside controls."""
    from ..errors import ModelFolderError
    from ..evaluation import BASELINE, evaluate
    from ..io.ctc import read_ctc
    from ..io.export import check_output
    from ..io.video import read_video
    from ..model import WEIGHTS

    if a.out:
        check_output(a.out)
    for folder in (a.model, a.baseline) if a.baseline else (a.model,):
        if a.weights and not (Path(folder) / WEIGHTS[a.weights]).is_file():
            raise ModelFolderError(
                f"{folder} has no {WEIGHTS[a.weights]}; choose the other --weights."
            )
    model = load_model(a, a.model, a.weights or "best")
    compare = (
        {BASELINE: load_model(a, a.baseline, a.weights or "best")} if a.baseline else {}
    )
    video = read_video(a.video, model.config.data.percentiles)
    truth = read_ctc(a.tracks, video.shape[1:])
    with StopOnInterrupt() as stop:
        table = run_events(
            evaluate(
                model,
                video,
                truth,
                delta=a.delta,
                top_k=a.top_k,
                radius=a.radius,
                frames=a.frames,
                tile=a.tile,
                seed=a.seed,
                stop=stop,
                compare=compare,
            ),
            "evaluate",
            a.quiet,
        )
    print(table)
    if a.out:
        table.to_csv(a.out)
        print(f"wrote {a.out}")
