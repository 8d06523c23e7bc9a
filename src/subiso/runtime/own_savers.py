"""The checkpointer and store a compiled graph carries itself, and how a run must treat them.

A graph passed as an object (or imported compiled) may carry its own saver, compiled in the
way LangGraph's docs teach persistence. Two kinds cannot go through subiso's async dispatch
(``ainvoke``/``astream`` on the worker's loop) unchanged:

* **sync-only** - ``SqliteSaver``, ``PostgresSaver``, ``SqliteStore`` or any saver whose async
  methods raise ``NotImplementedError``: only ``invoke``/``stream``/``get_state``... work. Such
  a run is carried out with those sync methods on a thread of the worker's loop's default
  executor (:func:`call_in_thread`), whatever else it asks for: its events still go out one by
  one with back-pressure, and a timeout or a cancellation still ends the caller's wait at once
  (the run stops at its next step boundary - a sync node cannot be interrupted, in plain
  LangGraph as here);
* **bound to another loop** - ``AsyncSqliteSaver``, ``AsyncPostgresSaver``, their stores: they
  capture the loop they were opened on, and a run on any other loop fails deep inside with
  "bound to a different event loop" - the very error subiso exists to end. Such a run is
  refused before it starts (:func:`check_loop`), with a ConfigError naming the saver and the
  fix: a checkpointer spec (``checkpointer="sqlite:///runs.db"``), which subiso opens once
  per worker loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextvars
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from subiso.errors import ConfigError
from subiso.runtime import graph_calls
from subiso.runtime.graph_calls import Emit

if TYPE_CHECKING:
    from subiso.report import Status
    from subiso.runtime.call import Call


def _not_implemented(obj: Any, method: str) -> bool:
    """``obj.method`` is missing, abstract, or a body that only raises NotImplementedError
    (``BaseCheckpointSaver.aget_tuple`` and ``get_tuple``, ``SqliteSaver.aget_tuple``,
    ``SqliteStore.abatch``): judged from its code, without calling it."""
    fn = getattr(type(obj), method, None)
    if fn is None or getattr(fn, "__isabstractmethod__", False):
        return True
    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    names = set(code.co_names)
    return "NotImplementedError" in names and len(names - {"NotImplementedError"}) <= 1


#: Where a graph carries a saver: its own attributes, and LangGraph's config key lending one
#: to a graph compiled without (``configurable["__pregel_checkpointer"]``, set for subgraphs
#: by LangGraph itself and by callers that lend a saver).
_LENT_SAVER = "__pregel_checkpointer"


def _carried(graph: Any, config: Any) -> list[tuple[str, Any]]:
    """``(kind, saver-or-store)`` of what the run will use: the graph's own, and a saver the
    config lends it."""
    found = [(kind, getattr(graph, kind, None)) for kind in ("checkpointer", "store")]
    configurable = config.get("configurable") if isinstance(config, dict) else None
    if isinstance(configurable, dict):
        found.append(("checkpointer", configurable.get(_LENT_SAVER)))
    return [(kind, obj) for kind, obj in found if obj is not None and not isinstance(obj, bool)]


def _probe(kind: str, sync: bool) -> str:
    if kind == "checkpointer":
        return "get_tuple" if sync else "aget_tuple"
    return "batch" if sync else "abatch"


def sync_usable(graph: Any, config: Any = None) -> bool:
    """The graph's own saver and store (if any) work from sync code on this thread: neither is
    bound to an event loop (the async savers are) and both have their sync methods
    (``get_tuple``, ``batch``). Then an invoke may take the sync fast path, as a plain
    ``graph.invoke`` would - a subclass of InMemorySaver included, whose async methods may
    differ from its sync ones."""
    for kind, obj in _carried(graph, config):
        if isinstance(getattr(obj, "loop", None), asyncio.AbstractEventLoop):
            return False
        if _not_implemented(obj, _probe(kind, sync=True)):
            return False
    return True


def sync_only(graph: Any, config: Any = None) -> str | None:
    """``"checkpointer SqliteSaver"`` when the graph's own saver (or store, or a saver its
    config lends it) can only be used from sync code; None when it has none or an async-capable
    one."""
    for kind, obj in _carried(graph, config):
        if _not_implemented(obj, _probe(kind, sync=False)):
            return f"{kind} {type(obj).__name__}"
    return None


def check_loop(graph: Any, tier: str, config: Any = None) -> None:
    """Refuse a graph whose own async saver or store is bound to a loop other than the running
    one (see the module docstring)."""
    here = asyncio.get_running_loop()
    for kind, obj in _carried(graph, config):
        bound = getattr(obj, "loop", None)
        if isinstance(bound, asyncio.AbstractEventLoop) and bound is not here:
            name = type(obj).__name__
            spec = "sqlite:///runs.db" if "Sqlite" in name else "postgresql://user@host/db"
            raise ConfigError(
                f"GraphConfig.graph: the graph's {kind} {name} is bound to the event loop it "
                f"was opened on, and this run executes on the {tier} tier's own loop, where it "
                f"fails ('bound to a different event loop'); compile the graph without it and "
                f'pass {kind}="{spec}" in the GraphConfig (or the executor), which subiso opens '
                "once per worker loop"
            )


class _Stopped(Exception):
    """The awaiting side gave up the run (timeout, cancellation): stop at the next chunk."""


class _Bridge:
    """The thread's way back to the loop: events emitted through it (each waits for room in
    the consumer's window, as on the loop), and a stop that wakes it at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop, emit: Emit | None) -> None:
        self.loop = loop
        self._emit = emit
        self._lock = threading.Lock()
        self._stopped = False
        self._pending: cf.Future[Any] | None = None

    def check(self) -> None:
        if self._stopped:
            raise _Stopped

    def emit(self, event: Any) -> None:
        if self._emit is None:
            self.check()
            return
        with self._lock:
            if self._stopped:
                raise _Stopped
            try:
                pending = asyncio.run_coroutine_threadsafe(self._emit(event), self.loop)
            except RuntimeError:  # the loop closed: nobody waits for this run any more
                raise _Stopped from None
            self._pending = pending
        try:
            pending.result()
        except cf.CancelledError:
            raise _Stopped from None
        finally:
            with self._lock:
                self._pending = None

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            pending = self._pending
        if pending is not None:
            pending.cancel()


