"""``subiso.run(cfg)`` / ``await subiso.arun(cfg)``: one process-wide executor from the settings.

For scripts and services that want "run this graph the configured way" without owning an
executor: the first call builds one with :func:`subiso.load_executor` (so the settings file and
``SUBISO_EXECUTOR`` decide the tier), every later call reuses it, and it is closed at
interpreter exit. Creation is locked, so two threads racing on the first call share one
executor instead of leaking a second pool.
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

from subiso.executors.base import ConfigLike, Executor

_lock = threading.Lock()
_executor: Executor | None = None
_atexit_registered = False


def default_executor() -> Executor:
    """The shared executor, created from the settings in effect on first use."""
    global _executor, _atexit_registered
    executor = _executor
    if executor is not None and not executor.closed:
        return executor
    with _lock:
        if _executor is None or _executor.closed:
            from subiso.settings import load_executor

            _executor = load_executor()
            if not _atexit_registered:
                atexit.register(_close_at_exit)
                _atexit_registered = True
        return _executor


def reset_default_executor(wait: bool = True) -> None:
    """Close the shared executor; the next ``run`` re-reads the settings (after edits, in tests)."""
    global _executor
    with _lock:
        executor, _executor = _executor, None
    if executor is not None:
        executor.close(wait=wait)


def _close_at_exit() -> None:
    reset_default_executor(wait=True)


def run(cfg: ConfigLike) -> Any:
    """Run ``cfg`` on the default executor and return its output (see ``Executor.run``)."""
    return default_executor().run(cfg)


async def arun(cfg: ConfigLike) -> Any:
    """Await ``cfg`` on the default executor without blocking the running loop."""
    executor = _executor
    if executor is None or executor.closed:
        # First use reads a file and may start workers: keep that off the caller's loop.
        import asyncio

        executor = await asyncio.to_thread(default_executor)
    return await executor.arun(cfg)
