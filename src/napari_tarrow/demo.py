"""The main job on embedded data: simulate dividing nuclei, train briefly, attribute, export.

Prints how many of the top attribution regions fall on the simulator's true
divisions, beside what randomly placed points achieve.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile

from .config import PRESETS
from .data.video import read_video
from .errors import TarrowError
from .regions import EDGE, division_hits
from .sample_data import dividing_cells


def simulate_fields(
    n_fields: int = 8,
    seed: int = 0,
    n_frames: int = 12,
    shape: tuple[int, int] = (128, 128),
    n_cells: int = 36,
) -> list:
    """Dense fields of view of dividing nuclei, as in a multi-position experiment.

    Several short, crowded fields give far more divisions per training crop than
    one long video (the simulator stops dividing once a field is full).
    """
    return [
        dividing_cells(n_frames=n_frames, shape=shape, n_cells=n_cells, seed=seed + i)
        for i in range(n_fields)
    ]


def run_demo(
    out: Path,
    device: str = "auto",
    epochs: int = 20,
    quiet: bool = False,
    stop: Callable[[], bool] = lambda: False,
    top_k: int = 3,
) -> dict[str, float]:
    """Run the demo into ``out``; returns the summary numbers it prints."""
    from .attribution import export_attribution
    from .cli import run_events
    from .features import export_features
    from .train import train

    if (out / "model").exists():
        raise TarrowError(f"{out / 'model'} exists; remove it or pass another --out.")
    (out / "fields").mkdir(parents=True, exist_ok=True)
    sims = simulate_fields()
    paths = []
    for i, sim in enumerate(sims):
        paths.append(out / "fields" / f"field_{i:02d}.tif")
        tifffile.imwrite(paths[-1], sim.video, metadata={"axes": "TYX"})
    videos = [read_video(p) for p in paths]
    fast = PRESETS["fast"]
    cfg = dataclasses.replace(
        fast, train=dataclasses.replace(fast.train, epochs=epochs)
    )
    n_div = sum(len(s.divisions) for s in sims)
    print(
        f"demo: {len(videos)} fields of view {videos[0].shape}, {n_div} divisions; training "
        f"{epochs} epochs x {cfg.train.samples_per_epoch} pairs -> {out / 'model'}"
    )
    model = run_events(
        train(cfg, videos, out / "model", device, stop=stop), "train", quiet
    )
    # attribution and features of a field the biologist would inspect (the last one)
    video, sim = videos[-1], sims[-1]
    divisions = np.array([(d.t, d.y, d.x) for d in sim.divisions], float)
    np.savetxt(
        out / "divisions.csv",
        divisions,
        fmt="%g",
        delimiter=",",
        header="t,y,x",
        comments="",
    )
    table = run_events(
        export_attribution(
            model,
            video,
            out / "attribution.tif",
            1,
            out / "regions.csv",
            top_k,
            stop=stop,
        ),
        "attribute",
        quiet,
    )
    run_events(
        export_features(model, video, out / "features.tif", stop=stop),
        "features",
        quiet,
    )
    summary = summarize(table, divisions, video.shape[1:])
    print(
        f"top-{top_k} regions per frame pair on a true division (within 12 px, ±2 frames) "
        f"in {paths[-1].name}: {summary['hits']}/{summary['regions']} = "
        f"{summary['precision']:.2f} (randomly placed points: {summary['chance']:.2f})"
    )
    print(
        f"wrote {out}: model/, attribution.tif, regions.csv, features.tif(+.json), "
        "fields/, divisions.csv"
    )
    return summary


def summarize(
    table: np.ndarray,
    divisions: np.ndarray,
    shape: tuple[int, int],
    radius: float = 12.0,
    frame_tolerance: int = 2,
    seed: int = 0,
) -> dict[str, float]:
    """Precision of the regions on true divisions, and of as many random points.

    A region hits when a division lies within ``radius`` pixels and within
    ``frame_tolerance`` frames of its pair (a mitotic cell is visible for a few
    frames around the division).
    """

    def precision(t: np.ndarray) -> float:
        hits = division_hits(
            t, divisions, radius=radius, frame_tolerance=frame_tolerance
        )
        return float(hits.mean()) if len(t) else float("nan")

    rng = np.random.default_rng(seed)
    random = table.copy()
    # placed where regions can lie: off the frame band that top_regions skips
    random[:, 1] = rng.uniform(EDGE, shape[0] - EDGE, len(table))
    random[:, 2] = rng.uniform(EDGE, shape[1] - EDGE, len(table))
    p = precision(table)
    return {
        "regions": len(table),
        "hits": round(p * len(table)),
        "precision": p,
        "chance": precision(random),
    }
