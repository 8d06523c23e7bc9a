"""SubinterpreterExecutor ("subinterpreter"): own-GIL interpreters between threads and processes.

Three ways a run can go, decided once per target and said in every ``RunReport.mode``:

* **full** - the target is a workflow function ``f(input)`` / ``async f(input)`` whose module
  imports in an isolated subinterpreter (probed once per process, in a scratch interpreter,
  under a time limit): the whole run executes inside one of the pool's interpreters, its input
  and output crossing as bytes. ``interpreter_id`` is that interpreter's.
* **hybrid** - anything else (every LangGraph graph today: langgraph, langchain-core and
  pydantic-core refuse to load in a subinterpreter): the run goes to the thread tier's machinery
  with ``max_workers`` host worker threads, each with its own long-lived loop, and every node
  decorated with ``@subiso.offload`` runs in the same pool of ``max_workers`` interpreters (one
  size to tune). ``fallback_reason`` names the module that blocked full mode.
* **fallback** - no interpreters API on this Python (3.10-3.12, or 3.13 without the
  ``interpreters-pep-734`` backport): the tiers named in ``fallback`` are tried in order and the
  first that constructs runs everything. Its reports say ``tier`` = the tier that actually ran
  (so pids, worker threads and costs are read against the right tier), ``mode="fallback"`` and
  ``fallback_reason`` = why no subinterpreter ran. ``fallback=[]`` raises
  :class:`~subiso.errors.TierUnavailable` at construction instead.

Interpreters are created at construction, in the background (the constructor does not wait),
so their start overlaps the first target's probe; they live until ``close()``, which
destroys every one of them (``max_tasks_per_worker`` recycles them earlier). Deciding a new
target's mode (probing and importing it) also happens off the caller's thread, so ``arun``
never blocks the caller's loop, not even on a target's first run.
"""

from __future__ import annotations

import concurrent.futures as cf
import inspect
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from typing_extensions import Unpack

from subiso._capabilities import Capabilities, backend
from subiso._futures import DerivedFuture, done_future, join_all, relay, running_future, settle
from subiso.config import GraphConfig
from subiso.errors import ConfigError, NotIsolatable, RunAborted, TierUnavailable
from subiso.events import EventChannel
from subiso.executors.base import ConfigLike, Executor, SharedOptions
from subiso.executors.subinterpreter.hybrid import HybridThreads
from subiso.executors.subinterpreter.offload_plans import OffloadPlan, resolve_offload
from subiso.executors.subinterpreter.planning import (
    fallback_names,
    hybrid_reason,
    prewarm_offloads,
    target_mode,
)
from subiso.executors.subinterpreter.pool import CallSpec, InterpreterFuture, InterpreterPool
from subiso.executors.subinterpreter.probes import probe_module
from subiso.executors.subinterpreter.routing import (
    PoolRoute,
)
from subiso.observe import log as run_log
from subiso.observe.metrics import WorkerStats
from subiso.observe.runs import RunTag, run_info
from subiso.report import RunReport, RunResult
from subiso.runtime.call import Call
from subiso.runtime.targets import import_attr, is_workflow_function
from subiso.validate import positive_int

DEFAULT_FALLBACK: tuple[str, ...] = ("process", "thread")
_log = run_log.logger_for("subinterpreter")
#: Tiers that cannot stand in for this one: itself, and "auto" (which may pick this one).


@dataclass(frozen=True)
class _TargetPlan:
    """How runs of one ``GraphConfig.graph`` execute, decided once per executor."""

    mode: Literal["full", "hybrid"]
    call: OffloadPlan | None = None  # full: the pool's plan for ``module:qualname``


