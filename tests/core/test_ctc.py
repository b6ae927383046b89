"""Cell Tracking Challenge lineage and marker masks: divisions, positions, gaps, foreground."""

import csv

import numpy as np
import pytest
import tifffile

from napari_tarrow.io.ctc import TracksError, foreground, read_ctc, read_lineage

LINEAGE = """\
1 0 3 0
2 4 6 1
3 4 6 1
4 0 6 0
5 0 2 0
6 3 6 5
"""
# label -> {frame: (y, x)} of a 3x3 marker; masks exist for frames 0, 1, 2, 5, 6 only
MARKERS = {
    1: {0: (10, 10), 1: (10, 11), 2: (10, 12)},
    2: {5: (6, 14), 6: (5, 15)},
    3: {6: (15, 15)},  # absent from the mask of frame 5
    4: dict.fromkeys((0, 1, 2, 5, 6), (30, 30)),
    5: {0: (30, 5), 1: (30, 5), 2: (30, 5)},
    6: {5: (30, 8), 6: (30, 8)},
}


def _write(folder, lineage=LINEAGE, frames=(0, 1, 2, 5, 6)):
    folder.mkdir(exist_ok=True)
    (folder / "man_track.txt").write_text(lineage)
    for t in frames:
        mask = np.zeros((40, 40), np.uint16)
        for label, where in MARKERS.items():
            if t in where:
                y, x = where[t]
                mask[y - 1 : y + 2, x - 1 : x + 2] = label
        tifffile.imwrite(folder / f"man_track{t:03d}.tif", mask)
    return folder / "man_track.txt"


def test_division_found_with_positions_from_nearest_masks(tmp_path) -> None:
    truth = read_ctc(_write(tmp_path / "TRA"))
    # parent 5 has one child: not a division
    assert [(d.parent, d.daughters) for d in truth.divisions] == [(1, (2, 3))]
    (d,) = truth.divisions
    assert d.t == 4  # daughters' first frame
    # frame 3 has no mask: the parent's last position comes from frame 2
    assert d.parent_yx == pytest.approx((10, 12))
    # frame 4 has no mask: daughter 2 from frame 5; daughter 3 is missing there, so frame 6
    assert np.allclose(d.daughters_yx, [(6, 14), (15, 15)])
    assert d.center == pytest.approx((10.5, 14.5))
    assert d.points.shape == (3, 2)
    assert sorted(truth.markers) == [0, 1, 2, 5, 6]
    assert [t in truth.markers for t in (2, 3)] == [True, False]
    assert truth.markers.get(3) is None
    assert truth.markers[5][6, 14] == 2


def test_foreground_from_full_masks_or_from_intensity() -> None:
    frame = np.zeros((40, 40), np.float32)
    frame[5:15, 5:15] = 1.0
    full = np.zeros((40, 40), np.uint16)
    full[5:15, 5:15] = 7
    assert np.array_equal(foreground(frame, full), full > 0)
    dot = np.zeros((40, 40), np.uint16)
    dot[9:11, 9:11] = 7  # a sparse TRA-style marker: the intensity decides
    fg = foreground(frame, dot)
    assert fg[10, 10] and fg[6, 6] and not fg[30, 30]
    assert fg.sum() > 4 * dot.astype(bool).sum()
    assert np.array_equal(foreground(frame, None), foreground(frame, dot))


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "does not exist"),
        ("1 0 3\n2 4 6\n", "4 integers"),
        ("1 0 x 0\n", "not a CTC lineage"),
        ("1 5 3 0\n", "ends before it begins"),
    ],
)
def test_bad_lineage_is_named(tmp_path, content, words) -> None:
    path = tmp_path / "man_track.txt"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TracksError, match=words):
        read_lineage(path)


def test_lineage_without_masks_is_refused(tmp_path) -> None:
    path = _write(tmp_path / "TRA", frames=())
    with pytest.raises(TracksError, match="marker masks"):
        read_ctc(path)


@pytest.mark.realdata
def test_hela_divisions_match_the_data_table(shared_data) -> None:
    root = shared_data / "hela-ctc02"
    truth = read_ctc(root / "02_GT" / "TRA" / "man_track.txt")
    assert len(truth.divisions) == 209
    assert (
        sum(d.t >= 1 and d.t <= 19 for d in truth.divisions) == 55
    )  # complete window 0-19
    with open(root / "divisions.csv") as f:
        table = {int(r["parent"]): r for r in csv.DictReader(f)}
    assert sorted(table) == sorted(d.parent for d in truth.divisions)
    for d in truth.divisions:
        row = table[d.parent]
        assert d.t == int(row["t_division"])
        assert d.daughters == tuple(sorted(int(c) for c in row["daughters"].split(";")))
        assert d.center == pytest.approx((float(row["y"]), float(row["x"])), abs=0.06)
        if row["parent_y"]:
            expected = (float(row["parent_y"]), float(row["parent_x"]))
            assert d.parent_yx == pytest.approx(expected, abs=0.06)
        else:  # the parent lives only in frames without a mask
            assert d.parent_yx is None
