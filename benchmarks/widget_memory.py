"""Peak memory of the attribution widget on a lazy (dask) video, for two lengths.

    xvfb-run -a python benchmarks/widget_memory.py --lengths 50 200 --size 512

Each length runs in a fresh process: a napari viewer (not shown) with a dask video
of that many frames, a narrow TAP network with random weights, and "whole video"
attribution; the row gives the peak resident memory (``ru_maxrss``) and what the
maps would take as one float32 array. Address-space randomisation is turned off
(``setarch -R``) and the hash seed fixed, so that heap layout noise stays small.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import time


def child(frames: int, size: int) -> None:
    """Attribute every pair of a ``frames``-long dask video in napari; print peak RSS."""
    import dask.array as da
    import napari
    import numpy as np
    import torch
    from qtpy.QtWidgets import QApplication

    from napari_tarrow.config import ModelConfig, TapConfig
    from napari_tarrow.model import TapModel
    from napari_tarrow.widgets import AttributionWidget, attribution
    from napari_tarrow.widgets._models import store_of

    torch.set_num_threads(1)
    torch.manual_seed(0)
    viewer = napari.Viewer(show=False)
    video = da.random.RandomState(0).random((frames, size, size), chunks=(1, -1, -1))
    viewer.add_image(video.astype(np.float32), name="long")
    model = TapModel(TapConfig(model=ModelConfig(features=8, unet_channels=8)))
    store_of(viewer).add(model)
    w = AttributionWidget(viewer)
    w.mode.value, w.top_k.value = attribution.WHOLE, 1
    start = time.perf_counter()
    w.buttons.run.clicked.emit()
    app = QApplication.instance()
    while w.runner.state != "idle":
        app.processEvents()
        time.sleep(0.01)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"{frames} {peak} {time.perf_counter() - start:.1f}", flush=True)
    os._exit(0)  # napari's teardown without a shown window is not what is measured


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[50, 200])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a.child, a.size)
        return
    print(f"attribution widget, {a.size}x{a.size} frames, dask video, 1 torch thread")
    print("| frames | peak RSS | maps as one float32 array | time |")
    print("|---:|---:|---:|---:|")
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    for n in a.lengths:
        cmd = [sys.executable, __file__, "--child", str(n), "--size", str(a.size)]
        if shutil.which("setarch"):
            cmd = ["setarch", platform.machine(), "-R", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        frames, peak, seconds = out.stdout.split()[-3:]
        maps = 4 * int(frames) * a.size**2
        print(
            f"| {frames} | {int(peak) / 2**20:.0f} MiB | {maps / 2**20:.0f} MiB | {seconds} s |"
        )


if __name__ == "__main__":
    main()
