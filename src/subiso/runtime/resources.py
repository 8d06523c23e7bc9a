"""Loop-bound resources of one worker: checkpointers, stores, PostgreSQL connection pools and
the ``worker_init`` state, created on the loop that will use them.

LangGraph's async savers capture the loop they are created on (``AsyncSqliteSaver.loop``) and
their ``asyncio.Lock`` binds to it; a saver shared by two loops fails with "attached to a
different loop". So each worker event loop owns its own savers, opened on first use, reused by
every run on that loop and closed with it. PostgreSQL specs get one
``psycopg_pool.AsyncConnectionPool`` per loop and database, shared by the loop's saver and store
(see :mod:`subiso.runtime.postgres`).

**No SQLite write lock outlives a step of its loop.** LangGraph's ``AsyncSqliteSaver`` writes
with ``execute`` and then ``commit``, two hops to its connection's thread with a turn of the
event loop between them; on Python's default (deferred) transactions the write lock is held
across that turn. When the loop's thread then blocks - a sync ``run()`` called on it (the
inline and context tiers run that on a helper thread, which opens the same file), an async
node that never yields - the lock can never be released, and every other connection to the
file waits out its busy timeout and fails with ``database is locked`` (the sync ``run()`` on
the loop's thread waiting on a lock held by a task of the loop it blocks: a deadlock). So
checkpointer connections run in autocommit mode: each statement commits on the connection's
thread before its result reaches the loop, the saver's ``commit()`` is a no-op, and a batch
(``executemany``: ``aput_writes``) is wrapped in ``BEGIN IMMEDIATE``/``COMMIT`` within that
same hop, so it stays atomic. (``AsyncSqliteStore`` runs its own ``BEGIN``/``COMMIT`` around a
batch of awaits; a store shared that way by a blocked loop and a sync run can still wait out the
busy timeout. Checkpointers are what this covers.)
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from subiso.errors import ConfigError
from subiso.observe.runs import outside_run
from subiso.runtime import postgres
from subiso.runtime.worker_init import WorkerInit
from subiso.validate import checkpointer_spec, is_postgres

# Several workers opening one new SQLite file at once race on the saver's setup
# ("database is locked" while one of them switches the file to WAL); retry with backoff.
_SETUP_ATTEMPTS = 12
_SETUP_FIRST_DELAY_S = 0.02


def sqlite_path(spec: str) -> str:
    """``sqlite:///runs.db`` -> ``runs.db``; ``sqlite:////abs/x.db`` -> ``/abs/x.db``."""
    return spec[len("sqlite:///") :]


def needs_loop(spec: str | None) -> bool:
    """True when the checkpointer (or store) can only be used from its own event loop (not
    sync code): every spec but "memory" (sqlite, postgresql)."""
    return spec is not None and spec != "memory"


class AutocommitConnection(sqlite3.Connection):
    """An ``sqlite3`` connection in autocommit mode whose ``executemany`` is one transaction
    (see the module docstring): no transaction is ever left open between two calls."""

    def cursor(self, factory: Any = None) -> Any:
        return super().cursor(factory or AtomicBatchCursor)

    def executemany(self, sql: str, parameters: Any, /) -> Any:
        return self.cursor().executemany(sql, parameters)


class AtomicBatchCursor(sqlite3.Cursor):
    """``executemany`` wrapped in ``BEGIN IMMEDIATE``/``COMMIT`` unless a transaction is open."""

    def executemany(self, sql: str, parameters: Any, /) -> Any:
        if self.connection.in_transaction:
            return super().executemany(sql, parameters)
        self.execute("BEGIN IMMEDIATE")
        try:
            super().executemany(sql, parameters)
        except BaseException:
            if self.connection.in_transaction:
                self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")
        return self


