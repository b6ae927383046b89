"""Segment dividing cells from a few painted labels, on TAP features of frame pairs.

The input of frame t is the pair (t, t+Δt): the features z_t and z_{t+Δt} are
concatenated and a small head predicts, per pixel of frame t, the probability
that it belongs to a dividing cell. Three modes share the head and the sampler:

- ``"frozen"``: the TAP network is fixed, features are computed once per frame
  and cached (retraining after more painting only trains the head);
- ``"finetune"``: the TAP feature network (U-Net + projection) is trained with
  the head, starting from the TAP weights;
- ``"baseline"``: the same network from a random start on the normalised raw
  frames, the supervised control of the same size.

Only labelled pixels count in the loss, and the two classes weigh the same
(crops also favour dividing cells); after training, the output bias is shifted
so that probabilities follow the labelled class proportions again (logit
adjustment), and 0.5 is a sensible threshold. Frames without any label are skipped. :class:`DivisionSegmenter` is UI-free: the
napari widget and the CLI drive its generator methods.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from .._version import __version__
from ..config import TapConfig, check_field
from ..device import tune_cpu_allocator
from ..errors import Cancelled, ConfigError, ModelFolderError, TarrowError
from ..events import Done, Event, FrameDone, Metrics, Progress, relay
from ..inference.features import DEFAULT_TILE, frame_features
from ..io.atomic import write_bytes, write_text
from ..io.video import Video, as_video
from ..model import TapModel
from .cache import FeatureCache
from .labels import BACKGROUND, DIVIDING, LabelsError, check_labels
from .postprocess import probability_to_labels
from .sampling import CropSampler, partners
from .segmenter_config import SegmentationConfig

CONFIG_FILE = "segmenter.json"
WEIGHTS_FILE = "segmenter.safetensors"
#: Version of ``segmenter.json``: 1 had no ``format_version`` key.
FORMAT_VERSION = 2


@dataclass(frozen=True)
class Segmentation:
    """Result of :meth:`DivisionSegmenter.predict` for the requested frames."""

    labels: np.ndarray  # (N, Y, X) int32, 2D objects, ids unique across frames
    probability: np.ndarray  # (N, Y, X) float32


def make_head(kind: str, channels: int, hidden: int) -> nn.Sequential:
    """Head on concatenated pair features (N, channels, Y, X) -> one logit per pixel.

    The leading BatchNorm standardises the features, whose scales differ per channel.
    """
    norm = nn.BatchNorm2d(channels)
    if kind == "linear":
        return nn.Sequential(norm, nn.Conv2d(channels, 1, 1))
    return nn.Sequential(
        norm,
        nn.Conv2d(channels, hidden, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden, 1, 1),
    )


class DivisionSegmenter:
    """A division segmentation model: TAP feature network, head and settings.

    Parameters
    ----------
    tap : TapModel
        Source of the features ("frozen"), of the starting weights
        ("finetune"), or of the architecture only ("baseline"). Only "frozen"
        keeps a reference; the other modes train their own copy.
    config : SegmentationConfig
    tile : int, optional
        Tile side for whole-frame features (bounded memory on large frames); by
        default chosen from the free memory (:func:`~napari_tarrow.inference.features.auto_tile`).
    cache : FeatureCache, optional
        Frozen features to share, e.g. between segmenters of the same TAP model
        with other settings (used in "frozen" mode; must wrap ``tap``).
    """

    def __init__(
        self,
        tap: TapModel,
        config: SegmentationConfig | None = None,
        tile: int | None = DEFAULT_TILE,
        cache: FeatureCache | None = None,
    ) -> None:
        self.config = config or SegmentationConfig()
        cfg = self.config
        if cfg.mode == "frozen":
            self.tap = tap
        elif cfg.mode == "finetune":
            self.tap = TapModel(tap.config, copy.deepcopy(tap.net))
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed)
                self.tap = TapModel(tap.config).to(tap.device)
        self.source = str(tap.folder) if tap.folder is not None else None
        self._encoder_start = _clone(self.tap.net.state_dict())
        channels = 2 * tap.config.model.features
        self.head = make_head(cfg.head, channels, cfg.hidden).to(tap.device)
        if cache is not None and cache.model is not self.tap:
            raise ConfigError(
                "a feature cache is shared only in frozen mode, for the same TAP model."
            )
        self.cache = FeatureCache(self.tap, tile) if cache is None else cache
        self.tile = tile
        self.fitted = False
        self.trained_on: list[int] = []

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        return self.tap.device

    def fit(
        self,
        video: Video | np.ndarray,
        labels: np.ndarray,
        stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[Event]:
        """Train on the labelled frames; yields Progress ("features", "fit"), Metrics, Done(self).

        ``labels`` is (T, Y, X): 0 = unlabelled, 1 = background, 2 = dividing
        cell (see :func:`~napari_tarrow.downstream.labels.labels_from_mask` for
        full masks). Each fit starts again from the TAP (or random) weights and
        a fresh head; frozen features stay cached between fits. A stop request
        raises :class:`~napari_tarrow.errors.Cancelled` and leaves the previous
        weights in place, as does closing the generator early.
        """
        video = as_video(video, self.tap.config.data.percentiles)
        labels = check_labels(labels, video.shape)
        pairs = self._labelled_pairs(video, labels)
        before = self._state()
        finished = False
        try:
            inputs = yield from self._inputs(video, pairs, stop)
            targets = [labels[i] for i, _ in pairs]
            yield from self._train(inputs, targets, stop)
            finished = True
        finally:
            if not finished:
                self._load_state(before)
        self.fitted = True
        self.trained_on = [int(video.times[i]) for i, _ in pairs]
        yield Done(self)

    def predict_proba(
        self,
        video: Video | np.ndarray,
        frames: Sequence[int] | None = None,
        stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[Event]:
        """Probability of a dividing cell per pixel for frame positions ``frames`` (default all).

        Yields the events of :meth:`predict_frames`, then ``Done(probability)`` with
        (len(frames), Y, X) float32.
        """
        video = as_video(video, self.tap.config.data.percentiles)
        todo = _check_frames(frames, len(video))
        out = np.zeros((len(todo), *video.shape[1:]), np.float32)
        done = 0
        for event in self.predict_frames(video, todo, stop):
            if isinstance(event, FrameDone):
                out[done] = event.data
                done += 1
            yield event
        yield Done(out)

    def predict_frames(
        self,
        video: Video | np.ndarray,
        frames: Sequence[int] | None = None,
        stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[Event]:
        """Yield ``FrameDone(i, p)``, p (Y, X) float32, and Progress ("predict") per frame.

        Nothing is kept but the features of the last two frames (frozen features
        already cached by :meth:`fit` are reused), so memory does not grow with
        the number of frames. Frames without a frame t+Δt (the last Δt, or before
        a gap) get zeros. A stop request raises :class:`~napari_tarrow.errors.Cancelled`.
        """
        if not self.fitted:
            raise TarrowError("the segmenter is not trained yet; run fit first.")
        video = as_video(video, self.tap.config.data.percentiles)
        todo = _check_frames(frames, len(video))
        partner = partners(video, self.config.delta)
        z: dict[int, torch.Tensor] = {}  # the last frames' features, reused by pairs
        self.head.eval()
        for k, i in enumerate(todo):
            if stop():
                raise Cancelled("prediction stopped")
            j = partner.get(i)
            p = np.zeros(video.shape[1:], np.float32)
            if j is not None:
                z = {
                    f: z[f] if f in z else self._features(video, f, keep=False)
                    for f in (i, j)
                }
                with torch.no_grad():
                    logit = self.head(torch.cat([z[i], z[j]])[None])[0, 0]
                p = torch.sigmoid(logit).cpu().numpy()
            yield FrameDone(i, p)
            yield Progress("predict", k + 1, len(todo))

    def predict(
        self,
        video: Video | np.ndarray,
        frames: Sequence[int] | None = None,
        stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[Event]:
        """:meth:`predict_proba`, ending with ``Done(Segmentation(labels, probability))``.

        Labels are the connected components of ``probability >= threshold`` per
        frame, without objects below ``min_size`` pixels.
        """
        proba = yield from relay(self.predict_proba(video, frames, stop))
        cfg = self.config
        labels = probability_to_labels(proba, cfg.threshold, cfg.min_size)
        yield Done(Segmentation(labels, proba))

    def save(self, folder: str | Path) -> Path:
        """Write ``segmenter.json`` and ``segmenter.safetensors`` (self-contained) to ``folder``."""
        if not self.fitted:
            raise TarrowError("the segmenter is not trained yet; run fit before save.")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        info = {
            "format_version": FORMAT_VERSION,
            "napari_tarrow": __version__,
            "kind": "division segmenter",
            "config": self.config.to_dict(),
            "tap_config": self.tap.config.to_dict(),
            "tap_model": self.source,
            "trained_on_frames": self.trained_on,
        }
        meta = {"format": "napari-tarrow"}
        write_bytes(
            folder / WEIGHTS_FILE, safetensors_bytes(self._state(), metadata=meta)
        )
        write_text(folder / CONFIG_FILE, json.dumps(info, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> DivisionSegmenter:
        """Load a folder written by :meth:`save`, ready to predict (and to fit again)."""
        folder = Path(folder)
        if (
            not (folder / CONFIG_FILE).is_file()
            or not (folder / WEIGHTS_FILE).is_file()
        ):
            raise ModelFolderError(
                f"{folder} is not a segmenter folder: it needs {CONFIG_FILE} and "
                f"{WEIGHTS_FILE} (written by DivisionSegmenter.save or `segment --save-model`)."
            )
        try:
            info = json.loads((folder / CONFIG_FILE).read_text())
            check_field(isinstance(info, dict), "content", info, "a JSON object")
            info = _migrate(info)
            config = SegmentationConfig.from_dict(info["config"])
            tap_config = TapConfig.from_dict(info["tap_config"])
            source = info.get("tap_model") or None
            trained_on = [int(t) for t in info.get("trained_on_frames", [])]
            check_field(
                source is None or isinstance(source, str), "tap_model", source, "a path"
            )
        except (OSError, ValueError, KeyError, TypeError) as e:  # JSON: ValueError
            raise ModelFolderError(f"{folder / CONFIG_FILE} is corrupt: {e}") from e
        tap = TapModel(tap_config).to(device)
        tap.folder = Path(source) if source else None
        seg = cls(tap, config)
        try:
            seg._load_state(load_file(str(folder / WEIGHTS_FILE)))
        except (SafetensorError, RuntimeError, OSError) as e:
            first = str(e).strip().splitlines()[0]
            raise ModelFolderError(
                f"{folder / WEIGHTS_FILE} is corrupt or does not match the config: {first}"
            ) from e
        seg.tap.net.eval()
        seg._encoder_start = _clone(seg.tap.net.state_dict())
        seg.fitted = True
        seg.trained_on = trained_on
        return seg

    # -- internals ---------------------------------------------------------------

    def _features(self, video: Video, i: int, keep: bool = True) -> torch.Tensor:
        """Return z (C, Y, X) of frame position ``i``: cached when frozen, else computed now.

        ``keep=False`` reads the frozen cache without adding to it.
        """
        if self.config.mode == "frozen":
            return self.cache.features(video, i, keep)
        return frame_features(self.tap, video.frame(i), self.tile)

    def _labelled_pairs(
        self, video: Video, labels: np.ndarray
    ) -> list[tuple[int, int]]:
        """(i, j) for every labelled frame i that has a frame t+Δt."""
        partner = partners(video, self.config.delta)
        labelled = np.flatnonzero(labels.reshape(len(labels), -1).any(axis=1))
        pairs = [(int(i), partner[int(i)]) for i in labelled if int(i) in partner]
        if not pairs:
            raise LabelsError(
                f"the labelled frames {video.times[labelled].tolist()} have no frame "
                f"t+Δt (Δt = {self.config.delta}); label frames that are followed by one."
            )
        classes = np.unique(np.concatenate([labels[i].ravel() for i, _ in pairs]))
        if DIVIDING not in classes or BACKGROUND not in classes:
            raise LabelsError(
                "the labelled frames that have a frame t+Δt lack dividing-cell (2) or "
                "background (1) pixels; label both classes on frames before the last Δt."
            )
        return pairs

    def _inputs(
        self, video: Video, pairs: list[tuple[int, int]], stop: Callable[[], bool]
    ) -> Iterator[Event]:
        """Per labelled pair, the network input on the CPU (returned by ``yield from``).

        Frozen: features (2C, Y, X) float16, cached per frame; otherwise the
        normalised frames (2, Y, X).
        """
        out = []
        for k, (i, j) in enumerate(pairs):
            if stop():
                raise Cancelled("training stopped while computing features")
            if self.config.mode == "frozen":
                x = torch.cat([self.cache.features(video, f) for f in (i, j)])
                out.append(x.to("cpu", torch.float16))
            else:
                out.append(torch.from_numpy(np.stack([video.frame(i), video.frame(j)])))
            yield Progress("features", k + 1, len(pairs))
        return out

    def _train(
        self,
        inputs: list[torch.Tensor],
        targets: list[np.ndarray],
        stop: Callable[[], bool],
    ) -> Iterator[Event]:
        """Run the optimisation loop (yields Progress and Metrics)."""
        cfg, dev = self.config, self.device
        if dev.type == "cpu":
            tune_cpu_allocator()
        counts = np.bincount(np.concatenate([t.ravel() for t in targets]), minlength=3)
        weight = torch.tensor(
            [0.0, *(counts[1:].sum() / (2.0 * counts[1:]))], device=dev
        )  # both classes weigh the same in total
        sampler = CropSampler(targets, cfg.crop, cfg.positive_fraction, cfg.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            channels = 2 * self.tap.config.model.features
            self.head = make_head(cfg.head, channels, cfg.hidden).to(dev)
        if cfg.mode != "frozen":
            self.tap.net.load_state_dict(self._encoder_start)
        params = [{"params": self.head.parameters(), "lr": cfg.lr}]
        if cfg.mode != "frozen":
            enc_lr = cfg.encoder_lr if cfg.mode == "finetune" else cfg.lr
            params.append({"params": self.tap.net.parameters(), "lr": enc_lr})
        opt = torch.optim.Adam(params)
        self.head.train()
        self.tap.net.train(cfg.mode != "frozen")
        total = cfg.epochs * cfg.steps_per_epoch
        labels_t = [torch.from_numpy(t.astype(np.int64)) for t in targets]
        seen = torch.zeros(3, device=dev)  # labelled pixels per class in the crops
        for epoch in range(cfg.epochs):
            losses = []
            for step in range(cfg.steps_per_epoch):
                if stop():
                    raise Cancelled("training stopped; the previous weights are kept")
                wins = sampler.windows(cfg.batch_size)
                x = torch.stack([inputs[k][:, ys, xs] for k, ys, xs in wins])
                y = torch.stack([labels_t[k][ys, xs] for k, ys, xs in wins]).to(dev)
                logit = self._logits(x.to(dev, torch.float32))
                w = weight[y]
                seen += torch.bincount(y.ravel(), minlength=3)
                bce = F.binary_cross_entropy_with_logits(
                    logit, (y == DIVIDING).float(), reduction="none"
                )
                loss = (w * bce).sum() / w.sum().clamp_min(1e-6)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                done = epoch * cfg.steps_per_epoch + step + 1
                yield Progress("fit", done, total, {"loss": losses[-1]})
            yield Metrics(epoch, {"loss": float(np.mean(losses))})
        # Logit adjustment: the crops oversample dividing cells and the loss weighs
        # the classes equally; shifting the last bias by the log ratio of trained to
        # labelled class odds makes the probability estimate that of the labels.
        trained = float(weight[2] * seen[2] / (weight[1] * seen[1]).clamp_min(1e-6))
        shift = np.log(max(trained, 1e-6)) - np.log(counts[2] / counts[1])
        with torch.no_grad():
            self.head[-1].bias -= float(shift)
        self.head.eval()
        self.tap.net.eval()

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """Network input crops (B, Cin, h, w) -> logits (B, h, w)."""
        if self.config.mode != "frozen":
            b, _, h, w = x.shape
            x = self.tap.net.features(x.reshape(b * 2, 1, h, w)).reshape(b, -1, h, w)
        return self.head(x)[:, 0]

    def _state(self) -> dict[str, torch.Tensor]:
        """Weights of the head and the TAP network, prefixed "head." and "tap."."""
        state = {f"head.{k}": v for k, v in self.head.state_dict().items()}
        state.update({f"tap.{k}": v for k, v in self.tap.net.state_dict().items()})
        return _clone(state)

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`_state`."""
        for prefix, module in (("head.", self.head), ("tap.", self.tap.net)):
            part = {
                k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)
            }
            module.load_state_dict(part)


def _clone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached contiguous CPU copies of a state dict."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}


def _check_frames(frames: Sequence[int] | None, n: int) -> list[int]:
    """Frame positions to predict (default all), each within 0..n-1."""
    if frames is None:
        return list(range(n))
    todo = [int(f) for f in frames]
    bad = [f for f in todo if not 0 <= f < n]
    if bad:
        raise ConfigError(f"frames {bad} are outside the video's 0..{n - 1}.")
    return todo


def _migrate(info: dict[str, Any]) -> dict[str, Any]:
    """Bring a ``segmenter.json`` to :data:`FORMAT_VERSION`; a newer one is an error.

    1 -> 2: the file names its ``format_version`` (nothing else changed).
    """
    version = info.get("format_version", 1)
    check_field(
        type(version) is int and 1 <= version <= FORMAT_VERSION,
        "format_version",
        version,
        f"1..{FORMAT_VERSION} (written by a newer napari-tarrow? upgrade it)",
    )
    return {**info, "format_version": FORMAT_VERSION}
