"""Label efficiency of division segmentation on HeLa frames 0-19: TAP frozen vs finetuned vs baseline.

Ground truth (dividing-cell masks) comes from the CTC lineage and markers: the
daughters' nuclei in their first frame and the parent's nucleus in its last
frame, each taken as the object of the CTC's automatic segmentation
(``02_ERR_SEG``) under the marker's centroid (a disk of 8 px where none is).
Labels are full masks on n frames drawn from frames 0-11 (nested sets per
seed); the score is object F1 at IoU 0.5 on frames 12-18 (pairs (t, t+1)),
predicted objects below 64 px removed.

Command::

    nice -n 10 python benchmarks/label_efficiency.py --model /work/models/hela_all \
        --data ../shared/data/hela-ctc02 --out benchmarks/results/label_efficiency
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

from napari_tarrow.downstream import (
    DivisionSegmenter,
    SegmentationConfig,
    labels_from_mask,
    object_f1,
)
from napari_tarrow.downstream.cache import FeatureCache
from napari_tarrow.events import drain
from napari_tarrow.io.ctc import read_ctc
from napari_tarrow.io.video import Video, read_video
from napari_tarrow.model import TapModel

MODES = ("frozen", "finetune", "baseline")
TRAIN_POOL = range(12)  # labelled frames are drawn from these
TEST = range(12, 19)  # scored frames: pairs (t, t+1) inside 0-19


def division_masks(root: Path, n_frames: int = 20, radius: int = 8) -> np.ndarray:
    """(T, Y, X) int32 instances: daughters at their first frame, parents at their last."""
    truth = read_ctc(root / "02_GT" / "TRA" / "man_track.txt")
    seg = np.stack(
        [
            tifffile.imread(root / "02_ERR_SEG" / f"mask{t:03d}.tif")
            for t in range(n_frames)
        ]
    ).astype(np.int32)
    out = np.zeros_like(seg)
    yy, xx = np.ogrid[: seg.shape[1], : seg.shape[2]]
    next_id = 1
    for d in truth.divisions:
        points = [(d.t, yx) for yx in d.daughters_yx]
        if d.parent_yx is not None:
            points.append((d.t - 1, d.parent_yx))
        for t, (y, x) in points:
            if not 0 <= t < n_frames:
                continue
            obj = seg[t, round(y), round(x)]
            region = (
                seg[t] == obj if obj else (yy - y) ** 2 + (xx - x) ** 2 <= radius**2
            )
            out[t][region & (out[t] == 0)] = next_id
            next_id += 1
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="TAP model folder")
    p.add_argument("--data", default="../shared/data/hela-ctc02")
    p.add_argument("--out", default="benchmarks/results/label_efficiency")
    p.add_argument("--frames", type=int, nargs="+", default=[1, 2, 5, 10])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--steps", type=int, default=10, help="steps per epoch")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--crop", type=int, default=64)
    p.add_argument(
        "--rows", type=int, nargs=2, default=[0, 700], help="field rows used (Y0 Y1)"
    )
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 on a shared CPU)"
    )
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    root, out = Path(a.data), Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    tap = TapModel.from_folder(a.model, device="cpu")
    full = read_video(root / "02", tap.config.data.percentiles)
    pos = [int(np.flatnonzero(full.times == t)[0]) for t in range(20)]
    rows_ = slice(*a.rows)
    video = Video(np.stack([full.raw(i)[rows_] for i in pos]), name="hela-02 0-19")
    gt = division_masks(root)[:, rows_]
    print(
        f"HeLa 02 frames 0-19 {video.shape}; dividing-cell objects: "
        f"{len(np.unique(gt[list(TRAIN_POOL)])) - 1} in frames 0-11, "
        f"{len(np.unique(gt[list(TEST)])) - 1} in test frames 12-18"
    )
    cache = FeatureCache(tap)
    if "frozen" in a.modes:
        t0 = time.perf_counter()
        frames = [*TRAIN_POOL, *TEST, TEST[-1] + 1]
        for i in frames:
            cache.features(video, i)
        print(
            f"frozen features of {len(frames)} frames: {time.perf_counter() - t0:.0f} s (once)"
        )

    rows: list[dict] = []
    for seed in a.seeds:
        order = np.random.default_rng(seed).permutation(list(TRAIN_POOL))
        for n in a.frames:
            labels = labels_from_mask(gt > 0, order[:n])
            for mode in a.modes:
                cfg = SegmentationConfig(
                    mode=mode,
                    epochs=a.epochs,
                    steps_per_epoch=a.steps,
                    batch_size=a.batch,
                    crop=a.crop,
                    seed=seed,
                )
                seg = DivisionSegmenter(
                    tap, cfg, cache=cache if mode == "frozen" else None
                )
                t0 = time.perf_counter()
                drain(seg.fit(video, labels))
                t1 = time.perf_counter()
                res = drain(seg.predict(video, frames=list(TEST)))
                t2 = time.perf_counter()
                s = object_f1(gt[list(TEST)], res.labels, iou=0.5, min_size=64)
                rows.append(
                    {
                        "seed": seed,
                        "frames": n,
                        "mode": mode,
                        "f1": s.f1,
                        "precision": s.precision,
                        "recall": s.recall,
                        "tp": s.tp,
                        "fp": s.fp,
                        "fn": s.fn,
                        "fit_s": t1 - t0,
                        "predict_s": t2 - t1,
                    }
                )
                write_csv(rows, Path(f"{out}.csv"))  # after each run: kept if stopped
                print(
                    f"seed {seed} frames {n:2d} {mode:8s} F1 {s.f1:.3f} "
                    f"(P {s.precision:.2f} R {s.recall:.2f}) fit {t1 - t0:.0f} s "
                    f"predict {t2 - t1:.0f} s",
                    flush=True,
                )
    table = summary(rows, a.frames, a.modes)
    Path(f"{out}.md").write_text(table + "\n")
    print(table)
    plot(rows, a.frames, a.modes, Path(f"{out}.png"))


def write_csv(rows: list[dict], path: Path) -> None:
    """All runs so far, one row each."""
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def summary(rows: list[dict], frames: list[int], modes: list[str]) -> str:
    """Markdown table: mean ± std of F1 over seeds and mean fit time, per mode and frames."""
    lines = [
        "| labelled frames | "
        + " | ".join(f"{m} F1" for m in modes)
        + " | "
        + " | ".join(f"{m} fit s" for m in modes)
        + " |",
        "|---:|" + "---:|" * (2 * len(modes)),
    ]
    for n in frames:
        f1, fit = [], []
        for m in modes:
            sel = [r for r in rows if r["frames"] == n and r["mode"] == m]
            v = np.array([r["f1"] for r in sel])
            f1.append(f"{v.mean():.3f} ± {v.std():.3f}")
            fit.append(f"{np.mean([r['fit_s'] for r in sel]):.0f}")
        lines.append(f"| {n} | " + " | ".join(f1) + " | " + " | ".join(fit) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], frames: list[int], modes: list[str], path: Path) -> None:
    """F1 against the number of labelled frames, one line per mode (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for m in modes:
        v = [
            [r["f1"] for r in rows if r["frames"] == n and r["mode"] == m]
            for n in frames
        ]
        ax.errorbar(frames, [np.mean(x) for x in v], yerr=[np.std(x) for x in v],
                    marker="o", capsize=3, label=m)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xticks(frames, [str(n) for n in frames])
    ax.set_xlabel("labelled frames")
    ax.set_ylabel("F1 at IoU 0.5")
    ax.set_title("HeLa 02, dividing cells, frames 12-18")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