class Memory:
    """The ``"memory"`` checkpointer and store: not loop-bound, so one per executor in the tiers
    that run in this process (every worker thread and every run share it, and a thread's
    checkpoints hold across runs), one per worker process elsewhere."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._saver: Any = None
        self._store: Any = None

    def saver(self) -> Any:
        with self._lock:
            if self._saver is None:
                from langgraph.checkpoint.memory import InMemorySaver

                self._saver = InMemorySaver()
            return self._saver

    def store(self) -> Any:
        with self._lock:
            if self._store is None:
                from langgraph.store.memory import InMemoryStore

                self._store = InMemoryStore()
            return self._store


class LoopResources:
    """The checkpointers, stores, pools and worker state of one event loop."""

    def __init__(self, worker_init: str | None = None, memory: Memory | None = None) -> None:
        self._savers: dict[str, Any] = {}
        self._stores: dict[str, Any] = {}
        self._opening: dict[str, asyncio.Future[Any]] = {}
        self._closers: list[Any] = []
        self.pools = postgres.Pools()
        self.init = WorkerInit(worker_init)
        self.memory = memory if memory is not None else Memory()

    def memory_saver(self) -> Any:
        """LangGraph's in-memory saver; it is loop-agnostic, so sync runs may use it too."""
        return self.memory.saver()

    def memory_store(self) -> Any:
        """LangGraph's in-memory store; usable from sync code too."""
        return self.memory.store()

    async def checkpointer(self, spec: str) -> Any:
        """The saver for ``spec`` on the running loop, opened once even under concurrent runs."""
        saver = self._savers.get(spec)
        if saver is not None:
            return saver
        if spec == "memory":
            return self.memory_saver()
        checkpointer_spec(spec, "checkpointer")
        opener = self._open_postgres_saver if is_postgres(spec) else self._open_sqlite
        saver = self._savers[spec] = await self._once(f"saver:{spec}", lambda: opener(spec))
        return saver

    async def store(self, spec: str) -> Any:
        """The LangGraph ``BaseStore`` for ``spec`` on the running loop: ``"memory"``,
        ``"sqlite:///path.db"`` or ``"postgresql://..."``; opened once, closed with the loop."""
        store = self._stores.get(spec)
        if store is not None:
            return store
        if spec == "memory":
            return self.memory_store()
        checkpointer_spec(spec, "store", what="store")
        opener = self._open_postgres_store if is_postgres(spec) else self._open_sqlite_store
        store = self._stores[spec] = await self._once(f"store:{spec}", lambda: opener(spec))
        return store

    async def _once(self, key: str, open_: Any) -> Any:
        """Open a resource once per loop, even when concurrent runs ask for it together."""
        opening = self._opening.get(key)
        if opening is None:
            with outside_run():  # the loop's, not the asking run's: its tasks outlive the run
                opening = self._opening[key] = asyncio.ensure_future(open_())
        try:
            return await asyncio.shield(opening)
        finally:
            if opening.done():
                self._opening.pop(key, None)

    async def _open_postgres_saver(self, spec: str) -> Any:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        pool = await self.pools.get(spec)
        saver = AsyncPostgresSaver(pool)
        await postgres.setup_once(pool, spec, "saver", saver)
        return saver

    async def _open_postgres_store(self, spec: str) -> Any:
        from langgraph.store.postgres.aio import AsyncPostgresStore

        pool = await self.pools.get(spec)
        store = AsyncPostgresStore(pool)
        await postgres.setup_once(pool, spec, "store", store)
        return store

    async def _open_sqlite_store(self, spec: str) -> Any:
        try:
            from langgraph.store.sqlite.aio import AsyncSqliteStore
        except ImportError as exc:  # older langgraph-checkpoint-sqlite
            raise ConfigError(
                f"store {spec!r}: langgraph-checkpoint-sqlite has no AsyncSqliteStore here "
                f"({exc}); upgrade it or use 'memory' / 'postgresql://...'"
            ) from None
        # autocommit, as AsyncSqliteStore.from_conn_string opens it: the store runs its own
        # BEGIN/COMMIT
        conn = await self._sqlite_connection(spec, "store", isolation_level=None)
        store = AsyncSqliteStore(conn)
        await _setup_with_retry(store, spec, "store")
        return store

    async def _sqlite_connection(self, spec: str, what: str, **options: Any) -> Any:
        """A connection to the file of ``spec``; a location that cannot be a database file
        (a directory, a parent that is a file, no permission) is a ConfigError naming it."""
        import aiosqlite

        path = sqlite_path(spec)
        if path != ":memory:":
            if os.path.isdir(path):  # noqa: ASYNC240 (a stat, once per loop and file)
                raise ConfigError(f"{what} {spec!r}: {path} is a directory, not a database file")
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"{what} {spec!r}: cannot create the directory of {path} ({exc})"
                ) from None
        try:
            conn = await aiosqlite.connect(path, timeout=30.0, **options)
        except sqlite3.OperationalError as exc:
            raise ConfigError(f"{what} {spec!r}: cannot open {path} ({exc})") from None
        self._closers.append(conn)
        return conn

    async def _open_sqlite(self, spec: str) -> Any:
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        conn = await self._sqlite_connection(
            spec, "checkpointer", isolation_level=None, factory=AutocommitConnection
        )
        saver = AsyncSqliteSaver(conn)
        await _setup_with_retry(saver, spec, "checkpointer")
        return saver

    async def aclose(self) -> None:
        """Exit the worker state, close every store, connection and pool this loop opened;
        safe to call twice."""
        try:
            await self.init.aclose()
        finally:
            closers, self._closers = self._closers, []
            stores = list(self._stores.values())
            self._savers.clear()
            self._stores.clear()
            for store in stores:  # batched async stores run a task on this loop
                task = getattr(store, "_task", None)
                if task is not None and not task.done():
                    task.cancel()
            for conn in closers:
                try:
                    await conn.close()
                except Exception:  # closing must go on for the others
                    pass
            await self.pools.aclose()


async def _setup_with_retry(resource: Any, spec: str, what: str) -> None:
    """``setup()`` of an SQLite saver/store, retried while another worker holds the file; a
    file that is not an SQLite database is a ConfigError naming it (``what`` ``spec``)."""
    delay = _SETUP_FIRST_DELAY_S
    for attempt in range(_SETUP_ATTEMPTS):
        try:
            await resource.setup()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == _SETUP_ATTEMPTS - 1:
                raise
            resource.is_setup = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        except sqlite3.DatabaseError as exc:  # "file is not a database", "... malformed"
            raise ConfigError(
                f"{what} {spec!r}: {sqlite_path(spec)} is not a usable SQLite database ({exc}); "
                f"name a new file (subiso creates it) or one a {what} of subiso or LangGraph "
                "wrote"
            ) from None
