"""How close Grad-CAM maps from bf16 z come to those from fp32 z, trained and untrained.

    python benchmarks/bf16_attribution.py RUN/snapshots/epoch_0128.safetensors=VIDEO ...

Each argument is a model folder, or a weights file in a learning-curve run's
``snapshots/`` (the folder's config), then ``=`` and the video it was trained on. For
each, the maps of a few pairs are computed with z in fp32 and in bf16 autocast and
correlated pixel by pixel; the same for a fresh network of the same configuration,
the case that :data:`~napari_tarrow.inference.attribution.MIN_BF16_CORRELATION`
guards against.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from napari_tarrow.evaluation.controls import untrained_like
from napari_tarrow.inference.attribution import attribute
from napari_tarrow.io.video import Video, read_video
from napari_tarrow.model import TapModel


def load(spec: Path) -> TapModel:
    """A model folder, or a snapshot's weights in its run's folder."""
    if spec.is_dir():
        return TapModel.from_folder(spec, device="cpu")
    from safetensors.torch import load_file

    model = TapModel.from_folder(spec.parent.parent, device="cpu", which="last")
    model.net.load_state_dict(load_file(str(spec)))
    return model


def correlations(model: TapModel, video: Video, pairs: np.ndarray) -> list[float]:
    """Per pair, the correlation of the map from bf16 z with the map from fp32 z."""
    maps = {
        amp: [
            e.data
            for e in attribute(model, video, pairs=pairs, amp=amp)
            if hasattr(e, "data")
        ]
        for amp in (False, True)
    }
    return [
        float(np.corrcoef(a.ravel(), b.ravel())[0, 1])
        for a, b in zip(maps[False], maps[True], strict=True)
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="MODEL_OR_SNAPSHOT=VIDEO")
    p.add_argument("--pairs", type=int, default=3, help="pairs spread over the video")
    a = p.parse_args()
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'model':<58} {'trained: min, mean':>20} {'untrained: min, mean':>22}")
    for spec in a.runs:
        where, video_path = spec.split("=")
        model = load(Path(where))
        video = read_video(video_path, model.config.data.percentiles)
        all_pairs = video.pairs(1)
        pick = np.linspace(0, len(all_pairs) - 1, a.pairs).round().astype(int)
        row = [
            correlations(m, video, all_pairs[pick])
            for m in (model, untrained_like(model))
        ]
        cells = [f"{min(r):.4f}, {np.mean(r):.4f}" for r in row]
        print(f"{where[-58:]:<58} {cells[0]:>20} {cells[1]:>22}", flush=True)


if __name__ == "__main__":
    main()
