"""Graphs served by the ``subiso serve`` tests (tests/serve_app/langgraph.json).

Each is a plain LangGraph graph; the tests run the same graph in-process with an in-memory
checkpointer and compare what the server returns with what LangGraph gives.
"""

from __future__ import annotations

import asyncio
import operator
import os
import signal
import threading
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.store.base import BaseStore
from langgraph.types import interrupt
from typing_extensions import TypedDict  # pydantic schemas of a TypedDict need it before 3.12


class Count(TypedDict, total=False):
    x: int
    log: Annotated[list[str], operator.add]
    answer: Any
    marker: str  # a file a node creates when it starts (the tests wait for it)


def _add(node: str, k: int) -> Any:
    def step(state: Count) -> Count:
        return {"x": state["x"] + k, "log": [node]}

    return step


def _echo() -> StateGraph:
    g = StateGraph(Count)
    g.add_node("double", lambda s: {"x": s["x"] * 2, "log": ["double"]})
    g.add_node("inc", _add("inc", 1))
    g.add_edge(START, "double")
    g.add_edge("double", "inc")
    g.add_edge("inc", END)
    return g


echo = _echo().compile()


def block_once(marker: str | None) -> None:
    """The first time ``marker`` names a file that does not exist: write this process's pid
    there and block until the process is killed (the tests kill it)."""
    if marker and not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        threading.Event().wait()


def _ask_node(state: Count) -> Count:
    answer = interrupt({"question": "approve?", "x": state["x"]})
    block_once(state.get("marker"))
    return {"answer": answer, "log": ["ask"]}


_ask = StateGraph(Count)
_ask.add_node("inc", _add("inc", 1))
_ask.add_node("ask", _ask_node)
_ask.add_node("after", _add("after", 10))
_ask.add_edge(START, "inc")
_ask.add_edge("inc", "ask")
_ask.add_edge("ask", "after")
_ask.add_edge("after", END)
ask = _ask.compile()

_nested = StateGraph(Count)
_nested.add_node("first", _add("first", 1))
_nested.add_node("child", _echo().compile())
_nested.add_edge(START, "first")
_nested.add_edge("first", "child")
_nested.add_edge("child", END)
nested = _nested.compile()


async def _reply(state: MessagesState) -> dict[str, Any]:
    """Streams a reply in chunks through the messages mode (a stand-in for a chat model)."""
    text = "hello " + str(state["messages"][-1].content)
    writer = get_stream_writer()
    writer({"typing": True})
    return {"messages": [AIMessage(content=text, id="reply-1")]}


_chat = StateGraph(MessagesState)
_chat.add_node("reply", _reply)
_chat.add_edge(START, "reply")
_chat.add_edge("reply", END)
chat = _chat.compile()


async def _wait_for_cancel(state: Count) -> Count:
    """Tells the stream it started, then waits until the run is cancelled."""
    get_stream_writer()({"started": state["x"]})
    await asyncio.Event().wait()
    return {"log": ["never"]}


_gate = StateGraph(Count)
_gate.add_node("inc", _add("inc", 1))
_gate.add_node("wait", _wait_for_cancel)
_gate.add_edge(START, "inc")
_gate.add_edge("inc", "wait")
_gate.add_edge("wait", END)
gate = _gate.compile()


def _spin(state: Count) -> Count:
    """CPU-bound: pure Python arithmetic for a while (no I/O, holds its interpreter's GIL)."""
    if state.get("marker"):
        with open(state["marker"], "w") as f:
            f.write(str(os.getpid()))
    total = 0
    for i in range(state["x"]):
        total = (total + i * i) % 1_000_003
    return {"answer": total, "log": ["spin"]}


_cpu = StateGraph(Count)
_cpu.add_node("spin", _spin)
_cpu.add_edge(START, "spin")
_cpu.add_edge("spin", END)
cpu = _cpu.compile()


def _die(state: Count) -> Count:
    os.kill(os.getpid(), signal.SIGKILL)
    return {}


_crash = StateGraph(Count)
_crash.add_node("inc", _add("inc", 1))
_crash.add_node("die", _die)
_crash.add_edge(START, "inc")
_crash.add_edge("inc", "die")
_crash.add_edge("die", END)
crash = _crash.compile()


def _block(state: Count) -> Count:
    threading.Event().wait()  # a sync node that never returns: only a kill stops it
    return {}


_hang = StateGraph(Count)
_hang.add_node("block", _block)
_hang.add_edge(START, "block")
_hang.add_edge("block", END)
hang = _hang.compile()


def _boom(state: Count) -> Count:
    raise ValueError(f"boom at {state['x']}")


_fail = StateGraph(Count)
_fail.add_node("inc", _add("inc", 1))
_fail.add_node("boom", _boom)
_fail.add_edge(START, "inc")
_fail.add_edge("inc", "boom")
_fail.add_edge("boom", END)
fail = _fail.compile()


async def _remember(state: Count, store: BaseStore) -> Count:
    await store.aput(("memo",), f"x{state['x']}", {"x": state["x"]})
    found = await store.asearch(("memo",))
    return {"answer": sorted(item.key for item in found), "log": ["remember"]}


_memo = StateGraph(Count)
_memo.add_node("remember", _remember)
_memo.add_edge(START, "remember")
_memo.add_edge("remember", END)
memo = _memo.compile()


class Steps(TypedDict, total=False):
    log: str  # a file each node appends its name to once it has done its work
    marker: str  # "n3" writes its pid here, then blocks until its process is killed
    done: list[str]


def _step(name: str) -> Any:
    def step(state: Steps) -> dict[str, Any]:
        if name == "n3":
            block_once(state.get("marker"))
        with open(state["log"], "a") as f:
            f.write(f"{name} {os.getpid()}\n")
        return {"done": [*state.get("done", []), name]}

    step.__name__ = name
    return step


_steps = StateGraph(Steps)
for _name in ("n1", "n2", "n3", "n4"):
    _steps.add_node(_name, _step(_name))
_steps.add_edge(START, "n1")
_steps.add_edge("n1", "n2")
_steps.add_edge("n2", "n3")
_steps.add_edge("n3", "n4")
_steps.add_edge("n4", END)
steps = _steps.compile()

__all__ = [
    "AIMessageChunk",
    "HumanMessage",
    "ask",
    "chat",
    "cpu",
    "crash",
    "echo",
    "fail",
    "gate",
    "hang",
    "memo",
    "nested",
    "steps",
]
