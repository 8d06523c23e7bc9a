"""InlineExecutor ("inline"): the caller's own thread and loop - the baseline, no isolation.

``run`` from sync code executes on the calling thread (a sync graph with ``invoke``, anything
async on a private loop the executor keeps for that thread); ``arun`` executes on the caller's
running loop (tasks a run leaves pending there are reported, on Python 3.12+: the
contamination alert of :mod:`subiso.observe.loop_health`). Checkpointers are opened per loop and closed by ``close()``. A ``run`` called
where a loop is already running moves to a short-lived helper thread rather than nesting loops.

``close()`` never closes a loop's checkpointers under runs still using them (other threads'
``run``, ``arun``s on a caller's loop): it waits for them (``wait=True``, unless it is called
from that very thread or loop, which cannot wait for itself) and the last of them closes its
loop's resources as it ends. A run that started just before ``close()`` and opened its
resources after it closes them itself.

**An executor never closed does not hold the interpreter at exit.** The loops ``run`` keeps
per calling thread hold checkpointer connections, and an ``aiosqlite`` connection opened from
the main thread runs on a non-daemon thread, which the interpreter joins at exit, before any
``atexit`` handler runs: a script that never closes its executor would never end. So every
open InlineExecutor is closed (``wait=False``) by a hook that runs *before* that join (where
``concurrent.futures`` stops its workers), and an executor garbage-collected unclosed closes
its idle loops' resources then.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import weakref
from collections.abc import AsyncIterator
from typing import Any

from typing_extensions import Unpack

from subiso.events import EventChannel
from subiso.executors.base import SharedOptions
from subiso.executors.in_caller import InCallerExecutor
from subiso.observe.loop_health import CallerLoopWatch
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


class _LoopState:
    """One loop's runtime and the runs using it (counted under the executor's lock)."""

    __slots__ = ("closing", "idle", "in_flight", "loop", "runtime")

    def __init__(self, runtime: WorkerRuntime, loop: asyncio.AbstractEventLoop) -> None:
        self.runtime = runtime
        self.loop = loop
        self.in_flight = 0
        self.closing = False  # close() came while runs were in flight: the last one closes
        self.idle = threading.Event()  # set while no run uses this loop
        self.idle.set()


def _close_thread_loops(thread_loops: list[tuple[threading.Thread, _LoopState]]) -> None:
    """Close the resources of the loops no run uses any more (an executor garbage-collected
    without ``close()``, or at interpreter exit)."""
    for _, state in list(thread_loops):
        if not state.in_flight and not state.loop.is_closed() and not state.loop.is_running():
            state.closing = True
            _off_running_loop(shutdown_loop, state.loop, state.runtime.aclose)


def _off_running_loop(fn: Any, *args: Any) -> None:
    """``fn(*args)`` - which runs a stopped loop to close its resources - here, or on a helper
    thread when this thread's own loop is running (``close()`` called from a coroutine):
    loops cannot nest."""
    call_off_running_loop(lambda: fn(*args))


_open_lock = threading.Lock()
_open: weakref.WeakSet[InlineExecutor] = weakref.WeakSet()
_collected: set[weakref.finalize[Any, Any]] = set()
_exit_hook: list[bool] = []


def _track(executor: InlineExecutor) -> weakref.finalize[Any, Any]:
    """Make sure ``executor`` is closed at interpreter exit (see the module docstring)."""
    finalizer = weakref.finalize(executor, _close_thread_loops, executor._thread_loops)
    finalizer.atexit = False  # ``_close_at_exit`` runs it earlier, before threads are joined
    with _open_lock:
        _open.add(executor)
        _collected.difference_update([f for f in _collected if not f.alive])
        _collected.add(finalizer)
        if not _exit_hook:
            _exit_hook.append(True)
            # threading's exit hooks run before the interpreter joins non-daemon threads
            # (``atexit`` handlers only after); absent or too late: atexit is the fallback
            register = getattr(threading, "_register_atexit", None)
            try:
                if register is None:
                    raise RuntimeError
                register(_close_at_exit)
            except RuntimeError:
                atexit.register(_close_at_exit)
    return finalizer


def _close_at_exit() -> None:
    with _open_lock:
        executors, finalizers = list(_open), list(_collected)
    for executor in executors:
        executor.close(wait=False)
    for finalizer in finalizers:
        finalizer()


class InlineExecutor(InCallerExecutor):
    """Run on the caller's thread (``run``) or the caller's loop (``arun``)."""

    tier = "inline"
    summary = "the caller's thread and loop; no isolation (the baseline)"

    def __init__(self, **shared: Unpack[SharedOptions]) -> None:
        super().__init__(**shared)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._thread_loops: list[tuple[threading.Thread, _LoopState]] = []
        self._caller_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._loop_closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._finalizer = _track(self)

    def call_here(self, call: Call) -> RunResult:
        if running_loop() is not None:
            return call_off_running_loop(lambda: self.run_fresh(call))
        state = self._thread_state()
        runtime, loop = state.runtime, state.loop
        try:
            target = runtime.plan(call)
            if runtime.runs_sync(target, call):
                return runtime.run_sync(target, call, id(loop))
            return run_until_complete(loop, runtime.run_async(target, call))
        finally:
            if self._leave(state):  # closed meanwhile: this thread's loop is done with
                self._local.state = None
                shutdown_loop(loop, runtime.aclose)

    def run_fresh(
        self, call: Call, emit: Emit | None = None, on_task: OnTask | None = None
    ) -> RunResult:
        return self.runtime().run_once(call, emit=emit, on_task=on_task)

    def _thread_state(self) -> _LoopState:
        """This thread's loop and runtime, counted as in use until ``_leave``."""
        state: _LoopState | None = getattr(self._local, "state", None)
        with self._lock:
            if state is None or state.loop.is_closed() or state.closing:
                state = _LoopState(self.runtime(), new_loop())
                self._local.state = state
                if not self._closed:  # else this run closes it itself (``_leave``)
                    self._thread_loops.append((threading.current_thread(), state))
            self._enter_locked(state)
        return state

    def _enter_locked(self, state: _LoopState) -> None:
        state.in_flight += 1
        state.idle.clear()

    def _leave(self, state: _LoopState) -> bool:
        """One run less on ``state``'s loop; True when the caller must now close its
        resources (close() came meanwhile, or before this run opened them)."""
        with self._lock:
            state.in_flight -= 1
            if state.in_flight:
                return False
            state.idle.set()
            if state.closing or self._closed:
                state.closing = True
                return True
            return False

    async def acall(self, call: Call, events: EventChannel | None = None) -> RunResult:
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._caller_loops.get(loop)
            fresh = state is None or state.closing
            if fresh:
                state = _LoopState(self.runtime(), loop)
                if not self._closed:  # else this run closes it itself (``_leave``)
                    self._caller_loops[loop] = state
            assert state is not None
            self._enter_locked(state)
        runtime = state.runtime
        try:
            if fresh:
                # The caller's loop may end (``asyncio.run`` returning) long before this
                # executor closes; its checkpointer connections (and their threads) must not
                # outlive it.
                closer = _close_at_loop_shutdown(runtime)
                await closer.__anext__()
                self._loop_closers[loop] = closer
            emit = None if events is None else events.put
            return await runtime.run_async(runtime.plan(call), call, emit)
        finally:
            CallerLoopWatch.run_ended(loop)  # tasks the run leaves on the caller's loop
            if self._leave(state):
                await runtime.aclose()

    def stop_workers(self, wait: bool, cancel_pending: bool) -> None:
        super().stop_workers(wait, cancel_pending)
        with _open_lock:
            _open.discard(self)
        me, here = threading.current_thread(), running_loop()
        with self._lock:
            thread_loops, self._thread_loops = self._thread_loops, []
            caller_loops = list(self._caller_loops.items())
            self._caller_loops.clear()
            busy = [s for _, s in thread_loops if s.in_flight] + [
                s for _, s in caller_loops if s.in_flight
            ]
            for state in busy:  # their last run closes them (``_leave``)
                state.closing = True
        if wait:  # drain: runs still going on other threads or loops finish first
            for owner, state in thread_loops:
                if state.in_flight and owner is not me:
                    state.idle.wait()
            for loop, state in caller_loops:
                # only a running loop can finish its runs: one closed, or stopped (its runs
                # suspended until someone runs it again, maybe this thread), would never
                # wake us; its last run closes its resources if it ever ends
                if state.in_flight and loop is not here and loop.is_running():
                    state.idle.wait()
        for _, state in thread_loops:
            with self._lock:
                if state.in_flight or state.closing:
                    continue  # its owner closes it
                state.closing = True
            if not state.loop.is_closed():
                _off_running_loop(shutdown_loop, state.loop, state.runtime.aclose)
        for loop, state in caller_loops:
            with self._lock:
                if state.in_flight or state.closing:
                    continue
                state.closing = True
            if loop.is_closed():
                continue
            if loop is here:
                loop.create_task(state.runtime.aclose())
            elif loop.is_running():
                asyncio.run_coroutine_threadsafe(state.runtime.aclose(), loop).result()
            else:
                _off_running_loop(loop.run_until_complete, state.runtime.aclose())
