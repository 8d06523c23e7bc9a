"""Carry out one :class:`~subiso.runtime.call.Call` on the current worker: choose sync or async
dispatch, time it, report it.

Dispatch is chosen per graph, not one-size-fits-all: a graph whose nodes are all sync and whose
checkpointer is usable from sync code runs with ``graph.invoke`` on a thread with no running
loop (LangGraph's ``ainvoke`` pushes every sync node through a thread pool, a thread hop per
node: ``bench_tiers.py``'s "sync 3-node arun" rows show the difference); everything else - every run with a timeout (only a coroutine
can be cancelled), every run whose events are streamed, every state operation - runs on the
worker's own loop.

Events: an ``emit`` coroutine function receives each event as LangGraph produces it and may
wait (that wait is the back-pressure of a slow consumer).
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from subiso.config import GraphConfig
from subiso.errors import ConfigError, RunAborted, RunTimeout
from subiso.report import Mode, RunReport, RunResult, Status
from subiso.runtime import own_savers
from subiso.runtime.call import Call
from subiso.runtime.loops import run_on_fresh_loop
from subiso.runtime.resources import LoopResources, Memory, needs_loop
from subiso.runtime.targets import Target, TargetCache

#: Where a run's events go: awaited once per event, on the worker's loop.
Emit = Callable[[Any], Awaitable[None]]
#: Told the loop and main task of a run on a fresh loop, so it can be cancelled from afar.
OnTask = Callable[[asyncio.AbstractEventLoop, "asyncio.Task[RunResult]"], None]

INTERRUPT = "__interrupt__"
#: What a node may raise that would otherwise end its thread, worker or host.
_ENDING = (SystemExit, KeyboardInterrupt)


def as_call(work: Call | GraphConfig) -> Call:
    """A Call for ``work`` (a bare GraphConfig is an invoke)."""
    return work if isinstance(work, Call) else Call(cfg=work)


def current_interpreter_id() -> int:
    """The id of the interpreter running this code (0 is the main interpreter)."""
    for name in ("_interpreters", "_xxsubinterpreters"):
        try:
            mod = __import__(name)
        except ImportError:
            continue
        current = mod.get_current()
        return int(current[0] if isinstance(current, tuple) else current)
    return 0


_INTERPRETER_ID = current_interpreter_id()


class WorkerRuntime:
    """What one worker keeps for its lifetime: resolved targets, its loop's checkpointers and
    stores, and the graphs compiled against them.

    ``memory`` is the ``"memory"`` checkpointer/store holder; executors that run in this
    process pass one per executor so that a thread's checkpoints survive across workers.
    """

    def __init__(
        self,
        tier: str,
        *,
        mode: Mode = "full",
        fallback_reason: str | None = None,
        selected_by: str | None = None,
        targets: TargetCache | None = None,
        worker_init: str | None = None,
        memory: Memory | None = None,
        in_caller: bool = False,
    ) -> None:
        self.tier = tier
        self.in_caller = in_caller  # runs on the caller's own thread (inline, context)
        self.mode: Mode = mode
        self.fallback_reason = fallback_reason
        self.selected_by = selected_by
        self.targets = targets if targets is not None else TargetCache()
        self.resources = LoopResources(worker_init, memory)
        self._compiled: dict[tuple[Any, str | None, str | None], Any] = {}

    def plan(self, work: Call | GraphConfig) -> Target:
        """Resolve the target (cached); raises ConfigError for a bad import path or object,
        or for an operation a workflow function does not have."""
        call = as_call(work)
        try:
            target = self.targets.get(call.cfg.graph)
        except _ENDING as exc:  # a factory raising KeyboardInterrupt (SystemExit: ConfigError)
            aborted = self._aborted(call.cfg, exc)
            if aborted is exc:
                raise
            raise aborted from exc
        if target.kind == "function" and call.op != "invoke":
            raise ConfigError(
                f"{call.op}: {call.cfg.label} is a workflow function; streaming and state "
                "need a LangGraph graph"
            )
        return target

    def runs_sync(self, target: Target, work: Call | GraphConfig, emit: Emit | None = None) -> bool:
        """True when this call can go through the sync fast path (see the module docstring)."""
        call = as_call(work)
        cfg = call.cfg
        if emit is not None or call.op != "invoke" or cfg.timeout is not None or call.aio:
            return False
        if not self.resources.init.ready:  # worker_init is entered on the loop first
            return False
        if target.kind == "function":
            return not target.is_async
        if not target.sync_nodes or needs_loop(cfg.checkpointer) or needs_loop(cfg.store):
            return False
        return target.kind != "graph" or own_savers.sync_usable(target.obj, cfg.config)

    def run_sync(self, target: Target, work: Call | GraphConfig, loop_id: int | None) -> RunResult:
        """Invoke on this thread, which must have no running event loop."""
        cfg = as_call(work).cfg
        try:
            return self._run_sync(target, cfg, loop_id)
        except _ENDING as exc:
            aborted = self._aborted(cfg, exc)
            if aborted is exc:
                raise
            raise aborted from exc

    def _run_sync(self, target: Target, cfg: GraphConfig, loop_id: int | None) -> RunResult:
        start = time.perf_counter()
        self.resources.init.bind()
        if target.kind == "function":
            return self._result(target.obj(cfg.input), "done", start, loop_id)
        graph = self._graph(target, cfg)
        if graph is None:  # "memory": the only checkpointer/store usable from sync code
            saver = self.resources.memory_saver() if cfg.checkpointer else None
            store = self.resources.memory_store() if cfg.store else None
            graph = self._compiled[_key(target, cfg)] = target.compile(saver, store)
        run_input = _run_input(cfg)
        if cfg.recover and _resumable(graph.get_state(cfg.config)):
            run_input = None
        output = graph.invoke(run_input, cfg.config or None, **_invoke_options(cfg))
        status: Status = "done"
        if _interrupted(output) or (_may_pause(graph, cfg) and graph.get_state(cfg.config).next):
            status = "interrupted"
        return self._result(output, status, start, loop_id)

    def run_once(
        self,
        work: Call | GraphConfig,
        context: contextvars.Context | None = None,
        emit: Emit | None = None,
        on_task: OnTask | None = None,
    ) -> RunResult:
        """Carry out ``work`` on this thread (no running loop here), keeping nothing: a
        sync-dispatchable run directly, anything else on a fresh loop closed with this
        runtime's checkpointers before returning. For a runtime made for one call; in
        ``context`` if given."""
        call = as_call(work)
        target = self.plan(call)
        if self.runs_sync(target, call, emit):
            if context is None:
                return self.run_sync(target, call, None)
            return context.run(self.run_sync, target, call, None)
        return run_on_fresh_loop(
            lambda: self.run_async(target, call, emit),
            context=context,
            before_close=self.aclose,
            on_task=on_task,
        )

    async def run_async(
        self, target: Target, work: Call | GraphConfig, emit: Emit | None = None
    ) -> RunResult:
        """Carry out ``work`` on the running loop; cancelled on it when its timeout passes."""
        call = as_call(work)
        cfg = call.cfg
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        coro = self._call_async(target, call, emit)
        deadline = None if cfg.timeout is None else loop.time() + cfg.timeout
        try:
            if cfg.timeout is None:
                output, status = await coro
            else:
                output, status = await asyncio.wait_for(coro, cfg.timeout)
        except asyncio.TimeoutError:
            if deadline is None or loop.time() < deadline:
                raise  # the workflow's own TimeoutError (a node's), not this run's deadline
            raise RunTimeout(
                f"run of {cfg.label!r} exceeded its timeout of {cfg.timeout:g}s and was "
                f"cancelled on its {self.tier} worker"
            ) from None
        except _ENDING as exc:
            aborted = self._aborted(cfg, exc)
            if aborted is exc:
                raise
            raise aborted from exc
        return self._result(output, status, start, id(loop))

    async def _call_async(
        self, target: Target, call: Call, emit: Emit | None
    ) -> tuple[Any, Status]:
        cfg = call.cfg
        await self.resources.init.enter()
        self.resources.init.bind()
        if target.kind == "function":
            if target.is_async:
                return await target.obj(cfg.input), "done"
            return await asyncio.to_thread(target.obj, cfg.input), "done"
        graph = self._graph(target, cfg)
        if graph is None:
            saver = (
                await self.resources.checkpointer(cfg.checkpointer) if cfg.checkpointer else None
            )
            store = await self.resources.store(cfg.store) if cfg.store else None
            graph = self._compiled[_key(target, cfg)] = target.compile(saver, store)
        if own_savers.sync_only(graph, cfg.config) is not None:  # sync methods, off this loop
            return await own_savers.call_in_thread(graph, call, emit)
        own_savers.check_loop(graph, self.tier, cfg.config)
        if call.op == "invoke":
            return await _invoke(graph, cfg, emit)
        if call.op == "stream":
            return await _stream(graph, call, emit)
        if call.op == "get_state":
            return await graph.aget_state(cfg.config, subgraphs=call.subgraphs), "done"
        if call.op == "get_state_history":
            history = graph.aget_state_history(cfg.config, limit=call.limit)
            return [snapshot async for snapshot in history], "done"
        return await graph.aupdate_state(cfg.config, call.values, as_node=call.as_node), "done"

    def _aborted(self, cfg: GraphConfig, exc: BaseException) -> BaseException:
        """``exc`` as its caller should see it: RunAborted in a worker; a KeyboardInterrupt in
        the caller's own thread (inline, context) stays the caller's."""
        if isinstance(exc, KeyboardInterrupt) and self.in_caller:
            return exc
        return RunAborted(
            f"run of {cfg.label!r} raised {type(exc).__name__}({exc}); the {self.tier} "
            "worker caught it, so it ended neither the worker nor the host"
        )

    def _graph(self, target: Target, cfg: GraphConfig) -> Any:
        """The compiled graph for this checkpointer and store, or None if it must still be
        compiled against this worker's (savers and stores are per loop, so per runtime)."""
        if cfg.checkpointer is None and cfg.store is None:
            return target.default_graph
        return self._compiled.get(_key(target, cfg))

    def _result(self, output: Any, status: Status, start: float, loop_id: int | None) -> RunResult:
        return RunResult(output, self.report(time.perf_counter() - start, loop_id, status))

    def report(self, duration_s: float, loop_id: int | None, status: Status = "done") -> RunReport:
        return RunReport(
            tier=self.tier,
            mode=self.mode,
            status=status,
            fallback_reason=self.fallback_reason,
            selected_by=self.selected_by,
            pid=os.getpid(),
            thread_id=threading.get_ident(),
            interpreter_id=_INTERPRETER_ID,
            loop_id=loop_id,
            duration_s=duration_s,
        )

    async def aclose(self) -> None:
        """Close this worker's checkpointers; must run on the loop that opened them."""
        self._compiled.clear()
        await self.resources.aclose()


