"""Cell Tracking Challenge ground truth: lineage (``man_track.txt``), marker masks, divisions.

``man_track.txt`` has one track per line, ``L B E P``: label, first frame, last
frame, parent label (0 = none). The marker masks ``man_trackNNN.tif`` beside it
hold label L at frame NNN. A division is a parent with two or more children;
it happens between the parent's last frame and the daughters' first. Masks may
be missing for some frames (partial copies of a dataset): positions then come
from the nearest frame whose mask holds the label.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from skimage.filters import gaussian, threshold_otsu

from ..errors import TarrowError

_MASK_NAME = re.compile(r"man_track(\d+)\.tiff?$", re.IGNORECASE)


class TracksError(TarrowError):
    """The lineage file or its marker masks are missing or malformed."""


@dataclass(frozen=True)
class Division:
    """One division: the daughters' first frame is ``t``, the event lies just before it.

    Attributes
    ----------
    t : int
        First frame of the earliest daughter.
    daughters_yx : tuple of (y, x)
        Each daughter's centroid at (or nearest to) its first frame, in pixels.
    parent_yx : (y, x) or None
        The parent's centroid at (or nearest to) its last frame; None if no mask holds it.
    parent, daughters : int, tuple of int
        Track labels (0 and () when the division does not come from a lineage).
    """

    t: int
    daughters_yx: tuple[tuple[float, float], ...]
    parent_yx: tuple[float, float] | None = None
    parent: int = 0
    daughters: tuple[int, ...] = ()

    @property
    def points(self) -> np.ndarray:
        """(P, 2) positions (y, x) that count as this division: parent and daughters."""
        pts = [*([self.parent_yx] if self.parent_yx else []), *self.daughters_yx]
        return np.asarray(pts, float).reshape(-1, 2)

    @property
    def center(self) -> tuple[float, float]:
        """Mean of the daughters' positions (where the mitotic figure is at frame ``t``)."""
        y, x = np.mean(self.daughters_yx, axis=0)
        return float(y), float(x)


@dataclass(frozen=True)
class Annotations:
    """Ground truth for evaluation: divisions and marker (label) images by frame number.

    ``markers`` may be lazy (CTC masks are read on access) and may lack frames.
    """

    divisions: tuple[Division, ...]
    markers: Mapping[int, np.ndarray]


class MarkerFiles(Mapping[int, np.ndarray]):
    """Frame number -> marker mask, read from ``man_trackNNN.tif`` on access (recent ones cached).

    With ``shape`` (the video's frame size), a mask of another size is a TracksError.
    """

    def __init__(
        self, files: dict[int, Path], shape: tuple[int, int] | None = None
    ) -> None:
        self.files = dict(sorted(files.items()))
        self.shape = None if shape is None else tuple(shape)
        self._read = lru_cache(maxsize=4)(self._load)

    def _load(self, t: int) -> np.ndarray:
        import tifffile

        try:
            mask = tifffile.imread(self.files[t])
        except (OSError, ValueError) as e:
            raise TracksError(f"cannot read marker mask {self.files[t]}: {e}") from e
        if mask.ndim != 2:
            raise TracksError(
                f"{self.files[t].name} has shape {mask.shape}; expected a 2D label image."
            )
        if self.shape is not None and mask.shape != self.shape:
            raise TracksError(
                f"{self.files[t]} is {mask.shape[0]}x{mask.shape[1]} pixels but the "
                f"video's frames are {self.shape[0]}x{self.shape[1]}; give the ground "
                "truth of this video."
            )
        return mask

    def __getitem__(self, t: int) -> np.ndarray:
        return self._read(int(t))

    def __contains__(self, t: object) -> bool:
        return t in self.files

    def __iter__(self) -> Iterator[int]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)


def read_lineage(path: str | Path) -> np.ndarray:
    """(N, 4) int array of ``L B E P`` rows from a CTC ``man_track.txt``."""
    path = Path(path)
    if not path.is_file():
        raise TracksError(
            f"{path} does not exist; give the lineage file of a Cell Tracking Challenge "
            "ground truth (<seq>_GT/TRA/man_track.txt)."
        )
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise TracksError(f"{path} is not a CTC lineage (a text file): {e}") from e
    rows = [_lineage_row(path, n, line) for n, line in enumerate(text.splitlines(), 1)]
    tracks = np.array([r for r in rows if r], dtype=np.int64).reshape(-1, 4)
    if tracks.size == 0:
        raise TracksError(
            f"{path} is not a CTC lineage: it holds no line of 4 integers 'L B E P'."
        )
    if np.any(tracks[:, 2] < tracks[:, 1]) or np.any(tracks < 0):
        raise TracksError(
            f"{path}: a track ends before it begins or has a negative number; "
            "each line must be 'L B E P' with 0 <= B <= E."
        )
    labels, counts = np.unique(tracks[:, 0], return_counts=True)
    for bad, why in (
        (labels[labels == 0], "is 0, the background"),
        (labels[counts > 1], "is on more than one line"),
        (tracks[tracks[:, 0] == tracks[:, 3], 0], "is its own parent"),
    ):
        if len(bad):
            raise TracksError(
                f"{path}: track {bad[0]} {why}; each track has one line 'L B E P' "
                "with a label L >= 1 and a parent P other than L (0: none)."
            )
    return tracks


