"""Executor: the caller's side of every tier, written once.

Everything callers use - ``run``, ``arun``, ``execute``, ``aexecute``, ``submit``, ``map``,
``batch``, ``abatch``, ``stream``, ``astream``, ``get_state``, ``get_state_history``,
``update_state`` and their async forms, ``stats``, ``shutdown``/``close``, the context managers -
is defined here and only here, so a plugin tier gets all of it, and every change to it, by
implementing the hooks of :class:`~subiso.executors.hooks.TierHooks` (``start`` at least),
which ``Executor`` inherits and ``help()`` shows apart.

That includes what makes a run observable on every tier: each Call is made here, on the
caller's thread or task, with its :class:`~subiso.observe.runs.RunInfo` (run id, submit time,
the caller's trace context - :mod:`subiso.observe`); every run is counted here as it is
submitted and as it ends (``stats()``, the OpenTelemetry instruments), and a SubisoError raised
for a run carries its ``run_id``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import threading
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import Any, TypedDict

from typing_extensions import Unpack

from subiso._futures import DerivedFuture, relay
from subiso.allow import check_allowed
from subiso.config import GraphConfig
from subiso.errors import ConfigError, ExecutorClosed, SubisoError
from subiso.events import EventChannel
from subiso.executors.hooks import TierHooks
from subiso.observe.log import outcome_of
from subiso.observe.loop_health import DEFAULT_BLOCK_THRESHOLD_S
from subiso.observe.metrics import ExecutorStats, RunMeter, instruments
from subiso.observe.runs import run_info
from subiso.observe.trace import capture
from subiso.report import RunResult
from subiso.runtime.call import Call, Op, StreamMode
from subiso.validate import checkpointer_spec, glob_patterns, import_path, seconds

ConfigLike = GraphConfig | Mapping[str, Any]
#: Called on the caller's side with each event of a run.
OnEvent = Callable[[Any], object]


class SharedOptions(TypedDict, total=False):
    """The options every tier takes (its constructor's ``**shared``), declared once.

    * ``timeout`` - seconds, for GraphConfigs that set none;
    * ``checkpointer`` - for GraphConfigs that name none;
    * ``worker_init`` - ``"pkg.mod:factory"``: an async context manager entered once in each
      worker's event loop before its first run and exited when the worker stops; its value is
      ``subiso.worker_state()`` inside nodes;
    * ``allowed_graphs`` / ``allowed_locations`` - ``fnmatch`` patterns: when set, a
      GraphConfig whose graph (or checkpointer/store location) matches none is refused with a
      ConfigError before anything is imported or opened (``"memory"`` is always allowed);
    * ``loop_block_threshold`` - seconds a worker's event loop may be blocked (a run's code
      not yielding) before a WARNING names the run, the node and the blocking stack (default
      1.0; see :mod:`subiso.observe.loop_health`);
    * ``selected_by`` - why this tier was chosen when something other than the caller chose
      it (the "auto" tier); copied into every ``RunReport.selected_by``.
    """

    timeout: float | None
    checkpointer: str | None
    worker_init: str | None
    allowed_graphs: Sequence[str] | None
    allowed_locations: Sequence[str] | None
    loop_block_threshold: float | None
    selected_by: str | None


class Executor(TierHooks):
    """Run GraphConfigs in one isolation tier.

    Options shared by every tier (:class:`SharedOptions`): ``timeout`` (seconds; used when a
    GraphConfig has none), ``checkpointer`` (used when a GraphConfig names none),
    ``worker_init``, ``allowed_graphs``/``allowed_locations``, ``loop_block_threshold``;
    ``max_workers`` where a tier has workers.
    """

    def __init__(self, **shared: Unpack[SharedOptions]) -> None:
        name = type(self).__name__
        unknown = set(shared) - set(SharedOptions.__annotations__)
        if unknown:
            valid = ", ".join(SharedOptions.__annotations__)
            raise TypeError(f"{name}() got unexpected options {sorted(unknown)}; valid: {valid}")
        self.timeout = seconds(shared.get("timeout"), f"{name}: timeout")
        self.checkpointer = shared.get("checkpointer")
        if self.checkpointer is not None:
            checkpointer_spec(self.checkpointer, f"{name}: checkpointer")
        self.selected_by = shared.get("selected_by")
        self.worker_init = shared.get("worker_init")
        if self.worker_init is not None:
            import_path(self.worker_init, f"{name}: worker_init")
        self.allowed_graphs = glob_patterns(shared.get("allowed_graphs"), f"{name}: allowed_graphs")
        self.allowed_locations = glob_patterns(
            shared.get("allowed_locations"), f"{name}: allowed_locations"
        )
        threshold = seconds(shared.get("loop_block_threshold"), f"{name}: loop_block_threshold")
        self.loop_block_threshold = (
            DEFAULT_BLOCK_THRESHOLD_S if threshold is None else float(threshold)
        )
        self._closed = False
        self._close_lock = threading.Lock()
        self._meter = self._new_meter()

    def _new_meter(self) -> RunMeter:
        """This executor's RunMeter, observed by the OpenTelemetry instruments while it lives
        (a tier built inside another one shares its owner's instead)."""
        meter = RunMeter(self.tier)
        found = instruments()
        if found is not None:
            found.observe(meter, self.stats)
        return meter

    def _share_meter(self, meter: RunMeter) -> None:
        """Count into ``meter`` instead (this executor runs inside another one, which reports
        for both): call before this executor makes any worker."""
        found = instruments()
        if found is not None:
            found.forget(self._meter)
        self._meter = meter

    # -- the contract --------------------------------------------------------------------------
    def prepare(self, cfg: ConfigLike) -> GraphConfig:
        """Coerce ``cfg`` to a GraphConfig with this executor's defaults applied."""
        if self._closed:
            raise ExecutorClosed(f"cannot run on a closed {type(self).__name__}")
        if not isinstance(cfg, GraphConfig):
            if not isinstance(cfg, Mapping):
                raise ConfigError(f"expected a GraphConfig or a mapping, got {type(cfg).__name__}")
            cfg = GraphConfig.from_dict(dict(cfg))
        if self.allowed_graphs is not None or self.allowed_locations is not None:
            check_allowed(
                cfg,
                ["*"] if self.allowed_graphs is None else self.allowed_graphs,
                ["*"] if self.allowed_locations is None else self.allowed_locations,
                where=f"{type(self).__name__} options",
            )
        if self.crosses_boundary and not isinstance(cfg.graph, str):
            raise ConfigError(
                f"GraphConfig.graph: the {self.tier} tier imports the graph in its own "
                f"{self.boundary}, so pass its import path 'pkg.mod:attr', not a "
                f"{type(cfg.graph).__name__} object"
            )
        if not self.codec_checks_nesting:
            refused = cfg.nesting_error()
            if refused is not None:
                raise refused
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

    def _new_call(self, cfg: ConfigLike, op: Op = "invoke", **fields: Any) -> Call:
        """The Call for ``cfg`` (prepared), made here - on the caller's thread or task - with
        its run's identity and the caller's trace context."""
        prepared = self.prepare(cfg)
        return Call(cfg=prepared, op=op, run=run_info(prepared.config, capture()), **fields)

    def submit_execute(self, cfg: ConfigLike) -> cf.Future[RunResult]:
        """Start a run; the future's result is its RunResult."""
        return self._submitted(self._new_call(cfg))

    def submit(self, cfg: ConfigLike) -> cf.Future[Any]:
        """Start a run; the future's result is the run's output, as with ``run``."""
        inner = self.submit_execute(cfg)
        return relay(inner, DerivedFuture(), _output, on_cancel=self.cancel_running)

    # -- every run, counted as it starts and ends --------------------------------------------
    def _submitted(self, call: Call, events: EventChannel | None = None) -> cf.Future[RunResult]:
        """``started(call, events)``, counted; the outcome is recorded (and a SubisoError
        tagged with the run id) before anyone waiting on the future can see it."""
        future = self.started(call, events)
        if call.is_run:
            self._meter.submitted()
        future.add_done_callback(lambda done: self._settled(call, done))
        return future

    def _perform(self, call: Call) -> RunResult:
        """``call(call)``, counted."""
        if call.is_run:
            self._meter.submitted()
        try:
            result = self.call(call)
        except BaseException as exc:
            self._failed(call, exc)
            raise
        self._succeeded(call, result)
        return result

    async def _aperform(self, call: Call, events: EventChannel | None = None) -> RunResult:
        """``acall(call, events)``, counted."""
        if call.is_run:
            self._meter.submitted()
        try:
            result = await self.acall(call, events)
        except BaseException as exc:
            self._failed(call, exc)
            raise
        self._succeeded(call, result)
        return result

    def _settled(self, call: Call, future: cf.Future[RunResult]) -> None:
        if future.cancelled():
            if call.is_run:
                self._meter.finished("cancelled", None, None)
            return
        error = future.exception()
        if error is not None:
            self._failed(call, error)
        else:
            self._succeeded(call, future.result())

    def _failed(self, call: Call, error: BaseException) -> None:
        if isinstance(error, SubisoError) and error.run_id is None and call.run is not None:
            error.run_id = call.run.run_id
        if call.is_run:
            self._meter.finished(outcome_of(error), None, None)

    def _succeeded(self, call: Call, result: RunResult) -> None:
        if call.is_run:
            report = result.report
            self._meter.finished(report.status, report.duration_s, report.queue_wait_s)

    def stats(self) -> ExecutorStats:
        """A snapshot of this executor: runs pending, running and completed (by outcome),
        workers, restarts and worker loop lag (:class:`~subiso.observe.metrics.ExecutorStats`)."""
        return self._meter.snapshot(self.worker_stats())

    def execute(self, cfg: ConfigLike, *, on_event: OnEvent | None = None) -> RunResult:
        """Run to completion and return ``RunResult(output, report)``.

        Safe from plain sync code and from a thread whose loop is running: it only waits on a
        future, it never starts or nests an event loop here. ``on_event(update)`` is called on
        this thread with each node's update (LangGraph's ``"updates"`` stream) as it happens.
        """
        call = self._new_call(cfg)
        if on_event is None:
            return self._perform(call)
        events = EventChannel()
        future = self._start_streaming(call, events)
        for event in self._drain(events, future):
            on_event(event)
        return future.result()

    def run(self, cfg: ConfigLike, *, on_event: OnEvent | None = None) -> Any:
        """Run to completion and return the output."""
        return self.execute(cfg, on_event=on_event).output

    async def aexecute(self, cfg: ConfigLike, *, on_event: OnEvent | None = None) -> RunResult:
        """Await a run without blocking the caller's loop; cancelling the caller cancels it.
        ``on_event`` is called on the caller's loop with each update as it happens."""
        call = self._new_call(cfg, aio=True)
        if on_event is None:
            return await self._aperform(call)
        result = _Box()
        async with contextlib.aclosing(self._aevents(call, result)) as events:
            async for event in events:
                on_event(event)
        return result.value

    async def arun(self, cfg: ConfigLike, *, on_event: OnEvent | None = None) -> Any:
        return (await self.aexecute(cfg, on_event=on_event)).output

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

    def batch(self, cfgs: Iterable[ConfigLike], *, return_exceptions: bool = False) -> list[Any]:
        """Run every config at once and return their outputs in order, as LangGraph's
        ``graph.batch``: every config is checked before any run starts; a failed run raises
        (the others still pending are cancelled) unless ``return_exceptions``, which puts its
        exception in its place."""
        calls = [self._new_call(cfg) for cfg in cfgs]
        futures = [self._submitted(call) for call in calls]
        outputs: list[Any] = []
        try:
            for future in futures:
                try:
                    outputs.append(future.result().output)
                except Exception as exc:
                    if not return_exceptions:
                        raise
                    outputs.append(exc)
        finally:
            for future in futures:
                if future.cancel() is False and not future.done():
                    self.cancel_running(future)
        return outputs

    async def abatch(
        self,
        cfgs: Iterable[ConfigLike],
        *,
        return_exceptions: bool = False,
        max_concurrency: int | None = None,
    ) -> list[Any]:
        """``batch`` for async callers (LangGraph's ``graph.abatch``): at most
        ``max_concurrency`` runs in flight; never blocks the caller's loop."""
        calls = [self._new_call(cfg, aio=True) for cfg in cfgs]
        limit = asyncio.Semaphore(max_concurrency or len(calls) or 1)

        async def one(call: Call) -> Any:
            async with limit:
                return (await self._aperform(call)).output

        tasks = [asyncio.ensure_future(one(call)) for call in calls]
        try:
            return list(await asyncio.gather(*tasks, return_exceptions=return_exceptions))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- streaming -----------------------------------------------------------------------------
    def stream(
        self,
        cfg: ConfigLike,
        stream_mode: StreamMode | list[StreamMode] = "updates",
        *,
        subgraphs: bool = False,
    ) -> Iterator[Any]:
        """Yield exactly what ``graph.stream(input, config, stream_mode=..., subgraphs=...)``
        yields, each chunk as the worker produces it (bounded buffering: a slow consumer
        slows the run). Leaving the loop early cancels the run on its worker."""
        call = self._new_call(cfg, "stream", stream_mode=stream_mode, subgraphs=subgraphs)
        events = EventChannel()
        return self._drain(events, self._start_streaming(call, events), raise_at_end=True)

    def submit_stream(
        self,
        cfg: ConfigLike,
        stream_mode: StreamMode | list[StreamMode] = "updates",
        *,
        subgraphs: bool = False,
    ) -> tuple[cf.Future[RunResult], EventChannel]:
        """Start a streamed run and return its future and its events: what ``stream`` and
        ``astream`` are built on, for callers that manage a run's life themselves (the HTTP
        server). Iterate the channel (``for`` or ``async for``) for the chunks, which end when
        the run does; cancel the future - or ``cancel_running`` it once it runs, and
        ``abandon()`` the channel - to stop the run; the future resolves once it has ended on
        its worker."""
        call = self._new_call(cfg, "stream", stream_mode=stream_mode, subgraphs=subgraphs)
        events = EventChannel()
        return self._start_streaming(call, events), events

    async def astream(
        self,
        cfg: ConfigLike,
        stream_mode: StreamMode | list[StreamMode] = "updates",
        *,
        subgraphs: bool = False,
    ) -> AsyncIterator[Any]:
        """``stream`` for async callers: an async iterator, never blocking the caller's loop."""
        call = self._new_call(cfg, "stream", stream_mode=stream_mode, subgraphs=subgraphs)
        # closed with this generator: leaving the loop early (``aclose()``) cancels the run
        # there and then, as it does LangGraph's own astream, not when the inner generator
        # is garbage-collected
        async with contextlib.aclosing(self._aevents(call, _Box())) as events:
            async for event in events:
                yield event

    def _start_streaming(self, call: Call, events: EventChannel) -> cf.Future[RunResult]:
        future = self._submitted(call, events)
        future.add_done_callback(lambda _: events.close())
        return future

    def _drain(
        self, events: EventChannel, future: cf.Future[RunResult], *, raise_at_end: bool = False
    ) -> Iterator[Any]:
        """Events until the run ends; a consumer that leaves (or fails) cancels the run."""
        try:
            yield from events
            if raise_at_end:
                future.result()
        finally:
            if not future.done():
                events.abandon()
                if not future.cancel():
                    self.cancel_running(future)

    async def _aevents(self, call: Call, result: _Box) -> AsyncGenerator[Any, None]:
        events = EventChannel()
        task = asyncio.ensure_future(self._aperform(call, events))
        task.add_done_callback(lambda _: events.close())
        try:
            async for event in events:
                yield event
            result.value = await task
        finally:
            if not task.done():
                events.abandon()
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    # -- state ---------------------------------------------------------------------------------
    def get_state(self, cfg: ConfigLike, *, subgraphs: bool = False) -> Any:
        """LangGraph's ``StateSnapshot`` of ``cfg``'s thread, read on a worker that owns the
        checkpointer's loop."""
        return self._perform(self._new_call(cfg, "get_state", subgraphs=subgraphs)).output

    async def aget_state(self, cfg: ConfigLike, *, subgraphs: bool = False) -> Any:
        call = self._new_call(cfg, "get_state", subgraphs=subgraphs)
        return (await self._aperform(call)).output

    def get_state_history(self, cfg: ConfigLike, limit: int | None = None) -> list[Any]:
        """The thread's ``StateSnapshot`` objects, newest first (``limit`` of them at most)."""
        call = self._new_call(cfg, "get_state_history", limit=limit)
        return list(self._perform(call).output)

    async def aget_state_history(self, cfg: ConfigLike, limit: int | None = None) -> list[Any]:
        call = self._new_call(cfg, "get_state_history", limit=limit)
        return list((await self._aperform(call)).output)

    def update_state(self, cfg: ConfigLike, values: Any, as_node: str | None = None) -> Any:
        """``graph.update_state``: write ``values`` as if ``as_node`` returned them; returns the
        new checkpoint's RunnableConfig."""
        call = self._new_call(cfg, "update_state", values=values, as_node=as_node)
        return self._perform(call).output

    async def aupdate_state(self, cfg: ConfigLike, values: Any, as_node: str | None = None) -> Any:
        call = self._new_call(cfg, "update_state", values=values, as_node=as_node)
        return (await self._aperform(call)).output

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting work, then release workers and resources, as
        ``concurrent.futures.Executor.shutdown``: ``wait=True`` drains (queued and running runs
        finish first); ``cancel_futures=True`` cancels runs that have not started. Idempotent.
        """
        self.close(wait, cancel_pending=cancel_futures)

    def close(self, wait: bool = True, *, cancel_pending: bool = False) -> None:
        """``shutdown(wait, cancel_futures=cancel_pending)``."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self.stop_workers(wait, cancel_pending)

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


async def _settled(future: cf.Future[RunResult], bound: float) -> None:
    """Wait for ``future`` to be done, whatever its outcome, at most ``bound`` seconds
    (shielded: a second cancellation of the waiter stops the wait, not the run)."""
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), bound)


class _Box:
    """Where an async generator leaves the RunResult for its caller."""

    value: RunResult


def _output(result: RunResult) -> Any:
    return result.output
