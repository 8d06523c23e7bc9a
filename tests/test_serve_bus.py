"""The Redis bus of ``subiso serve --queue`` on a real Redis: what a subscriber is promised.

A subscription made before an event is published gets it, in order, across bus instances
(servers and workers are separate processes); cancels travel on the run's control channel,
apart from its events; a malformed message is dropped, not fatal; and when the pub/sub
connection drops, every subscription ends with an ``error`` event naming it - a request never
waits forever for an end it missed - and the bus reconnects for later subscriptions.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

pytest.importorskip("redis")

from subiso.serve.bus import CANCEL, DONE
from subiso.serve.redis_bus import RedisBus, channel


async def take(sub: Any) -> list[tuple[str, Any]]:
    return [item async for item in sub]


def test_events_reach_subscribers_of_other_bus_instances(redis_url: str) -> None:
    async def main() -> None:
        server, worker = RedisBus(f"{redis_url}/4"), RedisBus(f"{redis_url}/4")
        await server.open()
        await worker.open()
        try:
            follow = await server.subscribe("r1")
            also = await server.subscribe("r1")
            control = await worker.subscribe("r1", control=True)
            for i in range(50):
                await worker.publish("r1", "values", {"i": i})
            await server.publish("r1", CANCEL, {"action": "interrupt"})
            await worker.publish("r1", DONE, {"status": "success", "output": {}})
            got = await asyncio.wait_for(take(follow), 30)
            assert got == [("values", {"i": i}) for i in range(50)] + [
                (DONE, {"status": "success", "output": {}})
            ]  # the cancel went to the control channel only
            assert await asyncio.wait_for(take(also), 30) == got
            assert await asyncio.wait_for(control.queue.get(), 30) == (
                CANCEL,
                {"action": "interrupt"},
            )
            await control.close()
        finally:
            await server.close()
            await worker.close()

    asyncio.run(main())


def test_a_malformed_message_is_dropped(redis_url: str) -> None:
    async def main() -> None:
        bus = RedisBus(f"{redis_url}/4")
        await bus.open()
        try:
            sub = await bus.subscribe("r2")
            await bus.redis.publish(channel("r2"), b"\xff not json")
            await bus.redis.publish(channel("r2"), b'"just a string"')
            await bus.publish("r2", DONE, {"status": "success"})
            assert await asyncio.wait_for(take(sub), 30) == [(DONE, {"status": "success"})]
        finally:
            await bus.close()

    asyncio.run(main())


def test_a_dropped_connection_ends_every_subscription_and_the_bus_reconnects(
    redis_url: str,
) -> None:
    async def main() -> None:
        bus = RedisBus(f"{redis_url}/4")
        await bus.open()
        try:
            sub = await bus.subscribe("r3")
            await bus.redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            got = await asyncio.wait_for(take(sub), 30)
            assert len(got) == 1 and got[0][0] == "error"
            assert got[0][1]["error"] == "BusDisconnected"
            deadline = time.monotonic() + 30
            while True:  # until the bus has reconnected (it says so: ConnectionError)
                try:
                    again = await bus.subscribe("r3")
                    break
                except ConnectionError:
                    assert time.monotonic() < deadline, "the bus did not reconnect"
                    await asyncio.sleep(0.05)
            await bus.publish("r3", DONE, {"status": "success"})
            assert await asyncio.wait_for(take(again), 30) == [(DONE, {"status": "success"})]
        finally:
            await bus.close()

    asyncio.run(main())
