"""TAP training as a generator of events: the CLI, the widget and tests drive the same loop.

Writes the model folder described in :mod:`napari_tarrow.model`: the best weights by
validation loss, the last completed epoch, ``metrics.jsonl`` and a resumable
``resume.pt`` every ``checkpoint_every`` epochs. A stop request (``stop()`` returns
True) ends the run at the next step; saved models stay valid.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch

from .config import TapConfig, TrainConfig
from .data.pairs import PairSampler
from .data.video import Video
from .device import autocast, resolve_device, tune_cpu_allocator
from .errors import ConfigError, VideoError
from .events import Checkpoint, Done, Event, Metrics, Progress
from .model import CONFIG, TapModel, atomic_path
from .nn.losses import tap_loss

log = logging.getLogger(__name__)
RESUME = "resume.pt"
METRICS = "metrics.jsonl"


def train(
    config: TapConfig,
    videos: Sequence[Video],
    out: str | Path,
    device: str = "auto",
    resume: bool = False,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[Event]:
    """Train a TAP model on ``videos`` into the folder ``out``.

    Yields
    ------
    Progress
        Once per step (``info`` with loss, acc, samples/s every few steps).
    Metrics, Checkpoint
        At the end of each epoch.
    Done
        With the trained :class:`TapModel` (best weights), also after a stop.
    """
    out = Path(out)
    _check_out(out, resume)
    dev = resolve_device(device)
    if dev.type == "cpu":
        tune_cpu_allocator()
    tc = config.train
    train_s = PairSampler(
        videos,
        config.data.delta,
        config.data.split_train,
        config.data.size,
        dev,
        augment=config.data.augment,
    )
    val_x, val_y = _validation_set(videos, config, dev)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(tc.seed)
        model = TapModel(config)
    model.to(dev)
    net = model.net
    if dev.type == "cuda":
        net.to(memory_format=torch.channels_last)
    step_net = torch.compile(net) if tc.compile else net
    opt = torch.optim.Adam(net.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.CyclicLR(
        opt,
        base_lr=tc.lr / 10,
        max_lr=tc.lr,
        step_size_up=max(1, tc.steps_per_epoch),
        cycle_momentum=False,
    )
    gen = torch.Generator(device=dev).manual_seed(tc.seed)
    start, best = _restore(out, net, opt, sched, gen) if resume else (0, math.inf)
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / CONFIG)
    log.info("training on %s: %d train pairs", dev, train_s.n_pairs)
    amp = tc.amp and dev.type in ("cuda", "cpu")
    for epoch in range(start, tc.epochs):
        stats = yield from _epoch(
            step_net, opt, sched, train_s, gen, config, amp, stop, epoch
        )
        if (
            stats is None
        ):  # stopped mid-epoch: the last completed epoch stays the last model
            if not (out / "weights_last.safetensors").exists():
                model.save(out, "last")
            break
        stats.update(_evaluate(net, val_x, val_y, config, amp))
        stats["lr"] = sched.get_last_lr()[0]
        _log_metrics(out, epoch, stats)
        yield Metrics(epoch, stats)
        model.save(out, "last")
        yield Checkpoint(str(out), "last")
        if stats["val_loss"] < best:
            best = stats["val_loss"]
            model.save(out, "best")
            yield Checkpoint(str(out), "best")
        if (epoch + 1) % tc.checkpoint_every == 0 or epoch + 1 == tc.epochs:
            _save_resume(out, net, opt, sched, gen, epoch + 1, best)
            yield Checkpoint(str(out / RESUME), "resume")
    yield Done(TapModel.from_folder(out, device=str(dev)))


def _check_out(out: Path, resume: bool) -> None:
    has_model = (out / CONFIG).exists()
    if resume and not (out / RESUME).exists():
        raise ConfigError(
            f"cannot resume: {out / RESUME} does not exist; train without --resume."
        )
    if has_model and not resume:
        raise ConfigError(
            f"{out} already holds a model; use --resume to continue it or choose another --out."
        )


def _epoch(net, opt, sched, sampler, gen, config, amp, stop, epoch):
    """One epoch of steps; yields Progress, returns {"loss", "acc"} or None if stopped."""
    tc = config.train
    net.train()
    n = tc.steps_per_epoch
    loss_sum = torch.zeros((), device=sampler.device)
    correct = torch.zeros((), device=sampler.device)
    t0, every = time.perf_counter(), max(1, n // 20)
    for step in range(n):
        if stop():
            return None
        x, y = sampler.sample(tc.batch_size, gen)
        loss, logits = train_step(net, opt, x, y, tc, amp)
        sched.step()
        loss_sum += loss
        correct += (logits.argmax(1) == y).sum()
        info = {}
        if (step + 1) % every == 0 or step + 1 == n:
            done = (step + 1) * tc.batch_size
            info = {
                "loss": loss_sum.item() / (step + 1),
                "acc": correct.item() / done,
                "samples/s": done / (time.perf_counter() - t0),
                "epoch": epoch + 1,
            }
        yield Progress("train", epoch * n + step + 1, tc.epochs * n, info)
    return {
        "loss": loss_sum.item() / n,
        "acc": correct.item() / (n * tc.batch_size),
        "samples_per_s": n * tc.batch_size / (time.perf_counter() - t0),
    }


def train_step(
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    tc: TrainConfig,
    amp: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on pairs ``x`` (B, 2, S, S); returns detached (loss, logits)."""
    with autocast(x.device, amp):
        logits, z = net(x)
        loss, _ = tap_loss(logits, y, z, tc.lambda_decorrelation, tc.temperature)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach(), logits.detach()


