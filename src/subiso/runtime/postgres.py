"""PostgreSQL for checkpointers and stores: one connection pool per worker loop and database,
and a ``setup()`` that runs once per database per process, serialised across processes.

``"postgresql://user@host:port/db"`` (or ``postgres://``) is handed to psycopg as a connection
URI. Pools are ``psycopg_pool.AsyncConnectionPool``: they bind to the loop that opens them, so
each worker loop opens its own (see :class:`~subiso.runtime.resources.LoopResources`) and closes
it with the loop. LangGraph's Postgres saver and store want autocommit connections, no
prepared statements and dict rows.

``setup()`` creates and migrates LangGraph's tables; two processes running it at once on a new
database race on ``CREATE TABLE``/the migrations table. Every process therefore holds a
PostgreSQL advisory lock while it runs ``setup()``, so many workers starting together run it
one after another (the later ones find nothing to do), and each process runs it once per
database and kind ("saver", "store").
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from subiso.errors import ConfigError

#: The pool's size bounds per worker loop: a loop interleaves its async runs over these.
POOL_MIN_SIZE = 1
POOL_MAX_SIZE = int(os.environ.get("SUBISO_PG_POOL_MAX_SIZE", "8"))
OPEN_TIMEOUT_S = float(os.environ.get("SUBISO_PG_OPEN_TIMEOUT", "30"))
#: pg_advisory_lock key (a bigint) every subiso process takes around LangGraph's setup().
SETUP_LOCK_KEY = 0x5B150_5E7  # "subiso set"

_setup_done: set[tuple[str, str]] = set()
_setup_lock = threading.Lock()


def _import_psycopg() -> Any:
    try:
        import psycopg_pool
        from psycopg.rows import dict_row
    except ImportError as exc:
        raise ConfigError(
            f"a 'postgresql://' checkpointer or store needs the postgres extra: "
            f"pip install 'subiso[postgres]' ({exc})"
        ) from None
    return psycopg_pool, dict_row


class Pools:
    """The PostgreSQL pools of one loop, by connection URI."""

    def __init__(self) -> None:
        self._pools: dict[str, Any] = {}
        self._opening: dict[str, asyncio.Future[Any]] = {}

    async def get(self, dsn: str) -> Any:
        pool = self._pools.get(dsn)
        if pool is not None:
            return pool
        opening = self._opening.get(dsn)
        if opening is None:
            opening = self._opening[dsn] = asyncio.ensure_future(self._open(dsn))
        try:
            pool = await asyncio.shield(opening)
        finally:
            if opening.done():
                self._opening.pop(dsn, None)
        self._pools[dsn] = pool
        return pool

    async def _open(self, dsn: str) -> Any:
        psycopg_pool, dict_row = _import_psycopg()
        pool = psycopg_pool.AsyncConnectionPool(
            dsn,
            min_size=POOL_MIN_SIZE,
            max_size=max(POOL_MAX_SIZE, 2),  # setup holds one connection for its lock
            open=False,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            name="subiso",
        )
        try:
            await pool.open(wait=True, timeout=OPEN_TIMEOUT_S)
        except Exception as exc:
            await pool.close()
            raise ConfigError(
                f"cannot connect to PostgreSQL {redact(dsn)!r}: {type(exc).__name__}: {exc}"
            ) from exc
        return pool

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            try:
                await pool.close()
            except Exception:
                pass


async def setup_once(pool: Any, dsn: str, kind: str, resource: Any) -> None:
    """Run ``resource.setup()`` once per process for this database and kind, under a
    PostgreSQL advisory lock (several workers starting at once on a fresh database)."""
    key = (kind, dsn)
    with _setup_lock:
        if key in _setup_done:
            return
    async with pool.connection() as conn:
        # Poll pg_try_advisory_lock rather than wait in pg_advisory_lock: a session waiting
        # inside a statement holds a snapshot, and LangGraph's migrations run CREATE INDEX
        # CONCURRENTLY, which waits for every older snapshot - the holder would wait for the
        # waiter forever (seen with two worker loops of one Celery worker).
        delay = 0.01
        while True:
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (SETUP_LOCK_KEY,))
            row = await cur.fetchone()
            if row and row["ok"]:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)
        try:
            await resource.setup()
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK_KEY,))
    with _setup_lock:
        _setup_done.add(key)


def redact(dsn: str) -> str:
    """The URI without its password, for messages."""
    scheme, sep, rest = dsn.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return dsn
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"
