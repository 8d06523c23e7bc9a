"""EventChannel: a run's events on their way from its worker to the caller, bounded.

The producer is the run's worker: ``await channel.put(event)`` on the worker's event loop
(waits while the channel is full - that wait is the back-pressure that keeps a slow consumer
from buffering a whole run), or ``put_nowait`` from a thread that must never block (the process
tier's reply reader; it bounds the flow by credits instead, see ``on_taken``). The consumer is
the caller: a plain iterator (``for event in channel``) or an async one (``async for``), on any
thread or loop. ``close()`` ends the stream once the run is over; ``abandon()`` is the consumer
leaving early: further events are dropped and a waiting producer is released.

Thread-safe, and loop-aware on both ends without polling: an async side waiting for room or
for an event parks on a future of its own loop, which the other side resolves through
``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from subiso.errors import SubisoError


class EventsAbandoned(SubisoError):
    """Raised in a run whose events nobody reads any more (its stream was left early): it
    ends the run at its next event, where no other way to cancel it reaches."""


#: Events buffered per run before its producer waits.
DEFAULT_WINDOW = 64


class EventChannel:
    """A bounded, thread- and loop-safe queue of one run's events; see the module docstring."""

    def __init__(self, maxsize: int = DEFAULT_WINDOW) -> None:
        self.maxsize = maxsize
        #: Called with 1 (outside the lock) each time the consumer takes an event.
        self.on_taken: Callable[[int], None] | None = None
        self._items: deque[Any] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._abandoned = False
        self._parked: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    # -- producer ----------------------------------------------------------------------------
    async def put(self, event: Any) -> None:
        """Add ``event``, waiting (on the running loop) while the channel is full."""
        while True:
            with self._cond:
                if self._abandoned:
                    raise EventsAbandoned("the caller stopped reading this run's events")
                if self._closed:
                    return
                if len(self._items) < self.maxsize:
                    self._items.append(event)
                    self._changed()
                    return
                waiter = self._park()
            await waiter

    def put_nowait(self, event: Any) -> None:
        """Add ``event`` now, whatever the size (the caller bounds the flow another way)."""
        with self._cond:
            if not (self._abandoned or self._closed):
                self._items.append(event)
                self._changed()

    def close(self) -> None:
        """No more events: consumers finish once they have taken the buffered ones."""
        with self._cond:
            self._closed = True
            self._changed()

    # -- consumer ----------------------------------------------------------------------------
    def get(self) -> Any:
        """The next event, blocking; raises ``EOFError`` once closed and drained."""
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            event = self._take()
        self._taken()
        return event

    async def aget(self) -> Any:
        """The next event, awaited on the running loop; ``EOFError`` once closed and drained."""
        while True:
            with self._cond:
                if self._items or self._closed:
                    event = self._take()
                    break
                waiter = self._park()
            await waiter
        self._taken()
        return event

    def abandon(self) -> None:
        """The consumer leaves: drop what is buffered and everything still to come."""
        with self._cond:
            self._abandoned = True
            self._items.clear()
            self._changed()

    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                yield self.get()
            except EOFError:
                return

    async def __aiter__(self) -> AsyncIterator[Any]:
        while True:
            try:
                yield await self.aget()
            except EOFError:
                return

    # -- internals (under the lock) ----------------------------------------------------------
    def _take(self) -> Any:
        if not self._items:
            raise EOFError("the run's events ended")
        event = self._items.popleft()
        self._changed()  # room for a waiting producer
        return event

    def _taken(self) -> None:
        if self.on_taken is not None:
            self.on_taken(1)

    def _park(self) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._parked.append((loop, waiter))
        return waiter

    def _changed(self) -> None:
        self._cond.notify_all()
        parked, self._parked = self._parked, []
        for loop, waiter in parked:
            try:
                loop.call_soon_threadsafe(_wake, waiter)
            except RuntimeError:  # that loop is closed: nobody waits there any more
                pass


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