def _validation_set(videos: Sequence[Video], config: TapConfig, dev: torch.device):
    """Draw the fixed validation pairs (no augmentation) once, with the run's seed."""
    d, tc = config.data, config.train
    try:
        sampler = PairSampler(videos, d.delta, d.split_val, d.size, dev)
    except VideoError:
        log.warning(
            "no validation pairs in split_val %s; validating on training frames",
            d.split_val,
        )
        sampler = PairSampler(videos, d.delta, d.split_train, d.size, dev)
    gen = torch.Generator(device=dev).manual_seed(tc.seed + 1)
    n = max(tc.val_samples, 2)
    return sampler.sample(n, gen)


@torch.no_grad()
def _evaluate(net, x, y, config: TapConfig, amp: bool) -> dict[str, float]:
    net.eval()
    tc = config.train
    loss_sum, correct = 0.0, 0
    for i in range(0, len(x), tc.batch_size):
        xb, yb = x[i : i + tc.batch_size], y[i : i + tc.batch_size]
        with autocast(x.device, amp):
            logits, z = net(xb)
            loss, _ = tap_loss(logits, yb, z, tc.lambda_decorrelation, tc.temperature)
        loss_sum += loss.item() * len(xb)
        correct += int((logits.argmax(1) == yb).sum())
    return {"val_loss": loss_sum / len(x), "val_acc": correct / len(x)}


def _log_metrics(out: Path, epoch: int, stats: dict[str, float]) -> None:
    with open(out / METRICS, "a") as f:
        f.write(json.dumps({"epoch": epoch + 1, **stats}) + "\n")


def _save_resume(out: Path, net, opt, sched, gen, epoch: int, best: float) -> None:
    state = {
        "epoch": epoch,
        "best_val_loss": best,
        "net": net.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "generator": gen.get_state(),
    }
    tmp = atomic_path(out / RESUME)
    torch.save(state, tmp)
    os.replace(tmp, out / RESUME)


def _restore(out: Path, net, opt, sched, gen) -> tuple[int, float]:
    state = torch.load(out / RESUME, map_location="cpu", weights_only=True)
    net.load_state_dict(state["net"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    gen.set_state(state["generator"])
    return int(state["epoch"]), float(state["best_val_loss"])
