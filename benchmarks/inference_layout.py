"""U-Net feature pass in torch's default layout against channels-last, interleaved.

    python benchmarks/inference_layout.py --preset paper --size 512 --rounds 3

``features.frame_features`` runs the network in channels-last; this measures what
that layout gains for one frame of the given size, and checks the values agree.
"""

from __future__ import annotations

import argparse
import time

import torch
from _bench import device_name

from napari_tarrow.config import PRESETS
from napari_tarrow.nn.tapnet import TapNet


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=list(PRESETS), default="paper")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    torch.manual_seed(0)
    net = TapNet(PRESETS[a.preset].model).eval()
    x = torch.randn(1, 1, a.size, a.size)
    repeats = max(1, int(2e6 / a.size**2))
    layouts = {"default": torch.contiguous_format, "channels-last": torch.channels_last}

    def timed(layout: torch.memory_format) -> tuple[float, torch.Tensor]:
        net.to(memory_format=layout)
        xi = x.contiguous(memory_format=layout)
        with torch.no_grad():
            z = net.features(xi)  # warm-up
            t0 = time.perf_counter()
            for _ in range(repeats):
                net.features(xi)
        return (time.perf_counter() - t0) / repeats, z

    print(
        f"{device_name(torch.device('cpu'))}, {torch.get_num_threads()} threads, "
        f"{a.preset} preset, {a.size}x{a.size}"
    )
    for r in range(a.rounds):
        (t_def, z_def), (t_cl, z_cl) = (timed(m) for m in layouts.values())
        diff = (z_def - z_cl).abs().max().item()
        print(
            f"round {r + 1}: default {t_def * 1e3:.0f} ms, channels-last "
            f"{t_cl * 1e3:.0f} ms, {t_def / t_cl:.2f}x, max difference {diff:.1e}"
        )


if __name__ == "__main__":
    main()
