"""One source for the defaults that front ends share: the widget, the CLI and the core agree."""

from __future__ import annotations

import inspect

from napari_tarrow.cli import build_parser
from napari_tarrow.config import TOP_K
from napari_tarrow.downstream.classify import (
    RADIUS,
    CellStateClassifier,
    point_features,
)
from napari_tarrow.evaluation import evaluate
from napari_tarrow.inference.attribution import export_attribution
from napari_tarrow.widgets import AttributionWidget, ClassifyWidget


def _default(function, name: str):
    return inspect.signature(function).parameters[name].default


def test_top_regions_per_map_default_to_one_value_everywhere(
    make_napari_viewer,
) -> None:
    viewer = make_napari_viewer()
    parser = build_parser()
    cli_attribute = parser.parse_args(
        ["attribute", "m", "v.tif", "--out", "a.tif"]
    ).top_k
    cli_evaluate = parser.parse_args(
        ["evaluate", "m", "v.tif", "--tracks", "t.txt"]
    ).top_k
    assert (
        AttributionWidget(viewer).top_k.value
        == cli_attribute
        == cli_evaluate
        == _default(export_attribution, "top_k")
        == _default(evaluate, "top_k")
        == TOP_K
    )


def test_the_classifier_radius_defaults_to_one_value_everywhere(
    make_napari_viewer,
) -> None:
    viewer = make_napari_viewer()
    assert (
        ClassifyWidget(viewer).radius.value
        == _default(CellStateClassifier.__init__, "radius")
        == _default(point_features, "radius")
        == RADIUS
    )
