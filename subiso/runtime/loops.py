"""Owning an event loop properly: run coroutines on a fresh loop, and shut a loop down cleanly.

Closing a loop the way ``asyncio.run`` does matters here: leftover tasks that a workflow
spawned and forgot are cancelled and awaited, async generators finalised and the loop's
default thread pool joined, so a closed executor leaves no tasks or threads behind.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


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
        await cancel_until_settled(lambda: [t for t in asyncio.all_tasks(loop) if t is not current])
        await loop.shutdown_asyncgens()
        await loop.shutdown_default_executor()


def shutdown_loop(
    loop: asyncio.AbstractEventLoop,
    before_close: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Finalise and close a stopped loop: resources, leftover tasks, async gens, thread pool.

    Done in a single ``run_until_complete`` (each turn of a loop costs; a fresh loop per run
    pays this on every run).
    """
    try:
        loop.run_until_complete(_finalise(loop, before_close))
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
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        ctx = context if context is not None else contextvars.copy_context()
        task = ctx.run(lambda: loop.create_task(make_coro()))
        if on_task is not None:
            on_task(loop, task)
        return loop.run_until_complete(task)
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
