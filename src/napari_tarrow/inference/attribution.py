"""Grad-CAM of the time-arrow decision with respect to the dense features z.

For a pair (t, t+Δt) the score is the log-odds of the forward order: the logit
of frame t being the earlier one minus that of frame t+Δt, the quantity the
prediction depends on. Channel weights α_{f,c} are its gradients with respect
to frame f's features, summed over pixels, as in the reference. The map is
|Σ_f Σ_c α_{f,c} (z_{f,c} - mean z_{f,c})|: each pixel's first-order
contribution to the score, from both frames together. Deviations from the
reference (the class logit alone, and Σ_f |Σ_c α_{f,c} z_{f,c}|), all measured
on synthetic videos:

- the log-odds rather than one logit: the head is equivariant, so the log-odds
  is antisymmetric in the two frames and whatever is the same in both cancels
  exactly to first order; the single logit also carries the symmetric part,
  which lit up static bright cells (one model of the learning test: top-2
  precision on divisions 0.09 with the logit, 0.33 with the log-odds; over four
  trainings 0.26-0.35 against 0.09-0.40);
- centring each channel on its frame mean (z is far from zero on the
  background, and the uncentred map of a briefly trained model lit up the
  background);
- the absolute value after the sum over the two frames rather than per frame,
  so that what does not change between the frames cancels (per frame, the top
  regions of some longer-trained models drifted to the background).

z is computed once per frame without gradients and reused for the pairs
(t-Δt, t) and (t, t+Δt); gradients flow through the head only. The head is
pixel-wise before an average pooling and an affine readout, so the gradients
are computed tile by tile exactly, with bounded memory. Where the device computes
bf16 natively, z is computed in bf16 autocast (twice as fast on an AVX512-BF16
CPU) once the first pair's map has been checked against its fp32 map.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from .._version import __version__
from ..config import TOP_K
from ..device import amp_choice
from ..errors import Cancelled, VideoError, stopped_means
from ..events import Checkpoint, Done, Event, FrameDone, Progress
from ..io.export import check_output, tiff_stream, write_sidecar
from ..io.video import Video
from ..model import TapModel
from .features import DEFAULT_TILE, auto_tile, frame_features, inference_copy
from .regions import regions_table, write_regions_csv
from .tiling import AdaptiveTile, tile_grid, tile_info


def gradcam(
    model: TapModel,
    z0: torch.Tensor,
    z1: torch.Tensor,
    tile: int | AdaptiveTile | None = DEFAULT_TILE,
    signed: bool = False,
) -> torch.Tensor:
    """Grad-CAM map (Y, X) for features z0, z1 (C, Y, X) of frames t and t+Δt.

    Tile by tile, so memory beyond z stays bounded; out of device memory, the
    tile side is halved and the map recomputed. ``signed`` keeps the sign of
    each contribution (before the absolute value), e.g. to average maps.
    """
    head = model.net.head
    head.eval()
    z = torch.stack([z0, z1])[None]  # (1, 2, C, Y, X)
    n_pixels = z.shape[-1] * z.shape[-2]
    mean = z.mean(dim=(-2, -1), keepdim=True)

    def tiled(side: int) -> torch.Tensor:
        tiles = tile_grid(z.shape[-2:], side, 0, 1)
        alpha = torch.zeros(z.shape[:3], device=z.device)
        for t in tiles:
            zt = z[(..., *t.dest)].detach().requires_grad_(True)
            pooled = head.pixelwise(zt).sum(dim=(-2, -1)) / n_pixels
            logits = head.readout(pooled)[0]
            (g,) = torch.autograd.grad(logits[0] - logits[1], zt)  # log-odds forward
            alpha += g.sum(dim=(-2, -1))
        cam = torch.empty(z.shape[-2:], device=z.device)
        with torch.no_grad():
            for t in tiles:
                cam[t.dest] = cam_from_gradients(
                    alpha, z[(..., *t.dest)], mean, signed
                )[0]
        return cam

    side = AdaptiveTile.of(tile).choose(lambda: auto_tile(model, z.shape[-2:]))
    return side.run(tiled, "Grad-CAM")


def cam_from_gradients(
    alpha: torch.Tensor,
    z: torch.Tensor,
    mean: torch.Tensor | None = None,
    signed: bool = False,
) -> torch.Tensor:
    """Map (B, Y, X) from channel weights α (B, T, C) and features z (B, T, C, Y, X).

    ``mean`` (B, T, C, 1, 1) is each channel's frame mean; pass it when ``z`` is a tile.
    """
    centred = z - (z.mean(dim=(-2, -1), keepdim=True) if mean is None else mean)
    cam = torch.einsum("btc,btcyx->byx", alpha, centred)
    return cam if signed else cam.abs()


#: Least correlation of the first pair's map from bf16 z with its map from fp32 z for
#: the rest to be computed in bf16. Trained models reached 0.997-0.9999 (HeLa,
#: sim-ctc01, after one epoch or 128); untrained ones 0.4-0.8, their maps resting
#: on differences of z between the frames below bf16's resolution.
MIN_BF16_CORRELATION = 0.99


def attribute(
    model: TapModel,
    video: Video,
    delta: int = 1,
    tile: int | AdaptiveTile | None = DEFAULT_TILE,
    stop: Callable[[], bool] = lambda: False,
    pairs: np.ndarray | None = None,
    amp: bool | None = None,
) -> Iterator[Event]:
    """Grad-CAM for every pair (t, t+Δt) of ``video``.

    Yields ``FrameDone(t, cam, pair=k)`` with cam (Y, X) float32 numpy for pair k,
    (t, t+Δt), in the order of ``video.pairs(delta)`` unless ``pairs`` is given;
    Progress per pair; then ``Done(pairs)``: the (K, 2) frame positions of the
    pairs. A stop raises :class:`~napari_tarrow.errors.Cancelled` before the
    next pair.

    ``amp`` computes z in bf16 autocast (True) or fp32 (False); None (the default)
    takes the model's ``amp``. Where both are None, z is computed in bf16 if the
    device computes it natively and the first map correlates at least
    :data:`MIN_BF16_CORRELATION` with its fp32 map (else in fp32); the first map
    yielded is the fp32 one, and a single pair is computed in fp32. Progress carries ``{"bf16": 0 or 1}``, ``{"bf16_correlation": r}``
    once checked, and ``{"tile": side}`` once out-of-memory retries reduced the tile.
    """
    if pairs is None:
        pairs = video.pairs(delta)
    if len(pairs) == 0:
        raise VideoError(
            f"{video.name} has no pair of frames {delta} apart (it has {len(video)} frames); "
            "use a smaller delta or a longer video."
        )
    amp = model.amp if amp is None else amp
    # a single pair would pay for the check what fp32 costs: it gets fp32 unchecked
    bf16 = amp_choice(amp, model.device) and not (amp is None and len(pairs) == 1)
    check = amp is None and bf16
    info: dict[str, float] = {}
    cache: dict[int, torch.Tensor] = {}
    side, net = AdaptiveTile.of(tile), inference_copy(model)

    def z_of(f: int, amp: bool) -> torch.Tensor:
        return frame_features(model, video.frame(f), side, amp, net=net)

    for k, (i, j) in enumerate(pairs):
        if stop():
            raise Cancelled(f"attribution stopped after {k} of {len(pairs)} pairs")
        for f in (i, j):
            if f not in cache:
                cache[f] = z_of(f, bf16)
        cam = gradcam(model, cache[i], cache[j], side)
        if check:
            check, exact_z = False, {f: z_of(f, False) for f in (i, j)}
            exact = gradcam(model, exact_z[i], exact_z[j], side)
            info["bf16_correlation"] = r = correlation(cam, exact)
            cam = exact  # paid for: the first map is the fp32 one either way
            if not r >= MIN_BF16_CORRELATION:  # also a NaN of flat maps
                bf16, cache = False, exact_z
        info["bf16"] = float(bf16)
        yield FrameDone(int(i), cam.cpu().numpy().astype(np.float32), pair=k)
        yield Progress("attribution", k + 1, len(pairs), {**info, **tile_info(side)})
        keep_from = pairs[k + 1][0] if k + 1 < len(pairs) else np.inf
        for f in [f for f in cache if f < keep_from]:  # pairs are sorted by first frame
            del cache[f]
    yield Done(pairs)


def z_precision(info: dict[str, float]) -> str:
    """How z was computed, in words, from the last Progress info of :func:`attribute`."""
    checked = info.get("bf16_correlation")
    check = (
        ""
        if checked is None
        else f" (first map against fp32: correlation {checked:.4f})"
    )
    return ("bf16 autocast" if info.get("bf16") else "fp32") + check


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two maps' pixels (NaN where one is constant)."""
    a, b = (m.double().flatten() for m in (a, b))
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / (a.norm() * b.norm()))


