"""What a model is, in one line: its name, how long it trained, how well it validated.

The widgets show this wherever a model is picked, so that a model stopped after a
few seconds does not pass for a trained one. It reads the model folder's
``metrics.jsonl`` (one line per completed epoch) and nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..config import PRESETS
from . import METRICS, TapModel

#: Folder names that say nothing about the model: shown with their parent folder.
GENERIC_NAMES = frozenset({"model", "models", "tap", "tarrow", "out", "output", "run"})
#: Fewer samples than a quarter of the fast preset's run: the maps show little yet.
FEW_SAMPLES = (
    PRESETS["fast"].train.epochs * PRESETS["fast"].train.samples_per_epoch // 4
)
#: Validation accuracy this close to chance (0.5) says the order is not learned yet.
NEAR_CHANCE = 0.6


def display_name(folder: str | Path | None) -> str:
    """Return the folder's name, or ``parent/model`` for a generic name such as ``model``."""
    if folder is None:
        return "untitled model"
    folder = Path(folder).absolute()
    if folder.name.lower() in GENERIC_NAMES and folder.parent.name:
        return f"{folder.parent.name}/{folder.name}"
    return folder.name


@dataclass(frozen=True)
class ModelCard:
    """A model's training record: completed epochs, samples seen, last validation accuracy."""

    name: str
    epochs: int | None  # None: no training record (e.g. a reference model)
    samples: int = 0
    val_acc: float | None = None

    @property
    def warning(self) -> str | None:
        """Why the model's maps may mislead, or None."""
        if self.epochs is None:
            return None
        if self.epochs == 0:
            return "near-untrained: stopped before its first epoch ended; train longer"
        if self.samples < FEW_SAMPLES:
            return f"near-untrained: {self.samples} samples seen; train longer"
        if self.val_acc is not None and self.val_acc < NEAR_CHANCE:
            return (
                f"validation accuracy {self.val_acc:.2f} is near chance (0.50); "
                "train longer or check the video"
            )
        return None

    def summary(self) -> str:
        """One line, e.g. ``hela: 12 epochs, 3,840 samples, validation accuracy 0.81``."""
        if self.epochs is None:
            text = f"{self.name}: no training record (trained elsewhere)"
        else:
            parts = [f"{self.epochs} epoch{'s' * (self.epochs != 1)}"]
            parts.append(f"{self.samples:,} samples")
            if self.val_acc is not None:
                parts.append(f"validation accuracy {self.val_acc:.2f}")
            text = f"{self.name}: {', '.join(parts)}"
        return text if self.warning is None else f"{text}. Warning: {self.warning}"


def model_card(model: TapModel, name: str | None = None) -> ModelCard:
    """Return the card of ``model`` from its folder's metrics (epochs 0 if never saved)."""
    name = name or display_name(model.folder)
    if model.folder is None:
        return ModelCard(name, 0)
    path = Path(model.folder) / METRICS
    if not path.exists():
        native = (Path(model.folder) / "config.json").exists()
        return ModelCard(name, 0 if native else None)
    epochs = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
            epochs.append(row if isinstance(row, dict) and "epoch" in row else None)
        except ValueError:  # a line cut short by a kill: not a completed epoch
            continue
    epochs = [row for row in epochs if row is not None]
    train = model.config.train
    per_epoch = train.steps_per_epoch * train.batch_size
    samples = sum(int(row.get("samples", per_epoch)) for row in epochs)
    val = epochs[-1].get("val_acc") if epochs else None
    return ModelCard(
        name, len(epochs), samples, float(val) if isinstance(val, int | float) else None
    )
