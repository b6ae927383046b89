"""Training throughput (samples/s) of TAP steps, variants interleaved in one process.

    python benchmarks/train_throughput.py --device cpu --batch 32 --size 96
    python benchmarks/train_throughput.py --device cuda --batch 128 256 512 --amp both --compile both
    python benchmarks/train_throughput.py --device cpu --channels-last both --threads 1 2
    python benchmarks/train_throughput.py --device cuda --batch 256 --amp on --compile on --cuda-tuning both

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
from napari_tarrow.data.pairs import PairSampler
from napari_tarrow.data.video import Video
from napari_tarrow.device import resolve_device, tune_cpu_allocator
from napari_tarrow.sample_data import dividing_cells
from napari_tarrow.train import optimizer, train_step


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
    for batch, amp, comp, last, tuned, threads in itertools.product(
        a.batch, choice[a.amp], choice[a.compile], choice[cl], tuning, a.threads
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
        variants[(batch, amp, comp, last, tuned, v["threads"])] = v
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
        f"{'samples/s':>10} {'data %':>7} {'GPU GiB':>8}"
    )
    for (batch, amp, comp, last, tuned, threads), v in variants.items():
        step = min(v["times"])
        data = min(v["data_times"])
        print(
            f"{batch:>6} {amp!s:>5} {comp!s:>8} {last!s:>8} {tuned!s:>6} "
            f"{threads:>8} {batch / step:>10.1f} "
            f"{100 * data / step:>6.1f}% {v['mem']:>8.2f}"
        )


if __name__ == "__main__":
    main()
