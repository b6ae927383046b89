"""Attribution and feature-export speed on large frames, against a naive Grad-CAM.

    python benchmarks/inference.py --device cpu --size 1024 --frames 3 [--no-allocator-tuning]

The naive Grad-CAM runs the whole network on each pair with gradients and
back-propagates through the U-Net (as the reference implementation does); ours
computes z once per frame without gradients and back-propagates through the head
only. Feature export (float16 TIFF) is compared with a bare forward pass of the
same network on whole frames (no tiling, no output). All run in this process,
interleaved over ``--rounds``; the maps are compared on a small frame.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _bench import device_name, sync

from napari_tarrow import features
from napari_tarrow.attribution import attribute, cam_from_gradients
from napari_tarrow.config import TapConfig
from napari_tarrow.data.video import Video
from napari_tarrow.device import resolve_device
from napari_tarrow.events import drain
from napari_tarrow.features import export_features
from napari_tarrow.model import TapModel
from napari_tarrow.sample_data import dividing_cells


def naive_gradcam(model: TapModel, f0: np.ndarray, f1: np.ndarray) -> torch.Tensor:
    """Full forward/backward through the U-Net for one pair, untiled."""
    net = model.net.eval()
    x = torch.as_tensor(np.stack([f0, f1])[None], device=model.device)
    z = net.features(x.reshape(2, 1, *x.shape[2:]))
    z.retain_grad()
    logits = net.head(z[None])[0]
    (logits[0] - logits[1]).backward()  # the log-odds of the forward order
    return cam_from_gradients(z.grad.sum((-2, -1))[None], z.detach()[None])[0]


def timed(fn, dev):
    sync(dev)
    t0 = time.perf_counter()
    out = fn()
    sync(dev)
    return time.perf_counter() - t0, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--frames", type=int, default=3)
    p.add_argument("--tile", type=int, help="default: chosen from the free memory")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--naive-pairs", type=int, default=1)
    p.add_argument(
        "--no-allocator-tuning",
        action="store_true",
        help="keep glibc's defaults (CPU jobs tune it; the setting is process-wide)",
    )
    a = p.parse_args()
    if a.no_allocator_tuning:
        features.tune_cpu_allocator = lambda: False
    dev = resolve_device(a.device)
    torch.manual_seed(0)
    model = TapModel(TapConfig()).to(dev)
    model.net.eval()
    # the naive baseline keeps torch's default layout, as the reference does; ours
    # (and the bare forward pass of the same network) run in channels-last
    reference = copy.deepcopy(model)
    sim = dividing_cells(n_frames=a.frames, shape=(a.size, a.size), n_cells=200, seed=0)
    video = Video(sim.video)

    small = Video(sim.video[:2, :256, :256])  # also the warm-up
    ours = next(e.data for e in attribute(model, small) if hasattr(e, "data"))
    ref = naive_gradcam(reference, small.frame(0), small.frame(1))
    ref = ref.detach().cpu().numpy()
    corr = np.corrcoef(ours.ravel(), ref.ravel())[0, 1]

    def bare() -> None:
        with torch.inference_mode():
            for i in range(len(video)):
                x = torch.as_tensor(video.frame(i), device=dev)[None, None]
                model.net.features(x.contiguous(memory_format=torch.channels_last))

    jobs = {
        "attribution (ours)": lambda: drain(attribute(model, video, tile=a.tile)),
        "attribution (naive)": lambda: naive_gradcam(
            reference, video.frame(0), video.frame(1)
        ),
        "bare forward": bare,
        "feature export": lambda: drain(
            export_features(model, video, Path(d) / "f.tif", tile=a.tile)
        ),
    }
    times: dict[str, list[float]] = {k: [] for k in jobs}
    with tempfile.TemporaryDirectory() as d:
        for _ in range(a.rounds):
            for k, job in jobs.items():
                (Path(d) / "f.tif").unlink(missing_ok=True)
                times[k].append(timed(job, dev)[0])
    n_pairs = len(video) - 1
    t_ours = min(times["attribution (ours)"]) / n_pairs
    t_naive = min(times["attribution (naive)"])
    t_bare = min(times["bare forward"]) / len(video)
    t_exp = min(times["feature export"]) / len(video)
    name = device_name(dev)
    print(
        f"# inference on {name}, torch {torch.__version__}, frames {a.size}x{a.size}, "
        f"{a.frames} frames, tile {a.tile or 'auto'}, "
        f"allocator {'glibc defaults' if a.no_allocator_tuning else 'tuned on the CPU'}"
    )
    print(f"maps agree with naive Grad-CAM (256x256): correlation {corr:.5f}")
    print(f"{'job':<28} {'s/pair or frame':>16} {'frames/s':>9}")
    print(f"{'attribution (ours)':<28} {t_ours:>16.3f} {1 / t_ours:>9.2f}")
    print(f"{'attribution (naive, 1 pass)':<28} {t_naive:>16.3f} {1 / t_naive:>9.2f}")
    print(f"{'speed-up per pair':<28} {t_naive / t_ours:>16.1f}x")
    print(f"{'bare forward, whole frames':<28} {t_bare:>16.3f} {1 / t_bare:>9.2f}")
    print(f"{'feature export':<28} {t_exp:>16.3f} {1 / t_exp:>9.2f}")
    print(f"{'export / bare forward':<28} {t_exp / t_bare:>16.2f}x")


if __name__ == "__main__":
    main()
