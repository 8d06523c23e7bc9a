"""Real LangGraph graphs and plain workflow functions the tests run through every tier.

Module-level and JSON-like state only, so the same targets work across thread, process and
interpreter boundaries. Imported by path ("tests.workloads:...") inside workers.
"""

from __future__ import annotations

import asyncio
import operator
import os
import threading
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

# The trivial 3-node graphs are subiso.bench's (one definition, benchmarked and tested alike).
from subiso.bench.workloads import Counter, aadd_one, add_one
from subiso.bench.workloads import async_builder as async_builder  # re-exported: run by path
from subiso.bench.workloads import async_graph as async_graph
from subiso.bench.workloads import chain as _chain
from subiso.bench.workloads import sync_builder as sync_builder
from subiso.bench.workloads import sync_graph as sync_graph


def make_sync_graph() -> Any:
    """A zero-argument factory."""
    return sync_builder.compile()


def expected(x: int) -> int:
    return (x + 1) * 2 - 3


# -- plain workflow functions ------------------------------------------------------------------
def square(value: int) -> int:
    return value * value


async def asquare(value: int) -> int:
    await asyncio.sleep(0)
    return value * value


def where(_: Any) -> dict[str, Any]:
    """Report where it ran: pid, thread, loop (None if no loop runs)."""
    try:
        loop_id = id(asyncio.get_running_loop())
    except RuntimeError:
        loop_id = None
    return {"pid": os.getpid(), "thread": threading.get_ident(), "loop": loop_id}


async def awhere(_: Any) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "thread": threading.get_ident(),
        "loop": id(asyncio.get_running_loop()),
    }


class WorkflowFailed(RuntimeError):
    pass


def fail(message: str) -> None:
    raise WorkflowFailed(message)


async def hang(_: Any) -> None:
    """Never finishes on its own: only cancellation ends it (timeouts)."""
    await asyncio.Event().wait()


# -- graphs for failure and persistence ---------------------------------------------------------
def _explode(state: Counter) -> Counter:
    raise WorkflowFailed(f"node exploded at x={state['x']}")


failing_graph = _chain(add_one, _explode).compile()


class Log(TypedDict):
    entries: Annotated[list[str], operator.add]


def _append(state: Log) -> Log:
    return {"entries": [f"run-{len(state.get('entries', []))}"]}


log_builder = StateGraph(Log)
log_builder.add_node("append", _append)
log_builder.add_edge(START, "append")
log_builder.add_edge("append", END)


# -- the three original failures ---------------------------------------------------------------
def _sync_helper_calls_asyncio_run(state: Counter) -> Counter:
    """A sync node that wraps async code with asyncio.run, as much library code does."""

    async def fetch() -> int:
        await asyncio.sleep(0)
        return state["x"] + 10

    return {"x": asyncio.run(fetch())}


sync_helper_graph = _chain(_sync_helper_calls_asyncio_run).compile()

background_started: list[int] = []


async def _fire_and_forget(state: Counter) -> Counter:
    """Spawns a task it never awaits: it must not stay behind on the host loop."""

    async def telemetry() -> None:
        await asyncio.Event().wait()

    asyncio.get_running_loop().create_task(telemetry())
    background_started.append(state["x"])
    return {"x": state["x"] + 1}


fire_and_forget_graph = _chain(_fire_and_forget).compile()


# -- added for tests/test_config.py, test_executors.py, test_checkpoints.py -----------------------
not_a_graph = 42  # a module-level object of the wrong kind for GraphConfig.graph


def two_args(a: Any, b: Any) -> None:
    """A callable of the wrong shape: neither f(input) nor a zero-argument factory."""


# Two sync runs meet here. A sync run occupies its thread-tier worker thread (no loop runs
# there), so both can only pass the barrier when they run at the same time on two different
# threads; if dispatch sent both to one worker the second would never start and the barrier
# breaks after its timeout (the timeout only turns a failure into an error instead of a hang).
rendezvous = threading.Barrier(2)
RENDEZVOUS_TIMEOUT_S = 10.0


def meet(_: Any) -> int:
    rendezvous.wait(timeout=RENDEZVOUS_TIMEOUT_S)
    return threading.get_ident()


# Two async runs meet on ONE event loop: each registers, and waits for an asyncio.Event the
# second one sets. They can only both finish if they interleave on the same loop (asyncio
# primitives are loop-bound and not thread-safe, so runs on different loops would never see
# each other's set(); the wait_for bound turns that into an error instead of a hang).
_ameet_state: dict[str, Any] = {}


def ameet_reset() -> None:
    _ameet_state.clear()


async def ameet(_: Any) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    state = _ameet_state.setdefault("state", {"loop": loop, "event": asyncio.Event(), "n": 0})
    if state["loop"] is not loop:
        raise RuntimeError("ameet: the two runs are on different event loops")
    state["n"] += 1
    if state["n"] == 2:
        state["event"].set()
    await asyncio.wait_for(state["event"].wait(), RENDEZVOUS_TIMEOUT_S)
    return {"thread": threading.get_ident(), "loop": id(loop)}


# A context variable for the context tier's isolation tests.
from contextvars import ContextVar  # noqa: E402

probe_var: ContextVar[str] = ContextVar("subiso_tests_probe", default="unset")


def read_probe(_: Any) -> str:
    return probe_var.get()


def set_probe(value: str) -> str:
    probe_var.set(value)
    return probe_var.get()


async def aread_probe(_: Any) -> str:
    await asyncio.sleep(0)
    return probe_var.get()


async def aset_probe(value: str) -> str:
    probe_var.set(value)
    await asyncio.sleep(0)
    return probe_var.get()


# A log graph whose node fails when the input says so: checkpoints written before must survive.
class FragileLog(TypedDict, total=False):
    entries: Annotated[list[str], operator.add]
    fail: bool


def _append_or_fail(state: FragileLog) -> FragileLog:
    if state.get("fail"):
        raise WorkflowFailed("log node exploded")
    return {"entries": [f"run-{len(state.get('entries', []))}"]}


fragile_log_builder = StateGraph(FragileLog)
fragile_log_builder.add_node("append", _append_or_fail)
fragile_log_builder.add_edge(START, "append")
fragile_log_builder.add_edge("append", END)


async def _aexplode(state: Counter) -> Counter:
    await asyncio.sleep(0)
    raise WorkflowFailed(f"async node exploded at x={state['x']}")


afailing_graph = _chain(aadd_one, _aexplode).compile()


def exits(code: int) -> None:
    """A workflow function that calls sys.exit."""
    raise SystemExit(code)


def interrupts_keyboard(_: object) -> None:
    raise KeyboardInterrupt


def sleepy(marker: str) -> str:
    """Says it started (creates ``marker``), then sleeps far past any test: for Ctrl-C tests."""
    import time

    with open(marker, "w") as f:
        f.write("started")
    time.sleep(120)
    return "woke"
