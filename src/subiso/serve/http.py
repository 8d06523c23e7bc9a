"""What every route shares to read a request and answer it: JSON responses, and request bodies
read under the size limit (``--max-body-size``; past it, :class:`TooLarge`, a 413)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from subiso.serve.encode import dumps


class TooLarge(Exception):
    """HTTP 413."""


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(data), status_code=status, headers=headers, media_type="application/json")


async def read_json_body(request: Request) -> bytes:
    """The request body, refused past ``max_body_bytes`` (413) before it is all read."""
    limit: int = request.app.state.options.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"request body of {declared} bytes is over the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
