"""Shared fixtures: small synthetic videos, a tiny trained model, the shared real data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# torch before Qt (napari-convpaint's lesson); offscreen Qt has no OpenGL here.
import torch

os.environ.pop("QT_QPA_PLATFORM", None)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` next to the repository; tests skip when it is absent."""
    if not (SHARED / "hela-ctc02").is_dir():
        pytest.skip(
            f"real-data test: {SHARED} (Cell Tracking Challenge videos) is absent"
        )
    return SHARED


@pytest.fixture(scope="session")
def small_video() -> np.ndarray:
    """(12, 80, 72) float32 random-ish video: shapes and plumbing, not learning."""
    rng = np.random.default_rng(0)
    return rng.random((12, 80, 72), dtype=np.float32)


@pytest.fixture(scope="session")
def tiny_model_dir(
    tmp_path_factory: pytest.TempPathFactory, small_video: np.ndarray
) -> Path:
    """A model folder trained for a few steps (weights are not meaningful).

    fp32 on every CPU: with bf16 (chosen where the CPU has it) the weights differ, and
    the downstream fine-tuning test, which starts from them, reached F1 0.36 (it needs > 0.5).
    """
    from napari_tarrow.config import DataConfig, ModelConfig, TapConfig, TrainConfig
    from napari_tarrow.events import drain
    from napari_tarrow.io.video import Video
    from napari_tarrow.training.loop import train

    cfg = TapConfig(
        data=DataConfig(size=32, split_train=(0, 0.7), split_val=(0.7, 1.0)),
        model=ModelConfig(features=8, unet_channels=8, head_features=8),
        train=TrainConfig(
            epochs=1, samples_per_epoch=16, batch_size=8, val_samples=16, amp=False
        ),
    )
    out = tmp_path_factory.mktemp("model") / "tiny"
    drain(train(cfg, [Video(small_video)], out, device="cpu"))
    return out


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread: on a shared 2-core CPU, two threads make training 20x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
