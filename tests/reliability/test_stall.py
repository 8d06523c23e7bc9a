"""A sync ``run()`` on an event loop's own thread, while ``arun()``s of the same executor run on
that loop with an SQLite checkpointer on the same file (issue 12, "Nothing lost").

The sync call blocks the loop's thread, so none of that loop's tasks can move until it returns;
it runs its graph on a helper thread with a fresh loop and its own connection. If a task of the
blocked loop holds the file's write lock across an ``await`` (LangGraph's ``AsyncSqliteSaver``
writes with ``execute`` and then ``commit``, one loop turn apart), the helper's write waits for
a lock that can only be released once the call it serves returns: the caller stalled for the
busy timeout (30 s) and the run failed with ``database is locked`` - on the context tier, whose
every ``arun`` opens its own connection, nearly always within a few calls. Fixed in
``subiso.runtime.resources``: checkpointer connections commit each statement (and each
``executemany`` batch) on their own thread, so no lock outlives a loop turn.

To make the collision certain rather than likely, each sync call is made at a moment when some
connection holds the file's write lock: the test probes it with ``BEGIN IMMEDIATE`` on a
connection of its own that does not wait (a lock held by a statement on a connection's own thread
is released by that thread; one held across an ``await`` of the blocked loop never is). Each sync
call has a timeout, so a stall shows as a RunTimeout within seconds rather than as a 30 s wait
per call; the whole scenario is bounded as well.
"""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

import subiso
from subiso import GraphConfig
from tests.reliability import harness
from tests.workloads import expected

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ARUNS = 96
CONCURRENT = 32
SYNC_RUNS = 24
#: A sync run on the loop's thread takes milliseconds; past this it was stuck on the lock.
SYNC_TIMEOUT_S = 10.0
SCENARIO_BOUND_S = 120.0


def _cfg(db: str, graph: str, x: int, thread: str) -> GraphConfig:
    return GraphConfig(
        graph=f"tests.workloads:{graph}",
        input={"x": x},
        checkpointer=db,
        config={"configurable": {"thread_id": thread}},
    )


#: Loop turns a sync call waits for the write lock to be taken before it is made anyway.
PROBE_TURNS = 500


def _write_lock_held(path: str) -> bool:
    """Whether another connection holds ``path``'s write lock right now (never waits)."""
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return True
        raise
    else:
        probe.execute("ROLLBACK")
        return False
    finally:
        probe.close()


async def _scenario(ex: Any, db: str, path: str) -> tuple[dict[int, Any], dict[int, Any], int]:
    """``ARUNS`` aruns, ``CONCURRENT`` at a time, and meanwhile ``SYNC_RUNS`` sync runs called
    on this loop's thread between turns of the loop; every outcome, by run."""
    aruns: dict[int, Any] = {}
    syncs: dict[int, Any] = {}
    left = list(range(ARUNS))

    async def lane() -> None:
        while left:
            i = left.pop()
            try:
                aruns[i] = await ex.arun(_cfg(db, "async_graph", i, f"a-{i}"))
            except Exception as exc:
                aruns[i] = exc

    collisions = 0

    async def blocker() -> None:
        nonlocal collisions
        for k in range(SYNC_RUNS):
            for _ in range(PROBE_TURNS):  # let the aruns move until one holds the lock
                await asyncio.sleep(0)  # a yield to the loop, not a wait
                if _write_lock_held(path):
                    collisions += 1
                    break
            cfg = _cfg(db, "async_graph", 1000 + k, f"s-{k}").replace(timeout=SYNC_TIMEOUT_S)
            try:
                syncs[k] = ex.run(cfg)  # blocks this loop's thread: that is the point
            except Exception as exc:
                syncs[k] = exc

    await asyncio.gather(blocker(), *(lane() for _ in range(CONCURRENT)))
    return aruns, syncs, collisions


@pytest.mark.parametrize("tier", ["inline", "context"])
def test_sync_run_on_the_loop_thread_never_stalls_its_aruns(tier: str, tmp_path: Path) -> None:
    path = str(tmp_path / "stall.db")
    db = f"sqlite:///{path}"
    with subiso.get_executor(tier) as warm:  # imports and first-use state out of the baseline
        warm.run(_cfg(db, "async_graph", 0, "warm"))
    gc.collect()
    before = harness.snapshot()
    ex = subiso.get_executor(tier)
    outcome: list[Any] = []
    runner = threading.Thread(
        target=lambda *a: a[-1].append(asyncio.run(_scenario(*a[:-1]))),
        args=(ex, db, path, outcome),
        name="stall-scenario",
    )
    runner.start()
    runner.join(SCENARIO_BOUND_S)
    assert not runner.is_alive(), f"the loop stayed blocked for {SCENARIO_BOUND_S}s"
    aruns, syncs, collisions = outcome[0]
    ex.close()
    harness.report("stall", tier=tier, sync_runs=SYNC_RUNS, while_write_lock_held=collisions)

    assert len(aruns) == ARUNS and len(syncs) == SYNC_RUNS
    errors = {f"a{i}": v for i, v in aruns.items() if isinstance(v, BaseException)}
    errors |= {f"s{k}": v for k, v in syncs.items() if isinstance(v, BaseException)}
    assert not errors, f"{len(errors)} runs failed, e.g. {list(errors.items())[:3]}"
    assert aruns == {i: {"x": expected(i)} for i in range(ARUNS)}
    assert syncs == {k: {"x": expected(1000 + k)} for k in range(SYNC_RUNS)}
    del ex, aruns, syncs, outcome
    gc.collect()
    assert harness.leaks(before) == {"threads": [], "fds": [], "processes": [], "interpreters": []}


def test_checkpointer_batches_stay_atomic_in_autocommit(tmp_path: Path) -> None:
    """The saver's ``executemany`` (its pending writes) is one transaction even though its
    connection commits every statement: a batch failing part-way leaves nothing."""
    from subiso.runtime.resources import AutocommitConnection

    conn = sqlite3.connect(tmp_path / "b.db", isolation_level=None, factory=AutocommitConnection)
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
    cur = conn.cursor()
    cur.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
    assert not conn.in_transaction  # committed: no lock held after the call
    with pytest.raises(sqlite3.IntegrityError):
        cur.executemany("INSERT INTO t VALUES (?)", [(3,), (1,)])  # 1 exists: fails at row 2
    with pytest.raises(sqlite3.IntegrityError):
        conn.executemany("INSERT INTO t VALUES (?)", [(4,), (2,)])
    assert not conn.in_transaction
    assert [k for (k,) in conn.execute("SELECT k FROM t ORDER BY k")] == [1, 2]
    conn.close()
