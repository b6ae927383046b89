"""Training on several processes (GPUs or CPU workers) started by ``torchrun``.

``torchrun --nproc_per_node N -m napari_tarrow.cli train ...`` runs the same
training in N processes with DistributedDataParallel: each rank samples its own
crops, gradients are averaged, metrics are reduced over ranks, and only rank 0
writes the model folder and shows progress. torchrun's environment variables
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) are
detected; the backend is NCCL on CUDA and gloo on the CPU.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..errors import ConfigError

log = logging.getLogger(__name__)
_SEED_STRIDE = 1_000_003  # rank r samples with seed + r * stride: disjoint streams


@dataclass(frozen=True)
class Group:
    """Place of a process among the training processes (alone: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the rank that writes files and shows progress."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when there are other ranks to talk to."""
        return self.world_size > 1

    def seed(self, seed: int) -> int:
        """Rank-dependent seed for sampling: rank 0 keeps ``seed`` (as one process would)."""
        return seed + _SEED_STRIDE * self.rank

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` over ranks, in place; returns it."""
        if self.active:
            dist.all_reduce(t)
        return t

    def any(self, flag: bool, device: torch.device) -> bool:
        """Return True on every rank if ``flag`` is True on any (e.g. a stop request)."""
        if not self.active:
            return flag
        return bool(self.sum(torch.tensor([float(flag)], device=device)).item() > 0)

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        """Wait until every rank got here."""
        if self.active:
            dist.barrier()

    def wrap(self, net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """``net`` in DistributedDataParallel when there are other ranks."""
        if not self.active:
            return net
        ids = [device.index] if device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(net, device_ids=ids)


def launched() -> bool:
    """Tell whether torchrun (or the same variables) started this process among several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def is_main_process() -> bool:
    """Return False on torchrun ranks other than 0 (they stay quiet and write nothing)."""
    return int(os.environ.get("RANK", "0")) == 0


def rank_device(device: torch.device, local_rank: int) -> torch.device:
    """Return the device of this rank: ``cuda:LOCAL_RANK`` on CUDA, else the CPU."""
    if device.type == "cuda":
        return torch.device("cuda", local_rank)
    if device.type == "cpu":
        return device
    raise ConfigError(
        f"distributed training runs on CUDA or the CPU, not {device.type}; "
        "use --device cuda or --device cpu, or run without torchrun."
    )


@contextmanager
def process_group(device: torch.device) -> Iterator[tuple[Group, torch.device]]:
    """Join the torchrun process group for the duration (no-op for one process).

    Yields this rank's :class:`Group` and device. A group that is already
    initialised (by the caller) is used and left alone.
    """
    if dist.is_available() and dist.is_initialized():
        group = Group(dist.get_rank(), dist.get_world_size(), _local_rank())
        yield group, rank_device(device, group.local_rank)
        return
    if not launched():
        yield Group(), device
        return
    if not dist.is_available():
        raise ConfigError(
            "torch.distributed is not available in this torch build; "
            "run without torchrun."
        )
    dev = rank_device(device, _local_rank())
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    dist.init_process_group(backend)
    group = Group(dist.get_rank(), dist.get_world_size(), _local_rank())
    log.info("rank %d of %d on %s (%s)", group.rank, group.world_size, dev, backend)
    try:
        yield group, dev
    finally:
        dist.destroy_process_group()


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))
