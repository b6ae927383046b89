"""Peak picking of attribution maps: separated peaks, none on the frame edge."""

import numpy as np

from napari_tarrow.inference.regions import top_regions


def _edge_ramp_with_blobs() -> np.ndarray:
    """A map rising to the right edge (as zero padding can make it) with two weaker interior blobs."""
    yy, xx = np.mgrid[:64, :80]
    cam = 3.0 * (xx / 79.0) ** 8
    for y, x, a in ((20, 30, 1.0), (45, 40, 0.8)):
        cam += a * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 8.0)
    return cam


def test_top_regions_skips_the_frame_edge_by_default() -> None:
    cam = _edge_ramp_with_blobs()
    peaks = top_regions(cam, k=3, min_distance=6)  # border=EDGE
    assert [tuple(p[:2]) for p in peaks] == [(20.0, 30.0), (45.0, 40.0)]
    assert peaks[0, 2] > peaks[1, 2]


def test_top_regions_border_zero_lets_the_edge_take_every_peak() -> None:
    peaks = top_regions(_edge_ramp_with_blobs(), k=3, min_distance=6, border=0)
    assert len(peaks) == 3 and np.all(peaks[:, 1] == 79)  # the failure mode it avoids
