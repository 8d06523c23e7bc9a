"""ThreadExecutor ("thread", the default): dedicated worker threads, each owning one event loop.

Each worker keeps its loop (and the checkpointers opened on it) for its lifetime, so
loop-bound resources never meet a foreign loop. Async runs interleave on a worker's loop; a run
goes to the least-busy worker, starting a new one while fewer than ``max_workers`` exist, and a
worker that runs out of work takes over half the runs still waiting in the most backed-up
worker's inbox (work-conserving: no worker idles while another has a backlog). On a
free-threaded build with the GIL disabled the workers run Python in parallel.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading
from collections.abc import Callable
from typing import Protocol

from typing_extensions import Unpack

from subiso._capabilities import Capabilities
from subiso._futures import Waiter, join_all
from subiso.errors import ExecutorClosed
from subiso.events import EventChannel
from subiso.executors.affinity import Affinity
from subiso.executors.base import Executor, SharedOptions
from subiso.observe.metrics import WorkerStats
from subiso.report import RunResult
from subiso.runtime.call import Call
from subiso.runtime.execute import WorkerRuntime
from subiso.runtime.loop_worker import Job, LoopWorker, Outcome
from subiso.runtime.resources import Memory
from subiso.validate import positive_int


class Posted(Outcome, Protocol):
    """A posted run's outcome as the executor keeps it: ``close(cancel_pending=True)`` cancels
    the ones that have not started."""

    def cancel(self) -> bool: ...


def default_max_workers() -> int:
    """As ``ThreadPoolExecutor``: enough for I/O-bound runs without exhausting small hosts."""
    return min(32, (os.cpu_count() or 1) + 4)


class ThreadExecutor(Executor):
    """Run each GraphConfig on one of ``max_workers`` long-lived loop threads."""

    tier = "thread"

    @classmethod
    def availability(cls, caps: Capabilities) -> tuple[bool, str]:
        if caps.parallel_threads:
            return True, "worker threads with their own loops; parallel (GIL disabled)"
        return True, "worker threads with their own loops; concurrent, not parallel (GIL)"

    def __init__(
        self,
        *,
        max_workers: int | None = None,
        thread_name_prefix: str = "subiso-thread",
        **shared: Unpack[SharedOptions],
    ) -> None:
        super().__init__(**shared)
        self.max_workers = positive_int(
            max_workers, f"{type(self).__name__}: max_workers", default_max_workers()
        )
        self._name_prefix = thread_name_prefix
        self._workers: list[LoopWorker] = []
        self._dispatch_lock = threading.Lock()
        #: every run posted and not ended, by its outcome (a future, or a sync caller's Waiter)
        self._jobs: dict[Posted, tuple[LoopWorker, Job]] = {}
        self._affinity: Affinity[LoopWorker] = Affinity()
        self._memory = Memory()  # "memory" checkpointer/store: one per executor

    # -- hooks for tiers built on this one (the subinterpreter tier's hybrid mode) ---------
    def _make_runtime(self) -> WorkerRuntime:
        return WorkerRuntime(
            self.tier,
            selected_by=self.selected_by,
            worker_init=self.worker_init,
            memory=self._memory,
            meter=self._meter,
            block_threshold=self.loop_block_threshold,
        )

    def _worker_context_setup(self) -> Callable[[], None] | None:
        """Called on each new worker thread before it captures its base context."""
        return None

    # -- dispatch ------------------------------------------------------------------------------
    def _pick_worker(self, thread_id: str | None) -> LoopWorker:
        """The worker that last served ``thread_id`` while it is not backed up (its loop holds
        that thread's sqlite connection and compiled graph warm); else the least-busy worker,
        or a new one when all are busy and the pool may still grow."""
        worker = self._affinity.preferred(thread_id, self._load)
        if worker is None:
            worker = self._least_busy()
            self._affinity.remember(thread_id, worker)
        return worker

    def _load(self, worker: LoopWorker) -> int | None:
        return worker.in_flight if worker in self._workers else None

    def _least_busy(self) -> LoopWorker:
        idle = None
        for worker in self._workers:
            if idle is None or worker.in_flight < idle.in_flight:
                idle = worker
        if idle is not None and (idle.in_flight == 0 or len(self._workers) >= self.max_workers):
            return idle
        worker = LoopWorker(
            self._make_runtime(),
            name=f"{self._name_prefix}-{len(self._workers)}",
            on_finished=self._on_finished,
            setup_context=self._worker_context_setup(),
        )
        worker.start()
        self._workers.append(worker)
        return worker

    def start(self, call: Call, events: EventChannel | None = None) -> cf.Future[RunResult]:
        future: cf.Future[RunResult] = cf.Future()
        self._post(Job(call, future, None if events is None else events.put))
        return future

    def call(self, call: Call) -> RunResult:
        """Run to completion for a sync caller: the worker settles a :class:`Waiter` the caller
        blocks on, not a future (nobody else looks at it). A run with a timeout still goes
        through ``started``: its deadline is watched on a future."""
        if call.cfg.timeout is not None:
            return super().call(call)
        waiter = Waiter()
        self._post(Job(call, waiter))
        result: RunResult = waiter.result()
        return result

    def _post(self, job: Job) -> None:
        with self._dispatch_lock:
            if self._closed:
                raise ExecutorClosed(f"cannot run on a closed {type(self).__name__}")
            worker = self._pick_worker(job.cfg.thread_id)
            worker.in_flight += 1
            self._jobs[job.outcome] = (worker, job)  # type: ignore[index]
        worker.post(job)

    def _on_finished(self, worker: LoopWorker, job: Job) -> None:
        with self._dispatch_lock:
            worker.in_flight -= 1
            self._jobs.pop(job.outcome, None)  # type: ignore[call-overload]
            idle = worker.in_flight == 0 and len(self._workers) > 1  # others may have a backlog
            stolen = self._steal_locked(worker) if idle else []
        for job in stolen:
            worker.post(job)

    def _steal_locked(self, thief: LoopWorker) -> list[Job]:
        """``thief`` is about to idle: take half (rounded up) of the jobs waiting in the inbox
        of the most backed-up worker - sync runs queued behind a long one there - so no worker
        idles while another has a backlog. Async runs never wait in an inbox (they become tasks
        on arrival), and a job its worker takes first simply stays there."""
        if self._closed or thief not in self._workers:
            return []
        victim = max(self._workers, key=lambda w: w.inbox.qsize(), default=None)
        waiting = 0 if victim is None or victim is thief else victim.inbox.qsize()
        if victim is None or not waiting:
            return []
        stolen = victim.inbox_drain(limit=(waiting + 1) // 2)
        for job in stolen:
            victim.in_flight -= 1
            thief.in_flight += 1
            self._jobs[job.outcome] = (thief, job)  # type: ignore[index]
        return stolen

    def cancel_running(self, future: cf.Future[RunResult]) -> None:
        entry = self._jobs.get(future)
        if entry is not None:
            worker, job = entry
            worker.cancel(job)

    def abandon(self, future: cf.Future[RunResult]) -> None:
        """The run's worker is stuck (a node holding its thread or its loop past the run's
        timeout): it leaves the pool - a new worker is started on demand - and the runs waiting
        in its inbox move to other workers. It stops by itself if it ever comes back; neither
        ``close()`` nor interpreter exit waits for it (a daemon thread)."""
        with self._dispatch_lock:
            entry = self._jobs.get(future)
            if entry is None or entry[0] not in self._workers:
                return
            stuck = entry[0]
            self._workers.remove(stuck)
            self._meter.restarted()
            moved: list[tuple[LoopWorker, Job]] = []
            for job in stuck.inbox_drain():
                stuck.in_flight -= 1
                worker = self._pick_worker(job.cfg.thread_id)
                worker.in_flight += 1
                self._jobs[job.outcome] = (worker, job)  # type: ignore[index]
                moved.append((worker, job))
        stuck.stop()
        for worker, job in moved:
            worker.post(job)

    def stop_workers(self, wait: bool, cancel_pending: bool) -> None:
        with self._dispatch_lock:
            workers = list(self._workers)
            if cancel_pending:
                for future in list(self._jobs):
                    future.cancel()
        for worker in workers:
            worker.stop()
        if wait:
            join_all(worker.thread for worker in workers)

    @property
    def worker_threads(self) -> list[threading.Thread]:
        """The live worker threads (for diagnostics and tests)."""
        return [w.thread for w in self._workers]

    def worker_stats(self) -> WorkerStats:
        with self._dispatch_lock:
            return WorkerStats(
                workers_max=self.max_workers,
                workers_active=len(self._workers),
                runs_per_worker=[w.in_flight for w in self._workers],
            )
