"""The server's rows - assistants, threads, runs - in SQLite (the default, one file under the
data directory) or PostgreSQL (``--database postgresql://...``, shared by several servers).

Checkpoints and the LangGraph store are not here: runs write them through LangGraph's own
savers (``GraphConfig.checkpointer`` / ``store``) on their workers. These rows are what the
API adds around them: which threads exist, their metadata and status, and every run with its
status and arguments.

One small SQL dialect serves both databases (``?`` placeholders, JSON kept as text); the two
places where they differ - claiming a run, which must be atomic across servers - are in
:meth:`Rows.claim`. Filters on JSON metadata are applied in Python after a query narrowed by
the indexed columns.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from subiso.serve.encode import dumps, loads

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS subiso_assistants (
        assistant_id TEXT PRIMARY KEY, graph_id TEXT NOT NULL, created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL, config TEXT NOT NULL, context TEXT NOT NULL,
        metadata TEXT NOT NULL, name TEXT NOT NULL, description TEXT, version INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS subiso_threads (
        thread_id TEXT PRIMARY KEY, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        metadata TEXT NOT NULL, status TEXT NOT NULL, "values" TEXT, interrupts TEXT NOT NULL,
        error TEXT)""",
    """CREATE TABLE IF NOT EXISTS subiso_runs (
        run_id TEXT PRIMARY KEY, thread_id TEXT NOT NULL, assistant_id TEXT NOT NULL,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL, status TEXT NOT NULL,
        metadata TEXT NOT NULL, kwargs TEXT NOT NULL, multitask_strategy TEXT NOT NULL,
        temporary INTEGER NOT NULL DEFAULT 0, error TEXT, head_checkpoint TEXT, trace TEXT)""",
    "CREATE INDEX IF NOT EXISTS subiso_runs_thread ON subiso_runs (thread_id, created_at)",
    "CREATE INDEX IF NOT EXISTS subiso_runs_status ON subiso_runs (status)",
]

#: Columns added since the first release of these tables: added to older databases at open.
ADDED_COLUMNS = (("subiso_runs", "trace", "TEXT"),)

ACTIVE = ("pending", "running")


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


class Conflict(Exception):
    """A row that must not exist yet does (a thread created twice with ``if_exists=raise``)."""


def contains(haystack: Any, needle: Mapping[str, Any]) -> bool:
    """JSON containment, as PostgreSQL's ``@>``: every key of ``needle`` is in ``haystack``
    with an equal value (objects compared recursively)."""
    if not isinstance(haystack, Mapping):
        return False
    for key, want in needle.items():
        if key not in haystack:
            return False
        have = haystack[key]
        if isinstance(want, Mapping):
            if not contains(have, want):
                return False
        elif have != want:
            return False
    return True


class Database:
    """One connection's worth of SQL: ``fetch``/``execute`` and a transaction; subclassed per
    database."""

    dialect = "?"

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        raise NotImplementedError

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Database]:
        raise NotImplementedError


