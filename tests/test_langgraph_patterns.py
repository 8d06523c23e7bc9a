"""LangGraph patterns (from LangGraph's own test-suite) on every tier, sync and async, each compared
type-strictly against plain LangGraph as the oracle.

The oracle is the same graph (``tests/langgraph_patterns.py``) compiled here with ``InMemorySaver``
/ ``InMemoryStore`` and run with ``invoke``/``ainvoke``/``stream``/``astream`` on its own fresh
thread id; the tier runs the same sequence of steps on another fresh thread id. ``assert_exact``
recurses through both results and requires ``type(x) is type(y)`` everywhere; only values
LangGraph itself makes random are masked: UUID strings (checkpoint, task, message, run and thread
ids), 32-hex interrupt ids and ISO timestamps inside strings.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
import os
import re
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import StateGraph
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command, Interrupt, Send, StateSnapshot
from pydantic import BaseModel

import subiso
from subiso import ConfigError, GraphConfig
from tests import langgraph_patterns as lp
from tests.conftest import assert_no_new_threads, needs_async_run_context

pytestmark = [pytest.mark.timeout(90), needs_async_run_context]

P = "tests.langgraph_patterns"
TIERS = ("inline", "context", "thread", "subinterpreter", "process")
MODES = ("sync", "async")
TMP = Path(tempfile.mkdtemp(prefix="subiso-lgp-"))
SQLITE = f"sqlite:///{TMP / 'checkpoints.db'}"
SQLITE_STORE = f"sqlite:///{TMP / 'store.db'}"


# -- type-strict comparison -----------------------------------------------------------------------
_RANDOM = [
    re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),  # uuids
    re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])"),  # interrupt ids (xxh3 128)
    re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)?"),  # timestamps
]


def _mask(text: str) -> str:
    for pattern in _RANDOM:
        text = pattern.sub("<random>", text)
    return text


def _key_order(key: Any) -> str:
    return f"{type(key).__name__}:{_mask(key) if isinstance(key, str) else repr(key)}"


def assert_exact(a: Any, b: Any, path: str = "$") -> None:
    """``a == b`` with ``type(x) is type(y)`` at every level (dicts, lists, tuples, NamedTuples,
    sets, dataclasses, pydantic models and LangChain messages), random ids masked."""
    assert type(a) is type(b), (
        f"{path}: type {type(a).__name__} != {type(b).__name__} ({a!r} vs {b!r})"
    )
    if isinstance(a, str):
        assert _mask(a) == _mask(b), f"{path}: {a!r} != {b!r}"
    elif isinstance(a, bool | int | bytes | Decimal | uuid.UUID | dt.date | dt.time | dt.timedelta):
        assert a == b, f"{path}: {a!r} != {b!r}"
    elif isinstance(a, float):
        assert a == b or (math.isnan(a) and math.isnan(b)), f"{path}: {a!r} != {b!r}"
    elif a is None or isinstance(a, type):
        assert a is b, f"{path}: {a!r} is not {b!r}"
    elif isinstance(a, dict):
        ka, kb = sorted(a, key=_key_order), sorted(b, key=_key_order)
        assert [_key_order(k) for k in ka] == [_key_order(k) for k in kb], (
            f"{path}: keys {list(a)} != {list(b)}"
        )
        for x, y in zip(ka, kb, strict=True):
            assert_exact(x, y, f"{path}.key({x!r})")
            assert_exact(a[x], b[y], f"{path}[{x!r}]")
    elif isinstance(a, tuple) and hasattr(a, "_fields"):  # NamedTuple (StateSnapshot, PregelTask)
        for name, x, y in zip(a._fields, a, b, strict=True):
            assert_exact(x, y, f"{path}.{name}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{path}: length {len(a)} != {len(b)}:\n{a!r}\n{b!r}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_exact(x, y, f"{path}[{i}]")
    elif isinstance(a, set | frozenset):
        assert a == b, f"{path}: {a!r} != {b!r}"
    elif isinstance(a, BaseModel):  # pydantic state and LangChain messages
        assert_exact(dict(a.__dict__), dict(b.__dict__), f"{path}<{type(a).__name__}>")
    elif dataclasses.is_dataclass(a):  # Interrupt, dataclass state
        for f in dataclasses.fields(a):
            assert_exact(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, Send):
        assert_exact((a.node, a.arg), (b.node, b.arg), f"{path}<Send>")
    elif isinstance(a, Command):
        assert_exact(
            (a.graph, a.update, a.resume, a.goto), (b.graph, b.update, b.resume, b.goto), path
        )
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def test_assert_exact_is_type_strict() -> None:
    assert_exact({"a": (1, [Decimal("1")])}, {"a": (1, [Decimal("1")])})
    for x, y in [
        (1, True),
        ((1,), [1]),
        (1, 1.0),
        ({"a": 1}, {"a": 2}),
        (b"a", "a"),
        (lp.Point(1, 2), lp.Point(1, 3)),
        (lp.Color.RED, "red"),
    ]:
        with pytest.raises(AssertionError):
            assert_exact(x, y)
    assert_exact(f"t:{uuid.uuid4()}", f"t:{uuid.uuid4()}")  # random ids are masked


# -- executors: one per tier for the module --------------------------------------------------------
@pytest.fixture(scope="module")
def executors() -> Iterator[Callable[[str], Any]]:
    before = set(threading.enumerate())
    opened: dict[str, Any] = {}

    def get(tier: str) -> Any:
        if tier not in opened:
            options = {} if tier in ("inline", "context") else {"max_workers": 2}
            opened[tier] = subiso.get_executor(tier, **options)
        return opened[tier]

    yield get
    for executor in opened.values():
        executor.close()
    assert_no_new_threads(before, "the module's executors")


@pytest.fixture(params=TIERS)
def tier(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


def _thread() -> dict[str, Any]:
    return {"configurable": {"thread_id": str(uuid.uuid4())}}


# -- the patterns ---------------------------------------------------------------------------------
Step = Callable[[Any], dict[str, Any]]  # previous output -> GraphConfig fields of this step


@dataclass
class Case:
    attr: str
    steps: Callable[[], list[Step]]  # fresh per run (keys unique to the run)
    checkpointer: str | None = "memory"
    store: str | None = None
    statuses: tuple[str, ...] = ()  # the statuses the steps must end in (oracle must agree)
    extra: dict[str, Any] = field(default_factory=dict)
    #: parallel interrupts: LangGraph lists them in completion order, so compare them sorted
    unordered_interrupts: bool = False
    #: tasks run in parallel in one step: their updates arrive in completion order, so the
    #: "updates" events are compared as a multiset
    parallel: bool = False


def _const(*steps: dict[str, Any]) -> Callable[[], list[Step]]:
    return lambda: [lambda _prev, s=s: dict(s) for s in steps]


def _resume_each(prev: Any) -> dict[str, Any]:
    return {"resume": {i.id: f"ans:{i.value}" for i in prev["__interrupt__"]}}


def _retry_steps() -> list[Step]:
    key = str(uuid.uuid4())
    return [lambda _p: {"input": {"key": key, "fail_times": 2}}]


def _cache_steps() -> list[Step]:
    key = str(uuid.uuid4())
    return [lambda _p: {"input": {"key": key, "x": 4}}] * 2


def _store_steps() -> list[Step]:
    user = str(uuid.uuid4())
    return [lambda _p, n=n: {"input": {"user": user, "note": n}} for n in ("n1", "n2", "n3")]


TYPES_INPUT = {
    "amount": Decimal("12.3400"),
    "when": dt.datetime(2024, 2, 29, 23, 30, 5, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    "day": dt.date(2024, 12, 31),
    "span": dt.timedelta(days=1, microseconds=7),
    "pair": (1, "x"),
    "color": lp.Color.RED,
    "ident": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "blob": b"\x01bytes",
    "flags": frozenset({"a", "b"}),
}

CASES: dict[str, Case] = {
    "interrupt_memory": Case(
        "interrupt_builder",
        _const({"input": {"value": "v"}}, {"resume": "Bob"}),
        statuses=("interrupted", "done"),
    ),
    "interrupt_sqlite": Case(
        "interrupt_builder",
        _const({"input": {"value": "v"}}, {"resume": {"name": "Ann"}}),
        checkpointer=SQLITE,
        statuses=("interrupted", "done"),
    ),
    "multi_interrupt": Case(
        "multi_interrupt_builder",
        _const({"input": {"value": "v"}}, {"resume": 1}, {"resume": 2}),
        statuses=("interrupted", "interrupted", "done"),
    ),
    "parallel_interrupts": Case(
        "parallel_interrupt_builder",
        lambda: [lambda _p: {"input": {"value": "v"}}, _resume_each],
        statuses=("interrupted", "done"),
        unordered_interrupts=True,
        parallel=True,
    ),
    "subgraph_interrupt": Case(
        "subgraph_interrupt_builder",
        _const({"input": {"value": "v"}}, {"resume": "deep"}),
        statuses=("interrupted", "done"),
    ),
    "functional_api": Case(
        "functional_graph",
        _const({"input": {"xs": [1, 2, 3]}}, {"resume": 100}),
        statuses=("interrupted", "done"),
    ),
    "send_map_reduce": Case(
        "send_builder",
        _const({"input": {"subjects": ["cats", "dogs", "ants"]}}),
        checkpointer=None,
        parallel=True,
    ),
    "command_goto": Case("command_builder", _const({"input": {"n": 3}}, {"input": {"n": 4}})),
    "command_parent": Case("parent_command_builder", _const({"input": {"n": 1}})),
    "subgraph_node": Case("subgraph_builder", _const({"input": {"n": 1}}), checkpointer=None),
    "react_agent": Case(
        "react_agent",
        _const(
            {"input": {"messages": [("user", "weather in Paris?")]}},
            {"input": {"messages": [("user", "and Rome?")]}},
        ),
    ),
    "retry_policy": Case("retry_builder", _retry_steps, checkpointer=None),
    "cache_policy": Case("cache_graph", _cache_steps, checkpointer=None),
    "defer": Case("defer_builder", _const({"input": {"log": []}}), parallel=True),
    "store_memory": Case("store_builder", _store_steps, store="memory"),
    "store_sqlite": Case("store_builder", _store_steps, store=SQLITE_STORE),
    "pydantic_state": Case(
        "pydantic_builder",
        _const({"input": {"name": "n", "address": lp.Address(city="paris", zip_code="75")}}),
    ),
    "dataclass_state": Case(
        "dataclass_builder",
        _const({"input": lp.DataState(label="l", points=[lp.Point(5, 6)])}),
    ),
    "breakpoint_call_time": Case(
        "breakpoint_builder",
        _const({"input": {"log": []}, "interrupt_before": ["b"]}, {"input": None}),
        statuses=("interrupted", "done"),
        extra={"next": ("b",)},
    ),
    "breakpoint_compiled": Case(
        "breakpoint_compiled",
        _const({"input": {"log": []}}, {"input": None}),
        statuses=("interrupted", "done"),
        extra={"next": ("b",)},
    ),
    "breakpoint_after_sqlite": Case(
        "breakpoint_builder",
        _const({"input": {"log": []}, "interrupt_after": ["a"]}, {"input": None}),
        checkpointer=SQLITE,
        statuses=("interrupted", "done"),
        extra={"next": ("b",)},
    ),
    "runtime_context": Case(
        "context_builder",
        _const({"input": {"x": 7}, "context": lp.Ctx(user="ann", factor=3)}),
        checkpointer=None,
    ),
    "durability_sync": Case(
        "interrupt_builder",
        _const(
            {"input": {"value": "d"}, "durability": "sync"}, {"resume": "x", "durability": "sync"}
        ),
        checkpointer=SQLITE,
        statuses=("interrupted", "done"),
    ),
    "exotic_types": Case("types_builder", _const({"input": TYPES_INPUT})),
}


# -- the oracle: plain LangGraph --------------------------------------------------------------------
def oracle_graph(attr: str, checkpointer: Any, store: Any) -> Any:
    obj = getattr(lp, attr)
    if isinstance(obj, StateGraph):
        return obj.compile(checkpointer=checkpointer, store=store)
    update = {k: v for k, v in (("checkpointer", checkpointer), ("store", store)) if v is not None}
    return obj.copy(update=update) if update else obj


def _invoke_args(fields: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    run_input = Command(resume=fields["resume"]) if "resume" in fields else fields.get("input")
    options = {
        k: fields[k]
        for k in ("context", "durability", "interrupt_before", "interrupt_after")
        if k in fields
    }
    return run_input, options


@dataclass
class Outcome:
    output: Any
    status: str
    state: Any  # StateSnapshot after the step (None without a checkpointer)


def _oracle_status(graph: Any, output: Any, config: dict[str, Any] | None) -> str:
    if isinstance(output, dict) and output.get("__interrupt__"):
        return "interrupted"
    if config and graph.get_state(config).next:
        return "interrupted"
    return "done"


def run_oracle(case: Case, mode: str) -> list[Outcome]:
    saver = InMemorySaver() if case.checkpointer else None
    store = InMemoryStore() if case.store else None
    graph = oracle_graph(case.attr, saver, store)
    config = _thread() if case.checkpointer else None
    outcomes: list[Outcome] = []
    prev: Any = None

    async def ainvoke(run_input: Any, cfg: Any, options: dict[str, Any]) -> Any:
        return await graph.ainvoke(run_input, cfg, **options)

    for step in case.steps():
        run_input, options = _invoke_args(step(prev))
        if mode == "sync":
            output = graph.invoke(run_input, config, **options)
        else:
            output = asyncio.run(ainvoke(run_input, config, options))
        state = graph.get_state(config, subgraphs=True) if config else None
        outcomes.append(Outcome(output, _oracle_status(graph, output, config), state))
        prev = output
    return outcomes


_ORACLES: dict[tuple[str, str], list[Outcome]] = {}


def oracle(name: str, mode: str) -> list[Outcome]:
    if (name, mode) not in _ORACLES:
        _ORACLES[name, mode] = run_oracle(CASES[name], mode)
    return _ORACLES[name, mode]


def run_subiso(executor: Any, case: Case, mode: str) -> list[tuple[Any, Any]]:
    """(RunResult, StateSnapshot or None) per step, on one fresh thread id."""
    config = _thread() if case.checkpointer else {}
    results: list[tuple[Any, Any]] = []

    async def arun(cfg: GraphConfig) -> tuple[Any, Any]:
        result = await executor.aexecute(cfg)
        return result, (
            await executor.aget_state(cfg, subgraphs=True)
        ) if case.checkpointer else None

    prev: Any = None
    for step in case.steps():
        cfg = GraphConfig(
            graph=f"{P}:{case.attr}",
            config=config,
            checkpointer=case.checkpointer,
            store=case.store,
            **step(prev),
        )
        if mode == "sync":
            result = executor.execute(cfg)
            results.append(
                (result, executor.get_state(cfg, subgraphs=True) if case.checkpointer else None)
            )
        else:
            results.append(asyncio.run(arun(cfg)))
        prev = results[-1][0].output
    return results


def _sort_output(output: Any) -> Any:
    if isinstance(output, dict) and output.get("__interrupt__"):
        return {**output, "__interrupt__": sorted(output["__interrupt__"], key=lambda i: i.value)}
    return output


def _sort_state(state: Any) -> Any:
    return state._replace(interrupts=tuple(sorted(state.interrupts, key=lambda i: i.value)))


def _sorted_interrupts(result: Any, state: Any, want: Outcome) -> tuple[Any, Any, Outcome]:
    return (
        result._replace(output=_sort_output(result.output)),
        _sort_state(state),
        Outcome(_sort_output(want.output), want.status, _sort_state(want.state)),
    )


def _interrupts(output: Any) -> tuple[Any, ...]:
    return tuple(output.get("__interrupt__") or ()) if isinstance(output, dict) else ()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(CASES))
def test_pattern(name: str, mode: str, tier: str, executors: Callable[[str], Any]) -> None:
    case = CASES[name]
    expected = oracle(name, mode)
    if case.statuses:
        assert tuple(o.status for o in expected) == case.statuses  # the oracle does what we think
    got = run_subiso(executors(tier), case, mode)
    assert len(got) == len(expected)
    for i, ((result, state), want) in enumerate(zip(got, expected, strict=True)):
        if case.unordered_interrupts:
            result, state, want = _sorted_interrupts(result, state, want)
        assert_exact(result.output, want.output, f"step{i}.output")
        assert result.report.status == want.status, f"step {i}: {result.report}"
        for found, wanted in zip(result.interrupts, _interrupts(want.output), strict=True):
            assert type(found) is Interrupt and found.value == wanted.value
        if case.checkpointer:
            assert type(state) is StateSnapshot
            assert_exact(state, want.state, f"step{i}.state")
            if want.status == "interrupted" and "next" in case.extra:
                assert state.next == case.extra["next"]


def test_resume_on_fresh_executor_from_sqlite(tier: str, make_executor: Callable[..., Any]) -> None:
    """Pause on one executor, close it, resume the thread on a new executor of the same tier."""
    options = {} if tier in ("inline", "context") else {"max_workers": 1}
    config = _thread()
    cfg = GraphConfig(
        graph=f"{P}:interrupt_builder", config=config, checkpointer=SQLITE, input={"value": "fresh"}
    )
    first = make_executor(tier, **options)
    paused = first.execute(cfg)
    assert paused.report.status == "interrupted"
    assert [type(i) for i in paused.interrupts] == [Interrupt]
    assert paused.interrupts[0].value == {"question": "name?", "value": "fresh"}
    first.close()
    second = make_executor(tier, **options)
    done = second.execute(cfg.replace(input=None, resume="Zed"))
    assert done.report.status == "done"
    assert_exact(done.output, {"value": "fresh", "answer": "Zed", "log": ["ask:Zed", "after:Zed"]})


# -- streaming --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StreamCase:
    stream_mode: Any
    subgraphs: bool = False
    attr: str = "stream_builder"
    steps: tuple[dict[str, Any], ...] = ({"input": {"topic": "tea"}},)


STREAMS: dict[str, StreamCase] = {
    "values": StreamCase("values"),
    "updates": StreamCase("updates"),
    "custom": StreamCase("custom"),
    "messages": StreamCase("messages"),
    "debug": StreamCase("debug"),
    "checkpoints": StreamCase("checkpoints"),
    "tasks": StreamCase("tasks"),
    "list": StreamCase(["updates", "custom", "messages"]),
    "updates-subgraphs": StreamCase("updates", True),
    "list-subgraphs": StreamCase(["values", "custom", "debug"], True),
    # a stream that pauses on interrupt() and a second stream that resumes it
    "interrupt-resume": StreamCase(
        ["updates", "values"],
        attr="interrupt_builder",
        steps=({"input": {"value": "s"}}, {"resume": "S"}),
    ),
    "subgraph-interrupt-resume": StreamCase(
        ["updates", "tasks"],
        True,
        attr="subgraph_interrupt_builder",
        steps=({"input": {"value": "s"}}, {"resume": "S"}),
    ),
    "functional-custom-updates": StreamCase(
        ["updates", "custom"],
        attr="functional_graph",
        steps=({"input": {"xs": [4]}}, {"resume": 1}),
    ),
}


def oracle_stream(case: StreamCase, mode: str) -> list[Any]:
    graph = oracle_graph(case.attr, InMemorySaver(), None)
    config = _thread()
    chunks: list[Any] = []
    for step in case.steps:
        run_input, options = _invoke_args(step)
        kw = {"stream_mode": case.stream_mode, "subgraphs": case.subgraphs, **options}
        if mode == "sync":
            chunks.append(list(graph.stream(run_input, config, **kw)))
        else:

            async def collect(run_input: Any = run_input, kw: dict[str, Any] = kw) -> list[Any]:
                return [c async for c in graph.astream(run_input, config, **kw)]

            chunks.append(asyncio.run(collect()))
    return chunks


def test_oracle_stream_is_deterministic_after_masking() -> None:
    for case in STREAMS.values():
        assert_exact(oracle_stream(case, "sync"), oracle_stream(case, "sync"))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", list(STREAMS))
def test_stream(kind: str, mode: str, tier: str, executors: Callable[[str], Any]) -> None:
    case = STREAMS[kind]
    expected = oracle_stream(case, mode)
    ex = executors(tier)
    config = _thread()
    got: list[Any] = []
    for step in case.steps:
        cfg = GraphConfig(graph=f"{P}:{case.attr}", config=config, checkpointer="memory", **step)
        if mode == "sync":
            got.append(list(ex.stream(cfg, case.stream_mode, subgraphs=case.subgraphs)))
        else:

            async def collect(cfg: GraphConfig = cfg) -> list[Any]:
                return [
                    c async for c in ex.astream(cfg, case.stream_mode, subgraphs=case.subgraphs)
                ]

            got.append(asyncio.run(collect()))
    assert_exact(got, expected)


def _gate_cfg(
    gate: Path, marker: Path | None = None, wait_s: float = 15.0, attr: str = "gate_builder"
) -> GraphConfig:
    state: dict[str, Any] = {"gate": str(gate), "wait_s": wait_s, "log": []}
    if marker is not None:
        state["marker"] = str(marker)
    return GraphConfig(graph=f"{P}:{attr}", input=state)


@pytest.mark.parametrize("mode", MODES)
def test_stream_delivers_incrementally(
    mode: str, tier: str, executors: Callable[[str], Any], tmp_path: Path
) -> None:
    """Node "a" emits an event, then waits for a gate only this test opens after receiving that
    event: buffered delivery makes node "a" time out and the test fail."""
    gate = tmp_path / "gate"
    cfg = _gate_cfg(gate)
    ex = executors(tier)
    events: list[Any] = []
    if mode == "sync":
        for event in ex.stream(cfg, ["custom", "updates"]):
            events.append(event)
            if len(events) == 1:
                assert not gate.exists()
                gate.touch()
    else:

        async def consume() -> None:
            async for event in ex.astream(cfg, ["custom", "updates"]):
                events.append(event)
                if len(events) == 1:
                    gate.touch()

        asyncio.run(consume())
    assert events == [
        ("custom", {"started": "a"}),
        ("updates", {"a": {"log": ["a:released"]}}),
        ("updates", {"b": {"log": ["b"]}}),
    ]


@pytest.mark.parametrize(
    "leave_tier",
    [
        "inline",
        "context",
        "thread",
        "subinterpreter",
        "process",
    ],
)
def test_leaving_a_stream_cancels_the_run(leave_tier: str, tmp_path: Path) -> None:
    """``break`` after the first event: node "b" (which writes a marker at its end) never runs -
    not by the time the executor has closed and every thread it started has ended - and the
    executor keeps working meanwhile. Sync and async streams, async and sync node "a"."""
    before = set(threading.enumerate())
    options = {} if leave_tier in ("inline", "context") else {"max_workers": 1}
    ex = subiso.get_executor(leave_tier, **options)
    never = tmp_path / "never"
    markers = [tmp_path / f"{i}.marker" for i in range(3)]
    try:
        for attr, marker in (("agate_builder", markers[0]), ("gate_builder", markers[1])):
            for event in ex.stream(_gate_cfg(never, marker, 1.5, attr), "custom"):
                assert event == {"started": "a"}
                break

        async def leave() -> None:
            async for event in ex.astream(
                _gate_cfg(never, markers[2], 1.5, "agate_builder"), "custom"
            ):
                assert event == {"started": "a"}
                break

        asyncio.run(leave())
        assert ex.run(GraphConfig(graph=f"{P}:command_builder", input={"n": 2})) == {
            "n": 12,
            "path": ["router->even", "even:12"],
        }
    finally:
        ex.close()
    # a run that was not cancelled finishes on a thread of the executor: wait for those (bounded)
    assert_no_new_threads(before, "the executor")
    assert [m.exists() for m in markers] == [False, False, False]


# -- on_event -----------------------------------------------------------------------------------
def _unordered(updates: list[Any]) -> list[Any]:
    return sorted(updates, key=lambda u: _mask(repr(u)))


def oracle_updates(case: Case, mode: str) -> list[list[Any]]:
    """``graph.stream(stream_mode="updates")`` per step, on one thread."""
    graph = oracle_graph(
        case.attr,
        InMemorySaver() if case.checkpointer else None,
        InMemoryStore() if case.store else None,
    )
    config = _thread() if case.checkpointer else None
    per_step: list[list[Any]] = []
    prev: Any = None
    for step in case.steps():
        run_input, options = _invoke_args(step(prev))
        if mode == "sync":
            events = list(graph.stream(run_input, config, stream_mode="updates", **options))
        else:

            async def collect(run_input: Any = run_input, options: Any = options) -> list[Any]:
                stream = graph.astream(run_input, config, stream_mode="updates", **options)
                return [e async for e in stream]

            events = asyncio.run(collect())
        per_step.append(events)
        # the next step's input may depend on this step's interrupts (their ids)
        found = [i for e in events if isinstance(e, dict) for i in e.get("__interrupt__", ())]
        prev = {"__interrupt__": found} if found else None
    return per_step


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(CASES))
def test_on_event_matches_updates_stream(
    name: str, mode: str, tier: str, executors: Callable[[str], Any]
) -> None:
    """``run``/``arun(on_event=fn)``: fn gets exactly LangGraph's "updates" stream, and the
    output and status are still those of ``invoke``."""
    case = CASES[name]
    expected_events = oracle_updates(case, mode)
    expected = oracle(name, mode)
    ex = executors(tier)
    config = _thread() if case.checkpointer else {}
    prev: Any = None
    for i, (step, want) in enumerate(zip(case.steps(), expected, strict=True)):
        cfg = GraphConfig(
            graph=f"{P}:{case.attr}",
            config=config,
            checkpointer=case.checkpointer,
            store=case.store,
            **step(prev),
        )
        events: list[Any] = []
        if mode == "sync":
            result = ex.execute(cfg, on_event=events.append)
        else:
            result = asyncio.run(ex.aexecute(cfg, on_event=events.append))
        want_events = expected_events[i]
        if case.parallel:
            events, want_events = _unordered(events), _unordered(want_events)
        assert_exact(events, want_events, f"step{i}.events")
        output, want_output = result.output, want.output
        if case.unordered_interrupts:
            output, want_output = _sort_output(output), _sort_output(want_output)
        assert_exact(output, want_output, f"step{i}.output")
        assert result.report.status == want.status
        prev = result.output


def test_memory_store_persists_within_the_executor(
    tier: str, executors: Callable[[str], Any]
) -> None:
    """``store="memory"``: one store for the executor - runs on other thread ids, with no
    thread id, and concurrent runs all see each other's writes (as one InMemoryStore would)."""
    ex = executors(tier)
    user = str(uuid.uuid4())

    def cfg(note: str, thread: bool) -> GraphConfig:
        return GraphConfig(
            graph=f"{P}:store_builder",
            input={"user": user, "note": note},
            store="memory",
            config=_thread() if thread else {},
        )

    seen = [ex.run(cfg(n, thread=i % 2 == 0))["seen"] for i, n in enumerate(["n1", "n2", "n3"])]
    assert seen == [[], ["n1"], ["n1", "n2"]]
    for future in [ex.submit(cfg(f"c{i}", thread=False)) for i in range(4)]:
        future.result(timeout=30)
    last = asyncio.run(ex.arun(cfg("z", thread=True)))
    assert_exact(last["seen"], ["c0", "c1", "c2", "c3", "n1", "n2", "n3"])


