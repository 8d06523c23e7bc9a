"""A compiled graph runs through a tier as it runs plainly: one minimal repro per cause found
by routing LangGraph's own tests through each in-process tier (tests/langgraph_routed/), real
LangGraph graphs only.

* a graph compiled with a sync-only saver (SqliteSaver): every call, timeouts included;
* a graph compiled with an async saver bound to another loop: refused up front, naming the fix;
* a node raising TimeoutError: reaches the caller as that TimeoutError;
* the subinterpreter tier takes a graph object (hybrid mode);
* an inline executor closed from a coroutine, or with a run suspended on a stopped loop;
* leaving an ``astream`` early, or cancelling an ``arun``, cancels the run before the caller
  goes on, as LangGraph's own do;
* ``arun`` of an all-sync graph goes through ``ainvoke`` (async callbacks as under it);
* a saver subclassing InMemorySaver with only its sync methods right runs as ``invoke`` runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import pytest
from langgraph.callbacks import GraphCallbackHandler
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import START
from langgraph.types import interrupt

import subiso
from subiso import ConfigError, GraphConfig, RunTimeout
from tests.conftest import BACKEND, needs_async_run_context
from tests.transparency_graphs import Gate, chain, node, sqlite_saver

IN_PROCESS = ("inline", "context", "thread", "subinterpreter")
ALL = (*IN_PROCESS, "process")


def _skip_without_interpreters(tier: str) -> None:
    if tier == "subinterpreter" and not BACKEND:
        pytest.skip(f"no subinterpreters here ({BACKEND.reason})")


@pytest.fixture
def ex(request: pytest.FixtureRequest, make_executor: Any) -> Any:
    tier = request.param
    _skip_without_interpreters(tier)
    return make_executor(tier, **({} if tier in ("inline", "context") else {"max_workers": 1}))


def _thread(cfg: GraphConfig, thread_id: str) -> GraphConfig:
    return cfg.replace(config={"configurable": {"thread_id": thread_id}})


# -- a sync-only saver compiled into the graph ----------------------------------------------------
@pytest.mark.parametrize("ex", IN_PROCESS, indirect=True)
def test_a_graph_with_its_own_sync_saver_runs_every_call(ex: Any) -> None:
    """Was ``NotImplementedError: The SqliteSaver does not support async methods`` from
    everything but a plain ``run``: subiso ran such a graph with ainvoke/astream."""
    graph = chain(*_nodes("a", "b")).compile(checkpointer=sqlite_saver())
    cfg = GraphConfig(graph=graph, input={"log": []}, config={"configurable": {"thread_id": "1"}})
    assert ex.run(cfg) == {"log": ["a", "b"]}
    assert ex.run(cfg.replace(timeout=30)) == {"log": ["a", "b"] * 2}
    assert list(ex.stream(cfg)) == [{"a": {"log": ["a"]}}, {"b": {"log": ["b"]}}]
    events: list[Any] = []
    assert ex.run(cfg, on_event=events.append) == {"log": ["a", "b"] * 4}
    assert events == [{"a": {"log": ["a"]}}, {"b": {"log": ["b"]}}]

    async def async_calls() -> tuple[Any, ...]:
        out = await ex.arun(cfg)
        chunks = [c async for c in ex.astream(cfg, stream_mode="values")]
        state = await ex.aget_state(cfg)
        history = await ex.aget_state_history(cfg, limit=2)
        return out, chunks, state, history

    out, chunks, state, history = asyncio.run(async_calls())
    assert out == {"log": ["a", "b"] * 5}
    assert chunks[-1] == {"log": ["a", "b"] * 6} and len(chunks) == 3
    assert state.values == {"log": ["a", "b"] * 6} and len(history) == 2
    ex.update_state(cfg, {"log": ["edited"]}, as_node="b")
    assert ex.get_state(cfg).values["log"][-1] == "edited"
    assert len(ex.get_state_history(cfg)) == 6 * 4 + 1


@pytest.mark.parametrize("ex", ALL, indirect=True)
def test_a_graph_compiled_with_a_sync_saver_runs_by_import_path(ex: Any) -> None:
    """The same graph imported by the worker (process tier, hybrid mode by path)."""
    cfg = GraphConfig(
        graph="tests.transparency_graphs:sqlite_graph",
        input={"log": []},
        config={"configurable": {"thread_id": f"path-{ex.tier}"}},
        timeout=30,
    )
    assert ex.run(cfg) == {"log": ["a", "b"]}
    assert [c for c in ex.stream(cfg, stream_mode="updates")][-1] == {"b": {"log": ["b"]}}
    assert ex.get_state(cfg).values == {"log": ["a", "b"] * 2}


@pytest.mark.parametrize("ex", IN_PROCESS, indirect=True)
def test_a_timeout_on_a_sync_saver_graph_gives_control_back_while_its_node_holds(
    ex: Any,
) -> None:
    """Such a run goes through the graph's sync methods on a thread; its deadline still ends
    the caller's wait, with the node still held (a sync node cannot be interrupted, in plain
    LangGraph as here), and the executor goes on serving."""
    gate = Gate()
    graph = chain(gate.node, *_nodes("after")).compile(checkpointer=sqlite_saver())
    cfg = GraphConfig(graph=graph, input={"log": []}, config={"configurable": {"thread_id": "t"}})
    try:
        with pytest.raises(RunTimeout):
            ex.run(cfg.replace(timeout=0.3))
        assert gate.entered.is_set() and not gate.released.is_set()
    finally:
        gate.released.set()
    fresh = chain(*_nodes("x")).compile(checkpointer=sqlite_saver())
    assert ex.run(GraphConfig(graph=fresh, input={"log": []}, config=cfg.config)) == {"log": ["x"]}


# -- an async saver bound to the caller's loop -----------------------------------------------------
@pytest.mark.parametrize("ex", ["thread", "subinterpreter"], indirect=True)
def test_a_graph_with_a_saver_bound_to_the_callers_loop_is_refused_naming_the_fix(
    ex: Any,
) -> None:
    """Was ``RuntimeError: <asyncio.locks.Lock ...> is bound to a different event loop`` from
    deep inside the run: the tier runs it on its own loop."""

    async def main() -> None:
        async with AsyncSqliteSaver.from_conn_string(":memory:") as saver:
            graph = chain(*_nodes("a")).compile(checkpointer=saver)
            cfg = GraphConfig(
                graph=graph, input={"log": []}, config={"configurable": {"thread_id": "1"}}
            )
            for call in (lambda: ex.arun(cfg), lambda: asyncio.to_thread(ex.run, cfg)):
                with pytest.raises(ConfigError) as e:
                    await call()
                message = str(e.value)
                assert "checkpointer AsyncSqliteSaver is bound to the event loop" in message
                assert 'checkpointer="sqlite:///runs.db"' in message
            assert await saver.aget_tuple(cfg.config) is None  # untouched

    asyncio.run(main())


@pytest.mark.parametrize("ex", ["inline", "context"], indirect=True)
def test_a_saver_on_the_callers_loop_works_where_arun_runs_on_that_loop(ex: Any) -> None:
    async def main() -> None:
        async with AsyncSqliteSaver.from_conn_string(":memory:") as saver:
            graph = chain(*_nodes("a")).compile(checkpointer=saver)
            cfg = GraphConfig(
                graph=graph, input={"log": []}, config={"configurable": {"thread_id": "1"}}
            )
            assert await ex.arun(cfg) == {"log": ["a"]}
            assert (await ex.aget_state(cfg)).values == {"log": ["a"]}

    asyncio.run(main())


# -- a node raising TimeoutError -------------------------------------------------------------------
@pytest.mark.parametrize("ex", ALL, indirect=True)
def test_a_nodes_own_timeout_error_reaches_the_caller_as_itself(ex: Any) -> None:
    """Was ``TypeError: unsupported format string passed to NoneType.__format__``: the
    runtime took the node's TimeoutError for its own deadline and formatted ``timeout=None``."""
    for timeout in (None, 60):
        cfg = GraphConfig(graph="tests.transparency_graphs:raises_timeout", input={"log": []})
        with pytest.raises(TimeoutError, match="the upstream API timed out") as e:
            ex.run(cfg.replace(timeout=timeout))
        assert not isinstance(e.value, RunTimeout)


