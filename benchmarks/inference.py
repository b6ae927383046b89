"""Attribution and feature-export speed on large frames, against a naive Grad-CAM.

    python benchmarks/inference.py --device cpu --size 1024 --frames 3 [--no-allocator-tuning]

Attribution, feature export and the bare pass run with z in fp32 and in bf16 autocast
(the default where the device computes bf16 natively; ``--precision default`` runs
that one only). The network is untrained, so the maps from bf16 z are timed, not
judged: their accuracy on trained models is ``bf16_attribution.py``'s.

The naive Grad-CAM runs the whole network on each pair with gradients and
back-propagates through the U-Net (as the reference implementation does); ours
computes z once per frame without gradients and back-propagates through the head
only. Feature export (float16 TIFF) is compared with a bare forward pass of the
same network on whole frames (no tiling, no output), as trained and with its batch
norms folded into the convolutions (what export and attribution run). All run in this process,
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

from napari_tarrow.config import TapConfig
from napari_tarrow.device import amp_choice, autocast, resolve_device
from napari_tarrow.events import drain
from napari_tarrow.inference import features
from napari_tarrow.inference.attribution import attribute, cam_from_gradients
from napari_tarrow.inference.features import export_features, inference_copy
from napari_tarrow.io.sample_data import dividing_cells
from napari_tarrow.io.video import Video
from napari_tarrow.model import TapModel


def naive_gradcam(model: TapModel, f0: np.ndarray, f1: np.ndarray) -> torch.Tensor:
    """Full forward/backward through the U-Net for one pair, untiled."""
    net = model.net.eval()
    x = torch.as_tensor(np.stack([f0, f1])[None], device=model.device)
    z = net.features(x.reshape(2, 1, *x.shape[2:]))
    z.retain_grad()
    logits = net.head(z[None])[0]
    (logits[0] - logits[1]).backward()  # the log-odds of the forward order
    return cam_from_gradients(z.grad.sum((-2, -1))[None], z.detach()[None])[0]


PRECISION = {False: "fp32", True: "bf16"}


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
    p.add_argument(
        "--precision",
        choices=("both", "default"),
        default="both",
        help="export in fp32 and bf16 autocast (both), or in this device's default only",
    )
    a = p.parse_args()
    if a.no_allocator_tuning:
        features.tune_cpu_allocator = lambda: False
    dev = resolve_device(a.device)
    precisions = (False, True) if a.precision == "both" else (amp_choice(None, dev),)
    torch.manual_seed(0)
    model = TapModel(TapConfig()).to(dev)
    model.net.eval()
    # the naive baseline keeps torch's default layout, as the reference does; ours
    # (and the bare forward pass of the same network) run in channels-last
    reference = copy.deepcopy(model)
    model.net.to(memory_format=torch.channels_last)
    sim = dividing_cells(n_frames=a.frames, shape=(a.size, a.size), n_cells=200, seed=0)
    video = Video(sim.video)

    small = Video(sim.video[:2, :256, :256])  # also the warm-up
    ref = naive_gradcam(reference, small.frame(0), small.frame(1))
    ref = ref.detach().cpu().numpy()
    ours = next(
        e.data for e in attribute(model, small, amp=False) if hasattr(e, "data")
    )

    folded = inference_copy(model)

    def bare(amp: bool, net: torch.nn.Module) -> None:
        with torch.inference_mode(), autocast(dev, amp):
            for i in range(len(video)):
                x = torch.as_tensor(video.frame(i), device=dev)[None, None]
                net.features(x.contiguous(memory_format=torch.channels_last))

    def with_amp(amp: bool, job):
        def run():
            model.amp = amp
            return job()

        return run

    jobs = {
        "attribution (naive)": lambda: naive_gradcam(
            reference, video.frame(0), video.frame(1)
        ),
    }
    for amp in precisions:  # z given explicitly: no check against fp32
        jobs[f"attribution, {PRECISION[amp]}"] = lambda amp=amp: drain(
            attribute(model, video, tile=a.tile, amp=amp)
        )
    for amp in precisions:
        label = PRECISION[amp]
        jobs[f"bare forward, {label}"] = lambda amp=amp: bare(amp, model.net)
        jobs[f"bare forward folded, {label}"] = lambda amp=amp: bare(amp, folded)
        jobs[f"feature export, {label}"] = with_amp(
            amp,
            lambda: drain(
                export_features(model, video, Path(d) / "f.tif", tile=a.tile)
            ),
        )
    times: dict[str, list[float]] = {k: [] for k in jobs}
    with tempfile.TemporaryDirectory() as d:
        for _ in range(a.rounds):
            for k, job in jobs.items():
                (Path(d) / "f.tif").unlink(missing_ok=True)
                times[k].append(timed(job, dev)[0])
    n_pairs = len(video) - 1
    per = {
        k: min(v) / (1 if "naive" in k else n_pairs if "attr" in k else len(video))
        for k, v in times.items()
    }
    name = device_name(dev)
    print(
        f"# inference on {name}, torch {torch.__version__}, frames {a.size}x{a.size}, "
        f"{a.frames} frames, tile {a.tile or 'auto'}, "
        f"allocator {'glibc defaults' if a.no_allocator_tuning else 'tuned on the CPU'}, "
        f"default precision here: {PRECISION[amp_choice(None, dev)]}"
    )
    print(
        f"maps (256x256) against the naive Grad-CAM: correlation {corrcoef(ours, ref):.5f}"
    )
    print(f"{'job':<28} {'s/pair or frame':>16} {'per s':>7} {'ratio':>8}")
    naive = per["attribution (naive)"]
    for k, t in per.items():
        if k.startswith("attribution"):
            ratio = f"{naive / t:.1f}x" if "naive" not in k else ""
        else:
            bare_t = per["bare forward, " + k.rsplit(", ", 1)[1]]
            ratio = f"{t / bare_t:.2f}" if "," in k and "forward," not in k else ""
        print(f"{k:<28} {t:>16.3f} {1 / t:>7.2f} {ratio:>8}")
    print(
        "ratio: naive time / ours for attribution (speed-up per pair); export and the "
        "folded pass (batch norms folded into the convolutions, as export and "
        "attribution compute z) / the bare pass of the network as trained, same precision"
    )


def corrcoef(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


if __name__ == "__main__":
    main()
