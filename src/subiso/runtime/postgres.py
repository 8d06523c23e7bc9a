"""PostgreSQL for checkpointers and stores: one connection pool per worker loop and database,
and a ``setup()`` that runs once per database per process, serialised across processes.

``"postgresql://user@host:port/db"`` (or ``postgres://``) is handed to psycopg as a connection
URI. Pools are ``psycopg_pool.AsyncConnectionPool``: they bind to the loop that opens them, so
each worker loop opens its own (see :class:`~subiso.runtime.resources.LoopResources`) and closes
it with the loop. LangGraph's Postgres saver and store want autocommit connections, no
prepared statements and dict rows.

**Unreachable servers fail fast.** Before a loop opens its pool it makes one connection with
libpq's ``connect_timeout``, bounded as a whole by ``SUBISO_CONNECT_TIMEOUT`` seconds (default
5): a refused port fails at once, a host that does not answer within the bound, with
:class:`~subiso.errors.ServiceUnreachable` naming host and port (never the password); a
server that answers with an error (no such database, bad password) is a ``ConfigError``
saying what it said. Nothing keeps retrying in the background, and the next run with a good
URL opens its own pool.

``setup()`` creates and migrates LangGraph's tables; two processes running it at once on a new
database race on ``CREATE TABLE``/the migrations table. Every process therefore holds a
PostgreSQL advisory lock while it runs ``setup()``, so many workers starting together run it
one after another (the later ones find nothing to do), and each process runs it once per
database and kind ("saver", "store").
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from typing import Any

from subiso.errors import ConfigError, ServiceUnreachable

#: The pool's size bounds per worker loop: a loop interleaves its async runs over these.
POOL_MIN_SIZE = 1
POOL_MAX_SIZE = int(os.environ.get("SUBISO_PG_POOL_MAX_SIZE", "8"))
#: Seconds a worker waits for a PostgreSQL server to answer before the run fails.
DEFAULT_CONNECT_TIMEOUT_S = 5.0


def connect_timeout() -> float:
    """``SUBISO_CONNECT_TIMEOUT`` (seconds), else the default; read when a pool opens, so a
    worker process started later sees the host's value."""
    raw = os.environ.get("SUBISO_CONNECT_TIMEOUT")
    if raw is None:
        return DEFAULT_CONNECT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(
            f"SUBISO_CONNECT_TIMEOUT: expected seconds (a number), got {raw!r}"
        ) from None
    if not value > 0:
        raise ConfigError(f"SUBISO_CONNECT_TIMEOUT: expected a positive number, got {raw!r}")
    return value


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
        timeout = connect_timeout()
        # libpq takes whole seconds, at least 2; the wait_for bounds every address it tries
        per_attempt = max(2, math.ceil(timeout))
        await _reachable(dsn, timeout, per_attempt)
        pool = psycopg_pool.AsyncConnectionPool(
            dsn,
            min_size=POOL_MIN_SIZE,
            max_size=max(POOL_MAX_SIZE, 2),  # setup holds one connection for its lock
            open=False,
            kwargs={
                "autocommit": True,
                "prepare_threshold": 0,
                "row_factory": dict_row,
                "connect_timeout": per_attempt,
            },
            name="subiso",
        )
        try:
            await pool.open(wait=True, timeout=timeout)
        except BaseException as exc:
            await pool.close()  # no pool left retrying in the background
            if isinstance(exc, Exception):
                raise _connect_error(dsn, exc, timeout) from None
            raise
        return pool

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            try:
                await pool.close()
            except Exception:
                pass


async def _reachable(dsn: str, timeout: float, per_attempt: int) -> None:
    """One connection, bounded by ``timeout``: the server answers, or the run fails now."""
    import psycopg

    try:
        conn = await asyncio.wait_for(
            psycopg.AsyncConnection.connect(dsn, connect_timeout=per_attempt), timeout
        )
    except Exception as exc:
        raise _connect_error(dsn, exc, timeout) from None
    await conn.close()


def _connect_error(dsn: str, exc: Exception, timeout: float) -> Exception:
    """ServiceUnreachable when nothing answered; ConfigError when the server said no."""
    where = _address(dsn)
    # the server answered (wrong database, user, password): libpq's message quotes its FATAL
    if getattr(exc, "sqlstate", None) or "FATAL:" in str(exc):
        return ConfigError(
            f"cannot connect to PostgreSQL {redact(dsn)!r}: the server at {where} refused: "
            f"{_first_line(exc)}"
        )
    if (
        isinstance(exc, (asyncio.TimeoutError, TimeoutError))
        or "timeout" in type(exc).__name__.lower()
    ):
        why = f"no answer within {timeout:g}s (SUBISO_CONNECT_TIMEOUT)"
    else:
        why = _first_line(exc)
    return ServiceUnreachable(
        f"cannot reach PostgreSQL at {where} ({redact(dsn)}): {why}; check that the server "
        "runs and that this host can reach it"
    )


def _address(dsn: str) -> str:
    """``host:port`` of a connection URI (libpq's defaults where it names none)."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(dsn)
    except Exception:
        return "an unparsable address"
    host = str(info.get("host") or info.get("hostaddr") or "localhost")
    return f"{host}:{info.get('port') or 5432}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


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
