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

Every call executes as its run (:mod:`subiso.observe`): the run's
:class:`~subiso.observe.runs.RunTag` is current for its duration (its log records and tasks
carry it), the caller's trace context is restored around the graph call, the run's start and
end are logged on the tier's logger, and its report says who it was and when it ran.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from subiso._capabilities import gil_note
from subiso.config import GraphConfig
from subiso.errors import ConfigError, RunAborted, RunTimeout
from subiso.observe import log as run_log
from subiso.observe.loop_health import DEFAULT_BLOCK_THRESHOLD_S, tag_current_task
from subiso.observe.metrics import RunMeter
from subiso.observe.runs import CURRENT_RUN, RunTag, run_info
from subiso.observe.trace import Undo, restore
from subiso.report import Mode, RunReport, RunResult, Status
from subiso.runtime import own_savers
from subiso.runtime.call import Call
from subiso.runtime.graph_calls import Emit as Emit  # the tiers import it from here
from subiso.runtime.graph_calls import (
    ainvoke_call,
    astream_call,
    interrupted,
    invoke_options,
    may_pause,
    resumable,
    run_input_of,
)
from subiso.runtime.loops import run_on_fresh_loop
from subiso.runtime.resources import LoopResources, Memory, needs_loop
from subiso.runtime.targets import Target, TargetCache

