"""The tiers that run in the caller's own thread (inline, context): what they share.

:class:`InCallerExecutor` implements the contract's hooks for them once: ``start`` runs the
call here and returns a done future, except where the caller must read a run's events while it
goes on (``stream``, ``on_event``) or get control back at its deadline (a timeout): then the
run goes to a helper thread with a fresh loop (:class:`HelperRuns`), which ``cancel_running``
can cancel and ``close()`` joins. A tier says how to carry out one call on this thread
(``run_fresh``) and, optionally, how a plain call runs (``call_here``).

**A sync call on a running loop's own thread** (``run()`` from a coroutine, a notebook cell, a
node of an ``arun`` of the same executor) blocks that loop until it returns: none of the loop's
tasks can move meanwhile, so the call cannot run on that loop, nor share anything with the
loop's runs that only those tasks could release. It runs on a helper thread, on a fresh loop,
with resources of its own (its own checkpointer connections), and the caller's thread waits
for it. What the two could still contend on is the checkpointer's file: an SQLite write lock
taken by a task of the blocked loop would be held until that task runs again - after the call
it blocks - and the helper would wait out the busy timeout (``database is locked``). No such
lock outlives a loop turn (``subiso.runtime.resources``: checkpointer connections commit every
statement on their own thread), so the call proceeds and the blocked loop's runs resume where
they were when it returns. (An SQLite *store* written by both sides can still wait: LangGraph's
``AsyncSqliteStore`` holds its transaction across awaits.)
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures as cf
import threading
from collections.abc import Callable

from typing_extensions import Unpack

from subiso._futures import join_all, running_future, settle
from subiso.events import EventChannel
from subiso.executors.base import Executor, SharedOptions
from subiso.observe.metrics import WorkerStats
from subiso.report import RunResult
from subiso.runtime.call import Call
from subiso.runtime.execute import Emit, OnTask, WorkerRuntime
from subiso.runtime.loops import call_off_running_loop
from subiso.runtime.resources import Memory
from subiso.runtime.targets import TargetCache


def ran(fn: Callable[[Call], RunResult], call: Call) -> cf.Future[RunResult]:
    """A done future holding ``fn(call)``'s outcome: ``start`` for tiers that run in the
    caller's thread."""
    future: cf.Future[RunResult] = cf.Future()
    future.set_running_or_notify_cancel()
    try:
        future.set_result(fn(call))
    except BaseException as exc:
        future.set_exception(exc)
    return future


class HelperRuns:
    """Runs on short-lived daemon threads, each on a fresh loop, that can be cancelled and
    joined: for tiers that run in the caller's thread, when a sync caller must read a run's
    events while the run goes on (``stream``, ``on_event``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[cf.Future[RunResult], _HelperRun] = {}

    def start(self, fn: Callable[[OnTask], RunResult]) -> cf.Future[RunResult]:
        """``fn(on_task)`` on a helper thread; ``fn`` passes ``on_task`` to ``run_once``."""
        run = _HelperRun()
        with self._lock:
            self._runs[run.future] = run
        run.future.add_done_callback(self._forget)
        run.thread = threading.Thread(
            target=run.main, args=(fn,), name="subiso-stream", daemon=True
        )
        run.thread.start()
        return run.future

    def cancel(self, future: cf.Future[RunResult]) -> None:
        with self._lock:
            run = self._runs.get(future)
        if run is not None:
            run.cancel()

    def join(self) -> None:
        with self._lock:
            threads = [run.thread for run in self._runs.values() if run.thread is not None]
        join_all(threads)

    def _forget(self, future: cf.Future[RunResult]) -> None:
        with self._lock:
            self._runs.pop(future, None)


class _HelperRun:
    def __init__(self) -> None:
        self.future: cf.Future[RunResult] = running_future()
        self.thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._task: tuple[asyncio.AbstractEventLoop, asyncio.Task[RunResult]] | None = None
        self._cancelled = False

    def main(self, fn: Callable[[OnTask], RunResult]) -> None:
        try:
            result = fn(self._bind)
        except BaseException as exc:
            settle(self.future, exc=exc)
        else:
            settle(self.future, result)

    def _bind(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[RunResult]) -> None:
        with self._lock:
            self._task = (loop, task)
            if self._cancelled:
                task.cancel()

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._task is None:
                return
            loop, task = self._task
        try:
            loop.call_soon_threadsafe(task.cancel)
        except RuntimeError:  # its loop closed: the run is over
            pass


class InCallerExecutor(Executor):
    """Base of the tiers that run in the caller's own thread; see the module docstring."""

    def __init__(self, **shared: Unpack[SharedOptions]) -> None:
        super().__init__(**shared)
        self._targets = TargetCache()
        self._helper_runs = HelperRuns()
        self._memory = Memory()  # "memory" checkpointer/store: one per executor, not per loop

    @abc.abstractmethod
    def run_fresh(
        self, call: Call, emit: Emit | None = None, on_task: OnTask | None = None
    ) -> RunResult:
        """Carry out ``call`` on this thread (no loop running here), on a fresh loop if it
        needs one, keeping nothing."""

    def call_here(self, call: Call) -> RunResult:
        """A plain call without a timeout (default: ``run_fresh``, off a running loop)."""
        return call_off_running_loop(lambda: self.run_fresh(call))

    def start(self, call: Call, events: EventChannel | None = None) -> cf.Future[RunResult]:
        if events is None:
            return ran(self.call, call)
        return self._helper_runs.start(lambda on_task: self.run_fresh(call, events.put, on_task))

    def call(self, call: Call) -> RunResult:
        if call.cfg.timeout is None:
            return self.call_here(call)
        # Only a run on another thread can hand control back at its deadline, whatever its
        # nodes do; that helper thread is given up (a daemon) if they never return.
        future = self._helper_runs.start(lambda on_task: self.run_fresh(call, None, on_task))
        self.watch_deadline(future, call)
        return future.result()

    def cancel_running(self, future: cf.Future[RunResult]) -> None:
        self._helper_runs.cancel(future)

    def stop_workers(self, wait: bool, cancel_pending: bool) -> None:
        if wait:
            self._helper_runs.join()

    def runtime(self) -> WorkerRuntime:
        """A runtime for runs on the caller's side (targets and "memory" shared per executor)."""
        return WorkerRuntime(
            self.tier,
            selected_by=self.selected_by,
            targets=self._targets,
            memory=self._memory,
            worker_init=self.worker_init,
            in_caller=True,
            meter=self._meter,
            block_threshold=self.loop_block_threshold,
        )

    def worker_stats(self) -> WorkerStats:
        """No pool: runs execute on their callers' threads, each one "worker" while it runs."""
        running = self._meter.snapshot(WorkerStats()).runs_running
        return WorkerStats(workers_active=running)
