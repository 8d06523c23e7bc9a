"""Faults in the middle of a batch: the faulty run gets its typed error at its deadline, the
others succeed, and the executor heals (issue 12: "control back at the deadline", "no
collateral failures").

* **process** - a run that ends its worker (``os._exit``, SIGKILL, a segfault), a busy loop
  that ignores cancellation past its timeout (the worker is killed), a sync busy loop (the
  worker is retired), a worker stopped by SIGSTOP (killed past its timeout): each is submitted
  between 25 and 25 other runs on a 2-worker pool. The faulty run gets ``WorkerCrashed`` or
  ``RunTimeout``; the 50 others must all succeed - runs queued on the dead worker re-dispatched,
  runs in flight beside the faulty one retried (half of them have an SQLite checkpointer and a
  ``thread_id``, so they resume from their last checkpoint; the executor is built with
  ``retry_collateral=True`` for the rest).
* **inline, context, thread, subinterpreter** - a sync node in a C-level wait, a sync node in
  a pure-Python busy loop, an async node that never yields, a node raising ``SystemExit`` or
  ``KeyboardInterrupt``: ``run()`` from the test thread gets ``RunTimeout`` within ``timeout +
  0.5 s`` (or ``RunAborted``; ``KeyboardInterrupt`` stays the caller's on the tiers that run in
  the caller's own thread, as documented), while 50 other runs go on from 32 callers; the node
  is released only after that, and every other run then has its exact output. The
  subinterpreter tier runs these both as graphs (hybrid: host threads) and as workflow
  functions (full: inside interpreters). ``close()`` is checked in ``test_close_exit``.

No sleeps: held nodes say they started through a FIFO and wait for the test's release; the only
timing assertions are the issue's deadline bound. Latencies and heal times go to the report
(``SUBISO_RELIABILITY_REPORT``).
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import subiso
from subiso import GraphConfig, RunAborted, RunTimeout, WorkerCrashed
from subiso.executors.process import ProcessExecutor
from tests.reliability import harness
from tests.reliability.conftest import IN_PROCESS, skip_unless_runs_here
from tests.test_contract import Gate
from tests.workloads import expected

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

PW = "tests.process_workloads"
RG = "tests.reliability.graphs"
RT = "tests.reliability.targets"
CW = "tests.contract_workloads"
TIMEOUT_S = 1.0
#: The issue's bound: control is back within timeout + 0.5 s.
CONTROL_BOUND_S = TIMEOUT_S + 0.5
BATCH_BOUND_S = 90.0
#: How long the batch gets to finish while a node is still held (50 trivial runs take well
#: under a second); what has not resolved by then waits on the held node (a figure, not a
#: failure: those runs must still succeed once it is released).
HELD_BATCH_BOUND_S = 3.0


# -- process: crashes and kills mid-batch --------------------------------------------------------
def _others(db: str, n: int, start: int) -> list[tuple[GraphConfig, Any]]:
    """``n`` ordinary runs and their outputs: async graphs (they interleave on a worker's loop,
    so several are in flight beside a faulty run), every other one with an SQLite
    checkpointer and its own thread (resumable), and sync graphs."""
    runs = []
    for i in range(start, start + n):
        if i % 3 == 2:
            cfg = GraphConfig(graph="tests.workloads:sync_graph", input={"x": i})
        else:
            extra: dict[str, Any] = {}
            if i % 2:
                extra = {"checkpointer": db, "config": {"configurable": {"thread_id": f"o{i}"}}}
            cfg = GraphConfig(graph="tests.workloads:async_graph", input={"x": i}, **extra)
        runs.append((cfg, {"x": expected(i)}))
    return runs


PROCESS_FAULTS = {
    "os._exit": (f"{PW}:exit_graph", {"x": 1}, None, WorkerCrashed),
    "SIGKILL": (f"{RG}:sigkill_graph", {}, None, WorkerCrashed),
    "segfault": (f"{PW}:segfault_graph", {"x": 1}, None, WorkerCrashed),
    "async busy loop": (f"{PW}:spin_async_graph", {"x": 1}, TIMEOUT_S, RunTimeout),
    "sync busy loop": (f"{PW}:spin_graph", {"x": 1}, TIMEOUT_S, RunTimeout),
    "SIGSTOP": (f"{RG}:sigstop_graph", {}, TIMEOUT_S, RunTimeout),
}


def _process_executor() -> ProcessExecutor:
    return ProcessExecutor(max_workers=2, kill_grace=0.5, prestart=True, retry_collateral=True)


@pytest.mark.parametrize(
    "fault",
    [pytest.param(name, id=name.replace(" ", "-").replace(".", "")) for name in PROCESS_FAULTS],
)
def test_process_fault_mid_batch(fault: str, tmp_path: Path, request: Any) -> None:
    graph, value, timeout, error = PROCESS_FAULTS[fault]
    db = f"sqlite:///{tmp_path / 'batch.db'}"
    ex = _process_executor()
    try:
        others = _others(db, 25, 0)
        futures = [ex.submit(cfg) for cfg, _ in others]
        faulty_cfg = GraphConfig(graph=graph, input=value, timeout=timeout)
        resolved = threading.Event()
        heal: list[float] = []
        submitted = time.monotonic()
        faulty = ex.submit(faulty_cfg)

        def on_faulty(_: cf.Future[Any]) -> None:  # heal: a new run succeeds after the fault
            failed_at = time.monotonic()
            heal.append(failed_at - submitted)
            probe = ex.submit(GraphConfig(graph="tests.workloads:sync_graph", input={"x": 7}))
            probe.add_done_callback(
                lambda p: (heal.append(time.monotonic() - failed_at), resolved.set())
            )

        faulty.add_done_callback(on_faulty)
        second = _others(db, 25, 25)
        futures += [ex.submit(cfg) for cfg, _ in second]
        others += second
        _, not_done = cf.wait([faulty, *futures], timeout=BATCH_BOUND_S)
        assert not not_done, f"{len(not_done)} runs never resolved"
        assert resolved.wait(BATCH_BOUND_S), "the pool never ran another run after the fault"
        exc = faulty.exception()
        assert isinstance(exc, error), f"the faulty run got {exc!r}"
        if timeout is not None:
            assert heal[0] <= timeout + 0.5, f"control back after {heal[0]:.2f}s"
        failures = [
            (i, f.exception())
            for i, f in enumerate(futures)
            if f.exception() is not None or f.result() != others[i][1]
        ]
        harness.report(
            "process fault",
            fault=fault,
            faulty_got=type(exc).__name__,
            to_control_s=round(heal[0], 3),
            heal_s=round(heal[1], 3),
            collateral=len(failures),
            collateral_errors=sorted({type(e).__name__ for _, e in failures}),
        )
        culprits = [e for _, e in failures if isinstance(e, WorkerCrashed)]
        for crashed in culprits:  # a run that could not be retried names the culprit
            assert graph in str(getattr(crashed, "culprit", "")), crashed
        assert failures == [], f"{len(failures)} of 50 other runs failed, e.g. {failures[:2]}"
    finally:
        ex.close(wait=True, cancel_pending=True)


# -- in-process tiers: a stuck or exiting node mid-batch ----------------------------------------
#: (target as a graph, as a workflow function (subinterpreter full mode), what the run gets)
IN_PROCESS_FAULTS = {
    "C-level wait": (f"{RG}:block_graph", f"{CW}:hog", RunTimeout),
    "sync busy loop": (f"{RG}:spin_graph", f"{RT}:spin", RunTimeout),
    "async busy loop": (f"{RG}:aspin_graph", f"{RT}:aspin", RunTimeout),
    "SystemExit": (f"{RG}:exit_graph", f"{CW}:exits", RunAborted),
    "KeyboardInterrupt": (f"{RG}:interrupt_graph", f"{CW}:interrupted", RunAborted),
}
HELD = ("C-level wait", "sync busy loop", "async busy loop")


def _cases() -> Iterator[Any]:
    for tier in IN_PROCESS:
        for fault in IN_PROCESS_FAULTS:
            kinds = ("graph", "function") if tier == "subinterpreter" else ("graph",)
            for kind in kinds:
                yield pytest.param(tier, fault, kind, id=f"{tier}-{fault.replace(' ', '-')}-{kind}")


@pytest.mark.parametrize(("tier", "fault", "kind"), list(_cases()))
def test_in_process_fault_mid_batch(
    tier: str, fault: str, kind: str, gates: Callable[[], Gate], tmp_path: Path
) -> None:
    skip_unless_runs_here(tier)
    graph, function, error = IN_PROCESS_FAULTS[fault]
    if fault == "KeyboardInterrupt" and tier in ("inline", "context"):
        error = KeyboardInterrupt  # the caller's own thread: its Ctrl-C stays its own
    options = {} if tier in ("inline", "context") else {"max_workers": 4}
    ex = subiso.get_executor(tier, **options)
    gate = gates()
    held = fault in HELD
    args = gate.args("released") if held else {}
    cfg = GraphConfig(graph=graph if kind == "graph" else function, input=args, timeout=TIMEOUT_S)
    jobs = harness.mix(50, f"sqlite:///{tmp_path / 'batch.db'}")
    first, second = jobs[:25], jobs[25:]
    batch: list[harness.Soak] = []
    started = threading.Event()
    resolved = [0]
    count = threading.Lock()

    def progress(done: int, total: int) -> None:
        with count:
            resolved[0] += 1

    def drive_batch() -> None:
        # half before the faulty run, half once it holds its worker (or has failed)
        batch.append(harness.drive(ex, first, concurrency=16, progress=progress))
        started.wait(BATCH_BOUND_S)
        batch.append(harness.drive(ex, second, concurrency=16, progress=progress))

    driver = threading.Thread(target=drive_batch, name="fault-batch", daemon=True)
    driver.start()
    try:
        if held:
            waiter = threading.Thread(
                target=lambda: (gate.wait_started(), started.set()), daemon=True
            )
            waiter.start()
        else:
            started.set()
        t0 = time.monotonic()
        with pytest.raises(error) as info:
            ex.run(cfg)
        took = time.monotonic() - t0
        if held:
            waiter.join(BATCH_BOUND_S)
            assert not gate.finished(), "control came back only after the node was released"
            assert took <= CONTROL_BOUND_S, f"RunTimeout after {took:.2f}s (timeout {TIMEOUT_S}s)"
        if error is RunAborted:
            assert fault in str(info.value), info.value
        # how much of the batch resolved while the node was still held, then release it
        if held:  # bounded: past it, the rest of the batch waits on the held node
            driver.join(HELD_BATCH_BOUND_S)
        before_release = resolved[0]
        gate.open()
        driver.join(BATCH_BOUND_S)
        assert not driver.is_alive(), "the batch never finished"
        harness.report(
            "in-process fault",
            tier=tier,
            fault=fault,
            kind=kind,
            faulty_got=type(info.value).__name__,
            to_control_s=round(took, 3),
            batch_resolved_while_held=before_release if held else None,
        )
        for soak in batch:
            assert soak.lost() == [] and soak.duplicated() == [], (soak.lost(), soak.duplicated())
            assert soak.wrong() == [], soak.wrong()[:3]
        assert ex.run(GraphConfig(graph="tests.workloads:async_graph", input={"x": 3})) == {
            "x": expected(3)
        }
    finally:
        gate.open()
        ex.close()
