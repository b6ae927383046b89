"""Does test-time augmentation sharpen the Grad-CAM peaks? Checked on frames outside the test set.

    python benchmarks/tta_validation.py /work/models/hela_heldout ../shared/data/hela-ctc02/02 \
        --tracks ../shared/data/hela-ctc02/02_GT/TRA/man_track.txt --frames 21 91

For each pair with a division, the signed Grad-CAM of the 8 flips and quarter turns of the
pair (each mapped back) is averaged before the absolute value: the first-order contribution
of each pixel to the mean logit over the transforms. Its top-k peaks are scored as
``napari-tarrow evaluate`` scores them, beside the plain map and the frame difference, with
paired bootstrap intervals over the pairs. Costs 8x the plain map.
"""

from __future__ import annotations

import argparse

import numpy as np

from napari_tarrow.evaluation import pairs_with_divisions
from napari_tarrow.evaluation.controls import frame_difference
from napari_tarrow.evaluation.statistics import PEAK_METRICS, bootstrap, pair_counts
from napari_tarrow.inference.attribution import gradcam
from napari_tarrow.inference.features import frame_features
from napari_tarrow.inference.regions import peak_rows
from napari_tarrow.io.ctc import read_ctc
from napari_tarrow.io.video import read_video
from napari_tarrow.model import TapModel

DELTA, TOLERANCE = 1, 2  # as in real_data.md

#: The dihedral group of the square: (quarter turns, mirrored).
DIHEDRAL = [(k, m) for m in (False, True) for k in range(4)]


def transform(x: np.ndarray, k: int, mirrored: bool) -> np.ndarray:
    """Mirror the columns (if asked), then turn by k quarter turns."""
    return np.ascontiguousarray(np.rot90(x[:, ::-1] if mirrored else x, k))


def untransform(x: np.ndarray, k: int, mirrored: bool) -> np.ndarray:
    """Inverse of :func:`transform`."""
    x = np.rot90(x, -k)
    return np.ascontiguousarray(x[:, ::-1] if mirrored else x)


def signed_map(model: TapModel, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Signed Grad-CAM (Y, X) of the normalised frames a, b."""
    z0, z1 = frame_features(model, a), frame_features(model, b)
    return gradcam(model, z0, z1, signed=True).cpu().numpy()


def main() -> None:
    """Score plain and augmented maps on the pairs of the given frames."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("video")
    p.add_argument("--tracks", required=True)
    p.add_argument(
        "--frames", type=int, nargs=2, required=True, metavar=("FIRST", "LAST")
    )
    p.add_argument("--top-k", type=int, default=6)
    p.add_argument("--radius", type=float, default=25.0)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    model = TapModel.from_folder(a.model, device=a.device)
    video = read_video(a.video, model.config.data.percentiles)
    truth = read_ctc(a.tracks)
    pairs, own = pairs_with_divisions(video, truth.divisions, DELTA, tuple(a.frames))
    starts = video.times[pairs[:, 0]]
    dist = max(1, round(a.radius))
    tables: dict[str, list[np.ndarray]] = {
        "plain": [],
        "tta": [],
        "frame difference": [],
    }
    for (i, j), t0 in zip(pairs, starts, strict=True):
        x0, x1 = video.frame(i), video.frame(j)
        maps = [
            untransform(signed_map(model, transform(x0, *g), transform(x1, *g)), *g)
            for g in DIHEDRAL
        ]
        for name, m in (
            ("plain", np.abs(maps[0])),
            ("tta", np.abs(np.mean(maps, axis=0))),
            ("frame difference", frame_difference(x0, x1, a.radius)),
        ):
            tables[name].append(peak_rows(m, int(t0), a.top_k, dist))
        print(f"pair {t0}-{t0 + DELTA} done", flush=True)
    counts = {
        name: [
            pair_counts(
                np.concatenate(t),
                truth.divisions,
                own,
                starts,
                DELTA,
                a.radius,
                TOLERANCE,
            )
        ]
        for name, t in tables.items()
    }
    intervals, differences = bootstrap(counts, "tta")
    print(f"{len(pairs)} pairs, frames {a.frames[0]}-{a.frames[1]}, top-{a.top_k}")
    for name, c in counts.items():
        m = c[0].metrics()
        print(
            f"{name:<18}"
            + "".join(
                f"  {k} {m[k]:.3f} [{intervals[name][k][0]:.3f}, {intervals[name][k][1]:.3f}]"
                for k in PEAK_METRICS
            )
        )
    for name, d in differences.items():
        print(
            f"tta - {name:<12}"
            + "".join(
                f"  {k} {d[k][0]:+.3f} [{d[k][1]:+.3f}, {d[k][2]:+.3f}]"
                for k in PEAK_METRICS
            )
        )


if __name__ == "__main__":
    main()
