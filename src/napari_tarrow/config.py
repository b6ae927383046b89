"""Run configuration: validated, frozen dataclasses that round-trip through JSON.

A model folder's ``config.json`` is ``TapConfig.to_dict()``; ``from_dict`` rejects
unknown keys, values of the wrong JSON type and out-of-range values with a message
naming the field, and brings files of an older ``schema_version`` up to date
(:func:`_migrate`). The training presets (:data:`PRESETS`) live here too, the one
source of the CLI's and the widget's starting points.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .io.atomic import write_text

SCHEMA_VERSION = 3
PADDING_MODES = ("zeros", "replicate")


def check_field(ok: bool, name: str, value: Any, valid: str) -> None:
    """Raise a ConfigError naming ``name``, its ``value`` and what is ``valid``, unless ``ok``."""
    if not ok:
        raise ConfigError(f"{name}={value!r} is invalid: expected {valid}.")


def _check_interval(name: str, interval: tuple[float, float]) -> None:
    lo, hi = interval
    check_field(
        0 <= lo < hi <= 1, name, interval, "two fractions 0 <= start < end <= 1"
    )


@dataclass(frozen=True)
class DataConfig:
    """How frame pairs are drawn from the videos.

    Attributes
    ----------
    delta : tuple of int
        Time steps Δt (frames) between the two frames of a pair.
    size : int
        Side of the square training crop (pixels, multiple of 8).
    split_train, split_val : (float, float)
        Time intervals, as fractions of each video's length, used for training
        and validation pairs.
    augment : bool
        Apply the paper's augmentations to training pairs.
    percentiles : (float, float)
        Per-frame normalisation: these percentiles map to 0 and 1.
    foreground : float
        Crops are drawn where at least this fraction of pixels is foreground
        (above the frame's Otsu threshold), so that sparse cells, not empty
        background, fill the batches; 0 draws crops uniformly.
    """

    delta: tuple[int, ...] = (1,)
    size: int = 96
    split_train: tuple[float, float] = (0.0, 0.9)
    split_val: tuple[float, float] = (0.9, 1.0)
    augment: bool = True
    percentiles: tuple[float, float] = (1.0, 99.8)
    foreground: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "delta", tuple(int(d) for d in self.delta))
        for name in ("split_train", "split_val", "percentiles"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        check_field(
            len(self.delta) > 0 and all(d >= 1 for d in self.delta),
            "delta",
            self.delta,
            "one or more integers >= 1",
        )
        check_field(
            self.size >= 16 and self.size % 8 == 0,
            "size",
            self.size,
            "an integer >= 16 and a multiple of 8",
        )
        _check_interval("split_train", self.split_train)
        _check_interval("split_val", self.split_val)
        lo, hi = self.percentiles
        check_field(
            0 <= lo < hi <= 100,
            "percentiles",
            self.percentiles,
            "0 <= low < high <= 100",
        )
        check_field(
            0 <= self.foreground < 1, "foreground", self.foreground, "0 <= f < 1"
        )


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the TAP network.

    Attributes
    ----------
    features : int
        Channels of the dense representation z (the paper uses 32).
    unet_depth : int
        Number of down-sampling steps of the U-Net backbone (the paper uses 3).
    unet_channels : int
        Channels of the first U-Net level; doubled at each level.
    head_features : int
        Hidden channels of the permutation-equivariant head.
    padding_mode : str
        What the U-Net's 3x3 convolutions, and the padding of frames to a multiple
        of ``2 ** unet_depth``, see beyond the border: "zeros" (our models) or
        "replicate" (the edge pixel, as in models of the reference implementation).
    subsample : int
        Frames are downscaled this many times (means of k x k blocks) before the
        U-Net, and the features upscaled back (bilinear), so outputs keep the
        video's size. 2 costs about a quarter of the compute; suits nuclei that
        are 20 or more pixels across.
    """

    features: int = 32
    unet_depth: int = 3
    unet_channels: int = 32
    head_features: int = 32
    padding_mode: str = "zeros"
    subsample: int = 1

    def __post_init__(self) -> None:
        check_field(1 <= self.features <= 1024, "features", self.features, "1..1024")
        check_field(1 <= self.subsample <= 8, "subsample", self.subsample, "1..8")
        check_field(1 <= self.unet_depth <= 6, "unet_depth", self.unet_depth, "1..6")
        check_field(
            1 <= self.unet_channels <= 512,
            "unet_channels",
            self.unet_channels,
            "1..512",
        )
        check_field(
            1 <= self.head_features <= 1024,
            "head_features",
            self.head_features,
            "1..1024",
        )
        check_field(
            self.padding_mode in PADDING_MODES,
            "padding_mode",
            self.padding_mode,
            " or ".join(repr(m) for m in PADDING_MODES),
        )

    @property
    def multiple(self) -> int:
        """Input pixels of one cell of the U-Net's pooling grid (subsample * 2 ** depth)."""
        return self.subsample * 2**self.unet_depth


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (defaults follow the paper except ``batch_size``).

    Attributes
    ----------
    epochs, samples_per_epoch, batch_size : int
        Training length; samples are drawn at random with replacement.
    val_samples : int
        Validation pairs drawn (with a fixed seed) once per run.
    lr, weight_decay : float
        Adam settings; the learning rate follows a triangular cyclic schedule
        between ``lr / 10`` and ``lr`` with a period of two epochs.
    lambda_decorrelation, temperature : float
        Weight and softmax temperature of the decorrelation loss.
    seed : int
        Seed of every random generator of the run.
    checkpoint_every : int
        Epochs between resumable checkpoints.
    amp : bool or None
        bf16 autocast; None (the default) chooses it where the device computes bf16
        natively (CUDA GPUs that support it, CPUs with AVX512-BF16 or AMX) and fp32
        elsewhere (:func:`napari_tarrow.device.amp_choice`).
    compile : bool
        ``torch.compile`` the training step's network (CUDA; slow first steps).
    init_from : str
        Model folder whose weights (best, else last) a new run starts from, to
        fine-tune it on other data; "" starts from a random initialisation.
    """

    epochs: int = 200
    samples_per_epoch: int = 100_000
    batch_size: int = 128
    val_samples: int = 1024
    lr: float = 4e-4
    weight_decay: float = 1e-6
    lambda_decorrelation: float = 0.01
    temperature: float = 0.2
    seed: int = 42
    checkpoint_every: int = 1
    amp: bool | None = None
    compile: bool = False
    init_from: str = ""

    def __post_init__(self) -> None:
        check_field(self.epochs >= 1, "epochs", self.epochs, "an integer >= 1")
        check_field(
            self.amp is None or isinstance(self.amp, bool),
            "amp",
            self.amp,
            "true, false or null",
        )
        check_field(
            self.batch_size >= 2, "batch_size", self.batch_size, "an integer >= 2"
        )
        check_field(
            self.samples_per_epoch >= self.batch_size,
            "samples_per_epoch",
            self.samples_per_epoch,
            f"an integer >= batch_size ({self.batch_size})",
        )
        check_field(
            self.val_samples >= 0, "val_samples", self.val_samples, "an integer >= 0"
        )
        check_field(0 < self.lr < 1, "lr", self.lr, "a number in (0, 1)")
        check_field(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        check_field(
            self.lambda_decorrelation >= 0,
            "lambda_decorrelation",
            self.lambda_decorrelation,
            ">= 0",
        )
        check_field(self.temperature > 0, "temperature", self.temperature, "> 0")
        check_field(
            self.checkpoint_every >= 1,
            "checkpoint_every",
            self.checkpoint_every,
            ">= 1",
        )

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps per epoch (``samples_per_epoch // batch_size``)."""
        return self.samples_per_epoch // self.batch_size


#: The sections of a TapConfig, by name.
_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


@dataclass(frozen=True)
class TapConfig:
    """Everything that defines a TAP run; saved as ``config.json`` in the model folder."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        k = self.model.subsample
        check_field(
            self.data.size % (8 * k) == 0,
            "size",
            self.data.size,
            f"a multiple of {8 * k} with subsample {k} (crops of a multiple of 8 "
            "pixels at the network's scale)",
        )

    def replace(self, **fields: Any) -> TapConfig:
        """Return a copy with these fields changed, each in its section (``epochs=5``)."""
        changes: dict[str, dict[str, Any]] = {}
        for name, value in fields.items():
            changes.setdefault(section_of(name), {})[name] = value
        return dataclasses.replace(
            self,
            **{
                s: dataclasses.replace(getattr(self, s), **v)
                for s, v in changes.items()
            },
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dictionary (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TapConfig:
        """Build and validate a config; unknown keys or future schema versions are errors."""
        check_field(isinstance(d, dict), "config", type(d).__name__, "a JSON object")
        d = dict(d)
        version = d.pop("schema_version", SCHEMA_VERSION)
        check_field(
            type(version) is int and 1 <= version <= SCHEMA_VERSION,
            "schema_version",
            version,
            f"1..{SCHEMA_VERSION} (written by a newer napari-tarrow? upgrade it)",
        )
        d = _migrate(d, version)
        unknown = set(d) - set(_SECTIONS)
        check_field(
            not unknown, "config keys", sorted(unknown), f"only {sorted(_SECTIONS)}"
        )
        return cls(
            **{k: parse_section(k, t, d.get(k, {})) for k, t in _SECTIONS.items()}
        )

    def save(self, path: str | Path) -> None:
        """Write as indented JSON, atomically and durably."""
        write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> TapConfig:
        """Read a ``config.json``; a malformed file is a :class:`ConfigError`."""
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"cannot read config {path}: {e}") from e
        return cls.from_dict(d)


def section_of(name: str) -> str:
    """Return the section ("data", "model", "train") that has the field ``name``."""
    for section, cls in _SECTIONS.items():
        if name in {f.name for f in dataclasses.fields(cls)}:
            return section
    raise ConfigError(
        f"{name!r} is no training setting; settings: "
        + ", ".join(x.name for c in _SECTIONS.values() for x in dataclasses.fields(c))
    )


def _migrate(d: dict[str, Any], version: int) -> dict[str, Any]:
    """Bring the sections of a config of schema ``version`` to :data:`SCHEMA_VERSION`.

    1 -> 2: ``model.subsample`` (1 before), ``train.amp`` may be null (auto) and
    ``train.init_from`` is always written. A version-1 file names its ``amp`` flag
    and omits what it did not have, so the defaults of version 2 read it as trained.
    2 -> 3: ``data.foreground`` (0 before: crops drawn uniformly).
    """
    if version == 1:
        d = {**d, "model": {"subsample": 1, **d.get("model", {})}}
    if version <= 2:
        d = {**d, "data": {"foreground": 0.0, **d.get("data", {})}}
    return d


#: JSON values accepted for a field's type: (one, several).
_KINDS = {
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    bool: ("true or false", ""),
    str: ("a string", ""),
}


def parse_section(name: str, cls: type, values: Any) -> Any:
    """Build dataclass ``cls`` from the JSON object ``values``, checking keys and types."""
    check_field(isinstance(values, dict), name, values, "a JSON object of settings")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    check_field(not unknown, f"{name} keys", sorted(unknown), f"only {sorted(names)}")
    hints = typing.get_type_hints(cls)
    return cls(**{k: _typed(f"{name}.{k}", hints[k], v) for k, v in values.items()})


def _typed(name: str, hint: Any, value: Any) -> Any:
    """``value`` if it is a JSON value of type ``hint`` (lists become tuples), else a ConfigError.

    ``X | None`` also takes null.
    """
    optional = type(None) in typing.get_args(hint)
    if optional:
        (hint,) = (a for a in typing.get_args(hint) if a is not type(None))
        if value is None:
            return None
    if typing.get_origin(hint) is not tuple:
        or_null = " or null" if optional else ""
        check_field(_is(hint, value), name, value, _KINDS[hint][0] + or_null)
        return value
    args = typing.get_args(hint)
    n = None if args[-1] is Ellipsis else len(args)
    check_field(
        isinstance(value, list | tuple)
        and len(value) == (n or len(value)) > 0
        and all(_is(args[0], v) for v in value),
        name,
        value,
        f"a list of {n or 'one or more'} {_KINDS[args[0]][1]}",
    )
    return tuple(value)


def _is(kind: type, value: Any) -> bool:
    """JSON type check: booleans are not numbers, integers are numbers."""
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    return isinstance(value, (int, float) if kind is float else kind)


#: Top regions per attribution map wherever a default is needed (CLI, widget, evaluate).
TOP_K = 6

#: Starting points for a run, by name: the CLI's ``--preset`` and the train widget's
#: preset menu. "fast" is the CPU recipe, "paper" the paper's GPU configuration.
PRESETS: dict[str, TapConfig] = {
    "fast": TapConfig(
        data=DataConfig(
            size=48, split_train=(0.0, 0.8), split_val=(0.8, 1.0), augment=False
        ),
        model=ModelConfig(features=16, unet_channels=16, head_features=16),
        train=TrainConfig(
            epochs=12, samples_per_epoch=320, batch_size=32, lr=4e-4, val_samples=128
        ),
    ),
    "paper": TapConfig(),
}