# -- the subinterpreter tier and graph objects --------------------------------------------------
def test_the_subinterpreter_tier_runs_a_graph_object_in_hybrid_mode(make_executor: Any) -> None:
    _skip_without_interpreters("subinterpreter")
    ex = make_executor("subinterpreter", max_workers=1, timeout=60)
    graph = chain(*_nodes("a")).compile()
    result = ex.execute(GraphConfig(graph=graph, input={"log": []}))
    assert result.output == {"log": ["a"]}
    assert result.report.mode == "hybrid" and "graph passed as an object" in str(
        result.report.reason
    )


def test_a_tier_across_a_process_boundary_still_refuses_a_graph_object(make_executor: Any) -> None:
    ex = make_executor("process", max_workers=1)
    with pytest.raises(ConfigError, match="pass its import path"):
        ex.run(GraphConfig(graph=chain(*_nodes("a")).compile(), input={"log": []}))


# -- inline close() from odd places ----------------------------------------------------------------
def test_inline_close_from_a_coroutine_after_runs_on_another_thread() -> None:
    """Was ``RuntimeError: Cannot run the event loop while another loop is running``: close()
    ran the other thread's stopped loop here, inside the caller's running loop."""
    graph = chain(*_nodes("a")).compile()
    ex = subiso.InlineExecutor(checkpointer="memory")
    cfg = GraphConfig(graph=graph, input={"log": []}, config={"configurable": {"thread_id": "1"}})

    async def main() -> None:
        assert await asyncio.to_thread(ex.run, cfg) == {"log": ["a"]}
        ex.close()

    asyncio.run(main())
    assert ex.closed


