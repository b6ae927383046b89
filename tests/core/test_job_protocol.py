"""One stop rule for every long job: a stop raises Cancelled and yields no Done; a stop
that comes after the last unit keeps the finished result."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_tarrow.errors import Cancelled
from napari_tarrow.events import Done, Event, FrameDone, drain
from napari_tarrow.inference.attribution import attribute, export_attribution
from napari_tarrow.inference.features import export_features, video_features
from napari_tarrow.inference.projection import principal_components_rgb
from napari_tarrow.io.video import Video
from napari_tarrow.model import TapModel

Job = Callable[[TapModel, Video, Path, Callable[[], bool]], Iterator[Event]]
JOBS: dict[str, Job] = {
    "features": lambda m, v, d, stop: video_features(m, v, stop=stop),
    "attribute": lambda m, v, d, stop: attribute(m, v, stop=stop),
    "export_features": lambda m, v, d, stop: export_features(
        m, v, d / "z.tif", stop=stop
    ),
    "export_attribution": lambda m, v, d, stop: export_attribution(
        m, v, d / "a.tif", stop=stop
    ),
}


def after(n: int) -> Callable[[], bool]:
    """A stop request that answers True from its (n+1)-th question on."""
    calls = itertools.count()
    return lambda: next(calls) >= n


@pytest.fixture(scope="module")
def job_input(tiny_model_dir: Path) -> tuple[TapModel, Video]:
    rng = np.random.default_rng(1)
    return TapModel.from_folder(tiny_model_dir), Video(rng.random((4, 40, 36), "f4"))


@pytest.mark.parametrize("name", JOBS)
def test_a_stop_raises_cancelled_after_the_units_done_and_yields_no_done(
    name: str, job_input, tmp_path: Path
) -> None:
    model, video = job_input
    seen: list[Event] = []
    with pytest.raises(Cancelled, match="stopped"):
        for event in JOBS[name](model, video, tmp_path, after(2)):
            seen.append(event)
    assert not any(isinstance(e, Done) for e in seen)
    assert len([e for e in seen if isinstance(e, FrameDone)]) in (0, 2)  # exports: none
    assert not any(tmp_path.iterdir()), "a stopped export leaves no file"


@pytest.mark.parametrize("name", ["export_features", "export_attribution"])
def test_a_stop_after_the_last_unit_keeps_the_finished_file(
    name: str, job_input, tmp_path: Path
) -> None:
    model, video = job_input
    events = list(JOBS[name](model, video, tmp_path, after(len(video))))
    assert isinstance(events[-1], Done)
    (written,) = tmp_path.glob("*.tif")
    assert len(tifffile.imread(written)) in (len(video), len(video) - 1)


def test_frame_done_names_the_frame_and_the_pair(job_input, tmp_path: Path) -> None:
    model, video = job_input
    pairs = np.array([[0, 2], [1, 3]])
    done = [
        e for e in attribute(model, video, 2, pairs=pairs) if isinstance(e, FrameDone)
    ]
    assert [(e.frame, e.pair) for e in done] == [(0, 0), (1, 1)]
    done = [e for e in video_features(model, video) if isinstance(e, FrameDone)]
    assert [(e.frame, e.pair) for e in done] == [
        (0, None),
        (1, None),
        (2, None),
        (3, None),
    ]


def test_the_principal_components_end_in_done_like_every_job() -> None:
    features = np.random.default_rng(0).random((3, 5, 16, 12), dtype=np.float32)
    rgb = drain(principal_components_rgb(features))
    assert rgb.shape == (3, 16, 12, 3) and rgb.dtype == np.uint8
    with pytest.raises(Cancelled, match="stopped"):
        drain(principal_components_rgb(features, stop=after(1)))
