"""The process tier's dispatch policy on its own (``executors/process/dispatch.py``): real
worker handles and pending runs, no processes - which worker gets a run, and which runs an
idle worker takes back."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Iterator
from typing import Any

import pytest

from subiso import GraphConfig
from subiso.executors.affinity import BACKLOG, Affinity
from subiso.executors.process.dispatch import choose_worker, runs_to_steal
from subiso.executors.process.handle import PendingRun, WorkerHandle, WorkerState
from subiso.runtime.call import Call

_rids = iter(range(1, 10_000))


def run(thread: str | None = None, checkpointer: str | None = None, **flags: Any) -> PendingRun:
    config = {"configurable": {"thread_id": thread}} if thread else {}
    cfg = GraphConfig(graph="a.b:c", config=config, checkpointer=checkpointer)
    pending = PendingRun(next(_rids), Call(cfg=cfg), b"", 0.0, cf.Future())
    for name, value in flags.items():
        setattr(pending, name, value)
    return pending


@pytest.fixture
def workers() -> Iterator[list[WorkerHandle]]:
    made = [WorkerHandle(i) for i in range(3)]
    for worker in made:
        worker.state = WorkerState.SERVING
    yield made
    for worker in made:
        worker.close_pipes()


def hold(worker: WorkerHandle, *runs: PendingRun, read: bool = False) -> None:
    """``runs`` in flight on ``worker`` (their frames already read by it when ``read``)."""
    for pending in runs:
        worker.sent += 1
        pending.seq = 0 if read else worker.sent
        pending.worker = worker
        worker.in_flight[pending.rid] = pending


def test_a_run_goes_to_the_least_busy_serving_worker(workers: list[WorkerHandle]) -> None:
    a, b, c = workers
    hold(a, run(), run())
    hold(b, run())
    c.state = WorkerState.RETIRING  # idle, but takes no new runs
    assert choose_worker(run(), workers, Affinity()) is b
    for worker in workers:
        worker.state = WorkerState.STARTING
    assert choose_worker(run(), workers, Affinity()) is None  # it waits in the host's queue


def test_a_threads_runs_stay_with_its_worker_until_it_is_backed_up(
    workers: list[WorkerHandle],
) -> None:
    a, b, _ = workers
    affinity: Affinity[WorkerHandle] = Affinity()
    hold(a, run())
    first = choose_worker(run("t"), workers, affinity)
    assert first is b  # least busy, and now the thread's worker
    hold(b, *[run() for _ in range(BACKLOG - 1)])
    assert choose_worker(run("t"), workers, affinity) is b  # busier than a, still its worker
    hold(b, run())
    assert choose_worker(run("t"), workers, affinity) is not b  # backed up: passed over


def test_a_thread_with_memory_checkpoints_stays_at_any_load(workers: list[WorkerHandle]) -> None:
    _, b, _ = workers
    affinity: Affinity[WorkerHandle] = Affinity()
    affinity.remember("t", b)
    hold(b, *[run() for _ in range(BACKLOG + 3)])
    assert choose_worker(run("t", "memory"), workers, affinity) is b


def test_an_exclusive_run_waits_for_an_idle_worker_and_keeps_it(
    workers: list[WorkerHandle],
) -> None:
    a, _, c = workers
    for worker in workers:
        hold(worker, run())
    assert choose_worker(run(exclusive=True), workers, Affinity()) is None
    c.in_flight.clear()
    assert choose_worker(run(exclusive=True), workers, Affinity()) is c
    c.exclusive = True  # now holding it: nothing joins it
    a.in_flight.clear()
    assert choose_worker(run(), workers, Affinity()) is a


def test_an_idle_worker_takes_back_the_newer_half_of_the_longest_backlog(
    workers: list[WorkerHandle],
) -> None:
    a, b, c = workers
    older = [run() for _ in range(2)]
    newer = [run() for _ in range(3)]
    hold(a, run(), read=True)  # running there
    hold(a, *older, *newer)
    hold(b, run(), run())
    victim, runs = runs_to_steal(c, workers) or (None, [])
    assert victim is a and runs == newer  # 5 unread: the 3 read last go


def test_nothing_is_taken_by_a_busy_worker_or_from_a_stopping_one(
    workers: list[WorkerHandle],
) -> None:
    a, b, c = workers
    hold(a, run(), run(), run())
    hold(c, run())
    assert runs_to_steal(c, workers) is None  # the thief is busy
    c.in_flight.clear()
    a.state = WorkerState.STOPPING
    b.broken = True
    hold(b, run(), run())
    assert runs_to_steal(c, workers) is None


def test_runs_that_may_not_move_stay(workers: list[WorkerHandle]) -> None:
    a, _, c = workers
    hold(a, run("t", "memory"), run(direct=True), run())
    victim, runs = runs_to_steal(c, workers) or (None, [])
    assert victim is a and len(runs) == 1 and not runs[0].pinned() and not runs[0].direct
