#!/usr/bin/env python3
"""The import rules of docs/design.md §2, checked over the source with `ast`.

Fails (exit 1), listing each offender as file:line, on

- any import of `simulator` from a production folder, including a string that names a
  simulator module (`importlib.import_module("simulator.kiosk")`, a tuple of command
  modules): production runs with `simulator/` deleted, and finds it only through an
  entry point;
- `central/` importing `edge/`, directly or through another module (central runs with
  no kiosk code): what both ends share is in `greenpass/record/`;
- any import cycle between production modules;
- `bench/` or `devkit/` importing `tests/` (what they share is in `devkit/`).

Every import counts: at module level and inside functions (a lazy import is still a
dependency), except in an `if TYPE_CHECKING:` block, which never runs. An import of a
module counts as a dependency on that module alone; the package `__init__` files it
passes through are counted by their own imports.

    python scripts/check_imports.py [--root DIR]

Run by `make lint`. Standard library only.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PRODUCTION = ("edge", "central", "sync", "hardware", "provisioning", "greenpass", "kiosk_ui")
# MicroPython for the scale board: its imports are the board's, not the project's.
SKIP = ("hardware/firmware",)
SIMULATOR = "simulator"
# Development folders and what they must not import.
NOT_FROM = {"bench": ("tests",), "devkit": ("tests", "bench")}
# A string that is a simulator module's dotted name, e.g. "simulator.cli" or
# "simulator.kiosk:open_devices" (prose that mentions one does not match).
_SIM_STRING = re.compile(
    r"^simulator(\.[A-Za-z_]\w*)+(:[A-Za-z_][\w.]*)?$|^simulator:[A-Za-z_][\w.]*$"
)
_IMPORT_CALLS = {"import_module", "__import__"}


@dataclass(frozen=True)
class Import:
    target: str  # a dotted module name, as written (resolved if relative)
    line: int
    names: tuple[str, ...] = ()  # of `from target import …`: submodules or attributes


@dataclass(frozen=True)
class Offence:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def production_files(root: Path) -> Iterator[Path]:
    for top in PRODUCTION:
        folder = root / top
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if not any(rel.startswith(skip + "/") for skip in SKIP):
                yield path


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.imports: list[Import] = []
        self.sim_strings: list[Import] = []

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:  # only the `else:` of `if TYPE_CHECKING:` runs
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.imports.append(Import(alias.name, node.lineno))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            parts = self.package.split(".") if self.package else []
            parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
            base = ".".join([*parts, base] if base else parts)
        self.imports.append(Import(base, node.lineno, tuple(a.name for a in node.names)))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in _IMPORT_CALLS and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                self.imports.append(Import(arg.value, node.lineno))
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and _SIM_STRING.match(node.value):
            self.sim_strings.append(Import(node.value, node.lineno))


def _is_under(name: str, top: str) -> bool:
    return name == top or name.startswith(top + ".")


def _development_offences(root: Path) -> list[Offence]:
    offences = []
    for folder, banned in NOT_FROM.items():
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            collector = _Collector(module_name(root, path), path.name == "__init__.py")
            collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=rel))
            for imp in collector.imports:
                for top in banned:
                    if _is_under(imp.target, top):
                        offences.append(Offence(rel, imp.line, f"{folder}/ imports {imp.target}"))
    return offences


def check(root: Path) -> list[Offence]:
    files = {module_name(root, p): p for p in production_files(root)}
    graph: dict[str, dict[str, int]] = {name: {} for name in files}
    offences: list[Offence] = _development_offences(root)
    for name, path in files.items():
        rel = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        collector = _Collector(name, path.name == "__init__.py")
        collector.visit(tree)
        reported: set[int] = set()
        for imp in collector.imports:
            if _is_under(imp.target, SIMULATOR) and imp.line not in reported:
                reported.add(imp.line)
                offences.append(Offence(rel, imp.line, f"imports the simulator ({imp.target})"))
            elif _is_under(name, "central") and _is_under(imp.target, "edge"):
                offences.append(Offence(rel, imp.line, f"central imports the kiosk's {imp.target}"))
            for target in _targets(imp, files):
                if target != name:
                    graph[name].setdefault(target, imp.line)
        for s in collector.sim_strings:
            if s.line not in reported:
                reported.add(s.line)
                offences.append(Offence(rel, s.line, f"names a simulator module ({s.target!r})"))
    offences += _central_reaches_edge(root, files, graph)
    for component, cycle in _cycles(graph):
        first = cycle[0]
        steps = [
            f"{files[a].relative_to(root).as_posix()}:{graph[a][b]} ({a} -> {b})"
            for a, b in zip(cycle, [*cycle[1:], first], strict=True)
        ]
        others = sorted(set(component) - set(cycle))
        if others:  # break this one and another cycle among them shows up next
            steps.append("tied to the same cycles: " + ", ".join(others))
        head = files[first].relative_to(root).as_posix()
        offences.append(
            Offence(
                head,
                graph[first][cycle[1]],
                "import cycle: " + " -> ".join([*cycle, first]) + "\n    " + "\n    ".join(steps),
            )
        )
    return offences


def _central_reaches_edge(
    root: Path, files: dict[str, Path], graph: dict[str, dict[str, int]]
) -> list[Offence]:
    """Where an import chain from central enters edge through modules outside both (a
    direct import is reported on its own line)."""
    came_from: dict[str, str] = {}
    frontier = sorted(n for n in graph if _is_under(n, "central"))
    seen = set(frontier)
    entered: set[tuple[str, str]] = set()  # one offence per import line out of central
    offences = []
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if _is_under(child, "edge"):
                    if _is_under(node, "central"):
                        continue  # a direct import: reported on its own
                    chain = [child, node]
                    while not _is_under(chain[-1], "central"):
                        chain.append(came_from[chain[-1]])
                    first, second = chain[-1], chain[-2]
                    if (first, second) in entered:
                        continue
                    entered.add((first, second))
                    offences.append(
                        Offence(
                            files[first].relative_to(root).as_posix(),
                            graph[first][second],
                            "central reaches the kiosk's " + " <- ".join(chain),
                        )
                    )
                elif child not in seen:
                    seen.add(child)
                    came_from[child] = node
                    following.append(child)
        frontier = following
    return offences


def _targets(imp: Import, modules: dict[str, Path]) -> list[str]:
    """The production modules an import depends on. `from pkg import mod` depends on the
    submodule `pkg.mod`; it depends on `pkg` itself only for a name that is not a
    submodule (an attribute of `pkg/__init__.py`)."""
    submodules = [f"{imp.target}.{n}" for n in imp.names if f"{imp.target}.{n}" in modules]
    found = submodules
    if len(submodules) < len(imp.names) or not imp.names:
        found = [*submodules, imp.target]
    return [t for t in found if t in modules]


def _cycles(graph: dict[str, dict[str, int]]) -> list[tuple[list[str], list[str]]]:
    """Each strongly connected component of more than one module, with one shortest
    cycle through it (Tarjan's algorithm, iterative; then a breadth-first search)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
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
                        components.append(sorted(component))
    return [(c, _shortest_cycle(graph, set(c), c[0])) for c in sorted(components)]


def _shortest_cycle(graph: dict[str, dict[str, int]], members: set[str], start: str) -> list[str]:
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return path[::-1]
                if child not in came_from:
                    came_from[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start} is in a cycle with no path back to it")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root", type=Path, default=Path(__file__).resolve().parents[1], help="the checkout"
    )
    args = parser.parse_args(argv)
    offences = check(args.root)
    for offence in offences:
        print(offence)
    if offences:
        print(f"check_imports: {len(offences)} offence(s) (docs/design.md §2)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
