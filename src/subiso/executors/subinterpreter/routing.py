"""Hybrid mode's offload route: hands every ``@subiso.offload`` call to the interpreter pool.

SubinterpreterExecutor's hybrid workers set :data:`subiso.executors.subinterpreter.offload.current_route` to a
:class:`PoolRoute`, so a decorated node function, instead of running in place, becomes one
:class:`~subiso.executors.subinterpreter.CallSpec` for the :class:`~subiso.executors.subinterpreter.InterpreterPool`:

* ``call`` (sync nodes) blocks the calling thread on the pool's future. LangGraph runs sync
  nodes on executor threads (or, on the sync fast path, on the worker thread itself), so
  blocking there is what lets the worker's loop, and other runs, go on meanwhile.
* ``acall`` (async nodes) awaits the same future through ``asyncio.wrap_future``: the worker
  loop keeps serving other runs while the interpreter computes, and cancelling the run cancels
  the call while it is still queued.

How a function reaches an interpreter is decided once per function by
:func:`subiso.executors.subinterpreter.resolve_offload` (import its module there, or ship its code). When it
cannot (:class:`~subiso.errors.NotIsolatable`), ``@offload`` re-raises, while
``@offload(strict=False)`` runs the function in place; that is logged once per function and
written into the run's ``RunReport.reason``, so it never happens silently.

A run's remaining time travels with each offloaded call (:class:`RunState`), so an
offloaded coroutine is cancelled inside its interpreter when the run's timeout passes, and the
pool releases a caller stuck on a sync call at the same deadline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from subiso.errors import NotIsolatable, RunTimeout
from subiso.executors.subinterpreter.interp_side import unwrap_offload
from subiso.executors.subinterpreter.offload_plans import OffloadPlan, resolve_offload
from subiso.executors.subinterpreter.pool import CallSpec, InterpreterFuture, InterpreterPool
from subiso.report import Offloaded

log = logging.getLogger("subiso.offload")


class RunState:
    """What one hybrid run shares with the offloaded calls it makes (through a ContextVar).

    ``deadline`` is a ``time.monotonic()`` instant or None; ``in_place`` collects
    ``"module:qualname (reason)"`` of ``strict=False`` functions that ran on the host.
    Runs execute in their own copied context and LangGraph copies it into node threads and
    tasks, so every node of a run sees the same object and no other run's.
    """

    __slots__ = ("calls", "deadline", "in_place", "interp_s", "interpreter_ids", "lock", "wall_s")

    def __init__(self, timeout: float | None = None) -> None:
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.in_place: list[str] = []
        self.lock = threading.Lock()  # a run's nodes offload from several threads at once
        self.calls = 0
        self.interpreter_ids: set[int] = set()
        self.interp_s = 0.0
        self.wall_s = 0.0

    def record(self, future: InterpreterFuture, sent_at: float) -> None:
        """Count one finished offloaded call (for ``RunReport.offloaded``)."""
        done = time.perf_counter()
        started = future.started_at or sent_at
        inside = max(0.0, (future.finished_at or done) - started)
        with self.lock:
            self.calls += 1
            if future.interpreter_id is not None:
                self.interpreter_ids.add(future.interpreter_id)
            self.interp_s += inside
            self.wall_s += done - sent_at

    def summary(self) -> Offloaded | None:
        if not self.calls:
            return None
        return Offloaded(
            calls=self.calls,
            interpreter_ids=tuple(sorted(self.interpreter_ids)),
            interp_s=self.interp_s,
            transfer_s=max(0.0, self.wall_s - self.interp_s),
        )

    def remaining(self, ref: str) -> float | None:
        """Seconds left for an offloaded call; RunTimeout when the run is already out of time."""
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise RunTimeout(f"offloaded call {ref} started after its run's timeout passed")
        return left

    def note_in_place(self, entry: str) -> None:
        if entry not in self.in_place:
            self.in_place.append(entry)


current_run: ContextVar[RunState | None] = ContextVar("subiso_hybrid_run", default=None)


def describe_in_place(notes: list[str]) -> str:
    """The suffix hybrid reports append to ``reason`` for in-place offloads."""
    return "offload(strict=False) ran in place: " + "; ".join(notes)


class PoolRoute:
    """An :class:`subiso.executors.subinterpreter.offload.OffloadRoute` sending calls to an :class:`InterpreterPool`.

    ``pool`` is a future because the executor starts its interpreters in the background at
    construction; the first offloaded call waits for them (without blocking a loop in
    ``acall``). Per function it caches either the pool plan or, for ``strict=False``
    functions that cannot be isolated, the reason they run in place.
    """

    def __init__(self, pool: cf.Future[InterpreterPool]) -> None:
        self._pool_future = pool
        self._pool: InterpreterPool | None = None
        self._in_place: dict[Callable[..., Any], str] = {}
        self._lock = threading.Lock()

    # -- OffloadRoute ---------------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run ``fn`` in an interpreter and wait for its result on this thread."""
        spec = self._spec(fn, args, kwargs)
        if spec is None:
            return unwrap_offload(fn)(*args, **kwargs)
        pool = self._pool or self._wait_pool()
        sent_at = time.perf_counter()
        future = pool.submit(spec)
        try:
            return future.result()
        finally:
            _record(future, sent_at)

    async def acall(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Run ``fn`` in an interpreter; awaits without blocking the worker's loop."""
        spec = self._spec(fn, args, kwargs)
        if spec is None:
            return await unwrap_offload(fn)(*args, **kwargs)
        pool = self._pool
        if pool is None:
            # shield: a cancelled run must not cancel the pool start every run shares
            pool = await asyncio.shield(asyncio.wrap_future(self._pool_future))
            self._pool = pool
        sent_at = time.perf_counter()
        future = pool.submit(spec)
        try:
            return await asyncio.wrap_future(future)
        finally:
            _record(future, sent_at)

    # -- helpers ---------------------------------------------------------------------------------
    def _wait_pool(self) -> InterpreterPool:
        self._pool = self._pool_future.result()
        return self._pool

    def _spec(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> CallSpec | None:
        """The pool call for ``fn``, or None when it runs in place (strict=False, reported)."""
        state = current_run.get()
        reason = self._in_place.get(fn)
        if reason is None:
            try:
                plan: OffloadPlan = resolve_offload(fn)
            except NotIsolatable as exc:
                if _is_strict(fn):
                    raise
                reason = self._remember_in_place(fn, exc)
            else:
                timeout = None if state is None else state.remaining(plan.ref)
                return CallSpec(plan, args, kwargs, timeout)
        if state is not None:
            state.note_in_place(reason)
        return None

    def _remember_in_place(self, fn: Callable[..., Any], exc: NotIsolatable) -> str:
        inner = unwrap_offload(fn)
        ref = f"{getattr(inner, '__module__', '?')}:{getattr(inner, '__qualname__', repr(inner))}"
        entry = f"{ref} ({exc})"
        with self._lock:
            first = fn not in self._in_place
            self._in_place[fn] = entry
        if first:
            log.warning("@offload(strict=False) %s runs in place on the host: %s", ref, exc)
        return entry


def _record(future: InterpreterFuture, sent_at: float) -> None:
    state = current_run.get()
    if state is not None and future.done() and not future.cancelled():
        state.record(future, sent_at)


def _is_strict(fn: Callable[..., Any]) -> bool:
    options = getattr(fn, "__subiso_offload__", None)
    return not isinstance(options, dict) or bool(options.get("strict", True))
