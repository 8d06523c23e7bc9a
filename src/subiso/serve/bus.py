"""How a run's events reach the requests that follow it, in one server process; a bus across
servers (Redis pub/sub) would implement the same four methods.

A subscriber is made *before* whatever it follows can finish (a stream subscribes before its
run is queued, a join before it reads the run's status), so nothing is missed. Every run ends
with one ``DONE`` message whose data is ``{"status", "output"}``: the stream turns it into the
client's ``end`` event, ``runs.wait`` and ``runs.join`` answer with its output.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

DONE = "__done__"
_CLOSED = object()


class Subscription:
    """One follower of one run: an async iterator of ``(event, data)`` ending after DONE."""

    def __init__(self, bus: LocalBus, run_id: str) -> None:
        self.bus = bus
        self.run_id = run_id
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    async def __aiter__(self) -> AsyncIterator[tuple[str, Any]]:
        while True:
            item = await self.queue.get()
            if item is _CLOSED:
                return
            yield item
            if item[0] == DONE:
                return

    async def close(self) -> None:
        self.bus.unsubscribe(self)


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
                sub.queue.put_nowait(_CLOSED)
        self._subs.clear()

    async def subscribe(self, run_id: str) -> Subscription:
        sub = Subscription(self, run_id)
        self._subs.setdefault(run_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.run_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.run_id]

    async def publish(self, run_id: str, event: str, data: Any) -> None:
        for sub in list(self._subs.get(run_id, ())):
            sub.queue.put_nowait((event, data))