def test_inline_close_does_not_wait_for_a_run_suspended_on_a_stopped_loop() -> None:
    """A run left suspended on a loop nobody runs any more can never end: close(wait=True)
    returned only when the suite's timeout killed it."""
    ex = subiso.InlineExecutor()
    loop = asyncio.new_event_loop()
    entered, gate = asyncio.Event(), asyncio.Event()

    async def held(state: Any) -> Any:
        entered.set()
        await gate.wait()
        return {"log": ["never"]}

    graph = chain(held).compile()
    task = loop.create_task(ex.arun(GraphConfig(graph=graph, input={"log": []})))
    loop.run_until_complete(entered.wait())  # the run is in its node; the loop stops here
    assert not task.done()
    closer = threading.Thread(target=ex.close, kwargs={"wait": True}, daemon=True)
    closer.start()
    closer.join(30)
    assert not closer.is_alive(), "close(wait=True) waited for a run on a stopped loop"
    task.cancel()
    loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
    loop.close()


# -- cancellation: the run ends before the caller goes on -----------------------------------------
class _Held:
    """An async node that waits until cancelled, saying when it started and that it was."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()

    async def held(self, state: Any) -> Any:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return {"log": ["never"]}


def _held_graph(held: _Held) -> Any:
    builder = chain(*_nodes("first"))
    builder.add_node("held", held.held)
    builder.add_edge("first", "held")
    return builder.compile()


@pytest.mark.parametrize("ex", IN_PROCESS, indirect=True)
def test_leaving_an_astream_early_cancels_the_run_before_aclose_returns(ex: Any) -> None:
    """LangGraph's test_cancel_graph_astream: ``aclose()`` of a left stream returned while the
    run went on (its inner generator was closed only when garbage-collected), and on the thread
    tier the cancellation of the caller did not wait for the run's."""
    held = _Held()
    cfg = GraphConfig(graph=_held_graph(held), input={"log": []})

    async def main() -> None:
        async with contextlib.aclosing(ex.astream(cfg)) as stream:
            async for chunk in stream:
                assert chunk == {"first": {"log": ["first"]}}
                await asyncio.to_thread(held.started.wait, 30)
                break
        assert held.cancelled.is_set()  # already, not eventually

    asyncio.run(main())


