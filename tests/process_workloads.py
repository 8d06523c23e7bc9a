"""Workloads only the process tier can survive: crashes, runaway CPU, odd payloads.

Kept apart from ``tests.workloads`` (shared by every tier) because these kill or wedge the
worker that runs them. Imported by path ("tests.process_workloads:...") inside workers.
"""

from __future__ import annotations

import asyncio
import ctypes
import operator
import os
import time
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from subiso.codec import register

#: Upper bound for every busy loop here: if a kill ever failed, the test would still end.
RUNAWAY_LIMIT_S = 60.0


class Counter(TypedDict):
    x: int


def _single(fn: Any, schema: Any = Counter) -> Any:
    builder = StateGraph(schema)
    builder.add_node("only", fn)
    builder.add_edge(START, "only")
    builder.add_edge("only", END)
    return builder.compile()


# -- crashes -----------------------------------------------------------------------------------
def _exit3(state: Counter) -> Counter:
    os._exit(3)


def _segfault(state: Counter) -> Counter:
    ctypes.string_at(0)
    return state


exit_graph = _single(_exit3)
segfault_graph = _single(_segfault)


# -- runaway CPU that ignores cancellation ------------------------------------------------------
def _spin_sync(state: Counter) -> Counter:
    """Pure-Python busy loop in a sync node: under ``ainvoke`` it runs in a pool thread, so
    cancelling the run returns while the thread keeps spinning."""
    end = time.monotonic() + RUNAWAY_LIMIT_S
    while time.monotonic() < end:
        pass
    return state


async def _spin_async(state: Counter) -> Counter:
    """Busy loop on the worker's event loop itself: cancellation can never be delivered."""
    end = time.monotonic() + RUNAWAY_LIMIT_S
    while time.monotonic() < end:
        pass
    return state


spin_graph = _single(_spin_sync)
spin_async_graph = _single(_spin_async)


# -- CPU-bound work of a fixed size (benchmarks) -----------------------------------------------
class Work(TypedDict):
    n: int
    total: int


def _burn(state: Work) -> Work:
    total = 0
    for i in range(state["n"]):
        total += i % 7
    return {"n": state["n"], "total": total}


cpu_graph = _single(_burn, Work)


def burn(n: int) -> int:
    """The same work as a plain function (used to calibrate ``n`` to a duration)."""
    return _burn({"n": n, "total": 0})["total"]


# -- payloads ----------------------------------------------------------------------------------
class Chat(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    turns: Annotated[int, operator.add]


def _reply(state: Chat) -> dict[str, Any]:
    last = state["messages"][-1]
    return {
        "messages": [AIMessage(content=f"re: {last.content}", id=f"ai-{len(state['messages'])}")],
        "turns": 1,
    }


chat_graph = _single(_reply, Chat)


def _edit_first(state: Chat) -> dict[str, Any]:
    """Changes a message of its input in place, as a node may."""
    state["messages"][0].content = "edited in the worker"
    return {"turns": 1}


edit_graph = _single(_edit_first, Chat)


def echo(value: Any) -> Any:
    return value


def make_lock(_: Any) -> dict[str, Any]:
    """Returns something that cannot leave the worker."""
    import threading

    return {"ok": [1, 2], "lock": threading.Lock()}


class Opaque:
    """A plain class of no kind the codec knows: it cannot cross unless registered."""

    def __init__(self, value: int) -> None:
        self.value = value


@register
class Registered:
    """A plain class registered with the codec (this module is imported on both sides)."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return type(other) is Registered and other.value == self.value

    __hash__ = None  # type: ignore[assignment]


def make_opaque(value: int) -> dict[str, Any]:
    return {"p": Opaque(value)}


def bump_registered(value: Registered) -> dict[str, Any]:
    return {"p": Registered(value.value + 1)}


class PickyError(Exception):
    """An exception whose constructor does not take its message: it cannot be unpickled."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"code {code}: {detail}")
        self.code = code


def raise_picky(_: Any) -> None:
    raise PickyError(7, "picky")


def pid(_: Any) -> int:
    return os.getpid()


def hold(paths: list[str]) -> str:
    """Tell the test it started (write to a FIFO), then wait until the test releases it."""
    started, release = paths
    with open(started, "w") as f:
        f.write("started")
    with open(release) as f:
        return f.read()


def threads(_: Any) -> dict[str, int]:
    """Which thread of the worker process ran it, and which is that process's main thread."""
    import threading

    return {"here": threading.get_ident(), "main": threading.main_thread().ident or 0}


def start_then_spin(started: str) -> None:
    """Say it started (write to a FIFO), then hog the worker's main thread, ignoring all."""
    with open(started, "w") as f:
        f.write("started")
    end = time.monotonic() + RUNAWAY_LIMIT_S
    while time.monotonic() < end:
        pass


def hold_then_exit(paths: list[str]) -> None:
    """``hold``, then end the worker process (a crash the test times exactly)."""
    hold(paths)
    os._exit(3)


# -- two async runs interleaving on one worker's loop, one of which crashes it ----------------
class Meeting(TypedDict):
    fifos: list[str]  # [started, waiting, release]: each node says it started, see ``hold``
    crash: bool
    steps: Annotated[list[str], operator.add]


def _say_started(path: str) -> None:
    with open(path, "w") as f:
        f.write("started")


def _wait_released(path: str) -> None:
    with open(path) as f:
        f.read()


async def _arrive(state: Meeting) -> dict[str, Any]:
    await asyncio.to_thread(_say_started, state["fifos"][0])
    return {"steps": ["arrive"]}


async def _wait(state: Meeting) -> dict[str, Any]:
    await asyncio.to_thread(_say_started, state["fifos"][1])
    await asyncio.to_thread(_wait_released, state["fifos"][2])
    if state["crash"]:
        os._exit(3)
    return {"steps": ["wait"]}


def _meeting() -> Any:
    builder = StateGraph(Meeting)
    builder.add_node("arrive", _arrive)
    builder.add_node("wait", _wait)
    builder.add_edge(START, "arrive")
    builder.add_edge("arrive", "wait")
    builder.add_edge("wait", END)
    return builder.compile()


#: Async nodes only: its runs become tasks on the worker's loop, so several are in flight at once.
meeting_graph = _meeting()
