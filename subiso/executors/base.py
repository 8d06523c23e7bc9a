"""Executor: the one contract every tier implements.

A tier implements ``_submit(cfg) -> Future[RunResult]`` (and ``_shutdown``); everything a
caller uses - ``run``, ``arun``, ``submit``, ``map``, ``execute``, ``aexecute``, ``close``, the
context managers - is defined here once, the way ``concurrent.futures.Executor`` does it.
Tiers that run on the caller's own thread or loop (inline, context) override ``execute`` and
``aexecute`` instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar

from subiso.config import GraphConfig, validate_checkpointer
from subiso.errors import ConfigError, ExecutorClosed
from subiso.report import RunResult

ConfigLike = GraphConfig | Mapping[str, Any]


def positive_int(value: Any, field: str, default: int | None = None) -> int:
    """``value`` (``default`` when it is None) when it is an int >= 1 (bools refused), else
    ConfigError naming ``field``."""
    if value is None and default is not None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{field} must be >= 1 (an integer), got {value!r}")
    return value


class Executor:
    """Run GraphConfigs in one isolation tier.

    Options shared by every tier: ``timeout`` (seconds; used when a GraphConfig has none) and
    ``checkpointer`` (used when a GraphConfig names none). ``max_workers`` where a tier has
    workers.
    """

    tier: ClassVar[str] = "?"
    #: Why this tier was chosen when something other than the caller chose it (the "auto"
    #: tier sets it right after construction); tiers read it when they build a worker runtime
    #: or a report, never in ``__init__``, so it lands in every ``RunReport.selected_by``.
    selected_by: str | None = None

    def __init__(self, *, timeout: float | None = None, checkpointer: str | None = None) -> None:
        if timeout is not None and not timeout > 0:
            raise ConfigError(
                f"{type(self).__name__}: timeout must be > 0 seconds, got {timeout!r}"
            )
        if checkpointer is not None:
            validate_checkpointer(checkpointer, f"{type(self).__name__}: checkpointer")
        self.timeout = timeout
        self.checkpointer = checkpointer
        self._closed = False
        self._close_lock = threading.Lock()

    # -- what a tier provides ------------------------------------------------------------------
    def _submit(self, cfg: GraphConfig) -> cf.Future[RunResult]:
        raise NotImplementedError

    def _shutdown(self, wait: bool, cancel_pending: bool) -> None:
        """Release workers and resources (called once)."""

    def _cancel_running(self, future: cf.Future[RunResult]) -> None:
        """Cancel a run already executing (an awaiting caller was cancelled); best effort."""

    # -- the contract --------------------------------------------------------------------------
    def prepare(self, cfg: ConfigLike) -> GraphConfig:
        """Coerce ``cfg`` to a GraphConfig with this executor's defaults applied."""
        if self._closed:
            raise ExecutorClosed(f"cannot run on a closed {type(self).__name__}")
        if not isinstance(cfg, GraphConfig):
            if not isinstance(cfg, Mapping):
                raise ConfigError(f"expected a GraphConfig or a mapping, got {type(cfg).__name__}")
            cfg = GraphConfig.from_dict(dict(cfg))
        if (cfg.timeout is None and self.timeout is not None) or (
            cfg.checkpointer is None and self.checkpointer is not None
        ):
            cfg = cfg.replace(
                timeout=cfg.timeout if cfg.timeout is not None else self.timeout,
                checkpointer=cfg.checkpointer
                if cfg.checkpointer is not None
                else self.checkpointer,
            )
        return cfg

    def submit_execute(self, cfg: ConfigLike) -> cf.Future[RunResult]:
        """Start a run; the future's result is its RunResult."""
        return self._submit(self.prepare(cfg))

    def submit(self, cfg: ConfigLike) -> cf.Future[Any]:
        """Start a run; the future's result is the run's output, as with ``run``."""
        inner = self.submit_execute(cfg)
        outer: cf.Future[Any] = cf.Future()

        def relay(done: cf.Future[RunResult]) -> None:
            if done.cancelled():
                outer.cancel()
                outer.set_running_or_notify_cancel()
            elif (exc := done.exception()) is not None:
                outer.set_running_or_notify_cancel()
                outer.set_exception(exc)
            else:
                outer.set_running_or_notify_cancel()
                outer.set_result(done.result().output)

        def cancel_inner(done: cf.Future[Any]) -> None:
            if done.cancelled():
                inner.cancel()

        outer.add_done_callback(cancel_inner)
        inner.add_done_callback(relay)
        return outer

    def execute(self, cfg: ConfigLike) -> RunResult:
        """Run to completion and return ``RunResult(output, report)``.

        Safe from plain sync code and from a thread whose loop is running: it only waits on a
        future, it never starts or nests an event loop here.
        """
        return self.submit_execute(cfg).result()

    def run(self, cfg: ConfigLike) -> Any:
        """Run to completion and return the output."""
        return self.execute(cfg).output

    async def aexecute(self, cfg: ConfigLike) -> RunResult:
        """Await a run without blocking the caller's loop; cancelling the caller cancels it."""
        future = self.submit_execute(cfg)
        try:
            # wrap_future cancels ``future`` when we are cancelled; that only works while it
            # is still queued, so a running one is cancelled on its worker.
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if future.running():
                self._cancel_running(future)
            raise

    async def arun(self, cfg: ConfigLike) -> Any:
        return (await self.aexecute(cfg)).output

    def map(self, cfgs: Iterable[ConfigLike], *, timeout: float | None = None) -> Iterator[Any]:
        """Start every run now; yield outputs in order (like ``concurrent.futures.Executor.map``).

        ``timeout`` bounds the wait for all results from the call, as in the stdlib; a run's own
        timeout comes from its GraphConfig or the executor.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        futures = [self.submit(cfg) for cfg in cfgs]

        def results() -> Iterator[Any]:
            try:
                for fut in futures:
                    left = None if deadline is None else max(0.0, deadline - time.monotonic())
                    yield fut.result(timeout=left)
            finally:
                for fut in futures:
                    fut.cancel()

        return results()

    def close(self, wait: bool = True, *, cancel_pending: bool = False) -> None:
        """Stop accepting work, then release workers and resources.

        ``wait=True`` drains: queued and running runs finish first. ``cancel_pending=True``
        cancels runs that have not started. Idempotent.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._shutdown(wait, cancel_pending)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close(wait=True)

    async def __aenter__(self) -> Executor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.close, True)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} tier={self.tier!r} {state}>"
