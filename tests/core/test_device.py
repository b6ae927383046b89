"""The CPU allocator tuning: applied by CPU jobs, and its retained heap given back on request."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from napari_tarrow.device import TUNE_MALLOC_SWITCH
from napari_tarrow.inference import features
from napari_tarrow.model import TapModel

HEAP_RUN = textwrap.dedent(
    """
    import sys
    import numpy as np
    from napari_tarrow.device import release_cpu_heap, tune_cpu_allocator

    def resident_mb():
        return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

    applied = sys.argv[1] != "default" and tune_cpu_allocator()
    base = resident_mb()
    for _ in range(3):  # like the activations of a tile: allocated, written, freed
        a = np.ones(200 * 2**20 // 8)
        del a
    kept = resident_mb() - base
    release_cpu_heap()
    print(int(applied), round(kept), round(resident_mb() - base))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_tuned_heap_keeps_freed_memory_until_released() -> None:
    def run(mode: str, switch: str | None = None) -> tuple[int, int, int]:
        env = {k: v for k, v in os.environ.items() if k != TUNE_MALLOC_SWITCH}
        out = subprocess.run(
            [sys.executable, "-c", HEAP_RUN, mode],
            capture_output=True,
            text=True,
            check=True,
            env=env if switch is None else {**env, TUNE_MALLOC_SWITCH: switch},
        )
        applied, kept, released = map(int, out.stdout.split())
        return applied, kept, released

    _, default_kept, _ = run("default")
    applied, kept, released = run("tuned")
    assert default_kept < 20  # glibc's defaults: freed at once (mmap), faulted in again
    assert applied and kept > 150  # tuned: the 200 MB stay in the heap for the next one
    assert released < 20  # and go back to the OS when released
    applied, kept, _ = run("tuned", switch="0")
    assert not applied and kept < 20  # switched off: glibc's defaults stay


def test_cpu_features_tune_the_allocator(tiny_model_dir, monkeypatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(features, "tune_cpu_allocator", lambda: calls.append("cpu"))
    model = TapModel.from_folder(tiny_model_dir, device="cpu")
    features.frame_features(model, np.zeros((32, 32), np.float32))
    assert calls == ["cpu"]


def test_bf16_is_chosen_where_the_cpu_computes_it_natively(monkeypatch) -> None:
    import torch

    from napari_tarrow import device

    cpu = torch.device("cpu")
    zen3 = frozenset({"avx2", "fma"})  # AVX2 only: bf16 would be emulated (8x slower)
    monkeypatch.setattr(device, "cpu_flags", lambda: zen3)
    assert device.amp_choice(None, cpu) is False
    assert device.amp_choice(True, cpu) is True  # --amp overrides the choice
    for native in ("avx512_bf16", "amx_bf16"):  # Zen 4, Sapphire Rapids
        monkeypatch.setattr(device, "cpu_flags", lambda n=native: zen3 | {n})
        assert device.amp_choice(None, cpu) is True
        assert device.amp_choice(False, cpu) is False  # --no-amp
    assert device.amp_choice(None, torch.device("mps")) is False
    gpu = torch.device("cuda", 1)
    for major, native in ((7, False), (8, True), (9, True)):  # V100/T4 emulate bf16
        monkeypatch.setattr(
            torch.cuda,
            "get_device_properties",
            lambda d, m=major: type("P", (), {"major": m if d == gpu else 0})(),
        )
        assert device.amp_choice(None, gpu) is native
