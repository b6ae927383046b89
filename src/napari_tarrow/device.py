"""Device choice (auto/cuda/mps/cpu) and mixed-precision policy. Never hard-code "cuda"."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import sys
from pathlib import Path

import torch

from .errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")
log = logging.getLogger(__name__)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Set to 0 to keep glibc's allocator defaults (e.g. in a napari session short of memory).
TUNE_MALLOC_SWITCH = "NAPARI_TARROW_TUNE_MALLOC"


def available_devices() -> list[str]:
    """Devices usable here, best first (e.g. ``["cuda:0", "cpu"]``)."""
    out = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        out.append("mps")
    return [*out, "cpu"]


def describe_device(name: str) -> str:
    """``name`` with what it is, for a menu: "cuda:0 (NVIDIA H100)", "mps (Apple GPU)", "cpu"."""
    if name.startswith("cuda:"):
        return f"{name} ({torch.cuda.get_device_name(int(name[5:]))})"
    return "mps (Apple GPU)" if name == "mps" else name


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then MPS, then CPU; an unavailable device is an error."""
    if name == "auto":
        return torch.device(available_devices()[0])
    base = name.split(":")[0]
    if base not in DEVICES:
        raise ConfigError(
            f"device={name!r} is unknown; use one of {', '.join(DEVICES)}."
        )
    if base == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device='cuda' requested but no CUDA GPU is visible; use --device cpu."
        )
    if base == "mps" and "mps" not in available_devices():
        raise ConfigError(
            "device='mps' requested but MPS is unavailable; use --device cpu."
        )
    return torch.device(name)


def amp_choice(amp: bool | None, device: torch.device) -> bool:
    """Whether to train in bf16 autocast: ``amp`` if given, else where it is native.

    Native: a CUDA GPU of compute capability 8 or more (Ampere on; older ones
    emulate bf16), or a CPU with AVX512-BF16 or AMX (on a
    2-core Zen 4, bf16 trained 1.6-1.7x faster than fp32; on an AVX2-only Zen 3,
    where it is emulated, 8x slower).
    """
    if amp is not None:
        return amp and device.type in ("cuda", "cpu")
    if device.type == "cuda":  # Ampere or later; older GPUs emulate bf16
        return torch.cuda.get_device_properties(device).major >= 8
    return device.type == "cpu" and bool(cpu_flags() & _NATIVE_BF16_FLAGS)


_NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.cache
def cpu_flags() -> frozenset[str]:
    """Return the CPU feature flags of ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA/CPU when ``enabled``; a no-op context otherwise."""
    if not enabled or device.type not in ("cuda", "cpu"):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@functools.cache
def tune_cpu_allocator() -> bool:
    """Keep freed buffers in glibc's heap instead of returning them to the OS.

    CPU jobs free and re-allocate the same large activations every step or
    tile; with glibc's defaults each one is a fresh mmap whose pages fault in
    again, which took about half of a training step and 40 % of an attribution
    pair here (the same gain as jemalloc with decay off; in a worker thread,
    as in napari, attribution gained 15-30 %). The price: the heap keeps its
    peak size until :func:`release_cpu_heap`. Process-wide, once; returns True
    if applied. ``NAPARI_TARROW_TUNE_MALLOC=0`` in the environment turns it off.
    """
    switched_off = os.environ.get(TUNE_MALLOC_SWITCH) == "0"
    if switched_off or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 2**30) == 1
        ok &= libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    log.debug("glibc allocator tuned for CPU jobs: %s", ok)
    return bool(ok)


def release_cpu_heap() -> None:
    """Return the heap's free memory to the OS (glibc ``malloc_trim``).

    For a process that lives on after a job, such as napari: with the tuning
    above the heap keeps its peak size until trimmed (after attributing three
    HeLa pairs here: 0.8-1.2 GB resident, 0.3 GB once trimmed). Does nothing
    without glibc.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def available_memory(device: torch.device) -> int:
    """Bytes this process can still allocate for data on ``device`` (a cautious estimate).

    Host memory counts everywhere (frames are read there first): the smallest of
    the available RAM, the room left under an address-space limit (``ulimit -v``)
    and the room left in a cgroup (container) limit. On CUDA, free GPU memory too.
    """
    host = min(_available_ram(), _address_space_left(), _cgroup_left())
    if device.type == "cuda":
        return min(host, torch.cuda.mem_get_info(device)[0])
    return host


def _available_ram() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:  # other Unixes: half of the physical memory
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def _address_space_left() -> int:
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit == resource.RLIM_INFINITY:
            return 2**62
        used = int(Path("/proc/self/statm").read_text().split()[0])
        return max(0, limit - used * os.sysconf("SC_PAGE_SIZE"))
    except (ImportError, OSError, ValueError):
        return 2**62


def _cgroup_left() -> int:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return 2**62
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        return max(0, int(limit) - used)
    except (OSError, ValueError):
        return 2**62
