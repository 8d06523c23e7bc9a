"""LangGraph graphs of ``subiso bench``; importable by worker processes as
``subiso.bench.workloads:<name>``.

* ``io_graph`` - I/O-bound: ``plan`` fans out ``FANOUT`` ``fetch`` branches (``Send``), each
  awaiting ``asyncio.sleep(state["delay"])``, then ``merge`` sums them;
* ``messages_graph`` - a ``messages`` state (``add_messages``) that answers with one more
  message: ~1 MB of LangChain messages in and out (:func:`messages_input`), or a long chat of
  2,000 short ones (:func:`chat_input`);
* ``documents_graph`` - a state of plain documents (~10 MB, :func:`documents_input`) that
  comes back whole with their count;
* ``cpu_graph`` - one ``@offload`` CPU-bound node (:func:`subiso.bench.cpu.cpu_node`);
* ``sync_graph``/``async_graph`` - the trivial 3-node graphs of ``tests.workloads``, used when
  the repository's ``tests`` package is not importable.

:func:`catalog` names the workloads a bench run measures (:class:`Workload`).
"""

from __future__ import annotations

import asyncio
import itertools
import operator
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Send

from subiso.bench.cpu import cpu_node

FANOUT = 4


class IOState(TypedDict, total=False):
    delay: float
    item: int
    results: Annotated[list[int], operator.add]
    total: int


def _plan(state: IOState) -> list[Send]:
    return [Send("fetch", {"delay": state["delay"], "item": i}) for i in range(FANOUT)]


async def _fetch(state: IOState) -> IOState:
    await asyncio.sleep(state["delay"])
    return {"results": [state["item"]]}


async def _merge(state: IOState) -> IOState:
    return {"total": sum(state["results"])}


_io = StateGraph(IOState)
_io.add_node("fetch", _fetch)
_io.add_node("merge", _merge)
_io.add_conditional_edges(START, _plan, ["fetch"])
_io.add_edge("fetch", "merge")
_io.add_edge("merge", END)
io_graph = _io.compile()


class MessagesState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def _respond(state: MessagesState) -> dict[str, Any]:
    size = sum(len(m.content) for m in state["messages"])
    return {"messages": [AIMessage(content=f"read {size} characters", id="reply")]}


_msgs = StateGraph(MessagesState)
_msgs.add_node("respond", _respond)
_msgs.add_edge(START, "respond")
_msgs.add_edge("respond", END)
messages_graph = _msgs.compile()


