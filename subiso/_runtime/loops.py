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


def cancel_leftovers(loop: asyncio.AbstractEventLoop, tasks: set[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait for them on ``loop`` (which must not be running)."""
    pending = [t for t in tasks if not t.done()]
    if not pending:
        return
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


def shutdown_loop(
    loop: asyncio.AbstractEventLoop,
    before_close: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Finalise and close a stopped loop: resources, leftover tasks, async gens, thread pool."""
    try:
        if before_close is not None:
            loop.run_until_complete(before_close())
        cancel_leftovers(loop, asyncio.all_tasks(loop))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def run_on_fresh_loop(
    make_coro: Callable[[], Coroutine[Any, Any, T]],
    *,
    context: contextvars.Context | None = None,
    before_close: Callable[[], Awaitable[None]] | None = None,
) -> T:
    """Like ``asyncio.run`` (on every Python we support), in ``context`` if given."""
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        ctx = context if context is not None else contextvars.copy_context()
        task = ctx.run(lambda: loop.create_task(make_coro()))
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
