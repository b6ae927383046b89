"""Settings of a division segmenter: modes, heads, training length, post-processing."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..config import check_field, parse_section
from .postprocess import MIN_SIZE

MODES = ("frozen", "finetune", "baseline")
HEADS = ("linear", "conv")


@dataclass(frozen=True)
class SegmentationConfig:
    """Settings of a division segmenter (validated; round-trips through JSON).

    Attributes
    ----------
    mode : {"frozen", "finetune", "baseline"}
    head : {"linear", "conv"}
        "linear": BatchNorm + 1x1 conv (a pixel-wise linear probe); "conv": a
        3x3 conv with ``hidden`` channels, ReLU and a 1x1 conv.
    hidden : int
        Hidden channels of the "conv" head.
    delta : int
        Δt of the frame pair (t, t+Δt).
    epochs, steps_per_epoch, batch_size, crop : int
        Training length and the crops (pixels) each step draws from labelled frames.
    lr, encoder_lr : float
        Adam learning rates of the head and, when "finetune", of the TAP network
        ("baseline" trains its network at ``lr``).
    positive_fraction : float
        Share of crops that contain a dividing-cell pixel (the rest: any labelled pixel).
    threshold, min_size : float, int
        Post-processing: probability threshold and smallest object kept (pixels).
    seed : int
        Seeds the head, the baseline network and the crops.
    """

    mode: str = "frozen"
    head: str = "conv"
    hidden: int = 32
    delta: int = 1
    epochs: int = 20
    steps_per_epoch: int = 25
    batch_size: int = 8
    crop: int = 64
    lr: float = 1e-3
    encoder_lr: float = 1e-4
    positive_fraction: float = 0.5
    threshold: float = 0.5
    min_size: int = MIN_SIZE
    seed: int = 0

    def __post_init__(self) -> None:
        check_field(self.mode in MODES, "mode", self.mode, f"one of {MODES}")
        check_field(self.head in HEADS, "head", self.head, f"one of {HEADS}")
        for name in ("hidden", "delta", "epochs", "steps_per_epoch", "batch_size"):
            value = getattr(self, name)
            check_field(value >= 1, name, value, "an integer >= 1")
        check_field(self.crop >= 16, "crop", self.crop, "an integer >= 16 (pixels)")
        check_field(self.lr > 0, "lr", self.lr, "> 0")
        check_field(self.encoder_lr > 0, "encoder_lr", self.encoder_lr, "> 0")
        check_field(
            0 <= self.positive_fraction <= 1,
            "positive_fraction",
            self.positive_fraction,
            "a fraction in [0, 1]",
        )
        check_field(0 < self.threshold < 1, "threshold", self.threshold, "in (0, 1)")
        check_field(self.min_size >= 0, "min_size", self.min_size, "an integer >= 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dictionary."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SegmentationConfig:
        """Build and validate; unknown keys are a :class:`ConfigError`."""
        return parse_section("segmentation", cls, d)
