"""Loop-bound resources of one worker: checkpointers, created on the loop that will use them.

LangGraph's async savers capture the loop they are created on (``AsyncSqliteSaver.loop``) and
their ``asyncio.Lock`` binds to it; a saver shared by two loops fails with "attached to a
different loop". So each worker event loop owns its own savers, opened on first use, reused by
every run on that loop and closed with it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from subiso.validate import checkpointer_spec

# Several workers opening one new SQLite file at once race on the saver's setup
# ("database is locked" while one of them switches the file to WAL); retry with backoff.
_SETUP_ATTEMPTS = 12
_SETUP_FIRST_DELAY_S = 0.02


def sqlite_path(spec: str) -> str:
    """``sqlite:///runs.db`` -> ``runs.db``; ``sqlite:////abs/x.db`` -> ``/abs/x.db``."""
    return spec[len("sqlite:///") :]


def needs_loop(spec: str | None) -> bool:
    """True when the checkpointer can only be used from its own event loop (not sync code)."""
    return spec is not None and spec != "memory"


class LoopResources:
    """The checkpointers of one event loop, keyed by their spec string."""

    def __init__(self) -> None:
        self._savers: dict[str, Any] = {}
        self._opening: dict[str, asyncio.Future[Any]] = {}
        self._closers: list[Any] = []

    def memory_saver(self) -> Any:
        """LangGraph's in-memory saver; it is loop-agnostic, so sync runs may use it too."""
        saver = self._savers.get("memory")
        if saver is None:
            from langgraph.checkpoint.memory import InMemorySaver

            saver = self._savers["memory"] = InMemorySaver()
        return saver

    async def checkpointer(self, spec: str) -> Any:
        """The saver for ``spec`` on the running loop, opened once even under concurrent runs."""
        saver = self._savers.get(spec)
        if saver is not None:
            return saver
        if spec == "memory":
            return self.memory_saver()
        checkpointer_spec(spec, "checkpointer")
        opening = self._opening.get(spec)
        if opening is None:
            opening = self._opening[spec] = asyncio.ensure_future(self._open_sqlite(spec))
        try:
            saver = await asyncio.shield(opening)
        finally:
            if opening.done():
                self._opening.pop(spec, None)
        self._savers[spec] = saver
        return saver

    async def _open_sqlite(self, spec: str) -> Any:
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        path = sqlite_path(spec)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path, timeout=30.0)
        self._closers.append(conn)
        saver = AsyncSqliteSaver(conn)
        delay = _SETUP_FIRST_DELAY_S
        for attempt in range(_SETUP_ATTEMPTS):
            try:
                await saver.setup()
                return saver
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == _SETUP_ATTEMPTS - 1:
                    raise
                saver.is_setup = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        """Close every connection this loop opened; safe to call twice."""
        closers, self._closers = self._closers, []
        self._savers.clear()
        for conn in closers:
            try:
                await conn.close()
            except Exception:  # closing must go on for the others
                pass