def messages_input(total_bytes: int = 1 << 20, per_message: int = 10_000) -> dict[str, Any]:
    """~``total_bytes`` of HumanMessages (ids set, so the output compares equal)."""
    count = max(1, total_bytes // per_message)
    return {
        "messages": [
            HumanMessage(content=f"{i:06d}" + "x" * (per_message - 6), id=f"m{i}")
            for i in range(count)
        ]
    }


def chat_input(count: int = 2000) -> dict[str, Any]:
    """A long chat: ``count`` short messages, human and AI in turn (ids set, so the output
    compares equal)."""
    return {
        "messages": [
            HumanMessage(content=f"message {i}: could you check clause {i % 40}?", id=f"h{i}")
            if i % 2 == 0
            else AIMessage(
                content=f"reply {i}: clause {i % 40} caps liability at 1x fees.", id=f"a{i}"
            )
            for i in range(count)
        ]
    }


class DocumentsState(TypedDict, total=False):
    docs: list[dict[str, Any]]
    count: int


def _count(state: DocumentsState) -> DocumentsState:
    return {"count": len(state["docs"])}


_docs = StateGraph(DocumentsState)
_docs.add_node("count", _count)
_docs.add_edge(START, "count")
_docs.add_edge("count", END)
documents_graph = _docs.compile()


def documents_input(total_bytes: int = 10 << 20, per_document: int = 10_000) -> dict[str, Any]:
    """~``total_bytes`` of plain documents (dicts of text, numbers and a nested dict), as a
    retrieval step would carry."""
    return {
        "docs": [
            {
                "id": i,
                "title": f"Clause {i}: limitation of liability",
                "text": (f"The supplier shall not be liable for indirect losses ({i}). " * 200)[
                    :per_document
                ],
                "score": i / 7,
                "meta": {"page": i // 3, "source": "contracts/msa-2024.pdf", "tags": ["cap"]},
            }
            for i in range(max(1, total_bytes // per_document))
        ]
    }


class CPUState(TypedDict, total=False):
    n: int
    total: int


_cpu = StateGraph(CPUState)
_cpu.add_node("cpu_node", cpu_node)  # type: ignore[type-var]
_cpu.add_edge(START, "cpu_node")
_cpu.add_edge("cpu_node", END)
cpu_graph = _cpu.compile()


class Counter(TypedDict):
    x: int


def add_one(state: Counter) -> Counter:
    return {"x": state["x"] + 1}


def double(state: Counter) -> Counter:
    return {"x": state["x"] * 2}


def minus_three(state: Counter) -> Counter:
    return {"x": state["x"] - 3}


async def aadd_one(state: Counter) -> Counter:
    await asyncio.sleep(0)
    return {"x": state["x"] + 1}


async def adouble(state: Counter) -> Counter:
    await asyncio.sleep(0)
    return {"x": state["x"] * 2}


async def aminus_three(state: Counter) -> Counter:
    await asyncio.sleep(0)
    return {"x": state["x"] - 3}


def chain(*nodes: Any) -> Any:
    """A StateGraph of ``Counter`` nodes run one after another (compile it to run it)."""
    builder = StateGraph(Counter)
    names = [f"n{i}" for i in range(len(nodes))]
    for name, fn in zip(names, nodes, strict=True):
        builder.add_node(name, fn)
    builder.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        builder.add_edge(a, b)
    builder.add_edge(names[-1], END)
    return builder


#: The trivial 3-node graphs, sync and async: the tests run these too (tests.workloads).
sync_builder = chain(add_one, double, minus_three)
sync_graph = sync_builder.compile()
async_builder = chain(aadd_one, adouble, aminus_three)
async_graph = async_builder.compile()


class StepsState(TypedDict, total=False):
    steps: int
    step_s: float
    done: int


def _step(state: StepsState) -> StepsState:
    time.sleep(state.get("step_s", 0.05))  # waits like I/O, from sync code (graph.stream too)
    return {"done": state.get("done", 0) + 1}


def _more(state: StepsState) -> str:
    return "step" if state.get("done", 0) < state.get("steps", 1) else END


_steps = StateGraph(StepsState)
_steps.add_node("step", _step)
_steps.add_edge(START, "step")
_steps.add_conditional_edges("step", _more, ["step", END])
#: ``steps`` updates ``step_s`` apart: a run whose length and first event are known, for
#: measuring how soon a stream's first event reaches its consumer.
steps_graph = _steps.compile()


# -- what a bench run measures -----------------------------------------------------------------
@dataclass
class Workload:
    key: str
    target: str
    input: Any
    is_async: bool
    graph: Any = None
    note: str = ""


def catalog(*, quick: bool, node_n: int, root: Path | None) -> dict[str, Workload]:
    """The workloads by key, their graphs imported. ``root``: the repository (for the demo),
    or None to leave it out."""
    here = "subiso.bench.workloads"
    ws = {
        "trivial-sync": Workload("trivial-sync", f"{here}:sync_graph", {"x": 1}, False),
        "trivial-async": Workload("trivial-async", f"{here}:async_graph", {"x": 1}, True),
        "cpu": Workload("cpu", f"{here}:cpu_graph", {"n": node_n}, False),
        "io": Workload("io", f"{here}:io_graph", {"delay": 0.005 if quick else 0.01}, True),
        "messages": Workload(
            "messages",
            f"{here}:messages_graph",
            messages_input(),
            False,
            note="104 HumanMessages x 10 kB in, the same plus one reply out",
        ),
        "state-10mb": Workload(
            "state-10mb",
            f"{here}:documents_graph",
            documents_input(),
            False,
            note="1,048 plain documents x 10 kB (dicts of text, numbers, a nested dict) in and "
            "out, with their count",
        ),
        "many-small": Workload(
            "many-small",
            f"{here}:messages_graph",
            chat_input(),
            False,
            note="a chat of 2,000 short messages (~50 bytes each) in, the same plus one reply out",
        ),
    }
    if root is not None:
        ws["demo"] = Workload(
            "demo",
            "examples.contract_review.graph:graph",
            {"path": str(root / "examples/contract_review/sample_contract.txt")},
            False,
        )
    from subiso.runtime.targets import import_attr

    for w in ws.values():
        w.graph = import_attr(w.target)
    return ws
