"""Queue mode, the Celery worker's side: the body of the task ``subiso.serve_run``.

:func:`serve_run` (registered by :func:`subiso.celery.install`) checks the job's database
against this worker's ``allowed_locations`` before anything is opened, then hands the run to
this worker process's :class:`Host`: a thread owning an event loop, on which one
:class:`~subiso.serve.runs.RunManager` per database executes served runs on the worker's own
executor (``subiso.celery_worker.worker_executor()``, whose ``allowed_graphs`` every run's graph must
match) and publishes their events on the :class:`~subiso.serve.redis_bus.RedisBus` of the
worker's broker.

**One execution at a time.** A delivery takes a session-level PostgreSQL advisory lock on the
run id before it reads the run's row, and holds it while the run executes. A second delivery
of a live run (Redis's ``visibility_timeout`` passed on a long run) waits, then finds the run
ended and does nothing; a delivery after a killed worker gets the lock at once - PostgreSQL
drops a dead client's session, and its locks, when its connection closes - and continues the
run from its last checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Mapping
from typing import Any

import msgspec

from subiso.errors import ConfigError

#: The advisory lock space of served runs (two-int keys: apart from the rows' own locks).
LOCK_CLASS = 0x5B15


class ServeJob(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a ``subiso.serve_run`` task carries (see :meth:`CeleryQueue.job`)."""

    run_id: str
    database: str
    graphs: dict[str, str]
    timeout: float | None = None


def parse_job(job: Any) -> ServeJob:
    try:
        return msgspec.convert(job, ServeJob)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"subiso.serve_run: a malformed job ({exc}): {job!r}") from None


def serve_run(task: Any, job: Mapping[str, Any]) -> str | None:
    """The task's body: the run's status once it has ended here (None: nothing to do - it
    ended already, or is not claimed). A run left running (its worker shutting down) goes
    back to the queue."""
    from subiso.allow import check_location
    from subiso.celery_worker import resolved, worker_executor

    parsed = parse_job(job)
    if not parsed.database.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"subiso.serve_run: the database must be PostgreSQL, got {job!r}")
    found = resolved()
    # before anything is opened; each run's graph is checked by the executor (allowed_graphs),
    # so a refused graph ends its run with the error rather than leaving it running
    check_location("database", parsed.database, found.settings.allowed_locations, found.describe())
    request = getattr(task, "request", None)
    again = bool(getattr(request, "retries", 0)) or bool(
        (getattr(request, "delivery_info", None) or {}).get("redelivered")
    )
    executor = worker_executor()
    here = host(task.app)
    status: str | None = here.call(here.execute(parsed, again, executor, task.app))
    if status == "running":
        from celery.exceptions import Reject

        raise Reject(f"run {parsed.run_id} was left running here; back to the queue", True)
    return status


# -- the worker process's host -------------------------------------------------------------------
_lock = threading.Lock()
_host: Host | None = None


def host(app: Any) -> Host:
    """This process's host (made on first need: after a prefork child has forked)."""
    global _host
    with _lock:
        if _host is None:
            _host = Host(str(app.conf.broker_url))
        return _host


def close_host() -> None:
    """Close this process's host (Celery has finished its tasks when it shuts a child down)."""
    global _host
    with _lock:
        closing, _host = _host, None
    if closing is not None:
        closing.close()


class Host:
    """A thread owning an event loop: the bus, and a RunManager per database."""

    def __init__(self, broker_url: str) -> None:
        from subiso.runtime.loops import new_loop
        from subiso.serve.redis_bus import RedisBus

        self.loop = new_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="subiso-serve-worker", daemon=True
        )
        self._thread.start()
        self.bus = RedisBus(broker_url)
        self._managers: dict[Any, Any] = {}
        self._databases: list[Any] = []
        try:
            self.call(self.bus.open())
        except BaseException:
            self.close()
            raise

    def call(self, coro: Any) -> Any:
        """Run ``coro`` on the host's loop and wait for it (in the caller's context)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def execute(self, job: ServeJob, again: bool, executor: Any, app: Any) -> str | None:
        manager = await self._manager(job, executor, app)
        async with exclusive(job.database, job.run_id):
            status: str | None = await manager.run_here(job.run_id, again=again)
            return status

    async def _manager(self, job: ServeJob, executor: Any, app: Any) -> Any:
        from subiso.serve.graphs import Graphs
        from subiso.serve.queue import CeleryQueue
        from subiso.serve.runs import LocalEngine, RunManager
        from subiso.serve.store import Rows, open_database

        key = (job.database, tuple(sorted(job.graphs.items())), job.timeout, id(executor))
        manager = self._managers.get(key)
        if manager is None:
            db = open_database(job.database)
            await db.open()
            self._databases.append(db)
            queue = CeleryQueue(
                app, self.bus, database=job.database, graphs=job.graphs, timeout=job.timeout
            )
            manager = self._managers[key] = RunManager(
                Rows(db),
                Graphs(job.graphs),
                LocalEngine(executor),
                self.bus,
                checkpointer=job.database,
                store=job.database,
                grace_s=0.0,
                queue=queue,
                run_timeout=job.timeout,
            )
        return manager

    async def _aclose(self) -> None:
        for manager in self._managers.values():
            await manager.shutdown()
        for db in self._databases:
            with contextlib.suppress(Exception):
                await db.close()
        await self.bus.close()

    def close(self) -> None:
        from subiso.runtime.loops import shutdown_loop

        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self.call(self._aclose())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
        if not self.loop.is_closed():
            shutdown_loop(self.loop)


@contextlib.asynccontextmanager
async def exclusive(database: str, run_id: str) -> AsyncIterator[None]:
    """Hold the run's advisory lock (on a connection of its own) while the body runs."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS, run_id))
        yield
