"""Tests for the synthetic dividing-cells video (napari_tarrow.io.sample_data)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_tarrow.io.sample_data import (
    TRUTH_LAYER,
    Division,
    SyntheticVideo,
    dividing_cells,
    sample_data,
)

RADIUS = 6.5  # upper bound of the interphase nucleus radius used by the simulation


@pytest.fixture(scope="module")
def default() -> SyntheticVideo:
    return dividing_cells()


def _label_means(video: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean intensity of every (frame, label) mask, over the whole video."""
    means = []
    for frame, lab in zip(video, labels, strict=True):
        ids = lab.ravel()
        sums = np.bincount(ids, weights=frame.ravel())
        counts = np.bincount(ids)
        present = np.nonzero(counts)[0]
        present = present[present > 0]
        means.append(sums[present] / counts[present])
    return np.concatenate(means)


def test_shapes_and_dtypes(default: SyntheticVideo) -> None:
    assert default.video.shape == (64, 256, 256)
    assert default.video.dtype == np.float32
    assert default.labels.shape == default.video.shape
    assert default.labels.dtype == np.uint16
    assert isinstance(default.divisions, tuple)
    assert all(isinstance(d, Division) for d in default.divisions)


def test_custom_shape() -> None:
    v = dividing_cells(n_frames=5, shape=(40, 70), n_cells=3, seed=2)
    assert v.video.shape == v.labels.shape == (5, 40, 70)


def test_deterministic_and_seed_dependent() -> None:
    a = dividing_cells(n_frames=12, shape=(96, 96), n_cells=6, seed=3)
    b = dividing_cells(n_frames=12, shape=(96, 96), n_cells=6, seed=3)
    c = dividing_cells(n_frames=12, shape=(96, 96), n_cells=6, seed=4)
    np.testing.assert_array_equal(a.video, b.video)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.divisions == b.divisions
    assert not np.array_equal(a.video, c.video)
    assert not np.array_equal(a.labels, c.labels)


def test_many_divisions_inside_bounds(default: SyntheticVideo) -> None:
    n_frames, ny, nx = default.video.shape
    assert len(default.divisions) >= 30
    for d in default.divisions:
        assert d.t >= 1 and d.t < n_frames
        assert 0 <= d.y <= ny - 1 and 0 <= d.x <= nx - 1
        assert 0 <= d.mother_y <= ny - 1 and 0 <= d.mother_x <= nx - 1
    assert [d.t for d in default.divisions] == sorted(d.t for d in default.divisions)


def test_cell_count_stays_bounded(default: SyntheticVideo) -> None:
    counts = [len(np.unique(lab)) - 1 for lab in default.labels]
    assert counts[0] == 24
    assert max(counts) <= 256 * 256 // 600  # divisions are suppressed when crowded
    assert counts[-1] > counts[0] + 20  # but the population grows


def test_labels_match_divisions(default: SyntheticVideo) -> None:
    labels = default.labels
    for d in default.divisions:
        before, after = labels[d.t - 1], labels[d.t]
        mother = before[round(d.mother_y), round(d.mother_x)]
        assert mother != 0, d
        assert not np.any(after == mother), f"mother track continues after division {d}"
        # the daughters: two new tracks within ~2 radii, centred on the division point
        born = np.setdiff1d(np.unique(after), np.unique(before))
        centroids = [np.argwhere(after == lab).mean(axis=0) for lab in born]
        near = [c for c in centroids if np.hypot(c[0] - d.y, c[1] - d.x) < 2 * RADIUS]
        assert len(near) >= 2, (d, near)
        pairs = [(a, b) for i, a in enumerate(near) for b in near[i + 1 :]]
        assert any(
            np.hypot(*((a + b) / 2 - (d.y, d.x))) < 2.0 and np.hypot(*(a - b)) > 4.0
            for a, b in pairs
        ), (d, near)
        # the mother sits between its daughters
        assert np.hypot(d.y - d.mother_y, d.x - d.mother_x) < RADIUS


def test_nuclei_brighter_than_background(default: SyntheticVideo) -> None:
    fg = default.video[default.labels > 0]
    bg = default.video[default.labels == 0]
    assert 0.05 < np.median(bg) < 0.2
    assert 0.7 < np.median(fg) < 1.5
    assert np.median(fg) > 5 * np.median(bg)


def test_condensed_mother_is_brighter(default: SyntheticVideo) -> None:
    typical = np.median(_label_means(default.video, default.labels))
    for d in default.divisions:
        frame, lab = default.video[d.t - 1], default.labels[d.t - 1]
        mother = lab[round(d.mother_y), round(d.mother_x)]
        assert frame[lab == mother].mean() > 1.5 * typical, d


def test_division_mask(default: SyntheticVideo) -> None:
    both = default.division_mask()
    after = default.division_mask(radius=4.0, frames="after")
    assert both.shape == after.shape == default.video.shape
    assert both.dtype == after.dtype == bool
    for d in default.divisions:
        assert both[d.t, round(d.y), round(d.x)]
        assert both[d.t - 1, round(d.mother_y), round(d.mother_x)]
        assert after[d.t, round(d.y), round(d.x)]
    assert after.sum() < both.sum()
    frames_with_div = {d.t for d in default.divisions}
    assert all(
        not after[t].any() for t in range(len(after)) if t not in frames_with_div
    )
    assert 0 < both.mean() < 0.05
    with pytest.raises(ValueError, match="frames"):
        default.division_mask(frames="before")
    with pytest.raises(ValueError, match="radius"):
        default.division_mask(radius=0)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_frames": 1}, "n_frames"),
        ({"shape": (16, 64)}, "shape"),
        ({"shape": (64, 31)}, "shape"),
        ({"shape": (64,)}, "shape"),
        ({"n_cells": 0}, "n_cells"),
        ({"noise": -0.1}, "noise"),
    ],
)
def test_bad_arguments(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name) as info:
        dividing_cells(**kwargs)
    assert str(next(iter(kwargs.values()))) in str(info.value)


def test_two_frames_without_noise() -> None:
    v = dividing_cells(n_frames=2, shape=(64, 64), n_cells=2, noise=0.0, seed=1)
    assert v.video.min() >= 0.0
    assert all(d.t == 1 for d in v.divisions)


def test_sample_data_provider() -> None:
    (data, meta, kind), (points, pmeta, pkind) = sample_data()
    assert kind == "image"
    assert meta["name"] == "dividing cells (synthetic)"
    assert data.shape == (12, 256, 256) and data.dtype == np.float32
    assert pkind == "points" and pmeta["name"] == TRUTH_LAYER
    assert len(points) >= 40 and points.shape[1] == 3
    # on the frame of the map that shows the division: pair (t - 1, t)
    daughters = np.array(pmeta["features"]["daughters_frame"])
    assert np.array_equal(points[:, 0], daughters - 1)
    assert points[:, 0].min() >= 0 and daughters.max() < 12
