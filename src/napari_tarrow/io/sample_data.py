"""Synthetic time-lapse of dividing fluorescent nuclei with exact ground truth.

The simulation is built so that cell divisions are the clearly time-asymmetric
events: a mother nucleus condenses into a small, elongated, very bright
metaphase plate over its last two frames, then is replaced by two small bright
daughters on either side of the plate, which move apart and relax back to the
interphase appearance. All other motion (Brownian jitter, slow rotation) is
time-symmetric. Pure numpy; deterministic given ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Division", "SyntheticVideo", "dividing_cells", "sample_data"]

# Mitotic stages as (semi-axis along the plate, semi-axis along the division
# axis, peak intensity); the axes are in units of the cell's interphase radius.
_MOTHER_STAGES = ((1.0, 0.6, 1.8), (1.1, 0.4, 2.8))  # mother's ages cycle-2, cycle-1
_DAUGHTER_STAGES = (
    (0.8, 0.35, 2.2),
    (0.75, 0.5, 1.7),
    (0.75, 0.65, 1.35),
    (0.8, 0.75, 1.15),
)
_PUSH = (1.5, 1.0, 0.5)  # outward displacement (px) of each daughter in its first steps
_SPLIT = 0.75  # half the daughters' separation at birth, in cell radii
_BACKGROUND = 0.1
_JITTER = 0.6  # std of the Brownian step (px per frame)
_CYCLE = (22, 38)  # range of cell-cycle lengths (frames)
_RADIUS = (5.0, 6.5)
_AREA_PER_CELL = 600  # population cap: one cell per this many pixels
_MAX_LABEL = int(np.iinfo(np.uint16).max)


@dataclass(frozen=True)
class Division:
    """One division: the mother's last frame is t - 1, the daughters' first frame is t.

    Attributes
    ----------
    t : int
        First frame in which the daughters exist.
    y, x : float
        Midpoint (pixels) of the two daughters at frame ``t``.
    mother_y, mother_x : float
        Position (pixels) of the mother at frame ``t - 1``.
    """

    t: int
    y: float
    x: float
    mother_y: float
    mother_x: float


@dataclass(frozen=True)
class SyntheticVideo:
    """A synthetic video with its ground truth.

    Attributes
    ----------
    video : np.ndarray
        (T, Y, X) float32 raw intensities (background ~0.1, nuclei ~1, noise).
    labels : np.ndarray
        (T, Y, X) uint16 instance masks; one id per cell track (0 = background).
    divisions : tuple of Division
        All division events, sorted by time.
    """

    video: np.ndarray
    labels: np.ndarray
    divisions: tuple[Division, ...]

    def division_mask(self, radius: float = 8.0, frames: str = "both") -> np.ndarray:
        """Boolean discs around every division.

        Parameters
        ----------
        radius : float
            Disc radius in pixels (> 0).
        frames : {"both", "after"}
            ``"both"``: discs at frame ``t - 1`` around the mother and at frame
            ``t`` around the daughters' midpoint; ``"after"``: only at ``t``.

        Returns
        -------
        np.ndarray
            (T, Y, X) bool mask.
        """
        if frames not in ("both", "after"):
            raise ValueError(f"frames must be 'both' or 'after', got {frames!r}")
        if not radius > 0:
            raise ValueError(f"radius must be > 0, got {radius}")
        mask = np.zeros(self.video.shape, dtype=bool)
        yy, xx = np.ogrid[: mask.shape[1], : mask.shape[2]]
        for d in self.divisions:
            mask[d.t] |= (yy - d.y) ** 2 + (xx - d.x) ** 2 <= radius**2
            if frames == "both":
                dist2 = (yy - d.mother_y) ** 2 + (xx - d.mother_x) ** 2
                mask[d.t - 1] |= dist2 <= radius**2
        return mask


@dataclass
class _Cell:
    label: int
    y: float
    x: float
    radius: float
    cycle: int
    age: int
    theta: float  # orientation of the long axis (in mitosis: of the plate)
    elong: float
    brightness: float
    # chromatin texture: rows of (u, v, amplitude), u and v in units of the semi-axes
    spots: np.ndarray
    push: tuple[float, float] = (0.0, 0.0)  # unit vector away from the sister


def _new_cell(
    rng: np.random.Generator,
    label: int,
    pos: tuple[float, float],
    radius: float,
    theta: float,
    age: int | None = None,
) -> _Cell:
    """Create a cell with random cycle length and appearance (random age if None)."""
    cycle = int(rng.integers(*_CYCLE))
    if age is None:
        age = int(rng.integers(len(_DAUGHTER_STAGES), cycle))
    r, a = 0.6 * np.sqrt(rng.uniform(size=4)), rng.uniform(0, 2 * np.pi, size=4)
    amp = rng.uniform(-0.25, 0.3, size=4)
    spots = np.stack([r * np.cos(a), r * np.sin(a), amp], axis=1).astype(np.float32)
    elong, bright = rng.uniform(1.0, 1.25), rng.uniform(0.85, 1.15)
    y, x = pos
    return _Cell(label, y, x, radius, cycle, age, theta, elong, bright, spots)


def _appearance(c: _Cell) -> tuple[float, float, float]:
    """Semi-axes (along and across ``theta``) and peak intensity at the current age."""
    if c.age < len(_DAUGHTER_STAGES) and c.push != (0.0, 0.0):
        a, b, peak = _DAUGHTER_STAGES[c.age]
    elif c.age >= c.cycle - len(_MOTHER_STAGES):
        a, b, peak = _MOTHER_STAGES[c.age - c.cycle + len(_MOTHER_STAGES)]
    else:
        r = c.radius * (0.9 + 0.1 * c.age / c.cycle)  # slow interphase growth
        return r * c.elong, r / c.elong, c.brightness
    return c.radius * a, c.radius * b, peak  # condensed chromatin: uniform brightness


def _render(cells: list[_Cell], image: np.ndarray, labels: np.ndarray) -> None:
    """Draw the cells (max-projected) into ``image`` and their masks into ``labels``."""
    for c in cells:
        ra, rb, peak = (np.float32(p) for p in _appearance(c))
        h = int(np.ceil(max(ra, rb))) + 3
        centre = np.array([int(c.y), int(c.x)])
        y0, x0 = np.maximum(centre - h, 0)
        y1, x1 = np.minimum(centre + h + 2, image.shape)
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(c.y)
        dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(c.x)
        cos, sin = np.float32(np.cos(c.theta)), np.float32(np.sin(c.theta))
        u, v = (dx * cos + dy * sin) / ra, (dy * cos - dx * sin) / rb
        rho2 = u**2 + v**2
        rho = np.sqrt(rho2)
        edge = 1.0 / (1.0 + np.exp(np.clip((rho - 1.0) * (ra + rb) / 1.5, -30, 30)))
        su, sv, amp = c.spots.T[..., None, None]  # chromatin spots, (4, 1, 1) each
        spots = amp * np.exp(-6.0 * ((u - su) ** 2 + (v - sv) ** 2))
        blob = peak * edge * np.clip(1.0 - 0.2 * rho2, 0.0, None) * (1.0 + spots.sum(0))
        np.maximum(image[y0:y1, x0:x1], blob, out=image[y0:y1, x0:x1])
        labels[y0:y1, x0:x1][rho < 1.0] = c.label


def _init_cells(
    rng: np.random.Generator, n_cells: int, shape: tuple[int, int]
) -> list[_Cell]:
    """Place ``n_cells`` interphase cells at random, avoiding overlaps if possible."""
    cells: list[_Cell] = []
    margin = _RADIUS[1]
    for label in range(1, n_cells + 1):
        for _ in range(50):
            y, x = rng.uniform(margin, np.array(shape) - 1 - margin)
            if all((c.y - y) ** 2 + (c.x - x) ** 2 > (3 * margin) ** 2 for c in cells):
                break
        radius, theta = rng.uniform(*_RADIUS), rng.uniform(0, np.pi)
        cells.append(_new_cell(rng, label, (y, x), radius, theta))
    return cells


def _divide(
    rng: np.random.Generator, mother: _Cell, next_label: int, shape: tuple[int, int]
) -> tuple[_Cell, _Cell]:
    """Replace a condensed mother by two daughters on either side of its plate."""
    if next_label + 1 > _MAX_LABEL:
        raise ValueError(
            "too many cell tracks for uint16 labels; reduce n_frames or n_cells"
        )
    # division (spindle) axis as (dy, dx): normal to the long axis of the plate
    axis = np.array([np.sin(mother.theta), -np.cos(mother.theta)])
    offset = np.outer([1.0, -1.0], axis) * (_SPLIT * mother.radius)
    pair = np.array([mother.y, mother.x]) + offset
    # near a border, shift both daughters into the field (keeps them apart)
    hi = np.array(shape) - 1.0
    pair += np.clip(-pair.min(0), 0.0, None) + np.clip(hi - pair.max(0), None, 0.0)
    daughters = []
    for i, sign in enumerate((1.0, -1.0)):
        y, x = pair[i].tolist()
        radius = float(np.clip(mother.radius * rng.uniform(0.95, 1.05), *_RADIUS))
        d = _new_cell(rng, next_label + i, (y, x), radius, mother.theta, age=0)
        d.push = (sign * float(axis[0]), sign * float(axis[1]))
        daughters.append(d)
    return daughters[0], daughters[1]


def _move(
    rng: np.random.Generator,
    cells: list[_Cell],
    movable: np.ndarray,
    shape: tuple[int, int],
) -> None:
    """Brownian jitter, push of young daughters, soft repulsion, reflecting borders."""
    pos = np.array([[c.y, c.x] for c in cells])
    radii = np.array([c.radius for c in cells])
    step = rng.normal(0.0, _JITTER, size=pos.shape)
    for i, c in enumerate(cells):
        if c.push != (0.0, 0.0) and 1 <= c.age <= len(_PUSH):
            step[i] += _PUSH[c.age - 1] * np.array(c.push)
    diff = pos[:, None, :] - pos[None, :, :]
    dist = np.maximum(np.linalg.norm(diff, axis=-1), 1e-6)
    overlap = np.clip(1.05 * (radii[:, None] + radii[None, :]) - dist, 0.0, None)
    np.fill_diagonal(overlap, 0.0)
    step += 0.3 * np.sum((overlap / dist)[..., None] * diff, axis=1)
    lo, hi = _RADIUS[1], np.array(shape, dtype=float) - 1 - _RADIUS[1]
    new = pos + step
    new = np.clip(hi - np.abs(hi - (lo + np.abs(new - lo))), 0.0, hi + lo)
    for i, c in enumerate(cells):
        if movable[i]:
            c.y, c.x = float(new[i, 0]), float(new[i, 1])
            if c.age < c.cycle - len(_MOTHER_STAGES) and c.age >= len(_DAUGHTER_STAGES):
                c.theta += rng.normal(0.0, 0.03)


def _step(
    rng: np.random.Generator,
    cells: list[_Cell],
    t: int,
    shape: tuple[int, int],
    max_cells: int,
    next_label: int,
) -> tuple[list[_Cell], list[Division], int]:
    """Advance the population from frame ``t`` to ``t + 1``."""
    n_mitotic = sum(c.age >= c.cycle - len(_MOTHER_STAGES) for c in cells)
    budget = max_cells - len(cells) - n_mitotic  # new mitoses allowed
    new_cells: list[_Cell] = []
    newborn: list[bool] = []
    births: list[tuple[_Cell, _Cell, float, float]] = []
    for c in cells:
        if c.age == c.cycle - 1:
            d1, d2 = _divide(rng, c, next_label, shape)
            next_label += 2
            new_cells += [d1, d2]
            newborn += [True, True]
            births.append((d1, d2, c.y, c.x))
            continue
        if c.age == c.cycle - len(_MOTHER_STAGES) - 1:  # last interphase frame
            start = budget > 0  # otherwise pause: the field is crowded
            budget -= start
            c.age += start
        else:
            c.age += 1
        new_cells.append(c)
        newborn.append(False)
    _move(rng, new_cells, ~np.array(newborn), shape)
    divisions = [
        Division(t + 1, (d1.y + d2.y) / 2, (d1.x + d2.x) / 2, my, mx)
        for d1, d2, my, mx in births
    ]
    return new_cells, divisions, next_label


def _illumination(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Smooth, static uneven illumination (gradient plus vignetting), ~0.8-1.15."""
    yy, xx = np.meshgrid(
        np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij"
    )
    gy, gx = rng.uniform(-0.08, 0.08, size=2)
    return (1.0 + gy * yy + gx * xx - 0.07 * (yy**2 + xx**2)).astype(np.float32)


