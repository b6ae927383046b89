"""CLI round trip and bad input: in-process ``main()`` for speed, one real subprocess."""

import dataclasses
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from napari_tarrow.cli import build_parser, main
from napari_tarrow.cli.train import TRAIN_OPTIONS
from napari_tarrow.config import PRESETS, TapConfig, section_of
from napari_tarrow.device import amp_choice

# a few steps of a tiny network: plumbing, not learning
TINY_TRAIN = [
    "--size",
    "32",
    "--batch-size",
    "4",
    "--samples-per-epoch",
    "8",
    "--val-samples",
    "4",
    "--features",
    "8",
    "--split-train",
    "0",
    "0.7",
    "--split-val",
    "0.7",
    "1",
    "--device",
    "cpu",
]


@pytest.fixture(scope="module")
def video_tif(tmp_path_factory, small_video) -> Path:
    path = tmp_path_factory.mktemp("cli") / "video.tif"
    tifffile.imwrite(path, (small_video * 1000).astype("u2"))
    return path


@pytest.mark.parametrize(("flag", "words"), [("--amp", "bf16"), ("--no-amp", "fp32")])
def test_attribute_and_features_take_the_precision_of_z(
    tmp_path, video_tif, tiny_model_dir, flag, words
) -> None:
    for cmd in ("attribute", "features"):
        out = tmp_path / f"{cmd}.tif"
        argv = [cmd, str(tiny_model_dir), str(video_tif), "--out", str(out), flag]
        assert main(["-q", *argv, "--device", "cpu"]) == 0
        meta = json.loads(out.with_name(out.name + ".json").read_text())
        said = meta["z_computed_in" if cmd == "attribute" else "computed_in"]
        assert said == {"bf16": "bf16 autocast", "fp32": "fp32"}[words]  # unchecked


