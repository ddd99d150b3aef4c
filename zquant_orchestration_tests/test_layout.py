"""The code's layout stays one a newcomer can find their way in: the defs/ packages form
layers (a domain names another domain's assets by key, never imports it), and no module
grows past one screenful of concerns."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "zquant_orchestration"
DEFS = PACKAGE / "defs"
MAX_LINES = 400
# Being split into modules of one concern each; they leave this list as they shrink.
OVER_MAX_FOR_NOW: set[str] = set()


def defs_imports() -> dict[str, set[str]]:
    """defs package -> the sibling defs packages its modules import (at any depth, lazily too)."""
    graph: dict[str, set[str]] = {}
    for package in sorted(p for p in DEFS.iterdir() if (p / "__init__.py").exists()):
        targets = graph.setdefault(package.name, set())
        for module in package.rglob("*.py"):
            for node in ast.walk(ast.parse(module.read_text(), str(module))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    if node.level:  # relative: anchored at the module's own place under defs/
                        here = module.relative_to(DEFS).parent.parts
                        if node.level - 1 > len(here):
                            continue
                        prefix = ["zquant_orchestration", "defs", *here[:len(here) - (node.level - 1)]]
                    else:
                        prefix = []
                    prefix += node.module.split(".") if node.module else []
                    names = [".".join([*prefix, alias.name]) for alias in node.names]
                else:
                    continue
                for name in names:
                    parts = name.split(".")
                    if parts[:2] == ["zquant_orchestration", "defs"] and len(parts) > 2 and parts[2] != package.name:
                        targets.add(parts[2])
    return graph


def mutual_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((a, b) for a, targets in graph.items() for b in targets if a < b and a in graph.get(b, ()))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle among the packages, each once, as the path that closes it."""
    found, seen = [], set()

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                cycle = path[path.index(nxt):]
                if frozenset(cycle) not in seen:
                    seen.add(frozenset(cycle))
                    found.append([*cycle, nxt])
            else:
                visit(nxt, [*path, nxt])

    for start in sorted(graph):
        visit(start, [start])
    return found


def test_no_defs_package_imports_a_sibling_that_imports_it_back():
    graph = defs_imports()
    assert {"market", "finance", "derived", "shared", "tushare"} <= set(graph)  # the walk found the packages
    assert mutual_imports(graph) == []
    assert cycles(graph) == [], "defs/ packages import each other in a circle: " + "; ".join(
        " -> ".join(c) for c in cycles(graph))


def test_no_module_is_over_400_lines():
    over = {str(path.relative_to(PACKAGE)): n for path in PACKAGE.rglob("*.py")
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert {name: n for name, n in over.items() if name not in OVER_MAX_FOR_NOW} == {}