def _validate(
    n_frames: int, shape: tuple[int, int], n_cells: int, noise: float
) -> None:
    if int(n_frames) != n_frames or n_frames < 2:
        raise ValueError(f"n_frames must be an integer >= 2, got {n_frames!r}")
    if len(shape) != 2 or any(int(s) != s or s < 32 for s in shape):
        raise ValueError(f"shape must be two integers, each >= 32, got {shape!r}")
    if int(n_cells) != n_cells or n_cells < 1:
        raise ValueError(f"n_cells must be an integer >= 1, got {n_cells!r}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")


def dividing_cells(
    n_frames: int = 64,
    shape: tuple[int, int] = (256, 256),
    n_cells: int = 24,
    seed: int = 0,
    noise: float = 0.05,
) -> SyntheticVideo:
    """Simulate a 2D+t video of fluorescent nuclei that move, grow and divide.

    Parameters
    ----------
    n_frames : int
        Number of frames T (>= 2).
    shape : tuple of int
        Frame size (Y, X), each >= 32.
    n_cells : int
        Number of cells in the first frame (>= 1). The population is capped at
        one cell per 600 px^2 (or ``1.5 * n_cells``, if more): at the cap, cells
        wait before entering mitosis, so divisions stop in long videos.
    seed : int
        Seed of ``np.random.default_rng``; the output is deterministic.
    noise : float
        Scale of the signal-dependent Gaussian noise (>= 0).

    Returns
    -------
    SyntheticVideo
        The raw video, instance labels and the exact division events.
    """
    _validate(n_frames, shape, n_cells, noise)
    shape = (int(shape[0]), int(shape[1]))
    rng = np.random.default_rng(seed)
    max_cells = max(int(1.5 * n_cells), shape[0] * shape[1] // _AREA_PER_CELL)
    cells = _init_cells(rng, int(n_cells), shape)
    next_label = int(n_cells) + 1
    clean = np.zeros((int(n_frames), *shape), dtype=np.float32)
    labels = np.zeros((int(n_frames), *shape), dtype=np.uint16)
    divisions: list[Division] = []
    for t in range(int(n_frames)):
        _render(cells, clean[t], labels[t])
        if t + 1 < n_frames:
            cells, new, next_label = _step(rng, cells, t, shape, max_cells, next_label)
            divisions += new
    image = _illumination(rng, shape) * (clean + _BACKGROUND)
    gauss = rng.standard_normal(image.shape, dtype=np.float32)
    image = np.clip(image + noise * np.sqrt(0.5 + image) * gauss, 0.0, None)
    return SyntheticVideo(image.astype(np.float32), labels, tuple(divisions))


#: The sample's simulation: a crowded field, so that a few CPU minutes of training see
#: many divisions. They happen while the field fills up (about 12 frames), so the video
#: ends there: the validation frames (the last ones) still hold divisions.
SAMPLE = {"n_frames": 12, "shape": (256, 256), "n_cells": 120, "seed": 0}


def sample_video() -> SyntheticVideo:
    """Return the simulation behind the npe2 sample data (video and true divisions)."""
    return dividing_cells(**SAMPLE)


#: Name of the sample's points layer; the frame of a point is the map that shows it.
TRUTH_LAYER = "true divisions (synthetic, map frames)"


def sample_data() -> list[tuple]:
    """npe2 sample-data provider: the video and, to check results against, its divisions.

    Returns
    -------
    list of tuple
        ``[(video, {"name": "dividing cells (synthetic)"}, "image"),
        (points, {"name": TRUTH_LAYER, ...}, "points")]``. The points follow the
        attribution maps' convention: map t is the pair (t, t+1), so a division
        whose daughters appear at frame t is drawn at t - 1, the mother's last
        frame; the ``daughters_frame`` feature keeps t.
    """
    sim = sample_video()
    points = np.array([(d.t - 1, d.y, d.x) for d in sim.divisions], float).reshape(
        -1, 3
    )
    style = {
        "name": TRUTH_LAYER,
        "size": 14,
        "face_color": "transparent",
        "border_color": "lime",
        "visible": False,
        "features": {"daughters_frame": [d.t for d in sim.divisions]},
        "metadata": {
            "convention": "frame t - 1 of a division whose daughters appear at frame "
            "t: the attribution map of the pair (t - 1, t)"
        },
    }
    return [
        (sim.video, {"name": "dividing cells (synthetic)"}, "image"),
        (points, style, "points"),
    ]
