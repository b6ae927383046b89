"""Around a training: its live attribution preview (training untouched) and its time estimate."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from napari_tarrow.config import DataConfig, ModelConfig, TapConfig, TrainConfig
from napari_tarrow.events import Checkpoint, FrameDone, Metrics
from napari_tarrow.inference.attribution import attribute, pair_at, with_previews
from napari_tarrow.io.video import Video
from napari_tarrow.model import TapModel
from napari_tarrow.training.loop import train

CONFIG = TapConfig(
    data=DataConfig(size=32, split_train=(0, 0.7), split_val=(0.7, 1.0)),
    model=ModelConfig(features=8, unet_channels=8, head_features=8),
    train=TrainConfig(
        epochs=2, samples_per_epoch=16, batch_size=8, val_samples=16, amp=False
    ),
)


def _metrics(events: list) -> list[dict]:
    timing = ("samples_per_s",)
    return [
        {k: v for k, v in e.values.items() if k not in timing}
        for e in events
        if isinstance(e, Metrics)
    ]


def test_previews_follow_each_epoch_and_leave_training_unchanged(
    tmp_path: Path, small_video: np.ndarray
) -> None:
    video = Video(small_video)
    plain = list(train(CONFIG, [video], tmp_path / "plain", device="cpu"))
    asked = iter([4, 99])  # the slider moves; past the end is the last frame
    events = list(
        with_previews(
            train(CONFIG, [video], tmp_path / "previewed", device="cpu"),
            video,
            lambda: next(asked),
            budget=float("inf"),  # every epoch (tiny epochs cost less than a map)
        )
    )
    assert _metrics(events) == _metrics(plain)  # bit for bit, timing aside
    previews = [e for e in events if isinstance(e, FrameDone)]
    assert [p.frame for p in previews] == [4, 10]  # the last frame pairs back (10, 11)
    for p in previews:
        cam, seconds = p.data
        assert cam.shape == small_video.shape[1:] and cam.dtype == np.float32
        assert cam.max() > 0 and seconds > 0
    last = TapModel.from_folder(tmp_path / "previewed", which="last")
    pairs = pair_at(video, 11, 1)
    (want,) = [
        e.data
        for e in attribute(last, video, pairs=pairs, amp=False)
        if isinstance(e, FrameDone)
    ]
    np.testing.assert_array_equal(previews[-1].data[0], want)  # the weights just saved


def test_previews_stay_within_their_share_of_the_training_time(
    tiny_model_dir: Path, small_video: np.ndarray
) -> None:
    def epochs(n: int):  # epochs that take no time: one preview would exceed any share
        for _ in range(n):
            yield Checkpoint(str(tiny_model_dir), "last")

    video = Video(small_video)

    def previews(budget: float) -> int:
        events = with_previews(epochs(4), video, lambda: 0, budget=budget)
        return sum(isinstance(e, FrameDone) for e in events)

    assert previews(budget=0.1) == 1  # the first epoch always shows one
    assert previews(budget=float("inf")) == 4


def test_the_time_estimate_scales_with_the_run(small_video: np.ndarray) -> None:
    from napari_tarrow.events import drain
    from napari_tarrow.training.loop import estimate_time

    video = Video(small_video)
    short = drain(estimate_time(CONFIG, [video], "cpu"))
    longer = dataclasses.replace(CONFIG.train, epochs=20 * CONFIG.train.epochs)
    long = drain(
        estimate_time(dataclasses.replace(CONFIG, train=longer), [video], "cpu")
    )
    assert 0 < short < 60 and 5 < long / short < 80  # 20x the steps, timing noise aside