# -- the checkpoint API -----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_state_api_matches_langgraph(mode: str, tier: str, executors: Callable[[str], Any]) -> None:
    graph = oracle_graph("breakpoint_builder", InMemorySaver(), None)
    config = _thread()
    ex = executors(tier)
    cfg = GraphConfig(graph=f"{P}:breakpoint_builder", config=_thread(), checkpointer="memory")

    def oracle_seq() -> list[Any]:
        return [
            graph.invoke({"log": []}, config, interrupt_before=["b"]),
            graph.get_state(config),
            list(graph.get_state_history(config, limit=2)),
            graph.update_state(config, {"log": ["manual"]}, as_node="a"),
            graph.get_state(config),
            graph.invoke(None, config),
            list(graph.get_state_history(config, limit=2)),
            graph.get_state(config, subgraphs=True),
        ]

    def sync_seq() -> list[Any]:
        return [
            ex.run(cfg.replace(input={"log": []}, interrupt_before=["b"])),
            ex.get_state(cfg),
            ex.get_state_history(cfg, limit=2),
            ex.update_state(cfg, {"log": ["manual"]}, as_node="a"),
            ex.get_state(cfg),
            ex.run(cfg),
            ex.get_state_history(cfg, limit=2),
            ex.get_state(cfg, subgraphs=True),
        ]

    async def async_seq() -> list[Any]:
        return [
            await ex.arun(cfg.replace(input={"log": []}, interrupt_before=["b"])),
            await ex.aget_state(cfg),
            await ex.aget_state_history(cfg, limit=2),
            await ex.aupdate_state(cfg, {"log": ["manual"]}, as_node="a"),
            await ex.aget_state(cfg),
            await ex.arun(cfg),
            await ex.aget_state_history(cfg, limit=2),
            await ex.aget_state(cfg, subgraphs=True),
        ]

    expected = oracle_seq()
    got = sync_seq() if mode == "sync" else asyncio.run(async_seq())
    assert type(got[1]) is StateSnapshot and got[1].next == ("b",)
    assert [type(s) for s in got[2]] == [StateSnapshot, StateSnapshot]
    assert_exact(got, expected)


