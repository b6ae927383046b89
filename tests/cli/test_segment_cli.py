"""`napari-tarrow segment` and `segment-eval` round trips on a small synthetic video."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch

from napari_tarrow.cli import main
from napari_tarrow.downstream.labels import labels_from_mask
from napari_tarrow.io.sample_data import dividing_cells

FAST = ["--epochs", "1", "--min-size", "8", "-q"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core CPU, two threads make training 20x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("seg")
    sim = dividing_cells(n_frames=8, shape=(64, 64), n_cells=10, seed=1)
    mask = sim.division_mask(radius=5)
    tifffile.imwrite(d / "video.tif", sim.video)
    tifffile.imwrite(d / "labels.tif", labels_from_mask(mask, [1, 3]))
    tifffile.imwrite(d / "mask.tif", mask.astype(np.uint8))
    return d, sim, mask


def _args(model, d, *extra) -> list[str]:
    quiet, rest = FAST[-1], FAST[:-1]
    return [quiet, "segment", str(model), str(d / "video.tif"), *rest, *extra]


def test_segment_round_trip(tiny_model_dir, files, capsys) -> None:
    d, sim, _ = files
    out = d / "div.tif"
    args = _args(
        tiny_model_dir, d, "--labels", str(d / "labels.tif"), "--out", str(out)
    )
    assert main([*args, "--save-model", str(d / "segmenter")]) == 0
    labels, proba = tifffile.imread(out), tifffile.imread(d / "div_proba.tif")
    assert labels.shape == proba.shape == sim.video.shape
    assert labels.dtype == np.int32 and proba.dtype == np.float32
    assert not labels[-1].any() and not proba[-1].any()  # no pair for the last frame
    side = json.loads((d / "div.tif.json").read_text())
    assert (
        side["trained_on_frames"] == [1, 3] and side["segmentation"]["mode"] == "frozen"
    )
    assert (d / "segmenter" / "segmenter.safetensors").is_file()
    assert "trained on frames [1, 3]" in capsys.readouterr().out

    # evaluation of the written labels against themselves and against the mask
    assert main(["segment-eval", str(out), str(out), "--min-size", "0"]) == 0
    assert "F1=1.000" in capsys.readouterr().out
    assert main(["segment-eval", str(out), str(d / "mask.tif"), "--iou", "0.3"]) == 0
    assert "F1=" in capsys.readouterr().out


def test_segment_from_a_binary_mask(tiny_model_dir, files) -> None:
    d, sim, _ = files
    out = d / "from_mask.tif"
    args = _args(tiny_model_dir, d, "--labels", str(d / "mask.tif"), "--out", str(out))
    assert main([*args, "--mask", "--mask-frames", "2", "4", "--head", "linear"]) == 0
    assert tifffile.imread(out).shape == sim.video.shape


@pytest.mark.parametrize(
    ("labels", "extra", "message"),
    [
        (np.zeros((8, 64, 60), np.uint8), [], "the video has"),
        (np.zeros((8, 64, 64), np.uint8), [], "no pixel is labelled as dividing"),
        (
            np.zeros((8, 64, 64), np.uint8),
            ["--mask"],
            "no pixel is labelled as dividing",
        ),
    ],
)
def test_segment_bad_labels_exit_2(
    tiny_model_dir, files, capsys, labels, extra, message
) -> None:
    d, _, _ = files
    tifffile.imwrite(d / "bad.tif", labels)
    args = _args(
        tiny_model_dir, d, "--labels", str(d / "bad.tif"), "--out", str(d / "x.tif")
    )
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("napari-tarrow segment: error:") and message in err
    assert len(err.strip().splitlines()) == 1
    assert not (d / "x.tif").exists()


def test_segment_eval_shape_mismatch_exit_2(files, capsys) -> None:
    d, _, _ = files
    tifffile.imwrite(d / "small.tif", np.zeros((8, 10, 10), np.uint8))
    assert main(["segment-eval", str(d / "small.tif"), str(d / "mask.tif")]) == 2
    assert "differ in shape" in capsys.readouterr().err
    assert main(["segment-eval", str(d / "missing.tif"), str(d / "mask.tif")]) == 2
