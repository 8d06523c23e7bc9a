"""The failures subiso exists to remove, reproduced the naive way - then run cleanly by each tier.

1. A LangGraph async checkpointer created on a long-lived host loop (running in its own thread,
   as in an async web app), then the graph compiled with it run with ``asyncio.run(...)`` in a
   worker thread. The saver's ``asyncio.Lock`` was bound to the host loop by the host's own use
   of it, so the worker's run dies with "... is bound to a different event loop" (the message
   pinned below is the one LangGraph 1.x / aiosqlite 0.22 really produce on 3.12-3.14).
2. A sync helper that wraps async code with ``asyncio.run`` called while a loop runs:
   "asyncio.run() cannot be called from a running event loop".
3. A node's fire-and-forget task left pending on the host loop after a naive
   ``await graph.ainvoke`` there.

Every naive step runs under a bound (a thread joined with a timeout, a future waited on with a
timeout) so a hang fails the test instead of hanging the suite; nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from subiso import GraphConfig
from tests import workloads

GUARD_S = 30.0  # a bound, not a synchroniser: only reached when something hangs

# every tier; process and subinterpreter are skipped (by make_executor) until they exist
ALL_TIERS = ("inline", "context", "thread", "process", "subinterpreter")

BOUND_LOOP = "is bound to a different event loop"
NESTED_RUN = "asyncio.run() cannot be called from a running event loop"


def in_worker_thread(fn: Callable[[], Any]) -> tuple[bool, Any]:
    """Call ``fn`` on a fresh thread (as a thread pool would); (ok, result-or-exception)."""
    outcome: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=target, name="naive-worker", daemon=True)
    thread.start()
    thread.join(GUARD_S)
    if thread.is_alive():
        pytest.fail(f"the naive worker thread hung for {GUARD_S}s instead of failing")
    return outcome[0]


class HostLoopThread:
    """A long-lived event loop running in its own thread: the host application's loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="host-loop", daemon=True)
        self.thread.start()

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(GUARD_S)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(GUARD_S)
        assert not self.thread.is_alive()
        self.loop.close()


async def open_saver(db: Path) -> tuple[Any, Any]:
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    conn = await aiosqlite.connect(str(db))
    saver = AsyncSqliteSaver(conn)
    await saver.setup()
    return saver, conn


