"""What an executor is doing, as numbers: :class:`ExecutorStats` and OpenTelemetry instruments.

Names follow what LangGraph's Agent Server exposes (``lg_api_num_pending_runs``,
``lg_api_num_running_runs``, ``lg_api_workers_max/active``, run outcome counters, queue-wait and
execution-latency histograms), so a dashboard built for one reads the other.

Each executor has one :class:`RunMeter`: its caller-facing methods count every run submitted
and finished (with its outcome and timings), and its workers count the runs they are
running. ``Executor.stats()`` turns it into a snapshot.

**OpenTelemetry** (``pip install 'subiso[otel]'``: the API only, as OpenTelemetry's library
guidelines ask; it is a no-op until the application installs an SDK ``MeterProvider``): the
same numbers as instruments on the meter ``"subiso"``, each with a ``tier`` attribute:

* ``subiso.run.duration`` and ``subiso.run.queue_wait`` - histograms, seconds (``outcome``
  attribute on the duration);
* ``subiso.runs.completed`` - counter, with an ``outcome`` attribute;
* ``subiso.runs.running`` and ``subiso.runs.pending`` - up-down counters, observed from the
  live executors when the SDK collects (nothing is recorded per run for them);
* ``subiso.worker.restarts`` - counter;
* ``subiso.loop.lag`` - histogram, seconds: what each worker loop's lag probe measured.
"""

from __future__ import annotations

import importlib.util
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from subiso.observe.log import OUTCOMES