def _fail(capsys, argv: list[str], words: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[
        -1
    ]  # after any progress bar: the message, on one line
    assert last.startswith("napari-tarrow ") and words in last, err
    return last


def test_train_attribute_features_round_trip(
    tmp_path, video_tif, capsys, caplog
) -> None:
    model = tmp_path / "model"
    assert (
        main(
            [
                "-q",
                "train",
                str(video_tif),
                "--out",
                str(model),
                "--epochs",
                "2",
                *TINY_TRAIN,
            ]
        )
        == 0
    )
    assert (model / "weights_best.safetensors").exists()
    lines = (model / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    assert json.loads((model / "config.json").read_text())["model"]["features"] == 8
    # bf16 chosen for this CPU (fp32 without native bf16), and recorded
    assert json.loads(lines[0])["amp"] is amp_choice(None, torch.device("cpu"))

    cam, regions = tmp_path / "cam.tif", tmp_path / "regions.csv"
    assert (
        main(
            [
                "-q",
                "attribute",
                str(model),
                str(video_tif),
                "--out",
                str(cam),
                "--regions",
                str(regions),
                "--top-k",
                "3",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    maps = tifffile.imread(cam)
    assert maps.shape == (11, 80, 72) and maps.dtype == np.float32
    rows = np.loadtxt(regions, delimiter=",", skiprows=1).reshape(-1, 4)
    per_pair = np.bincount(rows[:, 0].astype(int), minlength=11)
    assert per_pair.min() >= 1 and per_pair.max() <= 3 and len(per_pair) == 11
    ys, xs = rows[:, 1], rows[:, 2]  # no peak on the 8-px frame band
    assert ys.min() >= 8 and ys.max() < 80 - 8 and xs.min() >= 8 and xs.max() < 72 - 8
    assert regions.read_text().startswith("t,y,x,score")

    feats = tmp_path / "f.tif"
    assert (
        main(
            [
                "-q",
                "features",
                str(model),
                str(video_tif),
                "--out",
                str(feats),
                "--dtype",
                "float32",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    z = tifffile.imread(feats)
    assert z.shape == (12, 8, 80, 72) and z.dtype == np.float32
    side = json.loads(Path(f"{feats}.json").read_text())
    assert side["axes"] == "TCYX" and side["dtype"] == "float32"
    assert side["config"]["model"]["features"] == 8
    with tifffile.TiffFile(feats) as tif:
        assert tif.series[0].axes == "TCYX"

    # resume continues the same run to more epochs
    assert (
        main(
            [
                "-q",
                "train",
                str(video_tif),
                "--out",
                str(model),
                "--epochs",
                "3",
                "--resume",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert len((model / "metrics.jsonl").read_text().splitlines()) == 3
    # the saved settings win; an option that differs is named, one the same is not
    size = TINY_TRAIN[TINY_TRAIN.index("--size") + 1]
    again = ["-q", "train", str(video_tif), "--out", str(model), "--resume"]
    assert main([*again, "--epochs", "3", "--lr", "0.5", "--size", size]) == 0
    (record,) = [r for r in caplog.records if "--resume continues" in r.message]
    assert "ignored: --lr (only --epochs" in record.getMessage()
    assert TapConfig.load(model / "config.json").train.lr != 0.5
    # an existing model is never overwritten by a new run
    _fail(
        capsys, ["train", str(video_tif), "--out", str(model)], "already holds a model"
    )


def test_bad_inputs_exit_2_with_one_line(tmp_path, tiny_model_dir, capsys) -> None:
    m = str(tiny_model_dir)
    cases = {
        "image2d.tif": (np.zeros((64, 64), "u2"), "single 2D image"),
        "one.tif": (np.zeros((1, 64, 64), "u2"), "single frame"),
        "rgb.tif": (np.zeros((4, 64, 64, 3), "u1"), "RGB"),
    }
    for name, (data, words) in cases.items():
        tifffile.imwrite(
            tmp_path / name, data, photometric="rgb" if data.ndim == 4 else "minisblack"
        )
        _fail(
            capsys,
            ["attribute", m, str(tmp_path / name), "--out", str(tmp_path / "o.tif")],
            words,
        )
    nan = np.random.default_rng(0).random((4, 64, 64)).astype("f4")
    nan[2, 3, 3] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", nan, photometric="minisblack")
    _fail(
        capsys,
        ["features", m, str(tmp_path / "nan.tif"), "--out", str(tmp_path / "o.tif")],
        "frame 2 contains NaN",
    )
    tifffile.imwrite(
        tmp_path / "short.tif", np.zeros((3, 64, 64), "u2"), photometric="minisblack"
    )
    _fail(
        capsys,
        [
            "attribute",
            m,
            str(tmp_path / "short.tif"),
            "--delta",
            "3",
            "--out",
            str(tmp_path / "o.tif"),
        ],
        "no pair of frames 3 apart",
    )
    _fail(
        capsys,
        [
            "train",
            str(tmp_path / "short.tif"),
            "--out",
            str(tmp_path / "m"),
            "--delta",
            "5",
        ],
        "no frame pairs with delta",
    )
    _fail(
        capsys,
        [
            "attribute",
            m,
            str(tmp_path / "missing.tif"),
            "--out",
            str(tmp_path / "o.tif"),
        ],
        "does not exist",
    )
    _fail(
        capsys,
        [
            "attribute",
            str(tmp_path),
            str(tmp_path / "short.tif"),
            "--out",
            str(tmp_path / "o.tif"),
        ],
        "not a napari-tarrow model folder",
    )
    _fail(
        capsys,
        [
            "train",
            str(tmp_path / "short.tif"),
            "--out",
            str(tmp_path / "m"),
            "--size",
            "20",
        ],
        "size=20",
    )


def test_output_into_a_missing_folder_is_named(
    tmp_path, video_tif, tiny_model_dir, capsys
):
    m, missing = str(tiny_model_dir), tmp_path / "no" / "such"
    for cmd, extra in (("attribute", []), ("features", [])):
        _fail(
            capsys,
            [cmd, m, str(video_tif), "--out", str(missing / "o.tif"), *extra],
            "does not exist",
        )
    _fail(
        capsys,
        [
            "attribute",
            m,
            str(video_tif),
            "--out",
            str(tmp_path / "o.tif"),
            "--regions",
            str(missing / "r.csv"),
        ],
        "does not exist",
    )
    _fail(
        capsys, ["attribute", m, str(video_tif), "--out", str(tmp_path)], "is a folder"
    )
    # model folder and video swapped
    _fail(
        capsys,
        ["features", str(video_tif), m, "--out", str(tmp_path / "o.tif")],
        "is a file, not a model folder",
    )
    assert not (tmp_path / "o.tif").exists()


def test_failed_run_never_replaces_an_existing_output(
    tmp_path, tiny_model_dir, capsys
) -> None:
    out = tmp_path / "cam.tif"
    out.write_bytes(b"precious")
    nan = np.random.default_rng(0).random((5, 64, 64)).astype("f4")
    nan[3, 0, 0] = np.nan  # fails after a few maps were written
    tifffile.imwrite(tmp_path / "nan.tif", nan, photometric="minisblack")
    _fail(
        capsys,
        [
            "attribute",
            str(tiny_model_dir),
            str(tmp_path / "nan.tif"),
            "--out",
            str(out),
        ],
        "NaN",
    )
    assert out.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam.tif", "nan.tif"]


def test_console_script_runs_as_a_process(tmp_path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "napari_tarrow.cli",
            "attribute",
            str(tmp_path),
            str(tmp_path / "v.tif"),
            "--out",
            str(tmp_path / "o.tif"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "not a napari-tarrow model" in r.stderr
    assert "Traceback" not in r.stderr


def test_ctrl_c_stops_training_cleanly_and_keeps_the_model(tmp_path, video_tif) -> None:
    out = tmp_path / "model"
    args = ["train", str(video_tif), "--out", str(out), "--epochs", "1000", *TINY_TRAIN]
    proc = subprocess.Popen(
        [sys.executable, "-m", "napari_tarrow.cli", "-q", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (out / "metrics.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "stopped early" in stdout and "Traceback" not in stderr
    epochs = len((out / "metrics.jsonl").read_text().splitlines())
    assert epochs >= 1 and epochs < 1000
    from napari_tarrow.model import TapModel

    TapModel.from_folder(out)  # the kept model loads


@pytest.mark.filterwarnings("default::napari_tarrow.training.loop.ValidationWarning")
def test_init_fine_tunes_a_model_with_its_architecture(
    tmp_path, video_tif, tiny_model_dir, capsys, caplog
) -> None:
    i = TINY_TRAIN.index("--features")
    no_features = TINY_TRAIN[:i] + TINY_TRAIN[i + 2 :]
    tuned = tmp_path / "tuned"
    argv = ["train", str(video_tif), "--out", str(tuned), "--epochs", "1"]
    assert main(["-q", *argv, *no_features, "--init", str(tiny_model_dir)]) == 0
    cfg = json.loads((tuned / "config.json").read_text())
    start = json.loads((tiny_model_dir / "config.json").read_text())
    assert cfg["model"] == start["model"] and cfg["model"]["features"] == 8
    assert cfg["train"]["init_from"] == str(tiny_model_dir.resolve())
    # 12 frames, validation on 0.7-1: the warning is logged as one plain message
    (record,) = [r for r in caplog.records if "validation interval" in r.message]
    assert record.levelname == "WARNING" and record.name == "napari_tarrow"
    assert record.message.startswith("the validation interval 0.7-1 of the time span")

    other = str(tmp_path / "other")
    init = ["--init", str(tiny_model_dir)]
    _fail(capsys, [*argv[:3], other, *init, "--features", "32"], "leave --features out")
    _fail(capsys, [*argv[:3], other, *init, "--resume"], "Use one of them")
    _fail(
        capsys, [*argv[:3], other, "--init", str(tmp_path / "none")], "does not exist"
    )


def test_train_options_default_to_the_preset(tmp_path, video_tif) -> None:
    # no option re-types a default: each names a config field and defaults to None
    parser = build_parser()
    a = parser.parse_args(["train", "v.tif", "--out", "m"])
    for option in TRAIN_OPTIONS:
        assert getattr(a, option) is None, option
        assert hasattr(getattr(PRESETS["paper"], section_of(option)), option), option
    model = tmp_path / "fast"
    args = ["-q", "train", str(video_tif), "--out", str(model), "--preset", "fast"]
    small = ["--epochs", "1", "--samples-per-epoch", "32", "--val-samples", "4"]
    chosen = ["--subsample", "2", "--unet-channels", "8", "--foreground", "0.2"]
    assert main([*args, *small, *chosen]) == 0
    cfg = TapConfig.load(model / "config.json")
    fast = PRESETS["fast"]
    assert (cfg.model.subsample, cfg.model.unet_channels) == (2, 8)
    assert cfg.model.features == fast.model.features  # the rest from the preset
    assert cfg.data == dataclasses.replace(fast.data, foreground=0.2)
    assert cfg.train.batch_size == fast.train.batch_size
    assert cfg.train.epochs == 1


def test_the_eta_follows_the_time_limit(capsys) -> None:
    from napari_tarrow.cli.progress import expected_steps, run_events
    from napari_tarrow.events import Done, Progress

    # 10 steps in 5 s with 20 s left: 40 more fit, not the 990 of all epochs
    assert expected_steps(10, 1000, 5.0, 20.0) == 50
    assert expected_steps(10, 30, 5.0, 20.0) == 30  # the job ends first
    assert expected_steps(10, 1000, 5.0, -1.0) == 10  # past the limit
    assert expected_steps(0, 1000, 0.0, 20.0) == 1000  # no pace yet

    def job():
        for i in range(1, 4):
            time.sleep(0.05)
            yield Progress("train", i, 1000)
        yield Done("ok")

    assert run_events(job(), "train", deadline=time.monotonic() + 0.5) == "ok"
    shown = capsys.readouterr().err.replace("\r", "\n").splitlines()[-1]
    assert "/1000" not in shown and "3/" in shown, shown


def test_features_to_ome_zarr_and_a_format_that_contradicts_the_name(
    tmp_path, video_tif, tiny_model_dir, capsys
) -> None:
    pytest.importorskip("zarr", minversion="3")
    from napari_tarrow.io.export import open_output

    m, v = str(tiny_model_dir), str(video_tif)
    out = tmp_path / "features.zarr"
    assert main(["-q", "features", m, v, "--out", str(out), "--format", "zarr"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    z = open_output(out)
    assert z.shape == (12, 8, 80, 72) and z.dtype == np.float16
    _fail(
        capsys,
        ["features", m, v, "--out", str(tmp_path / "f.tif"), "--format", "zarr"],
        f"names a TIFF file but the format is zarr; name it {tmp_path / 'f.zarr'}",
    )
    assert not (tmp_path / "f.tif").exists()