@pytest.mark.parametrize("ex", IN_PROCESS, indirect=True)
def test_a_cancelled_arun_returns_once_its_run_is_cancelled(ex: Any) -> None:
    held = _Held()
    cfg = GraphConfig(graph=_held_graph(held), input={"log": []})

    async def main() -> None:
        task = asyncio.create_task(ex.arun(cfg))
        await asyncio.to_thread(held.started.wait, 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert held.cancelled.is_set()

    asyncio.run(main())


# -- arun of an all-sync graph is an ainvoke ------------------------------------------------------
class _RaisingOnInterrupt(GraphCallbackHandler):
    """An async graph callback whose error must propagate (``raise_error``), as LangGraph's
    test_graph_callbacks_raise_error_propagates_async has it."""

    raise_error = True

    async def on_interrupt(self, event: Any) -> Any:
        raise ValueError("boom-interrupt")


def _ask(state: Any) -> Any:
    return {"log": [interrupt("a value?")]}


@needs_async_run_context  # interrupt() under ainvoke (as LangGraph's own test: 3.11+)
@pytest.mark.parametrize("ex", IN_PROCESS, indirect=True)
def test_arun_of_an_all_sync_graph_awaits_its_async_callbacks(ex: Any) -> None:
    """Was: the thread (and hybrid) tier ran it with ``graph.invoke`` - every node is sync - so
    the async handler's error was lost; ``await graph.ainvoke`` raises it."""
    graph = chain(_ask).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "1"}, "callbacks": [_RaisingOnInterrupt()]}
    cfg = GraphConfig(graph=graph, input={"log": []}, config=config)
    with pytest.raises(ValueError, match="boom-interrupt"):
        asyncio.run(ex.arun(cfg))


# -- a saver whose sync methods are its real ones ---------------------------------------------------
class _OldSignatureSaver(InMemorySaver):
    """LangGraph's test_checkpoint_errors: a saver overriding ``put_writes`` with its older
    three-argument signature (which LangGraph's sync loop still calls it with)."""

    def put_writes(self, config: Any, writes: Any, task_id: str) -> None:  # type: ignore[override]
        raise ValueError("Faulty put_writes")


@pytest.mark.parametrize("ex", IN_PROCESS, indirect=True)
def test_a_saver_subclass_runs_as_invoke_runs_it(ex: Any) -> None:
    """Was ``TypeError: put_writes() takes 4 positional arguments but 5 were given``: only a
    saver of the exact type InMemorySaver took the sync path, so this one went through
    ``ainvoke``, whose ``aput_writes`` passes a fourth argument."""
    builder = chain(*_nodes("a"))
    builder.add_node("parallel", node("p"))
    builder.add_edge(START, "parallel")
    graph = builder.compile(checkpointer=_OldSignatureSaver())
    cfg = GraphConfig(
        graph=graph,
        input={"log": []},
        config={"configurable": {"thread_id": "1"}},
        durability="async",
    )
    with pytest.raises(ValueError, match="Faulty put_writes"):
        graph.invoke(cfg.input, cfg.config, durability="async")  # plainly
    with pytest.raises(ValueError, match="Faulty put_writes"):
        ex.run(cfg)


def _nodes(*names: str) -> list[Any]:
    return [node(name) for name in names]
