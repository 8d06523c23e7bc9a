"""ContextExecutor ("context"): a fresh context and a fresh loop per run, on the caller's thread.

What it isolates:

* ``contextvars`` - each run starts from an *empty* context: it sees no context variable the
  caller set (including LangGraph's own run config, so a run started inside a node is not
  mistaken for a subgraph), and nothing it sets leaks back;
* the event loop, for ``run``: async work runs on a fresh loop created and closed for that run
  (on a short-lived helper thread when the calling thread's loop is already running - never
  nested - with connections of its own: it never waits on the blocked loop's runs, see
  ``subiso.executors.in_caller``), so its checkpointer lives for one run and nothing it
  spawned survives it;
* leftover tasks, for ``arun``: the run shares the caller's loop, but every task it created is
  tracked, and any still pending when it returns is cancelled and awaited before ``arun``
  returns, so nothing stays behind on the host loop.

What it does not isolate: module globals and imported state, the process's threads and memory,
the CPU (a CPU-bound node in ``arun`` blocks the caller's loop, exactly as inline would), and
crashes. Sync graphs run by ``run`` go through ``graph.invoke`` directly (they need no loop).
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import weakref
from collections.abc import Coroutine
from contextvars import ContextVar
from typing import Any

from subiso.events import EventChannel
from subiso.executors.in_caller import InCallerExecutor
from subiso.observe.loop_health import leftovers, report_leftovers
from subiso.report import RunResult
from subiso.runtime.call import Call
from subiso.runtime.execute import Emit, OnTask, WorkerRuntime
from subiso.runtime.loops import cancel_until_settled

_run_tasks: ContextVar[set[asyncio.Task[Any]] | None] = ContextVar("subiso_run_tasks", default=None)

# 3.12+ tasks expose their context, so a run's leftovers are found by scanning the loop's
# pending tasks for the run's scope marker: no task factory on the host loop at all. Older
# Pythons record each task at creation through a chaining task factory.
_TASKS_KNOW_CONTEXT = sys.version_info >= (3, 12)


class _TaskTracking:
    """Python < 3.12: a chaining task factory, installed while tracked runs are active.

    The factory is called synchronously by ``create_task`` in the creating task's context, so
    it sees the creating run's ``_run_tasks`` set and records the new task there; tasks
    created by the new task inherit the same set through their context copy.
    """

    _active: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[int, Any, Any]] = (
        weakref.WeakKeyDictionary()
    )

    @classmethod
    def acquire(cls, loop: asyncio.AbstractEventLoop) -> None:
        count, previous, ours = cls._active.get(loop, (0, None, None))
        if count == 0:
            previous = loop.get_task_factory()
            ours = cls._factory(previous)
            loop.set_task_factory(ours)
        cls._active[loop] = (count + 1, previous, ours)

    @classmethod
    def release(cls, loop: asyncio.AbstractEventLoop) -> None:
        count, previous, ours = cls._active[loop]
        if count == 1:
            del cls._active[loop]
            if loop.get_task_factory() is ours:
                loop.set_task_factory(previous)
        else:
            cls._active[loop] = (count - 1, previous, ours)

    @staticmethod
    def _factory(previous: Any) -> Any:
        def factory(
            loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
        ) -> Any:
            if previous is not None:
                task = previous(loop, coro, **kwargs)
            else:
                task = asyncio.Task(coro, loop=loop, **kwargs)
            tracked = _run_tasks.get()
            if tracked is not None:
                tracked.add(task)
            return task

        return factory


class ContextExecutor(InCallerExecutor):
    """Isolated contextvars and a fresh loop per run, on the calling thread; see module doc."""

    tier = "context"
    summary = "fresh contextvars and event loop per run on the calling thread"

    def run_fresh(
        self, call: Call, emit: Emit | None = None, on_task: OnTask | None = None
    ) -> RunResult:
        return self.runtime().run_once(call, contextvars.Context(), emit, on_task)

    async def acall(self, call: Call, events: EventChannel | None = None) -> RunResult:
        loop = asyncio.get_running_loop()
        runtime = self.runtime()
        target = runtime.plan(call)
        scope: set[asyncio.Task[Any]] = set()
        context = contextvars.Context()
        context.run(_run_tasks.set, scope)
        if not _TASKS_KNOW_CONTEXT:
            _TaskTracking.acquire(loop)
        try:
            emit = None if events is None else events.put
            task = context.run(loop.create_task, runtime.run_async(target, call, emit))
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                task.cancel()
                raise
        finally:
            try:
                await self._settle(loop, scope, runtime)
            finally:
                if not _TASKS_KNOW_CONTEXT:
                    _TaskTracking.release(loop)

    @staticmethod
    async def _settle(
        loop: asyncio.AbstractEventLoop, scope: set[asyncio.Task[Any]], runtime: WorkerRuntime
    ) -> None:
        """Report, cancel and await whatever the run left behind, then close its
        checkpointers."""
        left = _leftovers(loop, scope)
        if left:
            report_leftovers(leftovers(left), "the caller's event loop", "; cancelling them")
        await cancel_until_settled(lambda: _leftovers(loop, scope))
        await runtime.aclose()


def _leftovers(loop: asyncio.AbstractEventLoop, scope: set[asyncio.Task[Any]]) -> list[Any]:
    """Pending tasks created inside the run whose scope is ``scope``."""
    if sys.version_info >= (3, 12):  # _TASKS_KNOW_CONTEXT, spelled so type checkers see it
        return [t for t in asyncio.all_tasks(loop) if t.get_context().get(_run_tasks) is scope]
    return [t for t in scope if not t.done()]
