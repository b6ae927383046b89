"""File-level jobs behind ``napari-tarrow segment`` and ``segment-eval``: TIFF in, TIFF out."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..events import Done, Event, FrameDone, relay
from ..io.export import check_output, tiff_stream, write_sidecar
from ..io.video import read_video
from ..model import TapModel
from .labels import LabelsError, labels_from_mask
from .metrics import ObjectScores, object_f1
from .postprocess import frame_labels
from .segment import DivisionSegmenter
from .segmenter_config import SegmentationConfig


def read_array(path: str | Path, what: str) -> np.ndarray:
    """Read a TIFF of labels or masks; a missing or unreadable file is a LabelsError."""
    import tifffile

    path = Path(path)
    if not path.is_file():
        raise LabelsError(f"{what} file {path} does not exist; give a (T, Y, X) TIFF.")
    try:
        return np.asarray(tifffile.imread(path))
    except (OSError, ValueError, tifffile.TiffFileError) as e:
        raise LabelsError(f"cannot read {what} {path} as TIFF: {e}") from e


def probability_path(out: str | Path) -> Path:
    """Where ``segment`` writes the probability next to the labels: ``<stem>_proba.tif``."""
    out = Path(out)
    return out.with_name(f"{out.stem}_proba{out.suffix or '.tif'}")


def segment_files(
    model_dir: str | Path,
    video_path: str | Path,
    labels_path: str | Path,
    out: str | Path,
    config: SegmentationConfig,
    mask_frames: Sequence[int] | None = None,
    mask: bool = False,
    device: str = "auto",
    save_model: str | Path | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[Event]:
    """Train on the labels, predict every frame, write labels and probability TIFFs.

    ``out`` gets the (T, Y, X) int32 labels (aligned with the video; the last Δt
    frames are empty), ``<stem>_proba.tif`` the float32 probability, and a JSON
    sidecar each. With ``mask``, the labels file is a binary mask covering
    ``mask_frames`` (default: all frames). Both TIFFs are written frame by frame as
    frames are predicted: memory does not grow with the video's length. Ends with
    ``Done(summary dict)``.
    """
    out, proba_out = Path(out), probability_path(out)
    check_output(out)
    tap = TapModel.from_folder(model_dir, device=device)
    video = read_video(video_path, tap.config.data.percentiles)
    labels = read_array(labels_path, "labels")
    if mask:
        if labels.shape != video.shape:
            raise LabelsError(
                f"mask {labels_path} has shape {labels.shape} but the video has "
                f"{video.shape}; give a mask of the video's shape (T, Y, X)."
            )
        labels = labels_from_mask(labels, mask_frames)
    seg = DivisionSegmenter(tap, config)
    yield from relay(seg.fit(video, labels, stop))
    del labels
    objects = 0  # label ids are unique across frames
    with (
        tiff_stream(out, video.shape, np.int32, "TYX") as write_labels,
        tiff_stream(proba_out, video.shape, np.float32, "TYX") as write_proba,
    ):
        for event in seg.predict_frames(video, stop=stop):
            if isinstance(event, FrameDone):
                frame = frame_labels(
                    event.data, config.threshold, config.min_size, objects
                )
                objects = max(objects, int(frame.max()))
                write_labels(frame)
                write_proba(event.data)
            yield event
    info: dict[str, Any] = {
        "napari_tarrow": __version__,
        "input": str(video_path),
        "labels": str(labels_path),
        "model": str(model_dir),
        "frame_numbers": video.times.tolist(),
        "trained_on_frames": seg.trained_on,
        "segmentation": config.to_dict(),
    }
    write_sidecar(out, {**info, "kind": "dividing-cell labels"})
    write_sidecar(proba_out, {**info, "kind": "dividing-cell probability"})
    if save_model is not None:
        seg.save(save_model)
    yield Done(
        {
            "labels": out,
            "probability": proba_out,
            "objects": objects,
            "trained_on_frames": seg.trained_on,
        }
    )


def evaluate_files(
    pred_path: str | Path,
    gt_path: str | Path,
    iou: float = 0.5,
    min_size: int = 0,
    mode: str = "2d",
    matching: str = "hungarian",
) -> ObjectScores:
    """Object F1 of a predicted label TIFF against a ground-truth TIFF.

    Each file is an instance label image, or a binary mask (values 0/1 only),
    which is split into connected components.
    """
    arrays = [
        read_array(p, w)
        for p, w in ((pred_path, "prediction"), (gt_path, "ground truth"))
    ]
    pred, gt = (
        a > 0 if a.dtype == bool or a.max(initial=0) <= 1 else a for a in arrays
    )
    return object_f1(gt, pred, iou, mode, matching, min_size)
