"""``napari-tarrow segment`` and ``segment-eval``: dividing cells from a few painted labels, and their F1."""

from __future__ import annotations

import argparse

from .progress import StopOnInterrupt, run_events


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``segment`` and ``segment-eval`` subcommands."""
    g = sub.add_parser(
        "segment", help="segment dividing cells from a few painted labels"
    )
    g.add_argument("model", help="TAP model folder (baseline: its architecture only)")
    g.add_argument("video", help="(T,Y,X) TIFF or folder of frames")
    g.add_argument(
        "--labels",
        required=True,
        help="(T,Y,X) TIFF: 0 unlabelled, 1 background, 2 dividing cell",
    )
    g.add_argument("--mask", action="store_true", help="--labels is a binary mask")
    g.add_argument(
        "--mask-frames",
        type=int,
        nargs="+",
        help="frames the mask covers (default all)",
    )
    g.add_argument("--out", required=True, help="labels TIFF; also <stem>_proba.tif")
    g.add_argument(
        "--mode", choices=["frozen", "finetune", "baseline"], default="frozen"
    )
    g.add_argument("--head", choices=["linear", "conv"], default="conv")
    g.add_argument("--epochs", type=int, default=20)
    g.add_argument("--delta", type=int, default=1)
    g.add_argument("--threshold", type=float, default=0.5)
    g.add_argument("--min-size", type=int, default=64, help="smallest object (pixels)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--save-model", help="folder to keep the trained segmenter in")
    g.add_argument("--device", default="auto")
    g.set_defaults(func=run)

    v = sub.add_parser("segment-eval", help="object F1 of labels against ground truth")
    v.add_argument("pred", help="predicted labels TIFF (e.g. from `segment`)")
    v.add_argument("gt", help="ground-truth labels or binary mask TIFF")
    v.add_argument("--iou", type=float, default=0.5)
    v.add_argument(
        "--min-size", type=int, default=64, help="drop predicted objects below (px)"
    )
    v.add_argument("--mode", choices=["2d", "3d"], default="2d", help="3d: 2D+t")
    v.add_argument("--matching", choices=["hungarian", "greedy"], default="hungarian")
    v.set_defaults(func=run_eval)


def run(a: argparse.Namespace) -> None:
    """Train a division segmenter on painted labels; write labels and probability TIFFs."""
    from ..downstream.files import segment_files
    from ..downstream.segmenter_config import SegmentationConfig

    cfg = SegmentationConfig(
        mode=a.mode,
        head=a.head,
        delta=a.delta,
        epochs=a.epochs,
        threshold=a.threshold,
        min_size=a.min_size,
        seed=a.seed,
    )
    with StopOnInterrupt() as stop:
        job = segment_files(
            a.model,
            a.video,
            a.labels,
            a.out,
            cfg,
            mask_frames=a.mask_frames,
            mask=a.mask,
            device=a.device,
            save_model=a.save_model,
            stop=stop,
        )
        done = run_events(job, "segment", a.quiet)
    print(
        f"trained on frames {done['trained_on_frames']}; wrote {done['labels']} "
        f"({done['objects']} objects) and {done['probability']}"
    )


def run_eval(a: argparse.Namespace) -> None:
    """Object-level precision, recall and F1 of a label TIFF against ground truth."""
    from ..downstream.files import evaluate_files

    s = evaluate_files(a.pred, a.gt, a.iou, a.min_size, a.mode, a.matching)
    print(
        f"IoU>={a.iou:g} ({a.mode}, {a.matching}): TP={s.tp} FP={s.fp} FN={s.fn} "
        f"precision={s.precision:.3f} recall={s.recall:.3f} F1={s.f1:.3f}"
    )
