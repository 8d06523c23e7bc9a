"""The store routes: LangGraph's ``BaseStore`` (the same one the graphs get, opened on the
server's loop through :class:`~subiso.runtime.resources.LoopResources`) over HTTP."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from subiso.serve import schemas as s
from subiso.serve.http import json_response, read_json_body
from subiso.serve.runs import NotFound


async def _body(request: Request, type_: Any, *, allow_empty: bool = False) -> Any:
    return s.parse(await read_json_body(request), type_, allow_empty=allow_empty)


async def _store(request: Request) -> Any:
    return await request.app.state.resources.store(request.app.state.options.store)


def _item(item: Any) -> dict[str, Any]:
    data = {
        "namespace": list(item.namespace),
        "key": item.key,
        "value": item.value,
        "created_at": item.created_at.isoformat(),
        "updated_at": item.updated_at.isoformat(),
    }
    if getattr(item, "score", None) is not None:
        data["score"] = item.score
    return data


def _namespace(parts: list[str], name: str = "namespace") -> tuple[str, ...]:
    for part in parts:
        if not part or "." in part:
            raise s.Invalid(f"{name}: labels must be non-empty and contain no '.', got {part!r}")
    return tuple(parts)


async def put_item(request: Request) -> Response:
    body = await _body(request, s.StorePut)
    if body.ttl is not None:
        raise s.Invalid("ttl: item time-to-live is not implemented; leave it out")
    kwargs = {} if body.index is None else {"index": body.index}
    await (await _store(request)).aput(_namespace(body.namespace), body.key, body.value, **kwargs)
    return Response(status_code=204)


async def get_item(request: Request) -> Response:
    key = request.query_params.get("key")
    namespace = request.query_params.get("namespace")
    if not key:
        raise s.Invalid("key: a query parameter naming the item is required")
    parts = tuple(namespace.split(".")) if namespace else ()
    item = await (await _store(request)).aget(parts, key)
    if item is None:
        raise NotFound(f"item {key!r} not found in namespace {list(parts)}")
    return json_response(_item(item))


async def delete_item(request: Request) -> Response:
    body = await _body(request, s.StoreDelete)
    await (await _store(request)).adelete(_namespace(body.namespace or []), body.key)
    return Response(status_code=204)


async def search_items(request: Request) -> Response:
    body = await _body(request, s.StoreSearch, allow_empty=True)
    items = await (await _store(request)).asearch(
        _namespace(body.namespace_prefix, "namespace_prefix"),
        query=body.query,
        filter=body.filter,
        limit=body.limit,
        offset=body.offset,
    )
    return json_response({"items": [_item(i) for i in items]})


async def list_namespaces(request: Request) -> Response:
    body = await _body(request, s.StoreNamespaces, allow_empty=True)
    found = await (await _store(request)).alist_namespaces(
        prefix=tuple(body.prefix) if body.prefix else None,
        suffix=tuple(body.suffix) if body.suffix else None,
        max_depth=body.max_depth,
        limit=body.limit,
        offset=body.offset,
    )
    return json_response({"namespaces": [list(ns) for ns in found]})


ROUTES = [
    Route("/store/items", put_item, methods=["PUT"]),
    Route("/store/items", get_item, methods=["GET"]),
    Route("/store/items", delete_item, methods=["DELETE"]),
    Route("/store/items/search", search_items, methods=["POST"]),
    Route("/store/namespaces", list_namespaces, methods=["POST"]),
]
