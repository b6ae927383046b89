"""TAP training as a generator of events: the CLI, the widget and tests drive the same loop.

Writes the model folder described in :mod:`napari_tarrow.model`: the best weights by
validation loss, the last completed epoch, ``metrics.jsonl`` and a resumable
``resume.pt`` every ``checkpoint_every`` epochs. A stop request (``stop()`` returns
True) ends the run at the next step; saved models stay valid.

Nothing is written before the first save, which writes weights and config together:
a run that dies earlier leaves no folder. Every file is written atomically and
durably; a run killed at any point resumes from its last ``resume.pt`` exactly as
if it had not stopped. A lock (:mod:`napari_tarrow.io.lock`) refuses a second run
into the same folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import math
import pickle
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch

from ..config import TapConfig, TrainConfig
from ..device import amp_choice, autocast, resolve_device, tune_cpu_allocator
from ..errors import Cancelled, ConfigError, ModelFolderError, VideoError
from ..events import Checkpoint, Done, Event, Metrics, Progress
from ..io.atomic import append_line, write_bytes, write_text
from ..io.lock import FolderLock
from ..io.video import Video
from ..model import CONFIG, METRICS, TapModel
from ..nn.losses import tap_loss
from .distributed import Group, is_main_process, process_group
from .pairs import PairSampler

log = logging.getLogger(__name__)
RESUME = "resume.pt"
#: Below this many validation pairs, the "best" epoch is chosen mostly by noise.
FEW_VALIDATION_PAIRS = 3


class ValidationWarning(UserWarning):
    """The validation frames are too few to choose the best weights reliably."""


def train(
    config: TapConfig,
    videos: Sequence[Video],
    out: str | Path,
    device: str = "auto",
    resume: bool = False,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[Event]:
    """Train a TAP model on ``videos`` into the folder ``out``.

    Under ``torchrun`` every rank runs this with its own crops (DistributedDataParallel,
    see :mod:`napari_tarrow.training.distributed`); ``batch_size`` is per rank and an epoch
    still has ``samples_per_epoch`` samples in all. Only rank 0 writes ``out`` (and
    holds its lock); a stop request on any rank stops all of them.

    A new run starts from the weights of ``config.train.init_from`` when it names a
    model folder (fine-tuning); a resumed run continues from its own ``resume.pt``.

    Yields
    ------
    Progress
        Once per step (``info`` with loss, acc, samples/s every few steps).
    Metrics, Checkpoint
        At the end of each epoch (Checkpoint on the writing rank only).
    Done
        With the trained :class:`TapModel` (best weights), also after a stop.
    """
    out = Path(out)
    with FolderLock(out) if is_main_process() else contextlib.nullcontext():
        _check_out(out, resume)
        init = None if resume else _initial_weights(config)
        with process_group(resolve_device(device)) as (group, dev):
            yield from _train(config, videos, out, dev, group, resume, stop, init)


def _train(
    config: TapConfig,
    videos: Sequence[Video],
    out: Path,
    dev: torch.device,
    group: Group,
    resume: bool,
    stop: Callable[[], bool],
    init: dict[str, torch.Tensor] | None,
) -> Iterator[Event]:
    group.barrier()  # every rank has checked ``out`` before rank 0 writes to it
    if dev.type == "cpu":
        tune_cpu_allocator()
    elif dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop shapes: time kernels once
    tc = config.train
    train_s = _sampler(videos, config, config.data.split_train, dev, train=True)
    val_x, val_y = _validation_set(videos, config, dev)
    shard = slice(group.rank, None, group.world_size)  # each rank validates a share
    val_x, val_y = val_x[shard], val_y[shard]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(tc.seed)
        model = TapModel(config)
    if init is not None:
        model.net.load_state_dict(init)
    model.to(dev)
    net = model.net
    if dev.type == "cuda":
        net.to(memory_format=torch.channels_last)
    step_net = group.wrap(net, dev)
    step_net = torch.compile(step_net) if tc.compile else step_net
    steps = max(1, tc.steps_per_epoch // group.world_size)
    opt = optimizer(net, tc, dev)
    sched = torch.optim.lr_scheduler.CyclicLR(
        opt,
        base_lr=tc.lr / 10,
        max_lr=tc.lr,
        step_size_up=steps,
        cycle_momentum=False,
    )
    gen = torch.Generator(device=dev).manual_seed(group.seed(tc.seed))
    start, best = (
        _restore(out, net, opt, sched, gen, group) if resume else (0, math.inf)
    )
    if resume and group.is_main:
        _trim_metrics(out, start)
    amp = amp_choice(tc.amp, dev)
    log.info(
        "training on %s in %s%s: %d train pairs",
        dev,
        "bf16 autocast" if amp else "fp32",
        "" if tc.amp is not None else " (chosen for this device; --amp/--no-amp)",
        train_s.n_pairs,
    )
    for epoch in range(start, tc.epochs):
        stats = yield from _epoch(
            step_net, opt, sched, train_s, gen, config, steps, amp, stop, epoch, group
        )
        if (
            stats is None
        ):  # stopped mid-epoch: the last completed epoch stays the last model
            if group.is_main and not (out / "weights_last.safetensors").exists():
                model.save(out, "last")
            break
        stats.update(_evaluate(net, val_x, val_y, config, amp, group))
        stats.update(lr=sched.get_last_lr()[0], amp=amp)
        yield Metrics(epoch, stats)
        improved = stats["val_loss"] < best
        best = min(best, stats["val_loss"])  # the same on every rank (reduced)
        resumable = (epoch + 1) % tc.checkpoint_every == 0 or epoch + 1 == tc.epochs
        generators = group.gather(gen.get_state()) if resumable else []
        if not group.is_main:
            continue
        model.save(out, "last")  # the first save creates the folder
        _log_metrics(out, epoch, stats)
        yield Checkpoint(str(out), "last")
        if improved:
            model.save(out, "best")
            yield Checkpoint(str(out), "best")
        if resumable:
            _save_resume(out, net, opt, sched, generators, epoch + 1, best)
            yield Checkpoint(str(out / RESUME), "resume")
    group.barrier()  # rank 0 has written the model before the others read it
    yield Done(TapModel.from_folder(out, device=str(dev)))


def estimate_time(
    config: TapConfig,
    videos: Sequence[Video],
    device: str = "auto",
    steps: int = 3,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[Event]:
    """Time ``steps`` training steps (after one warm-up) and extrapolate to the run.

    Yields Progress per step and ``Done(seconds)``: the steps of every epoch, plus
    validation counted as a third of a step per batch (a forward pass only). Nothing
    is written; the network is a fresh one of the configured size.
    """
    dev = resolve_device(device)
    tc = config.train
    sampler = _sampler(videos, config, config.data.split_train, dev, train=True)
    net = TapModel(config).to(dev).net.train()
    opt, amp = optimizer(net, tc, dev), amp_choice(tc.amp, dev)
    gen = torch.Generator(device=dev).manual_seed(tc.seed)
    for step in range(steps + 1):
        if stop():
            raise Cancelled("time estimate stopped")
        if step == 1:  # the warm-up step (allocations, kernel choice) is not timed
            start = time.perf_counter()
        train_step(net, opt, *sampler.sample(tc.batch_size, gen), tc, amp)
        yield Progress("estimate", step + 1, steps + 1)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    per_step = (time.perf_counter() - start) / steps
    val_steps = math.ceil(tc.val_samples / tc.batch_size) / 3
    yield Done(per_step * tc.epochs * (tc.steps_per_epoch + val_steps))


def fine_tuning_config(config: TapConfig, start: TapModel) -> TapConfig:
    """Return ``config`` set to fine-tune ``start``: its architecture, normalisation, folder."""
    if start.folder is None:
        raise ConfigError(
            "the starting model has no folder: save it, then fine-tune it."
        )
    return dataclasses.replace(
        config,
        model=start.config.model,
        data=dataclasses.replace(
            config.data, percentiles=start.config.data.percentiles
        ),
        train=dataclasses.replace(
            config.train, init_from=str(Path(start.folder).resolve())
        ),
    )


def _initial_weights(config: TapConfig) -> dict[str, torch.Tensor] | None:
    """Load the weights of ``config.train.init_from`` (None if empty); refuse another architecture."""
    folder = config.train.init_from
    if not folder:
        return None
    try:
        start = TapModel.from_folder(folder)
    except ModelFolderError as e:
        raise ModelFolderError(f"cannot fine-tune from {folder}: {e}") from e
    ours, theirs = (
        dataclasses.asdict(config.model),
        dataclasses.asdict(start.config.model),
    )
    differ = [
        f"{k} {ours[k]} here, {theirs[k]} there" for k in ours if ours[k] != theirs[k]
    ]
    if differ:
        raise ConfigError(
            f"cannot fine-tune from {folder}: its architecture differs ({'; '.join(differ)}); "
            "keep the starting model's architecture (see fine_tuning_config)."
        )
    return start.net.state_dict()


def _check_out(out: Path, resume: bool) -> None:
    has_model = (out / CONFIG).exists()
    if resume and not (out / RESUME).exists():
        raise ConfigError(
            f"cannot resume: {out / RESUME} does not exist; start a new run instead."
        )
    if has_model and not resume:
        raise ConfigError(
            f"{out} already holds a model; resume it (--resume, resume=True) or choose "
            "another output folder."
        )


def _epoch(net, opt, sched, sampler, gen, config, n, amp, stop, epoch, group):
    """One epoch of ``n`` steps; yields Progress, returns {"loss", "acc", ...} or None if stopped.

    Metrics are reduced over ranks. Ranks agree on a stop request every step on the
    CPU and every few steps on a GPU (where the agreement costs a host synchronisation).
    """
    tc = config.train
    net.train()
    dev = sampler.device
    totals = torch.zeros(3, device=dev)  # loss (sum of step means), correct, samples
    t0, every = time.perf_counter(), max(1, n // 20)
    agree_every = 1 if dev.type == "cpu" else min(every, 16)
    for step in range(n):
        if step % agree_every == 0 and group.any(stop(), dev):
            return None
        x, y = sampler.sample(tc.batch_size, gen)
        loss, logits = train_step(net, opt, x, y, tc, amp)
        sched.step()
        totals[0] += loss
        totals[1] += (logits.argmax(1) == y).sum()
        totals[2] += len(y)
        info = {}
        if (step + 1) % every == 0 or step + 1 == n:
            loss_, acc, rate, _ = _reduced(group, totals, step + 1, t0)
            info = {"loss": loss_, "acc": acc, "samples/s": rate, "epoch": epoch + 1}
        yield Progress("train", epoch * n + step + 1, tc.epochs * n, info)
    loss_, acc, rate, samples = _reduced(group, totals, n, t0)
    stats = {"loss": loss_, "acc": acc, "samples_per_s": rate}
    if group.active:  # the record that every rank trained
        stats.update(world_size=group.world_size, samples=samples)
    return stats


def _reduced(
    group: Group, totals: torch.Tensor, steps: int, t0: float
) -> tuple[float, float, float, float]:
    """(loss, accuracy, samples/s, samples) of all ranks after ``steps`` steps each."""
    loss, correct, samples = group.sum(totals.clone()).tolist()
    return (
        loss / (steps * group.world_size),
        correct / samples,
        samples / (time.perf_counter() - t0),
        samples,
    )


def optimizer(
    net: torch.nn.Module, tc: TrainConfig, dev: torch.device, fused: bool = True
) -> torch.optim.Adam:
    """Adam at the config's learning rate; on CUDA one fused kernel for all parameters."""
    return torch.optim.Adam(
        net.parameters(),
        lr=tc.lr,
        weight_decay=tc.weight_decay,
        fused=(fused and dev.type == "cuda") or None,
    )


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


