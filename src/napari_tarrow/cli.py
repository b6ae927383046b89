"""Command line: ``napari-tarrow train|attribute|features|demo|evaluate``; tqdm over job events.

Problems with input, files or settings print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .config import PRESETS, TOP_K
from .errors import Cancelled, TarrowError

log = logging.getLogger("napari_tarrow")


def run_events(
    events: Iterator[Any],
    desc: str,
    quiet: bool = False,
    deadline: float | None = None,
) -> Any:
    """Drive a job generator with a tqdm bar; returns the ``Done`` result.

    With a ``deadline`` (``time.monotonic()`` seconds, e.g. from ``--time-limit``)
    the bar counts the steps that fit before it, so its time left is the limit's.
    """
    from tqdm import tqdm

    from .events import Done, Metrics, Progress

    bar, result, start = None, None, time.monotonic()
    try:
        for ev in events:
            if isinstance(ev, Progress):
                if bar is None:
                    bar = tqdm(
                        total=ev.total,
                        desc=desc,
                        disable=quiet,
                        unit="step",
                        dynamic_ncols=True,
                        mininterval=1.0,
                    )
                if deadline is not None:
                    now = time.monotonic()
                    bar.total = expected_steps(
                        ev.done, ev.total, now - start, deadline - now
                    )
                bar.update(ev.done - bar.n)
                if ev.info:
                    bar.set_postfix(
                        {k: f"{v:.3g}" for k, v in ev.info.items()}, refresh=False
                    )
            elif isinstance(ev, Metrics) and not quiet:
                msg = "  ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in ev.values.items()
                )
                (bar.write if bar else print)(f"epoch {ev.epoch + 1}: {msg}")
            elif isinstance(ev, Done):
                result = ev.result
    finally:
        if bar is not None:
            bar.close()
    return result


def expected_steps(done: int, total: int, elapsed: float, left: float) -> int:
    """Return the steps a job will reach: ``total``, or what fits in ``left`` seconds at its pace."""
    if done == 0 or elapsed <= 0:
        return total
    return max(done, min(total, done + math.floor(done / elapsed * max(left, 0.0))))


class StopOnInterrupt:
    """Stop a job at its next step on the first Ctrl-C or SIGTERM, or at a time limit.

    SIGTERM is what a cluster scheduler sends before it kills a job: the job
    stops as cleanly as on Ctrl-C. A second signal aborts at once.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, minutes: float | None = None) -> None:
        self.requested = False
        self.deadline = None if minutes is None else time.monotonic() + 60 * minutes

    def __call__(self) -> bool:
        """Return True once a stop was requested or the time limit passed."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.requested = True
        return self.requested

    def __enter__(self) -> StopOnInterrupt:
        self._old = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, *_: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this step (Ctrl-C again to abort)...", file=sys.stderr)


#: ``train`` options that override a field of the preset: option -> (section, field).
TRAIN_OPTIONS: dict[str, tuple[str, str]] = {
    "delta": ("data", "delta"),
    "size": ("data", "size"),
    "split_train": ("data", "split_train"),
    "split_val": ("data", "split_val"),
    "augment": ("data", "augment"),
    "foreground": ("data", "foreground"),
    "features": ("model", "features"),
    "unet_channels": ("model", "unet_channels"),
    "subsample": ("model", "subsample"),
    "epochs": ("train", "epochs"),
    "samples_per_epoch": ("train", "samples_per_epoch"),
    "batch_size": ("train", "batch_size"),
    "val_samples": ("train", "val_samples"),
    "lr": ("train", "lr"),
    "seed": ("train", "seed"),
    "amp": ("train", "amp"),
    "compile": ("train", "compile"),
}


def config_from_args(a: argparse.Namespace) -> Any:
    """Return the ``--preset`` with each option given on the command line in its place."""
    import dataclasses

    cfg = PRESETS[a.preset]
    given: dict[str, dict[str, Any]] = {"data": {}, "model": {}, "train": {}}
    for option, (section, name) in TRAIN_OPTIONS.items():
        value = getattr(a, option)
        if value is not None:
            given[section][name] = tuple(value) if isinstance(value, list) else value
    return dataclasses.replace(
        cfg, **{k: dataclasses.replace(getattr(cfg, k), **v) for k, v in given.items()}
    )


def cmd_train(a: argparse.Namespace) -> None:
    """Train a model folder from one or more videos."""
    import dataclasses

    from .config import TapConfig
    from .data.video import read_video
    from .distributed import is_main_process
    from .train import train

    main_rank = is_main_process()  # under torchrun, other ranks stay quiet
    if not main_rank:
        log.setLevel(logging.ERROR)
    if a.resume and (Path(a.out) / "config.json").exists():
        cfg = TapConfig.load(Path(a.out) / "config.json")
        cfg = dataclasses.replace(
            cfg,
            train=dataclasses.replace(cfg.train, epochs=a.epochs or cfg.train.epochs),
        )
    else:
        cfg = config_from_args(a)
    if a.init:
        cfg = _starting_from(cfg, a)
    videos = [read_video(v, cfg.data.percentiles) for v in a.video]
    with StopOnInterrupt(a.time_limit) as stop:
        model = run_events(
            train(cfg, videos, a.out, a.device, a.resume, stop),
            "train",
            a.quiet or not main_rank,
            stop.deadline,
        )
    if not main_rank:
        return
    state = "stopped early; kept" if stop.requested else "saved"
    print(
        f"{state} model in {model.folder} (weights_best.safetensors: lowest validation loss)"
    )


def _starting_from(cfg: Any, a: argparse.Namespace) -> Any:
    """``cfg`` to fine-tune the model of ``--init`` (its architecture and normalisation)."""
    from .errors import ConfigError
    from .model import TapModel
    from .train import fine_tuning_config

    if a.resume:
        raise ConfigError(
            "--init starts a new run from another model; --resume continues the run "
            "in --out. Use one of them."
        )
    start = TapModel.from_folder(a.init)
    for option, (section, name) in TRAIN_OPTIONS.items():
        given, theirs = getattr(a, option), getattr(start.config.model, name, None)
        if section == "model" and given is not None and given != theirs:
            flag = "--" + option.replace("_", "-")
            raise ConfigError(
                f"{flag} {given} differs from the starting model's ({theirs}); "
                f"leave {flag} out with --init."
            )
    return fine_tuning_config(cfg, start)


def _load(a: argparse.Namespace) -> tuple[Any, Any]:
    from .data.video import read_video
    from .model import TapModel

    model = TapModel.from_folder(a.model, device=a.device)
    return model, read_video(a.video, model.config.data.percentiles)


def cmd_attribute(a: argparse.Namespace) -> None:
    """Grad-CAM maps per frame pair to TIFF, optionally the top regions to CSV."""
    from .attribution import export_attribution

    model, video = _load(a)
    with StopOnInterrupt() as stop:
        table = run_events(
            export_attribution(
                model,
                video,
                a.out,
                a.delta,
                a.regions,
                a.top_k,
                a.tile,
                stop,
                str(a.video),
            ),
            "attribute",
            a.quiet,
        )
    extra = f" and {len(table)} regions to {a.regions}" if a.regions else ""
    print(f"wrote {a.out}{extra}")


def cmd_features(a: argparse.Namespace) -> None:
    """Dense features (T, C, Y, X) to TIFF with a JSON sidecar, or to OME-Zarr."""
    from .export import output_format
    from .features import export_features

    zarr = (
        output_format(a.out, a.format) == "zarr"
    )  # a mismatch: refused before loading
    model, video = _load(a)
    with StopOnInterrupt() as stop:
        run_events(
            export_features(
                model, video, a.out, a.dtype, a.tile, stop, str(a.video), a.format
            ),
            "features",
            a.quiet,
        )
    print(f"wrote {a.out}" if zarr else f"wrote {a.out} and {a.out}.json")


def cmd_demo(a: argparse.Namespace) -> None:
    """Synthetic dividing cells -> short training -> attribution, features, a scored summary."""
    from .demo import run_demo, summary

    print(
        f"demo: training {a.epochs} epochs of the fast preset on 8 simulated fields of "
        f"view -> {Path(a.out) / 'model'}; then scoring 6 fields it never saw"
    )
    with StopOnInterrupt() as stop:
        table, written = run_demo(
            Path(a.out),
            lambda events, desc: run_events(events, desc, a.quiet),
            device=a.device,
            epochs=a.epochs,
            stop=stop,
        )
    print(summary(table))
    print(f"wrote {a.out}: " + ", ".join(p.name for p in written.values()))


def _frame_range(text: str) -> tuple[int, int]:
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


def cmd_evaluate(a: argparse.Namespace) -> None:
    """Attribution peaks and TAP accuracy on annotated divisions, beside controls."""
    from .ctc import read_ctc
    from .data.video import read_video
    from .errors import ModelFolderError
    from .evaluate import BASELINE, evaluate
    from .export import check_output
    from .model import WEIGHTS, TapModel

    if a.out:
        check_output(a.out)
    model = TapModel.from_folder(a.model, device=a.device, which=a.weights or "best")
    if a.weights and not (Path(a.model) / WEIGHTS[a.weights]).is_file():
        raise ModelFolderError(
            f"{a.model} has no {WEIGHTS[a.weights]}; choose the other --weights."
        )
    compare = (
        {BASELINE: TapModel.from_folder(a.baseline, a.device, a.weights or "best")}
        if a.baseline
        else {}
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


def cmd_segment(a: argparse.Namespace) -> None:
    """Train a division segmenter on painted labels; write labels and probability TIFFs."""
    from .downstream.files import segment_files
    from .downstream.segment import SegmentationConfig

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


def cmd_segment_eval(a: argparse.Namespace) -> None:
    """Object-level precision, recall and F1 of a label TIFF against ground truth."""
    from .downstream.files import evaluate_files

    s = evaluate_files(a.pred, a.gt, a.iou, a.min_size, a.mode, a.matching)
    print(
        f"IoU>={a.iou:g} ({a.mode}, {a.matching}): TP={s.tp} FP={s.fp} FN={s.fn} "
        f"precision={s.precision:.3f} recall={s.recall:.3f} F1={s.f1:.3f}"
    )


BOOL = argparse.BooleanOptionalAction
TILE_HELP = (
    "tile side in pixels (default: whole frames, or the largest tile whose "
    "activations fit a quarter of the free memory)"
)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``napari-tarrow`` argument parser."""
    p = argparse.ArgumentParser(
        prog="napari-tarrow", description=__doc__.splitlines()[0]
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser(
        "train",
        help="train a TAP model on raw time-lapses",
        description="Options left out take the value of --preset (shown as "
        "fast / paper).",
    )
    t.add_argument(
        "video", nargs="+", help="(T,Y,X) TIFF or folder of frames t000.tif ..."
    )
    t.add_argument("--out", required=True, help="model folder to write")
    t.add_argument(
        "--preset",
        choices=list(PRESETS),
        default="paper",
        help="starting point: 'fast' is the CPU recipe (minutes to an hour), "
        "'paper' the paper's configuration (GPU, hours); default paper",
    )

    def option(name: str, text: str, **kwargs: Any) -> None:
        section, field = TRAIN_OPTIONS[name.lstrip("-").replace("-", "_")]
        values = [getattr(getattr(c, section), field) for c in PRESETS.values()]
        shown = " / ".join(
            " ".join(map(str, v)) if isinstance(v, tuple) else str(v) for v in values
        ).replace("None", "auto")
        t.add_argument(name, help=f"{text} ({shown})", **kwargs)

    option("--delta", "time steps Δt (frames)", type=int, nargs="+")
    option("--size", "crop size, input pixels (multiple of 8)", type=int)
    option("--batch-size", "pairs per step", type=int)
    option("--epochs", "epochs; with --resume: extends the saved run", type=int)
    option("--samples-per-epoch", "pairs per epoch", type=int)
    option("--val-samples", "fixed validation pairs", type=int)
    option("--features", "channels of the dense features", type=int)
    option("--unet-channels", "U-Net channels of the first level", type=int)
    option(
        "--subsample",
        "downscale frames this many times for the network (outputs keep the "
        "video's size; 2 costs a quarter)",
        type=int,
    )
    option("--lr", "Adam learning rate", type=float)
    span = {"type": float, "nargs": 2, "metavar": ("START", "END")}
    option("--split-train", "training time interval (fractions)", **span)
    option("--split-val", "validation time interval (fractions)", **span)
    option("--augment", "the paper's augmentations", action=BOOL)
    option(
        "--foreground",
        "draw crops where at least this fraction of pixels is foreground (Otsu), "
        "for sparse cells; 0 draws them anywhere",
        type=float,
        metavar="FRACTION",
    )
    option(
        "--amp",
        "bf16 mixed precision; default: where the device computes it natively "
        "(CUDA, CPUs with AVX512-BF16 or AMX)",
        action=BOOL,
    )
    option(
        "--compile",
        "torch.compile the network (GPU; slower start, faster steps)",
        action=BOOL,
    )
    option("--seed", "seed of every random generator", type=int)
    t.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N|mps")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument(
        "--init",
        metavar="MODEL_DIR",
        help="fine-tune: start from this model's weights (best, else last) and "
        "architecture, e.g. to adapt a pretrained model to your video",
    )
    t.add_argument(
        "--time-limit",
        type=float,
        metavar="MINUTES",
        help="stop cleanly after this many minutes (keeps the best model)",
    )
    t.set_defaults(func=cmd_train)

    for name, func, helptext in (
        ("attribute", cmd_attribute, "Grad-CAM maps per frame pair"),
        ("features", cmd_features, "export dense TAP features"),
    ):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("model", help="model folder written by `train`")
        s.add_argument("video", help="(T,Y,X) TIFF or folder of frames")
        s.add_argument(
            "--out", required=True, help="output TIFF (features: also .zarr)"
        )
        s.add_argument("--device", default="auto")
        s.add_argument("--tile", type=int, help=TILE_HELP)
        s.set_defaults(func=func)
        if name == "attribute":
            s.add_argument("--delta", type=int, default=1)
            s.add_argument(
                "--regions", help="CSV of the top-k regions per pair (t,y,x,score)"
            )
            s.add_argument("--top-k", type=int, default=TOP_K)
        else:
            s.add_argument("--dtype", choices=["float16", "float32"], default="float16")
            s.add_argument(
                "--format",
                choices=["tiff", "zarr"],
                help="tiff (with a .json sidecar) or zarr (OME-Zarr, chunked and "
                "compressed, opened lazily by napari; needs pip install zarr); "
                "default: from the --out suffix (.zarr, else tiff)",
            )

    d = sub.add_parser(
        "demo", help="synthetic dividing cells: train, attribute, export"
    )
    d.add_argument(
        "--out", default="tarrow_demo", help="output folder (default ./tarrow_demo)"
    )
    d.add_argument("--epochs", type=int, default=20)
    d.add_argument("--device", default="auto")
    d.set_defaults(func=cmd_demo)

    e = sub.add_parser(
        "evaluate",
        help="attribution peaks on annotated divisions (CTC lineage), beside controls",
    )
    e.add_argument("model", help="model folder written by `train`")
    e.add_argument("video", help="(T,Y,X) TIFF or folder of frames")
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
        "--frames", type=_frame_range, help="frame numbers A-B (default: all)"
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
    e.add_argument("--tile", type=int, help=TILE_HELP)
    e.add_argument("--device", default="auto")
    e.add_argument(
        "--seed", type=int, default=0, help="random points and untrained network"
    )
    e.set_defaults(func=cmd_evaluate)

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
    g.set_defaults(func=cmd_segment)

    v = sub.add_parser("segment-eval", help="object F1 of labels against ground truth")
    v.add_argument("pred", help="predicted labels TIFF (e.g. from `segment`)")
    v.add_argument("gt", help="ground-truth labels or binary mask TIFF")
    v.add_argument("--iou", type=float, default=0.5)
    v.add_argument(
        "--min-size", type=int, default=64, help="drop predicted objects below (px)"
    )
    v.add_argument("--mode", choices=["2d", "3d"], default="2d", help="3d: 2D+t")
    v.add_argument("--matching", choices=["hungarian", "greedy"], default="hungarian")
    v.set_defaults(func=cmd_segment_eval)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-tarrow`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        with warnings.catch_warnings():  # one "WARNING: ..." line, not a source excerpt
            warnings.showwarning = lambda message, *_: log.warning("%s", message)
            func(args)
    except TarrowError as e:
        print(f"napari-tarrow {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # unwritable output, disk full, ...
        where = f": {e.filename}" if e.filename else ""
        print(
            f"napari-tarrow {args.command}: error: {e.strerror or e}{where}",
            file=sys.stderr,
        )
        return 2
    except Cancelled as e:
        print(f"napari-tarrow {args.command}: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"napari-tarrow {args.command}: aborted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
