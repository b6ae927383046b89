"""The model card: a model's name, training record and a warning when it is near-untrained."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from napari_tarrow.model import METRICS, TapModel
from napari_tarrow.model.card import FEW_SAMPLES, ModelCard, display_name, model_card


@pytest.mark.parametrize(
    ("folder", "name"),
    [
        ("/data/hela_fast", "hela_fast"),
        ("/data/hela/model", "hela/model"),  # "model" alone says nothing
        ("/data/hela/Output", "hela/Output"),
        (None, "untitled model"),
    ],
)
def test_display_name(folder: str | None, name: str) -> None:
    assert display_name(folder) == name


def test_the_card_counts_completed_epochs_and_their_samples(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    folder = tmp_path / "tiny"
    shutil.copytree(tiny_model_dir, folder)
    rows = [{"epoch": e, "loss": 0.5, "val_acc": 0.55 + 0.1 * e} for e in (1, 2, 3)]
    lines = [json.dumps(r) for r in rows] + ['{"epoch": 4, "lo']  # a kill cut line 4
    (folder / METRICS).write_text("\n".join(lines))
    model = TapModel.from_folder(folder)
    per_epoch = model.config.train.samples_per_epoch  # 16: a multiple of the batch
    card = model_card(model)
    assert card == ModelCard("tiny", 3, 3 * per_epoch, pytest.approx(0.85))
    assert card.summary() == (
        f"tiny: 3 epochs, {3 * per_epoch} samples, validation accuracy 0.85. "
        f"Warning: near-untrained: {3 * per_epoch} samples seen; train longer"
    )


@pytest.mark.parametrize(
    ("card", "warning"),
    [
        (ModelCard("m", 0), "stopped before its first epoch ended"),
        (ModelCard("m", 1, FEW_SAMPLES - 1, 0.9), f"{FEW_SAMPLES - 1} samples seen"),
        (
            ModelCard("m", 9, FEW_SAMPLES, 0.52),
            "validation accuracy 0.52 is near chance",
        ),
        (ModelCard("m", 9, FEW_SAMPLES, 0.8), None),
        (ModelCard("m", None), None),  # trained elsewhere: no record to judge
    ],
)
def test_near_untrained_models_are_flagged(
    card: ModelCard, warning: str | None
) -> None:
    if warning is None:
        assert card.warning is None and "Warning" not in card.summary()
    else:
        assert warning in card.warning and card.summary().endswith(card.warning)


def test_a_model_stopped_in_its_first_epoch_has_no_record(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    folder = tmp_path / "stopped"
    shutil.copytree(tiny_model_dir, folder)
    (folder / METRICS).unlink()  # Stop in epoch 1 saves weights but logs no epoch
    card = model_card(TapModel.from_folder(folder))
    assert card.epochs == 0 and "first epoch" in card.warning
    assert model_card(TapModel(TapModel.from_folder(folder).config)).epochs == 0
