"""The main job on embedded data: simulate dividing nuclei, train briefly, attribute, export.

Prints how many of the top attribution regions fall on the simulator's true
divisions, beside what randomly placed points achieve.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile

from .config import DataConfig, ModelConfig, TapConfig, TrainConfig
from .data.video import read_video
from .errors import TarrowError
from .regions import division_hits

DEMO_CONFIG = TapConfig(
    data=DataConfig(size=64),
    model=ModelConfig(),
    train=TrainConfig(epochs=6, samples_per_epoch=512, batch_size=32, val_samples=256),
)


def run_demo(out: Path, device: str = "auto", epochs: int = 6, quiet: bool = False,
             stop: Callable[[], bool] = lambda: False, top_k: int = 3) -> dict[str, float]:
    """Run the demo into ``out``; returns the summary numbers it prints."""
    from .attribution import export_attribution
    from .cli import run_events
    from .features import export_features
    from .sample_data import dividing_cells
    from .train import train

    import dataclasses

    if (out / "model").exists():
        raise TarrowError(f"{out / 'model'} exists; remove it or pass another --out.")
    out.mkdir(parents=True, exist_ok=True)
    sim = dividing_cells(n_frames=40, shape=(192, 192), n_cells=14, seed=0)
    tifffile.imwrite(out / "video.tif", sim.video, metadata={"axes": "TYX"})
    divisions = np.array([(d.t, d.y, d.x) for d in sim.divisions], float)
    np.savetxt(out / "divisions.csv", divisions, fmt="%g", delimiter=",", header="t,y,x",
               comments="")
    cfg = dataclasses.replace(DEMO_CONFIG, train=dataclasses.replace(DEMO_CONFIG.train,
                                                                      epochs=epochs))
    video = read_video(out / "video.tif")
    print(f"demo: {len(video)} frames {video.shape[1:]}, {len(divisions)} divisions; "
          f"training {epochs} epochs x {cfg.train.samples_per_epoch} pairs -> {out / 'model'}")
    model = run_events(train(cfg, [video], out / "model", device, stop=stop), "train", quiet)
    table = run_events(export_attribution(model, video, out / "attribution.tif", 1,
                                          out / "regions.csv", top_k, stop=stop), "attribute", quiet)
    run_events(export_features(model, video, out / "features.tif", stop=stop), "features", quiet)
    summary = summarize(table, divisions, video.shape[1:], top_k)
    print(f"top-{top_k} regions per frame pair on a true division (within 12 px): "
          f"{summary['hits']:.0f}/{summary['regions']:.0f} = {summary['precision']:.2f} "
          f"(random points: {summary['chance']:.2f})")
    print(f"wrote {out}: model/, attribution.tif, regions.csv, features.tif(+.json), video.tif")
    return summary


def summarize(table: np.ndarray, divisions: np.ndarray, shape: tuple[int, int],
              top_k: int, radius: float = 12.0, seed: int = 0) -> dict[str, float]:
    """Precision of the regions on true divisions, and of as many random points."""
    hits = division_hits(table, divisions, radius=radius)
    rng = np.random.default_rng(seed)
    random = table.copy()
    random[:, 1] = rng.uniform(0, shape[0], len(table))
    random[:, 2] = rng.uniform(0, shape[1], len(table))
    chance = division_hits(random, divisions, radius=radius)
    n = max(len(table), 1)
    return {"regions": len(table), "hits": int(hits.sum()), "precision": hits.sum() / n,
            "chance": chance.sum() / n}
