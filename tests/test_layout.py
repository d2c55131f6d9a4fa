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


def _imports(
    name: str, *, top_level_only: bool, type_checking: bool = False
) -> Iterator[tuple[str, int]]:
    """``(imported module, line)`` of every import in module ``name``.

    ``top_level_only`` skips imports inside functions; imports under
    ``if TYPE_CHECKING:`` (never run) are read only with ``type_checking``.
    ``from x import y`` yields ``x.y`` when that is a module, else ``x``.
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
                if type_checking:
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


def _graph(*, top_level_only: bool = True) -> dict[str, set[str]]:
    """Imports among benchbox modules (top-level ones only, or every import that runs,
    those inside functions included); a module importing ``a.b.c`` also runs the
    ``__init__`` of ``a`` and ``a.b``, so those count as imported too."""
    graph: dict[str, set[str]] = {}
    for name in CORE:
        edges: set[str] = set()
        for target, _line in _imports(name, top_level_only=top_level_only):
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in MODULES and prefix != name and not name.startswith(prefix + "."):
                    edges.add(prefix)
        graph[name] = edges
    return graph


#: Which parts of the core may import which. A part is a subpackage (``engine``), or one
#: of the modules at the top (``errors``, ``hookspecs``). Read bottom-up: ``errors`` is
#: the bottom layer, the CLI the top. Every part may also import ``benchbox`` itself (the
#: public API of ``__init__``).
LOWER = {"errors", "hookspecs", "hooks", "config"}
STORAGE = LOWER | {"records", "metrics", "data", "scoring"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "hookspecs": {"errors"},
    "hooks": {"errors", "hookspecs"},
    "config": {"errors"},
    "records": {"errors", "hooks", "config", "metrics"},
    "metrics": {"errors", "hooks"},
    "data": {"errors", "hooks", "config", "records"},
    "scoring": {"errors", "hooks", "config", "records", "metrics", "data"},
    "engine": STORAGE,
    "analysis": LOWER | {"records"},
    "report": LOWER | {"records", "analysis"},
    "bench": STORAGE | {"engine"},
    "deploy": STORAGE | {"engine"},
    "sweep": STORAGE | {"engine", "analysis"},
    "testing": STORAGE | {"engine", "analysis", "report", "bench", "deploy", "sweep"},
    "cli": STORAGE | {"engine", "analysis", "report", "bench", "deploy", "sweep", "testing"},
    "__main__": {"cli", "sweep"},
    # The public facade: it imports errors, hookspecs and hooks at once, and re-exports
    # a few names of lower parts on first use (PEP 562), never the CLI.
    "benchbox": STORAGE | {"sweep"},
}


def _part(module: str) -> str:
    """The layer a core module belongs to (see :data:`ALLOWED`)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_every_part_of_the_core_has_a_layer() -> None:
    assert {_part(name) for name in CORE} == set(ALLOWED)


@pytest.mark.parametrize("name", CORE)
def test_imports_follow_the_layers(name: str) -> None:
    """Every import (at the top, inside functions, under ``TYPE_CHECKING``) goes to the
    module's own part, a lower one (:data:`ALLOWED`), or ``benchbox`` itself."""
    mine = _part(name)
    bad = [
        f"{MODULES[name].relative_to(ROOT)}:{line} imports {target} ({_part(target)})"
        for target, line in _imports(name, top_level_only=False, type_checking=True)
        if target.split(".")[0] == "benchbox"
        and target in MODULES
        and _part(target) not in {mine, "benchbox", *ALLOWED[mine]}
    ]
    assert not bad, bad


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
        for target, line in _imports(name, top_level_only=False, type_checking=True)
        if target.split(".")[0] in ("benchbox_plugins", "plugins")
    ]
    assert not bad, bad


def test_the_core_never_imports_the_cli() -> None:
    """The CLI is the top layer: it calls the library, the library never calls it."""
    bad = [
        f"{MODULES[name].relative_to(ROOT)}:{line} imports {target}"
        for name in CORE
        if name.split(".")[:2] != ["benchbox", "cli"] and name != "benchbox.__main__"
        for target, line in _imports(name, top_level_only=False, type_checking=True)
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
    """Imports among benchbox modules form no cycle, those inside functions included (a
    package's ``__init__`` counts: importing ``benchbox.data.io`` runs ``benchbox.data``).
    ``benchbox`` itself is left out: its lookups import the registry lazily by design."""
    graph = {
        k: {t for t in v if t != "benchbox"}
        for k, v in _graph(top_level_only=False).items()
        if k != "benchbox"
    }
    assert _cycles(graph) == []


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


#: The modules a plugin may import from: ``benchbox`` itself, and the metric functions
#: and dataset readers the built-ins register (each name must be in the module's
#: ``__all__``).
PUBLIC = ("benchbox", "benchbox.metrics", "benchbox.data")


def _public_names(module: str) -> set[str] | None:
    """The ``__all__`` of a public module (read from the source), or ``None``."""
    if module not in PUBLIC and not (
        module.startswith("benchbox.metrics.")
        and module.rpartition(".")[2] in (_public_names("benchbox.metrics") or ())
    ):
        return None
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return {ast.literal_eval(e) for e in node.value.elts}  # type: ignore[attr-defined]
    return set()


PLUGINS = sorted(n for n in MODULES if n.split(".")[0] == "benchbox_plugins")


@pytest.mark.parametrize("name", PLUGINS)
def test_the_built_in_plugins_use_only_the_public_api(name: str) -> None:
    """A built-in imports from ``benchbox`` what any plugin author can: the names in the
    ``__all__`` of :data:`PUBLIC` modules (and the public metric modules), nothing else
    of the core; so the public API is enough to write them."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bad += [a.name for a in node.names if a.name.split(".")[0] == "benchbox"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "benchbox":
            public = _public_names(node.module or "")
            for alias in node.names:
                if public is None or alias.name not in public or alias.name.startswith("_"):
                    bad.append(f"{node.module}.{alias.name} (line {node.lineno})")
    assert not bad, f"{MODULES[name].relative_to(ROOT)} imports non-public names: {bad}"
