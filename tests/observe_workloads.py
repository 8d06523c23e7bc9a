"""Graphs for the observability tests: nodes that report the trace they see, log, block their
loop, or leave a task behind. Importable by path in worker processes ("tests.observe_workloads:...").
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from tests.isolation_targets import logging_fn

log = logging.getLogger("tests.observe.node")


class State(TypedDict, total=False):
    x: int
    seen: dict[str, Any]
    logged: str
    offloaded: dict[str, Any]
    hold: str


def seen_trace() -> dict[str, Any]:
    """The LangSmith run tree and OpenTelemetry span context current here."""
    from subiso.observe.runs import CURRENT_RUN

    tag = CURRENT_RUN.get()
    seen: dict[str, Any] = {"pid": os.getpid(), "run_id": None if tag is None else tag.run_id}
    from langsmith.run_helpers import get_current_run_tree

    tree = get_current_run_tree()
    seen["ls_trace_id"] = None if tree is None else str(tree.trace_id)
    seen["ls_dotted_order"] = None if tree is None else tree.dotted_order
    try:
        from opentelemetry import trace
    except ImportError:
        return seen
    context = trace.get_current_span().get_span_context()
    seen["otel_trace_id"] = format(context.trace_id, "032x") if context.is_valid else None
    seen["otel_span_id"] = format(context.span_id, "016x") if context.is_valid else None
    return seen


def probe(state: State) -> State:
    return {"seen": seen_trace()}


async def aprobe(state: State) -> State:
    await asyncio.sleep(0)
    return {"seen": seen_trace()}


def _one_node(name: str, fn: Any) -> Any:
    builder = StateGraph(State)
    builder.add_node(name, fn)
    builder.add_edge(START, name)
    builder.add_edge(name, END)
    return builder.compile()


def starts_a_span(state: State) -> State:
    from opentelemetry import trace

    with trace.get_tracer("node").start_as_current_span("node-span"):
        return {"seen": seen_trace()}


span_graph = _one_node("starts_a_span", starts_a_span)
trace_graph = _one_node("probe", probe)
atrace_graph = _one_node("aprobe", aprobe)


# -- logging ---------------------------------------------------------------------------------
def chatty(state: State) -> State:
    log.warning("node says hello from pid %d", os.getpid(), extra={"flavour": "sync"})
    return {"logged": "yes"}


async def achatty(state: State) -> State:
    log.warning("async node says hello from pid %d", os.getpid(), extra={"flavour": "async"})
    return {"logged": "yes"}


def failing(state: State) -> State:
    raise ValueError("the node failed on purpose")


def offloads(state: State) -> State:
    return {"offloaded": logging_fn.log_and_report(state.get("x", 0))}


chatty_graph = _one_node("chatty", chatty)
achatty_graph = _one_node("achatty", achatty)
failing_graph = _one_node("failing", failing)
offloading_graph = _one_node("offloads", offloads)


#: Gates a test opens to let a held run finish (this process's tiers only).
GATES: dict[str, threading.Event] = {}


def wait_at_gate(name: str) -> str:
    """A workflow that holds its worker until the test opens gate ``name`` (bounded)."""
    assert GATES.setdefault(name, threading.Event()).wait(60), f"gate {name} never opened"
    return name


def log_with_extra_run_id(_: Any) -> None:
    """A workflow logging with an ``extra`` of the same name as a run attribute."""
    logging.getLogger("tests.workloads.extra").warning("mine", extra={"run_id": "the node's own"})


# -- loop health ---------------------------------------------------------------------------------
#: Set (in this process) by a test's logging handler when the blocked-loop warning appears.
UNBLOCK = threading.Event()


async def blocks_loop(state: State) -> State:
    """Hold the worker's loop (a blocking call in an async node) until the watchdog has
    warned: a marker file appears (process workers) or UNBLOCK is set (this process)."""
    marker = state.get("hold")
    deadline = time.monotonic() + 60  # a bound, so a missing warning fails instead of hanging
    while time.monotonic() < deadline:
        if UNBLOCK.is_set() or (marker and os.path.exists(marker)):  # noqa: ASYNC240
            break
        time.sleep(0.01)  # noqa: ASYNC251 - deliberately blocking: the bug being detected
    return {"x": 1}


async def forgets_task(state: State) -> State:
    """Fire and forget: a task that outlives its run."""

    async def forgotten() -> None:
        await asyncio.sleep(3600)

    task = asyncio.get_running_loop().create_task(forgotten(), name="forgotten-by-the-node")
    _KEEP.add(task)  # referenced, so only its run's end can make it a leftover
    return {"x": 1}


_KEEP: set[asyncio.Task[Any]] = set()


blocking_graph = _one_node("blocker", blocks_loop)
leaky_graph = _one_node("leaky", forgets_task)