class SqliteDatabase(Database):
    """SQLite through ``aiosqlite`` (one connection, its own thread; WAL, so readers of the
    file - a second process during tests - never block it)."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: Any = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        import aiosqlite

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = await aiosqlite.connect(str(self.path), timeout=30.0, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        await self._conn.execute("PRAGMA journal_mode=WAL")
        await self._conn.execute("PRAGMA synchronous=NORMAL")
        for statement in SCHEMA:
            await self._conn.execute(statement)
        for table, column, kind in ADDED_COLUMNS:
            have = {r["name"] for r in await self.fetch(f"PRAGMA table_info({table})")}
            if column not in have:
                await self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        async with self._conn.execute(sql, tuple(params)) as cursor:
            return [dict(row) for row in await cursor.fetchall()]

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._conn.execute(sql, tuple(params)) as cursor:
            return int(cursor.rowcount)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")


class PostgresDatabase(Database):
    """PostgreSQL through a ``psycopg_pool.AsyncConnectionPool`` (the ``postgres`` extra)."""

    dialect = "postgres"

    def __init__(self, dsn: str, conn: Any = None) -> None:
        self.dsn = dsn
        self._pool: Any = None
        self._conn = conn  # inside a transaction: that connection

    async def open(self) -> None:
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        self._pool = AsyncConnectionPool(
            self.dsn,
            min_size=1,
            max_size=8,
            open=False,
            kwargs={"autocommit": True, "row_factory": dict_row},
            name="subiso-serve",
        )
        await self._pool.open(wait=True, timeout=30)
        async with self._pool.connection() as conn:
            await conn.execute("SELECT pg_advisory_lock(%s)", (0x5B150_5E8,))
            try:
                for statement in SCHEMA:
                    await conn.execute(statement)
                for table, column, kind in ADDED_COLUMNS:
                    await conn.execute(
                        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}"
                    )
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (0x5B150_5E8,))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        if self._conn is not None:
            cursor = await self._conn.execute(self._sql(sql), tuple(params))
            return list(await cursor.fetchall())
        async with self._pool.connection() as conn:
            cursor = await conn.execute(self._sql(sql), tuple(params))
            return list(await cursor.fetchall())

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        if self._conn is not None:
            cursor = await self._conn.execute(self._sql(sql), tuple(params))
            return int(cursor.rowcount)
        async with self._pool.connection() as conn:
            cursor = await conn.execute(self._sql(sql), tuple(params))
            return int(cursor.rowcount)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        async with self._pool.connection() as conn, conn.transaction():
            yield PostgresDatabase(self.dsn, conn)


def open_database(spec: str) -> Database:
    """``postgresql://...`` or a path of an SQLite file."""
    if spec.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(spec)
    return SqliteDatabase(Path(spec.removeprefix("sqlite:///")))


