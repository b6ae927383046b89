"""Quick real-data check: do the top-k Grad-CAM peaks of a model hit HeLa divisions?

    python benchmarks/hela_peaks.py MODEL_DIR [MODEL_DIR ...] [--data ../shared/data/hela-ctc02]

On HeLa frames 0-19 (all pairs (t, t+1)), precision@k of the attribution peaks
(a hit: a division within --radius px whose event lies in the pair, or within ±2
frames), beside the same peak picking on the smoothed absolute frame difference,
on an untrained network of the same architecture, and on random points.
A first step towards the `evaluate` command of the real-data issue.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch
from skimage.filters import gaussian

from napari_tarrow.attribution import attribute
from napari_tarrow.data.video import Video, read_video
from napari_tarrow.events import FrameDone
from napari_tarrow.model import TapModel
from napari_tarrow.regions import division_hits, regions_table


def load_divisions(path: Path) -> np.ndarray:
    with open(path) as f:
        rows = [
            (float(r["t_division"]), float(r["y"]), float(r["x"]))
            for r in csv.DictReader(f)
        ]
    return np.array(rows)


def precision(table: np.ndarray, div: np.ndarray, radius: float, tol: int) -> float:
    return float(division_hits(table, div, radius=radius, frame_tolerance=tol).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument(
        "--data",
        default=str(Path(__file__).resolve().parents[2] / "shared/data/hela-ctc02"),
    )
    p.add_argument("--k", type=int, default=6)
    p.add_argument("--radius", type=float, default=25.0)
    a = p.parse_args()
    full = read_video(Path(a.data) / "02")
    first20 = [i for i, t in enumerate(full.times) if t < 20]
    video = Video(np.stack([full.raw(i) for i in first20]), name="hela 0-19")
    div = load_divisions(Path(a.data) / "divisions.csv")
    times = video.times[:-1]
    rng = np.random.default_rng(0)
    rows = []

    def report(name: str, cams: list[np.ndarray]) -> None:
        table = regions_table(cams, times, k=a.k, min_distance=20)
        rows.append(
            (
                name,
                precision(table, div, a.radius, 0),
                precision(table, div, a.radius, 2),
            )
        )

    diffs = [
        gaussian(np.abs(video.frame(i + 1) - video.frame(i)), 4)
        for i in range(len(times))
    ]
    report("frame difference |x_t+1 - x_t|", diffs)
    rand = [rng.random(video.shape[1:]) for _ in times]
    report("random points", [gaussian(r, 4) for r in rand])
    for path in a.models:
        model = TapModel.from_folder(path)
        report(
            f"TAP {Path(path).name}",
            [e.data for e in attribute(model, video) if isinstance(e, FrameDone)],
        )
        torch.manual_seed(model.config.train.seed)
        fresh = TapModel(model.config)
        fresh.net.eval()
        report(
            f"untrained ({Path(path).name} architecture)",
            [e.data for e in attribute(fresh, video) if isinstance(e, FrameDone)],
        )
    print(
        f"HeLa frames 0-19, {len(times)} pairs, top-{a.k} peaks per pair, hit radius {a.radius:g} px"
    )
    print(
        f"{'peaks from':<40} {'precision (same pair)':>22} {'precision (±2 frames)':>22}"
    )
    for name, p0, p2 in rows:
        print(f"{name:<40} {p0:>22.3f} {p2:>22.3f}")


if __name__ == "__main__":
    main()
