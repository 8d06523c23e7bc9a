"""The ASGI application: Starlette routes for the Agent Server API, its start and stop.

Starlette (routing, requests, responses, lifespan) under uvicorn: the same pair LangGraph's own
server runs on, small, typed, and with nothing of its own on the request path beyond what the
routes do. FastAPI would add pydantic validation and OpenAPI generation; request bodies here
are msgspec Structs (:mod:`subiso.serve.schemas`) whose errors already name the field.

Every route is in :mod:`subiso.serve.routes`; this module wires them with what they share - the
rows, the run manager, the executor (built from the settings, with the served graphs as its
``allowed_graphs``), the LangGraph store - and with the safety checks every request passes:
a bearer token (``x-api-key`` or ``Authorization: Bearer``) when one is set, a body size
limit, and errors that are JSON ``{"detail": ...}`` with a status, never a traceback.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from subiso.serve.http import json_response

log = logging.getLogger("subiso.serve")
access_log = logging.getLogger("subiso.serve.http")

DEFAULT_MAX_BODY = 10 * 1024 * 1024


@dataclass
class ServeOptions:
    """What ``subiso serve`` was told; see ``subiso serve --help``."""

    graphs: dict[str, str]
    data_dir: Path
    tier: str | None = None
    settings_path: str | None = None
    database: str | None = None  # default: SQLite under data_dir
    queue: str | None = None  # redis://...: runs go to Celery workers (subiso.serve.queue)
    auth_token: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY
    run_timeout: float | None = None
    grace_s: float = 30.0
    max_workers: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_spec(self) -> str:
        return self.database or str(self.data_dir / "serve.db")

    @property
    def checkpointer(self) -> str:
        if self.database and self.database.startswith(("postgresql://", "postgres://")):
            return self.database
        return f"sqlite:///{self.data_dir / 'checkpoints.db'}"

    @property
    def store(self) -> str:
        if self.database and self.database.startswith(("postgresql://", "postgres://")):
            return self.database
        return f"sqlite:///{self.data_dir / 'store.db'}"


class AccessLog:
    """ASGI middleware: one record per request on ``subiso.serve.http`` (INFO; WARNING for a
    5xx) with ``method``, ``path``, ``status`` and ``duration_ms`` attributes, for the same
    handlers and JSON formatter as the runs' records (``subiso serve --log-format json``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sent(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            took = (time.perf_counter() - start) * 1000
            level = logging.WARNING if status >= 500 else logging.INFO
            if access_log.isEnabledFor(level):
                method, path = scope["method"], scope["path"]
                access_log.log(
                    level,
                    "%s %s %d %.1f ms",
                    method,
                    path,
                    status,
                    took,
                    extra={"method": method, "path": path, "status": status, "duration_ms": took},
                )


class Guard:
    """ASGI middleware: the bearer token on every route but ``/ok``."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.token is None or scope["path"] == "/ok":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        given = headers.get(b"x-api-key")
        bearer = headers.get(b"authorization", b"")
        if given is None and bearer[:7].lower() == b"bearer ":
            given = bearer[7:].strip()
        if given is None or not hmac.compare_digest(given, self.token):
            response = json_response({"detail": "missing or wrong API token"}, 401)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _build_executor(options: ServeOptions) -> Any:
    from subiso.settings import build_executor, resolve_settings

    overrides: dict[str, Any] = {"allowed_graphs": sorted(set(options.graphs.values()))}
    if options.tier:
        overrides["executor"] = options.tier
    if options.run_timeout is not None:
        overrides["timeout"] = options.run_timeout
    if options.max_workers is not None:
        overrides["max_workers"] = options.max_workers
    resolved = resolve_settings(options.settings_path, **overrides)
    locations = [options.checkpointer, options.store]
    settings = resolved.settings
    import msgspec

    settings = msgspec.structs.replace(
        settings, allowed_locations=[*(settings.allowed_locations or ()), *locations]
    )
    return build_executor(
        type(resolved)(settings, resolved.source, resolved.origin, resolved.tier_from)
    )


async def _open_queue(options: ServeOptions) -> tuple[Any, Any, Any]:
    """Queue mode's bus, queue and Celery app (``(None, None, None)`` without ``queue``)."""
    if options.queue is None:
        return None, None, None
    from subiso.serve.queue import CeleryQueue, celery_app
    from subiso.serve.redis_bus import RedisBus

    assert options.database is not None  # the command line requires it
    bus = RedisBus(options.queue)
    await bus.open()
    celery = celery_app(options.queue)
    queue = CeleryQueue(
        celery, bus, database=options.database, graphs=options.graphs, timeout=options.run_timeout
    )
    return bus, queue, celery


def create_app(options: ServeOptions) -> Starlette:
    """The application for ``options`` (started and stopped by its lifespan)."""
    from subiso.serve import routes
    from subiso.serve.graphs import Graphs
    from subiso.serve.runs import LocalEngine, RunManager
    from subiso.serve.store import Rows, open_database

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from subiso.runtime.resources import LoopResources

        options.data_dir.mkdir(parents=True, exist_ok=True)
        db = open_database(options.rows_spec)
        await db.open()
        rows = Rows(db)
        await rows.put_assistants(options.graphs)
        resources = LoopResources()
        import asyncio

        bus, queue, celery = await _open_queue(options)
        # queue mode: the runs go to the workers; this executor reads and updates state
        executor = await asyncio.to_thread(_build_executor, options)
        engine = LocalEngine(executor)
        manager = RunManager(
            rows,
            Graphs(options.graphs),
            engine,
            bus,
            checkpointer=options.checkpointer,
            store=options.store,
            grace_s=options.grace_s,
            queue=queue,
            run_timeout=options.run_timeout,
        )
        app.state.options = options
        app.state.rows = rows
        app.state.manager = manager
        app.state.resources = resources
        app.state.executor = executor
        await manager.recover()
        log.info(
            "subiso serve: %d graph(s) on %s; rows in %s",
            len(options.graphs),
            "Celery workers (broker: the --queue URL)" if queue is not None else executor,
            options.rows_spec,
        )
        try:
            yield
        finally:
            await manager.shutdown()
            await asyncio.to_thread(executor.close, True)
            await manager.bus.close()
            if celery is not None:
                await asyncio.to_thread(celery.close)
            await resources.aclose()
            await db.close()

    app = Starlette(routes=routes.ROUTES, lifespan=lifespan, exception_handlers=routes.HANDLERS)
    app.add_middleware(Guard, token=options.auth_token)
    app.add_middleware(AccessLog)
    return app
