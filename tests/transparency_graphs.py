"""Real LangGraph graphs for tests/test_langgraph_transparency.py: graphs written the way
LangGraph's docs and tests write them (a saver compiled in, a node raising its own
TimeoutError), importable by path for the tiers that import the graph themselves."""

from __future__ import annotations

import operator
import sqlite3
import threading
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph


class Log(TypedDict):
    log: Annotated[list[str], operator.add]


def node(name: str) -> Any:
    """A sync node appending ``name`` to the log."""

    def append(state: Log) -> Log:
        return {"log": [name]}

    append.__name__ = name
    return append


def chain(*nodes: Any) -> StateGraph[Any]:
    builder: StateGraph[Any] = StateGraph(Log)
    previous = START
    for node in nodes:
        builder.add_node(node.__name__, node)
        builder.add_edge(previous, node.__name__)
        previous = node.__name__
    builder.add_edge(previous, END)
    return builder


def sqlite_saver() -> SqliteSaver:
    """LangGraph's sync-only saver, as its docs open it (one connection, any thread)."""
    return SqliteSaver(sqlite3.connect(":memory:", check_same_thread=False))


#: Two sync nodes compiled with a sync-only SqliteSaver (importable: the process tier too).
sqlite_graph = chain(node("a"), node("b")).compile(checkpointer=sqlite_saver())


class Gate:
    """A node held until released; ``entered`` is set once it runs."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()

    def node(self, state: Log) -> Log:
        self.entered.set()
        assert self.released.wait(60), "the gate was never released"
        return {"log": ["held"]}


async def _upstream_timeout(state: Log) -> Log:
    raise TimeoutError("the upstream API timed out")


#: A node raising TimeoutError itself (not a run's timeout): it must reach the caller as is.
raises_timeout = chain(_upstream_timeout).compile()