def thread_cfg(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


# -- 1. a checkpointer bound to the host loop, used from asyncio.run in a worker thread ----------
def test_naive_host_loop_checkpointer_fails_in_worker_thread(
    tmp_path: Path, thread_guard: set[threading.Thread]
) -> None:
    host = HostLoopThread()
    saver, conn = host.call(open_saver(tmp_path / "naive.db"))
    try:
        assert saver.loop is host.loop  # the saver captured the loop it was created on
        graph = workloads.log_builder.compile(checkpointer=saver)
        cfg = thread_cfg("naive")

        # the host application uses its saver on its own loop: fine there
        assert host.call(graph.ainvoke({"entries": []}, cfg)) == {"entries": ["run-0"]}

        # a worker thread runs the same graph the naive way
        ok, value = in_worker_thread(lambda: asyncio.run(graph.ainvoke({"entries": []}, cfg)))
        assert not ok, f"the naive cross-loop run unexpectedly succeeded: {value!r}"
        assert isinstance(value, RuntimeError), repr(value)
        assert BOUND_LOOP in str(value), str(value)
        assert "Lock" in str(value)  # it is the saver's asyncio.Lock, bound to the host loop

        # on its own loop the saver keeps working (the worker's run failed part-way, so what
        # it wrote before failing is not asserted)
        out = host.call(graph.ainvoke({"entries": []}, thread_cfg("other")))
        assert out == {"entries": ["run-0"]}
    finally:
        try:
            host.call(conn.close())
        finally:
            host.close()


# -- 2. a sync helper that calls asyncio.run, called while a loop runs ---------------------------
def test_naive_sync_helper_inside_running_loop_fails() -> None:
    async def host() -> BaseException:
        with pytest.raises(RuntimeError) as info:
            workloads.sync_helper_graph.invoke({"x": 1})
        return info.value

    with warnings.catch_warnings():
        # the helper's coroutine object is never awaited: that is the failure itself
        warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
        exc = asyncio.run(host())
        text = str(exc)
        del exc
        gc.collect()
    assert NESTED_RUN in text, text
    # without a running loop the very same graph works
    assert workloads.sync_helper_graph.invoke({"x": 1}) == {"x": 11}


# -- 3. a node's fire-and-forget task left on the host loop --------------------------------------
def test_naive_fire_and_forget_task_stays_on_host_loop(paused_gc: None) -> None:
    async def host() -> None:
        before = asyncio.all_tasks()
        assert await workloads.fire_and_forget_graph.ainvoke({"x": 1}) == {"x": 2}
        left = asyncio.all_tasks() - before
        assert len(left) == 1, left
        (task,) = left
        assert task.get_coro().__name__ == "telemetry"
        assert not task.done()  # still pending on the host loop after the run returned
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(host())


# -- each subiso tier runs the same three workloads cleanly --------------------------------------
@pytest.fixture(params=ALL_TIERS)
def any_tier(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


def test_tier_checkpointer_from_host_with_running_loop(
    any_tier: str, make_executor: Any, tmp_path: Path
) -> None:
    """The host keeps its own saver bound to its own loop; subiso's runs of the same graph on
    the same SQLite file never touch it, from ``arun``, ``run`` in the host's pool, or ``run``
    called on the loop's own thread, and see each other's checkpoints."""
    executor = make_executor(any_tier)
    db = tmp_path / "x.db"
    spec = f"sqlite:///{db}"
    cfg = GraphConfig(
        graph="tests.workloads:log_builder",
        input={"entries": []},
        config=thread_cfg("shared"),
        checkpointer=spec,
    )

    async def host() -> None:
        loop = asyncio.get_running_loop()
        saver, conn = await open_saver(db)
        try:
            graph = workloads.log_builder.compile(checkpointer=saver)
            # the host's own use binds its saver's lock to this loop, as in production
            assert await graph.ainvoke({"entries": []}, thread_cfg("shared")) == {
                "entries": ["run-0"]
            }
            before = asyncio.all_tasks()
            assert (await executor.arun(cfg))["entries"] == ["run-0", "run-1"]
            assert (await loop.run_in_executor(None, executor.run, cfg))["entries"] == [
                "run-0",
                "run-1",
                "run-2",
            ]
            assert executor.run(cfg)["entries"] == [f"run-{i}" for i in range(4)]
            assert (await executor.arun(cfg))["entries"] == [f"run-{i}" for i in range(5)]
            # concurrent runs on separate threads of the same file
            outs = await asyncio.gather(
                *(executor.arun(cfg.replace(config=thread_cfg(f"t{i}"))) for i in range(5))
            )
            assert outs == [{"entries": ["run-0"]}] * 5
            assert asyncio.all_tasks() == before
            # and the host's saver, bound to this loop, still works here and sees every run
            state = await graph.aget_state(thread_cfg("shared"))
            assert state.values["entries"] == [f"run-{i}" for i in range(5)]
        finally:
            await conn.close()

    asyncio.run(host())


def test_tier_sync_helper_graph_from_running_loop(any_tier: str, make_executor: Any) -> None:
    executor = make_executor(any_tier)
    cfg = GraphConfig(graph="tests.workloads:sync_helper_graph", input={"x": 1})

    async def host() -> None:
        before = asyncio.all_tasks()
        assert await executor.arun(cfg) == {"x": 11}
        assert executor.run(cfg) == {"x": 11}  # the sync API on the loop's own thread, too
        results = await asyncio.gather(
            *(executor.arun(cfg.replace(input={"x": i})) for i in range(10))
        )
        assert results == [{"x": i + 10} for i in range(10)]
        assert asyncio.all_tasks() == before

    asyncio.run(host())


def test_tier_fire_and_forget_leaves_host_loop_clean(
    any_tier: str, make_executor: Any, paused_gc: None
) -> None:
    executor = make_executor(any_tier)
    cfg = GraphConfig(graph="tests.workloads:fire_and_forget_graph", input={"x": 41})

    async def host() -> None:
        before = asyncio.all_tasks()
        assert await executor.arun(cfg) == {"x": 42}
        left = asyncio.all_tasks() - before
        if any_tier == "inline":
            # By design inline is the no-isolation baseline: ``arun`` runs the graph on the
            # caller's own loop, so the node's forgotten task stays right here, exactly as with
            # the naive ``await graph.ainvoke``.
            assert [t.get_coro().__name__ for t in left] == ["telemetry"]
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)
        else:
            assert left == set(), left
        # ``run`` on the loop's own thread (every tier, inline included: it moves to a helper
        # thread's fresh loop) leaves nothing here
        assert executor.run(cfg) == {"x": 42}
        assert asyncio.all_tasks() == before

    asyncio.run(host())
