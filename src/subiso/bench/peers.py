"""Functions the stdlib pool peers run in their workers (pickled by reference, so they live in
an importable module that imports nothing heavy at import time)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

_graphs: dict[str, Any] = {}


def init_worker(path: list[str], targets: list[str]) -> None:
    """ProcessPoolExecutor initializer: the host's ``sys.path``, then import the graphs (what a
    user's worker module does at import time)."""
    for entry in reversed(path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    for target in targets:
        _graph(target)


def _graph(target: str) -> Any:
    graph = _graphs.get(target)
    if graph is None:
        from subiso.runtime.targets import import_attr

        graph = _graphs[target] = import_attr(target)
    return graph


def invoke(target: str, value: Any, is_async: bool) -> Any:
    """``graph.invoke(value)`` (``asyncio.run(graph.ainvoke(value))`` for async graphs)."""
    graph = _graph(target)
    if is_async:
        return asyncio.run(graph.ainvoke(value))
    return graph.invoke(value)
