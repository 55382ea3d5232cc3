"""The package's layout rules (issue 14, section 4), read from the source with ast:
small files and functions, no import cycles, a core that never loads Great
Expectations, and imports that point down the layers (apps -> gx -> core;
stores -> core; testing is for tests and benchmarks only)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "poison_expectations"
TOP = "poison_expectations"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def _module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is its __init__)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _module_files()


def _owner(target: str) -> str:
    """The package module that `target` (a module, or a name inside one) lives in."""
    while target not in MODULES and "." in target:
        target = target.rsplit(".", 1)[0]
    return target


def _absolute(node: ast.ImportFrom, module: str) -> str:
    """The absolute module a `from ... import` names (relative imports resolved against `module`)."""
    if not node.level:
        return node.module or ""
    package = module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]
    for _ in range(node.level - 1):
        package = package.rsplit(".", 1)[0]
    return f"{package}.{node.module}" if node.module else package


def _imports(module: str) -> set[str]:
    """Package modules that `module` imports anywhere in its file: at module level, inside
    functions, and under `if TYPE_CHECKING:` (a type-only import still ties the two modules).
    Dynamic imports (importlib.import_module, __import__) are not seen."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in MODULES else base)
    ours = {_owner(t) for t in targets if t == TOP or t.startswith(TOP + ".")}
    return ours - {module}


GRAPH = {module: _imports(module) for module in MODULES}


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (each one holds a cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _a_cycle(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One concrete cycle through the component's first module (shortest, by breadth-first search)."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & members):
            if nxt == start:
                return paths[node] + [start]
            if nxt not in paths:
                paths[nxt] = paths[node] + [nxt]
                queue.append(nxt)
    return component


def _short(module: str) -> str:
    return module.removeprefix(TOP + ".")


# -- (a) small files and functions ---------------------------------------------------------

def test_no_file_over_400_lines():
    long = {str(p.relative_to(REPO)): n for p in MODULES.values()
            if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
    assert not long, f"files over {MAX_FILE_LINES} lines: {long}"


def test_no_function_over_60_lines():
    long = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


# -- (b) no import cycles -----------------------------------------------------------------------

def test_the_import_graph_sees_known_edges():
    """The graph is read right (else an empty graph would pass the cycle test)."""
    assert f"{TOP}.core.errors" in GRAPH[f"{TOP}.stores.ledger"]
    assert f"{TOP}.testing.base" in GRAPH[f"{TOP}.testing.tables"]
    assert f"{TOP}.testing.tables" in GRAPH[f"{TOP}.testing"]  # a package __init__ importing its modules
    assert sum(map(len, GRAPH.values())) > 100


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert _strongly_connected(graph) == [["a", "b", "c"]]
    assert _a_cycle(["a", "b", "c"], graph) == ["a", "b", "c", "a"]


def test_no_import_cycles():
    cycles = [" -> ".join(map(_short, _a_cycle(c, GRAPH))) + f"  (component: {', '.join(map(_short, c))})"
              for c in _strongly_connected(GRAPH)]
    assert not cycles, "import cycles among the package's modules:\n" + "\n".join(cycles)


# -- (c) the core never loads Great Expectations ------------------------------------------------

IMPORT_UNTIL_GX = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
    if "great_expectations" in sys.modules:
        print(name)
        break
"""


def test_importing_the_core_does_not_import_great_expectations():
    core = sorted(m for m in MODULES if m.startswith(f"{TOP}.core."))
    assert len(core) > 10
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    # the package's own __init__ runs before any core module, so it is imported (and checked) first
    run = subprocess.run([sys.executable, "-c", IMPORT_UNTIL_GX, TOP, f"{TOP}.core", *core], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    first = run.stdout.strip()
    assert not first, (f"great_expectations is in sys.modules after importing {first} (modules imported in "
                       f"order: {TOP}, {TOP}.core, then every module under it, alphabetically)")


# -- (d) imports point down ------------------------------------------------------------------------

LAYER_RULES = [
    ("core", ("gx", "apps", "stores", "testing", "engines")),
    ("gx", ("apps",)),
    ("stores", ("gx", "apps", "engines")),
    ("engines", ("gx", "apps", "testing")),  # the Spark engine: core and stores only, GX-free
]


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


@pytest.mark.parametrize("layer, forbidden", LAYER_RULES, ids=[rule[0] for rule in LAYER_RULES])
def test_imports_point_down(layer, forbidden):
    wrong = sorted(f"{_short(m)} -> {_short(t)}" for m, targets in GRAPH.items() if _layer(m) == layer
                   for t in targets if _layer(t) in forbidden)
    assert not wrong, f"{layer} must not import {', '.join(forbidden)}:\n" + "\n".join(wrong)


def test_nothing_at_run_time_imports_testing():
    wrong = sorted(f"{_short(m)} -> {_short(t)}" for m, targets in GRAPH.items() if _layer(m) != "testing"
                   for t in targets if _layer(t) == "testing")
    assert not wrong, "the runtime package imports the test generators:\n" + "\n".join(wrong)
