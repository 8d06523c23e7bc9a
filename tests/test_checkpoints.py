"""Checkpointers through GraphConfig: SQLite persistence per thread_id on every tier, the
in-memory saver kept per worker, checkpoints surviving a failed run, and close() closing the
savers (no aiosqlite connection thread left, the file readable by plain sqlite3)."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from subiso import GraphConfig
from tests.workloads import WorkflowFailed


def log_cfg(db: Path | None, thread_id: str, **extra: Any) -> GraphConfig:
    return GraphConfig(
        graph=extra.pop("graph", "tests.workloads:log_builder"),
        input=extra.pop("input", {"entries": []}),
        config={"configurable": {"thread_id": thread_id}},
        checkpointer=f"sqlite:///{db}" if db is not None else "memory",
        **extra,
    )


def runs(n: int) -> list[str]:
    return [f"run-{i}" for i in range(n)]


def sqlite_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "_connection_worker_thread" in t.name]


def read_latest_entries(db: Path, thread_id: str) -> list[str]:
    """Read the newest checkpoint of ``thread_id`` with LangGraph's plain sync SqliteSaver."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(str(db))
    try:
        saved = SqliteSaver(conn).get_tuple({"configurable": {"thread_id": thread_id}})
        assert saved is not None, f"no checkpoint for thread {thread_id!r}"
        return list(saved.checkpoint["channel_values"]["entries"])
    finally:
        conn.close()