async def _invoke(graph: Any, cfg: GraphConfig, emit: Emit | None) -> tuple[Any, Status]:
    """``graph.ainvoke``; with ``emit``, the same run streamed (updates emitted as they happen)
    and its output assembled exactly as ``ainvoke`` assembles it."""
    run_input = _run_input(cfg)
    if cfg.recover and _resumable(await graph.aget_state(cfg.config)):
        run_input = None
    options = _invoke_options(cfg)
    if emit is None:
        output = await graph.ainvoke(run_input, cfg.config or None, **options)
    else:
        latest: Any = None
        interrupts: list[Any] = []
        chunks = graph.astream(
            run_input, cfg.config or None, stream_mode=["updates", "values"], **options
        )
        async for mode, payload in chunks:
            if mode == "values":
                latest = payload
                continue
            if isinstance(payload, dict) and (found := payload.get(INTERRUPT)) is not None:
                interrupts.extend(found)
            await emit(payload)
        output = latest
        if interrupts:
            output = (
                {**latest, INTERRUPT: interrupts}
                if isinstance(latest, dict)
                else {INTERRUPT: interrupts}
            )
    if _interrupted(output):
        return output, "interrupted"
    if _may_pause(graph, cfg) and (await graph.aget_state(cfg.config)).next:
        return output, "interrupted"
    return output, "done"


