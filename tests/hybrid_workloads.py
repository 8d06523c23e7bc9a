"""LangGraph graphs for SubinterpreterExecutor's hybrid mode (this module imports langgraph, so
it never loads in a subinterpreter: every graph here runs hybrid).

Most offloaded nodes live in the pure module ``tests.isolation_targets.workflows`` and reach
interpreters by import. The ones defined here show the other two paths: a self-contained
function is shipped as code, and functions that use this module's globals are not isolatable
(``strict`` raises, ``strict=False`` runs in place).
"""

from __future__ import annotations

import itertools
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from subiso import offload
from tests.isolation_targets import workflows as wf

SCALE = 10  # a plain global: functions reading it cannot be shipped to an interpreter


class State(TypedDict, total=False):
    x: int
    n: int
    sync_interp: int
    async_interp: int
    shipped_interp: int
    host_interp: int
    lenient: int
    total: int
    interp: int
    name: str
    inbox: int
    outbox: int
    peer: str
    echoed: Any


@offload
def shipped(state: State) -> State:
    """Self-contained (builtins and its own import only): shipped as code, runs in there."""
    try:
        import _interpreters
    except ImportError:  # Python < 3.13: only the main interpreter exists
        return {"shipped_interp": 0}
    return {"shipped_interp": int(_interpreters.get_current()[0])}


@offload
def strict_scaled(state: State) -> State:
    return {"x": state["x"] * SCALE}


@offload(strict=False)
def lenient_scaled(state: State) -> State:
    return {"lenient": state["x"] * SCALE}


def host_where(state: State) -> State:
    return {"host_interp": wf.interp_id()}


def send_object(state: State) -> State:
    """A host node passing something that is not plain data to an offloaded function."""
    return {"echoed": wf.echo({"items": [1, 2, object()]})}


def _chain(*nodes: Any) -> Any:
    builder = StateGraph(State)
    names = []
    for node in nodes:
        name = getattr(node, "__name__", None) or str(node)
        builder.add_node(name, node)
        names.append(name)
    builder.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        builder.add_edge(a, b)
    builder.add_edge(names[-1], END)
    return builder.compile()


#: sync offload (import) -> async offload (import) -> shipped offload -> host node
where_graph = _chain(wf.sync_where, wf.async_where, shipped, host_where)
#: only sync nodes: runs on the sync fast path (graph.invoke on the worker thread)
sync_where_graph = _chain(wf.sync_where, host_where)
cpu_graph = _chain(wf.cpu_node)
error_graph = _chain(wf.sync_where, wf.explode)
stall_graph = _chain(wf.stall)
strict_graph = _chain(strict_scaled)
lenient_graph = _chain(lenient_scaled, wf.sync_where)
payload_graph = _chain(send_object)
meet_graph = _chain(wf.meet)
