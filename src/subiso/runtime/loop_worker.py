"""LoopWorker: one thread owning one event loop for its whole life, running GraphConfigs.

This is the worker-side heart of the thread tier (and of the subinterpreter tier's hybrid
mode): every loop-bound resource a run touches (checkpointer connections, their locks, tasks
its nodes spawn) lives on this worker's loop, never on the caller's, which is what removes
"Task got Future attached to a different loop".

The thread is in one of two states:

* **idle** - the loop has no task at all; the thread blocks on its inbox (a C-level
  ``SimpleQueue``), no loop running. A sync-dispatchable job (see ``execute.py``) runs right
  here, on this thread with *no running loop*, so node code may call ``asyncio.run`` itself;
  handing it over costs one queue put, no self-pipe and no event-loop turn.
* **looping** - an async job arrived: the loop runs until it has no task left (runs, and
  anything they spawned). Jobs now arrive through ``call_soon_threadsafe``; async ones become
  tasks interleaving on the loop, sync ones go to the loop's default thread pool (also threads
  with no running loop), so they neither wait behind async runs nor block them.

Jobs come from an :class:`Inbox`: a :class:`QueueInbox` that other threads ``post`` to (thread
tier, hybrid mode), or one the worker reads itself (the process worker reads run frames straight
from its pipe, so a sync run there involves no thread hand-off at all). Hand-over is race-free
because ``post`` always enqueues first and only then, if the worker is looping, schedules a
drain; the worker attaches (flips to looping) *before* its first drain and detaches *before*
its last, so every job is seen by a drain or by the blocking ``get``.

Runs execute in a copy of the worker's own context, never the submitter's: a run started from
inside another LangGraph run must not inherit that run's callback/config context variables.
(What a run needs of its caller's context - its trace - travels with its Call, see
:mod:`subiso.observe.trace`.)

While looping, the loop's health is watched (:class:`~subiso.observe.loop_health.LoopMonitor`):
its lag is probed, a block longer than the runtime's ``block_threshold`` is reported while it
lasts, and tasks that runs left behind are reported when the loop has no run in flight.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol

from subiso.config import GraphConfig
from subiso.observe.loop_health import LoopMonitor
from subiso.report import RunResult
from subiso.runtime.call import Call
from subiso.runtime.execute import Emit, WorkerRuntime, as_call
from subiso.runtime.loops import new_loop, run_until_complete, shutdown_loop
from subiso.runtime.targets import Target


class Outcome(Protocol):
    """Where a job's result goes: a ``concurrent.futures.Future`` or anything shaped like it."""

    def set_running_or_notify_cancel(self) -> bool: ...

    def set_result(self, result: RunResult) -> None: ...

    def set_exception(self, exception: BaseException) -> None: ...


class Job:
    """One Call (or a bare GraphConfig: an invoke) to carry out, where its outcome goes, and
    where its events go (``emit``, awaited on the worker's loop; None: nobody listens)."""

    __slots__ = ("call", "emit", "outcome", "task")

    def __init__(
        self, work: Call | GraphConfig, outcome: Outcome, emit: Emit | None = None
    ) -> None:
        self.call = as_call(work)
        self.outcome = outcome
        self.emit = emit
        self.task: asyncio.Task[Any] | None = None

    @property
    def cfg(self) -> GraphConfig:
        return self.call.cfg


#: An inbox item that ends the worker once the jobs before it are done.
STOP = object()


