"""The contract-review LangGraph: ``split_clauses -> score_clauses -> aggregate_report``.

This module imports langgraph and only wires the graph; the node functions live in
``clauses.py``, which imports nothing but the standard library and ``subiso.offload`` so that it
loads inside own-GIL subinterpreters. That split is what lets SubinterpreterExecutor's hybrid
mode run the ``@offload``-decorated, CPU-bound ``split_clauses`` inside an interpreter while the
graph itself (which cannot load there) runs on a host worker thread. Keep node code out of this
module if you want it offloaded.

subiso targets, by import path:

* ``"examples.contract_review.graph:builder"``: the uncompiled ``StateGraph`` (subiso compiles it
  with the configured checkpointer),
* ``"examples.contract_review.graph:graph"``: compiled, no checkpointer,
* ``"examples.contract_review.graph:make_graph"``: zero-argument factory returning a fresh
  compiled graph.

Input: ``{"text": "<contract>"}`` or ``{"path": "<file>"}`` (relative paths resolve against the
working directory, then the project root). Output: ``{"title", "findings", "report"}``, JSON-like;
see ``clauses.ReviewOutput``.
"""

from __future__ import annotations

from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from examples.contract_review.clauses import (
    ContractState,
    ReviewInput,
    ReviewOutput,
    aggregate_report,
    score_clauses,
    score_clauses_sync,
    split_clauses,
)

__all__ = ["NODES", "builder", "graph", "make_graph"]

NODES = ("split_clauses", "score_clauses", "aggregate_report")


def make_builder() -> StateGraph:
    """A fresh, uncompiled StateGraph for the contract review."""
    sg = StateGraph(ContractState, input_schema=ReviewInput, output_schema=ReviewOutput)
    sg.add_node("split_clauses", split_clauses)
    # The scoring node is async (asyncio.gather fan-out). LangGraph refuses to run an async-only
    # node from graph.invoke, so it also gets a sync twin computing the same findings; ainvoke
    # and astream use the async one.
    sg.add_node(
        "score_clauses",
        RunnableLambda(score_clauses_sync, afunc=score_clauses, name="score_clauses"),
    )
    sg.add_node("aggregate_report", aggregate_report)
    sg.add_edge(START, "split_clauses")
    sg.add_edge("split_clauses", "score_clauses")
    sg.add_edge("score_clauses", "aggregate_report")
    sg.add_edge("aggregate_report", END)
    return sg


def make_graph() -> CompiledStateGraph:
    """Zero-argument factory: a freshly compiled graph without a checkpointer."""
    return make_builder().compile()


builder: StateGraph = make_builder()
graph: CompiledStateGraph = builder.compile()
