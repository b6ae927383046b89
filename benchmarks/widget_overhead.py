"""The training widget against the command line: the same job, wall time and main-thread CPU.

    xvfb-run -a python benchmarks/widget_overhead.py --epochs 6 --rounds 2

Each run is a fresh process training the fast preset on the sample video for the same
epochs with the same seed, alternately through the command line's driver (tqdm) and
through the train widget in a shown napari window (the Qt event loop running, as in
use). It reports the wall time of the job, the CPU time of the main thread (for
the widget: what the GUI took while the worker trained) and of the whole process (all
threads: torch's, the worker's, Qt's and the software OpenGL renderer's). Rounds are interleaved, so
the ratio holds on a machine whose speed drifts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench import device_name


def _config(epochs: int):
    import dataclasses

    from napari_tarrow.config import PRESETS

    fast = PRESETS["fast"]
    return dataclasses.replace(
        fast, train=dataclasses.replace(fast.train, epochs=epochs)
    )


def run_cli(epochs: int, out: Path) -> dict[str, float]:
    """The command line's driver: ``train`` under tqdm progress bars."""
    from napari_tarrow.cli.progress import run_events
    from napari_tarrow.io.sample_data import sample_video
    from napari_tarrow.io.video import Video
    from napari_tarrow.training.loop import train

    video = Video(sample_video().video)
    cpu0, p0, t0 = time.thread_time(), time.process_time(), time.perf_counter()
    run_events(train(_config(epochs), [video], out, device="cpu"), "train", True)
    return {
        "wall_s": time.perf_counter() - t0,
        "main_cpu_s": time.thread_time() - cpu0,
        "process_cpu_s": time.process_time() - p0,
    }


def run_widget(epochs: int, out: Path) -> dict[str, float]:
    """The train widget, docked in a shown viewer, its job started as by a click."""
    import napari
    from qtpy.QtCore import QTimer

    from napari_tarrow.config import PRESETS
    from napari_tarrow.io.sample_data import sample_video
    from napari_tarrow.widgets import TrainWidget
    from napari_tarrow.widgets.train import PRESET_MENU as MENU

    viewer = napari.Viewer()
    viewer.add_image(sample_video().video, name="video")
    w = TrainWidget(viewer)
    viewer.window.add_dock_widget(w)
    c = _config(epochs)
    w.preset.value = next(k for k, v in MENU.items() if v is PRESETS["fast"])
    w.device.value = "cpu"
    w.epochs.value, w.samples.value = epochs, c.train.samples_per_epoch
    w.size.value, w.batch.value = c.data.size, c.train.batch_size
    w.out.value = str(out)
    w.preview.value = False  # the CLI's job: previews are extra work (<= 10 %)
    app = napari.qt.get_qapp()
    times: dict[str, float] = {}

    def begin() -> None:
        times["cpu0"], times["t0"] = time.thread_time(), time.perf_counter()
        times["p0"] = time.process_time()
        w.buttons.run.clicked.emit()

    def check() -> None:
        if "t0" in times and w.runner.state == "idle" and "wall_s" not in times:
            times["wall_s"] = time.perf_counter() - times["t0"]
            times["main_cpu_s"] = time.thread_time() - times["cpu0"]
            times["process_cpu_s"] = time.process_time() - times["p0"]
            app.quit()

    QTimer.singleShot(1000, begin)  # after the window is shown and painted
    timer = QTimer()
    timer.timeout.connect(check)
    timer.start(200)
    app.exec_()
    assert (out / "config.json").exists(), "no model written"
    return {k: times[k] for k in ("wall_s", "main_cpu_s", "process_cpu_s")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child", choices=("cli", "widget"), help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        result = (run_cli if a.child == "cli" else run_widget)(a.epochs, a.out)
        print(json.dumps(result), flush=True)
        os._exit(0)  # napari's teardown is not what is measured
    import torch

    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    print(f"{device_name(torch.device('cpu'))}, {torch.get_num_threads()} threads")
    print(f"fast preset, {a.epochs} epochs on the sample video, fresh process per run")
    print("| round | path | wall s | main-thread CPU s | process CPU s |")
    print("|---:|---|---:|---:|---:|")
    walls: dict[str, list[float]] = {"cli": [], "widget": []}
    for r in range(a.rounds):
        for path in ("cli", "widget"):
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [sys.executable, __file__, "--child", path, "--epochs"]
                cmd += [str(a.epochs), "--out", str(Path(tmp) / "model")]
                done = subprocess.run(
                    cmd, capture_output=True, text=True, env=env, check=True
                )
            res = json.loads(done.stdout.strip().splitlines()[-1])
            walls[path].append(res["wall_s"])
            print(
                f"| {r + 1} | {path} | {res['wall_s']:.1f} | {res['main_cpu_s']:.1f} "
                f"| {res['process_cpu_s']:.1f} |"
            )
    ratio = sum(walls["widget"]) / sum(walls["cli"])
    print(f"\nwidget / CLI wall time: {ratio:.2f}")


if __name__ == "__main__":
    main()
