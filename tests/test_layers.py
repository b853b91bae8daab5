"""The layers as the imports show them: no cycle between modules, connectors import only the
SPI, and the SPI imports nothing of bulksync outside itself.

Read with ``ast``, not by importing: every import statement counts, a function's lazy import
too, except those under ``if TYPE_CHECKING:`` (which never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import bulksync

ROOT = Path(bulksync.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:  # the else branch does run
                yield from _import_nodes(ast.Module(body=[other], type_ignores=[]))
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        yield from _import_nodes(child)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The bulksync modules ``path`` imports (a ``from package import module`` names the
    module; ``from module import name`` the module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            bases = [alias.name for alias in node.names]
            names: list[str] = []
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            bases = [base]
            names = [alias.name for alias in node.names]
        for base in bases:
            if not (base == "bulksync" or base.startswith("bulksync.")):
                continue
            subs = [f"{base}.{n}" for n in names if f"{base}.{n}" in modules]
            found.update(subs)
            if len(subs) < len(names) or not names:
                found.add(base)  # a name defined in the module (or its __init__) itself
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(ROOT.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    return {module_name(path): imports_of(path, modules) for path in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in graph:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


GRAPH = import_graph()


def test_the_walk_sees_the_imports() -> None:
    # Guards the test itself: a walk that found nothing would pass every rule below.
    assert "bulksync.spi" in GRAPH["bulksync.connectors.quable._connector"]
    assert "bulksync.connectors.quable._auth" in GRAPH["bulksync.connectors.quable._connector"]
    assert "bulksync.app.registry" in GRAPH["bulksync.app.config"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle() -> None:
    assert cycles(GRAPH) == []


@pytest.mark.parametrize(
    ("layer", "allowed"),
    [("bulksync.connectors.", "bulksync.spi"), ("bulksync.spi", "bulksync.spi")],
)
def test_a_layer_imports_only_what_it_may(layer: str, allowed: str) -> None:
    outside = {
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if module == layer or module.startswith(layer)
        for target in targets
        if not (target == allowed or target.startswith(allowed + "."))
        and not target.startswith(module.rpartition(".")[0] + ".")  # its own package
        and not (layer.endswith(".") and target.startswith(_package_of(module, layer)))
    }
    assert sorted(outside) == []


# What each layer builds on; a layer may always import its own modules.
LAYERS: dict[str, set[str]] = {
    "spi": set(),
    "store": {"spi"},
    "inputs": {"spi"},
    "connectors": {"spi"},
    "sandbox": {"spi"},
    "engine": {"spi", "store"},
    "app": {"spi", "store", "inputs", "engine", "sandbox", "_version"},
    "testing": {"spi", "store", "inputs", "engine", "sandbox", "app"},
}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_each_layer_imports_only_the_layers_it_builds_on() -> None:
    upward = {
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if _layer(module) in LAYERS
        for target in targets
        if _layer(target) != _layer(module) and _layer(target) not in LAYERS[_layer(module)]
    }
    assert sorted(upward) == []


def test_every_layer_has_a_rule() -> None:
    # A new top-level package must say what it builds on, or the rule above skips it.
    packages = {_layer(module) for module in GRAPH} - {"", "__main__", "_version"}
    assert packages <= set(LAYERS), packages - set(LAYERS)


def test_connectors_import_the_public_spi_not_its_private_modules() -> None:
    # What bulksync.spi exports is the contract; its private modules may move.
    private = {
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if module.startswith("bulksync.connectors.")
        for target in targets
        if target.startswith("bulksync.spi.")
    }
    assert sorted(private) == []


def _package_of(module: str, layer: str) -> str:
    """``bulksync.connectors.quable`` for any module of that connector."""
    rest = module[len(layer) :].split(".")[0]
    return f"{layer}{rest}"


def test_a_connector_importing_the_engine_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "bulksync" / "connectors" / "x" / "_bad.py"
    path.parent.mkdir(parents=True)
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "from bulksync.engine import transport\n"
        "if TYPE_CHECKING:\n    from bulksync.app.config import Config\n"
        "def f():\n    from bulksync.store.state import StateStore\n",
        encoding="utf-8",
    )
    modules = {"bulksync.engine.transport", "bulksync.store.state"}
    global ROOT
    saved, ROOT = ROOT, tmp_path / "bulksync"
    try:
        found = imports_of(path, modules)
    finally:
        ROOT = saved
    assert found == {"bulksync.engine.transport", "bulksync.store.state"}