async def _stream(graph: Any, call: Call, emit: Emit | None) -> tuple[Any, Status]:
    """``graph.astream``: every chunk emitted as produced; the output is None."""
    cfg = call.cfg
    chunks = graph.astream(
        _run_input(cfg),
        cfg.config or None,
        stream_mode=call.stream_mode,
        subgraphs=call.subgraphs,
        **_invoke_options(cfg),
    )
    async for chunk in chunks:
        if emit is not None:
            await emit(chunk)
    paused = _has_checkpoints(graph, cfg) and bool((await graph.aget_state(cfg.config)).next)
    return None, "interrupted" if paused else "done"


def _run_input(cfg: GraphConfig) -> Any:
    if cfg.is_resume:
        from langgraph.types import Command

        return Command(resume=cfg.resume)
    return cfg.input


def _interrupted(output: Any) -> bool:
    return isinstance(output, dict) and bool(output.get(INTERRUPT))


def _has_checkpoints(graph: Any, cfg: GraphConfig) -> bool:
    return graph.checkpointer not in (None, False) and cfg.thread_id is not None


def _may_pause(graph: Any, cfg: GraphConfig) -> bool:
    """A static breakpoint may have paused the run (no ``__interrupt__`` tells of those)."""
    static = (
        cfg.interrupt_before
        or cfg.interrupt_after
        or getattr(graph, "interrupt_before_nodes", None)
        or getattr(graph, "interrupt_after_nodes", None)
    )
    return bool(static) and _has_checkpoints(graph, cfg)


def _key(target: Target, cfg: GraphConfig) -> tuple[Any, str | None, str | None]:
    return (target.path, cfg.checkpointer, cfg.store)


def _invoke_options(cfg: GraphConfig) -> dict[str, Any]:
    """The keyword arguments of ``invoke``/``stream`` that the GraphConfig sets."""
    options: dict[str, Any] = {}
    for name in ("context", "durability", "interrupt_before", "interrupt_after"):
        value = getattr(cfg, name)
        if value is not None:
            options[name] = value
    return options


def _resumable(state: Any) -> bool:
    """A thread whose last checkpoint still has nodes to run (a run stopped part-way)."""
    return bool(getattr(state, "next", ()))