async def call_in_thread(graph: Any, call: Call, emit: Emit | None) -> tuple[Any, Status]:
    """Carry out ``call`` with the graph's sync methods on a thread of the running loop's
    default executor; cancelling this coroutine (a timeout) stops the run at its next step."""
    loop = asyncio.get_running_loop()
    bridge = _Bridge(loop, emit)
    watched = call.op in ("invoke", "stream") and (emit is not None or call.cfg.timeout)
    context = contextvars.copy_context()  # the run's (offload route, worker state), as to_thread
    work = loop.run_in_executor(
        None, context.run, _sync_call, graph, call, bridge if watched else None
    )
    work.add_done_callback(_retrieve)  # read even when the caller has gone
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        bridge.stop()
        raise


def _retrieve(work: asyncio.Future[Any]) -> None:
    if not work.cancelled():
        work.exception()


def _sync_call(graph: Any, call: Call, bridge: _Bridge | None) -> tuple[Any, Status]:
    cfg = call.cfg
    if call.op == "get_state":
        return graph.get_state(cfg.config, subgraphs=call.subgraphs), "done"
    if call.op == "get_state_history":
        return list(graph.get_state_history(cfg.config, limit=call.limit)), "done"
    if call.op == "update_state":
        return graph.update_state(cfg.config, call.values, as_node=call.as_node), "done"
    options = graph_calls.invoke_options(cfg)
    if call.op == "stream":
        chunks = graph.stream(
            graph_calls.run_input_of(cfg),
            cfg.config or None,
            stream_mode=call.stream_mode,
            subgraphs=call.subgraphs,
            **options,
        )
        _each(chunks, bridge)
        paused = graph_calls.has_checkpoints(graph, cfg) and bool(graph.get_state(cfg.config).next)
        return None, "interrupted" if paused else "done"
    run_input = graph_calls.run_input_of(cfg)
    if cfg.recover and graph_calls.resumable(graph.get_state(cfg.config), cfg):
        run_input = None
    if bridge is None:
        output = graph.invoke(run_input, cfg.config or None, **options)
    else:  # streamed, as execute._invoke does, so that each step can be watched
        latest: Any = None
        interrupts: list[Any] = []

        def updates(mode: str, payload: Any) -> None:
            nonlocal latest
            if mode == "values":
                latest = payload
                bridge.check()
                return
            if (
                isinstance(payload, dict)
                and (found := payload.get(graph_calls.INTERRUPT)) is not None
            ):
                interrupts.extend(found)
            bridge.emit(payload)

        chunks = graph.stream(
            run_input, cfg.config or None, stream_mode=["updates", "values"], **options
        )
        _each(chunks, None, lambda chunk: updates(*chunk))
        output = latest
        if interrupts:
            output = (
                {**latest, graph_calls.INTERRUPT: interrupts}
                if isinstance(latest, dict)
                else {graph_calls.INTERRUPT: interrupts}
            )
    if graph_calls.interrupted(output) or (
        graph_calls.may_pause(graph, cfg) and graph.get_state(cfg.config).next
    ):
        return output, "interrupted"
    return output, "done"


def _each(chunks: Any, bridge: _Bridge | None, handle: Callable[[Any], None] | None = None) -> None:
    """Feed every chunk of a sync stream to ``handle`` (default: ``bridge.emit``); a stop
    closes the stream (LangGraph ends the run at that step boundary)."""
    try:
        for chunk in chunks:
            if handle is not None:
                handle(chunk)
            elif bridge is not None:
                bridge.emit(chunk)
    except _Stopped:
        pass
    finally:
        chunks.close()