# -- rows ------------------------------------------------------------------------------------
def _thread(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "thread_id": row["thread_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "state_updated_at": row["updated_at"],
        "metadata": loads(row["metadata"]),
        "status": row["status"],
        "config": {},
        "values": loads(row["values"]) if row["values"] else None,
        "interrupts": loads(row["interrupts"]),
        "error": loads(row["error"]) if row["error"] else None,
    }


def _run(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "run_id": row["run_id"],
        "thread_id": row["thread_id"],
        "assistant_id": row["assistant_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "status": row["status"],
        "metadata": loads(row["metadata"]),
        "kwargs": loads(row["kwargs"]),
        "multitask_strategy": row["multitask_strategy"],
    }


def _assistant(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "assistant_id": row["assistant_id"],
        "graph_id": row["graph_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "config": loads(row["config"]),
        "context": loads(row["context"]),
        "metadata": loads(row["metadata"]),
        "name": row["name"],
        "description": row["description"],
        "version": row["version"],
    }


class Rows:
    """Assistants, threads and runs; every method one or two statements."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- assistants ---------------------------------------------------------------------------
    async def put_assistants(self, graph_ids: Iterable[str]) -> None:
        """One assistant per graph, named after it (``langgraph dev`` does the same); rows of
        graphs no longer declared are removed."""
        ids = list(graph_ids)
        stamp = now()
        for graph_id in ids:
            await self.db.execute(
                "INSERT INTO subiso_assistants (assistant_id, graph_id, created_at, updated_at, "
                "config, context, metadata, name, description, version) "
                "VALUES (?, ?, ?, ?, '{}', '{}', ?, ?, NULL, 1) ON CONFLICT DO NOTHING",
                (
                    graph_id,
                    graph_id,
                    stamp,
                    stamp,
                    dumps({"created_by": "system"}).decode(),
                    graph_id,
                ),
            )
        for row in await self.db.fetch("SELECT assistant_id FROM subiso_assistants"):
            if row["assistant_id"] not in ids:
                await self.db.execute(
                    "DELETE FROM subiso_assistants WHERE assistant_id = ?", (row["assistant_id"],)
                )

    async def assistants(self) -> list[dict[str, Any]]:
        rows = await self.db.fetch("SELECT * FROM subiso_assistants ORDER BY created_at, graph_id")
        return [_assistant(r) for r in rows]

    # -- threads ------------------------------------------------------------------------------
    async def create_thread(
        self, thread_id: str, metadata: Mapping[str, Any], if_exists: str = "raise"
    ) -> dict[str, Any]:
        stamp = now()
        inserted = await self.db.execute(
            "INSERT INTO subiso_threads (thread_id, created_at, updated_at, metadata, status, "
            "\"values\", interrupts) VALUES (?, ?, ?, ?, 'idle', NULL, '{}') "
            "ON CONFLICT DO NOTHING",
            (thread_id, stamp, stamp, dumps(dict(metadata)).decode()),
        )
        if not inserted and if_exists == "raise":
            raise Conflict(f"thread {thread_id} already exists")
        thread = await self.thread(thread_id)
        assert thread is not None
        return thread

    async def thread(self, thread_id: str) -> dict[str, Any] | None:
        rows = await self.db.fetch("SELECT * FROM subiso_threads WHERE thread_id = ?", (thread_id,))
        return _thread(rows[0]) if rows else None

    async def search_threads(
        self,
        *,
        ids: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        values: Mapping[str, Any] | None = None,
        status: str | None = None,
        sort_by: str = "created_at",
        sort_order: str = "desc",
        limit: int = 10,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        where: list[str] = []
        params: list[Any] = []
        if ids is not None:
            where.append(f"thread_id IN ({', '.join('?' for _ in ids) or 'NULL'})")
            params.extend(ids)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        order = f" ORDER BY {sort_by} {'ASC' if sort_order == 'asc' else 'DESC'}, thread_id"
        rows = [
            _thread(r)
            for r in await self.db.fetch(f"SELECT * FROM subiso_threads{clause}{order}", params)
        ]
        if metadata:
            rows = [r for r in rows if contains(r["metadata"], metadata)]
        if values:
            rows = [r for r in rows if contains(r["values"], values)]
        return rows[offset : offset + limit]

    async def patch_thread(
        self, thread_id: str, metadata: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        thread = await self.thread(thread_id)
        if thread is None:
            return None
        merged = {**thread["metadata"], **metadata}
        await self.db.execute(
            "UPDATE subiso_threads SET metadata = ?, updated_at = ? WHERE thread_id = ?",
            (dumps(merged).decode(), now(), thread_id),
        )
        return await self.thread(thread_id)

    async def delete_thread(self, thread_id: str) -> bool:
        await self.db.execute("DELETE FROM subiso_runs WHERE thread_id = ?", (thread_id,))
        return bool(
            await self.db.execute("DELETE FROM subiso_threads WHERE thread_id = ?", (thread_id,))
        )

    async def set_thread(
        self,
        thread_id: str,
        status: str,
        *,
        values: Any = None,
        interrupts: Mapping[str, Any] | None = None,
        error: Any = None,
    ) -> None:
        """The thread's status, and - when given - its latest values and interrupts."""
        sets = ["status = ?", "updated_at = ?", "error = ?"]
        params: list[Any] = [status, now()]
        params.append(None if error is None else dumps(error).decode())
        if values is not None:
            sets.append('"values" = ?')
            params.append(dumps(values).decode())
        if interrupts is not None:
            sets.append("interrupts = ?")
            params.append(dumps(dict(interrupts)).decode())
        await self.db.execute(
            f"UPDATE subiso_threads SET {', '.join(sets)} WHERE thread_id = ?", (*params, thread_id)
        )

    # -- runs ---------------------------------------------------------------------------------
    async def insert_run(self, run: Mapping[str, Any], *, temporary: bool = False) -> None:
        await self.db.execute(
            "INSERT INTO subiso_runs (run_id, thread_id, assistant_id, created_at, updated_at, "
            "status, metadata, kwargs, multitask_strategy, temporary, trace) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run["run_id"],
                run["thread_id"],
                run["assistant_id"],
                run["created_at"],
                run["updated_at"],
                run["status"],
                dumps(run["metadata"]).decode(),
                dumps(run["kwargs"]).decode(),
                run["multitask_strategy"],
                int(temporary),
                dumps(run["trace"]).decode() if run.get("trace") else None,
            ),
        )

    async def run(self, run_id: str, thread_id: str | None = None) -> dict[str, Any] | None:
        sql, params = "SELECT * FROM subiso_runs WHERE run_id = ?", [run_id]
        if thread_id is not None:
            sql += " AND thread_id = ?"
            params.append(thread_id)
        rows = await self.db.fetch(sql, params)
        return _run(rows[0]) if rows else None

    async def runs(
        self, thread_id: str, *, status: str | None = None, limit: int = 10, offset: int = 0
    ) -> list[dict[str, Any]]:
        sql, params = "SELECT * FROM subiso_runs WHERE thread_id = ?", [thread_id]
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        sql += " ORDER BY created_at DESC, run_id DESC LIMIT ? OFFSET ?"
        return [_run(r) for r in await self.db.fetch(sql, (*params, limit, offset))]

    async def active_runs(self, thread_id: str | None = None) -> list[dict[str, Any]]:
        """Pending and running runs (of one thread, or all), oldest first."""
        sql = "SELECT * FROM subiso_runs WHERE status IN ('pending', 'running')"
        params: list[Any] = []
        if thread_id is not None:
            sql += " AND thread_id = ?"
            params.append(thread_id)
        return [_run(r) for r in await self.db.fetch(sql + " ORDER BY created_at, run_id", params)]

    async def set_run(
        self, run_id: str, status: str, *, error: Any = None, only_if: Sequence[str] = ()
    ) -> bool:
        sql = "UPDATE subiso_runs SET status = ?, updated_at = ?, error = ? WHERE run_id = ?"
        params: list[Any] = [
            status,
            now(),
            None if error is None else dumps(error).decode(),
            run_id,
        ]
        if only_if:
            sql += f" AND status IN ({', '.join('?' for _ in only_if)})"
            params.extend(only_if)
        return bool(await self.db.execute(sql, params))

    async def set_head(self, run_id: str, checkpoint_id: str | None) -> None:
        """The thread's last checkpoint before this run (what a rollback returns to)."""
        await self.db.execute(
            "UPDATE subiso_runs SET head_checkpoint = ? WHERE run_id = ?", (checkpoint_id, run_id)
        )

    async def head(self, run_id: str) -> str | None:
        rows = await self.db.fetch(
            "SELECT head_checkpoint FROM subiso_runs WHERE run_id = ?", (run_id,)
        )
        return rows[0]["head_checkpoint"] if rows else None

    async def run_error(self, run_id: str) -> Any:
        rows = await self.db.fetch("SELECT error FROM subiso_runs WHERE run_id = ?", (run_id,))
        return loads(rows[0]["error"]) if rows and rows[0]["error"] else None

    async def delete_run(self, run_id: str, thread_id: str | None = None) -> bool:
        sql, params = "DELETE FROM subiso_runs WHERE run_id = ?", [run_id]
        if thread_id is not None:
            sql += " AND thread_id = ?"
            params.append(thread_id)
        return bool(await self.db.execute(sql, params))

    async def claim(self, run_id: str) -> bool:
        """Mark ``run_id`` running if it is pending, is its thread's oldest pending run and no
        other run of its thread runs: atomic, so two servers never run one thread twice."""
        async with self.db.transaction() as tx:
            rows = await tx.fetch("SELECT thread_id FROM subiso_runs WHERE run_id = ?", (run_id,))
            if not rows:
                return False
            thread_id = rows[0]["thread_id"]
            if tx.dialect == "postgres":  # serialise claims per thread (SQLite: BEGIN IMMEDIATE)
                await tx.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (thread_id,))
            first = await tx.fetch(
                "SELECT run_id, status FROM subiso_runs WHERE thread_id = ? AND status IN "
                "('pending', 'running') ORDER BY created_at, run_id",
                (thread_id,),
            )
            if any(r["status"] == "running" for r in first) or not first:
                return False
            if first[0]["run_id"] != run_id:
                return False
            return bool(
                await tx.execute(
                    "UPDATE subiso_runs SET status = 'running', updated_at = ? "
                    "WHERE run_id = ? AND status = 'pending'",
                    (now(), run_id),
                )
            )

    async def run_counts(self) -> dict[str, int]:
        rows = await self.db.fetch("SELECT status, COUNT(*) AS n FROM subiso_runs GROUP BY status")
        return {r["status"]: int(r["n"]) for r in rows}

    async def run_trace(self, run_id: str) -> Any:
        """The trace context of the request that created the run (JSON), or None."""
        rows = await self.db.fetch("SELECT trace FROM subiso_runs WHERE run_id = ?", (run_id,))
        return loads(rows[0]["trace"]) if rows and rows[0]["trace"] else None

    async def run_status(self, run_id: str) -> str | None:
        rows = await self.db.fetch("SELECT status FROM subiso_runs WHERE run_id = ?", (run_id,))
        return str(rows[0]["status"]) if rows else None

    async def run_temporary(self, run_id: str) -> bool:
        rows = await self.db.fetch("SELECT temporary FROM subiso_runs WHERE run_id = ?", (run_id,))
        return bool(rows and rows[0]["temporary"])


# -- checkpoints of a rolled-back run ----------------------------------------------------------
_ROLLBACK_SQLITE = (
    "DELETE FROM {table} WHERE thread_id = ? AND checkpoint_id IN (SELECT checkpoint_id FROM "
    "checkpoints WHERE thread_id = ? AND json_extract(CAST(metadata AS TEXT), '$.run_id') = ?)"
)
_ROLLBACK_POSTGRES = (
    "DELETE FROM {table} WHERE thread_id = %s AND checkpoint_id IN (SELECT checkpoint_id FROM "
    "checkpoints WHERE thread_id = %s AND metadata->>'run_id' = %s)"
)


async def delete_checkpoints(spec: str, thread_id: str, run_id: str) -> None:
    """Delete the checkpoints ``run_id`` wrote on ``thread_id`` (and their pending writes) from
    LangGraph's own tables: the thread is back where it was before the run. Every checkpoint
    carries its run's id in its metadata (the server puts it in ``config["metadata"]``).

    Writes a resumed run added to the checkpoint it resumed from stay (LangGraph's savers keep
    no run id on writes); ``"memory"`` checkpoints live in workers and are left alone."""
    params = (thread_id, thread_id, run_id)
    if spec.startswith(("postgresql://", "postgres://")):
        import psycopg

        async with await psycopg.AsyncConnection.connect(spec, autocommit=True) as conn:
            for table in ("checkpoint_writes", "checkpoints"):
                await conn.execute(_ROLLBACK_POSTGRES.format(table=table), params)
        return
    if not spec.startswith("sqlite:///"):
        return
    import aiosqlite

    async with aiosqlite.connect(spec.removeprefix("sqlite:///"), timeout=30.0) as conn:
        for table in ("writes", "checkpoints"):
            try:
                await conn.execute(_ROLLBACK_SQLITE.format(table=table), params)
            except sqlite3.OperationalError as exc:  # no such table: no checkpoint written yet
                if "no such table" not in str(exc):
                    raise
        await conn.commit()
