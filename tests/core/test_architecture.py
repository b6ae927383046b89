"""The import rule of docs/architecture.md: imports point down the layers, no cycles.

Every import counts, also those inside functions (a deferred import is still a
dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import napari_tarrow

PACKAGE = Path(napari_tarrow.__file__).parent

#: Layers, lowest first: a module's first matching prefix gives its layer.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("_version", "errors", "events", "io.atomic", "config", "device")),
    ("io", ("io",)),
    ("network", ("nn",)),
    ("model", ("model",)),
    ("jobs", ("training", "inference")),
    ("evaluation and downstream", ("evaluation", "downstream")),
    ("front ends", ("cli", "widgets", "_writer")),
    ("public API", ("napari_tarrow", "api")),
]
#: Within the front ends, who may not import whom.
FRONT_ENDS_APART = {"cli": ("widgets",), "widgets": ("cli",)}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "napari_tarrow"


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        package = "" if name == "napari_tarrow" else package
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):  # import napari_tarrow.x.y
                for alias in node.names:
                    if alias.name.startswith("napari_tarrow."):
                        deps.add(alias.name.removeprefix("napari_tarrow."))
                continue
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif (node.module or "").startswith("napari_tarrow"):
                target = node.module.removeprefix("napari_tarrow").lstrip(".")
            else:
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}".lstrip(".")
                deps.add(full if full in modules else target or "napari_tarrow")
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def _layer(module: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if module == p or (module.startswith(p + ".") and p != "napari_tarrow"):
                return rank
    raise AssertionError(f"{module} is in no layer of docs/architecture.md")


def test_every_module_has_a_layer_and_imports_point_down() -> None:
    graph = _graph()
    assert len(graph) > 30  # the walk found the package
    upward = [
        f"{m} ({LAYERS[_layer(m)][0]}) imports {d} ({LAYERS[_layer(d)][0]})"
        for m, deps in graph.items()
        for d in deps
        if _layer(d) > _layer(m)
    ]
    assert not upward, upward


def test_front_ends_do_not_import_each_other() -> None:
    graph = _graph()
    crossing = [
        f"{m} imports {d}"
        for m, deps in graph.items()
        for d in deps
        for src, banned in FRONT_ENDS_APART.items()
        if m.split(".")[0] == src and d.split(".")[0] in banned
    ]
    assert not crossing, crossing


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for dep in graph[node]:
            assert state.get(dep) != "open", " -> ".join([*path, node, dep])
            if dep not in state:
                visit(dep, [*path, node])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [])
