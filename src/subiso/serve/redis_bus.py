"""Run events across processes and machines (queue mode): Redis pub/sub, one channel per run.

The servers subscribe for the requests following a run; the Celery worker running it
publishes its events there. A server's ``CANCEL`` goes to the run's control channel, which
only the worker running it follows (``subscribe(run_id, control=True)``). Every message is
``[event, data]`` as JSON (the Agent Server's encoding, :func:`subiso.serve.encode.dumps`,
applied where the chunk is made).

One pub/sub connection per process carries every channel, read by one task that hands each
message to the local subscriptions of its channel. :meth:`RedisBus.subscribe` returns once
Redis has confirmed the subscription, so - as with :class:`~subiso.serve.bus.LocalBus` - a
subscriber made before its run can end sees the run's ``DONE``: Redis delivers a message to
every connection subscribed when it processes the ``PUBLISH``.

Pub/sub keeps nothing: a message published while a connection is down is lost to it. So the
pub/sub connection does not retry behind the bus's back: when it drops, every open
subscription gets an ``error`` event naming the cause and ends (its request answers rather
than waits forever for an end it may have missed), and the bus reconnects for later ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

import msgspec

from subiso.serve.bus import CANCEL, CLOSED, Subscription
from subiso.serve.encode import dumps, loads

log = logging.getLogger("subiso.serve")

CHANNEL = "subiso:run:"
#: Always subscribed, so that the reader always has a subscription to block on.
HOME = "subiso:bus"
CONFIRM_TIMEOUT_S = 30.0
RECONNECT_S = 1.0


def channel(run_id: str, control: bool = False) -> str:
    return CHANNEL + run_id + (":control" if control else "")


class RedisBus:
    """See the module docstring; ``redis`` is the client for commands (publish, keys), which
    retries as redis-py does by default."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.redis: Any = None
        self._listener: Any = None  # the pub/sub connection's client: no retries
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._subs: dict[str, set[Subscription]] = {}
        #: per channel, the subscriptions waiting for Redis's confirmation, in order sent
        self._confirms: dict[str, deque[asyncio.Future[None]]] = {}

    async def open(self) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.redis = aioredis.Redis.from_url(self.url)
        self._listener = aioredis.Redis.from_url(self.url, retry=Retry(NoBackoff(), 0))
        self._pubsub = self._listener.pubsub()
        confirmed = self._expect(HOME)
        await self._pubsub.subscribe(HOME)  # connects, so the reader has a connection
        self._reader = asyncio.ensure_future(self._read())
        await asyncio.wait_for(confirmed, CONFIRM_TIMEOUT_S)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
            self._reader = None
        self._end_all(None)
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        for client in (self._listener, self.redis):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def subscribe(self, run_id: str, *, control: bool = False) -> Subscription:
        name = channel(run_id, control)
        sub = Subscription(self, run_id, control=control)
        subs = self._subs.setdefault(name, set())
        first = not subs
        subs.add(sub)
        if first:
            if self._pubsub is None:
                await self.unsubscribe(sub)
                raise ConnectionError("the Redis bus is reconnecting; try again")
            confirmed = self._expect(name)
            try:
                await self._pubsub.subscribe(name)
            except BaseException:  # not sent: no confirmation will come for it
                waiting = self._confirms.get(name)
                if waiting is not None and confirmed in waiting:
                    waiting.remove(confirmed)
                    if not waiting:
                        del self._confirms[name]
                await self.unsubscribe(sub)
                raise
            try:  # (sent: a late confirmation finds its future done, and is dropped)
                await asyncio.wait_for(confirmed, CONFIRM_TIMEOUT_S)
            except BaseException:
                await self.unsubscribe(sub)
                raise
        else:  # the channel's first subscriber may still wait for its confirmation
            waiting = self._confirms.get(name)
            if waiting:
                await asyncio.shield(waiting[-1])
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        name = channel(sub.run_id, sub.control)
        subs = self._subs.get(name)
        if subs is None or sub not in subs:
            return
        subs.discard(sub)
        if not subs:
            del self._subs[name]
            if self._pubsub is not None:
                with contextlib.suppress(Exception):  # a lost connection took it already
                    await self._pubsub.unsubscribe(name)

    async def publish(self, run_id: str, event: str, data: Any) -> None:
        await self.redis.publish(channel(run_id, event == CANCEL), dumps([event, data]))

    # -- reading ---------------------------------------------------------------------------------
    def _expect(self, name: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirms.setdefault(name, deque()).append(future)
        return future

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("subiso serve: the Redis bus lost its connection: %s", exc)
                self._end_all(exc)
                await self._reconnect()
                continue
            if message is not None:
                self._dispatch(message)

    async def _reconnect(self) -> None:
        """A fresh pub/sub connection (the old one's channels went with it)."""
        old, self._pubsub = self._pubsub, None
        with contextlib.suppress(Exception):
            await old.aclose()
        while True:
            pubsub = self._listener.pubsub()
            try:
                self._expect(HOME)  # confirmed to the reader, which waits for nothing else
                await pubsub.subscribe(HOME)
            except Exception as exc:
                self._confirms.pop(HOME, None)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                log.warning("subiso serve: Redis bus: reconnecting failed: %s", exc)
                await asyncio.sleep(RECONNECT_S)
                continue
            self._pubsub = pubsub
            log.info("subiso serve: the Redis bus is connected again")
            return

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        name = message["channel"]
        name = name.decode() if isinstance(name, bytes) else str(name)
        if kind == "message":
            try:
                event, data = loads(message["data"])
            except (msgspec.DecodeError, TypeError, ValueError):
                log.warning("subiso serve: Redis bus: ignored a malformed message on %s", name)
                return
            for sub in list(self._subs.get(name, ())):
                sub.queue.put_nowait((event, data))
        elif kind == "subscribe":
            waiting = self._confirms.get(name)
            if waiting:
                future = waiting.popleft()
                if not waiting:
                    del self._confirms[name]
                if not future.done():
                    future.set_result(None)

    def _end_all(self, exc: BaseException | None) -> None:
        """End every subscription: the events they follow may be lost."""
        for name, subs in list(self._subs.items()):
            for sub in subs:
                if exc is not None:
                    error = {"error": "BusDisconnected", "message": f"Redis: {exc}"}
                    sub.queue.put_nowait(("error", error))
                sub.queue.put_nowait(CLOSED)
            del self._subs[name]
        for waiting in self._confirms.values():
            for future in waiting:
                if not future.done() and exc is not None:
                    future.set_exception(ConnectionError(f"Redis: {exc}"))
        if exc is not None:
            self._confirms.clear()
