"""Closing and exiting, on every tier: every future resolves, nothing waits on abandoned work.

* ``close()`` from a run's done-callback (which runs on a worker, reader or caller thread) while
  other runs are in flight - it must neither join its own thread nor deadlock;
* ``close()`` in the middle of a 32-caller batch, with ``cancel_pending`` False and True: every
  run resolves - with its output, or (started after the close) ``ExecutorClosed``, or (with
  ``cancel_pending``, not started yet) cancelled - and nothing is left afterwards;
* ``close()`` twice, and from two threads at once;
* ``close()`` while an abandoned node is still held (a sync node past its timeout);
* ``close()`` releasing the workers' file descriptors while the caller still holds its futures;
* interpreter exit with an executor left open and a sync node stuck in it: the script exits
  within a bound, and leaves no worker process behind.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import gc
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import subiso
from subiso import ExecutorClosed, GraphConfig, RunTimeout
from tests.reliability import harness
from tests.reliability.conftest import ALL_TIERS, skip_unless_runs_here
from tests.test_contract import Gate
from tests.workloads import expected

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
#: Bound on every close() and join here: a hang fails the test instead of the suite.
CLOSE_BOUND_S = 30.0
#: Interpreter exit with a stuck node left in an open executor.
EXIT_BOUND_S = 30.0
NOTHING = {"threads": [], "fds": [], "processes": [], "interpreters": []}


def _options(tier: str) -> dict[str, Any]:
    return {} if tier in ("inline", "context") else {"max_workers": 2}


def _async_cfg(i: int) -> GraphConfig:
    return GraphConfig(graph="tests.workloads:async_graph", input={"x": i})


def _closed_in_time(ex: Any, **kw: Any) -> float:
    """``ex.close(**kw)`` on another thread, bounded; how long it took."""
    start = time.monotonic()
    closer = threading.Thread(target=ex.close, kwargs=kw, name="closer", daemon=True)
    closer.start()
    closer.join(CLOSE_BOUND_S)
    assert not closer.is_alive(), f"close({kw}) did not return within {CLOSE_BOUND_S}s"
    return time.monotonic() - start


def _warm(tier: str) -> None:
    """First use of a tier, out of the baseline (imports, the forkserver, probe caches)."""
    with subiso.get_executor(tier, **_options(tier)) as ex:
        ex.run(_async_cfg(0))
        ex.run(GraphConfig(graph="tests.contract_workloads:square", input=2))
    gc.collect()


# -- close() from a done-callback -----------------------------------------------------------------
@pytest.mark.parametrize("tier", ALL_TIERS)
def test_close_from_a_done_callback_with_runs_in_flight(tier: str) -> None:
    skip_unless_runs_here(tier)
    _warm(tier)
    before = harness.snapshot()
    _close_from_a_callback(tier)
    gc.collect()
    assert harness.leaks(before) == NOTHING


def _close_from_a_callback(tier: str) -> None:
    ex = subiso.get_executor(tier, **_options(tier))
    closed = threading.Event()
    failed: list[BaseException] = []

    def close_here(_: cf.Future[Any]) -> None:
        try:
            ex.close()  # wait=True: drains - from the very thread that settled this future
        except BaseException as exc:
            failed.append(exc)
        finally:
            closed.set()

    first = ex.submit(_async_cfg(1))
    others = [ex.submit(_async_cfg(i)) for i in range(2, 12)]
    first.add_done_callback(close_here)
    assert closed.wait(CLOSE_BOUND_S), "close() from a done-callback never returned"
    assert failed == [], failed
    _, not_done = cf.wait([first, *others], timeout=CLOSE_BOUND_S)
    assert not not_done, f"{len(not_done)} runs never resolved after close()"
    outcomes = [f.exception() or f.result() for f in [first, *others]]
    for i, outcome in enumerate(outcomes, start=1):
        assert outcome == {"x": expected(i)} or isinstance(outcome, ExecutorClosed), outcome
    with pytest.raises(ExecutorClosed):
        ex.run(_async_cfg(0))


# -- close() in the middle of a batch -------------------------------------------------------------
@pytest.mark.parametrize("cancel_pending", [False, True], ids=["drain", "cancel-pending"])
@pytest.mark.parametrize("tier", ALL_TIERS)
def test_close_mid_batch(tier: str, cancel_pending: bool, tmp_path: Path) -> None:
    skip_unless_runs_here(tier)
    _warm(tier)
    before = harness.snapshot()
    completed, refused = _close_mid_batch(tier, cancel_pending, tmp_path)
    harness.report(
        "close mid-batch",
        tier=tier,
        cancel_pending=cancel_pending,
        completed=completed,
        refused_or_cancelled=refused,
    )
    gc.collect()
    assert harness.leaks(before) == NOTHING


def _close_mid_batch(tier: str, cancel_pending: bool, tmp_path: Path) -> tuple[int, int]:
    ex = subiso.get_executor(tier, **_options(tier))
    jobs = harness.mix(400, f"sqlite:///{tmp_path / 'close.db'}")
    halfway = threading.Event()

    def progress(done: int, total: int) -> None:
        if done == 100:
            halfway.set()

    batch: list[harness.Soak] = []

    def drive() -> None:
        batch.append(harness.drive(ex, jobs, progress=progress))

    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    assert halfway.wait(CLOSE_BOUND_S), "the batch never got going"
    _closed_in_time(ex, wait=True, cancel_pending=cancel_pending)
    driver.join(CLOSE_BOUND_S)
    assert not driver.is_alive(), "runs still unresolved after close()"
    soak = batch[0]
    assert soak.lost() == [] and soak.duplicated() == [], (soak.lost()[:5], soak.duplicated())
    # cancelled before it started: a future says CancelledError; an awaiting arun/astream
    # gets asyncio's CancelledError (as from run_in_executor on a pool shut down that way)
    cancelled = (cf.CancelledError, asyncio.CancelledError)
    allowed = (ExecutorClosed, *cancelled) if cancel_pending else (ExecutorClosed,)
    slot = {job.index: k for k, job in enumerate(soak.jobs)}
    wrong = [
        (i, msg)
        for i, msg in soak.wrong()
        if not any(
            issubclass(v.type, allowed) for what, v in soak.outcomes[slot[i]] if what == "error"
        )
    ]  # closed: refused, or cancelled before it started
    assert wrong == [], wrong[:3]
    completed = sum(1 for seen in soak.outcomes if seen and seen[0][0] == "ok")
    return completed, len(soak.wrong())


# -- close() twice --------------------------------------------------------------------------------
@pytest.mark.parametrize("tier", ALL_TIERS)
def test_close_twice_and_from_two_threads_at_once(tier: str) -> None:
    skip_unless_runs_here(tier)
    ex = subiso.get_executor(tier, **_options(tier))
    futures = [ex.submit(_async_cfg(i)) for i in range(8)]
    start = threading.Barrier(2)
    closers = [
        threading.Thread(target=lambda: (start.wait(), ex.close()), daemon=True) for _ in range(2)
    ]
    for closer in closers:
        closer.start()
    for closer in closers:
        closer.join(CLOSE_BOUND_S)
        assert not closer.is_alive()
    ex.close()
    ex.close(wait=False, cancel_pending=True)
    assert ex.closed
    assert [f.result(timeout=0) for f in futures] == [{"x": expected(i)} for i in range(8)]


# -- close() while an abandoned node is still held -------------------------------------------------
@pytest.mark.parametrize("tier", ALL_TIERS)
def test_close_does_not_wait_for_an_abandoned_node(
    tier: str, gates: Callable[[], Gate], thread_guard: Any
) -> None:
    skip_unless_runs_here(tier)
    ex = subiso.get_executor(tier, **_options(tier))
    gate = gates()
    cfg = GraphConfig(graph="tests.reliability.graphs:block_graph", input=gate.args("late"))
    with pytest.raises(RunTimeout):
        ex.run(cfg.replace(timeout=0.5))
    took = _closed_in_time(ex, wait=True)
    assert not gate.finished(), "close() returned only once the node was released"
    harness.report("close with an abandoned node", tier=tier, close_s=round(took, 3))
    gate.open()  # the abandoned node ends; thread_guard checks its thread is gone


# -- close() releases the workers' resources at once ----------------------------------------------
@pytest.mark.parametrize(
    "tier",
    ALL_TIERS,
)
def test_close_releases_fds_while_the_caller_holds_its_results(tier: str) -> None:
    skip_unless_runs_here(tier)
    _warm(tier)
    before = harness.snapshot()
    ex = subiso.get_executor(tier, **_options(tier))
    futures = [ex.submit(_async_cfg(i)) for i in range(20)]
    futures += [
        ex.submit(_async_cfg(i).replace(config={"configurable": {"thread_id": f"t{i}"}}))
        for i in range(4)
    ]
    ex.close()
    assert all(f.done() for f in futures)
    found = harness.leaks(before)  # no gc.collect(), the futures still held
    assert found == NOTHING, found


# -- interpreter exit with an open executor ---------------------------------------------------------
EXIT_SCRIPT = textwrap.dedent(
    """
    import sys, threading, os
    import subiso
    from subiso import GraphConfig, RunTimeout

    tier, target, release = sys.argv[1], sys.argv[2], sys.argv[3]
    options = {} if tier in ("inline", "context") else {"max_workers": 2}
    ex = subiso.get_executor(tier, **options)
    stuck = GraphConfig(graph=target, input={"release": release, "value": "late"})
    try:
        ex.run(stuck.replace(timeout=0.5))
    except RunTimeout:
        print("RunTimeout", flush=True)
    if tier not in ("inline", "context"):  # a second one left in flight, no timeout at all
        ex.submit(stuck)
    if tier == "process":
        print("workers", *ex.worker_pids(), flush=True)
    print("exiting", flush=True)
    # no close(): interpreter exit with the executor open and its nodes stuck
    """
)


@pytest.mark.parametrize(
    ("tier", "target"),
    [
        *[(tier, "tests.reliability.graphs:block_graph") for tier in ALL_TIERS],
        ("subinterpreter", "tests.contract_workloads:hog"),  # inside an interpreter (full mode)
    ],
    ids=[*ALL_TIERS, "subinterpreter-function"],
)
def test_interpreter_exit_with_a_stuck_node_in_an_open_executor(
    tier: str, target: str, tmp_path: Path
) -> None:
    skip_unless_runs_here(tier)
    release = tmp_path / "never-released"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, tier, target, str(release)],
        capture_output=True,
        text=True,
        timeout=EXIT_BOUND_S + 60,
        env=env,
        cwd=tmp_path,
    )
    took = time.monotonic() - start
    harness.report("exit with a stuck node", tier=tier, target=target, exit_s=round(took, 2))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "RunTimeout" in proc.stdout and "exiting" in proc.stdout, proc.stdout + proc.stderr
    assert took <= EXIT_BOUND_S, f"exit took {took:.1f}s"
    for line in proc.stdout.splitlines():
        if line.startswith("workers"):
            for pid in map(int, line.split()[1:]):
                assert not _alive(pid), f"worker process {pid} outlived its host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- interpreter exit with an executor never closed, after runs on an SQLite checkpointer ----------
UNCLOSED_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import subiso

    tier, how, db = sys.argv[1], sys.argv[2], sys.argv[3]
    cfg = subiso.GraphConfig(
        graph="tests.workloads:log_builder",
        input={"entries": []},
        checkpointer=f"sqlite:///{db}",
        config={"configurable": {"thread_id": "unclosed"}},
    )
    if how == "run":
        ex = subiso.get_executor(tier)
        print(ex.run(cfg), flush=True)
    elif how == "arun":
        ex = subiso.get_executor(tier)
        print(asyncio.run(ex.arun(cfg)), flush=True)
    elif how == "dropped":  # an executor garbage-collected without close()
        print(subiso.get_executor(tier).run(cfg), flush=True)
    else:  # the module-level default executor, its tier from SUBISO_EXECUTOR
        print(subiso.run(cfg), flush=True)
    # no close(): the interpreter exits with the executor open
    """
)