# -- SQLite ---------------------------------------------------------------------------------------
def test_sqlite_persists_across_runs_with_one_thread_id(
    executor: Any, tier: str, tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    a = log_cfg(db, "a")
    assert executor.run(a) == {"entries": runs(1)}
    assert executor.run(a) == {"entries": runs(2)}
    assert executor.submit(a).result() == {"entries": runs(3)}

    async def host() -> None:
        assert await executor.arun(a) == {"entries": runs(4)}
        # a run with a timeout goes the async way on every tier: same checkpoints
        assert await executor.arun(a.replace(timeout=30.0)) == {"entries": runs(5)}

    asyncio.run(host())
    # another thread_id starts from nothing and does not disturb "a"
    assert executor.run(log_cfg(db, "b")) == {"entries": runs(1)}
    assert executor.run(a) == {"entries": runs(6)}


def test_sqlite_thread_ids_are_separate_under_concurrency(executor: Any, tmp_path: Path) -> None:
    """Concurrent runs (spread over workers on the thread tier) each continue their own
    thread, whichever worker or loop the second round lands on."""
    db = tmp_path / "many.db"
    ids = [f"t{i}" for i in range(6)]

    async def host() -> None:
        first = await asyncio.gather(*(executor.arun(log_cfg(db, i)) for i in ids))
        assert first == [{"entries": runs(1)}] * len(ids)
        second = await asyncio.gather(*(executor.arun(log_cfg(db, i)) for i in ids))
        assert second == [{"entries": runs(2)}] * len(ids)

    asyncio.run(host())
    third = [f.result() for f in [executor.submit(log_cfg(db, i)) for i in ids]]
    assert third == [{"entries": runs(3)}] * len(ids)


def test_checkpoints_intact_after_failed_run(executor: Any, tmp_path: Path) -> None:
    db = tmp_path / "fragile.db"
    ok = log_cfg(db, "f", graph="tests.workloads:fragile_log_builder", input={"entries": []})
    boom = ok.replace(input={"entries": [], "fail": True})
    assert executor.run(ok)["entries"] == runs(1)
    with pytest.raises(WorkflowFailed, match="log node exploded"):
        executor.run(boom)
    assert executor.run(ok.replace(input={"entries": [], "fail": False}))["entries"] == runs(2)

    async def host() -> None:
        with pytest.raises(WorkflowFailed):
            await executor.arun(boom)
        out = await executor.arun(ok.replace(input={"entries": [], "fail": False}))
        assert out["entries"] == runs(3)

    asyncio.run(host())


@pytest.mark.parametrize("tier", ["inline", "context", "thread"])
def test_close_closes_savers(
    tier: str, tmp_path: Path, thread_guard: set[threading.Thread]
) -> None:
    import subiso

    db = tmp_path / "closed.db"
    before = set(sqlite_threads())
    executor = subiso.get_executor(tier)
    try:
        for _ in range(2):
            executor.run(log_cfg(db, "sync"))

        async def host() -> None:
            await executor.arun(log_cfg(db, "async"))
            await asyncio.gather(*(executor.arun(log_cfg(db, f"c{i}")) for i in range(4)))

        asyncio.run(host())
        open_now = [t for t in sqlite_threads() if t not in before]
        if tier in ("inline", "thread"):
            # their savers live on as long as the loop they were opened on: the sync-called
            # runs' (thread worker loop / inline's per-thread loop) until close()
            assert open_now, "expected the executor to keep its SQLite saver open"
        else:
            # context: a fresh loop per run, and the saver closes with it
            assert not open_now
    finally:
        executor.close()
    for thread in [t for t in sqlite_threads() if t not in before]:
        thread.join(10)  # bound only; close() must already have stopped them
    assert [t for t in sqlite_threads() if t not in before] == []

    # the file is complete and readable by plain sqlite3 after close
    conn = sqlite3.connect(str(db))
    try:
        rows = dict(
            conn.execute(
                "SELECT thread_id, COUNT(*) FROM checkpoints GROUP BY thread_id"
            ).fetchall()
        )
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()
    assert set(rows) == {"sync", "async", "c0", "c1", "c2", "c3"}
    assert read_latest_entries(db, "sync") == runs(2)
    assert read_latest_entries(db, "async") == runs(1)


# -- memory --------------------------------------------------------------------------------------
def test_memory_persists_within_one_thread_worker(make_executor: Any) -> None:
    executor = make_executor("thread", max_workers=1)
    cfg = log_cfg(None, "m")
    assert executor.run(cfg) == {"entries": runs(1)}
    assert executor.run(cfg) == {"entries": runs(2)}
    # the async path (a timeout forces it) uses the same saver on the worker's loop
    assert executor.run(cfg.replace(timeout=30.0)) == {"entries": runs(3)}

    async def host() -> None:
        assert await executor.arun(cfg) == {"entries": runs(4)}
        assert await executor.arun(log_cfg(None, "other")) == {"entries": runs(1)}

    asyncio.run(host())
    assert executor.run(cfg) == {"entries": runs(5)}


@pytest.mark.parametrize("tier", ["inline", "context", "thread"])
def test_memory_lives_as_long_as_the_executor_in_process(make_executor: Any, tier: str) -> None:
    """The "memory" saver is not loop-bound: in the tiers that run in this process one serves every
    run, loop and worker of the executor (the context tier opens a fresh loop per run, inline a
    loop per calling thread and the caller's own, thread one per worker)."""
    executor = make_executor(tier, **({"max_workers": 4} if tier == "thread" else {}))
    cfg = log_cfg(None, "m")
    assert executor.run(cfg) == {"entries": runs(1)}
    assert executor.run(cfg) == {"entries": runs(2)}
    assert executor.run(cfg.replace(timeout=30.0)) == {"entries": runs(3)}  # the async path
    assert asyncio.run(executor.arun(cfg)) == {"entries": runs(4)}

    def from_another_thread() -> Any:
        return executor.run(cfg)

    with cf.ThreadPoolExecutor(1) as pool:
        assert pool.submit(from_another_thread).result() == {"entries": runs(5)}


@pytest.mark.parametrize("tier", ["thread", "process"])
def test_memory_follows_its_thread_to_the_worker_that_served_it(
    make_executor: Any, tier: str
) -> None:
    """Two threads submitted together land on two workers; submitted again in the other
    order, least-busy dispatch alone would swap them. Each must go back to its own worker:
    in the process tier that worker holds the thread's only "memory" checkpoints."""
    executor = make_executor(tier, max_workers=2)
    a, b = log_cfg(None, "aff-a"), log_cfg(None, "aff-b")
    for n in range(1, 6):
        first, second = (a, b) if n % 2 else (b, a)
        futures = {cfg.thread_id: executor.submit(cfg) for cfg in (first, second)}
        assert {tid: f.result(timeout=60) for tid, f in futures.items()} == {
            "aff-a": {"entries": runs(n)},
            "aff-b": {"entries": runs(n)},
        }
