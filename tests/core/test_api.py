"""The notebook API: ``napari_tarrow.train / attribute / features`` return results."""

from pathlib import Path

import numpy as np
import pytest
import tifffile

import napari_tarrow as tap
from napari_tarrow.errors import ConfigError
from napari_tarrow.io.video import as_video


def test_train_attribute_features_from_arrays_and_paths(
    tmp_path: Path, small_video: np.ndarray
) -> None:
    model = tap.train(
        small_video,
        tmp_path / "model",
        size=32,
        features=8,
        unet_channels=8,
        epochs=1,
        samples_per_epoch=16,
        batch_size=8,
        val_samples=8,
        amp=False,
        device="cpu",
    )
    assert isinstance(model, tap.TapModel)
    assert (tmp_path / "model" / "weights_best.safetensors").is_file()
    assert model.config.train.epochs == 1 and model.config.model.features == 8
    path = tmp_path / "video.tif"
    tifffile.imwrite(path, small_video)
    maps, pairs = tap.attribute(tmp_path / "model", path, delta=2)
    t, y, x = small_video.shape
    assert maps.shape == (t - 2, y, x) and maps.dtype == np.float32
    np.testing.assert_array_equal(
        pairs, np.stack([np.arange(t - 2), np.arange(2, t)], 1)
    )
    z = tap.features(model, small_video[:3])
    assert z.shape == (3, 8, y, x) and np.isfinite(z).all()


def test_an_unknown_setting_names_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'epoch' is no training setting.*epochs"):
        tap.train(np.zeros((4, 32, 32), np.float32), tmp_path / "m", epoch=3)


def test_a_video_is_normalised_as_the_model_was_trained(
    small_video: np.ndarray,
) -> None:
    other = tap.Video(small_video, percentiles=(0.0, 100.0))
    again = as_video(other, (1.0, 99.8))
    assert again.percentiles == (1.0, 99.8) and again.shape == other.shape
    np.testing.assert_array_equal(
        again.frame(0), tap.Video(small_video).frame(0)
    )  # the same frames, normalised anew
    assert as_video(again, (1.0, 99.8)) is again


def test_an_unknown_preset_names_the_presets(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no preset 'fst'; use one of fast, paper"):
        tap.train(np.zeros((4, 32, 32), np.float32), tmp_path / "m", "fst")