class SubinterpreterExecutor(Executor):
    """Run GraphConfigs with own-GIL subinterpreters: full, hybrid or fallback mode (see module).

    Options: ``max_workers`` (interpreters, and host threads for hybrid runs; default: CPU
    count), ``timeout`` and ``checkpointer`` (defaults for configs naming none), ``fallback``
    (tiers tried in order where no interpreters exist; ``[]`` raises ``TierUnavailable``),
    ``max_tasks_per_worker`` (recycle an interpreter after that many calls; passed on to a
    fallback tier that takes it).
    """

    tier = "subinterpreter"
    crosses_boundary = True
    boundary = "interpreter (or fallback process)"

    @classmethod
    def availability(cls, caps: Capabilities) -> tuple[bool, str]:
        if caps.subinterpreters is None:
            fallback = ", ".join(DEFAULT_FALLBACK)
            return False, (
                f"{caps.subinterpreters_reason}; SubinterpreterExecutor falls back to its "
                f"fallback tiers ({fallback}) here"
            )
        return True, f"own-GIL subinterpreters via {caps.subinterpreters}; parallel"

    def __init__(
        self,
        *,
        max_workers: int | None = None,
        fallback: Sequence[str] | None = DEFAULT_FALLBACK,
        max_tasks_per_worker: int | None = None,
        **shared: Unpack[SharedOptions],
    ) -> None:
        super().__init__(**shared)
        name = type(self).__name__
        self.max_workers = positive_int(max_workers, f"{name}: max_workers", os.cpu_count() or 1)
        if max_tasks_per_worker is not None:
            positive_int(max_tasks_per_worker, f"{name}: max_tasks_per_worker")
        self.max_tasks_per_worker = max_tasks_per_worker
        self.fallback = fallback_names(DEFAULT_FALLBACK if fallback is None else fallback)
        self.fallback_tier: str | None = None
        self.fallback_reason: str | None = None
        self._delegate: Executor | None = None
        self._links: dict[cf.Future[RunResult], tuple[cf.Future[RunResult], Executor | None]] = {}
        self._links_lock = threading.Lock()
        self._helpers: list[threading.Thread] = []
        self._cancelling = False  # close(cancel_pending=True) began: undispatched runs cancel
        found = backend()
        self.backend = found.name
        if not found:
            self._start_fallback(found.reason)
            return
        self._plans: dict[str, cf.Future[_TargetPlan]] = {}
        self._plans_lock = threading.Lock()
        self._reasons: dict[str, cf.Future[str]] = {}  # hybrid targets: why not full
        self._pool_future: cf.Future[InterpreterPool] = running_future()
        self._spawn("subiso-interp-start", self._start_pool)
        self._route = PoolRoute(self._pool_future)
        # Twice as many host threads as interpreters: while a graph waits on an interpreter,
        # another has its next offloaded call queued in the pool, so no interpreter idles
        # between one run's call and the next run's (the graph's own steps run in between).
        self._hybrid = HybridThreads(
            max_workers=2 * self.max_workers,
            route=self._route,
            reasons=self._reasons,
            worker_init=self.worker_init,
            selected_by=self.selected_by,
            loop_block_threshold=self.loop_block_threshold,
            # for ``prepare`` of a graph object, which goes to these threads directly
            timeout=self.timeout,
            checkpointer=self.checkpointer,
            allowed_graphs=self.allowed_graphs,
            allowed_locations=self.allowed_locations,
        )
        self._hybrid._share_meter(self._meter)  # one executor's runs, counted once
        self._full_runs: set[InterpreterFuture] = set()  # full-mode runs in flight

    # -- public introspection ------------------------------------------------------------------
    @property
    def pool(self) -> InterpreterPool | None:
        """The interpreter pool, once started (None in fallback mode or while it starts)."""
        if self._delegate is not None or not self._pool_future.done():
            return None
        return None if self._pool_future.exception() else self._pool_future.result()

    @property
    def interpreter_ids(self) -> list[int]:
        """Ids of the pool's live interpreters (empty in fallback mode)."""
        pool = self.pool
        return [] if pool is None else pool.interpreter_ids

    def mode_for(self, graph: str) -> tuple[str, str | None]:
        """``(mode, reason)`` runs of ``graph`` ("pkg.mod:attr") get; decides it if needed."""
        if self._delegate is not None:
            return "fallback", self.fallback_reason
        plan = self._plan(graph).result()
        if plan.mode == "full":
            return "full", None
        return "hybrid", self._reasons[graph].result()

    # -- fallback ------------------------------------------------------------------------------
    def _start_fallback(self, reason: str) -> None:
        """Construct the first ``fallback`` tier that works here, or raise TierUnavailable."""
        from subiso.executors import tier_class

        name = type(self).__name__
        if not self.fallback:
            raise TierUnavailable(f"{name}: {reason}; no fallback tier allowed (fallback=[])")
        problems: list[str] = []
        for tier in self.fallback:
            try:
                cls = tier_class(tier)
                delegate = cls(**self._fallback_options(cls))
            except (ImportError, TierUnavailable) as exc:
                problems.append(f"{tier} tier unavailable ({exc})")
                continue
            self._delegate, self.fallback_tier = delegate, tier
            delegate._share_meter(self._meter)
            skipped = "".join(f"; {p}" for p in problems)
            self.fallback_reason = f"{reason}; ran on the {tier} tier instead{skipped}"
            _log.warning(
                "%s: no subinterpreters here (%s); runs go to the %s tier%s",
                name,
                reason,
                tier,
                skipped,
            )
            return
        raise TierUnavailable(
            f"{name}: {reason}; and no fallback tier works: {'; '.join(problems)}"
        )

    def _fallback_options(self, cls: Callable[..., Executor]) -> dict[str, Any]:
        """The options of ours that ``cls`` also takes (timeouts, checkpointers and allow-lists
        are applied by ``prepare`` before a config reaches the fallback tier)."""
        params = inspect.signature(cls.__init__).parameters
        takes_shared = any(p.kind is p.VAR_KEYWORD for p in params.values())
        options: dict[str, Any] = {
            "max_workers": self.max_workers,
            "loop_block_threshold": self.loop_block_threshold,
        }
        if self.max_tasks_per_worker is not None:
            options["max_tasks_per_worker"] = self.max_tasks_per_worker
        if self.worker_init is not None:
            options["worker_init"] = self.worker_init
        return {
            k: v
            for k, v in options.items()
            if k in params or (takes_shared and k in SharedOptions.__annotations__)
        }

    def _fallback_report(self, report: RunReport) -> RunReport:
        return msgspec.structs.replace(
            report,
            mode="fallback",
            reason=self.fallback_reason,
            fallback_reason=self.fallback_reason,
            selected_by=self.selected_by or report.selected_by,
        )

    # -- interpreters ----------------------------------------------------------------------------
    def _start_pool(self) -> None:
        try:
            pool = InterpreterPool(
                self.max_workers,
                max_tasks_per_worker=self.max_tasks_per_worker,
                on_restart=self._meter.restarted,
            )
        except BaseException as exc:
            self._pool_future.set_exception(exc)
        else:
            self._pool_future.set_result(pool)

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        """A short-lived helper thread, joined at close (so close leaves no thread behind)."""
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._links_lock:
            # Started under the lock: a thread not yet started is not alive, and pruning by
            # another _spawn would drop it from the list close() joins.
            self._helpers = [t for t in self._helpers if t.is_alive()]
            thread.start()
            self._helpers.append(thread)

    # -- deciding a target's mode ------------------------------------------------------------------
    def _plan(self, graph: str) -> cf.Future[_TargetPlan]:
        """The (possibly still running) decision for ``graph``; started once per target."""
        plan = self._plans.get(graph)
        if plan is None:
            with self._plans_lock:
                plan = self._plans.get(graph)
                if plan is None:
                    plan = self._plans[graph] = running_future()
                    self._spawn("subiso-interp-plan", self._decide, graph, plan)
        return plan

    def _decide(self, graph: str, plan: cf.Future[_TargetPlan]) -> None:
        """Probe the module in a scratch interpreter while importing the target on the host.

        Only a workflow function can run in full mode, so anything else (a graph, a builder,
        a factory) is dispatched to hybrid workers right away, without waiting for the probe:
        the probe then only names the blocking module for the reports, and finishes while the
        first run executes (the report waits for it, the run does not).
        """
        module = graph.partition(":")[0]
        probe: cf.Future[Any] = running_future()
        self._spawn("subiso-interp-probe", _fill, probe, probe_module, module)
        try:
            obj = import_attr(graph)
            self._spawn("subiso-interp-prewarm", prewarm_offloads, obj, module)
            if is_workflow_function(obj):
                decided = self._decide_function(graph, obj, probe.result())
            else:
                self._reasons[graph] = _then(probe, lambda v: hybrid_reason(graph, obj, v))
                decided = _TargetPlan("hybrid")
        except BaseException as exc:
            with self._plans_lock:  # not cached: a module that appears later gets a new try
                self._plans.pop(graph, None)
            plan.set_exception(exc)
            return
        plan.set_result(decided)

    def _decide_function(self, graph: str, obj: Any, verdict: Any) -> _TargetPlan:
        if graph.partition(":")[0] == "__main__":
            # A pool interpreter's __main__ is its own, not the caller's script (and probing
            # "__main__" says nothing): ship the function's code if it is self-contained,
            # else run it on a host thread, saying why.
            try:
                shipped = resolve_offload(obj)
            except NotIsolatable as exc:
                self._reasons[graph] = done_future(f"{graph}: {exc}")
                return _TargetPlan("hybrid")
            self._pool_future.result()
            return _TargetPlan("full", shipped)
        mode, reason = target_mode(graph, obj, verdict)
        if mode == "full":
            self._pool_future.result()  # full runs go straight to the pool after this
            return _TargetPlan("full", OffloadPlan("import", graph))
        self._reasons[graph] = done_future(reason)
        return _TargetPlan("hybrid")

    # -- dispatch --------------------------------------------------------------------------------
    def prepare(self, cfg: ConfigLike) -> GraphConfig:
        """A compiled graph object (not an import path) cannot enter an interpreter, and need
        not: a LangGraph graph runs in hybrid mode, on the host threads, whatever its module
        (its ``@offload`` nodes still go to the interpreters). So an object is taken as the
        thread tier takes it - unless this executor fell back to a tier across a boundary."""
        graph = cfg.graph if isinstance(cfg, GraphConfig) else _mapping_graph(cfg)
        if graph is None or isinstance(graph, str) or self._delegate is not None:
            return super().prepare(cfg)
        if self._closed:
            return super().prepare(cfg)  # raises ExecutorClosed
        return self._hybrid.prepare(cfg)

    def start(self, call: Call, events: EventChannel | None = None) -> cf.Future[RunResult]:
        if self._delegate is not None:
            if call.is_run and call.run is not None and _log.isEnabledFor(logging.DEBUG):
                _log.debug(
                    "run %s goes to the %s tier: %s",
                    call.run.run_id,
                    self.fallback_tier,
                    self.fallback_reason,
                    extra={"run_id": call.run.run_id, "tier": self.tier},
                )
            inner = self._delegate.start(call, events)
            return self._link(inner, self._delegate, self._fallback_report)
        if not isinstance(call.cfg.graph, str):  # a graph object: hybrid (see ``prepare``)
            return self._hybrid.start(call, events)
        plan = self._plan(call.cfg.graph)
        if plan.done():
            return self._dispatch(plan, call, events)
        outer: cf.Future[RunResult] = DerivedFuture()
        plan.add_done_callback(lambda done: self._dispatch_later(done, call, events, outer))
        return outer

    def _dispatch(
        self, plan: cf.Future[_TargetPlan], call: Call, events: EventChannel | None
    ) -> cf.Future[RunResult]:
        decided = plan.result()  # raises ConfigError & co. for a target that cannot load
        if decided.mode == "hybrid":
            return self._hybrid.start(call, events)
        if call.op != "invoke":
            raise ConfigError(
                f"{call.op}: {call.cfg.label} is a workflow function; streaming and state "
                "need a LangGraph graph"
            )
        return self._submit_full(decided, call)

    def _dispatch_later(
        self,
        plan: cf.Future[_TargetPlan],
        call: Call,
        events: EventChannel | None,
        outer: cf.Future[RunResult],
    ) -> None:
        """Runs on the planning thread once a new target's mode is known."""
        if self._cancelling:
            outer.cancel()
        if outer.done():  # cancelled while its target was being probed
            return
        try:
            inner = self._dispatch(plan, call, events)
        except BaseException as exc:
            settle(outer, exc=exc)
            return
        self._link(inner, self._hybrid, None, outer)

    def _submit_full(self, decided: _TargetPlan, call: Call) -> cf.Future[RunResult]:
        pool = self._pool_future.result()  # ready: _decide waited for it
        outer: DerivedFuture[RunResult] = DerivedFuture()
        assert decided.call is not None  # full mode always carries the pool's plan
        cfg = call.cfg
        run = call.run if call.run is not None else run_info(cfg.config)
        tag = RunTag(
            run.run_id,
            self.tier,
            thread_id=cfg.thread_id,
            graph=cfg.label,
            submitted_at=run.submitted_at,
        )
        otel = (run.trace.otel or None) if run.trace is not None else None
        spec = CallSpec(
            decided.call, (cfg.input,), {}, cfg.timeout, tag=tag, otel=otel, is_run=True
        )
        try:
            inner = pool.submit(spec)
        except BaseException as exc:  # SerializationError, ExecutorClosed
            settle(outer, exc=exc)
            return outer
        with self._links_lock:
            self._full_runs.add(inner)
        outer.follow(inner)  # cancellable while queued, running while the interpreter runs it
        inner.add_done_callback(lambda _done: self._finish_full(inner, outer, tag))
        return outer

    def _finish_full(
        self, inner: InterpreterFuture, outer: cf.Future[RunResult], tag: RunTag
    ) -> None:
        with self._links_lock:
            self._full_runs.discard(inner)
        tag.ended = True
        if inner.cancelled():
            outer.cancel()
            return
        exc = inner.exception()
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            aborted = RunAborted(
                f"a run in subinterpreter {inner.interpreter_id} raised {type(exc).__name__}"
                f"({exc}); the pool caught it, so it ended neither the interpreter nor the host"
            )
            aborted.__cause__ = exc
            exc = aborted
        duration = time.perf_counter() - tag.started if inner.started_at else 0.0
        if exc is not None:
            if inner.started_at:
                run_log.run_finished(tag, run_log.outcome_of(exc), duration, exc)
            settle(outer, exc=exc)
            return
        run_log.run_finished(tag, "done", duration)
        report = RunReport(
            tier=self.tier,
            mode="full",
            run_id=tag.run_id,
            thread_id=tag.thread_id,
            pid=os.getpid(),
            os_thread_id=inner.thread_id or threading.get_ident(),
            interpreter_id=inner.interpreter_id,
            queue_wait_s=tag.queue_wait_s,
            duration_s=duration,
            started_at=tag.started_at,
            finished_at=time.time(),
            selected_by=self.selected_by,
        )
        settle(outer, RunResult(inner.result(), report))

    def _link(
        self,
        inner: cf.Future[RunResult],
        owner: Executor | None,
        rewrite: Callable[[RunReport], RunReport] | None,
        outer: cf.Future[RunResult] | None = None,
    ) -> cf.Future[RunResult]:
        """Relay ``inner`` into ``outer``; cancelling ``outer`` cancels ``inner``, on its
        worker when it already runs (``owner._cancel_running``)."""
        outer = outer if outer is not None else DerivedFuture()
        with self._links_lock:
            self._links[outer] = (inner, owner)

        def forget(_: cf.Future[RunResult]) -> None:
            with self._links_lock:
                self._links.pop(outer, None)

        def transform(result: RunResult) -> RunResult:
            if rewrite is None:
                return result
            return RunResult(result.output, rewrite(result.report))

        inner.add_done_callback(forget)
        on_cancel = None if owner is None else owner.cancel_running
        return relay(inner, outer, transform, on_cancel=on_cancel)

    def cancel_running(self, future: cf.Future[RunResult]) -> None:
        with self._links_lock:
            inner, owner = self._links.get(future, (future, None))
        if owner is not None:
            owner.cancel_running(inner)
        elif self._delegate is None:
            self._hybrid.cancel_running(inner)  # no-op unless it is a hybrid run

    def abandon(self, future: cf.Future[RunResult]) -> None:
        with self._links_lock:
            inner, owner = self._links.get(future, (future, None))
        if owner is not None:
            owner.abandon(inner)

    # -- shutdown --------------------------------------------------------------------------------
    def stop_workers(self, wait: bool, cancel_pending: bool) -> None:
        if wait:
            self._close_all(cancel_pending)
            return
        closer = threading.Thread(
            target=self._close_all, args=(cancel_pending,), name="subiso-interp-close", daemon=True
        )
        closer.start()

    def _close_all(self, cancel_pending: bool) -> None:
        """Let pending target decisions dispatch, drain (or cancel) hybrid runs, then destroy
        every interpreter (hybrid runs may offload until they end, so the pool closes last)."""
        if self._delegate is not None:
            self._delegate.close(wait=True, cancel_pending=cancel_pending)
            return
        if cancel_pending:
            self._cancelling = True
            with self._links_lock:
                links = list(self._links.items())
            for outer, (inner, _) in links:
                if inner.cancel():  # still queued; the relay cancels ``outer``
                    outer.cancel()
        self._join_helpers()
        self._hybrid.close(wait=True, cancel_pending=cancel_pending)
        try:
            pool = self._pool_future.result()
        except BaseException:
            pool = None
        if pool is not None:
            pool.close(wait=True, cancel_pending=cancel_pending)
        self._join_helpers()

    def _join_helpers(self) -> None:
        while True:
            with self._links_lock:
                alive = [t for t in self._helpers if t.is_alive()]
            if not alive or alive == [threading.current_thread()]:
                return
            join_all(alive)

    def worker_stats(self) -> WorkerStats:
        """Workers are the interpreters; ``runs_per_worker`` counts hybrid runs per host
        thread (the graphs run there); full-mode runs running count as running."""
        if self._delegate is not None:
            return self._delegate.worker_stats()
        hybrid = self._hybrid.worker_stats()
        with self._links_lock:
            full = sum(1 for f in self._full_runs if f.running())
        return WorkerStats(
            workers_max=self.max_workers,
            workers_active=len(self.interpreter_ids),
            runs_per_worker=hybrid.runs_per_worker,
            runs_running=self._meter.running + full,
        )

    def target_modes(self) -> dict[str, str]:
        """The mode decided for each target seen so far (``"full"`` or ``"hybrid"``)."""
        if self._delegate is not None:
            return {}
        return {g: p.result().mode for g, p in list(self._plans.items()) if _ok(p)}


# -- helpers -------------------------------------------------------------------------------------


def _mapping_graph(cfg: Any) -> Any:
    return cfg.get("graph") if isinstance(cfg, Mapping) else None


def _then(source: cf.Future[Any], fn: Callable[[Any], str]) -> cf.Future[str]:
    """A future resolved with ``fn(source.result())`` once ``source`` is. Never fails: it only
    feeds report text, and a failed probe must not fail the runs waiting for it."""
    derived = running_future()

    def chain(done: cf.Future[Any]) -> None:
        try:
            derived.set_result(fn(done.result()))
        except BaseException as exc:
            derived.set_result(f"its module could not be probed in a subinterpreter: {exc!r}")

    source.add_done_callback(chain)
    return derived


def _fill(future: cf.Future[Any], fn: Callable[..., Any], *args: Any) -> None:
    try:
        future.set_result(fn(*args))
    except BaseException as exc:
        future.set_exception(exc)


def _ok(future: cf.Future[Any]) -> bool:
    return future.done() and future.exception() is None


__all__ = ["DEFAULT_FALLBACK", "SubinterpreterExecutor"]