def _sampler(
    videos: Sequence[Video],
    config: TapConfig,
    interval: tuple[float, float],
    dev: torch.device,
    train: bool,
) -> PairSampler:
    """Build the configured pair sampler of ``interval``; augmented for training only."""
    d = config.data
    return PairSampler(
        videos, d.delta, interval, d.size, dev, augment=train and d.augment,
        subsample=config.model.subsample, foreground=d.foreground,
    )  # fmt: skip


def _validation_set(videos: Sequence[Video], config: TapConfig, dev: torch.device):
    """Draw the fixed validation pairs (no augmentation) once, with the run's seed."""
    d, tc = config.data, config.train
    interval = f"the validation interval {d.split_val[0]:g}-{d.split_val[1]:g} of the time span"
    try:
        sampler = _sampler(videos, config, d.split_val, dev, train=False)
    except VideoError:
        warnings.warn(
            f"{interval} holds no frame pairs: validating on the training frames, so "
            "the 'best' weights are those that fit them best. Start the interval "
            "earlier (command line: --split-val START 1).",
            ValidationWarning,
            stacklevel=2,
        )
        sampler = _sampler(videos, config, d.split_train, dev, train=False)
    else:
        if sampler.n_pairs < FEW_VALIDATION_PAIRS:
            warnings.warn(
                f"{interval} holds only {sampler.n_pairs} frame pair(s): the 'best' "
                "weights will be picked largely by noise. Prefer the last weights "
                "(weights_last.safetensors), or start the interval earlier (command "
                "line: --split-val START 1).",
                ValidationWarning,
                stacklevel=2,
            )
    gen = torch.Generator(device=dev).manual_seed(tc.seed + 1)
    n = max(tc.val_samples, 2)
    return sampler.sample(n, gen)


