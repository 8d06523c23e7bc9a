"""Owning an event loop properly: run coroutines on a fresh loop, and shut a loop down cleanly.

Closing a loop the way ``asyncio.run`` does matters here: leftover tasks that a workflow
spawned and forgot are cancelled and awaited, async generators finalised and the loop's
default thread pool shut down, so a closed executor leaves no tasks or idle threads behind.

Every loop subiso owns uses a :class:`DaemonThreadPool` as its default executor (where LangGraph
runs an ``ainvoke``'s sync nodes): a sync node still running after its run timed out must hang
neither ``close()`` nor interpreter exit, which the stdlib pool's joined threads would.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextvars
import os
import queue
import signal
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from subiso.observe.loop_health import leftovers, report_leftovers, tag_tasks

T = TypeVar("T")


class DaemonThreadPool(cf.ThreadPoolExecutor):
    """ThreadPoolExecutor's job with daemon threads that nothing waits for while they run.

    (A subclass because ``loop.set_default_executor`` takes ThreadPoolExecutors only; its
    ``submit`` and ``shutdown`` are this class's own, its parent's threads are never made.)

    ``shutdown(wait=True)`` joins the idle threads only: a thread still busy runs work that no
    run awaits any more (a sync node whose run timed out and was cancelled), and finishes it on
    its own. Neither ``close()`` nor interpreter exit waits for it.
    """

    def __init__(self, max_workers: int | None = None, name: str = "subiso-sync") -> None:
        super().__init__(max_workers=1)
        self._max = max_workers or min(32, (os.cpu_count() or 1) + 4)
        self._name = name
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pool_lock = threading.Lock()
        self._busy: dict[threading.Thread, bool] = {}
        self._idle = 0
        self._closed = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> cf.Future[T]:
        future: cf.Future[T] = cf.Future()
        with self._pool_lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._work.put((future, fn, args, kwargs))
            if self._idle:
                self._idle -= 1  # an idle thread takes it
            elif len(self._busy) < self._max:
                thread = threading.Thread(
                    target=self._serve, name=f"{self._name}-{len(self._busy)}", daemon=True
                )
                self._busy[thread] = True
                thread.start()
        return future

    def _serve(self) -> None:
        me = threading.current_thread()
        while True:
            item = self._work.get()
            if item is None:
                return
            future, fn, args, kwargs = item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del item, future, fn, args, kwargs
            with self._pool_lock:
                self._busy[me] = False
                self._idle += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._pool_lock:
            self._closed = True
            threads = list(self._busy.items())
        for _ in threads:
            self._work.put(None)
        if wait:
            for thread, busy in threads:
                if not busy and thread is not threading.current_thread():
                    thread.join()


#: The DaemonThreadPool of each loop ``new_loop`` made, shut down by ``shutdown_loop`` itself:
#: asyncio's ``shutdown_default_executor`` starts a thread to do it, a cost every fresh loop
#: (the context tier's, one per run) would pay even when its pool never ran anything.
_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, DaemonThreadPool] = (
    weakref.WeakKeyDictionary()
)


def new_loop() -> asyncio.AbstractEventLoop:
    """A new event loop with a :class:`DaemonThreadPool` as its default executor (and, before
    Python 3.12, a task factory that tells which run created each task)."""
    loop = asyncio.new_event_loop()
    pool = _POOLS[loop] = DaemonThreadPool()
    loop.set_default_executor(pool)
    tag_tasks(loop)
    return loop


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The loop running in this thread, or None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def cancel_until_settled(find: Callable[[], list[asyncio.Task[Any]]]) -> None:
    """Cancel the tasks ``find`` returns and await them, again until it returns none (a task
    may spawn another while it is being cancelled)."""
    while pending := find():
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def _finalise(
    loop: asyncio.AbstractEventLoop, before_close: Callable[[], Awaitable[None]] | None
) -> None:
    """One pass on the loop: close resources, cancel leftover tasks, finalise, join the pool."""
    try:
        if before_close is not None:
            await before_close()
    finally:
        current = asyncio.current_task()
        left = leftovers(t for t in asyncio.all_tasks(loop) if t is not current)
        report_leftovers(left, "a loop being closed", "; cancelling them")
        await cancel_until_settled(lambda: [t for t in asyncio.all_tasks(loop) if t is not current])
        await loop.shutdown_asyncgens()
        pool = _POOLS.pop(loop, None)
        if pool is None:
            await loop.shutdown_default_executor()
        else:
            pool.shutdown(wait=True)  # joins idle threads only: quick, never blocks on work


#: What a node may raise that asyncio lets escape from the loop itself.
_ENDING = (SystemExit, KeyboardInterrupt)


def run_until_complete(
    loop: asyncio.AbstractEventLoop,
    awaitable: Awaitable[T],
    *,
    resume: bool | None = None,
) -> T:
    """``loop.run_until_complete(awaitable)``, carried on past a ``SystemExit`` or
    ``KeyboardInterrupt`` that another task of the loop raised.

    asyncio re-raises those two out of ``run_until_complete`` from whichever task raised them
    (after storing the exception on that task): a LangGraph node raising ``sys.exit()`` runs in
    a task of its own, so the loop would stop under every run on it - a thread worker's loop
    dies with all its runs, a fresh loop's caller gets a raw ``SystemExit``. The task that
    raised it still holds it, and the run awaiting that task receives it when the loop goes on
    (``WorkerRuntime.run_async`` turns it into ``RunAborted``), so the loop goes on. Only when
    ``awaitable`` itself ended with it is it raised here.

    A ``KeyboardInterrupt`` can also be a real Ctrl-C, delivered to the main thread: it is
    raised as it comes unless ``resume`` is True or the signal cannot reach this code (another
    thread, or SIGINT not handled by Python's default handler).
    """
    future = asyncio.ensure_future(awaitable, loop=loop)
    while True:
        try:
            return loop.run_until_complete(future)
        except _ENDING as exc:
            if future.done() or not _from_a_task(exc, resume):
                raise


def _from_a_task(exc: BaseException, resume: bool | None) -> bool:
    if resume is not None:
        return resume
    if isinstance(exc, SystemExit) or threading.current_thread() is not threading.main_thread():
        return True
    return signal.getsignal(signal.SIGINT) is not signal.default_int_handler


def shutdown_loop(
    loop: asyncio.AbstractEventLoop,
    before_close: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Finalise and close a stopped loop: resources, leftover tasks, async gens, thread pool.

    Done in a single ``run_until_complete`` (each turn of a loop costs; a fresh loop per run
    pays this on every run).
    """
    try:
        run_until_complete(loop, _finalise(loop, before_close))
    finally:
        loop.close()


def run_on_fresh_loop(
    make_coro: Callable[[], Coroutine[Any, Any, T]],
    *,
    context: contextvars.Context | None = None,
    before_close: Callable[[], Awaitable[None]] | None = None,
    on_task: Callable[[asyncio.AbstractEventLoop, asyncio.Task[T]], None] | None = None,
) -> T:
    """Like ``asyncio.run`` (on every Python we support), in ``context`` if given;
    ``on_task(loop, task)`` is told the main task before it starts (to cancel it from afar)."""
    loop = new_loop()
    try:
        asyncio.set_event_loop(loop)
        ctx = context if context is not None else contextvars.copy_context()
        task = ctx.run(lambda: loop.create_task(make_coro()))
        if on_task is not None:
            on_task(loop, task)
        return run_until_complete(loop, task)
    finally:
        try:
            shutdown_loop(loop, before_close)
        finally:
            asyncio.set_event_loop(None)


def call_off_running_loop(fn: Callable[[], T]) -> T:
    """Call ``fn`` here, or on a short-lived helper thread when this thread's loop is running.

    A sync API called from inside a running loop (a notebook cell, an async Celery worker)
    must never start or nest a loop on that thread; the helper thread has no loop running.
    """
    if running_loop() is None:
        return fn()
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:
            outcome.append((False, exc))

    helper = threading.Thread(target=target, name="subiso-offloop", daemon=True)
    helper.start()
    helper.join()
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value
