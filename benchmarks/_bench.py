"""Helpers shared by the benchmark scripts: device synchronisation and naming."""

from __future__ import annotations

import torch


def sync(dev: torch.device) -> None:
    """Wait for queued GPU work so wall-clock timings are honest."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def device_name(dev: torch.device) -> str:
    """Human-readable name of the device for table headers."""
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"cpu x{torch.get_num_threads()}"
