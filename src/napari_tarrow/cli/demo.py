"""The main job on embedded data: simulate dividing nuclei, train briefly, attribute, score.

The model trains on simulated fields of view and is scored on fields it never saw,
with :func:`~napari_tarrow.evaluation.evaluate`: its top attribution regions beside
those of an untrained network, the frame difference and random points, with 95 %
intervals over the frame pairs, so that the figure is a property of the method
rather than of one training on one machine.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ..config import PRESETS
from ..errors import TarrowError
from ..io.ctc import Annotations, Division
from ..io.sample_data import SyntheticVideo, dividing_cells
from ..io.video import Video, read_video
from .progress import StopOnInterrupt, run_events

#: Drives one job generator to its result (the CLI's progress bars, or ``drain``).
Runner = Callable[[Iterator[Any], str], Any]

#: Peaks per pair, hit radius (px) and frame tolerance of the demo's score.
SCORE_TOP_K, SCORE_RADIUS, SCORE_TOLERANCE = 3, 12.0, 2
#: Frame numbers between two fields of the test video: no pair or tolerance crosses.
FIELD_GAP = 10


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand."""
    d = sub.add_parser(
        "demo", help="synthetic dividing cells: train, attribute, export, score"
    )
    d.add_argument(
        "--out", default="tarrow_demo", help="output folder (default ./tarrow_demo)"
    )
    d.add_argument("--epochs", type=int, default=20)
    d.add_argument("--device", default="auto")
    d.set_defaults(func=run)


def run(a: argparse.Namespace) -> None:
    """Synthetic dividing cells -> short training -> attribution, features, a scored summary."""
    print(
        f"demo: training {a.epochs} epochs of the fast preset on 8 simulated fields of "
        f"view -> {Path(a.out) / 'model'}; then scoring fields it never saw"
    )
    with StopOnInterrupt() as stop:
        table, written = run_demo(
            Path(a.out),
            lambda events, desc: run_events(events, desc, a.quiet),
            device=a.device,
            epochs=a.epochs,
            stop=stop,
        )
    print(summary(table))
    print(f"wrote {a.out}: " + ", ".join(p.name for p in written.values()))


def simulate_fields(
    n_fields: int = 8,
    seed: int = 0,
    n_frames: int = 12,
    shape: tuple[int, int] = (128, 128),
    n_cells: int = 36,
) -> list[SyntheticVideo]:
    """Dense fields of view of dividing nuclei, as in a multi-position experiment.

    Several short, crowded fields give far more divisions per training crop than
    one long video (the simulator stops dividing once a field is full).
    """
    return [
        dividing_cells(n_frames=n_frames, shape=shape, n_cells=n_cells, seed=seed + i)
        for i in range(n_fields)
    ]


def fields_video(sims: list[SyntheticVideo]) -> tuple[Video, Annotations]:
    """Several fields as one video whose frame numbers leave gaps between fields.

    Pairs are formed only within a field, and the truth (divisions with the mother's
    and the daughters' positions, the cell masks as markers) takes the same numbers,
    so :func:`~napari_tarrow.evaluation.evaluate` scores all fields at once.
    """
    step = max(len(s.video) for s in sims) + FIELD_GAP
    times = np.concatenate(
        [k * step + np.arange(len(s.video)) for k, s in enumerate(sims)]
    )
    video = Video(
        np.concatenate([s.video for s in sims]), times=times, name="test fields"
    )
    divisions = tuple(
        Division(k * step + d.t, ((d.y, d.x),), (d.mother_y, d.mother_x))
        for k, s in enumerate(sims)
        for d in s.divisions
    )
    markers = {
        k * step + t: m for k, s in enumerate(sims) for t, m in enumerate(s.labels)
    }
    return video, Annotations(divisions, markers)


def run_demo(
    out: Path,
    run: Runner,
    device: str = "auto",
    epochs: int = 20,
    stop: Callable[[], bool] = lambda: False,
    test_fields: int = 6,
) -> tuple[Any, dict[str, Path]]:
    """Train on 8 simulated fields, write the outputs of one unseen field, score 6 unseen fields.

    Returns the :class:`~napari_tarrow.evaluation.EvaluationTable` and the paths written.
    """
    from ..evaluation import evaluate
    from ..inference.attribution import export_attribution
    from ..inference.features import export_features
    from ..training.loop import train

    if (out / "model").exists():
        raise TarrowError(f"{out / 'model'} exists; remove it or pass another --out.")
    (out / "fields").mkdir(parents=True, exist_ok=True)
    paths = []
    for i, sim in enumerate(simulate_fields()):
        paths.append(out / "fields" / f"field_{i:02d}.tif")
        tifffile.imwrite(paths[-1], sim.video, metadata={"axes": "TYX"})
    cfg = PRESETS["fast"].replace(epochs=epochs)
    videos = [read_video(p) for p in paths]
    model = run(train(cfg, videos, out / "model", device, stop=stop), "train")

    unseen = simulate_fields(test_fields, seed=100)  # other seeds: never trained on
    written = {"model": out / "model", "fields": out / "fields"}
    for key, name in (
        ("field", "unseen_field.tif"),
        ("attribution", "attribution.tif"),
        ("regions", "regions.csv"),
        ("features", "features.tif"),
        ("divisions", "divisions.csv"),
        ("evaluation", "evaluation.csv"),
    ):
        written[key] = out / name
    tifffile.imwrite(written["field"], unseen[0].video, metadata={"axes": "TYX"})
    field = read_video(written["field"])
    truth = np.array([(d.t, d.y, d.x) for d in unseen[0].divisions], float)
    np.savetxt(written["divisions"], truth, "%g", ",", header="t,y,x", comments="")
    attribution = export_attribution(
        model,
        field,
        written["attribution"],
        1,
        written["regions"],
        SCORE_TOP_K,
        stop=stop,
    )
    run(attribution, "attribute")
    run(export_features(model, field, written["features"], stop=stop), "features")
    video, annotations = fields_video(unseen)
    scoring = evaluate(
        model,
        video,
        annotations,
        top_k=SCORE_TOP_K,
        radius=SCORE_RADIUS,
        tolerance=SCORE_TOLERANCE,
        crops=8,
        stop=stop,
    )
    table = run(scoring, "evaluate")
    table.to_csv(written["evaluation"])
    return table, written


def summary(table: Any) -> str:
    """Return the demo's report: each method's top-k precision with its 95 % interval."""
    s = table.settings
    head = (
        f"top-{s['k']} attribution regions per frame pair on {s['pairs']} pairs of unseen "
        f"fields ({s['divisions']} divisions): share within {s['radius']:g} px of a "
        f"division of the pair / within ±{s['tolerance']} frames, [95 % interval]"
    )
    lines = [head]
    for name, row in table.rows.items():
        ci = table.intervals[name]
        cells = [
            f"{row[m]:.2f} [{ci[m][0]:.2f}-{ci[m][1]:.2f}]"
            for m in ("precision", "precision_tol")
        ]
        lines.append(f"  {name:<20} {cells[0]:>18}  {cells[1]:>18}")
    for name, d in table.differences.items():
        cells = [
            f"{d[m][0]:+.2f} [{d[m][1]:+.2f}, {d[m][2]:+.2f}]"
            for m in ("precision", "precision_tol")
        ]
        lines.append(f"  TAP - {name:<14} {cells[0]:>18}  {cells[1]:>18}")
    return "\n".join(lines)
