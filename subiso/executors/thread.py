"""ThreadExecutor ("thread", the default): dedicated worker threads, each owning one event loop.

Each worker keeps its loop (and the checkpointers opened on it) for its lifetime, so
loop-bound resources never meet a foreign loop. Async runs interleave on a worker's loop; a run
goes to the least-busy worker, starting a new one while fewer than ``max_workers`` exist. On a
free-threaded build with the GIL disabled the workers run Python in parallel.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading
from collections.abc import Callable
from typing import Any

from subiso.config import GraphConfig
from subiso.errors import ExecutorClosed
from subiso.executors.base import Executor, positive_int
from subiso.report import RunResult
from subiso.runtime.execute import WorkerRuntime
from subiso.runtime.loop_worker import Job, LoopWorker


def default_max_workers() -> int:
    """As ``ThreadPoolExecutor``: enough for I/O-bound runs without exhausting small hosts."""
    return min(32, (os.cpu_count() or 1) + 4)


class ThreadExecutor(Executor):
    """Run each GraphConfig on one of ``max_workers`` long-lived loop threads."""

    tier = "thread"

    def __init__(
        self,
        *,
        max_workers: int | None = None,
        timeout: float | None = None,
        checkpointer: str | None = None,
        thread_name_prefix: str = "subiso-thread",
        worker_init: str | None = None,
    ) -> None:
        super().__init__(timeout=timeout, checkpointer=checkpointer)
        self.max_workers = positive_int(
            max_workers, f"{type(self).__name__}: max_workers", default_max_workers()
        )
        self._name_prefix = thread_name_prefix
        self.worker_init = worker_init  # "pkg.mod:factory", entered on each worker's loop
        self._workers: list[LoopWorker] = []
        self._dispatch_lock = threading.Lock()
        self._jobs: dict[cf.Future[RunResult], tuple[LoopWorker, Job]] = {}

    # -- hooks for tiers built on this one (the subinterpreter tier's hybrid mode) ---------
    def _make_runtime(self) -> WorkerRuntime:
        return WorkerRuntime(self.tier, selected_by=self.selected_by, worker_init=self.worker_init)

    def _worker_context_setup(self) -> Callable[[], None] | None:
        """Called on each new worker thread before it captures its base context."""
        return None

    # -- dispatch ------------------------------------------------------------------------------
    def _pick_worker(self) -> LoopWorker:
        """Least-busy worker; a new one when all are busy and the pool may still grow."""
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

    def _submit(self, cfg: GraphConfig) -> cf.Future[RunResult]:
        future: cf.Future[RunResult] = cf.Future()
        job = Job(cfg, future)
        with self._dispatch_lock:
            if self._closed:
                raise ExecutorClosed(f"cannot run on a closed {type(self).__name__}")
            worker = self._pick_worker()
            worker.in_flight += 1
            self._jobs[future] = (worker, job)
        worker.post(job)
        return future

    def _on_finished(self, worker: LoopWorker, job: Job) -> None:
        with self._dispatch_lock:
            worker.in_flight -= 1
            self._jobs.pop(job.outcome, None)  # type: ignore[call-overload]

    def _cancel_running(self, future: cf.Future[RunResult]) -> None:
        entry = self._jobs.get(future)
        if entry is not None:
            worker, job = entry
            worker.cancel(job)

    def _shutdown(self, wait: bool, cancel_pending: bool) -> None:
        with self._dispatch_lock:
            workers = list(self._workers)
            if cancel_pending:
                for future in list(self._jobs):
                    future.cancel()
        for worker in workers:
            worker.stop()
        if wait:
            for worker in workers:
                worker.join()

    @property
    def worker_threads(self) -> list[threading.Thread]:
        """The live worker threads (for diagnostics and tests)."""
        return [w.thread for w in self._workers]

    def stats(self) -> dict[str, Any]:
        with self._dispatch_lock:
            return {
                "workers": len(self._workers),
                "in_flight": [w.in_flight for w in self._workers],
            }
