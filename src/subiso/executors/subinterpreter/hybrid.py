"""Hybrid mode's host side: the thread tier's workers running the graph, each run with a
RunState for its ``@offload`` calls, which the route sends to the interpreter pool.

Used by :class:`~subiso.executors.subinterpreter.executor.SubinterpreterExecutor` for every
target that cannot run whole inside an interpreter (every LangGraph graph today).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
from collections.abc import Callable

import msgspec
from typing_extensions import Unpack

from subiso.config import GraphConfig
from subiso.executors.base import SharedOptions
from subiso.executors.subinterpreter.offload import current_route
from subiso.executors.subinterpreter.routing import (
    PoolRoute,
    RunState,
    current_run,
    describe_in_place,
)
from subiso.executors.thread import ThreadExecutor
from subiso.observe.metrics import RunMeter
from subiso.report import RunResult
from subiso.runtime.call import Call
from subiso.runtime.execute import Emit, WorkerRuntime, as_call
from subiso.runtime.resources import Memory
from subiso.runtime.targets import Target

#: Why a run of a graph passed as an object is hybrid.
OBJECT_REASON = (
    "a graph passed as an object cannot enter an interpreter: it runs on a host thread, its "
    "@offload nodes in the interpreters"
)


class HybridRuntime(WorkerRuntime):
    """A hybrid worker's runtime: each run gets a :class:`RunState` (deadline, in-place
    offloads) for its offloaded calls, and its report names what kept it out of full mode."""

    def __init__(
        self,
        reasons: dict[str, cf.Future[str]],
        selected_by: str | None,
        memory: Memory,
        worker_init: str | None,
        meter: RunMeter,
        block_threshold: float,
    ) -> None:
        super().__init__(
            "subinterpreter",
            mode="hybrid",
            selected_by=selected_by,
            memory=memory,
            worker_init=worker_init,
            meter=meter,
            block_threshold=block_threshold,
        )
        self._reasons = reasons

    def run_sync(self, target: Target, work: Call | GraphConfig, loop_id: int | None) -> RunResult:
        cfg = as_call(work).cfg
        state = RunState(cfg.timeout)
        token = current_run.set(state)
        try:
            result = super().run_sync(target, work, loop_id)
        finally:
            current_run.reset(token)
        return self._annotate(result, cfg, state)

    async def run_async(
        self, target: Target, work: Call | GraphConfig, emit: Emit | None = None
    ) -> RunResult:
        cfg = as_call(work).cfg
        state = RunState(cfg.timeout)
        token = current_run.set(state)
        try:
            result = await super().run_async(target, work, emit)
        finally:
            current_run.reset(token)
        reason = self._reasons.get(cfg.graph) if isinstance(cfg.graph, str) else None
        if reason is not None and not reason.done():  # first run of a target: probe finishing
            await asyncio.wrap_future(reason)
        return self._annotate(result, cfg, state)

    def _annotate(self, result: RunResult, cfg: GraphConfig, state: RunState) -> RunResult:
        if isinstance(cfg.graph, str):
            known = self._reasons.get(cfg.graph)
            reason = None if known is None else known.result()
        else:
            reason = OBJECT_REASON
        if state.in_place:
            reason = f"{reason}; {describe_in_place(state.in_place)}"
        report = msgspec.structs.replace(result.report, reason=reason, offloaded=state.summary())
        return RunResult(result.output, report)


class HybridThreads(ThreadExecutor):
    """The thread tier's workers, with the offload route set on each worker thread and a
    HybridRuntime on each loop."""

    tier = "subinterpreter"

    def __init__(
        self,
        *,
        max_workers: int,
        route: PoolRoute,
        reasons: dict[str, cf.Future[str]],
        **shared: Unpack[SharedOptions],
    ) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="subiso-hybrid", **shared)
        self._route = route
        self._reasons = reasons

    def _make_runtime(self) -> WorkerRuntime:
        return HybridRuntime(
            self._reasons,
            self.selected_by,
            self._memory,
            self.worker_init,
            self._meter,
            self.loop_block_threshold,
        )

    def _worker_context_setup(self) -> Callable[[], None]:
        route = self._route

        def install_route() -> None:
            current_route.set(route)

        return install_route
