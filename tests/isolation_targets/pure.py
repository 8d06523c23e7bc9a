"""Pure-Python targets that load in an isolated subinterpreter (stdlib + subiso.offload only)."""

from __future__ import annotations

import asyncio
import sys

from subiso import offload

_cancelled: list[str] = []


class TargetError(Exception):
    """Raised on purpose so tests can check type, message and traceback text survive."""


def interp_id() -> int:
    """Id of the interpreter running this call (0 is the host's main interpreter)."""
    import _interpreters

    return int(_interpreters.get_current()[0])


def trivial(x: object = None) -> object:
    return x


def add(a: int, b: int) -> tuple[int, int]:
    return a + b, interp_id()


async def async_add(a: int, b: int) -> tuple[int, int]:
    await asyncio.sleep(0)
    return a + b, interp_id()


async def loop_identity() -> tuple[int, int]:
    """``id()`` of the running loop and the interpreter: equal across calls = persistent loop."""
    return id(asyncio.get_running_loop()), interp_id()


async def wait_forever(label: str) -> str:
    """Never finishes on its own; records its cancellation so a test can see it happened."""
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        _cancelled.append(label)
        raise
    return label


def cancelled_labels() -> list[str]:
    return list(_cancelled)


def boom(message: str) -> None:
    raise TargetError(message)


def returns_object() -> object:
    return object()


def cpu(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


@offload
def offloaded_double(x: int) -> tuple[int, int]:
    return 2 * x, interp_id()


def _queue(qid: int):  # type: ignore[no-untyped-def]
    if sys.version_info >= (3, 14):
        from concurrent.interpreters._queues import Queue
    else:
        from interpreters_backport.interpreters.queues import Queue
    return Queue(qid)


def rendezvous(name: str, inbox: int, outbox: int, n: int) -> tuple[str, int, int]:
    """CPU work, then meet the peer task (each waits for the other's message), then more work.

    Both tasks can only pass the meeting point if they are in flight at the same time, so a
    pool that ran them one after another would fail with ``QueueEmpty`` instead of deadlocking.
    """
    first = cpu(n)
    _queue(outbox).put(name)
    peer = _queue(inbox).get(timeout=60)
    return peer, first + cpu(n), interp_id()


def block_until_message(inbox: int, started: int | None = None) -> str:
    """A sync call that cannot be cancelled inside the interpreter: waits for a queue item.

    With ``started`` it first announces on that queue that it is running.
    """
    if started is not None:
        _queue(started).put("started")
    return str(_queue(inbox).get(timeout=60))
