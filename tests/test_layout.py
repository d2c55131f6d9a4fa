"""The source tree keeps its shape: small modules, no upward imports, no import cycles.

Read from the source files with :mod:`ast` (nothing is imported), so a violation is
named by file and line whatever the test environment has installed.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
#: Import name -> folder (pyproject.toml installs plugins/ as benchbox_plugins).
PACKAGES = {"benchbox": ROOT / "benchbox", "benchbox_plugins": ROOT / "plugins"}
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    """Every module of the two packages, by dotted name."""
    found: dict[str, Path] = {}
    for top, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [top, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()
#: The core's modules: ``benchbox`` and everything under it.
CORE = sorted(n for n in MODULES if n.split(".")[0] == "benchbox")


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(name: str, *, top_level_only: bool) -> Iterator[tuple[str, int]]:
    """``(imported module, line)`` of every import in module ``name``.

    ``top_level_only`` skips imports inside functions (deferred, so they cannot make
    an import cycle) and under ``if TYPE_CHECKING:`` (never run). ``from x import y``
    yields ``x.y`` when that is a module, else ``x``.
    """
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"), str(MODULES[name]))
    package = name if _is_package(name) else name.rpartition(".")[0]

    def visit(nodes: list[ast.stmt]) -> Iterator[tuple[str, int]]:
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield alias.name, node.lineno
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    yield (full if full in MODULES else base), node.lineno
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                if not top_level_only:
                    yield from visit(node.body)
                yield from visit(node.orelse)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if not top_level_only:
                    yield from visit(node.body)
            elif isinstance(node, ast.ClassDef):
                yield from visit(node.body)
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    children = getattr(node, field, None)
                    if children:
                        yield from visit([c for child in children for c in _as_statements(child)])

    yield from visit(tree.body)


def _as_statements(node: ast.AST) -> list[ast.stmt]:
    if isinstance(node, ast.ExceptHandler):
        return node.body
    return [node] if isinstance(node, ast.stmt) else []


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _graph() -> dict[str, set[str]]:
    """Top-level imports among benchbox modules; a module importing ``a.b.c`` also
    runs the ``__init__`` of ``a`` and ``a.b``, so those count as imported too."""
    graph: dict[str, set[str]] = {}
    for name in CORE:
        edges: set[str] = set()
        for target, _line in _imports(name, top_level_only=True):
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in MODULES and prefix != name and not name.startswith(prefix + "."):
                    edges.add(prefix)
        graph[name] = edges
    return graph


def test_no_module_is_over_500_lines() -> None:
    """One job per file: a module past 500 lines holds a second job to move out."""
    long = {
        str(path.relative_to(ROOT)): n
        for path in MODULES.values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"


def test_the_line_count_sees_every_module() -> None:
    """The walk above finds the core, its subpackages and the built-in plugins."""
    assert {"benchbox.engine.runner", "benchbox.cli.run", "benchbox.data.io"} <= set(MODULES)
    assert {"benchbox_plugins.fusion", "benchbox_plugins.metrics"} <= set(MODULES)
    assert len(MODULES) > 100


@pytest.mark.parametrize("name", CORE)
def test_the_core_never_imports_the_built_in_plugins(name: str) -> None:
    """``benchbox`` knows hooks, never a concrete plugin: not even a deferred import."""
    bad = [
        f"{MODULES[name].relative_to(ROOT)}:{line} imports {target}"
        for target, line in _imports(name, top_level_only=False)
        if target.split(".")[0] in ("benchbox_plugins", "plugins")
    ]
    assert not bad, bad


def test_the_core_never_imports_the_cli() -> None:
    """The CLI is the top layer: it calls the library, the library never calls it."""
    bad = [
        f"{MODULES[name].relative_to(ROOT)}:{line} imports {target}"
        for name in CORE
        if name.split(".")[:2] != ["benchbox", "cli"] and name != "benchbox.__main__"
        for target, line in _imports(name, top_level_only=False)
        if target == "benchbox.cli" or target.startswith("benchbox.cli.")
    ]
    assert not bad, bad


def test_errors_is_the_bottom_layer() -> None:
    """Every module may raise benchbox's errors, so ``errors`` imports no benchbox module."""
    assert not [
        t for t, _ in _imports("benchbox.errors", top_level_only=False) if t.startswith("benchbox")
    ]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph`` (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_no_import_cycles_in_the_core() -> None:
    """Top-level imports among benchbox modules form no cycle (a package's
    ``__init__`` counts: importing ``benchbox.data.io`` runs ``benchbox.data``)."""
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_every_package_is_installed() -> None:
    """pyproject.toml lists packages by hand: a new subpackage missing there would be
    left out of the wheel while every test from the source tree still passes."""
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    packages = {name for name in MODULES if _is_package(name)}
    assert packages - listed == set()
