"""Workloads for the distributed tests (daemonic hosts, Celery, PostgreSQL, durability).

Imported by path ("tests.dist_workloads:...") inside worker processes and Celery children.
"""

from __future__ import annotations

import itertools
import os
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore

import subiso


class Counter(TypedDict):
    x: int


# -- a daemonic host (multiprocessing.Pool worker) running a ProcessExecutor run -------------
def pid(_: Any) -> int:
    return os.getpid()


def run_in_process_tier(_: Any) -> dict[str, Any]:
    """Inside a daemonic Pool worker: one ProcessExecutor run; returns the pids involved."""
    with subiso.get_executor("process", max_workers=1) as ex:
        result = ex.execute({"graph": "tests.dist_workloads:pid", "input": None})
        return {"host": os.getpid(), "worker": result.output, "report_pid": result.report.pid}


def start_and_hold(path: str) -> None:
    """Inside a daemonic Pool worker: start a process worker, write its pid, then hang."""
    ex = subiso.get_executor("process", max_workers=1)
    worker_pid = ex.run({"graph": "tests.dist_workloads:pid"})
    Path(path).write_text(str(worker_pid))
    time.sleep(120)


# -- a two-node graph (the pool x tier table, and Celery tests) -------------------------------
def _add_one(state: Counter) -> Counter:
    return {"x": state["x"] + 1}


def _double(state: Counter) -> Counter:
    return {"x": state["x"] * 2}


def _two_nodes() -> StateGraph:
    sg = StateGraph(Counter)
    sg.add_node("add_one", _add_one)
    sg.add_node("double", _double)
    sg.add_edge(START, "add_one")
    sg.add_edge("add_one", "double")
    sg.add_edge("double", END)
    return sg


two_nodes = _two_nodes()


def fail(message: str) -> None:
    raise ValueError(message)


# -- durability: four nodes logging each execution; one can kill its worker ------------------
class Steps(TypedDict, total=False):
    log: str  # file each node appends its name to
    kill_after: str  # a marker file: node "n3" SIGKILLs its worker while it does not exist
    done: list[str]


def _step(name: str) -> Any:
    def node(state: Steps) -> dict[str, Any]:
        if name == "n3" and state.get("kill_after") and not Path(state["kill_after"]).exists():
            Path(state["kill_after"]).write_text(str(os.getpid()))
            os.kill(os.getpid(), 9)
        with open(state["log"], "a") as f:
            f.write(f"{name}\n")
        return {"done": [*state.get("done", []), name]}

    node.__name__ = name
    return node


def _four_steps() -> StateGraph:
    sg = StateGraph(Steps)
    names = ["n1", "n2", "n3", "n4"]
    for n in names:
        sg.add_node(n, _step(n))
    sg.add_edge(START, "n1")
    for a, b in itertools.pairwise(names):
        sg.add_edge(a, b)
    sg.add_edge("n4", END)
    return sg


four_steps = _four_steps()


# -- a graph with a store ------------------------------------------------------------------
class Visit(TypedDict, total=False):
    user: str
    visits: int


async def _count_visit(state: Visit, store: BaseStore) -> dict[str, Any]:
    ns = ("visits", state["user"])
    item = await store.aget(ns, "count")
    count = (item.value["n"] if item else 0) + 1
    await store.aput(ns, "count", {"n": count})
    return {"visits": count}


def _visits() -> StateGraph:
    sg = StateGraph(Visit)
    sg.add_node("count_visit", _count_visit)
    sg.add_edge(START, "count_visit")
    sg.add_edge("count_visit", END)
    return sg


visits = _visits()


# -- worker_init factories -------------------------------------------------------------------
@asynccontextmanager
async def make_state() -> Any:
    # in the working directory, which process workers share with their host
    INIT_LOG = os.environ.get("SUBISO_TEST_INIT_LOG", "subiso-init.log")
    state = {"pid": os.getpid(), "entered": time.time()}
    log = Path(INIT_LOG)
    log.open("a").write(f"enter {os.getpid()}\n")  # noqa: ASYNC230 - a test log
    try:
        yield state
    finally:
        with log.open("a") as f:  # noqa: ASYNC230
            f.write(f"exit {os.getpid()}\n")


def broken_state() -> Any:
    raise RuntimeError("no database today")


def read_state(_: Any) -> Any:
    state = subiso.worker_state()
    return {"pid": state["pid"], "same_process": state["pid"] == os.getpid()}


async def aread_state(_: Any) -> Any:
    return read_state(_)


def daemonic(_: Any) -> bool:
    import multiprocessing

    return bool(multiprocessing.current_process().daemon)


def crash_always(path: str) -> None:
    """Log the attempt, then SIGKILL the process running it (every time)."""
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    os.kill(os.getpid(), 9)
