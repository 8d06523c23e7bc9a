"""``worker_init="pkg.mod:factory"``: state a worker sets up once and nodes read.

The factory is called with no arguments in each worker, on the worker's own event loop, before
its first run; it returns an async context manager (a sync one is accepted too) that is entered
there and exited when the worker stops (``LoopResources.aclose``, on the same loop). Nodes get
the entered value with :func:`subiso.worker_state`. A factory that fails fails the runs of that
worker with a ``ConfigError`` naming it (it is tried again on the next run); the pool lives on.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
from typing import Any

from subiso.errors import ConfigError, SubisoError
from subiso.observe.runs import outside_run

_STATE: contextvars.ContextVar[Any] = contextvars.ContextVar("subiso_worker_state")
_MISSING: Any = object()


def worker_state(default: Any = _MISSING) -> Any:
    """The value this worker's ``worker_init`` factory produced, from inside a run's nodes.

    Raises ``SubisoError`` outside a run of a worker that has a ``worker_init`` (or returns
    ``default`` when one is given).
    """
    value = _STATE.get(_MISSING)
    if value is _MISSING:
        if default is not _MISSING:
            return default
        raise SubisoError(
            "subiso.worker_state(): no worker state here - call it inside a run of an executor "
            "created with worker_init='pkg.module:factory' (or the settings key worker_init)"
        )
    return value


def load_factory(path: str) -> Any:
    module_name, sep, attr_path = path.partition(":")
    if not sep or not module_name or not attr_path:
        raise ConfigError(f"worker_init: {path!r} is not of the form 'package.module:factory'")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr_path.split("."):
            obj = getattr(obj, part)
    except Exception as exc:
        raise ConfigError(
            f"worker_init {path!r}: cannot import it: {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(obj):
        raise ConfigError(f"worker_init {path!r}: is a {type(obj).__name__}, not a factory")
    return obj


class WorkerInit:
    """One loop's worker_init state: entered on first need, exited at the loop's close."""

    def __init__(self, factory: str | None) -> None:
        self.factory = factory
        self.ready = factory is None
        self.value: Any = None
        self._cm: Any = None
        self._is_async = True
        self._lock: asyncio.Lock | None = None

    def bind(self) -> None:
        """Make the state visible to code running in the current context (a run's)."""
        if self.factory is not None:
            _STATE.set(self.value)

    async def enter(self) -> None:
        """Enter the factory's context manager on the running loop, once."""
        if self.ready:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.ready:
                return
            factory = load_factory(self.factory)  # type: ignore[arg-type]
            try:
                cm = factory()
                if hasattr(cm, "__aenter__"):
                    with outside_run():  # the worker's, for every run: no run's leftovers
                        value = await cm.__aenter__()
                    self._is_async = True
                elif hasattr(cm, "__enter__"):
                    value = cm.__enter__()
                    self._is_async = False
                else:
                    raise TypeError(
                        f"it returned a {type(cm).__name__}, not an (async) context manager"
                    )
            except Exception as exc:
                raise ConfigError(
                    f"worker_init {self.factory!r} failed on this worker: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            self._cm, self.value, self.ready = cm, value, True

    async def aclose(self) -> None:
        cm, self._cm = self._cm, None
        if cm is None:
            return
        self.ready = self.factory is None
        if self._is_async:
            await cm.__aexit__(None, None, None)
        else:
            cm.__exit__(None, None, None)
