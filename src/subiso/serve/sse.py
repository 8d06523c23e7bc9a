"""Server-Sent Events exactly as ``langgraph_sdk``'s decoder reads them, and the ASGI response
that writes them while watching for the client to leave.

One event per chunk: ``event: <mode>[|<namespace>...]``, ``data: <json>`` and a blank line,
lines ended by CRLF as LangGraph's server ends them. A comment line (``: heartbeat``) every
few seconds keeps proxies from closing a quiet stream and is how a stream notices a client
that left while the run produces nothing.

:class:`EventStreamResponse` runs the body and a watcher of ``receive()`` side by side (an
anyio task group): when the client disconnects, the body is cancelled and ``on_disconnect``
is called - the run manager then cancels the run unless the request said
``on_disconnect=continue``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import anyio

from subiso.serve.encode import dumps

HEARTBEAT_S = 5.0
_CRLF = b"\r\n"


def frame(event: str, data: Any) -> bytes:
    """One SSE event: ``event``'s name (CR/LF removed) and ``data`` as one line of JSON."""
    name = event.replace("\r", "").replace("\n", "").encode()
    return b"event: " + name + _CRLF + b"data: " + dumps(data) + _CRLF + _CRLF


HEARTBEAT = b": heartbeat" + _CRLF + _CRLF


class EventStreamResponse:
    """An ASGI response streaming ``body``'s chunks (``text/event-stream`` by default; the
    long-polling JSON answers of ``runs.wait`` use it too, with a newline as heartbeat, which
    JSON parsers skip as leading whitespace)."""

    def __init__(
        self,
        body: AsyncIterator[bytes],
        *,
        headers: Mapping[str, str] | None = None,
        on_disconnect: Callable[[], Awaitable[None]] | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        media_type: str = "text/event-stream; charset=utf-8",
        heartbeat: bytes = HEARTBEAT,
    ) -> None:
        self.body = body
        self.headers = dict(headers or {})
        self.on_disconnect = on_disconnect
        self.heartbeat_s = heartbeat_s
        self.media_type = media_type
        self.heartbeat = heartbeat

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        raw_headers = [
            (b"content-type", self.media_type.encode()),
            (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"no"),
            *((k.lower().encode(), v.encode()) for k, v in self.headers.items()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": raw_headers})
        disconnected = False
        lock = anyio.Lock()

        async def write(chunk: bytes) -> None:
            async with lock:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                nonlocal disconnected
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        disconnected = True
                        tg.cancel_scope.cancel()
                        return

            async def beat() -> None:
                while True:
                    await anyio.sleep(self.heartbeat_s)
                    await write(self.heartbeat)

            async def stream() -> None:
                nonlocal disconnected
                try:
                    async for chunk in self.body:
                        await write(chunk)
                except OSError:  # the transport went away under a send
                    disconnected = True
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            tg.start_soon(beat)
            tg.start_soon(stream)
        aclose = getattr(self.body, "aclose", None)
        if aclose is not None:
            with anyio.CancelScope(shield=True):
                await aclose()
        if disconnected:
            if self.on_disconnect is not None:
                with anyio.CancelScope(shield=True):
                    await self.on_disconnect()
            return
        try:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass
