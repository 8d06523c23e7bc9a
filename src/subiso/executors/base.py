"""Executor: the one contract every tier implements, with every caller-facing method written once.

A tier implements three public hooks, in the spirit of ``concurrent.futures.Executor``:

* ``start(call, events=None) -> Future[RunResult]`` - begin one
  :class:`~subiso.runtime.call.Call` (an invoke, a stream or a state operation on a prepared
  GraphConfig); the future resolves exactly once with its RunResult or exception; each event
  the run produces goes to ``events`` (an :class:`~subiso.events.EventChannel`) as it happens;
* ``shutdown(wait, cancel_pending)`` - release workers and resources (called once, by
  ``close``);
* ``cancel_running(future)`` - stop a run that already executes (an awaiting caller was
  cancelled, a stream's consumer left); best effort, optional.

Tiers that run in the caller's own thread or loop (inline, context) or that can hand a sync
caller its reply directly (process) add a fast path through one optional hook, in its sync and
async form: ``call(call) -> RunResult`` and ``acall(call, events=None)``. By default both go
through ``start``.

Everything callers use - ``run``, ``arun``, ``execute``, ``aexecute``, ``submit``, ``map``,
``stream``, ``astream``, ``get_state``, ``get_state_history``, ``update_state`` and their async
forms, ``close``, the context managers - is defined here and only here, so a plugin tier gets
all of it, and every change to it, by implementing ``start``.
"""

from __future__ import annotations

import abc
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
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

from typing_extensions import Unpack

from subiso._futures import (
    Deadlines,
    DerivedFuture,
    relay,
    settle,
)

if TYPE_CHECKING:
    from subiso._capabilities import Capabilities
from subiso.allow import check_allowed
from subiso.config import GraphConfig
from subiso.errors import ConfigError, ExecutorClosed, RunTimeout
from subiso.events import EventChannel
from subiso.report import RunResult
from subiso.runtime.call import Call, StreamMode
from subiso.validate import checkpointer_spec, glob_patterns, import_path, seconds

ConfigLike = GraphConfig | Mapping[str, Any]
#: Called on the caller's side with each event of a run.
OnEvent = Callable[[Any], object]


#: How long past a run's timeout its caller waits for the worker to end the run by itself
#: (it cancels it at the timeout) before control comes back regardless (``Executor.started``).
TIMEOUT_GRACE_S = 0.25
#: How long a cancelled ``arun``/``astream`` waits for its run to end on the worker (a
#: cancelled ``ainvoke`` returns once its tasks are cancelled) before the caller's
#: cancellation completes regardless: a run the tier cannot reach (a sync node holding its
#: thread, a call inside an interpreter) must not hold the caller.
CANCEL_GRACE_S = 2.0

_DEADLINES: Deadlines | None = None
_DEADLINES_LOCK = threading.Lock()


