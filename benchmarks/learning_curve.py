"""Learning curves of attribution on annotated videos: train once, snapshot, evaluate all.

    # 1. train with the CLI's options, keeping the weights at epochs 1, 2, 4, 8, ...
    python benchmarks/learning_curve.py train RUN --minutes 120 -- VIDEO \
        --preset fast --device cpu
    # 2. score every snapshot (controls computed once) and plot against samples/CPU time
    python benchmarks/learning_curve.py evaluate RUN VIDEO --tracks man_track.txt \
        --frames 0-19 --out benchmarks/results/curve_hela

The snapshots (``RUN/snapshots/epoch_NNNN.safetensors``) and ``RUN/snapshots.jsonl``
(epoch, samples seen, process CPU seconds, wall seconds) let checkpoints be evaluated
while the training goes on.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from napari_tarrow import cli
from napari_tarrow.model import WEIGHTS

SNAPSHOTS = "snapshots"


def doubling(epoch: int) -> bool:
    """Epochs 1, 2, 4, 8, ...: log-spaced points of the curve."""
    return epoch & (epoch - 1) == 0


def train_with_snapshots(run: Path, minutes: float, train_args: list[str]) -> None:
    """Run ``napari-tarrow train`` into ``run`` and copy the last weights at doubling epochs."""
    from napari_tarrow.data.video import read_video
    from napari_tarrow.events import Checkpoint, Metrics
    from napari_tarrow.train import train

    a = cli.build_parser().parse_args(["train", *train_args, "--out", str(run)])
    cfg = cli.config_from_args(a)
    videos = [read_video(v, cfg.data.percentiles) for v in a.video]
    (run / SNAPSHOTS).mkdir(parents=True, exist_ok=True)
    cpu0, wall0, epoch = time.process_time(), time.perf_counter(), None
    with cli.StopOnInterrupt(minutes) as stop:
        for ev in train(cfg, videos, run, a.device, stop=stop):
            if isinstance(ev, Metrics):
                epoch, values = ev.epoch + 1, ev.values
                print(f"epoch {epoch}: {json.dumps(values)}", flush=True)
            elif isinstance(ev, Checkpoint) and ev.kind == "last" and doubling(epoch):
                target = run / SNAPSHOTS / f"epoch_{epoch:04d}.safetensors"
                shutil.copyfile(run / WEIGHTS["last"], target)
                record = {
                    "epoch": epoch,
                    "samples": epoch * cfg.train.samples_per_epoch,
                    "cpu_s": round(time.process_time() - cpu0, 1),
                    "wall_s": round(time.perf_counter() - wall0, 1),
                    "train_acc": values["acc"],
                    "file": target.name,
                }
                with open(run / "snapshots.jsonl", "a") as f:
                    f.write(json.dumps(record) + "\n")


def main() -> None:
    argv = sys.argv[1:]
    own, rest = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :])
        if "--" in argv
        else (argv, [])
    )
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train with snapshots; CLI train options after --")
    t.add_argument("run", type=Path)
    t.add_argument("--minutes", type=float, required=True)
    a = p.parse_args(own)
    if a.command == "train":
        train_with_snapshots(a.run, a.minutes, rest)


if __name__ == "__main__":
    main()
