"""InlineExecutor ("inline"): the caller's own thread and loop - the baseline, no isolation.

``run`` from sync code executes on the calling thread (a sync graph with ``invoke``, anything
async on a private loop the executor keeps for that thread); ``arun`` executes on the caller's
running loop. Checkpointers are opened per loop and closed by ``close()``. A ``run`` called
where a loop is already running moves to a short-lived helper thread rather than nesting loops.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator
from typing import Any

from typing_extensions import Unpack

from subiso.events import EventChannel
from subiso.executors.base import SharedOptions
from subiso.executors.in_caller import InCallerExecutor
from subiso.report import RunResult
from subiso.runtime.call import Call
from subiso.runtime.execute import Emit, OnTask, WorkerRuntime
from subiso.runtime.loops import (
    call_off_running_loop,
    new_loop,
    run_until_complete,
    running_loop,
    shutdown_loop,
)


async def _close_at_loop_shutdown(runtime: WorkerRuntime) -> AsyncIterator[None]:
    """An async generator parked on a caller's loop: ``loop.shutdown_asyncgens()`` (which
    ``asyncio.run`` calls before closing the loop) finalises it, closing ``runtime`` there."""
    try:
        yield
    finally:
        await runtime.aclose()


class InlineExecutor(InCallerExecutor):
    """Run on the caller's thread (``run``) or the caller's loop (``arun``)."""

    tier = "inline"
    summary = "the caller's thread and loop; no isolation (the baseline)"

    def __init__(self, **shared: Unpack[SharedOptions]) -> None:
        super().__init__(**shared)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._thread_loops: list[tuple[asyncio.AbstractEventLoop, WorkerRuntime]] = []
        self._caller_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, WorkerRuntime] = (
            weakref.WeakKeyDictionary()
        )
        self._loop_closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def call_here(self, call: Call) -> RunResult:
        if running_loop() is not None:
            return call_off_running_loop(lambda: self.run_fresh(call))
        runtime, loop = self._thread_state()
        target = runtime.plan(call)
        if runtime.runs_sync(target, call):
            return runtime.run_sync(target, call, id(loop))
        return run_until_complete(loop, runtime.run_async(target, call))

    def run_fresh(
        self, call: Call, emit: Emit | None = None, on_task: OnTask | None = None
    ) -> RunResult:
        return self.runtime().run_once(call, emit=emit, on_task=on_task)

    def _thread_state(self) -> tuple[WorkerRuntime, asyncio.AbstractEventLoop]:
        state: tuple[WorkerRuntime, asyncio.AbstractEventLoop] | None = getattr(
            self._local, "state", None
        )
        if state is None or state[1].is_closed():
            state = (self.runtime(), new_loop())
            self._local.state = state
            with self._lock:
                self._thread_loops.append((state[1], state[0]))
        return state

    async def acall(self, call: Call, events: EventChannel | None = None) -> RunResult:
        loop = asyncio.get_running_loop()
        runtime = self._caller_loops.get(loop)
        if runtime is None:
            runtime = self._caller_loops[loop] = self.runtime()
            # The caller's loop may end (``asyncio.run`` returning) long before this executor
            # closes; its checkpointer connections (and their threads) must not outlive it.
            closer = _close_at_loop_shutdown(runtime)
            await closer.__anext__()
            self._loop_closers[loop] = closer
        emit = None if events is None else events.put
        return await runtime.run_async(runtime.plan(call), call, emit)

    def shutdown(self, wait: bool, cancel_pending: bool) -> None:
        super().shutdown(wait, cancel_pending)
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