class Inbox(Protocol):
    """Where a LoopWorker's jobs come from. Items are Jobs, ``STOP``, or None (nothing to do)."""

    def get(self) -> Any:
        """Block until the next item (idle state: no loop running)."""

    def get_nowait(self) -> Any:
        """The next item if one is ready, else raise ``queue.Empty`` (looping state)."""

    def empty(self) -> bool: ...

    def qsize(self) -> int:
        """How many items wait (approximate while other threads put and get)."""

    def attach(self, loop: asyncio.AbstractEventLoop, drain: Callable[[], None]) -> None:
        """Looping from now on: make ``loop`` call ``drain`` whenever items may be ready."""

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Idle from now on: items wait for ``get``."""


class QueueInbox:
    """Jobs posted by other threads: a C-level SimpleQueue, plus a drain scheduled on the
    worker's loop while it is looping."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._wake: Callable[[], Any] | None = None

    def put(self, item: Any) -> None:
        self._queue.put(item)
        wake = self._wake
        if wake is not None:
            try:
                wake()
            except RuntimeError:  # loop closed meanwhile: the worker is gone
                pass

    def get(self) -> Any:
        return self._queue.get()

    def get_nowait(self) -> Any:
        return self._queue.get_nowait()

    def empty(self) -> bool:
        return self._queue.empty()

    def qsize(self) -> int:
        return self._queue.qsize()

    def attach(self, loop: asyncio.AbstractEventLoop, drain: Callable[[], None]) -> None:
        context = contextvars.copy_context()  # the worker's own, never a poster's
        self._wake = lambda: loop.call_soon_threadsafe(drain, context=context)

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._wake = None


