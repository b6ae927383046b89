"""The fast CPU preset against the paper's configuration, at equal training time, on the simulator.

    python benchmarks/cpu_presets.py --minutes 8 --out benchmarks/results/cpu_presets.md

Both presets train on the demo's eight simulated fields of view for the same wall-clock
time, one after the other (the glibc tuning of ``train`` applies to both), and are scored
on four unseen fields with ``evaluate`` as in the demo: TAP accuracy on crops centred on
divisions and on background (both orders, so chance is 0.5), and the precision of the
top-3 regions per pair on true divisions (12 px, ±2 frames) for the model, an untrained
network, the frame difference and random points.
The paper's configuration runs at batch 32 here (its batch 256 is a GPU setting).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from _bench import device_name

from napari_tarrow.cli.demo import (
    SCORE_RADIUS,
    SCORE_TOLERANCE,
    SCORE_TOP_K,
    fields_video,
    simulate_fields,
)
from napari_tarrow.cli.progress import StopOnInterrupt
from napari_tarrow.config import PRESETS, TapConfig, TrainConfig
from napari_tarrow.device import resolve_device
from napari_tarrow.evaluation import evaluate
from napari_tarrow.events import Progress, drain
from napari_tarrow.io.video import Video
from napari_tarrow.model import TapModel
from napari_tarrow.training.loop import train

PAPER = TapConfig(
    data=dataclasses.replace(
        TapConfig().data, split_train=(0.0, 0.8), split_val=(0.8, 1.0)
    ),
    train=TrainConfig(samples_per_epoch=320, batch_size=32, val_samples=128),
)
PRESETS = {"fast CPU preset": PRESETS["fast"], "paper configuration": PAPER}


def describe(cfg: TapConfig) -> str:
    d, m = cfg.data, cfg.model
    return (
        f"crop {d.size}, U-Net {m.unet_channels} ch, {m.features} features, "
        f"augment {'on' if d.augment else 'off'}, batch {cfg.train.batch_size}"
    )


def fit(cfg: TapConfig, videos: list[Video], out: Path, minutes: float, device: str):
    """Train until the time limit; returns (model with its last weights, samples seen)."""
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=100_000))
    steps = 0
    with StopOnInterrupt(minutes) as stop:
        for ev in train(cfg, videos, out, device, stop=stop):
            if isinstance(ev, Progress):
                steps = ev.done
    return (
        TapModel.from_folder(out, device=device, which="last"),
        steps * cfg.train.batch_size,
    )


def score(model: TapModel, sims: list) -> dict[str, float]:
    """Top-3 region precision (±2 frames) of the model and the controls on ``sims``, and crop accuracy."""
    video, truth = fields_video(sims)
    table = drain(
        evaluate(
            model,
            video,
            truth,
            top_k=SCORE_TOP_K,
            radius=SCORE_RADIUS,
            tolerance=SCORE_TOLERANCE,
        )
    )
    rows = table.rows
    return {
        "acc division crops": rows["TAP model"]["acc_division"],
        "acc background crops": rows["TAP model"]["acc_background"],
        **{f"top-3 ±2, {name}": row["precision_tol"] for name, row in rows.items()},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--minutes", type=float, default=8.0, help="training time per preset"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", help="also write the table (Markdown) here")
    a = p.parse_args()
    dev = resolve_device(a.device)
    train_videos = [Video(s.video) for s in simulate_fields()]
    test_sims = simulate_fields(n_fields=4, seed=100)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg in PRESETS.items():
            t0 = time.perf_counter()
            model, samples = fit(
                cfg,
                train_videos,
                Path(tmp) / name.replace(" ", "_"),
                a.minutes,
                a.device,
            )
            wall = time.perf_counter() - t0
            scores = score(model, test_sims)
            rows.append(
                {
                    "preset": f"{name} ({describe(cfg)})",
                    "samples": samples,
                    "samples/s": samples / wall,
                    **scores,
                }
            )
    header = list(rows[0])
    title = (
        f"Training for {a.minutes:g} min each on {device_name(dev)} (8 simulated "
        "fields, scored on 4 unseen ones; samples/s includes validation):"
    )
    lines = [
        title,
        "",
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
    ]
    for r in rows:
        cells = [
            f"{v:.3f}"
            if isinstance(v, float) and v < 10
            else f"{v:.0f}"
            if isinstance(v, float | int)
            else str(v)
            for v in r.values()
        ]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
