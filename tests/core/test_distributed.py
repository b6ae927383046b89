"""torchrun with 2 CPU processes (gloo): one model written by rank 0, both ranks trained."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from napari_tarrow.model import TapModel

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
TINY = "--size 32 --features 8 --batch-size 4 --val-samples 6 --no-augment --device cpu"


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture
def video_tif(tmp_path: Path, small_video: np.ndarray) -> Path:
    path = tmp_path / "video.tif"
    tifffile.imwrite(path, (small_video * 1000).astype("u2"))
    return path


def test_torchrun_trains_one_model_on_two_ranks(tmp_path, video_tif) -> None:
    out = tmp_path / "model"
    args = [*TORCHRUN, "--nproc_per_node", "2", "-m", "napari_tarrow.cli", "train"]
    args += [str(video_tif), "--out", str(out), "--epochs", "2"]
    args += ["--samples-per-epoch", "16", *TINY.split()]
    done = _run(args, tmp_path)
    assert done.stdout.count("saved model in") == 1  # rank 0 reports, rank 1 is quiet
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]  # one writer: no duplicated lines
    assert {m["world_size"] for m in metrics} == {2}
    # 16 samples per epoch in all: 2 steps of 4 on each rank, summed over both ranks
    assert {m["samples"] for m in metrics} == {16}
    state = torch.load(out / "resume.pt", weights_only=True)
    g0, g1 = state["generators"]
    assert not torch.equal(g0, g1)  # each rank drew its own crops
    model = TapModel.from_folder(out)
    logits, _ = model.net(torch.rand(1, 2, 32, 32))
    assert logits.shape == (1, 2)


def test_a_stop_on_one_rank_stops_both(tmp_path, video_tif) -> None:
    script = tmp_path / "stop_rank1.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import json, os, sys
            from napari_tarrow.config import DataConfig, ModelConfig, TapConfig, TrainConfig
            from napari_tarrow.io.video import read_video
            from napari_tarrow.events import Done, Progress
            from napari_tarrow.training.loop import train

            rank = int(os.environ["RANK"])
            calls = []
            def stop():  # rank 1 asks to stop before its third step
                calls.append(1)
                return rank == 1 and len(calls) >= 3
            cfg = TapConfig(
                data=DataConfig(size=32, augment=False),
                model=ModelConfig(features=8, unet_channels=8, head_features=8),
                train=TrainConfig(epochs=3, samples_per_epoch=80, batch_size=4,
                                  val_samples=4),
            )
            steps, model = 0, None
            for ev in train(cfg, [read_video({str(video_tif)!r})], {str(tmp_path / "m")!r},
                            "cpu", stop=stop):
                steps += isinstance(ev, Progress)
                model = ev.result if isinstance(ev, Done) else model
            with open(f"rank{{rank}}.json", "w") as f:
                json.dump({{"steps": steps, "loaded": model is not None}}, f)
            """
        )
    )
    _run([*TORCHRUN, "--nproc_per_node", "2", str(script)], tmp_path)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # 10 steps per epoch per rank; both stop after 2 although only rank 1 asked
    assert [r["steps"] for r in ranks] == [2, 2]
    assert all(r["loaded"] for r in ranks)
    assert (tmp_path / "m" / "weights_last.safetensors").exists()
