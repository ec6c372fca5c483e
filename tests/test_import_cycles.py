"""Import cycles, found mechanically by reading every module's imports.

The project's modules form a graph: an edge from module A to module B for each
explicit import statement in A that names B, wherever it stands (module level,
inside a function, under ``if TYPE_CHECKING:``). Relative imports are resolved;
``from pkg import name`` counts as importing ``pkg.name`` when that is a
submodule, else ``pkg``; importing a package counts as importing its
``__init__``. The implicit import of parent packages (``import a.b.c`` runs
``a/__init__.py`` and ``a/b/__init__.py``) adds no edge, or every re-export in
an ``__init__`` would read as a cycle.

A strongly connected component of more than one module, or a module importing
itself, is a cycle: the two ends cannot be understood, tested or moved apart.
A cycle hidden inside a function or behind ``TYPE_CHECKING`` is still a cycle.
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PACKAGES = ("bench", "consensus", "node", "p2p", "storage")


@dataclass(frozen=True, slots=True)
class Edge:
    """One explicit import of a project module by another."""

    source: str
    """The importing module, dotted."""
    target: str
    """The imported module, dotted; a package stands for its ``__init__``."""
    path: str
    """The importing file, relative to the root scanned."""
    lineno: int
    """The line of the first import statement that makes this edge."""


def get_module_name(root: Path, path: Path) -> str:
    """Return the dotted module name of a file under root; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def get_project_modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Return every module of the given top-level packages, by dotted name."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            modules[get_module_name(root, path)] = path
    return modules


def compute_base(module: str, is_package: bool, level: int, name: str | None) -> str | None:
    """Resolve the module named by ``from <level dots><name> import ...``; None if it escapes the root."""
    if level == 0:
        return name
    parts = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 > len(parts):
        return None
    parts = parts[: len(parts) - (level - 1)]
    if name:
        parts += name.split(".")
    return ".".join(parts) or None


