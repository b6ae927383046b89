"""No CLI default is typed twice: each is the default of the function or config it feeds."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from napari_tarrow.cli import build_parser
from napari_tarrow.cli.demo import run_demo
from napari_tarrow.config import TOP_K
from napari_tarrow.downstream.files import evaluate_files, segment_files
from napari_tarrow.downstream.segmenter_config import SegmentationConfig
from napari_tarrow.evaluation import evaluate
from napari_tarrow.inference.attribution import export_attribution
from napari_tarrow.inference.features import export_features

#: Where each subcommand's defaults come from, in order of lookup.
SOURCES: dict[str, list[Any]] = {
    "train": [],  # every option defaults to None: the preset's value (test_cli)
    "attribute": [export_attribution],
    "features": [export_features],
    "demo": [run_demo],
    "evaluate": [evaluate],
    "segment": [SegmentationConfig, segment_files],
    # the objects the segmenter keeps are those the evaluation counts
    "segment-eval": [{"min_size": SegmentationConfig.min_size}, evaluate_files],
}
#: Defaults that belong to the command line alone.
CLI_ONLY = {"device": "auto", "preset": "paper", "out": "tarrow_demo", "resume": False}


def _defaults(source: Any) -> dict[str, Any]:
    if isinstance(source, dict):
        return source
    if dataclasses.is_dataclass(source):
        return {f.name: f.default for f in dataclasses.fields(source)}
    assert isinstance(source, Callable)
    return {
        name: p.default
        for name, p in inspect.signature(source).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    ]
    return dict(action.choices)


def test_every_subcommand_is_covered() -> None:
    assert set(_subparsers()) == set(SOURCES)


def _drift(command: str, sources: list[Any]) -> list[str]:
    """Each option whose default is not that of its source, or that has no source."""
    options = [a for a in _subparsers()[command]._actions if a.option_strings]
    found = [_defaults(s) for s in sources]
    problems = []
    for name, value in ((a.dest, a.default) for a in options):
        if value is None or name == "help":
            continue
        flag = "--" + name.replace("_", "-")
        if name in CLI_ONLY:
            expected = CLI_ONLY[name]
        elif theirs := [s[name] for s in found if name in s]:
            expected = theirs[0]
        else:
            problems.append(
                f"{command} --{name}: default {value!r} typed in the CLI only"
            )
            continue
        if value != expected:
            problems.append(f"{command} {flag}: {value!r}, its source {expected!r}")
    return problems


@pytest.mark.parametrize("command", sorted(SOURCES))
def test_each_default_is_its_source_default(command: str) -> None:
    assert _drift(command, SOURCES[command]) == []


def test_a_drifted_or_unsourced_default_is_reported() -> None:
    assert _drift("attribute", [{"top_k": 3}, export_attribution]) == [
        f"attribute --top-k: {TOP_K}, its source 3"
    ]
    assert _drift("segment-eval", [evaluate_files]) == [
        "segment-eval --min-size: 64, its source 0"
    ]
    assert "typed in the CLI only" in _drift("evaluate", [])[0]
