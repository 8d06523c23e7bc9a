"""LangGraph patterns modelled on LangGraph's own tests, importable as ``tests.langgraph_patterns:NAME``
by every tier's workers (threads, worker processes, hybrid subinterpreter hosts).

Sources the patterns follow (``langchain-ai/langgraph``): ``libs/langgraph/tests/test_pregel.py`` /
``test_pregel_async.py`` (interrupt/resume, Send map-reduce, Command goto/update, Command.PARENT,
subgraphs, RetryPolicy, CachePolicy, defer, store, pydantic/dataclass state, static breakpoints,
durability, stream modes), ``libs/prebuilt/tests/test_react_agent.py`` (ReAct agent with a fake
tool-calling model, the ``FakeToolCallingModel`` idea: the model answers from the conversation,
never from hidden mutable state, so every run is deterministic).

Every node is deterministic given its input: anything a test must observe across retries or
cache hits is kept in per-process dicts keyed by a value carried in the input.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import operator
import os
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.cache.memory import InMemoryCache
from langgraph.config import get_stream_writer
from langgraph.func import entrypoint, task
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore
from langgraph.types import CachePolicy, Command, RetryPolicy, Send, interrupt
from pydantic import BaseModel
from typing_extensions import TypedDict


# -- 1. interrupt()/resume in a node ----------------------------------------------------------
class AskState(TypedDict, total=False):
    value: str
    answer: str
    log: Annotated[list[str], operator.add]


def _ask(state: AskState) -> dict[str, Any]:
    answer = interrupt({"question": "name?", "value": state["value"]})
    return {"answer": answer, "log": [f"ask:{answer}"]}


def _after_ask(state: AskState) -> dict[str, Any]:
    return {"log": [f"after:{state['answer']}"]}


interrupt_builder = StateGraph(AskState)
interrupt_builder.add_node("ask", _ask)
interrupt_builder.add_node("after", _after_ask)
interrupt_builder.add_edge(START, "ask")
interrupt_builder.add_edge("ask", "after")
interrupt_builder.add_edge("after", END)


# -- 2a. several interrupts in one node (resumed one by one) ------------------------------------
def _two_questions(state: AskState) -> dict[str, Any]:
    first = interrupt("first?")
    second = interrupt({"second": first})
    return {"answer": f"{first}+{second}", "log": ["two"]}


multi_interrupt_builder = StateGraph(AskState)
multi_interrupt_builder.add_node("two", _two_questions)
multi_interrupt_builder.add_edge(START, "two")
multi_interrupt_builder.add_edge("two", END)


# -- 2b. parallel interrupts (resumed with a map of interrupt id -> value) ----------------------
def _left(state: AskState) -> dict[str, Any]:
    return {"log": [f"left:{interrupt('left?')}"]}


def _right(state: AskState) -> dict[str, Any]:
    return {"log": [f"right:{interrupt('right?')}"]}


parallel_interrupt_builder = StateGraph(AskState)
parallel_interrupt_builder.add_node("left", _left)
parallel_interrupt_builder.add_node("right", _right)
parallel_interrupt_builder.add_edge(START, "left")
parallel_interrupt_builder.add_edge(START, "right")
parallel_interrupt_builder.add_edge("left", END)
parallel_interrupt_builder.add_edge("right", END)


# -- 2c. interrupt inside a subgraph -------------------------------------------------------------
def _sub_ask(state: AskState) -> dict[str, Any]:
    answer = interrupt(f"sub:{state['value']}")
    return {"answer": answer, "log": [f"sub:{answer}"]}


_sub_ask_builder = StateGraph(AskState)
_sub_ask_builder.add_node("sub_ask", _sub_ask)
_sub_ask_builder.add_edge(START, "sub_ask")
_sub_ask_builder.add_edge("sub_ask", END)


def _parent_before(state: AskState) -> dict[str, Any]:
    return {"log": ["parent_before"]}


subgraph_interrupt_builder = StateGraph(AskState)
subgraph_interrupt_builder.add_node("before", _parent_before)
subgraph_interrupt_builder.add_node("child", _sub_ask_builder.compile())
subgraph_interrupt_builder.add_node("after", _after_ask)
subgraph_interrupt_builder.add_edge(START, "before")
subgraph_interrupt_builder.add_edge("before", "child")
subgraph_interrupt_builder.add_edge("child", "after")
subgraph_interrupt_builder.add_edge("after", END)


# -- 3. functional API ---------------------------------------------------------------------------
@task
def _double(x: int) -> int:
    return x * 2


@task
def _add(x: int, y: int) -> int:
    return x + y


@entrypoint()
def functional_graph(inputs: dict[str, Any]) -> dict[str, Any]:
    doubled = [_double(x).result() for x in inputs["xs"]]
    approved = interrupt({"doubled": doubled})
    total = _add(sum(doubled), approved).result()
    return {"doubled": doubled, "approved": approved, "total": total}


# -- 4. Send fan-out (map-reduce) ----------------------------------------------------------------
class MapState(TypedDict, total=False):
    subjects: list[str]
    jokes: Annotated[list[str], operator.add]
    best: str


def _fan_out(state: MapState) -> list[Send]:
    return [Send("joke", {"subject": s}) for s in state["subjects"]]


def _joke(state: dict[str, Any]) -> dict[str, Any]:
    return {"jokes": [f"joke about {state['subject']}"]}


def _best(state: MapState) -> dict[str, Any]:
    return {"best": sorted(state["jokes"])[0]}


send_builder = StateGraph(MapState)
send_builder.add_node("joke", _joke)
send_builder.add_node("best", _best)
send_builder.add_conditional_edges(START, _fan_out, ["joke"])
send_builder.add_edge("joke", "best")
send_builder.add_edge("best", END)


# -- 5. Command(goto=..., update=...) returned by nodes ------------------------------------------
class RouteState(TypedDict, total=False):
    n: int
    path: Annotated[list[str], operator.add]


def _router(state: RouteState) -> Command[Literal["even", "odd"]]:
    goto = "even" if state["n"] % 2 == 0 else "odd"
    return Command(goto=goto, update={"path": [f"router->{goto}"], "n": state["n"] + 10})


def _even(state: RouteState) -> Command[Literal["__end__"]]:
    return Command(goto=END, update={"path": [f"even:{state['n']}"]})


def _odd(state: RouteState) -> dict[str, Any]:
    return {"path": [f"odd:{state['n']}"]}


command_builder = StateGraph(RouteState)
command_builder.add_node("router", _router)
command_builder.add_node("even", _even)
command_builder.add_node("odd", _odd)
command_builder.add_edge(START, "router")


# -- 6. Command(graph=Command.PARENT) from a subgraph --------------------------------------------
def _child_hop(state: RouteState) -> Command:
    return Command(
        graph=Command.PARENT, goto="parent_target", update={"path": ["child->parent"], "n": 7}
    )


_hop_builder = StateGraph(RouteState)
_hop_builder.add_node("hop", _child_hop)
_hop_builder.add_edge(START, "hop")


def _parent_target(state: RouteState) -> dict[str, Any]:
    return {"path": [f"parent_target:{state['n']}"]}


parent_command_builder = StateGraph(RouteState)
parent_command_builder.add_node("child", _hop_builder.compile(), destinations=("parent_target",))
parent_command_builder.add_node("parent_target", _parent_target)
parent_command_builder.add_edge(START, "child")


# -- 7. subgraph as a node (shared and private keys) --------------------------------------------
class ChildState(TypedDict, total=False):
    path: Annotated[list[str], operator.add]
    secret: int


def _child_one(state: ChildState) -> dict[str, Any]:
    return {"path": ["child_one"], "secret": 41}


def _child_two(state: ChildState) -> dict[str, Any]:
    return {"path": [f"child_two:{state['secret'] + 1}"]}


_child_builder = StateGraph(ChildState)
_child_builder.add_node("child_one", _child_one)
_child_builder.add_node("child_two", _child_two)
_child_builder.add_edge(START, "child_one")
_child_builder.add_edge("child_one", "child_two")
child_graph = _child_builder.compile()


def _parent_first(state: RouteState) -> dict[str, Any]:
    return {"path": ["parent_first"]}


def _parent_last(state: RouteState) -> dict[str, Any]:
    return {"path": [f"parent_last:{len(state['path'])}"]}


subgraph_builder = StateGraph(RouteState)
subgraph_builder.add_node("first", _parent_first)
subgraph_builder.add_node("child", child_graph)
subgraph_builder.add_node("last", _parent_last)
subgraph_builder.add_edge(START, "first")
subgraph_builder.add_edge("first", "child")
subgraph_builder.add_edge("child", "last")
subgraph_builder.add_edge("last", END)


# -- 8. prebuilt ReAct agent with a fake tool-calling model --------------------------------------
class FakeToolCallingModel(BaseChatModel):
    """Calls ``lookup`` once for the human's question, then answers from the tool's result
    (decided from the conversation, like ``tests/model.py`` in langgraph's prebuilt tests)."""

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            message = AIMessage(content=f"answer: {last.content}")
        else:
            message = AIMessage(
                content="",
                tool_calls=[
                    {"name": "lookup", "args": {"query": str(last.content)}, "id": "call_1"}
                ],
            )
        return ChatResult(generations=[ChatGeneration(message=message)])

    @property
    def _llm_type(self) -> str:
        return "fake-tool-calling"

    def bind_tools(self, tools: Any, **kwargs: Any) -> FakeToolCallingModel:
        return self


@tool
def lookup(query: str) -> str:
    """Look something up."""
    return f"found<{query}>"


def _react_agent() -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langgraph.prebuilt import create_react_agent

        return create_react_agent(FakeToolCallingModel(), [lookup])


react_agent = _react_agent()


# -- 9. RetryPolicy on a flaky node ---------------------------------------------------------------
class FlakyState(TypedDict, total=False):
    key: str
    fail_times: int
    attempts: int


#: attempts per run key, in this process (retries run in the process that runs the graph)
ATTEMPTS: dict[str, int] = {}


def _flaky(state: FlakyState) -> dict[str, Any]:
    n = ATTEMPTS[state["key"]] = ATTEMPTS.get(state["key"], 0) + 1
    if n <= state["fail_times"]:
        raise ValueError(f"flaky failure {n}")
    return {"attempts": n}


retry_builder = StateGraph(FlakyState)
retry_builder.add_node(
    "flaky",
    _flaky,
    retry_policy=RetryPolicy(
        max_attempts=4, initial_interval=0.001, jitter=False, retry_on=ValueError
    ),
)
retry_builder.add_edge(START, "flaky")
retry_builder.add_edge("flaky", END)


# -- 10. CachePolicy ----------------------------------------------------------------------------
class CacheState(TypedDict, total=False):
    key: str
    x: int
    calls: int
    result: int


CALLS: dict[str, int] = {}


def _expensive(state: CacheState) -> dict[str, Any]:
    n = CALLS[state["key"]] = CALLS.get(state["key"], 0) + 1
    return {"calls": n, "result": state["x"] * 3}


_cache_builder = StateGraph(CacheState)
_cache_builder.add_node("expensive", _expensive, cache_policy=CachePolicy(ttl=600))
_cache_builder.add_edge(START, "expensive")
_cache_builder.add_edge("expensive", END)
cache_graph = _cache_builder.compile(cache=InMemoryCache())


# -- 11. defer=True ------------------------------------------------------------------------------
class DeferState(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


def _mk(name: str) -> Any:
    def node(state: DeferState) -> dict[str, Any]:
        return {"log": [f"{name}:{len(state.get('log') or [])}"]}

    node.__name__ = name
    return node


defer_builder = StateGraph(DeferState)
defer_builder.add_node("a", _mk("a"))
defer_builder.add_node("b", _mk("b"))
defer_builder.add_node("b2", _mk("b2"))
defer_builder.add_node("c", _mk("c"))
defer_builder.add_node("final", _mk("final"), defer=True)
defer_builder.add_edge(START, "a")
defer_builder.add_edge("a", "b")
defer_builder.add_edge("b", "b2")
defer_builder.add_edge("a", "c")
defer_builder.add_edge("b2", "final")
defer_builder.add_edge("c", "final")
defer_builder.add_edge("final", END)


# -- 12. store -----------------------------------------------------------------------------------
class StoreState(TypedDict, total=False):
    user: str
    note: str
    seen: list[str]


def _remember(state: StoreState, store: BaseStore) -> dict[str, Any]:
    ns = ("notes", state["user"])
    before = sorted(item.value["note"] for item in store.search(ns))
    store.put(ns, state["note"], {"note": state["note"]})
    return {"seen": before}


async def _aremember(state: StoreState, store: BaseStore) -> dict[str, Any]:
    ns = ("notes", state["user"])
    before = sorted(item.value["note"] for item in await store.asearch(ns))
    await store.aput(ns, state["note"], {"note": state["note"]})
    return {"seen": before}


store_builder = StateGraph(StoreState)
store_builder.add_node("remember", _remember)
store_builder.add_edge(START, "remember")
store_builder.add_edge("remember", END)

astore_builder = StateGraph(StoreState)
astore_builder.add_node("remember", _aremember)
astore_builder.add_edge(START, "remember")
astore_builder.add_edge("remember", END)


# -- 13. pydantic state --------------------------------------------------------------------------
class Address(BaseModel):
    city: str
    zip_code: str | None = None


class PydanticState(BaseModel):
    name: str
    address: Address
    tags: list[str] = []
    score: float = 0.0


def _pyd_a(state: PydanticState) -> dict[str, Any]:
    return {"tags": [*state.tags, "a"], "address": Address(city=state.address.city.upper())}


def _pyd_b(state: PydanticState) -> dict[str, Any]:
    return {"score": len(state.tags) + 0.5}


pydantic_builder = StateGraph(PydanticState)
pydantic_builder.add_node("a", _pyd_a)
pydantic_builder.add_node("b", _pyd_b)
pydantic_builder.add_edge(START, "a")
pydantic_builder.add_edge("a", "b")
pydantic_builder.add_edge("b", END)


# -- 14. dataclass state -------------------------------------------------------------------------
@dataclass
class Point:
    x: int
    y: int


@dataclass
class DataState:
    label: str
    points: Annotated[list[Point], operator.add] = field(default_factory=list)
    total: int = 0


def _dc_a(state: DataState) -> dict[str, Any]:
    return {"points": [Point(len(state.points), 2)]}


def _dc_b(state: DataState) -> dict[str, Any]:
    return {"total": sum(p.x + p.y for p in state.points), "label": state.label + "!"}


dataclass_builder = StateGraph(DataState)
dataclass_builder.add_node("a", _dc_a)
dataclass_builder.add_node("b", _dc_b)
dataclass_builder.add_edge(START, "a")
dataclass_builder.add_edge("a", "b")
dataclass_builder.add_edge("b", END)


# -- 15. static breakpoints ----------------------------------------------------------------------
class StepState(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


def _step(name: str) -> Any:
    def node(state: StepState) -> dict[str, Any]:
        return {"log": [name]}

    node.__name__ = name
    return node


breakpoint_builder = StateGraph(StepState)
for _name in ("a", "b", "c"):
    breakpoint_builder.add_node(_name, _step(_name))
breakpoint_builder.add_edge(START, "a")
breakpoint_builder.add_edge("a", "b")
breakpoint_builder.add_edge("b", "c")
breakpoint_builder.add_edge("c", END)
#: breakpoint compiled in (subiso adds the run's checkpointer with ``copy``)
breakpoint_compiled = breakpoint_builder.compile(interrupt_before=["b"])


# -- 16. runtime context -------------------------------------------------------------------------
@dataclass
class Ctx:
    user: str
    factor: int = 2


class CtxState(TypedDict, total=False):
    x: int
    who: str


def _uses_context(state: CtxState, runtime: Runtime[Ctx]) -> dict[str, Any]:
    return {"x": state["x"] * runtime.context.factor, "who": runtime.context.user}


context_builder = StateGraph(CtxState, context_schema=Ctx)
context_builder.add_node("node", _uses_context)
context_builder.add_edge(START, "node")
context_builder.add_edge("node", END)


# -- 18. state values of many types, type-exact --------------------------------------------------
class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class TypedStateT(TypedDict, total=False):
    amount: Decimal
    when: dt.datetime
    day: dt.date
    span: dt.timedelta
    pair: tuple[int, str]
    color: Color
    ident: uuid.UUID
    blob: bytes
    flags: frozenset[str]
    nested: dict[str, Any]


def _types_node(state: TypedStateT) -> dict[str, Any]:
    return {
        "amount": state["amount"] * 2,
        "when": state["when"] + dt.timedelta(hours=1),
        "day": state["day"] + dt.timedelta(days=1),
        "span": state["span"] * 2,
        "pair": (state["pair"][0] + 1, state["pair"][1] * 2),
        "color": Color.BLUE if state["color"] is Color.RED else Color.RED,
        "ident": uuid.UUID(int=state["ident"].int + 1),
        "blob": state["blob"] + b"\x00\xff",
        "flags": state["flags"] | {"seen"},
        "nested": {"t": (1, (2.5, None)), "d": Decimal("0.10"), "b": True, "i": 1, "l": [b"x"]},
    }


types_builder = StateGraph(TypedStateT)
types_builder.add_node("transform", _types_node)
types_builder.add_edge(START, "transform")
types_builder.add_edge("transform", END)


# -- streaming: custom events, a chat model, a subgraph ------------------------------------------
class StreamState(TypedDict, total=False):
    topic: str
    reply: str
    path: Annotated[list[str], operator.add]


def _writer_node(state: StreamState) -> dict[str, Any]:
    write = get_stream_writer()
    write({"progress": 1, "topic": state["topic"]})
    write(("tuple", Decimal("1.5")))
    return {"path": ["writer"]}


def _llm_node(state: StreamState) -> dict[str, Any]:
    # a new model per call: GenericFakeChatModel consumes its iterator
    model = GenericFakeChatModel(
        messages=iter([AIMessage(content=f"hello about {state['topic']} now")])
    )
    reply = model.invoke(state["topic"])
    return {"reply": reply.content, "path": ["llm"]}


def _stream_child(state: StreamState) -> dict[str, Any]:
    get_stream_writer()({"child": True})
    return {"path": ["inner"]}


_stream_child_builder = StateGraph(StreamState)
_stream_child_builder.add_node("inner", _stream_child)
_stream_child_builder.add_edge(START, "inner")

stream_builder = StateGraph(StreamState)
stream_builder.add_node("writer", _writer_node)
stream_builder.add_node("llm", _llm_node)
stream_builder.add_node("sub", _stream_child_builder.compile())
stream_builder.add_edge(START, "writer")
stream_builder.add_edge("writer", "llm")
stream_builder.add_edge("llm", "sub")
stream_builder.add_edge("sub", END)


# -- incremental delivery and early exit: gate files ---------------------------------------------
class GateState(TypedDict, total=False):
    gate: str  # a path the test creates to release node "a"
    marker: str  # a path node "b" writes at its end
    wait_s: float
    log: Annotated[list[str], operator.add]


def _gated(state: GateState) -> dict[str, Any]:
    get_stream_writer()({"started": "a"})
    deadline = time.monotonic() + state.get("wait_s", 20.0)
    while time.monotonic() < deadline:
        if os.path.exists(state["gate"]):
            return {"log": ["a:released"]}
        time.sleep(0.01)
    return {"log": ["a:timed-out"]}


async def _agated(state: GateState) -> dict[str, Any]:
    get_stream_writer()({"started": "a"})
    deadline = time.monotonic() + state.get("wait_s", 20.0)
    while time.monotonic() < deadline:
        if os.path.exists(state["gate"]):  # noqa: ASYNC240 - one stat per poll, by design
            return {"log": ["a:released"]}
        await asyncio.sleep(0.01)
    return {"log": ["a:timed-out"]}


def _marker(state: GateState) -> dict[str, Any]:
    if state.get("marker"):
        with open(state["marker"], "w") as f:
            f.write("b finished")
    return {"log": ["b"]}


gate_builder = StateGraph(GateState)
gate_builder.add_node("a", _gated)
gate_builder.add_node("b", _marker)
gate_builder.add_edge(START, "a")
gate_builder.add_edge("a", "b")
gate_builder.add_edge("b", END)

agate_builder = StateGraph(GateState)
agate_builder.add_node("a", _agated)
agate_builder.add_node("b", _marker)
agate_builder.add_edge(START, "a")
agate_builder.add_edge("a", "b")
agate_builder.add_edge("b", END)


# -- counter (thread affinity) -------------------------------------------------------------------
class CountState(TypedDict, total=False):
    count: Annotated[int, operator.add]


def _incr(state: CountState) -> dict[str, Any]:
    return {"count": 1}


counter_builder = StateGraph(CountState)
counter_builder.add_node("incr", _incr)
counter_builder.add_edge(START, "incr")
counter_builder.add_edge("incr", END)