#: Share of the training time that live previews may take (the train widget's).
PREVIEW_BUDGET = 0.1


def pair_at(video: Video, t: int, delta: int) -> np.ndarray:
    """Return the pair (t, t+Δt), or (t-Δt, t) at the end of the video, as a (1, 2) array."""
    pairs = video.pairs(delta)
    for column in (0, 1):
        hit = pairs[pairs[:, column] == t]
        if len(hit):
            return hit[:1]
    raise VideoError(
        f"Frame {t} of {video.name} has no partner {delta} frames before or after; "
        "move the time slider or use a smaller Δt."
    )


def with_previews(
    job: Iterator[Event],
    video: Video,
    frame: Callable[[], int],
    delta: int = 1,
    device: str = "cpu",
    stop: Callable[[], bool] = lambda: False,
    budget: float = PREVIEW_BUDGET,
) -> Iterator[Event]:
    """Pass a training job's events on, saved epochs followed by a Grad-CAM preview.

    After a ``Checkpoint(kind="last")`` the weights just saved are loaded and the map
    of the pair at frame ``frame()`` (read then, so it may follow a slider; clamped to
    the video) is computed, as ``FrameDone(the pair's first frame, (cam, seconds))``.
    The first epoch always gets one; later previews are skipped while they would take
    more than ``budget`` of the training time so far. Training is untouched: it keeps
    its own network and random generator.
    """
    trained = spent = last_cost = 0.0
    clock = time.perf_counter()
    for event in job:
        yield event
        if not (isinstance(event, Checkpoint) and event.kind == "last") or stop():
            continue
        now = time.perf_counter()
        trained, clock = trained + now - clock, now
        if spent + last_cost > budget * trained and spent > 0:
            continue
        model = TapModel.from_folder(event.path, device=device, which="last")
        pairs = pair_at(video, min(max(int(frame()), 0), len(video) - 1), delta)
        for ev in attribute(model, video, delta, pairs=pairs, amp=False):  # one pair
            if isinstance(ev, FrameDone):
                cam = ev.data
        clock, last_cost = time.perf_counter(), time.perf_counter() - now
        spent += last_cost
        yield FrameDone(int(pairs[0, 0]), (cam, last_cost))