# -- thread id affinity -------------------------------------------------------------------------
def test_thread_affinity_accumulates_every_run(make_executor: Callable[..., Any]) -> None:
    ex = make_executor("thread", max_workers=4, checkpointer="memory")
    cfg = GraphConfig(graph=f"{P}:counter_builder", input={"count": 0}, config=_thread())
    assert [ex.run(cfg)["count"] for _ in range(20)] == list(range(1, 21))

    results: dict[int, list[Any]] = {}

    def submitter(k: int) -> None:  # 4 threads at once, each with consecutive runs of its own
        mine = cfg.replace(config=_thread())
        results[k] = [ex.submit(mine).result(timeout=30)["count"] for _ in range(10)]

    threads = [threading.Thread(target=submitter, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {k: list(range(1, 11)) for k in range(4)}


# -- compiled graph objects and config errors -----------------------------------------------------


@pytest.mark.parametrize(
    "in_tier",
    [
        "inline",
        "context",
        "thread",
        "subinterpreter",
        "process",
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_compiled_graph_object(in_tier: str, mode: str, executors: Callable[[str], Any]) -> None:
    """A compiled graph object as ``graph`` runs in-process (the subinterpreter tier's hybrid
    mode included); across a process boundary it is refused."""
    graph = lp.command_builder.compile()
    cfg = GraphConfig(graph=graph, input={"n": 5})
    ex = executors(in_tier)
    run = ex.run if mode == "sync" else (lambda c: asyncio.run(ex.arun(c)))
    in_process = getattr(ex, "fallback_tier", None) is None  # hybrid, not fallen back
    if in_tier in ("inline", "context", "thread") or (in_tier == "subinterpreter" and in_process):
        assert_exact(run(cfg), graph.invoke({"n": 5}))
    else:
        with pytest.raises(ConfigError, match=re.escape("'pkg.mod:attr'")):
            run(cfg)


def test_config_errors() -> None:
    with pytest.raises(ConfigError) as info:
        GraphConfig(graph=f"{P}:interrupt_builder", resum=1)  # type: ignore[call-arg]
    assert "resum" in str(info.value) and "valid fields" in str(info.value)
    for name in ("graph", "input", "resume", "config", "context", "timeout", "checkpointer"):
        assert name in str(info.value)
    with pytest.raises(ConfigError):
        GraphConfig(graph=f"{P}:interrupt_builder", timeout="10")  # type: ignore[arg-type]


def teardown_module() -> None:
    for path in TMP.glob("*"):
        path.unlink(missing_ok=True)
    os.rmdir(TMP) if not any(TMP.iterdir()) else None