#: Told the loop and main task of a run on a fresh loop, so it can be cancelled from afar.
OnTask = Callable[[asyncio.AbstractEventLoop, "asyncio.Task[RunResult]"], None]

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
    ``meter`` is the executor's :class:`~subiso.observe.metrics.RunMeter` (runs running, loop
    lag) where the executor lives in this process; ``block_threshold`` is how long this
    worker's loop may be blocked before the watchdog warns; ``on_lag`` receives its loop's lag
    samples (default: the meter).
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
        meter: RunMeter | None = None,
        block_threshold: float | None = None,
        on_lag: Callable[[float], None] | None = None,
    ) -> None:
        self.tier = tier
        self.meter = meter
        self.block_threshold = (
            DEFAULT_BLOCK_THRESHOLD_S if block_threshold is None else block_threshold
        )
        self.on_lag = on_lag
        run_log.install()
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
        call = as_call(work)
        tag, token, undo = self._enter(call)
        try:
            result = self._run_sync(target, call.cfg, loop_id, tag)
        except _ENDING as exc:
            aborted = self._aborted(call.cfg, exc)
            self._exit(tag, call, aborted)
            if aborted is exc:
                raise
            raise aborted from exc
        except BaseException as exc:
            self._exit(tag, call, exc)
            raise
        else:
            self._exit(tag, call, None, result.report.status)
            return result
        finally:
            self._leave(token, undo)

    def _run_sync(
        self, target: Target, cfg: GraphConfig, loop_id: int | None, tag: RunTag
    ) -> RunResult:
        self.resources.init.bind()
        if target.kind == "function":
            return self._result(target.obj(cfg.input), "done", tag, loop_id)
        graph = self._graph(target, cfg)
        if graph is None:  # "memory": the only checkpointer/store usable from sync code
            saver = self.resources.memory_saver() if cfg.checkpointer else None
            store = self.resources.memory_store() if cfg.store else None
            graph = self._compiled[_key(target, cfg)] = target.compile(saver, store)
        run_input = run_input_of(cfg)
        if cfg.recover and resumable(graph.get_state(cfg.config), cfg):
            run_input = None
        output = graph.invoke(run_input, cfg.config or None, **invoke_options(cfg))
        status: Status = "done"
        if interrupted(output) or (may_pause(graph, cfg) and graph.get_state(cfg.config).next):
            status = "interrupted"
        return self._result(output, status, tag, loop_id)

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
        tag, token, undo = self._enter(call)
        loop = asyncio.get_running_loop()
        coro = self._call_async(target, call, emit)
        deadline = None if cfg.timeout is None else loop.time() + cfg.timeout
        try:
            if cfg.timeout is None:
                output, status = await coro
            else:
                output, status = await asyncio.wait_for(coro, cfg.timeout)
        except asyncio.TimeoutError as exc:
            if deadline is None or loop.time() < deadline:
                # the workflow's own TimeoutError (a node's), not this run's deadline
                self._exit(tag, call, exc)
                raise
            timeout = RunTimeout(
                f"run of {cfg.label!r} exceeded its timeout of {cfg.timeout:g}s and was "
                f"cancelled on its {self.tier} worker"
            )
            self._exit(tag, call, timeout)
            raise timeout from None
        except _ENDING as exc:
            aborted = self._aborted(cfg, exc)
            self._exit(tag, call, aborted)
            if aborted is exc:
                raise
            raise aborted from exc
        except BaseException as exc:
            self._exit(tag, call, exc)
            raise
        else:
            self._exit(tag, call, None, status)
        finally:
            self._leave(token, undo)
        return self._result(output, status, tag, id(loop))

    # -- the run around the call -------------------------------------------------------------
    def _enter(self, call: Call) -> tuple[RunTag, Any, Undo | None]:
        """Make ``call`` the current run here: its tag, the caller's trace, its start."""
        run = call.run if call.run is not None else run_info(call.cfg.config)
        cfg = call.cfg
        tag = RunTag(
            run.run_id,
            self.tier,
            thread_id=cfg.thread_id,
            graph=cfg.label,
            submitted_at=run.submitted_at,
            interpreter_id=_INTERPRETER_ID,
        )
        token = CURRENT_RUN.set(tag)
        tag_current_task(tag)
        undo = restore(run.trace) if run.trace is not None else None
        if call.is_run:
            if self.meter is not None:
                self.meter.started()
            run_log.run_started(tag)
        return tag, token, undo

    def _exit(
        self,
        tag: RunTag,
        call: Call,
        error: BaseException | None,
        status: Status = "done",
    ) -> None:
        """The run is over (its tasks still pending from now on are leftovers)."""
        tag.ended = True
        if not call.is_run:
            return
        if self.meter is not None:
            self.meter.ended()
        outcome = status if error is None else run_log.outcome_of(error)
        run_log.run_finished(tag, outcome, time.perf_counter() - tag.started, error)

    @staticmethod
    def _leave(token: Any, undo: Undo | None) -> None:
        if undo is not None:
            undo()
        CURRENT_RUN.reset(token)

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
            return await ainvoke_call(graph, cfg, emit)
        if call.op == "stream":
            return await astream_call(graph, call, emit)
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

    def _result(self, output: Any, status: Status, tag: RunTag, loop_id: int | None) -> RunResult:
        return RunResult(output, self.report(tag, loop_id, status))

    def report(self, tag: RunTag, loop_id: int | None, status: Status = "done") -> RunReport:
        """The report of the run ``tag`` names, ending now."""
        return RunReport(
            tier=self.tier,
            mode=self.mode,
            status=status,
            reason=gil_note() if self.selected_by is not None else None,
            fallback_reason=self.fallback_reason,
            selected_by=self.selected_by,
            run_id=tag.run_id,
            thread_id=tag.thread_id,
            pid=os.getpid(),
            os_thread_id=threading.get_ident(),
            interpreter_id=_INTERPRETER_ID,
            loop_id=loop_id,
            queue_wait_s=tag.queue_wait_s,
            duration_s=time.perf_counter() - tag.started,
            started_at=tag.started_at,
            finished_at=time.time(),
        )

    async def aclose(self) -> None:
        """Close this worker's checkpointers; must run on the loop that opened them."""
        self._compiled.clear()
        await self.resources.aclose()


def _key(target: Target, cfg: GraphConfig) -> tuple[Any, str | None, str | None]:
    return (target.path, cfg.checkpointer, cfg.store)