@torch.no_grad()
def _evaluate(
    net, x, y, config: TapConfig, amp: bool, group: Group
) -> dict[str, float]:
    """Compute validation loss and accuracy over all ranks' pairs (each holds a share)."""
    net.eval()
    tc = config.train
    totals = torch.zeros(3, device=x.device)  # loss sum, correct, pairs
    for i in range(0, len(x), tc.batch_size):
        xb, yb = x[i : i + tc.batch_size], y[i : i + tc.batch_size]
        with autocast(x.device, amp):
            logits, z = net(xb)
            loss, _ = tap_loss(logits, yb, z, tc.lambda_decorrelation, tc.temperature)
        totals[0] += loss.float() * len(xb)
        totals[1] += (logits.argmax(1) == yb).sum()
        totals[2] += len(xb)
    loss_sum, correct, n = group.sum(totals).tolist()
    return {"val_loss": loss_sum / n, "val_acc": correct / n}


def _log_metrics(out: Path, epoch: int, stats: dict[str, float]) -> None:
    append_line(out / METRICS, json.dumps({"epoch": epoch + 1, **stats}))


def _trim_metrics(out: Path, epochs: int) -> None:
    """Keep the metrics of the first ``epochs`` epochs, those the resumed run continues.

    A killed run may have logged epochs after its last ``resume.pt``, or half a line;
    the resumed run logs those epochs again.
    """
    path = out / METRICS
    if not path.exists():
        return
    lines = path.read_text(errors="replace").splitlines()
    kept = [line for line in lines if _logged_epoch(line) <= epochs]
    if kept != lines:
        write_text(path, "".join(f"{line}\n" for line in kept))


