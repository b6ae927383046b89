"""Read model folders of the reference implementation (weigertlab/tarrow) as our config and network.

A reference folder holds ``model_kwargs.yaml`` (the ``TimeArrowNet`` arguments),
``model_state.pt`` (``torch.save`` of its state dict, keys named after its
modules) and usually ``model_full.pt`` (the whole module pickled with dill,
never read here) and ``train_args.yaml``. Its default architecture (backbone
"unet" or "unet_16fmaps", projection head "minimal_batchnorm", permutation-
equivariant classification head "minimal") is ours layer for layer, up to
three differences in how the same function is stored, which the key mapping
absorbs exactly:

- its 3x3 convolutions have a bias, followed by BatchNorm: the bias is folded
  into the BatchNorm's running mean (our convolutions have none);
- its decoder concatenates [skip, upsampled], ours [upsampled, skip]: the input
  channels of each decoder block's first convolution are swapped;
- its equivariant layers compute L x + mean(G x) with a bias in G, ours
  L x + G mean(x) with none: G's bias is added to L's.

Its convolutions replicate the edge pixel beyond the border, so its models load
with ``ModelConfig(padding_mode="replicate")``. Frames whose sides are not a
multiple of 8 are padded at the bottom/right here, centred there: the pooling
grid then differs, so only frames of such sides give results that differ
(slightly) from the reference's.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
import yaml

from ..config import DataConfig, ModelConfig, TapConfig
from ..errors import ModelFolderError
from ..nn.tapnet import TapNet

KWARGS = "model_kwargs.yaml"
STATE = "model_state.pt"
FULL = "model_full.pt"
TRAIN_ARGS = "train_args.yaml"

DEPTH = 3  # both supported backbones down-sample three times
BACKBONES = {"unet": 32, "unet_16fmaps": 16}  # name -> channels of the first level
# reference defaults (TimeArrowNet.__init__) for keys a model_kwargs.yaml lacks
DEFAULTS: dict[str, Any] = {
    "backbone": "unet",
    "projection_head": "minimal_batchnorm",
    "classification_head": "minimal",
    "n_frames": 2,
    "n_features": 16,
    "n_input_channels": 1,
    "symmetric": False,
}
IGNORED = {"commit", "outdir", "device"}  # bookkeeping, not architecture
SUPPORTED = (
    "backbone 'unet' or 'unet_16fmaps', projection_head 'minimal_batchnorm', "
    "classification_head 'minimal' with symmetric: true, n_frames 2, "
    "n_input_channels 1 (the defaults of tarrow's scripts/train.py)"
)
CONVERT = (
    "if you trust it, convert it where the tarrow package is installed: "
    "python -c \"import torch, tarrow; m = torch.load('{src}', map_location='cpu', "
    "weights_only=False); torch.save(m.state_dict(), '{folder}/model_state.pt')\""
)


def is_reference_folder(path: str | Path) -> bool:
    """Tell whether ``path`` has ``model_kwargs.yaml`` and no napari-tarrow ``config.json``."""
    path = Path(path)
    return (path / KWARGS).is_file() and not (path / "config.json").exists()


def pickled_only(path: str | Path) -> ModelFolderError | None:
    """Return the refusal of a folder that holds a pickled model only (None otherwise).

    Unpickling can run any code, so napari-tarrow never does; the message says
    how to convert a trusted file.
    """
    folder = Path(path)
    if not (folder / FULL).is_file():
        return None
    return ModelFolderError(
        f"{folder} holds {FULL}, a pickled model, which napari-tarrow never loads "
        f"(unpickling can run any code); it reads {KWARGS} and {STATE} instead: copy "
        f"the run's {KWARGS} beside it and, "
        + CONVERT.format(src=folder / FULL, folder=folder)
    )


def load_reference_folder(path: str | Path) -> tuple[TapConfig, TapNet]:
    """Read a reference model folder as a config and a network (eval mode) with the same outputs.

    :meth:`napari_tarrow.model.TapModel.from_folder` wraps them in a model.

    Raises
    ------
    ModelFolderError
        Unreadable files, an architecture napari-tarrow does not implement
        (naming the option and what is supported), or weights that do not fit.
    """
    folder = Path(path)
    model_cfg = reference_model_config(read_kwargs(folder), folder)
    state = read_state(folder)
    net = TapNet(model_cfg)
    try:
        net.load_state_dict(convert_state(state, model_cfg.unet_depth))
    except KeyError as e:
        raise _misfit(folder, model_cfg, f"it lacks {e.args[0]}") from e
    except RuntimeError as e:  # load_state_dict: a header line, then one per problem
        lines = str(e).strip().splitlines()
        raise _misfit(folder, model_cfg, lines[min(1, len(lines) - 1)].strip()) from e
    return TapConfig(data=_data_config(folder), model=model_cfg), net.eval()


def read_kwargs(folder: Path) -> dict[str, Any]:
    """``model_kwargs.yaml`` as a dict (safe YAML: no Python objects)."""
    try:
        kwargs = yaml.safe_load((folder / KWARGS).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        first = str(e).strip().splitlines()[0]
        raise ModelFolderError(f"{folder / KWARGS} is unreadable: {first}") from e
    if not isinstance(kwargs, dict):
        raise ModelFolderError(
            f"{folder / KWARGS} holds {type(kwargs).__name__}, not the mapping of "
            "TimeArrowNet arguments the reference implementation writes."
        )
    return kwargs


def reference_model_config(kwargs: dict[str, Any], folder: Path) -> ModelConfig:
    """ModelConfig equal to the reference architecture ``kwargs`` describes, or a clear error."""
    unknown = sorted(set(kwargs) - set(DEFAULTS) - IGNORED)
    if unknown:
        raise ModelFolderError(
            f"{folder / KWARGS} has options napari-tarrow does not know: {unknown} "
            f"(from a newer tarrow?); it loads {SUPPORTED}."
        )
    k = {**DEFAULTS, **kwargs}
    wanted = {
        "backbone": k["backbone"] in BACKBONES,
        "projection_head": k["projection_head"] == "minimal_batchnorm",
        "symmetric": k["symmetric"] is True,
        "classification_head": k["classification_head"] == "minimal",
        "n_frames": k["n_frames"] == 2,
        "n_input_channels": k["n_input_channels"] == 1,
    }
    for name, ok in wanted.items():
        if not ok:
            raise ModelFolderError(
                f"{folder} is a reference tarrow model with {name}: {k[name]!r}, "
                f"which napari-tarrow does not implement; it loads {SUPPORTED}."
            )
    n = k["n_features"]
    if type(n) is not int or not 1 <= n <= 1024:
        raise ModelFolderError(
            f"{folder / KWARGS}: n_features: {n!r} is invalid: expected an integer "
            "1..1024 (the channels of the dense features)."
        )
    return ModelConfig(
        features=n,
        unet_depth=DEPTH,
        unet_channels=BACKBONES[k["backbone"]],
        head_features=n,  # tarrow's head is as wide as the features
        padding_mode="replicate",
    )


def read_state(folder: Path) -> dict[str, torch.Tensor]:
    """``model_state.pt`` loaded with ``weights_only=True``; never unpickles objects."""
    path = folder / STATE
    if not path.is_file():
        if (folder / FULL).is_file():
            raise ModelFolderError(
                f"{folder} has {FULL} (a pickled module that needs the tarrow package) "
                f"but no {STATE}; " + CONVERT.format(src=folder / FULL, folder=folder)
            )
        raise ModelFolderError(f"{folder} has {KWARGS} but no weights file {STATE}.")
    if not zipfile.is_zipfile(path):
        raise ModelFolderError(
            f"{path} is corrupt or not a file written by torch.save (no zip archive)."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL (\S+)", str(e))
        what = f" ({found.group(1)})" if found else ""
        raise ModelFolderError(
            f"{path} pickles Python objects{what}, not a plain state dict (a whole "
            "model saved with torch.save(model)?); napari-tarrow does not run pickled "
            "code; " + CONVERT.format(src=path, folder=folder)
        ) from e
    except (RuntimeError, OSError, EOFError, ValueError) as e:
        first = str(e).strip().splitlines()[0]
        raise ModelFolderError(f"{path} is corrupt: {first}") from e
    if not isinstance(state, dict) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ModelFolderError(
            f"{path} holds a {type(state).__name__} that is not a state dict (a "
            "mapping of names to tensors, as tarrow's model.state_dict())."
        )
    return state


def convert_state(
    state: dict[str, torch.Tensor], depth: int = DEPTH
) -> dict[str, torch.Tensor]:
    """Map a reference state dict to TapNet's: renamed, biases folded, channels swapped.

    A missing reference key raises ``KeyError`` naming it; a left-over one a
    ``RuntimeError`` listing them.
    """
    src = dict(state)
    take = src.pop
    out: dict[str, torch.Tensor] = {}

    def bn(ref: str, ours: str, shift: torch.Tensor | None = None) -> None:
        for name in ("weight", "bias", "running_var", "num_batches_tracked"):
            out[f"{ours}.{name}"] = take(f"{ref}.{name}")
        mean = take(f"{ref}.running_mean")
        out[f"{ours}.running_mean"] = mean if shift is None else mean - shift

    def block(ref: str, ours: str, skip_channels: int = 0) -> None:
        for conv in (0, 3):  # conv, BN, act, conv, BN, act
            weight = take(f"{ref}.conv_block.{conv}.weight")
            if conv == 0 and skip_channels:  # [skip, up] -> [up, skip]
                weight = torch.cat(
                    [weight[:, skip_channels:], weight[:, :skip_channels]], 1
                )
            out[f"{ours}.{conv}.weight"] = weight
            bias = take(f"{ref}.conv_block.{conv}.bias")
            bn(f"{ref}.conv_block.{conv + 1}", f"{ours}.{conv + 1}", bias)

    for i in range(depth):
        block(f"backbone.l_conv.{i}", f"backbone.down.{i}")
    block(f"backbone.l_conv.{depth}", "backbone.bottom")
    for i in range(depth):  # r_conv[i] joins level i's skip (channels of l_conv[i])
        skip = state[f"backbone.l_conv.{i}.conv_block.3.weight"].shape[0]
        block(f"backbone.r_conv.{i}", f"backbone.up.{depth - 1 - i}", skip)
    for name in ("weight", "bias"):
        out[f"backbone.out.{name}"] = take(f"backbone.head.{name}")
        out[f"proj.0.{name}"] = take(f"projection_head.layers.0.{name}")
    bn("projection_head.layers.1", "proj.1")

    def equivariant(ref: str, ours: str) -> None:
        out[f"{ours}.L.weight"] = take(f"{ref}.L.weight")
        out[f"{ours}.L.bias"] = take(f"{ref}.L.bias") + take(f"{ref}.G.bias")
        out[f"{ours}.G.weight"] = take(f"{ref}.G.weight")

    for n in (1, 2):
        ref = f"classification_head.layers.{n - 1}.layers.0"
        equivariant(ref, f"head.layer{n}")
        bn(f"{ref}.norm", f"head.norm{n}")
    equivariant("classification_head.head.1.layers.0", "head.final")
    if src:
        raise RuntimeError(f"unexpected keys {sorted(src)[:4]} ({len(src)} in all)")
    return out


def _misfit(folder: Path, cfg: ModelConfig, why: str) -> ModelFolderError:
    """Weights that do not fit the architecture model_kwargs.yaml names."""
    backbone = next(n for n, c in BACKBONES.items() if c == cfg.unet_channels)
    return ModelFolderError(
        f"{folder / STATE} does not fit {KWARGS} (backbone {backbone!r}, "
        f"n_features {cfg.features}): {why}"
    )


class _TrainArgsLoader(yaml.SafeLoader):
    """Safe YAML that reads Python-tagged values (tarrow's tuples) as None."""


_TrainArgsLoader.add_multi_constructor(
    "tag:yaml.org,2002:python/", lambda loader, suffix, node: None
)


def _data_config(folder: Path) -> DataConfig:
    """Crop size and Δt from ``train_args.yaml`` when readable and valid, else defaults."""
    try:
        args = yaml.load((folder / TRAIN_ARGS).read_text(), Loader=_TrainArgsLoader)
        return DataConfig(delta=tuple(args["delta"]), size=int(args["size"]))
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return DataConfig()  # absent or unusable: the paper's defaults (size 96, Δt 1)
