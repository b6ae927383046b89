"""Packaging: the npe2 manifest, and a Qt-free core."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "src" / "napari_tarrow"
#: Every module below the widgets and the npe2 writer.
CORE = sorted(
    ".".join(p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py")
    if p.relative_to(PACKAGE).parts[0] not in ("widgets", "_writer.py", "__init__.py")
    and p.name != "__main__.py"
)


def test_core_never_imports_qt_or_napari() -> None:
    code = (
        "import sys, importlib\n"
        f"for m in {CORE!r}: importlib.import_module('napari_tarrow.' + m)\n"
        "bad = [m for m in ('qtpy', 'napari', 'magicgui', 'PyQt6') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_package_import_is_cheap_and_the_public_names_load_on_use() -> None:
    code = (
        "import sys, napari_tarrow as tap\n"
        "print('torch' in sys.modules)\n"
        "print(all(getattr(tap, n) is not None for n in tap.__all__[1:]))\n"
        "print('torch' in sys.modules, 'napari' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.split("\n")[:3] == ["False", "True", "True False"]


def test_an_unknown_public_name_is_an_attribute_error() -> None:
    import napari_tarrow

    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        napari_tarrow.trian  # noqa: B018


def test_manifest_is_valid_and_sample_data_opens() -> None:
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_distribution("napari-tarrow")
    assert manifest.name == "napari-tarrow"
    (sample,) = manifest.contributions.sample_data
    assert sample.display_name == "Dividing cells (synthetic)"
    (cmd,) = [c for c in manifest.contributions.commands if c.id == sample.command]
    module, func = cmd.python_name.split(":")
    layers = getattr(importlib.import_module(module), func)()
    data, _meta, kind = layers[0]
    assert kind == "image" and data.ndim == 3 and data.shape[0] >= 2


def test_the_core_install_needs_neither_napari_nor_qt_and_has_one_version() -> None:
    from importlib.metadata import metadata

    from packaging.requirements import Requirement

    import napari_tarrow

    meta = metadata("napari-tarrow")
    reqs = [Requirement(r) for r in meta.get_all("Requires-Dist")]
    names = {r.name for r in reqs if r.marker is None}  # extras carry a marker
    assert "torch" in names and not names & {"napari", "magicgui", "qtpy", "PyQt6"}
    assert meta["Version"] == napari_tarrow.__version__
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert urls["Reference implementation"] == "https://github.com/weigertlab/tarrow"
    assert urls["Method (paper)"].startswith("https://arxiv.org/abs/")
