"""Pure-Python workflows and node functions for SubinterpreterExecutor's tests and benchmark.

Stdlib plus ``subiso.offload`` only, so this module loads inside an isolated subinterpreter:
its workflow functions run there whole (full mode) and its ``@offload`` node functions are
imported there by hybrid runs. No langgraph here; ``tests/hybrid_workloads.py`` wires these
into graphs.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from subiso import offload


class WorkflowError(Exception):
    """Raised on purpose: tests check that type, message and traceback text survive."""


def interp_id() -> int:
    """Id of the interpreter running this code (0 is the host's main interpreter)."""
    try:
        import _interpreters
    except ImportError:  # Python < 3.13: there is only the main interpreter
        return 0
    return int(_interpreters.get_current()[0])


def burn(n: int) -> int:
    """Pure-Python CPU work that holds its interpreter's GIL for the whole loop."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


# -- whole workflows (full mode) -------------------------------------------------------------


def word_stats(data: dict[str, Any]) -> dict[str, Any]:
    """Sync workflow: count words and report where it ran."""
    words = data["text"].split()
    longest = max(words, key=len) if words else ""
    return {"words": len(words), "longest": longest, "interp": interp_id()}


async def async_squares(data: dict[str, Any]) -> dict[str, Any]:
    """Async workflow: fan out with asyncio.gather on the interpreter's persistent loop."""

    async def square(x: int) -> int:
        await asyncio.sleep(0)
        return x * x

    values = await asyncio.gather(*(square(x) for x in data["xs"]))
    return {"squares": list(values), "interp": interp_id()}


def fail_workflow(data: Any) -> None:
    raise WorkflowError(f"workflow failed on {data!r}")


async def never_ends(data: Any) -> None:
    await asyncio.Event().wait()


def returns_object(data: Any) -> object:
    return object()


# -- node functions offloaded by hybrid runs -------------------------------------------------


@offload
def sync_where(state: dict[str, Any]) -> dict[str, Any]:
    """Sync offloaded node: says which interpreter it ran in."""
    return {"sync_interp": interp_id(), "x": state["x"] + 1}


@offload
async def async_where(state: dict[str, Any]) -> dict[str, Any]:
    """Async offloaded node: runs on the interpreter's loop."""
    await asyncio.sleep(0)
    return {"async_interp": interp_id(), "x": state["x"] * 2}


@offload
def cpu_node(state: dict[str, Any]) -> dict[str, Any]:
    """The benchmark's CPU-bound node: ``state["n"]`` iterations of pure Python."""
    return {"total": burn(state["n"]), "interp": interp_id()}


@offload
def explode(state: dict[str, Any]) -> dict[str, Any]:
    raise WorkflowError(f"offloaded node failed at x={state['x']}")


@offload
async def stall(state: dict[str, Any]) -> dict[str, Any]:
    """Never returns on its own; a run timeout must cancel it inside its interpreter."""
    await asyncio.Event().wait()
    return {}


@offload
def echo(value: Any) -> Any:
    return value


def _queue(qid: int) -> Any:
    if sys.version_info >= (3, 14):
        from concurrent.interpreters._queues import Queue
    else:
        from interpreters_backport.interpreters.queues import Queue
    return Queue(qid)


@offload
def meet(state: dict[str, Any]) -> dict[str, Any]:
    """Offloaded rendezvous: post to ``outbox``, then wait for the peer run's message.

    Two runs can only both pass if their offloaded calls are in flight at the same time, in
    two interpreters; run one after the other, the first would fail with ``QueueEmpty``.
    """
    _queue(state["outbox"]).put(state["name"])
    peer = _queue(state["inbox"]).get(timeout=60)
    return {"peer": peer, "interp": interp_id()}
