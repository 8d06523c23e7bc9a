"""LoopWorker: one thread owning one event loop for its whole life, running GraphConfigs.

This is the worker-side heart of the thread tier (and of the subinterpreter tier's hybrid
mode): every loop-bound resource a run touches (checkpointer connections, their locks, tasks
its nodes spawn) lives on this worker's loop, never on the caller's, which is what removes
"Task got Future attached to a different loop".

The thread alternates between two phases:

* **async phase** - ``loop.run_until_complete(phase)``: jobs arrive through
  ``call_soon_threadsafe`` (event-driven, no polling); async runs become tasks on the loop and
  interleave there;
* **sync phase** - when a sync-dispatchable job arrives and no async run is in flight, the
  phase future resolves, the loop stops, and the job runs with ``graph.invoke`` on this very
  thread with *no running loop*, so node code may call ``asyncio.run`` itself. A sync job that
  arrives while async runs are in flight goes to the loop's default thread pool instead (also a
  thread with no running loop), so it neither waits behind them nor blocks them.

Runs execute in a copy of the worker's own context, never the submitter's: a run started from
inside another LangGraph run must not inherit that run's callback/config context variables.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from subiso._runtime.execute import WorkerRuntime
from subiso._runtime.loops import shutdown_loop
from subiso._runtime.targets import Target
from subiso.config import GraphConfig
from subiso.report import RunResult


class Outcome(Protocol):
    """Where a job's result goes: a ``concurrent.futures.Future`` or anything shaped like it."""

    def set_running_or_notify_cancel(self) -> bool: ...

    def set_result(self, result: RunResult) -> None: ...

    def set_exception(self, exception: BaseException) -> None: ...


class Job:
    """One GraphConfig to run and where its outcome goes."""

    __slots__ = ("cfg", "outcome", "task")

    def __init__(self, cfg: GraphConfig, outcome: Outcome) -> None:
        self.cfg = cfg
        self.outcome = outcome
        self.task: asyncio.Task[Any] | None = None


class LoopWorker:
    """A dedicated thread with a persistent event loop; see the module docstring."""

    def __init__(
        self,
        runtime: WorkerRuntime,
        *,
        name: str,
        on_finished: Callable[[LoopWorker, Job], None] | None = None,
        setup_context: Callable[[], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.name = name
        self.loop = asyncio.new_event_loop()
        self.in_flight = 0  # maintained by the owner (under its dispatch lock)
        self._on_finished = on_finished
        self._setup_context = setup_context
        self._context: contextvars.Context | None = None
        self._ready = threading.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sync_jobs: deque[tuple[Job, Target]] = deque()
        self._phase: asyncio.Future[None] | None = None
        self._stopping = False
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)

    # -- host side ---------------------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()
        self._ready.wait()

    def post(self, job: Job) -> None:
        """Hand a job to this worker from any thread."""
        self.loop.call_soon_threadsafe(self._accept, job, context=self._context)

    def cancel(self, job: Job) -> None:
        """Cancel a job's task on this worker's loop, from any thread (no-op once finished)."""

        def cancel_task() -> None:
            if job.task is not None:
                job.task.cancel()

        try:
            self.loop.call_soon_threadsafe(cancel_task)
        except RuntimeError:  # loop already closed: the job has finished
            pass

    def stop(self) -> None:
        """Ask the worker to finish its jobs, close its resources and exit; see ``join``."""
        try:
            self.loop.call_soon_threadsafe(self._request_stop, context=self._context)
        except RuntimeError:
            pass

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    # -- worker thread ---------------------------------------------------------------------
    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        if self._setup_context is not None:
            self._setup_context()
        self._context = contextvars.copy_context()
        self._ready.set()
        try:
            while True:
                self._phase = self.loop.create_future()
                if self._sync_jobs or (self._stopping and not self._tasks):
                    self._phase.set_result(None)
                self.loop.run_until_complete(self._phase)
                while self._sync_jobs:
                    job, target = self._sync_jobs.popleft()
                    self._run_sync(job, target)
                if self._stopping and not self._tasks:
                    break
        finally:
            shutdown_loop(self.loop, self.runtime.aclose)

    def _wake_for_sync(self) -> None:
        if self._phase is not None and not self._phase.done():
            self._phase.set_result(None)

    def _request_stop(self) -> None:
        self._stopping = True
        if not self._tasks:
            self._wake_for_sync()

    def _accept(self, job: Job) -> None:
        if not job.outcome.set_running_or_notify_cancel():
            self._finished(job)
            return
        try:
            target = self.runtime.plan(job.cfg)
            sync = self.runtime.runs_sync(target, job.cfg)
        except BaseException as exc:
            job.outcome.set_exception(exc)
            self._finished(job)
            return
        if sync and not self._tasks:
            self._sync_jobs.append((job, target))
            self._wake_for_sync()
        elif sync:
            ctx = contextvars.copy_context()
            self.loop.run_in_executor(None, ctx.run, self._run_sync, job, target)
        else:
            task = self.loop.create_task(self._run_async(job, target))
            job.task = task
            self._tasks.add(task)

    def _run_sync(self, job: Job, target: Target) -> None:
        try:
            result = contextvars.copy_context().run(
                self.runtime.run_sync, target, job.cfg, id(self.loop)
            )
        except BaseException as exc:
            job.outcome.set_exception(exc)
        else:
            job.outcome.set_result(result)
        self._finished(job)

    async def _run_async(self, job: Job, target: Target) -> None:
        try:
            result = await self.runtime.run_async(target, job.cfg)
        except BaseException as exc:  # CancelledError included: the caller sees it
            job.outcome.set_exception(exc)
        else:
            job.outcome.set_result(result)
        finally:
            self._tasks.discard(asyncio.current_task())  # type: ignore[arg-type]
            if self._stopping and not self._tasks:
                self._wake_for_sync()
        self._finished(job)

    def _finished(self, job: Job) -> None:
        if self._on_finished is not None:
            self._on_finished(self, job)