def _deadlines() -> Deadlines:
    """The one timer thread watching every executor's runs' deadlines (started on first use)."""
    global _DEADLINES
    with _DEADLINES_LOCK:
        if _DEADLINES is None:
            _DEADLINES = Deadlines("subiso-run-deadlines")
        return _DEADLINES


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
    * ``selected_by`` - why this tier was chosen when something other than the caller chose
      it (the "auto" tier); copied into every ``RunReport.selected_by``.
    """

    timeout: float | None
    checkpointer: str | None
    worker_init: str | None
    allowed_graphs: Sequence[str] | None
    allowed_locations: Sequence[str] | None
    selected_by: str | None


class Executor(abc.ABC):
    """Run GraphConfigs in one isolation tier.

    Options shared by every tier: ``timeout`` (seconds; used when a GraphConfig has none) and
    ``checkpointer`` (used when a GraphConfig names none). ``max_workers`` where a tier has
    workers.
    """

    tier: ClassVar[str] = "?"
    #: One line for ``subiso info``: what this tier gives.
    summary: ClassVar[str] = ""
    #: True when runs execute in another process or interpreter, which imports the graph
    #: itself: a compiled graph object cannot be passed there (``boundary`` names where).
    crosses_boundary: ClassVar[bool] = False
    boundary: ClassVar[str] = "process"

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
        self._closed = False
        self._close_lock = threading.Lock()

    @classmethod
    def availability(cls, caps: Capabilities) -> tuple[bool, str]:
        """Whether this tier runs on the Python ``caps`` describes, and a one-line note: what it
        gives there, or why it does not run. Tiers with conditions override it."""
        return True, cls.summary or (cls.__doc__ or cls.__name__).strip().splitlines()[0]

    # -- the tier's hooks ------------------------------------------------------------------------
    @abc.abstractmethod
    def start(self, call: Call, events: EventChannel | None = None) -> cf.Future[RunResult]:
        """Begin ``call`` (its GraphConfig prepared: defaults applied); return its future.

        The future resolves exactly once: a RunResult, the run's exception, or cancelled (only
        if the run will not complete). Tiers with workers return at once; tiers that run in
        the caller's thread may run it here and return a done future - except with
        ``events``, whose consumer reads while the run goes on.
        """

    def shutdown(self, wait: bool, cancel_pending: bool) -> None:
        """Release workers and resources; called once, by ``close``."""
        return None

    def cancel_running(self, future: cf.Future[RunResult]) -> None:
        """Stop a run that already executes (its awaiting caller was cancelled); best effort."""
        return None

    def abandon(self, future: cf.Future[RunResult]) -> None:
        """Give up a run that went past its timeout and did not stop when cancelled (a sync
        node cannot be interrupted): its caller already has RunTimeout; make sure the worker
        it holds takes no more runs and that nothing waits for it. Optional."""
        return None

    # -- deadlines ----------------------------------------------------------------------------
    def started(self, call: Call, events: EventChannel | None = None) -> cf.Future[RunResult]:
        """``start(call, events)`` with the run's deadline watched from the caller's side: if
        the worker has not ended the run ``TIMEOUT_GRACE_S`` after its timeout, the future
        gets RunTimeout anyway (control is back) and the tier is told to ``abandon`` it."""
        future = self.start(call, events)
        self.watch_deadline(future, call.cfg)
        return future

    def watch_deadline(self, future: cf.Future[RunResult], cfg: GraphConfig) -> None:
        """Arm ``started``'s deadline on a future a tier made itself (its own fast path)."""
        timeout = cfg.timeout
        if timeout is None or future.done():
            return
        deadline = _deadlines().call_later(
            timeout + TIMEOUT_GRACE_S, lambda: self._overdue(future, cfg)
        )
        future.add_done_callback(lambda _: deadline.cancel())

    def _overdue(self, future: cf.Future[RunResult], cfg: GraphConfig) -> None:
        if future.done():
            return
        settle(
            future,
            exc=RunTimeout(
                f"run of {cfg.label!r} went past its timeout of {cfg.timeout:g}s and did not "
                f"stop when cancelled; control is back with the caller and the {self.tier} "
                "tier gave up its worker"
            ),
        )
        self.cancel_running(future)
        self.abandon(future)

    # -- the optional fast path ------------------------------------------------------------------
    def call(self, call: Call) -> RunResult:
        """Carry out ``call`` to completion for a sync caller. Override to skip the future
        (tiers running in the caller's thread, or reading their own reply)."""
        return self.started(call).result()

    async def acall(self, call: Call, events: EventChannel | None = None) -> RunResult:
        """Await ``call`` without blocking the caller's loop; cancelling the caller cancels
        the run. Override to run on the caller's loop itself."""
        future = self.started(call, events)
        try:
            # wrap_future cancels ``future`` when we are cancelled; that only works while it
            # is still queued, so a running one is cancelled on its worker.
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if future.running():
                self.cancel_running(future)
                if type(self).cancel_running is not Executor.cancel_running:
                    # as a cancelled ``ainvoke`` returns once LangGraph has cancelled its
                    # tasks: the run ends on its worker before this cancellation completes
                    await _settled(future, CANCEL_GRACE_S)
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
        return self.started(Call(cfg=self.prepare(cfg)))

    def submit(self, cfg: ConfigLike) -> cf.Future[Any]:
        """Start a run; the future's result is the run's output, as with ``run``."""
        inner = self.submit_execute(cfg)
        return relay(inner, DerivedFuture(), _output, on_cancel=self.cancel_running)

    def execute(self, cfg: ConfigLike, *, on_event: OnEvent | None = None) -> RunResult:
        """Run to completion and return ``RunResult(output, report)``.

        Safe from plain sync code and from a thread whose loop is running: it only waits on a
        future, it never starts or nests an event loop here. ``on_event(update)`` is called on
        this thread with each node's update (LangGraph's ``"updates"`` stream) as it happens.
        """
        call = Call(cfg=self.prepare(cfg))
        if on_event is None:
            return self.call(call)
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
        call = Call(cfg=self.prepare(cfg), aio=True)
        if on_event is None:
            return await self.acall(call)
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
        call = Call(
            cfg=self.prepare(cfg), op="stream", stream_mode=stream_mode, subgraphs=subgraphs
        )
        events = EventChannel()
        return self._drain(events, self._start_streaming(call, events), raise_at_end=True)

    async def astream(
        self,
        cfg: ConfigLike,
        stream_mode: StreamMode | list[StreamMode] = "updates",
        *,
        subgraphs: bool = False,
    ) -> AsyncIterator[Any]:
        """``stream`` for async callers: an async iterator, never blocking the caller's loop."""
        call = Call(
            cfg=self.prepare(cfg), op="stream", stream_mode=stream_mode, subgraphs=subgraphs
        )
        # closed with this generator: leaving the loop early (``aclose()``) cancels the run
        # there and then, as it does LangGraph's own astream, not when the inner generator
        # is garbage-collected
        async with contextlib.aclosing(self._aevents(call, _Box())) as events:
            async for event in events:
                yield event

    def _start_streaming(self, call: Call, events: EventChannel) -> cf.Future[RunResult]:
        future = self.started(call, events)
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
        task = asyncio.ensure_future(self.acall(call, events))
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
        return self.call(Call(cfg=self.prepare(cfg), op="get_state", subgraphs=subgraphs)).output

    async def aget_state(self, cfg: ConfigLike, *, subgraphs: bool = False) -> Any:
        call = Call(cfg=self.prepare(cfg), op="get_state", subgraphs=subgraphs)
        return (await self.acall(call)).output

    def get_state_history(self, cfg: ConfigLike, limit: int | None = None) -> list[Any]:
        """The thread's ``StateSnapshot`` objects, newest first (``limit`` of them at most)."""
        call = Call(cfg=self.prepare(cfg), op="get_state_history", limit=limit)
        return list(self.call(call).output)

    async def aget_state_history(self, cfg: ConfigLike, limit: int | None = None) -> list[Any]:
        call = Call(cfg=self.prepare(cfg), op="get_state_history", limit=limit)
        return list((await self.acall(call)).output)

    def update_state(self, cfg: ConfigLike, values: Any, as_node: str | None = None) -> Any:
        """``graph.update_state``: write ``values`` as if ``as_node`` returned them; returns the
        new checkpoint's RunnableConfig."""
        call = Call(cfg=self.prepare(cfg), op="update_state", values=values, as_node=as_node)
        return self.call(call).output

    async def aupdate_state(self, cfg: ConfigLike, values: Any, as_node: str | None = None) -> Any:
        call = Call(cfg=self.prepare(cfg), op="update_state", values=values, as_node=as_node)
        return (await self.acall(call)).output

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
