"""How a run's events reach the requests that follow it: :class:`LocalBus` in one server process;
:class:`~subiso.serve.redis_bus.RedisBus` (queue mode) across servers and Celery workers, with
the same methods.

A subscriber is made *before* whatever it follows can finish (a stream subscribes before its
run is queued, a join before it reads the run's status), so nothing is missed. Every run ends
with one ``DONE`` message whose data is ``{"status", "output"}``: the stream turns it into the
client's ``end`` event, ``runs.wait`` and ``runs.join`` answer with its output.

``CANCEL`` is a control message on the same channel (queue mode: a server asks the worker
running the run to stop it); only a subscription made with ``control=True`` - the worker's -
sees it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol

DONE = "__done__"
CANCEL = "__cancel__"
CLOSED = object()


class Bus(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def subscribe(self, run_id: str, *, control: bool = False) -> Subscription: ...

    async def unsubscribe(self, sub: Subscription) -> None: ...

    async def publish(self, run_id: str, event: str, data: Any) -> None: ...


class Subscription:
    """One follower of one run: an async iterator of ``(event, data)`` ending after DONE."""

    def __init__(self, bus: Bus, run_id: str, *, control: bool = False) -> None:
        self.bus = bus
        self.run_id = run_id
        self.control = control
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    async def __aiter__(self) -> AsyncIterator[tuple[str, Any]]:
        while True:
            item = await self.queue.get()
            if item is CLOSED:
                return
            if item[0] == CANCEL and not self.control:
                continue
            yield item
            if item[0] == DONE:
                return

    async def close(self) -> None:
        await self.bus.unsubscribe(self)


class LocalBus:
    """In-process fan-out: each subscription has its own unbounded queue (a run never waits for
    a slow reader; what a reader has not taken yet is what it holds)."""

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        for subs in self._subs.values():
            for sub in subs:
                sub.queue.put_nowait(CLOSED)
        self._subs.clear()

    async def subscribe(self, run_id: str, *, control: bool = False) -> Subscription:
        sub = Subscription(self, run_id, control=control)
        self._subs.setdefault(run_id, set()).add(sub)
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.run_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.run_id]

    async def publish(self, run_id: str, event: str, data: Any) -> None:
        for sub in list(self._subs.get(run_id, ())):
            sub.queue.put_nowait((event, data))
