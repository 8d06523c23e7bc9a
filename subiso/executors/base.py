"""Executor: the one contract every tier implements, with every caller-facing method written once.

A tier implements three public hooks, in the spirit of ``concurrent.futures.Executor``:

* ``start(cfg) -> Future[RunResult]`` - begin one run of a prepared GraphConfig (defaults
  applied, executor open); the future resolves exactly once with its RunResult or exception;
* ``shutdown(wait, cancel_pending)`` - release workers and resources (called once, by
  ``close``);
* ``cancel_running(future)`` - stop a run that already executes (an awaiting caller was
  cancelled); best effort, optional.

Tiers that run in the caller's own thread or loop (inline, context) or that can hand a sync
caller its reply directly (process) add a fast path through one optional hook, in its sync and
async form: ``call(cfg) -> RunResult`` and ``acall(cfg)``. By default both go through ``start``.

Everything callers use - ``run``, ``arun``, ``execute``, ``aexecute``, ``submit``,
``submit_execute``, ``map``, ``close``, the context managers - is defined here and only here,
so a plugin tier gets all of it, and every change to it, by implementing ``start``.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures as cf
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from subiso._futures import relay

if TYPE_CHECKING:
    from subiso._capabilities import Capabilities
from subiso.config import GraphConfig
from subiso.errors import ConfigError, ExecutorClosed
from subiso.report import RunResult
from subiso.validate import checkpointer_spec, seconds

ConfigLike = GraphConfig | Mapping[str, Any]


class Executor(abc.ABC):
    """Run GraphConfigs in one isolation tier.

    Options shared by every tier: ``timeout`` (seconds; used when a GraphConfig has none) and
    ``checkpointer`` (used when a GraphConfig names none). ``max_workers`` where a tier has
    workers.
    """

    tier: ClassVar[str] = "?"
    #: One line for ``subiso info``: what this tier gives.
    summary: ClassVar[str] = ""

    def __init__(
        self,
        *,
        timeout: float | None = None,
        checkpointer: str | None = None,
        selected_by: str | None = None,
    ) -> None:
        """``selected_by``: why this tier was chosen when something other than the caller chose
        it (the "auto" tier); copied into every ``RunReport.selected_by``."""
        name = type(self).__name__
        self.timeout = seconds(timeout, f"{name}: timeout")
        if checkpointer is not None:
            checkpointer_spec(checkpointer, f"{name}: checkpointer")
        self.checkpointer = checkpointer
        self.selected_by = selected_by
        self._closed = False
        self._close_lock = threading.Lock()

    @classmethod
    def availability(cls, caps: Capabilities) -> tuple[bool, str]:
        """Whether this tier runs on the Python ``caps`` describes, and a one-line note: what it
        gives there, or why it does not run. Tiers with conditions override it."""
        return True, cls.summary or (cls.__doc__ or cls.__name__).strip().splitlines()[0]

    # -- the tier's hooks ------------------------------------------------------------------------
    @abc.abstractmethod
    def start(self, cfg: GraphConfig) -> cf.Future[RunResult]:
        """Begin a run of ``cfg`` (prepared: defaults applied); return its future.

        The future resolves exactly once: a RunResult, the run's exception, or cancelled (only
        if the run will not complete). Tiers with workers return at once; tiers that run in
        the caller's thread may run it here and return a done future.
        """

    def shutdown(self, wait: bool, cancel_pending: bool) -> None:
        """Release workers and resources; called once, by ``close``."""
        return None

    def cancel_running(self, future: cf.Future[RunResult]) -> None:
        """Stop a run that already executes (its awaiting caller was cancelled); best effort."""
        return None

    # -- the optional fast path ------------------------------------------------------------------
    def call(self, cfg: GraphConfig) -> RunResult:
        """Run ``cfg`` (prepared) to completion for a sync caller. Override to skip the future
        (tiers running in the caller's thread, or reading their own reply)."""
        return self.start(cfg).result()

    async def acall(self, cfg: GraphConfig) -> RunResult:
        """Await a run of ``cfg`` (prepared) without blocking the caller's loop; cancelling
        the caller cancels the run. Override to run on the caller's loop itself."""
        future = self.start(cfg)
        try:
            # wrap_future cancels ``future`` when we are cancelled; that only works while it
            # is still queued, so a running one is cancelled on its worker.
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if future.running():
                self.cancel_running(future)
            raise

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
        return self.start(self.prepare(cfg))

    def submit(self, cfg: ConfigLike) -> cf.Future[Any]:
        """Start a run; the future's result is the run's output, as with ``run``."""
        inner = self.submit_execute(cfg)
        return relay(inner, cf.Future(), _output, on_cancel=self.cancel_running)

    def execute(self, cfg: ConfigLike) -> RunResult:
        """Run to completion and return ``RunResult(output, report)``.

        Safe from plain sync code and from a thread whose loop is running: it only waits on a
        future, it never starts or nests an event loop here.
        """
        return self.call(self.prepare(cfg))

    def run(self, cfg: ConfigLike) -> Any:
        """Run to completion and return the output."""
        return self.execute(cfg).output

    async def aexecute(self, cfg: ConfigLike) -> RunResult:
        """Await a run without blocking the caller's loop; cancelling the caller cancels it."""
        return await self.acall(self.prepare(cfg))

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
        self.shutdown(wait, cancel_pending)

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


def ran(fn: Callable[[GraphConfig], RunResult], cfg: GraphConfig) -> cf.Future[RunResult]:
    """A done future holding ``fn(cfg)``'s outcome: ``start`` for tiers that run in the
    caller's thread."""
    future: cf.Future[RunResult] = cf.Future()
    future.set_running_or_notify_cancel()
    try:
        future.set_result(fn(cfg))
    except BaseException as exc:
        future.set_exception(exc)
    return future


def _output(result: RunResult) -> Any:
    return result.output
