"""``napari-tarrow train``: a TAP model folder from raw time-lapses, options over a preset."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from ..config import PRESETS, section_of
from ._options import BOOL
from .progress import StopOnInterrupt, run_events

log = logging.getLogger("napari_tarrow")

#: ``train`` options that set the config field of the same name over the preset.
TRAIN_OPTIONS = (
    "delta",
    "size",
    "split_train",
    "split_val",
    "augment",
    "foreground",
    "features",
    "unet_channels",
    "subsample",
    "epochs",
    "samples_per_epoch",
    "batch_size",
    "val_samples",
    "lr",
    "seed",
    "amp",
    "compile",
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand; options left out take the preset's value."""
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
        field = name.lstrip("-").replace("-", "_")
        section = section_of(field)
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
    t.set_defaults(func=run)


def given_options(a: argparse.Namespace) -> dict[str, Any]:
    """Return the config fields set on the command line, by name (lists as tuples)."""
    return {
        name: tuple(v) if isinstance(v, list) else v
        for name in TRAIN_OPTIONS
        if (v := getattr(a, name)) is not None
    }


def config_from_args(a: argparse.Namespace) -> Any:
    """Return the ``--preset`` with each option given on the command line in its place."""
    return PRESETS[a.preset].replace(**given_options(a))


def run(a: argparse.Namespace) -> None:
    """Train a model folder from one or more videos."""
    from ..config import TapConfig
    from ..io.video import read_video
    from ..training.distributed import is_main_process
    from ..training.loop import train

    main_rank = is_main_process()  # under torchrun, other ranks stay quiet
    if not main_rank:
        log.setLevel(logging.ERROR)
    if a.resume and (Path(a.out) / "config.json").exists():
        cfg = TapConfig.load(Path(a.out) / "config.json")
        _warn_ignored(a, cfg)
        cfg = cfg.replace(epochs=a.epochs or cfg.train.epochs)
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


def _warn_ignored(a: argparse.Namespace, saved: Any) -> None:
    """Say which options differ from the run being resumed: it keeps its own settings."""
    differ = [
        "--" + name.replace("_", "-")
        for name, value in given_options(a).items()
        if name != "epochs" and value != getattr(getattr(saved, section_of(name)), name)
    ]
    if differ:
        log.warning(
            "--resume continues the saved run with its own settings; ignored: %s "
            "(only --epochs extends it; start a new run to change them).",
            ", ".join(differ),
        )


def _starting_from(cfg: Any, a: argparse.Namespace) -> Any:
    """``cfg`` to fine-tune the model of ``--init`` (its architecture and normalisation)."""
    from ..errors import ConfigError
    from ..model import TapModel
    from ..training.loop import fine_tuning_config

    if a.resume:
        raise ConfigError(
            "--init starts a new run from another model; --resume continues the run "
            "in --out. Use one of them."
        )
    start = TapModel.from_folder(a.init)
    for option in TRAIN_OPTIONS:
        given, theirs = getattr(a, option), getattr(start.config.model, option, None)
        if section_of(option) == "model" and given is not None and given != theirs:
            flag = "--" + option.replace("_", "-")
            raise ConfigError(
                f"{flag} {given} differs from the starting model's ({theirs}); "
                f"leave {flag} out with --init."
            )
    return fine_tuning_config(cfg, start)