def get_nearest_module(name: str, modules: dict[str, Path]) -> str | None:
    """Return the longest prefix of a dotted name that is a project module, if any."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def compute_edges(module: str, path: Path, root: Path, modules: dict[str, Path]) -> list[Edge]:
    """Return one edge per project module that a file imports explicitly, at its first import line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: dict[str, int] = {}

    def add(target: str | None, lineno: int) -> None:
        if target is not None and (target not in found or lineno < found[target]):
            found[target] = lineno

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(get_nearest_module(alias.name, modules), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = compute_base(module, is_package, node.level, node.module)
            if base is None:
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if alias.name != "*" and submodule in modules:
                    add(submodule, node.lineno)
                else:
                    add(get_nearest_module(base, modules), node.lineno)
    relpath = str(path.relative_to(root))
    return [Edge(module, target, relpath, lineno) for target, lineno in sorted(found.items())]


def compute_graph(root: Path, packages: tuple[str, ...]) -> dict[str, dict[str, Edge]]:
    """Return the import graph of the project's modules: source -> target -> edge."""
    modules = get_project_modules(root, packages)
    return {
        module: {edge.target: edge for edge in compute_edges(module, path, root, modules)}
        for module, path in modules.items()
    }


def compute_components(graph: dict[str, dict[str, Edge]]) -> list[list[str]]:
    """Return the strongly connected components of a graph (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        index[start] = lowlink[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        work = [(start, iter(sorted(graph[start])))]
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in graph:
                    continue
                if succ not in index:
                    index[succ] = lowlink[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    advanced = True
                    break
                if succ in on_stack:
                    lowlink[node] = min(lowlink[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                lowlink[parent] = min(lowlink[parent], lowlink[node])
            if lowlink[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def compute_shortest_path(
    graph: dict[str, dict[str, Edge]], start: str, goal: str, within: set[str]
) -> list[str]:
    """Return the shortest path start -> ... -> goal through modules of ``within`` (BFS)."""
    previous: dict[str, str] = {}
    queue = deque([start])
    seen = {start}
    while queue:
        node = queue.popleft()
        if node == goal:
            path = [goal]
            while path[-1] != start:
                path.append(previous[path[-1]])
            return path[::-1]
        for succ in sorted(graph[node]):
            if succ in within and succ not in seen:
                seen.add(succ)
                previous[succ] = node
                queue.append(succ)
    raise ValueError(f"no path from {start} to {goal} inside its component")


def compute_cycles(graph: dict[str, dict[str, Edge]]) -> list[list[str]]:
    """Return cycles as chains [a, b, ..., a] that together use every edge inside each component.

    For each edge u -> v inside a component not yet shown, the cycle is u -> v
    followed by the shortest way back from v to u, so every import that keeps
    the component tangled appears in at least one chain.
    """
    cycles = []
    for component in compute_components(graph):
        members = set(component)
        covered: set[tuple[str, str]] = set()
        for source in component:
            for target in sorted(graph[source]):
                if target not in members or (source, target) in covered:
                    continue
                if target == source:
                    chain = [source, source]
                else:
                    chain = [source, *compute_shortest_path(graph, target, source, members)]
                covered.update(zip(chain, chain[1:], strict=False))
                cycles.append(chain)
    return cycles


def format_cycle(graph: dict[str, dict[str, Edge]], chain: list[str]) -> str:
    """Describe a cycle as its chain, then the file and line of each edge."""
    lines = [" -> ".join(chain)]
    for source, target in zip(chain, chain[1:], strict=False):
        edge = graph[source][target]
        lines.append(f"    {edge.path}:{edge.lineno} imports {target}")
    return "\n".join(lines)


def get_cycle_reports(root: Path, packages: tuple[str, ...], package: str) -> list[str]:
    """Return a readable report of every cycle that passes through a module of the given package."""
    graph = compute_graph(root, packages)
    return [
        format_cycle(graph, chain)
        for chain in compute_cycles(graph)
        if any(module.split(".")[0] == package for module in chain)
    ]


@pytest.mark.parametrize("package", PACKAGES)
def test_package_has_no_import_cycles(package: str) -> None:
    reports = get_cycle_reports(ROOT, PACKAGES, package)
    assert reports == [], "import cycles:\n" + "\n".join(reports)


def write_modules(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_checker_catches_a_planted_cycle(tmp_path: Path) -> None:
    write_modules(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import B\n\nA = 1\n",
        "pkg/b.py": (
            "from typing import TYPE_CHECKING\n"
            "\n"
            "if TYPE_CHECKING:\n"
            "    from . import a\n"
            "B = 2\n"
        ),
    })
    reports = get_cycle_reports(tmp_path, ("pkg",), "pkg")
    assert reports == [
        "pkg.a -> pkg.b -> pkg.a\n"
        "    pkg/a.py:1 imports pkg.b\n"
        "    pkg/b.py:4 imports pkg.a"
    ]


def test_checker_catches_imports_inside_functions_and_self_imports(tmp_path: Path) -> None:
    write_modules(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "",
        "pkg/sub/x.py": "def f():\n    from ..y import Y\n    return Y\n",
        "pkg/y.py": "import pkg.sub.x\nY = 1\n",
        "pkg/z.py": "from .z import Z\nZ = 1\n",
    })
    reports = get_cycle_reports(tmp_path, ("pkg",), "pkg")
    assert [report.splitlines()[0] for report in reports] == [
        "pkg.sub.x -> pkg.y -> pkg.sub.x",
        "pkg.z -> pkg.z",
    ]


def test_checker_passes_an_acyclic_sample(tmp_path: Path) -> None:
    write_modules(tmp_path, {
        "pkg/__init__.py": "from pkg.a import A\nfrom pkg.b import B\n",
        "pkg/a.py": "from .base import BASE\n\nA = BASE + 1\n",
        "pkg/b.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from pkg import base\nB = 2\n",
        "pkg/base.py": "import os\n\nBASE = 0\n",
    })
    graph = compute_graph(tmp_path, ("pkg",))
    assert set(graph["pkg"]) == {"pkg.a", "pkg.b"}
    assert set(graph["pkg.b"]) == {"pkg.base"}
    assert get_cycle_reports(tmp_path, ("pkg",), "pkg") == []
