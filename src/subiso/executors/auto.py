"""AutoExecutor: "auto" where own-GIL subinterpreters exist - each target on the tier it needs.

The subinterpreter tier pays for an interpreter pool and runs a LangGraph graph on host threads
anyway (hybrid mode); what it adds is that ``@offload`` nodes compute in parallel. A graph
with nothing to offload gains nothing from it and costs more than the thread tier. So "auto"
decides per target, once, and says why (``RunReport.reason``, ``subiso doctor``):

* a target with ``@offload`` functions (its nodes, or functions its module imports) -> the
  subinterpreter tier (hybrid mode);
* a workflow function whose module loads in an isolated interpreter -> the subinterpreter tier
  (full mode: it runs whole there, in parallel);
* anything else -> the thread tier.

The two tiers are built from the same settings as if each had been named (the subinterpreter
one on first need), share this executor's RunMeter (one ``stats()``), and are closed with it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading
from collections.abc import Callable
from typing import Any

import msgspec

from subiso._futures import DerivedFuture, relay
from subiso.config import GraphConfig
from subiso.events import EventChannel
from subiso.executors.base import Executor
from subiso.observe.metrics import WorkerStats
from subiso.report import RunReport, RunResult
from subiso.runtime.call import Call
from subiso.runtime.loops import running_loop
from subiso.runtime.targets import import_attr, is_workflow_function


def route_target(graph: Any, loads_in_interpreter: Callable[[str], bool]) -> tuple[str, str]:
    """``(tier, why)`` for ``graph`` (an import path or an object): the rule in the module
    docstring. ``loads_in_interpreter(module)`` probes a module (only asked for functions)."""
    from subiso.executors.subinterpreter.offload import offloaded_functions

    if not isinstance(graph, str):
        return "thread", (
            f"a {type(graph).__name__} object runs on the thread tier (only an import path "
            "reaches interpreters)"
        )
    obj = import_attr(graph)
    module_name = graph.partition(":")[0]
    import sys

    offloaded = offloaded_functions(obj, sys.modules.get(module_name))
    if offloaded:
        names = ", ".join(sorted(f"{fn.__qualname__}" for fn in offloaded))
        return "subinterpreter", f"{graph} has @offload work ({names}): subinterpreter tier"
    if is_workflow_function(obj) and loads_in_interpreter(module_name):
        return "subinterpreter", (
            f"{graph} is a workflow function whose module loads in a subinterpreter: it runs "
            "whole in one (subinterpreter tier)"
        )
    return "thread", (
        f"{graph} has no @offload node: the thread tier runs it (an interpreter pool would "
        "cost more and gain nothing)"
    )


def _loads_in_interpreter(module: str) -> bool:
    from subiso.executors.subinterpreter.probes import probe_module

    return bool(probe_module(module).ok)


class AutoExecutor(Executor):
    """Route each target to the thread or the subinterpreter tier; see the module docstring.

    ``make_thread`` / ``make_subinterpreter`` build the two tiers (from the settings "auto"
    was given); ``selected_by`` says why "auto" came here.
    """

    tier = "auto"
    summary = "per target: subinterpreter when it has @offload work, else thread"

    def __init__(
        self,
        *,
        make_thread: Callable[[], Executor],
        make_subinterpreter: Callable[[], Executor],
        selected_by: str | None = None,
    ) -> None:
        super().__init__(selected_by=selected_by)
        self._make_subinterpreter = make_subinterpreter
        self._thread = make_thread()
        self._thread._share_meter(self._meter)
        self._subinterpreter: Executor | None = None
        self._routes: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()
        #: a run's future as the caller sees it -> the child's future and the child
        self._owners: dict[cf.Future[RunResult], tuple[cf.Future[RunResult], Executor]] = {}

    # -- routing -------------------------------------------------------------------------------
    def route(self, graph: Any) -> tuple[str, str]:
        """``(tier, why)`` for ``graph``, decided once per import path (imports it)."""
        if not isinstance(graph, str):
            return route_target(graph, _loads_in_interpreter)
        found = self._routes.get(graph)
        if found is None:
            found = self._routes[graph] = route_target(graph, _loads_in_interpreter)
        return found

    def _child(self, call: Call) -> tuple[Executor, str]:
        tier, why = self.route(call.cfg.graph)
        if tier == "thread":
            return self._thread, why
        with self._lock:
            if self._subinterpreter is None:
                self._subinterpreter = self._make_subinterpreter()
                self._subinterpreter._share_meter(self._meter)
            return self._subinterpreter, why

    def _report(self, result: RunResult, why: str) -> RunResult:
        """The child's report, saying why "auto" sent the run there (before the child's own
        reason, e.g. why a hybrid run is not full)."""
        report: RunReport = result.report
        reason = f"auto: {why}" if not report.reason else f"auto: {why}; {report.reason}"
        return RunResult(result.output, msgspec.structs.replace(report, reason=reason))

    # -- hooks ---------------------------------------------------------------------------------
    def start(self, call: Call, events: EventChannel | None = None) -> cf.Future[RunResult]:
        child, why = self._child(call)
        inner = child.start(call, events)
        outer: cf.Future[RunResult] = DerivedFuture()
        with self._lock:
            self._owners[outer] = (inner, child)
        inner.add_done_callback(lambda _: self._forget(outer))
        return relay(inner, outer, lambda r: self._report(r, why), on_cancel=child.cancel_running)

    def _forget(self, outer: cf.Future[RunResult]) -> None:
        with self._lock:
            self._owners.pop(outer, None)

    def call(self, call: Call) -> RunResult:
        child, why = self._child(call)
        return self._report(child.call(call), why)

    async def acall(self, call: Call, events: EventChannel | None = None) -> RunResult:
        graph = call.cfg.graph
        if isinstance(graph, str) and graph not in self._routes and running_loop() is not None:
            await asyncio.to_thread(self.route, graph)  # the first run imports the target
        child, why = self._child(call)
        return self._report(await child.acall(call, events), why)

    def cancel_running(self, future: cf.Future[RunResult]) -> None:
        with self._lock:
            inner, child = self._owners.get(future, (None, None))
        if inner is not None and child is not None:
            child.cancel_running(inner)

    def abandon(self, future: cf.Future[RunResult]) -> None:
        with self._lock:
            inner, child = self._owners.get(future, (None, None))
        if inner is not None and child is not None:
            child.abandon(inner)

    def worker_stats(self) -> WorkerStats:
        """Both tiers' workers; running runs from the shared meter (and the subinterpreter
        tier's full-mode runs, which it counts itself)."""
        parts = [self._thread.worker_stats()]
        running = None
        if self._subinterpreter is not None:
            sub = self._subinterpreter.worker_stats()
            parts.append(sub)
            running = sub.runs_running
        return WorkerStats(
            workers_max=sum(p.workers_max for p in parts),
            workers_active=sum(p.workers_active for p in parts),
            runs_per_worker=[n for p in parts for n in p.runs_per_worker],
            runs_running=running,
        )

    def stop_workers(self, wait: bool, cancel_pending: bool) -> None:
        children = [self._thread]
        if self._subinterpreter is not None:
            children.append(self._subinterpreter)
        for child in children:
            child.close(wait, cancel_pending=cancel_pending)

    def prepare(self, cfg: Any) -> GraphConfig:
        """As every tier's (the thread tier's defaults apply: both tiers have the same)."""
        return self._thread.prepare(cfg) if not self.closed else super().prepare(cfg)