def _lineage_row(path: Path, n: int, line: str) -> list[int]:
    """Line ``n`` of a lineage as [L, B, E, P]; [] for a blank or comment line."""
    fields = line.split("#")[0].split()
    if not fields:
        return []
    try:
        row = [int(f) for f in fields]
    except ValueError:
        row = []
    if len(row) != 4 or max(map(abs, row)) >= 2**31:
        raise TracksError(
            f"{path} is not a CTC lineage: line {n} ({line.strip()[:40]!r}) is not 4 "
            "integers 'L B E P' (label, first frame, last frame, parent)."
        )
    return row


def marker_files(
    folder: str | Path, shape: tuple[int, int] | None = None
) -> MarkerFiles:
    """Find the ``man_trackNNN.tif`` masks in ``folder``, by frame number."""
    files = {
        int(m.group(1)): f
        for f in Path(folder).iterdir()
        if (m := _MASK_NAME.match(f.name))
    }
    return MarkerFiles(files, shape)


def read_ctc(path: str | Path, shape: tuple[int, int] | None = None) -> Annotations:
    """Divisions and marker masks from ``man_track.txt`` and the masks beside it.

    ``shape`` is the video's frame size (Y, X): masks of another size are refused.
    """
    path = Path(path)
    tracks = read_lineage(path)
    markers = marker_files(path.parent, shape)
    if not markers:
        raise TracksError(
            f"no man_trackNNN.tif marker masks beside {path}; division positions come "
            "from them: keep the lineage file in its TRA folder."
        )
    return Annotations(find_divisions(tracks, markers), markers)


def find_divisions(
    tracks: np.ndarray, markers: Mapping[int, np.ndarray]
) -> tuple[Division, ...]:
    """Divisions (parents with >= 2 children) with positions from the nearest masks.

    Daughters are placed at their first frame, the parent at its last frame,
    each from the nearest mask frame (inside the track's life) that holds the
    label. A daughter that no mask holds is left out; a division with no
    placeable daughter is left out.
    """
    life = {int(label): (int(b), int(e)) for label, b, e, _ in tracks}
    parents, counts = np.unique(tracks[tracks[:, 3] > 0, 3], return_counts=True)
    centroids = _Centroids(markers)
    out = []
    for parent in parents[counts >= 2]:
        children = sorted(int(c) for c in tracks[tracks[:, 3] == parent, 0])
        placed = [
            yx
            for c in children
            if (yx := centroids.nearest(c, life[c], life[c][0])) is not None
        ]
        if not placed:
            continue
        p_life = life.get(int(parent))
        parent_yx = (
            centroids.nearest(int(parent), p_life, p_life[1]) if p_life else None
        )
        out.append(
            Division(
                t=min(life[c][0] for c in children),
                daughters_yx=tuple(placed),
                parent_yx=parent_yx,
                parent=int(parent),
                daughters=tuple(children),
            )
        )
    return tuple(sorted(out, key=lambda d: (d.t, d.parent)))


class _Centroids:
    """Centroids of every label per mask frame, computed once per frame."""

    def __init__(self, markers: Mapping[int, np.ndarray]) -> None:
        self.markers = markers
        self.frames = np.array(sorted(markers), dtype=int)
        self._cache: dict[int, dict[int, tuple[float, float]]] = {}

    def at(self, t: int) -> dict[int, tuple[float, float]]:
        """Label -> (y, x) centroid in the mask of frame ``t``."""
        if t not in self._cache:
            self._cache[t] = label_centroids(self.markers[t])
        return self._cache[t]

    def nearest(
        self, label: int, life: tuple[int, int], target: int
    ) -> tuple[float, float] | None:
        """Centroid of ``label`` in the mask nearest to frame ``target`` within ``life``."""
        inside = self.frames[(self.frames >= life[0]) & (self.frames <= life[1])]
        for t in inside[np.argsort(np.abs(inside - target), kind="stable")]:
            yx = self.at(int(t)).get(label)
            if yx is not None:
                return yx
        return None


def label_centroids(mask: np.ndarray) -> dict[int, tuple[float, float]]:
    """Label -> (y, x) centroid of each nonzero label of a 2D mask."""
    idx = np.flatnonzero(mask)
    labels = mask.ravel()[idx].astype(np.int64)
    y, x = np.divmod(idx, mask.shape[1])
    n = np.bincount(labels)
    sy, sx = np.bincount(labels, weights=y), np.bincount(labels, weights=x)
    return {
        int(k): (float(sy[k] / n[k]), float(sx[k] / n[k])) for k in np.flatnonzero(n)
    }


def foreground(
    frame: np.ndarray, markers: np.ndarray | None = None, min_cover: float = 0.5
) -> np.ndarray:
    """Foreground (nuclei) pixels of a normalised frame, (Y, X) bool.

    The marker mask when it covers at least ``min_cover`` of the nuclei (a full
    segmentation); sparse markers (CTC TRA dots, or none) fall back to Otsu on
    the smoothed intensity, joined with the markers.
    """
    smooth = gaussian(np.asarray(frame, np.float32), sigma=2, preserve_range=True)
    bright = smooth > threshold_otsu(smooth)
    if markers is None:
        return bright
    marked = markers > 0
    if marked.sum() >= min_cover * bright.sum():
        return marked
    return bright | marked
