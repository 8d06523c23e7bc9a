"""The shape of the code, checked: no import circle between subiso's modules, and no module
over 600 lines (split it by responsibility instead)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "subiso"


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that import each other (size > 1)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in graph:
        if node not in index:
            visit(node)
    return groups


def test_no_import_circles() -> None:
    """Every import between subiso's modules - at the top, inside functions, under
    TYPE_CHECKING - goes one way. (The package's own lazy re-exports, ``subiso/__init__``,
    are left out: every public name lives below it.)"""
    grimp = pytest.importorskip("grimp")
    imports = grimp.build_graph("subiso")
    graph = {
        module: {m for m in imports.find_modules_directly_imported_by(module) if m != "subiso"}
        for module in imports.modules
        if module != "subiso"
    }
    assert strongly_connected(graph) == []


def test_no_module_over_600_lines() -> None:
    long = {
        str(path.relative_to(SRC)): n
        for path in SRC.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 600
    }
    assert long == {}
