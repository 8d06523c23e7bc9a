"""InlineExecutor ("inline"): the caller's own thread and loop - the baseline, no isolation.

``run`` from sync code executes on the calling thread (a sync graph with ``invoke``, anything
async on a private loop the executor keeps for that thread); ``arun`` executes on the caller's
running loop. Checkpointers are opened per loop and closed by ``close()``. A ``run`` called
where a loop is already running moves to a short-lived helper thread rather than nesting loops.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading
import weakref
from collections.abc import AsyncIterator
from typing import Any

from typing_extensions import Unpack

from subiso.events import EventChannel
from subiso.executors.base import Executor, SharedOptions
from subiso.executors.in_caller import HelperRuns, ran
from subiso.report import RunResult
from subiso.runtime.call import Call
from subiso.runtime.execute import Emit, OnTask, WorkerRuntime
from subiso.runtime.loops import (
    call_off_running_loop,
    new_loop,
    running_loop,
    shutdown_loop,
)
from subiso.runtime.resources import Memory
from subiso.runtime.targets import TargetCache


async def _close_at_loop_shutdown(runtime: WorkerRuntime) -> AsyncIterator[None]:
    """An async generator parked on a caller's loop: ``loop.shutdown_asyncgens()`` (which
    ``asyncio.run`` calls before closing the loop) finalises it, closing ``runtime`` there."""
    try:
        yield
    finally:
        await runtime.aclose()


class InlineExecutor(Executor):
    """Run on the caller's thread (``run``) or the caller's loop (``arun``)."""

    tier = "inline"
    summary = "the caller's thread and loop; no isolation (the baseline)"

    def __init__(self, **shared: Unpack[SharedOptions]) -> None:
        super().__init__(**shared)
        self._targets = TargetCache()
        self._helper_runs = HelperRuns()  # sync callers' streams, on helper threads
        self._memory = Memory()  # "memory" checkpointer/store: one per executor, not per loop
        self._local = threading.local()
        self._lock = threading.Lock()
        self._thread_loops: list[tuple[asyncio.AbstractEventLoop, WorkerRuntime]] = []
        self._caller_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, WorkerRuntime] = (
            weakref.WeakKeyDictionary()
        )
        self._loop_closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def start(self, call: Call, events: EventChannel | None = None) -> cf.Future[RunResult]:
        """Runs here, now: the future is done when it is returned. With ``events`` (a sync
        consumer reads them meanwhile) the run goes to a helper thread with a fresh loop."""
        if events is None:
            return ran(self.call, call)
        return self._helper_runs.start(
            lambda on_task: self._execute_fresh(call, events.put, on_task)
        )

    def call(self, call: Call) -> RunResult:
        if call.cfg.timeout is not None:
            # Only a run on another thread can hand control back at its deadline, whatever
            # its nodes do; that helper thread is given up (a daemon) if they never return.
            future = self._helper_runs.start(
                lambda on_task: self._execute_fresh(call, None, on_task)
            )
            self.watch_deadline(future, call.cfg)
            return future.result()
        if running_loop() is not None:
            return call_off_running_loop(lambda: self._execute_fresh(call))
        runtime, loop = self._thread_state()
        target = runtime.plan(call)
        if runtime.runs_sync(target, call):
            return runtime.run_sync(target, call, id(loop))
        return loop.run_until_complete(runtime.run_async(target, call))

    def _execute_fresh(
        self, call: Call, emit: Emit | None = None, on_task: OnTask | None = None
    ) -> RunResult:
        return self._runtime().run_once(call, emit=emit, on_task=on_task)

    def cancel_running(self, future: cf.Future[RunResult]) -> None:
        self._helper_runs.cancel(future)

    def _runtime(self) -> WorkerRuntime:
        return WorkerRuntime(
            self.tier,
            selected_by=self.selected_by,
            targets=self._targets,
            memory=self._memory,
            worker_init=self.worker_init,
            in_caller=True,
        )

    def _thread_state(self) -> tuple[WorkerRuntime, asyncio.AbstractEventLoop]:
        state: tuple[WorkerRuntime, asyncio.AbstractEventLoop] | None = getattr(
            self._local, "state", None
        )
        if state is None or state[1].is_closed():
            state = (self._runtime(), new_loop())
            self._local.state = state
            with self._lock:
                self._thread_loops.append((state[1], state[0]))
        return state

    async def acall(self, call: Call, events: EventChannel | None = None) -> RunResult:
        loop = asyncio.get_running_loop()
        runtime = self._caller_loops.get(loop)
        if runtime is None:
            runtime = self._caller_loops[loop] = self._runtime()
            # The caller's loop may end (``asyncio.run`` returning) long before this executor
            # closes; its checkpointer connections (and their threads) must not outlive it.
            closer = _close_at_loop_shutdown(runtime)
            await closer.__anext__()
            self._loop_closers[loop] = closer
        emit = None if events is None else events.put
        return await runtime.run_async(runtime.plan(call), call, emit)

    def shutdown(self, wait: bool, cancel_pending: bool) -> None:
        if wait:
            self._helper_runs.join()
        with self._lock:
            thread_loops, self._thread_loops = self._thread_loops, []
            caller_loops = list(self._caller_loops.items())
            self._caller_loops.clear()
        for loop, runtime in thread_loops:
            if not loop.is_closed() and not loop.is_running():
                shutdown_loop(loop, runtime.aclose)
        here = running_loop()
        for loop, runtime in caller_loops:
            if loop.is_closed():
                continue
            if loop is here:
                loop.create_task(runtime.aclose())
            elif loop.is_running():
                asyncio.run_coroutine_threadsafe(runtime.aclose(), loop).result()
            else:
                loop.run_until_complete(runtime.aclose())
