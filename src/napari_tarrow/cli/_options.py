"""What several subcommands share: the model-and-video arguments and loading them."""

from __future__ import annotations

import argparse
from typing import Any

BOOL = argparse.BooleanOptionalAction
TILE_HELP = (
    "tile side in pixels (default: whole frames, or the largest tile whose "
    "activations fit a quarter of the free memory)"
)


def add_model_and_video(s: argparse.ArgumentParser) -> None:
    """Add the positional model folder and video, ``--device``, ``--tile`` and ``--amp``."""
    s.add_argument("model", help="model folder written by `train`")
    s.add_argument("video", help="(T,Y,X) TIFF or folder of frames")
    s.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N|mps")
    s.add_argument("--tile", type=int, help=TILE_HELP)
    s.add_argument(
        "--amp",
        action=BOOL,
        help="z in bf16 autocast; default: where the device computes it natively "
        "(Grad-CAM first checks its map against fp32)",
    )


def load_model(a: argparse.Namespace, folder: str, which: str = "best") -> Any:
    """Load the model in ``folder`` on ``a.device``, with ``a.amp``'s precision of z."""
    from ..model import TapModel

    model = TapModel.from_folder(folder, device=a.device, which=which)
    model.amp = a.amp
    return model


def load(a: argparse.Namespace) -> tuple[Any, Any]:
    """Load ``a.model`` on ``a.device``, and ``a.video`` normalised as in training."""
    from ..io.video import read_video

    model = load_model(a, a.model)
    return model, read_video(a.video, model.config.data.percentiles)
