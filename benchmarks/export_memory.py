"""Feature export speed and peak memory for several video lengths (memory must stay flat).

    python benchmarks/export_memory.py --size 1024 --lengths 20 200 --device cpu
    python benchmarks/export_memory.py --video ../shared/data/hela-ctc02/02 --format tiff zarr

For each length, an uncompressed uint16 (T, Y, X) TIFF is written (read back frame
by frame, like a memory-mappable file), or the ``--video`` given is read, and a fresh
process exports the float16 features of every frame with the paper's architecture
(random weights) in each ``--format``. Each row: frames/s (after the first frame),
the wall time, the output's size on disk, the process's resident memory before the
export and its peak (``ru_maxrss``) over the whole run.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch


def write_video(path: Path, n: int, size: int) -> None:
    """(n, size, size) uint16 TIFF of moving noise, written in chunks."""
    out = tifffile.memmap(path, shape=(n, size, size), dtype="u2")
    base = np.random.default_rng(0).integers(0, 4000, (size, size), dtype="u2")
    for t in range(n):
        out[t] = np.roll(base, t, axis=1)
    out.flush()
    del out


def child(
    video: str, out: str, device: str, tile: int, features: int, threads: int
) -> None:
    """Export features of ``video`` in this process; print one JSON line."""
    from napari_tarrow.config import ModelConfig, TapConfig
    from napari_tarrow.events import Progress
    from napari_tarrow.inference.features import export_features
    from napari_tarrow.io.video import read_video
    from napari_tarrow.model import TapModel

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = TapModel(TapConfig(model=ModelConfig(features=features))).to(device)
    v = read_video(video)
    rss_before = _rss_now()
    start, times = time.perf_counter(), []
    for ev in export_features(model, v, out, "float16", tile):
        if isinstance(ev, Progress):
            times.append(time.perf_counter())
    wall = time.perf_counter() - start
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(
        json.dumps(
            {
                "frames": len(v),
                "frames_per_s": rate,
                "wall_s": wall,
                "rss_before": rss_before,
                "peak_rss": peak,
                "output_bytes": _size(Path(out)),
                "shape": [len(v), features, *v.shape[1:]],
            }
        )
    )


def _size(path: Path) -> int:
    """Bytes on disk of a file, or of every file in a folder (a zarr store)."""
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _rss_now() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--lengths", type=int, nargs="+", default=[20, 200])
    p.add_argument("--device", default="cpu")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--video", help="a real video instead of synthetic ones")
    p.add_argument("--format", nargs="+", choices=["tiff", "zarr"], default=["tiff"])
    p.add_argument("--child", nargs=2, metavar=("VIDEO", "OUT"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(*a.child, a.device, a.tile, a.features, a.threads)
        return
    rows = []
    suffix = {"tiff": ".tif", "zarr": ".zarr"}
    with tempfile.TemporaryDirectory() as d:
        for n in [0] if a.video else a.lengths:
            video = Path(a.video) if a.video else Path(d) / f"video{n}.tif"
            if not a.video:
                write_video(video, n, a.size)
            for fmt in a.format:
                out = Path(d) / f"features{n}{suffix[fmt]}"
                cmd = [sys.executable, __file__, "--child", str(video), str(out)]
                cmd += ["--device", a.device, "--tile", str(a.tile)]
                cmd += ["--features", str(a.features), "--threads", str(a.threads)]
                done = subprocess.run(cmd, capture_output=True, text=True, check=True)
                row = json.loads(done.stdout.strip().splitlines()[-1])
                row["input_bytes"], row["format"] = _size(video), fmt
                rows.append(row)
                shutil.rmtree(out) if out.is_dir() else out.unlink()
            if not a.video:
                video.unlink()
    frames = a.video or f"{a.size}x{a.size}"
    print(
        f"# feature export, frames {frames}, {a.features} features (float16), "
        f"tile {a.tile}, device {a.device}, threads {a.threads or torch.get_num_threads()}, "
        f"torch {torch.__version__}"
    )
    print(
        f"{'format':>6} {'shape':>20} {'input MiB':>10} {'output MiB':>11} {'frames/s':>9} "
        f"{'wall s':>7} {'RSS before MiB':>15} {'peak RSS MiB':>13}"
    )
    mib = 2**20
    for r in rows:
        shape = "x".join(map(str, r["shape"]))
        print(
            f"{r['format']:>6} {shape:>20} {r['input_bytes'] / mib:>10.0f} "
            f"{r['output_bytes'] / mib:>11.0f} {r['frames_per_s']:>9.3f} {r['wall_s']:>7.1f} "
            f"{r['rss_before'] / mib:>15.0f} {r['peak_rss'] / mib:>13.0f}"
        )


if __name__ == "__main__":
    main()
