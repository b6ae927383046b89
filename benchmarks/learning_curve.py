"""Learning curves of attribution on annotated videos: train once, snapshot, evaluate all.

    # 1. train with the CLI's options, keeping the weights at epochs 1, 2, 4, 8, ...
    python benchmarks/learning_curve.py train RUN --minutes 120 -- VIDEO \
        --preset fast --device cpu
    # 2. score every snapshot (controls computed once) and plot against samples/CPU time
    python benchmarks/learning_curve.py evaluate RUN VIDEO --tracks man_track.txt \
        --frames 0-19 --out benchmarks/results/curve_hela
    # VIDEO "demo" scores on the demo's six unseen simulated fields (no --tracks)

The snapshots (``RUN/snapshots/epoch_NNNN.safetensors``) and ``RUN/snapshots.jsonl``
(epoch, samples seen, process CPU seconds, wall seconds) let checkpoints be evaluated
while the training goes on.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from napari_tarrow import cli
from napari_tarrow.cli.evaluate import frame_range
from napari_tarrow.cli.progress import StopOnInterrupt, run_events
from napari_tarrow.cli.train import config_from_args
from napari_tarrow.model import WEIGHTS

SNAPSHOTS = "snapshots"
SHOWN = ("precision", "precision_tol")  # P@k on the pair's own divisions, and ±2 frames


def _named(out: Path, suffix: str) -> Path:
    """``out`` with ``suffix`` appended (a dot in the name, e.g. ``fg0.2``, stays)."""
    return out.with_name(out.name + suffix)


def doubling(epoch: int) -> bool:
    """Epochs 1, 2, 4, 8, ...: log-spaced points of the curve."""
    return epoch & (epoch - 1) == 0


def _clock(run: Path) -> tuple[float, float]:
    """CPU and wall seconds a resumed run has already spent (0, 0 for a new run).

    Read from ``RUN/clock.json`` (written every epoch); runs from before that file
    are extrapolated from their last snapshot at its CPU seconds per epoch.
    """
    if (run / "clock.json").exists():
        c = json.loads((run / "clock.json").read_text())
        return c["cpu_s"], c["wall_s"]
    lines = (run / "snapshots.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])
    epochs = len((run / "metrics.jsonl").read_text().splitlines())
    per_epoch = last["cpu_s"] / last["epoch"], last["wall_s"] / last["epoch"]
    return epochs * per_epoch[0], epochs * per_epoch[1]


def train_with_snapshots(
    run: Path,
    minutes: float,
    train_args: list[str],
    resume: bool = False,
    cpu_minutes: float | None = None,
) -> None:
    """Run ``napari-tarrow train`` into ``run`` and copy the last weights at doubling epochs.

    With ``resume``, the run in ``run`` continues from its checkpoint and its clocks.
    ``minutes`` limits this call's wall time, ``cpu_minutes`` the run's CPU time in all
    (resumes included); the weights of the last epoch are kept as a snapshot too.
    """
    from napari_tarrow.config import TapConfig
    from napari_tarrow.events import Checkpoint, Metrics
    from napari_tarrow.io.video import read_video
    from napari_tarrow.training.loop import train

    a = cli.build_parser().parse_args(["train", *train_args, "--out", str(run)])
    cfg = TapConfig.load(run / "config.json") if resume else config_from_args(a)
    videos = [read_video(v, cfg.data.percentiles) for v in a.video]
    (run / SNAPSHOTS).mkdir(parents=True, exist_ok=True)
    cpu_before, wall_before = _clock(run) if resume else (0.0, 0.0)
    cpu0, wall0, epoch = time.process_time(), time.perf_counter(), None

    def clock() -> dict[str, float]:
        return {
            "cpu_s": round(cpu_before + time.process_time() - cpu0, 1),
            "wall_s": round(wall_before + time.perf_counter() - wall0, 1),
        }

    def snapshot(epoch: int, values: dict) -> None:
        target = run / SNAPSHOTS / f"epoch_{epoch:04d}.safetensors"
        shutil.copyfile(run / WEIGHTS["last"], target)
        record = {
            "epoch": epoch,
            "samples": epoch * cfg.train.samples_per_epoch,
            **clock(),
            "train_acc": values["acc"],
            "file": target.name,
        }
        with open(run / "snapshots.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    with StopOnInterrupt(minutes) as limit:

        def stop() -> bool:
            over = cpu_minutes is not None and clock()["cpu_s"] > 60 * cpu_minutes
            return limit() or over

        saved = None
        for ev in train(cfg, videos, run, a.device, resume, stop=stop):
            if isinstance(ev, Metrics):
                epoch, values = ev.epoch + 1, ev.values
                print(f"epoch {epoch}: {json.dumps(values)}", flush=True)
            elif isinstance(ev, Checkpoint) and ev.kind == "last":
                (run / "clock.json").write_text(json.dumps({"epoch": epoch, **clock()}))
                if doubling(epoch):
                    snapshot(epoch, values)
                    saved = epoch
    if epoch is not None and saved != epoch:
        snapshot(epoch, values)


def snapshot_models(
    run: Path, device: str, epochs: list[int] | None = None
) -> dict[str, tuple[dict, object]]:
    """Row name -> (snapshot record, TapModel) for the snapshots of ``run`` (all, or ``epochs``)."""
    from safetensors.torch import load_file

    from napari_tarrow.model import TapModel

    out = {}
    for line in (run / "snapshots.jsonl").read_text().splitlines():
        record = json.loads(line)
        if epochs and record["epoch"] not in epochs:
            continue
        model = TapModel.from_folder(run, device=device, which="last")
        model.net.load_state_dict(load_file(str(run / SNAPSHOTS / record["file"])))
        out[f"epoch {record['epoch']}"] = (record, model)
    return out


def evaluate_snapshots(a: argparse.Namespace) -> None:
    """Score every snapshot of ``a.run`` in one evaluation; write CSV, Markdown and PNG."""
    import csv

    from napari_tarrow.cli.demo import fields_video, simulate_fields
    from napari_tarrow.evaluation import METHODS, evaluate
    from napari_tarrow.io.ctc import read_ctc
    from napari_tarrow.io.video import read_video

    snaps = snapshot_models(a.run, a.device, a.epochs)
    *earlier, (last, (_, model)) = snaps.items()  # the latest is the "TAP model" row
    row_of = {name: name for name, _ in earlier} | {last: METHODS[0]}
    if a.video == "demo":  # the demo's six unseen simulated fields and their truth
        video, truth = fields_video(simulate_fields(6, seed=100))
    elif a.tracks is None:
        sys.exit(f"evaluate {a.video}: --tracks man_track.txt is needed (CTC tracks)")
    else:
        video = read_video(a.video, model.config.data.percentiles)
        truth = read_ctc(a.tracks, video.shape[1:])
    table = run_events(
        evaluate(
            model,
            video,
            truth,
            top_k=a.top_k,
            radius=a.radius,
            frames=a.frames,
            seed=a.seed,
            compare={name: m for name, (_, m) in earlier},
        ),
        "evaluate",
        quiet=not sys.stderr.isatty(),  # no progress bar flood in logs
    )
    rows = []
    for name, (record, _) in snaps.items():
        key = row_of[name]
        row, ci = table.rows[key], table.intervals[key]
        diff = table.differences_to(key)["frame difference"]
        rows.append(
            {
                "epoch": record["epoch"],
                "samples": record["samples"],
                "cpu_min": round(record["cpu_s"] / 60, 1),
                "train_acc": round(record["train_acc"], 3),
                **{m: round(v, 3) for m, v in row.items()},
                **{
                    f"{m}_{e}": round(ci[m][i], 3)
                    for m in SHOWN
                    for i, e in enumerate(("lo", "hi"))
                },
                **{
                    f"{m}_minus_framediff": "{:+.3f} [{:+.3f}, {:+.3f}]".format(
                        *diff[m]
                    )
                    for m in SHOWN
                },
            }
        )
    controls = {m: table.rows[m] for m in METHODS[1:]}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with open(_named(a.out, ".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    st = table.settings
    head = (
        f"# {video.name}, frames {st['frames']}, {st['pairs']} pairs, "
        f"{st['divisions']} divisions; top-{a.top_k}, radius {a.radius:g}"
    )
    lines = [
        head,
        "",
        "| epoch | samples | CPU min | P@k | 95 % | P@k ±2 | 95 % | model − frame difference (P@k; ±2) | acc div / cell / bg |",
        "|---:|---:|---:|---:|---|---:|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['epoch']} | {r['samples']} | {r['cpu_min']} | {r['precision']:.3f} | "
            f"{r['precision_lo']:.3f}-{r['precision_hi']:.3f} | {r['precision_tol']:.3f} | "
            f"{r['precision_tol_lo']:.3f}-{r['precision_tol_hi']:.3f} | "
            f"{r['precision_minus_framediff']}; {r['precision_tol_minus_framediff']} | "
            f"{r['acc_division']:.2f} / {r['acc_cell']:.2f} / {r['acc_background']:.2f} |"
        )
    lines += ["", "| control | P@k | P@k ±2 |", "|---|---:|---:|"]
    lines += [
        f"| {m} | {v['precision']:.3f} | {v['precision_tol']:.3f} |"
        for m, v in controls.items()
    ]
    _named(a.out, ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(rows, controls, _named(a.out, ".png"), head[2:])


def plot(rows: list[dict], controls: dict, path: Path, title: str) -> None:
    """P@k (same pair, ±2 frames) and crop accuracy against samples and CPU minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(3, 2, figsize=(10, 10), sharex="col")
    colours = {
        "untrained network": "grey",
        "frame difference": "tab:red",
        "random foreground": "black",
    }
    for col, x_key in enumerate(("samples", "cpu_min")):
        x = [r[x_key] for r in rows]
        for ax, m, label in zip(
            axes[:2, col], SHOWN, ("P@k, same pair", "P@k, ±2 frames"), strict=True
        ):
            y = [r[m] for r in rows]
            err = [
                [r[m] - r[f"{m}_lo"] for r in rows],
                [r[f"{m}_hi"] - r[m] for r in rows],
            ]
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label="TAP model")
            for name, v in controls.items():
                ax.axhline(v[m], ls="--", color=colours[name], label=name)
            ax.set_ylabel(label)
            ax.set_xscale("log")
        ax = axes[2, col]
        for kind in ("division", "cell", "background"):
            ax.plot(
                x, [r[f"acc_{kind}"] for r in rows], marker="o", label=f"acc {kind}"
            )
        ax.axhline(0.5, ls=":", color="black", label="chance")
        ax.set_ylabel("TAP accuracy on crops")
        ax.set_xlabel(
            {"samples": "training samples", "cpu_min": "CPU minutes (process time)"}[
                x_key
            ]
        )
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap
    axes[0, 0].legend(fontsize=8)
    axes[2, 0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    argv = sys.argv[1:]
    own, rest = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :])
        if "--" in argv
        else (argv, [])
    )
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train with snapshots; CLI train options after --")
    t.add_argument("run", type=Path)
    t.add_argument(
        "--minutes", type=float, required=True, help="wall time of this call"
    )
    t.add_argument("--cpu-minutes", type=float, help="CPU time of the run in all")
    t.add_argument(
        "--resume", action="store_true", help="continue RUN (same CLI options after --)"
    )
    e = sub.add_parser("evaluate", help="score every snapshot; table and plot")
    e.add_argument("run", type=Path)
    e.add_argument(
        "video", help='the annotated video, or "demo": the demo\'s test fields'
    )
    e.add_argument("--tracks", help="CTC man_track.txt (not for the demo)")
    e.add_argument("--frames", type=frame_range)
    e.add_argument("--epochs", type=int, nargs="+", help="only these snapshots")
    e.add_argument("--top-k", type=int, default=6)
    e.add_argument("--radius", type=float, default=25.0)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="cpu")
    e.add_argument("--out", type=Path, required=True, help="prefix of .csv/.md/.png")
    a = p.parse_args(own)
    if a.command == "train":
        train_with_snapshots(a.run, a.minutes, rest, a.resume, a.cpu_minutes)
    else:
        evaluate_snapshots(a)


if __name__ == "__main__":
    main()
