"""The process tier's dispatch policy, as plain functions: which worker gets a run, and which
runs an idle worker takes back from a backed-up one. (What becomes of a dead worker's runs is
:func:`subiso.executors.process.triage.triage`.)

No processes, pipes or locks here: the host calls these under its lock with its
:class:`~subiso.executors.process.handle.WorkerHandle` and
:class:`~subiso.executors.process.handle.PendingRun` objects, and acts on the answer (sends,
queues, grows the pool). The rules:

* **choosing** - a run goes to the worker that last served its LangGraph thread while that
  worker is not backed up (:mod:`subiso.executors.affinity`; at any load when the thread's
  checkpoints live only in that worker, ``"memory"``), else to the least-busy serving worker;
  an *exclusive* run (sent again alone after a crash, to name its culprit) only to an idle
  one, and no other run joins a worker holding one. None: no worker can take it now (it waits
  in the host's queue).
* **stealing** - a worker that has nothing to do takes back the newer half of the runs still
  unread in the pipe of the worker with the most of them (the older half will be read first
  there), so no worker idles while another has a backlog.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from subiso.executors.affinity import Affinity
from subiso.executors.process.handle import WorkerState

if TYPE_CHECKING:
    from subiso.executors.process.handle import PendingRun, WorkerHandle


def load(worker: WorkerHandle, workers: Sequence[WorkerHandle]) -> int | None:
    """Runs in flight on ``worker``, or None when it cannot take a thread's run now (gone,
    not serving, holding an exclusive run)."""
    if worker.serving and not worker.exclusive and worker in workers:
        return len(worker.in_flight)
    return None


def choose_worker(
    run: PendingRun, workers: Sequence[WorkerHandle], affinity: Affinity[WorkerHandle]
) -> WorkerHandle | None:
    """The worker ``run`` goes to, or None (see the module docstring)."""
    if not run.exclusive:
        best = affinity.preferred(run.thread_id, lambda w: load(w, workers), pinned=run.pinned())
        if best is not None:
            return best
    best = None
    for worker in workers:
        if not worker.serving or worker.exclusive or (run.exclusive and worker.in_flight):
            continue
        if best is None or len(worker.in_flight) < len(best.in_flight):
            best = worker
    if best is not None:
        affinity.remember(run.thread_id, best)
    return best


def runs_to_steal(
    thief: WorkerHandle, workers: Sequence[WorkerHandle]
) -> tuple[WorkerHandle, list[PendingRun]] | None:
    """``(victim, runs)``: what idle ``thief`` takes back, the newer half of the most unread
    runs any other worker holds; None when there is nothing to take (or ``thief`` is busy)."""
    if thief.in_flight or not thief.serving or thief.exclusive:
        return None
    victim = None
    loot: list[PendingRun] = []
    for worker in workers:
        if worker is thief or worker.state is WorkerState.STOPPING or worker.broken:
            continue
        runs = worker.waiting()
        if len(runs) > len(loot):
            victim, loot = worker, runs
    if victim is None:
        return None
    loot.sort(key=lambda run: run.seq)
    return victim, loot[len(loot) // 2 :]  # the newest half: read last
