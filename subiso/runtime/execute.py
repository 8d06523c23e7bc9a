"""Run one GraphConfig on the current worker: choose sync or async dispatch, time it, report it.

Dispatch is chosen per graph, not one-size-fits-all: a graph whose nodes are all sync and whose
checkpointer is usable from sync code runs with ``graph.invoke`` on a thread with no running
loop (LangGraph's ``ainvoke`` pushes every sync node through a thread pool: ``bench_tiers.py``'s
"sync 3-node arun" rows, where the thread tier uses ``invoke`` and inline uses ``ainvoke``, put the
thread tier at 0.65-0.72x inline); everything else, and every run with a timeout (only a coroutine
can be cancelled), runs with ``ainvoke`` on the worker's own loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import time
from typing import Any

from subiso.config import GraphConfig
from subiso.errors import RunTimeout
from subiso.report import Mode, RunReport, RunResult
from subiso.runtime.loops import run_on_fresh_loop
from subiso.runtime.resources import LoopResources, needs_loop
from subiso.runtime.targets import Target, TargetCache


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
    the graphs compiled against them."""

    def __init__(
        self,
        tier: str,
        *,
        mode: Mode = "full",
        fallback_reason: str | None = None,
        selected_by: str | None = None,
        targets: TargetCache | None = None,
        worker_init: str | None = None,
    ) -> None:
        self.tier = tier
        self.mode: Mode = mode
        self.fallback_reason = fallback_reason
        self.selected_by = selected_by
        self.targets = targets if targets is not None else TargetCache()
        self.resources = LoopResources(worker_init)
        self._compiled: dict[tuple[str, str | None, str | None], Any] = {}

    def plan(self, cfg: GraphConfig) -> Target:
        """Resolve the target (cached); raises ConfigError for a bad import path or object."""
        return self.targets.get(cfg.graph)

    def runs_sync(self, target: Target, cfg: GraphConfig) -> bool:
        """True when this run can go through the sync fast path (see the module docstring)."""
        if cfg.timeout is not None:
            return False
        if not self.resources.init.ready:  # worker_init is entered on the loop first
            return False
        if target.kind == "function":
            return not target.is_async
        if not target.sync_nodes or needs_loop(cfg.checkpointer) or needs_loop(cfg.store):
            return False
        own = getattr(target.obj, "checkpointer", None) if target.kind == "graph" else None
        return own in (None, False, True) or type(own).__name__ == "InMemorySaver"

    def run_sync(self, target: Target, cfg: GraphConfig, loop_id: int | None) -> RunResult:
        """Run on this thread, which must have no running event loop."""
        start = time.perf_counter()
        self.resources.init.bind()
        if target.kind == "function":
            output = target.obj(cfg.input)
        else:
            graph = self._graph(target, cfg)
            if graph is None:  # "memory": the only checkpointer/store usable from sync code
                saver = self.resources.memory_saver() if cfg.checkpointer else None
                store = self.resources.memory_store() if cfg.store else None
                graph = self._compiled[_key(target, cfg)] = target.compile(saver, store)
            run_input = cfg.input
            if cfg.resume and _resumable(graph.get_state(cfg.config)):
                run_input = None
            output = graph.invoke(run_input, cfg.config or None, **_invoke_options(cfg))
        return RunResult(output, self.report(time.perf_counter() - start, loop_id))

    def run_once(self, cfg: GraphConfig, context: contextvars.Context | None = None) -> RunResult:
        """Run on this thread (no running loop here), keeping nothing: a sync-dispatchable
        run directly, anything else on a fresh loop closed with this runtime's checkpointers
        before returning. For a runtime made for one run; in ``context`` if given."""
        target = self.plan(cfg)
        if self.runs_sync(target, cfg):
            if context is None:
                return self.run_sync(target, cfg, None)
            return context.run(self.run_sync, target, cfg, None)
        return run_on_fresh_loop(
            lambda: self.run_async(target, cfg), context=context, before_close=self.aclose
        )

    async def run_async(self, target: Target, cfg: GraphConfig) -> RunResult:
        """Run on the running loop; cancelled on it when ``cfg.timeout`` passes."""
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        coro = self._invoke_async(target, cfg)
        if cfg.timeout is None:
            output = await coro
        else:
            try:
                output = await asyncio.wait_for(coro, cfg.timeout)
            except asyncio.TimeoutError:
                raise RunTimeout(
                    f"run of {cfg.graph!r} exceeded its timeout of {cfg.timeout:g}s and was "
                    f"cancelled on its {self.tier} worker"
                ) from None
        return RunResult(output, self.report(time.perf_counter() - start, id(loop)))

    async def _invoke_async(self, target: Target, cfg: GraphConfig) -> Any:
        await self.resources.init.enter()
        self.resources.init.bind()
        if target.kind == "function":
            if target.is_async:
                return await target.obj(cfg.input)
            return await asyncio.to_thread(target.obj, cfg.input)
        graph = self._graph(target, cfg)
        if graph is None:
            saver = (
                await self.resources.checkpointer(cfg.checkpointer) if cfg.checkpointer else None
            )
            store = await self.resources.store(cfg.store) if cfg.store else None
            graph = self._compiled[_key(target, cfg)] = target.compile(saver, store)
        run_input = cfg.input
        if cfg.resume and _resumable(await graph.aget_state(cfg.config)):
            run_input = None
        return await graph.ainvoke(run_input, cfg.config or None, **_invoke_options(cfg))

    def _graph(self, target: Target, cfg: GraphConfig) -> Any:
        """The compiled graph for this checkpointer and store, or None if it must still be
        compiled against this worker's (savers and stores are per loop, so per runtime)."""
        if cfg.checkpointer is None and cfg.store is None:
            return target.default_graph
        return self._compiled.get(_key(target, cfg))

    def report(self, duration_s: float, loop_id: int | None) -> RunReport:
        return RunReport(
            tier=self.tier,
            mode=self.mode,
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


def _key(target: Target, cfg: GraphConfig) -> tuple[str, str | None, str | None]:
    return (target.path, cfg.checkpointer, cfg.store)


def _invoke_options(cfg: GraphConfig) -> dict[str, Any]:
    return {} if cfg.durability is None else {"durability": cfg.durability}


def _resumable(state: Any) -> bool:
    """A thread whose last checkpoint still has nodes to run (a run stopped part-way)."""
    return bool(getattr(state, "next", ()))