def _logged_epoch(line: str) -> float:
    """Epoch of a metrics line; infinity for a line that is not one (e.g. cut short)."""
    try:
        return int(json.loads(line)["epoch"])
    except (ValueError, KeyError, TypeError):
        return math.inf


def _save_resume(
    out: Path, net, opt, sched, generators: list[torch.Tensor], epoch: int, best: float
) -> None:
    """Write ``resume.pt``; ``generators`` holds every rank's sampling RNG state."""
    state = {
        "epoch": epoch,
        "best_val_loss": best,
        "net": net.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "generators": generators,
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes(out / RESUME, buffer.getvalue())


def _restore(out: Path, net, opt, sched, gen, group: Group) -> tuple[int, float]:
    """Load ``resume.pt``; each rank continues its own random stream where it can.

    A corrupt file, or one of another architecture, is a :class:`ModelFolderError`.
    """
    path = out / RESUME
    keep = (
        f"the model in {out} still loads; to train it further, start a new run from "
        f"it: --init {out} --out NEW_FOLDER"
    )
    if not zipfile.is_zipfile(path):
        raise ModelFolderError(
            f"cannot resume: {path} is cut short or not written by torch.save "
            f"(no zip archive); {keep}."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ModelFolderError(
            f"cannot resume: {path} holds Python objects other than tensors, which "
            f"napari-tarrow never unpickles; {keep}."
        ) from e
    except (RuntimeError, OSError, EOFError) as e:
        raise ModelFolderError(
            f"cannot resume: {path} is corrupt ({_detail(e)}); {keep}."
        ) from e
    try:
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        generators = state.get("generators") or [state["generator"]]  # older: one
        if group.rank < len(generators):
            gen.set_state(generators[group.rank])
        else:  # more ranks than the saved run: a fresh stream per rank and epoch
            gen.manual_seed(group.seed(int(state["epoch"]) * 7919 + 1))
        return int(state["epoch"]), float(state["best_val_loss"])
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelFolderError(
            f"cannot resume: {path} does not fit the architecture in {out / CONFIG} "
            f"({_detail(e)}); {keep}."
        ) from e


def _detail(e: Exception) -> str:
    """Return the telling line of an error (load_state_dict lists problems from its second)."""
    lines = [line.strip() for line in str(e).strip().splitlines()] or [repr(e)]
    return lines[min(1, len(lines) - 1)][:160]