class ExecutorStats(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of an executor (``Executor.stats()``).

    * ``runs_pending`` - submitted, not started yet (queued for a worker, or waiting unread in
      a busy worker's pipe); ``runs_running`` - executing now. State operations
      (``get_state``, ``update_state``...) are not runs and are not counted.
    * ``workers_max`` - the pool's size (0: no pool - inline and context run on their callers'
      threads); ``workers_active`` - workers alive now (for inline and context: runs
      executing); ``runs_per_worker`` - runs in flight on each live worker.
    * ``runs_completed`` - finished runs by outcome: ``done``, ``interrupted``, ``error``,
      ``timeout``, ``crashed``, ``cancelled``.
    * ``worker_restarts`` - workers replaced after a crash, a kill at a timeout, a stuck run or
      ``max_tasks_per_worker``.
    * ``loop_lag_s`` - the largest lag the worker loops' probes measured in their latest
      probe (how late a callback due now would run); ``loop_lag_max_s`` - the largest since the
      executor started. 0 for tiers without worker loops of their own (inline, context).
    """

    tier: str
    runs_pending: int
    runs_running: int
    workers_max: int
    workers_active: int
    runs_per_worker: list[int]
    runs_completed: dict[str, int]
    worker_restarts: int
    loop_lag_s: float
    loop_lag_max_s: float


class WorkerStats(msgspec.Struct, frozen=True, kw_only=True):
    """A tier's view of its workers, for ``Executor.stats()`` (``Executor.worker_stats``).
    ``runs_running`` None: the count the workers keep in the executor's RunMeter."""

    workers_max: int = 0
    workers_active: int = 0
    runs_per_worker: list[int] = []
    runs_running: int | None = None


class RunMeter:
    """One executor's counts and timings; thread-safe, cheap per run (a lock taken a few
    times, and the instruments only where opentelemetry-api is installed)."""

    def __init__(self, tier: str) -> None:
        self.tier = tier
        self._lock = threading.Lock()
        self._in_flight = 0
        self._running = 0
        self._completed = dict.fromkeys(OUTCOMES, 0)
        self._restarts = 0
        self._lag_by_source: dict[object, float] = {}
        self._lag_max = 0.0
        self._instruments = instruments()
        if self._instruments is not None:
            self._attrs = {"tier": tier}
            self._outcome_attrs = {o: {"tier": tier, "outcome": o} for o in OUTCOMES}

    # -- the caller's side: every run submitted and finished -----------------------------------
    def submitted(self) -> None:
        with self._lock:
            self._in_flight += 1

    def finished(self, outcome: str, duration_s: float | None, queue_wait_s: float | None) -> None:
        with self._lock:
            self._in_flight -= 1
            self._completed[outcome] = self._completed.get(outcome, 0) + 1
        found = self._instruments
        if found is not None:
            attrs = self._outcome_attrs.get(outcome) or {"tier": self.tier, "outcome": outcome}
            found.completed.add(1, attrs)
            if duration_s is not None:
                found.duration.record(duration_s, attrs)
            if queue_wait_s is not None:
                found.queue_wait.record(queue_wait_s, self._attrs)

    # -- the workers' side -------------------------------------------------------------------
    def started(self) -> None:
        with self._lock:
            self._running += 1

    def ended(self) -> None:
        with self._lock:
            self._running -= 1

    @property
    def running(self) -> int:
        """Runs the workers that share this meter are running now."""
        with self._lock:
            return self._running

    def restarted(self) -> None:
        with self._lock:
            self._restarts += 1
        if self._instruments is not None:
            self._instruments.restarts.add(1, self._attrs)

    def lag(self, seconds: float, source: object = None) -> None:
        """A worker loop's probe measured ``seconds`` of lag (``source``: which loop)."""
        with self._lock:
            self._lag_by_source[source] = seconds
            if seconds > self._lag_max:
                self._lag_max = seconds
        if self._instruments is not None:
            self._instruments.loop_lag.record(seconds, self._attrs)

    def forget_lag(self, source: object) -> None:
        """A worker loop is gone: its last lag no longer counts."""
        with self._lock:
            self._lag_by_source.pop(source, None)

    # -- snapshot ---------------------------------------------------------------------------
    def snapshot(self, workers: WorkerStats) -> ExecutorStats:
        with self._lock:
            running = self._running if workers.runs_running is None else workers.runs_running
            running = max(0, min(running, self._in_flight))
            return ExecutorStats(
                tier=self.tier,
                runs_pending=max(0, self._in_flight - running),
                runs_running=running,
                workers_max=workers.workers_max,
                workers_active=workers.workers_active,
                runs_per_worker=list(workers.runs_per_worker),
                runs_completed=dict(self._completed),
                worker_restarts=self._restarts,
                loop_lag_s=max(self._lag_by_source.values(), default=0.0),
                loop_lag_max_s=self._lag_max,
            )


def prometheus_lines(stats: ExecutorStats) -> list[str]:
    """``stats`` in Prometheus' text exposition format (``subiso serve``'s ``/metrics``)."""
    tier = f'tier="{stats.tier}"'
    lines = [
        "# TYPE subiso_runs_pending gauge",
        f"subiso_runs_pending{{{tier}}} {stats.runs_pending}",
        "# TYPE subiso_runs_running gauge",
        f"subiso_runs_running{{{tier}}} {stats.runs_running}",
        "# TYPE subiso_workers_max gauge",
        f"subiso_workers_max{{{tier}}} {stats.workers_max}",
        "# TYPE subiso_workers_active gauge",
        f"subiso_workers_active{{{tier}}} {stats.workers_active}",
        "# TYPE subiso_runs_completed_total counter",
    ]
    for outcome, count in stats.runs_completed.items():
        lines.append(f'subiso_runs_completed_total{{{tier},outcome="{outcome}"}} {count}')
    lines += [
        "# TYPE subiso_worker_restarts_total counter",
        f"subiso_worker_restarts_total{{{tier}}} {stats.worker_restarts}",
        "# TYPE subiso_loop_lag_seconds gauge",
        f"subiso_loop_lag_seconds{{{tier}}} {stats.loop_lag_s}",
        "# TYPE subiso_loop_lag_max_seconds gauge",
        f"subiso_loop_lag_max_seconds{{{tier}}} {stats.loop_lag_max_s}",
    ]
    return lines


# -- OpenTelemetry -------------------------------------------------------------------------------
class _Instruments:
    """The instruments, made once per process on the global meter provider (a proxy until the
    application sets one: instruments made before then start recording once it does)."""

    def __init__(self) -> None:
        from opentelemetry import metrics

        from subiso import __version__

        meter = metrics.get_meter("subiso", __version__)
        self.duration = meter.create_histogram(
            "subiso.run.duration", unit="s", description="Run execution time, in its worker"
        )
        self.queue_wait = meter.create_histogram(
            "subiso.run.queue_wait", unit="s", description="Time from submit to a run's start"
        )
        self.completed = meter.create_counter(
            "subiso.runs.completed", unit="{run}", description="Runs finished, by outcome"
        )
        self.restarts = meter.create_counter(
            "subiso.worker.restarts", unit="{worker}", description="Workers replaced"
        )
        self.loop_lag = meter.create_histogram(
            "subiso.loop.lag", unit="s", description="Worker event loop lag, per probe"
        )
        self._sources: dict[int, tuple[str, weakref.WeakMethod[Callable[[], ExecutorStats]]]] = {}
        self._sources_lock = threading.Lock()
        meter.create_observable_up_down_counter(
            "subiso.runs.running",
            callbacks=[self._observe("runs_running")],
            unit="{run}",
            description="Runs executing now",
        )
        meter.create_observable_up_down_counter(
            "subiso.runs.pending",
            callbacks=[self._observe("runs_pending")],
            unit="{run}",
            description="Runs submitted and not started",
        )

    def observe(self, meter: RunMeter, stats: Callable[[], ExecutorStats]) -> None:
        """Observe ``meter`` through the executor whose bound ``stats`` method this is, while
        that executor lives."""
        method = weakref.WeakMethod(stats)
        with self._sources_lock:
            self._sources[id(meter)] = (meter.tier, method)

    def forget(self, meter: RunMeter) -> None:
        """Stop observing ``meter`` (its executor now reports through another one's)."""
        with self._sources_lock:
            self._sources.pop(id(meter), None)

    def _observe(self, field: str) -> Callable[[Any], Iterable[Any]]:
        def callback(options: Any) -> Iterable[Any]:
            from opentelemetry.metrics import Observation

            totals: dict[str, int] = {}
            with self._sources_lock:
                sources = list(self._sources.items())
            for key, (tier, method) in sources:
                stats = method()
                if stats is None:  # the executor is gone
                    with self._sources_lock:
                        self._sources.pop(key, None)
                    continue
                try:
                    value = getattr(stats(), field)
                except Exception:  # a closing executor must not break collection
                    continue
                totals[tier] = totals.get(tier, 0) + value
            return [Observation(value, {"tier": tier}) for tier, value in totals.items()]

        return callback


_INSTRUMENTS: _Instruments | None = None
_CHECKED = False
_LOCK = threading.Lock()


def instruments() -> _Instruments | None:
    """The process's instruments, or None where opentelemetry-api is not installed."""
    global _INSTRUMENTS, _CHECKED
    if _CHECKED:
        return _INSTRUMENTS
    with _LOCK:
        if not _CHECKED:
            try:
                if importlib.util.find_spec("opentelemetry.metrics") is not None:
                    _INSTRUMENTS = _Instruments()
            except Exception:  # a broken install must not break executors
                _INSTRUMENTS = None
            _CHECKED = True
    return _INSTRUMENTS
