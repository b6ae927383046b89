"""``napari-tarrow evaluate`` on simulated nuclei written in Cell Tracking Challenge format."""

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_tarrow.cli import main
from napari_tarrow.evaluation import BASELINE, METHODS
from napari_tarrow.io.ctc import label_centroids, read_ctc
from napari_tarrow.io.sample_data import dividing_cells


def _write_ctc(sim, folder: Path) -> Path:
    """The simulator's labels as TRA masks plus the lineage ``man_track.txt`` derived from them."""
    folder.mkdir()
    for t, mask in enumerate(sim.labels):
        tifffile.imwrite(folder / f"man_track{t:03d}.tif", mask)
    present = [set(np.unique(m)) - {0} for m in sim.labels]
    life = {
        label: (min(ts), max(ts))
        for label in set().union(*present)
        for ts in [[t for t, p in enumerate(present) if label in p]]
    }
    parent = dict.fromkeys(life, 0)
    for d in sim.divisions:
        mother = sim.labels[d.t - 1][round(d.mother_y), round(d.mother_x)]
        born = label_centroids(sim.labels[d.t])
        for label, (y, x) in born.items():
            if life[label][0] == d.t and np.hypot(y - d.y, x - d.x) < 12:
                parent[label] = int(mother)
    lines = [f"{k} {b} {e} {parent[k]}" for k, (b, e) in sorted(life.items())]
    (folder / "man_track.txt").write_text("\n".join(lines) + "\n")
    return folder / "man_track.txt"


@pytest.fixture(scope="module")
def ctc(tmp_path_factory):
    sim = dividing_cells(n_frames=4, shape=(64, 64), n_cells=10, seed=4)
    root = tmp_path_factory.mktemp("ctc")
    tifffile.imwrite(root / "video.tif", sim.video, photometric="minisblack")
    return sim, root / "video.tif", _write_ctc(sim, root / "TRA")


def test_lineage_written_from_the_simulator_reads_back(ctc) -> None:
    sim, _, tracks = ctc
    truth = read_ctc(tracks)
    assert [d.t for d in truth.divisions] == [d.t for d in sim.divisions]
    for got, true in zip(truth.divisions, sim.divisions, strict=True):
        assert len(got.daughters) == 2
        assert np.hypot(*np.subtract(got.center, (true.y, true.x))) < 1.5
        assert (
            np.hypot(*np.subtract(got.parent_yx, (true.mother_y, true.mother_x))) < 1.5
        )


def test_evaluate_writes_the_table(ctc, tiny_model_dir, tmp_path, capsys) -> None:
    _, video, tracks = ctc
    out = tmp_path / "table.csv"
    argv = ["-q", "evaluate", str(tiny_model_dir), str(video), "--tracks", str(tracks)]
    opts = ["--out", str(out), "--top-k", "2", "--radius", "10", "--frames", "0-2"]
    assert (
        main([*argv, *opts, "--device", "cpu", "--seed", "3", "--weights", "last"]) == 0
    )
    printed = capsys.readouterr().out
    assert "frame difference" in printed and f"wrote {out}" in printed
    with open(out) as f:
        rows = list(csv.DictReader(f))
    model, controls = METHODS[0], METHODS[1:]
    differences = [f"{model} - {c}" for c in controls]
    assert [r["method"] for r in rows] == [*METHODS, *differences]
    assert {r["k"] for r in rows} == {"2"} and {r["seed"] for r in rows} == {"3"}
    assert {r["pairs"] for r in rows} == {"2"}
    by = {r["method"]: r for r in rows}
    for name in METHODS:
        lo, p, hi = (
            float(by[name][c]) for c in ("precision_lo", "precision", "precision_hi")
        )
        assert 0 <= lo <= hi <= 1 and 0 <= p <= 1
    for c, d in zip(controls, differences, strict=True):
        diff = float(by[model]["precision"]) - float(by[c]["precision"])
        assert float(by[d]["precision"]) == pytest.approx(diff, abs=1e-3)
    assert (
        by[model]["acc_division"] != "nan" and by[controls[1]]["acc_division"] == "nan"
    )
    assert "95 % intervals" in printed

    # a baseline model adds its row and the paired difference to it
    baseline = ["--baseline", str(tiny_model_dir), "--device", "cpu"]
    assert main([*argv, *opts, *baseline]) == 0
    with open(out) as f:
        by = {r["method"]: r for r in csv.DictReader(f)}
    assert list(by)[:2] == [model, BASELINE]
    assert by[BASELINE]["precision"] == by[model]["precision"]
    assert float(by[f"{model} - {BASELINE}"]["precision"]) == 0
    assert by[model][BASELINE] == str(tiny_model_dir)


@pytest.mark.parametrize(
    ("tracks", "words"),
    [("missing.txt", "does not exist"), ("video.tif", "not a CTC lineage")],
)
def test_bad_tracks_exit_2_with_a_message(ctc, tiny_model_dir, capsys, tracks, words):
    _, video, _ = ctc
    argv = ["-q", "evaluate", str(tiny_model_dir), str(video)]
    assert main([*argv, "--tracks", str(video.parent / tracks)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("napari-tarrow evaluate: error:") and words in err[-1]


def test_frames_without_divisions_exit_2(ctc, tiny_model_dir, capsys) -> None:
    _, video, tracks = ctc
    argv = ["-q", "evaluate", str(tiny_model_dir), str(video), "--tracks", str(tracks)]
    assert main([*argv, "--frames", "3-3", "--device", "cpu"]) == 2
    assert "no pair of frames" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*argv, "--frames", "3-1"])
    assert "first frame is after the last" in capsys.readouterr().err


def test_missing_weights_file_is_named(ctc, tiny_model_dir, tmp_path, capsys) -> None:
    _, video, tracks = ctc
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "weights_last.safetensors").unlink()
    argv = ["-q", "evaluate", str(model), str(video), "--tracks", str(tracks)]
    assert main([*argv, "--weights", "last", "--device", "cpu"]) == 2
    assert "has no weights_last.safetensors" in capsys.readouterr().err