def export_attribution(
    model: TapModel,
    video: Video,
    path: str | Path,
    delta: int = 1,
    regions: str | Path | None = None,
    top_k: int = TOP_K,
    tile: int | AdaptiveTile | None = DEFAULT_TILE,
    stop: Callable[[], bool] = lambda: False,
    source: str | None = None,
) -> Iterator[Event]:
    """Stream one Grad-CAM map per pair to a (T', Y, X) float32 TIFF (+ sidecar).

    With ``regions``, also writes the top-k peaks of each map as CSV rows
    (t, y, x, score), t being the pair's first frame number. Yields Progress
    per pair and ``Done(table)`` with the (N, 4) regions table.
    """
    check_output(path)
    if regions is not None:
        check_output(regions)
    pairs = video.pairs(delta)
    times = video.times[pairs[:, 0]] if len(pairs) else np.zeros(0, int)
    rows, info = [], {}
    shape = (len(pairs), *video.shape[1:])
    with (
        stopped_means("attribution stopped; no file written"),
        tiff_stream(path, shape, np.float32, "TYX") as write,
    ):
        for event in attribute(model, video, delta, tile, stop, pairs):
            if isinstance(event, FrameDone):
                write(event.data)
                rows.append(
                    regions_table(
                        [event.data], times[event.pair : event.pair + 1], top_k
                    )
                )
            elif isinstance(event, Progress):
                info = event.info
                yield event
    write_sidecar(
        path,
        {
            "napari_tarrow": __version__,
            "kind": "TAP Grad-CAM attribution",
            "axes": "TYX",
            "delta": delta,
            "pair_first_frames": times.tolist(),
            "z_computed_in": z_precision(info),
            "input": source or video.name,
            "model": str(model.folder),
        },
    )
    table = np.concatenate(rows) if rows else np.zeros((0, 4))
    if regions is not None:
        write_regions_csv(table, regions)
    yield Done(table)
