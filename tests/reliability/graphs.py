"""LangGraph graphs with one faulty node, for the reliability tests (every tier runs these; the
subinterpreter tier runs them hybrid, on its host threads).

Each graph has a single node ``only`` taking a ``Held`` state - the arguments of a held run (see
``tests.reliability.targets``) - and returning ``{"value": ...}``.
"""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from tests import contract_workloads as cw
from tests.reliability import targets


class Held(TypedDict, total=False):
    release: str
    started: str
    cancelled: str
    marker: str
    value: Any


def _single(fn: Any) -> Any:
    builder = StateGraph(Held)
    builder.add_node("only", fn)
    builder.add_edge(START, "only")
    builder.add_edge("only", END)
    return builder.compile()


def _block(state: Held) -> Held:
    """A sync node in a C-level wait (``Event.wait``/``time.sleep``): nothing interrupts it."""
    return {"value": cw.hog(dict(state))}


def _spin(state: Held) -> Held:
    """A sync node in a pure-Python busy loop."""
    return {"value": targets.spin(dict(state))}


async def _aspin(state: Held) -> Held:
    """An async node that never yields: it holds its event loop until released."""
    return {"value": targets.spin(dict(state))}


def _exit(state: Held) -> Held:
    raise SystemExit(3)


def _interrupt(state: Held) -> Held:
    raise KeyboardInterrupt


async def _aexit(state: Held) -> Held:
    raise SystemExit(4)


def _call(fn: Any) -> Any:
    def node(state: Held) -> Held:
        fn(None)
        return state

    node.__name__ = fn.__name__
    return node


block_graph = _single(_block)
spin_graph = _single(_spin)
aspin_graph = _single(_aspin)
exit_graph = _single(_exit)
aexit_graph = _single(_aexit)
interrupt_graph = _single(_interrupt)
sigkill_graph = _single(_call(targets.sigkill))
sigstop_graph = _single(_call(targets.sigstop))