@pytest.mark.parametrize("how", ["run", "arun", "dropped", "default"])
@pytest.mark.parametrize("tier", ALL_TIERS)
def test_interpreter_exit_with_an_unclosed_executor_that_opened_sqlite(
    tier: str, how: str, tmp_path: Path
) -> None:
    """A script that never closes its executor ends, and its checkpoint is on disk: the
    executor's SQLite connections (aiosqlite threads, non-daemon when opened from the main
    thread, as inline does) are closed before the interpreter joins its threads."""
    skip_unless_runs_here(tier)
    db = tmp_path / "runs.db"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "SUBISO_EXECUTOR": tier,
    }
    try:
        proc = subprocess.run(
            [sys.executable, "-c", UNCLOSED_SCRIPT, tier, how, str(db)],
            capture_output=True,
            text=True,
            timeout=EXIT_BOUND_S,
            env=env,
            cwd=tmp_path,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the script did not exit within {EXIT_BOUND_S}s: {exc.stdout!r}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "{'entries': ['run-0']}" in proc.stdout, proc.stdout + proc.stderr
    import sqlite3

    with sqlite3.connect(db) as conn:
        (saved,) = conn.execute(
            "SELECT count(*) FROM checkpoints WHERE thread_id = 'unclosed'"
        ).fetchone()
    assert saved > 0
