"""A graph that uses one of its module's three @offload functions (for ``subiso doctor``)."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from subiso import offload


class State(TypedDict):
    x: int


@offload
def used(state: State) -> dict[str, Any]:
    return {"x": state["x"] + 1}


@offload
def unused_a(state: State) -> dict[str, Any]:
    return {"x": 0}


@offload(strict=False)
def unused_b(state: State) -> dict[str, Any]:
    return {"x": 0}


builder = StateGraph(State)
builder.add_node("used", used)
builder.add_edge(START, "used")
builder.add_edge("used", END)
graph = builder.compile()
