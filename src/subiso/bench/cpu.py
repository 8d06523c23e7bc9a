"""The CPU-bound node of the benchmark: stdlib plus ``subiso.offload`` only.

This module loads inside own-GIL subinterpreters, so SubinterpreterExecutor's hybrid mode runs
:func:`cpu_node` there; the bare interpreter pool and ``anyio.to_interpreter``/``to_process``
peers call :func:`burn` directly (pickled by reference).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from subiso import offload


def burn(n: int) -> int:
    """Pure-Python CPU work holding its interpreter's GIL for the whole loop."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


@offload
def cpu_node(state: dict[str, Any]) -> dict[str, Any]:
    """Graph node: ``burn(state["n"])``; offloaded to an interpreter in hybrid mode."""
    return {"total": burn(state["n"])}


def set_path(path: list[str]) -> None:
    """Pool initializer: the host's ``sys.path`` (so ``tests``/``examples`` import there)."""
    for entry in reversed(path):
        if entry not in sys.path:
            sys.path.insert(0, entry)


def calibrate(target_ms: float) -> int:
    """Iterations of :func:`burn` taking about ``target_ms`` on this host right now."""
    n = 20_000
    while True:
        started = time.perf_counter()
        burn(n)
        elapsed = (time.perf_counter() - started) * 1e3
        if elapsed > 10:
            return max(1000, int(n * target_ms / elapsed))
        n *= 4
