"""Training throughput (samples/s) of TAP steps, variants interleaved in one process.

    python benchmarks/train_throughput.py --device cpu --batch 32 --size 96
    python benchmarks/train_throughput.py --device cuda --batch 128 256 512 --amp both --compile both
    python benchmarks/train_throughput.py --device cpu --channels-last both --threads 1 2
    python benchmarks/train_throughput.py --device cuda --batch 256 --amp on --compile on --cuda-tuning both
    python benchmarks/train_throughput.py --device cpu --batch 32 --head both

Each row: samples/s of full steps (sampling + augmentation + forward/backward/Adam),
the fraction of the step spent sampling/augmenting, and peak GPU memory. Rounds of
all variants alternate so that drifting machine speed affects them alike.
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch
from _bench import device_name, sync

from napari_tarrow.config import DataConfig, ModelConfig, TapConfig, TrainConfig
from napari_tarrow.device import resolve_device, tune_cpu_allocator
from napari_tarrow.io.sample_data import dividing_cells
from napari_tarrow.io.video import Video
from napari_tarrow.nn.heads import EquivariantLayer, FrameBatchNorm
from napari_tarrow.training.loop import optimizer, train_step
from napari_tarrow.training.pairs import PairSampler


class PreviousFrameBatchNorm(FrameBatchNorm):
    """Baseline of ``--head``: the head's batch norm before stop 6, in elementwise ops
    (autograd keeps every intermediate of the full (B, 2, C, Y, X) activation)."""

    def forward(self, y):
        if not self.training:
            return super().forward(y)
        t, c = y.shape[1:3]
        dims = [0, *range(2, y.ndim - 1)]
        mean = y.sum(1).mean(dims) / t
        shape = (1, 1, c) + (1,) * (y.ndim - 3)
        var = ((y - mean.view(shape)) ** 2).sum(1).mean(dims) / t
        n = y.numel() // c
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            self.running_mean.lerp_(mean.detach().float(), self.momentum)
            self.running_var.lerp_(var.detach().float() * n / (n - 1), self.momentum)
        y = (y - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape)


class PreviousEquivariantLayer(EquivariantLayer):
    """Baseline of ``--head``: the equivariant layer before stop 6 (``nn.Linear`` on a
    channels-last view, so activations alternate between memory layouts)."""

    def forward(self, z):
        zc = z.movedim(2, -1)
        mean = zc.sum(1, keepdim=True) / z.shape[1]
        return (self.L(zc) + self.G(mean)).movedim(-1, 2)


def use_previous_head(net: torch.nn.Module) -> None:
    """Swap the head's layers for their baseline versions (the same parameters)."""
    swap = {
        FrameBatchNorm: PreviousFrameBatchNorm,
        EquivariantLayer: PreviousEquivariantLayer,
    }
    for m in net.modules():
        if type(m) in swap:
            m.__class__ = swap[type(m)]


def make_variant(
    dev,
    batch,
    size,
    features,
    amp,
    compile_,
    augment,
    sampler_cache,
    channels_last,
    tuned,
    current_head=True,
):
    cfg = TapConfig(
        data=DataConfig(size=size, augment=augment),
        model=ModelConfig(features=features),
        train=TrainConfig(batch_size=batch, samples_per_epoch=batch, amp=amp),
    )
    key = (size, augment)
    if key not in sampler_cache:
        sim = dividing_cells(n_frames=16, shape=(512, 512), n_cells=80, seed=0)
        sampler_cache[key] = PairSampler(
            [Video(sim.video)], [1], (0, 1), size, dev, augment
        )
    from napari_tarrow.model import TapModel

    net = TapModel(cfg).to(dev).net.train()
    if not current_head:
        use_previous_head(net)
    if channels_last:
        net.to(memory_format=torch.channels_last)
    step_net = torch.compile(net) if compile_ else net
    opt = optimizer(net, cfg.train, dev, fused=tuned)
    return dict(  # noqa: C408
        cfg=cfg,
        net=step_net,
        opt=opt,
        sampler=sampler_cache[key],
        gen=torch.Generator(device=dev).manual_seed(0),
        tuned=tuned,
        times=[],
        data_times=[],
    )