class LoopWorker:
    """A dedicated thread with a persistent event loop; see the module docstring."""

    def __init__(
        self,
        runtime: WorkerRuntime,
        *,
        name: str,
        on_finished: Callable[[LoopWorker, Job], None] | None = None,
        setup_context: Callable[[], None] | None = None,
        inbox: Inbox | None = None,
    ) -> None:
        self.runtime = runtime
        self.name = name
        self.loop = new_loop()
        self.in_flight = 0  # maintained by the owner (under its dispatch lock)
        self._on_finished = on_finished
        self._setup_context = setup_context
        self._ready = threading.Event()
        self.inbox: Inbox = inbox if inbox is not None else QueueInbox()
        self._stopping = False
        self._runs: set[asyncio.Task[Any]] = set()
        self._idle: asyncio.Future[None] | None = None
        meter = runtime.meter
        on_lag = runtime.on_lag
        if on_lag is None and meter is not None:
            on_lag = lambda lag: meter.lag(lag, self)  # noqa: E731
        self.monitor = LoopMonitor(
            self.loop, tier=runtime.tier, threshold=runtime.block_threshold, on_lag=on_lag
        )
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)

    # -- host side ---------------------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()
        self._ready.wait()

    def run_here(self) -> None:
        """Serve on the calling thread instead of ``thread``, until stopped (process workers:
        their main thread reads run frames and runs sync jobs itself)."""
        self._main()

    def post(self, job: Any) -> None:
        """Hand a job (or ``STOP``) to this worker, from any thread (a QueueInbox only)."""
        self.inbox.put(job)  # type: ignore[attr-defined]

    def cancel(self, job: Job) -> None:
        """Cancel a job's task on this worker's loop, from any thread (no-op once finished)."""

        def cancel_task() -> None:
            if job.task is not None:
                job.task.cancel()

        try:
            self.loop.call_soon_threadsafe(cancel_task)
        except RuntimeError:  # loop already closed: the job has finished
            pass

    def inbox_drain(self, limit: int | None = None) -> list[Job]:
        """Take back (up to ``limit`` of) the jobs still waiting in this worker's inbox (it is
        being given up, or another worker has nothing to do); a QueueInbox only."""
        jobs: list[Job] = []
        while limit is None or len(jobs) < limit:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Job):
                jobs.append(item)
            else:  # a STOP (or None): it stays, last
                self.inbox.put(item)  # type: ignore[attr-defined]
                break
        return jobs

    def stop(self) -> None:
        """Ask the worker to finish its jobs, close its resources and exit; see ``join``."""
        self.post(STOP)

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    # -- worker thread: idle state -------------------------------------------------------------
    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        if self._setup_context is not None:
            self._setup_context()
        self.monitor.watch()
        self._ready.set()
        try:
            self._serve()
        finally:
            self.monitor.unwatch()
            if self.runtime.meter is not None:
                self.runtime.meter.forget_lag(self)
            shutdown_loop(self.loop, self.runtime.aclose)

    def _serve(self) -> None:
        while not (self._stopping and self.inbox.empty()):
            taken = self._take(self.inbox.get())
            if taken is None:
                continue
            job, target, sync = taken
            if sync:
                self._run_sync(job, target)
            else:
                self._loop_until_quiet(job, target)

    def _take(self, item: Any) -> tuple[Job, Target, bool] | None:
        """Admit an inbox item: the job, its target and whether it runs sync; None for the
        stop sentinel, for nothing, and for jobs already settled (cancelled, bad target)."""
        if item is STOP:
            self._stopping = True
            return None
        if item is None:
            return None
        target = self._admit(item)
        if target is None:
            return None
        return item, target, self.runtime.runs_sync(target, item.call, item.emit)

    def _admit(self, job: Job) -> Target | None:
        """Mark the job running and resolve its target; None when it is already settled
        (cancelled, or given RunTimeout by its caller's deadline while it waited here)."""
        try:
            admitted = job.outcome.set_running_or_notify_cancel()
        except RuntimeError:  # settled meanwhile (its deadline passed): nothing to run
            admitted = False
        if not admitted:
            self._finished(job)
            return None
        try:
            return self.runtime.plan(job.call)
        except BaseException as exc:
            job.outcome.set_exception(exc)
            self._finished(job)
            return None

    def _run_sync(self, job: Job, target: Target) -> None:
        try:
            result = contextvars.copy_context().run(
                self.runtime.run_sync, target, job.call, id(self.loop)
            )
        except BaseException as exc:
            self._finished(job)
            job.outcome.set_exception(exc)
        else:
            self._finished(job)
            job.outcome.set_result(result)

    # -- worker thread: looping state ----------------------------------------------------------
    def _loop_until_quiet(self, first: Job, target: Target) -> None:
        self._idle = self.loop.create_future()
        self.inbox.attach(self.loop, self._drain)
        self._start_task(first, target)
        self.loop.call_soon(self._drain)
        self.monitor.start()
        try:
            # a node's task raising SystemExit/KeyboardInterrupt must not end this worker and
            # every run on it: the loop goes on and the run awaiting that task gets it (a
            # worker never takes Ctrl-C: it is a thread, or a process that ignores SIGINT)
            run_until_complete(self.loop, self._idle, resume=True)
        finally:
            self.monitor.stop()
            self.inbox.detach(self.loop)

    def _drain(self) -> None:
        """On the loop: take every queued job."""
        if self._idle is None or self._idle.done():
            # Leaving the looping state (or not in it): a drain scheduled by a late ``post``
            # may still run in the loop's last iteration; a job it took would become a task on
            # a loop about to stop, never run. Leave the jobs to ``_serve``'s blocking get.
            return
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                break
            taken = self._take(item)
            if taken is None:
                continue
            job, target, sync = taken
            if sync:
                ctx = contextvars.copy_context()
                self.loop.run_in_executor(None, ctx.run, self._run_sync, job, target)
            else:
                self._start_task(job, target)
        self._check_quiet()

    def _start_task(self, job: Job, target: Target) -> None:
        task = self.loop.create_task(self._run_async(job, target))
        job.task = task
        self._runs.add(task)

    async def _run_async(self, job: Job, target: Target) -> None:
        # The owner hears of the end (``_finished``: its busy count drops) before the caller
        # does, so a caller's next run sees this worker free again.
        try:
            result = await self.runtime.run_async(target, job.call, job.emit)
        except BaseException as exc:  # CancelledError included: the caller sees it
            self._end(job)
            job.outcome.set_exception(exc)
        else:
            self._end(job)
            job.outcome.set_result(result)

    def _end(self, job: Job) -> None:
        self._runs.discard(asyncio.current_task())
        self._finished(job)
        self.loop.call_soon(self._check_quiet)

    def _check_quiet(self) -> None:
        """Leave the looping state once no run is in flight and nothing else is scheduled."""
        if self._runs or self._idle is None or self._idle.done():
            return
        if not self._stopping and asyncio.all_tasks(self.loop):
            # Tasks a run spawned and left running keep the loop turning; they end with the
            # worker (cancelled at close) unless they finish by themselves first.
            self.monitor.scan_leftovers()
            return
        self._idle.set_result(None)

    def _finished(self, job: Job) -> None:
        if self._on_finished is not None:
            self._on_finished(self, job)
