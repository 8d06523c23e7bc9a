"""The routes of the Agent Server API that ``langgraph_sdk`` and ``RemoteGraph`` call.

Each handler validates its input (:mod:`subiso.serve.schemas`), asks the rows, the run manager
or - for a thread's state - the executor of the chosen tier, and answers in the API's shapes.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from subiso import __version__
from subiso.errors import ConfigError
from subiso.observe.metrics import prometheus_lines
from subiso.observe.trace import from_headers
from subiso.serve import schemas as s
from subiso.serve import store_routes
from subiso.serve.bus import DONE
from subiso.serve.encode import checkpoint_of, thread_state
from subiso.serve.http import TooLarge, json_response, read_json_body
from subiso.serve.runs import Busy, NotFound, RunManager, Unavailable, new_run_id
from subiso.serve.sse import EventStreamResponse, frame
from subiso.serve.store import Conflict, Rows

log = logging.getLogger("subiso.serve")

#: What a handler answers: a plain response, or a stream that watches its client.
Reply = Response | EventStreamResponse


def _manager(request: Request) -> RunManager:
    manager: RunManager = request.app.state.manager
    return manager


def _rows(request: Request) -> Rows:
    rows: Rows = request.app.state.rows
    return rows


async def _body(request: Request, type_: Any, *, allow_empty: bool = False) -> Any:
    return s.parse(await read_json_body(request), type_, allow_empty=allow_empty)


def _int_param(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    if not value.isdigit():
        raise s.Invalid(f"{name}: expected a non-negative integer, got {value!r}")
    return int(value)


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() in ("1", "true", "yes")


# -- meta ----------------------------------------------------------------------------------------
async def ok(request: Request) -> Response:
    return json_response({"ok": True})


async def info(request: Request) -> Response:
    import langgraph.version

    manager = _manager(request)
    executor = request.app.state.executor
    return json_response(
        {
            "version": __version__,
            "server": "subiso serve",
            "langgraph_py_version": langgraph.version.__version__,
            "python": platform.python_version(),
            "tier": "celery" if manager.queue is not None else getattr(executor, "tier", None),
            "flags": {"assistants": True, "crons": False, "langsmith": False},
            "graphs": sorted(manager.graphs.targets),
            "runs": {**await _rows(request).run_counts(), **manager.counts()},
            "executor": None if executor is None else msgspec.to_builtins(executor.stats()),
        }
    )


async def metrics(request: Request) -> Response:
    counts = await _rows(request).run_counts()
    lines = ["# HELP subiso_serve_runs Runs by status.", "# TYPE subiso_serve_runs gauge"]
    for status in ("pending", "running", "success", "error", "timeout", "interrupted"):
        lines.append(f'subiso_serve_runs{{status="{status}"}} {counts.get(status, 0)}')
    running_here = _manager(request).counts()["running_here"]
    lines += [
        "# TYPE subiso_serve_runs_supervised gauge",
        f"subiso_serve_runs_supervised {running_here}",
    ]
    executor = request.app.state.executor
    if executor is not None:
        lines += prometheus_lines(executor.stats())
    return PlainTextResponse("\n".join(lines) + "\n")


# -- assistants ----------------------------------------------------------------------------------
async def _assistant(request: Request) -> dict[str, Any]:
    assistant_id = request.path_params["assistant_id"]
    for assistant in await _rows(request).assistants():
        if assistant["assistant_id"] == assistant_id:
            return assistant
    raise NotFound(f"assistant {assistant_id!r} not found")


async def search_assistants(request: Request) -> Response:
    body = await _body(request, s.AssistantSearch, allow_empty=True)
    found = [
        a
        for a in await _rows(request).assistants()
        if (body.graph_id is None or a["graph_id"] == body.graph_id)
        and (body.name is None or a["name"] == body.name)
        and (not body.metadata or all(a["metadata"].get(k) == v for k, v in body.metadata.items()))
    ]
    return json_response(found[body.offset : body.offset + body.limit])


async def count_assistants(request: Request) -> Response:
    body = await _body(request, s.AssistantSearch, allow_empty=True)
    found = [a for a in await _rows(request).assistants() if body.graph_id in (None, a["graph_id"])]
    return json_response(len(found))


async def get_assistant(request: Request) -> Response:
    return json_response(await _assistant(request))


async def assistant_graph(request: Request) -> Response:
    assistant = await _assistant(request)
    xray = request.query_params.get("xray", "false").lower()
    if xray not in ("true", "false") and not xray.isdigit():
        raise s.Invalid(f"xray: expected true, false or a depth, got {xray!r}")
    described = await _manager(request).graphs.describe(assistant["graph_id"], xray)
    return json_response(described["graph"])


async def assistant_schemas(request: Request) -> Response:
    assistant = await _assistant(request)
    described = await _manager(request).graphs.describe(assistant["graph_id"])
    return json_response({"graph_id": assistant["graph_id"], **described["schemas"]})


# -- threads ------------------------------------------------------------------------------------
async def _thread(request: Request) -> dict[str, Any]:
    thread_id = request.path_params["thread_id"]
    thread = await _rows(request).thread(thread_id)
    if thread is None:
        raise NotFound(f"thread {thread_id} not found")
    return thread


async def create_thread(request: Request) -> Response:
    body = await _body(request, s.ThreadCreate, allow_empty=True)
    if body.supersteps is not None:
        raise s.Invalid(
            "supersteps: copying threads by supersteps is not implemented; leave it out"
        )
    metadata = dict(body.metadata)
    if body.graph_id:
        metadata["graph_id"] = body.graph_id
    thread = await _rows(request).create_thread(
        body.thread_id or new_run_id(), metadata, body.if_exists
    )
    return json_response(thread)


async def search_threads(request: Request) -> Response:
    body = await _body(request, s.ThreadSearch, allow_empty=True)
    found = await _rows(request).search_threads(
        ids=body.ids,
        metadata=body.metadata,
        values=body.values,
        status=body.status,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
        limit=body.limit,
        offset=body.offset,
    )
    return json_response(found)


async def count_threads(request: Request) -> Response:
    body = await _body(request, s.ThreadSearch, allow_empty=True)
    found = await _rows(request).search_threads(
        metadata=body.metadata, values=body.values, status=body.status, limit=2**62
    )
    return json_response(len(found))


async def get_thread(request: Request) -> Response:
    return json_response(await _thread(request))


async def patch_thread(request: Request) -> Response:
    body = await _body(request, s.ThreadPatch, allow_empty=True)
    thread = await _rows(request).patch_thread(request.path_params["thread_id"], body.metadata)
    if thread is None:
        raise NotFound(f"thread {request.path_params['thread_id']} not found")
    return json_response(thread)


async def delete_thread(request: Request) -> Response:
    thread = await _thread(request)
    for run in await _rows(request).active_runs(thread["thread_id"]):
        await _manager(request).cancel(run["run_id"], thread["thread_id"])
    await _rows(request).delete_thread(thread["thread_id"])
    return Response(status_code=204)


_EMPTY_STATE: dict[str, Any] = {
    "values": {},
    "next": [],
    "tasks": [],
    "metadata": {},
    "created_at": None,
    "checkpoint": None,
    "parent_checkpoint": None,
    "interrupts": [],
    "checkpoint_id": None,
    "parent_checkpoint_id": None,
}


async def _state(request: Request, checkpoint: dict[str, Any] | None, subgraphs: bool) -> Response:
    thread_id = request.path_params["thread_id"]
    manager = _manager(request)
    cfg = await manager.thread_config(thread_id, checkpoint)
    if cfg is None:
        return json_response({**_EMPTY_STATE, "checkpoint": None})
    snapshot = await _executor_call(manager.engine.state(cfg))
    return json_response(thread_state(snapshot))


async def _executor_call(awaitable: Any) -> Any:
    try:
        return await awaitable
    except ConfigError as exc:
        raise s.Invalid(str(exc)) from None


async def get_state(request: Request) -> Response:
    return await _state(request, None, _flag(request, "subgraphs"))


async def get_state_at(request: Request) -> Response:
    checkpoint = {"checkpoint_id": request.path_params["checkpoint_id"]}
    return await _state(request, checkpoint, _flag(request, "subgraphs"))


async def post_state_at(request: Request) -> Response:
    body = await _body(request, s.ThreadStateAt)
    checkpoint = {k: v for k, v in _checkpoint_dict(body.checkpoint).items() if k != "thread_id"}
    return await _state(request, checkpoint, body.subgraphs)


def _checkpoint_dict(checkpoint: Any) -> dict[str, Any]:
    import msgspec

    return {k: v for k, v in msgspec.structs.asdict(checkpoint).items() if v is not None}


async def update_state(request: Request) -> Response:
    body = await _body(request, s.ThreadStateUpdate)
    thread_id = request.path_params["thread_id"]
    manager = _manager(request)
    checkpoint: dict[str, Any] = {}
    if body.checkpoint is not None:
        checkpoint = {
            k: v for k, v in _checkpoint_dict(body.checkpoint).items() if k != "thread_id"
        }
    if body.checkpoint_id:
        checkpoint["checkpoint_id"] = body.checkpoint_id
    if await _rows(request).active_runs(thread_id):
        raise Busy(f"thread {thread_id} has a run in progress; update its state once it ends")
    cfg = await manager.thread_config(thread_id, checkpoint)
    if cfg is None:
        raise s.Invalid(
            f"thread {thread_id} has no graph yet: run it once, or create it with graph_id"
        )
    new_config = await _executor_call(manager.engine.update_state(cfg, body.values, body.as_node))
    snapshot = await manager.engine.state(await manager.thread_config(thread_id) or cfg)
    values = snapshot.values
    status = "interrupted" if snapshot.next else "idle"
    await _rows(request).set_thread(thread_id, status, values=values)
    return json_response({"checkpoint": checkpoint_of(new_config)})


async def history(request: Request) -> Response:
    if request.method == "GET":
        body = s.coerce({"limit": _int_param(request, "limit", 10)}, s.ThreadHistory)
    else:
        body = await _body(request, s.ThreadHistory, allow_empty=True)
    thread_id = request.path_params["thread_id"]
    manager = _manager(request)
    checkpoint = {}
    if body.checkpoint is not None:
        checkpoint = {
            k: v for k, v in _checkpoint_dict(body.checkpoint).items() if k != "thread_id"
        }
    cfg = await manager.thread_config(thread_id, checkpoint)
    if cfg is None:
        return json_response([])
    before = (
        body.before if isinstance(body.before, str) else getattr(body.before, "checkpoint_id", None)
    )
    filtered = before is not None or bool(body.metadata)
    snapshots = await _executor_call(manager.engine.history(cfg, None if filtered else body.limit))
    states = [thread_state(snap) for snap in snapshots]
    if before is not None:
        states = [st for st in states if (st["checkpoint_id"] or "") < before]
    if body.metadata:
        states = [
            st for st in states if all(st["metadata"].get(k) == v for k, v in body.metadata.items())
        ]
    return json_response(states[: body.limit])


# -- runs ---------------------------------------------------------------------------------------
def _run_headers(run: dict[str, Any], tail: str = "") -> dict[str, str]:
    base = f"/threads/{run['thread_id']}/runs/{run['run_id']}"
    headers = {"Content-Location": base}
    if tail:
        headers["Location"] = base + tail
    return headers


async def create_run(request: Request) -> Response:
    body = await _body(request, s.RunCreate)
    thread_id = request.path_params.get("thread_id")
    run, _ = await _manager(request).create(thread_id, body, trace=from_headers(request.headers))
    return json_response(run, headers=_run_headers(run))


async def stream_run(request: Request) -> Reply:
    body = await _body(request, s.RunCreate)
    manager = _manager(request)
    run, sub = await manager.create(
        request.path_params.get("thread_id"),
        body,
        follow=True,
        trace=from_headers(request.headers),
    )
    assert sub is not None
    return _event_stream(manager, run, sub, cancel=body.on_disconnect == "cancel")


def _event_stream(
    manager: RunManager, run: dict[str, Any], sub: Any, *, cancel: bool, modes: Any = None
) -> Reply:
    run_id = run["run_id"]

    async def body() -> AsyncIterator[bytes]:
        try:
            async for event, data in sub:
                if event == DONE:
                    yield frame("end", {"run_id": run_id, "status": data.get("status")})
                    return
                if (
                    modes
                    and event.split("|", 1)[0] not in modes
                    and event not in ("metadata", "error")
                ):
                    continue
                yield frame(event, data)
        finally:
            await sub.close()

    async def disconnected() -> None:
        if cancel:
            log.info(
                "run %s: its client disconnected; cancelling it (on_disconnect=cancel)", run_id
            )
            try:
                await manager.cancel(run_id, run["thread_id"])
            except NotFound:
                pass

    return EventStreamResponse(
        body(), headers=_run_headers(run, "/stream"), on_disconnect=disconnected
    )


def _json_wait(manager: RunManager, run: dict[str, Any], sub: Any, *, cancel: bool) -> Reply:
    async def body() -> AsyncIterator[bytes]:
        done = await manager.wait(sub)
        output = (done or {}).get("output", {})
        from subiso.serve.encode import dumps

        yield dumps(output)

    async def disconnected() -> None:
        if cancel:
            try:
                await manager.cancel(run["run_id"], run["thread_id"])
            except NotFound:
                pass

    return EventStreamResponse(
        body(),
        headers=_run_headers(run, "/join"),
        on_disconnect=disconnected,
        media_type="application/json",
        heartbeat=b"\n",
    )


async def wait_run(request: Request) -> Reply:
    body = await _body(request, s.RunCreate)
    manager = _manager(request)
    run, sub = await manager.create(
        request.path_params.get("thread_id"),
        body,
        follow=True,
        trace=from_headers(request.headers),
    )
    return _json_wait(manager, run, sub, cancel=body.on_disconnect == "cancel")


async def list_runs(request: Request) -> Response:
    thread = await _thread(request)
    status = request.query_params.get("status")
    runs = await _rows(request).runs(
        thread["thread_id"],
        status=status,
        limit=_int_param(request, "limit", 10),
        offset=_int_param(request, "offset", 0),
    )
    return json_response(runs)


async def get_run(request: Request) -> Response:
    run = await _rows(request).run(request.path_params["run_id"], request.path_params["thread_id"])
    if run is None:
        raise NotFound(f"run {request.path_params['run_id']} not found")
    return json_response(run)


async def delete_run(request: Request) -> Response:
    run = await _rows(request).run(request.path_params["run_id"], request.path_params["thread_id"])
    if run is None:
        raise NotFound(f"run {request.path_params['run_id']} not found")
    if run["status"] in ("pending", "running"):
        raise Busy(f"run {run['run_id']} is {run['status']}; cancel it before deleting it")
    await _rows(request).delete_run(run["run_id"])
    return Response(status_code=204)


async def _ended_output(request: Request, run: dict[str, Any]) -> Any:
    error = await _rows(request).run_error(run["run_id"])
    if error is not None:
        return {"__error__": error}
    thread = await _rows(request).thread(run["thread_id"])
    values = (thread or {}).get("values") or {}
    interrupts = [i for items in ((thread or {}).get("interrupts") or {}).values() for i in items]
    return {**values, "__interrupt__": interrupts} if interrupts else values


async def join_run(request: Request) -> Reply:
    manager = _manager(request)
    run, sub = await manager.follow(request.path_params["run_id"], request.path_params["thread_id"])
    if sub is None:
        return json_response(await _ended_output(request, run))
    return _json_wait(manager, run, sub, cancel=_flag(request, "cancel_on_disconnect"))


async def join_stream(request: Request) -> Reply:
    manager = _manager(request)
    run, sub = await manager.follow(request.path_params["run_id"], request.path_params["thread_id"])
    modes = request.query_params.getlist("stream_mode") or None
    if sub is None:

        async def ended() -> AsyncIterator[bytes]:
            yield frame("end", {"run_id": run["run_id"], "status": run["status"]})

        return EventStreamResponse(ended(), headers=_run_headers(run, "/stream"))
    return _event_stream(
        manager, run, sub, cancel=_flag(request, "cancel_on_disconnect"), modes=modes
    )


async def cancel_run(request: Request) -> Reply:
    manager = _manager(request)
    action = request.query_params.get("action", "interrupt")
    if action not in ("interrupt", "rollback"):
        raise s.Invalid(f"action: expected interrupt or rollback, got {action!r}")
    run_id, thread_id = request.path_params["run_id"], request.path_params["thread_id"]
    if not _flag(request, "wait"):
        await manager.cancel(run_id, thread_id, action)
        return Response(status_code=202)
    run, sub = await manager.follow(run_id, thread_id)
    await manager.cancel(run_id, thread_id, action)
    if sub is None:
        return json_response(await _ended_output(request, run))
    return _json_wait(manager, run, sub, cancel=False)


async def cancel_runs(request: Request) -> Response:
    body = await _body(request, s.RunsCancel)
    action = request.query_params.get("action", "interrupt")
    if action not in ("interrupt", "rollback"):
        raise s.Invalid(f"action: expected interrupt or rollback, got {action!r}")
    manager = _manager(request)
    if body.status is not None:
        if body.thread_id or body.run_ids:
            raise s.Invalid("status: give either status, or thread_id and run_ids")
        targets = [
            r for r in await _rows(request).active_runs() if body.status in ("all", r["status"])
        ]
    else:
        if not body.thread_id or not body.run_ids:
            raise s.Invalid("thread_id and run_ids: both are needed (or give status)")
        targets = [{"run_id": r, "thread_id": body.thread_id} for r in body.run_ids]
    for run in targets:
        await manager.cancel(run["run_id"], run["thread_id"], action)
    return Response(status_code=204)


# -- errors -------------------------------------------------------------------------------------
def _handler(status: int) -> Any:
    async def handle(request: Request, exc: Exception) -> Response:
        return json_response({"detail": str(exc)}, status)

    return handle


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return json_response({"detail": exc.detail}, exc.status_code)


async def _internal(request: Request, exc: Exception) -> Response:
    log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return json_response(
        {"detail": f"internal error ({type(exc).__name__}); see the server log"}, 500
    )


HANDLERS: dict[Any, Any] = {
    s.Invalid: _handler(422),
    ConfigError: _handler(422),
    NotFound: _handler(404),
    Busy: _handler(409),
    Conflict: _handler(409),
    TooLarge: _handler(413),
    Unavailable: _handler(503),
    HTTPException: _http_error,
    Exception: _internal,
}

_T = "/threads/{thread_id}"
_R = _T + "/runs/{run_id}"
ROUTES = [
    Route("/ok", ok),
    Route("/info", info),
    Route("/metrics", metrics),
    Route("/assistants/search", search_assistants, methods=["POST"]),
    Route("/assistants/count", count_assistants, methods=["POST"]),
    Route("/assistants/{assistant_id}", get_assistant),
    Route("/assistants/{assistant_id}/graph", assistant_graph),
    Route("/assistants/{assistant_id}/schemas", assistant_schemas),
    Route("/threads", create_thread, methods=["POST"]),
    Route("/threads/search", search_threads, methods=["POST"]),
    Route("/threads/count", count_threads, methods=["POST"]),
    Route(_T, get_thread, methods=["GET"]),
    Route(_T, patch_thread, methods=["PATCH"]),
    Route(_T, delete_thread, methods=["DELETE"]),
    Route(_T + "/state", get_state, methods=["GET"]),
    Route(_T + "/state", update_state, methods=["POST"]),
    Route(_T + "/state/checkpoint", post_state_at, methods=["POST"]),
    Route(_T + "/state/{checkpoint_id}", get_state_at, methods=["GET"]),
    Route(_T + "/history", history, methods=["GET", "POST"]),
    Route(_T + "/runs", create_run, methods=["POST"]),
    Route(_T + "/runs", list_runs, methods=["GET"]),
    Route(_T + "/runs/stream", stream_run, methods=["POST"]),
    Route(_T + "/runs/wait", wait_run, methods=["POST"]),
    Route(_R, get_run, methods=["GET"]),
    Route(_R, delete_run, methods=["DELETE"]),
    Route(_R + "/join", join_run, methods=["GET"]),
    Route(_R + "/stream", join_stream, methods=["GET"]),
    Route(_R + "/cancel", cancel_run, methods=["POST"]),
    Route("/runs", create_run, methods=["POST"]),
    Route("/runs/stream", stream_run, methods=["POST"]),
    Route("/runs/wait", wait_run, methods=["POST"]),
    Route("/runs/cancel", cancel_runs, methods=["POST"]),
    *store_routes.ROUTES,
]