def run_steps(v, dev, n):
    tc = v["cfg"].train
    torch.set_num_threads(v["threads"])
    torch.backends.cudnn.benchmark = v["tuned"]  # as train does on CUDA
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(n):
        x, y = v["sampler"].sample(tc.batch_size, v["gen"])
        train_step(v["net"], v["opt"], x, y, tc, tc.amp)
    sync(dev)
    v["times"].append((time.perf_counter() - t0) / n)
    t0 = time.perf_counter()
    for _ in range(n):
        v["sampler"].sample(tc.batch_size, v["gen"])
    sync(dev)
    v["data_times"].append((time.perf_counter() - t0) / n)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, nargs="+", default=[32])
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--amp", choices=["on", "off", "both"], default="off")
    p.add_argument("--compile", choices=["on", "off", "both"], default="off")
    p.add_argument(
        "--channels-last",
        choices=["on", "off", "both"],
        help="default: on for CUDA (as train does), off elsewhere",
    )
    p.add_argument(
        "--threads", type=int, nargs="+", default=[0], help="torch threads (0: default)"
    )
    p.add_argument(
        "--cuda-tuning",
        choices=["on", "off", "both"],
        default="on",
        help="cudnn.benchmark and fused Adam (on: as train does on CUDA)",
    )
    p.add_argument(
        "--head",
        choices=["current", "previous", "both"],
        default="current",
        help="the equivariant head as trained now (1x1 convolutions, native batch-norm "
        "kernels) or its earlier version (Linear on channels-last views, elementwise "
        "batch norm); the same parameters and results up to rounding",
    )
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--steps", type=int, default=3, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--no-allocator-tuning", action="store_true")
    a = p.parse_args()
    dev = resolve_device(a.device)
    if dev.type == "cpu" and not a.no_allocator_tuning:
        tune_cpu_allocator()
    choice = {"on": [True], "off": [False], "both": [False, True]}
    cl = a.channels_last or ("on" if dev.type == "cuda" else "off")
    cache: dict = {}
    variants = {}
    default_threads = torch.get_num_threads()
    tuning = choice[a.cuda_tuning] if dev.type == "cuda" else [False]
    heads = {"current": [True], "previous": [False], "both": [False, True]}
    for batch, amp, comp, last, tuned, threads, current in itertools.product(
        a.batch,
        choice[a.amp],
        choice[a.compile],
        choice[cl],
        tuning,
        a.threads,
        heads[a.head],
    ):
        v = make_variant(
            dev,
            batch,
            a.size,
            a.features,
            amp,
            comp,
            not a.no_augment,
            cache,
            last,
            tuned,
            current,
        )
        v["threads"] = threads or default_threads
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        run_steps(v, dev, 2)  # warm-up (and compilation)
        v["times"].clear(), v["data_times"].clear()
        v["mem"] = (
            torch.cuda.max_memory_allocated(dev) / 2**30
            if dev.type == "cuda"
            else float("nan")
        )
        variants[(batch, amp, comp, last, tuned, v["threads"], current)] = v
    for _ in range(a.rounds):
        for v in variants.values():
            run_steps(v, dev, a.steps)
    name = device_name(dev)
    print(
        f"# training throughput on {name}, torch {torch.__version__}, crop {a.size}, "
        f"features {a.features}, augment {not a.no_augment}"
    )
    print(
        f"{'batch':>6} {'amp':>5} {'compile':>8} {'ch-last':>8} {'tuned':>6} {'threads':>8} "
        f"{'head':>9} {'samples/s':>10} {'data %':>7} {'GPU GiB':>8}"
    )
    for (batch, amp, comp, last, tuned, threads, current), v in variants.items():
        step = min(v["times"])
        data = min(v["data_times"])
        print(
            f"{batch:>6} {amp!s:>5} {comp!s:>8} {last!s:>8} {tuned!s:>6} "
            f"{threads:>8} {'current' if current else 'previous':>9} "
            f"{batch / step:>10.1f} "
            f"{100 * data / step:>6.1f}% {v['mem']:>8.2f}"
        )


if __name__ == "__main__":
    main()
