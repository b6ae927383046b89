"""TapModel: a config plus a TapNet, saved as a folder (JSON + safetensors, no pickle).

Folder layout::

    config.json          TapConfig (human-readable)
    weights_best.safetensors   best by validation loss
    weights_last.safetensors   last completed epoch
    metrics.jsonl        one JSON line per epoch
    resume.pt            optimizer/scheduler/RNG state (weights_only=True loadable)
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from ..config import TapConfig
from ..device import amp_choice, resolve_device
from ..errors import ConfigError, ModelFolderError
from ..io.atomic import write_bytes
from ..nn.tapnet import TapNet

CONFIG = "config.json"
METRICS = "metrics.jsonl"
WEIGHTS = {"best": "weights_best.safetensors", "last": "weights_last.safetensors"}

__all__ = ["CONFIG", "METRICS", "WEIGHTS", "TapModel"]


class TapModel:
    """A trained (or fresh) TAP network and its configuration.

    Parameters
    ----------
    config : TapConfig
    net : TapNet, optional
        Built fresh from ``config.model`` when omitted.

    Attributes
    ----------
    amp : bool or None
        Precision of z for feature export and Grad-CAM: bf16 autocast (True), fp32
        (False), or None (the default) for bf16 where the device computes it
        natively, as in training (:func:`napari_tarrow.device.amp_choice`), where
        Grad-CAM first checks its map against fp32. The downstream models always
        compute z in fp32.
    """

    def __init__(self, config: TapConfig, net: TapNet | None = None) -> None:
        self.config = config
        self.net = net if net is not None else TapNet(config.model)
        self.folder: Path | None = None
        self.amp: bool | None = None

    @property
    def inference_amp(self) -> bool:
        """Whether z is computed in bf16 autocast at inference on this device."""
        return amp_choice(self.amp, self.device)

    @property
    def device(self) -> torch.device:
        """Device holding the weights."""
        return next(self.net.parameters()).device

    def to(self, device: str | torch.device) -> TapModel:
        """Move to ``device`` ("auto", "cpu", "cuda", ...); returns self."""
        dev = device if isinstance(device, torch.device) else resolve_device(device)
        self.net.to(dev)
        return self

    def save(self, folder: str | Path, which: str = "last") -> Path:
        """Write weights ``which`` ("best"/"last"), then the config; returns the folder.

        Each file is written atomically and durably (:mod:`napari_tarrow.io.atomic`);
        the config comes last, so a folder with a ``config.json`` has weights.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {
            k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()
        }
        meta = {"format": "napari-tarrow", "which": which}
        write_bytes(folder / WEIGHTS[which], safetensors_bytes(state, metadata=meta))
        self.config.save(folder / CONFIG)
        return folder

    @classmethod
    def from_folder(
        cls, folder: str | Path, device: str = "cpu", which: str = "best"
    ) -> TapModel:
        """Load a model folder in eval mode; falls back to the last weights if no best.

        A folder of the reference implementation (``model_kwargs.yaml`` and
        ``model_state.pt``) loads through :mod:`napari_tarrow.model.reference`.

        Raises
        ------
        ModelFolderError
            Missing folder, missing/corrupt config or weights, or weights that do
            not fit the configured architecture.
        """
        folder = Path(folder)
        if folder.is_file():
            raise ModelFolderError(
                f"{folder} is a file, not a model folder; give the model folder first, "
                "then the video."
            )
        if not folder.is_dir():
            raise ModelFolderError(
                f"model folder {folder} does not exist; train one first."
            )
        if not (folder / CONFIG).exists():
            from .reference import (
                is_reference_folder,
                load_reference_folder,
                pickled_only,
            )

            if is_reference_folder(folder):
                model = cls(*load_reference_folder(folder))
                model.folder = folder
                return model.to(device)
            pickled = pickled_only(folder)
            if pickled is not None:
                raise pickled
            raise ModelFolderError(
                f"{folder} has no {CONFIG}; it is not a napari-tarrow model folder "
                "(nor one of the reference implementation, with model_kwargs.yaml)."
            )
        try:
            config = TapConfig.load(folder / CONFIG)
        except ConfigError as e:
            raise ModelFolderError(f"{folder}: corrupt {CONFIG}: {e}") from e
        order = [which, "last" if which == "best" else "best"]
        path = next(
            (folder / WEIGHTS[w] for w in order if (folder / WEIGHTS[w]).exists()), None
        )
        if path is None:
            raise ModelFolderError(
                f"{folder} has no weights file ({', '.join(WEIGHTS.values())})."
            )
        model = cls(config)
        try:
            model.net.load_state_dict(load_file(str(path)))
        except (SafetensorError, RuntimeError, OSError) as e:
            first = str(e).strip().splitlines()[0]
            raise ModelFolderError(
                f"{path} is corrupt or does not match the config: {first}"
            ) from e
        model.folder = folder
        model.net.eval()
        return model.to(device)
