"""Loop health: lag probes, a blocked-loop watchdog, and tasks that runs leave behind.

A worker loop serves many runs at once, so one run's blocking call (a sync HTTP client in an
async node, a CPU-bound loop) stalls all of them, and a task a node fires and forgets keeps
running after its run has ended. Both used to happen silently.

* :class:`LoopMonitor` - while a worker loop runs, a probe every ``interval`` seconds measures
  its lag (how late the probe itself ran) and reports it (``ExecutorStats.loop_lag_s``, the
  ``subiso.loop.lag`` histogram). One watchdog thread per process watches every monitored loop:
  a loop whose probe has not run for longer than its threshold (``loop_block_threshold``,
  default 1 s) is blocked *now*, so the watchdog logs a WARNING while it is - naming the run
  (``run_id``), the LangGraph node when it can tell, and the blocked thread's stack.
* :func:`report_leftovers` - tasks still pending after the run that created them ended are
  reported at WARNING with that run's ``run_id`` and the tasks' names (a worker loop checks
  when it has no run in flight and every few seconds; a caller's loop - the inline tier's
  ``arun`` - is checked shortly after the run, :class:`CallerLoopWatch`; loops being closed
  report what they cancel).

Which run a task belongs to is the :data:`~subiso.observe.runs.CURRENT_RUN` in the task's
context (Python 3.12+ exposes it; before 3.12, loops subiso owns record it at task creation
with a task factory, :func:`tag_tasks`).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

from subiso.observe.log import logger_for
from subiso.observe.runs import CURRENT_RUN, RunTag

#: Default seconds a worker loop may be blocked before the watchdog warns (a shared option).
DEFAULT_BLOCK_THRESHOLD_S = 1.0
#: The probe's period: the loop's lag is sampled this often while it runs.
PROBE_INTERVAL_S = 0.25
#: How many probes between two scans for leftover tasks on a busy loop.
LEFTOVER_SCAN_EVERY = 8
_TASKS_KNOW_CONTEXT = sys.version_info >= (3, 12)

log = logging.getLogger("subiso.loop")


# -- which run a task belongs to -----------------------------------------------------------
_TASK_RUNS: weakref.WeakKeyDictionary[asyncio.Task[Any], RunTag] = weakref.WeakKeyDictionary()


def run_of(task: asyncio.Task[Any] | None) -> RunTag | None:
    """The run that created ``task`` (directly or through tasks it created), if known."""
    if task is None:
        return None
    if sys.version_info >= (3, 12):
        return task.get_context().get(CURRENT_RUN)
    return _TASK_RUNS.get(task)


def tag_current_task(tag: RunTag) -> None:
    """Python < 3.12: the running task is ``tag``'s own (it made the tag current in its own
    context, after the task was created: the task factory could not see it)."""
    if _TASKS_KNOW_CONTEXT:
        return
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no loop running here: a sync run
        return
    if task is not None:
        _TASK_RUNS[task] = tag


def tag_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Python < 3.12: record the creating run of each task of ``loop`` (a loop subiso owns)."""
    if _TASKS_KNOW_CONTEXT:
        return
    previous = loop.get_task_factory()

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        if previous is not None:
            task = previous(loop, coro, **kwargs)
        else:
            task = asyncio.Task(coro, loop=loop, **kwargs)
        tag = CURRENT_RUN.get()
        if tag is not None:
            _TASK_RUNS[task] = tag  # type: ignore[index]  # a factory's task is a Task
        return task

    loop.set_task_factory(factory)


# -- leftover tasks ---------------------------------------------------------------------------
#: Tasks reported already: a task is reported once, however often its loop is scanned.
_REPORTED: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()


def leftovers(tasks: Iterable[asyncio.Task[Any]]) -> dict[RunTag, list[asyncio.Task[Any]]]:
    """The pending tasks among ``tasks`` whose run has ended, by run (not reported yet)."""
    found: dict[RunTag, list[asyncio.Task[Any]]] = {}
    for task in tasks:
        if task.done() or task in _REPORTED:
            continue
        tag = run_of(task)
        if tag is not None and tag.ended:
            found.setdefault(tag, []).append(task)
    return found


def report_leftovers(
    found: dict[RunTag, list[asyncio.Task[Any]]], where: str, what_next: str = ""
) -> None:
    """One WARNING per run that left tasks pending ``where``, naming the tasks."""
    for tag, tasks in found.items():
        _REPORTED.update(tasks)
        names = [task.get_name() for task in tasks]
        logger_for(tag.tier).warning(
            "run %s (%s) left %d task(s) pending on %s after it ended: %s%s",
            tag.run_id,
            tag.graph,
            len(tasks),
            where,
            ", ".join(names),
            what_next,
            extra={"tasks": names, **tag.attributes()},
        )


def scan_leftovers(loop: asyncio.AbstractEventLoop, where: str) -> None:
    """Report the tasks of ended runs still pending on ``loop``."""
    report_leftovers(leftovers(asyncio.all_tasks(loop)), where)


class CallerLoopWatch:
    """A caller's loop (the inline tier's ``arun``): runs that ended on it are checked for
    leftover tasks once, a short while later, all in one scan - never a scan per run, which
    on a loop with many tasks would cost more than the runs."""

    DELAY_S = 0.5
    _watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CallerLoopWatch] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._scheduled = False

    @classmethod
    def run_ended(cls, loop: asyncio.AbstractEventLoop) -> None:
        """A run on ``loop`` (the running one) has ended: check the loop soon."""
        watch = cls._watches.get(loop)
        if watch is None:
            watch = cls._watches[loop] = CallerLoopWatch(loop)
        if not watch._scheduled:
            watch._scheduled = True
            loop.call_later(cls.DELAY_S, watch._scan)

    def _scan(self) -> None:
        self._scheduled = False
        scan_leftovers(self._loop, "the caller's event loop")


# -- the probe and the watchdog ---------------------------------------------------------------
class LoopMonitor:
    """Measures one worker loop's lag while it runs and lets the watchdog see it blocked.

    ``watch``/``unwatch`` bracket the worker's life (on its thread): the watchdog knows the
    loop meanwhile. ``start``/``stop`` bracket each stretch of running (a worker's loop does
    not run while the worker is idle, so there is nothing to measure then), and cost a timer
    each. ``on_lag(seconds)`` receives each probe's measurement.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        tier: str,
        threshold: float = DEFAULT_BLOCK_THRESHOLD_S,
        on_lag: Callable[[float], None] | None = None,
    ) -> None:
        self.loop = loop
        self.tier = tier
        self.threshold = threshold
        self.interval = min(PROBE_INTERVAL_S, threshold / 2)
        self.on_lag = on_lag
        self.thread_ident: int | None = None
        self.running = False  # the loop is running: its probe beats
        self.beat = 0.0  # time.monotonic() of the latest probe
        self.blocked_since: float | None = None  # set by the watchdog once it has warned
        self._handle: asyncio.TimerHandle | None = None
        self._expected = 0.0
        self._ticks = 0

    def watch(self) -> None:
        """On the loop's thread, as the worker starts."""
        self.thread_ident = threading.get_ident()
        _WATCHDOG.add(self)

    def unwatch(self) -> None:
        _WATCHDOG.discard(self)

    def start(self) -> None:
        self.beat = time.monotonic()
        self.blocked_since = None
        self._schedule()
        self.running = True

    def stop(self) -> None:
        self.running = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        self._expected = self.loop.time() + self.interval
        self._handle = self.loop.call_later(self.interval, self._probe)

    def _probe(self) -> None:
        lag = max(0.0, self.loop.time() - self._expected)
        self.beat = time.monotonic()
        blocked_since = self.blocked_since
        if blocked_since is not None:
            self.blocked_since = None
            logger_for(self.tier).info(
                "the %s worker loop %#x ran again after being blocked for %.2fs",
                self.tier,
                id(self.loop),
                lag + self.interval,
                extra={"blocked_s": lag + self.interval},
            )
        if self.on_lag is not None:
            self.on_lag(lag)
        self._ticks += 1
        if self._ticks % LEFTOVER_SCAN_EVERY == 0:
            self.scan_leftovers()
        self._schedule()

    def scan_leftovers(self) -> None:
        """Report tasks of ended runs still pending on this (running) loop."""
        scan_leftovers(self.loop, f"its {self.tier} worker loop")

    # -- called on the watchdog thread ----------------------------------------------------------
    def overdue(self, now: float) -> bool:
        return (
            self.running
            and self.blocked_since is None
            and now - self.beat - self.interval > self.threshold
        )

    def report_block(self, now: float) -> None:
        """Warn that the loop is blocked, naming the run, the node and the blocked stack."""
        self.blocked_since = now
        blocked_for = now - self.beat - self.interval
        task = _current_task(self.loop)
        tag = run_of(task)
        frame = sys._current_frames().get(self.thread_ident or -1)
        node = _node_of(task, frame)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
        who = f"run {tag.run_id} ({tag.graph})" if tag is not None else "code outside any run"
        where = f", node {node!r}" if node else ""
        attributes: dict[str, Any] = {"blocked_s": blocked_for, "node": node}
        if tag is not None:
            attributes.update(tag.attributes())
        logger_for(self.tier).warning(
            "the %s worker loop %#x has been blocked for %.2fs by %s%s: every other run on it "
            "waits (use an async call, or asyncio.to_thread for blocking work)\n%s",
            self.tier,
            id(self.loop),
            blocked_for,
            who,
            where,
            stack.rstrip(),
            extra=attributes,
        )


def _current_task(loop: asyncio.AbstractEventLoop) -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task(loop)
    except Exception:
        return None


def _node_of(task: asyncio.Task[Any] | None, frame: FrameType | None) -> str | None:
    """The LangGraph node running in ``task``: from the LangChain config in its context
    (3.12+), else from the blocked stack - LangGraph's retry frame, or the innermost node
    runnable's config."""
    config_module = sys.modules.get("langchain_core.runnables.config")
    var = getattr(config_module, "var_child_runnable_config", None)
    if task is not None and var is not None and sys.version_info >= (3, 12):
        config = task.get_context().get(var)
        if isinstance(config, dict):
            node = (config.get("metadata") or {}).get("langgraph_node")
            if node:
                return str(node)
    while frame is not None:
        code = frame.f_code.co_name
        if code in ("arun_with_retry", "run_with_retry"):
            name = getattr(frame.f_locals.get("task"), "name", None)
            if name:
                return str(name)
        elif code in ("ainvoke", "invoke"):
            # a node's runnable called with its config (3.11: the node's own task runs it
            # directly, no retry frame above it on the blocked stack)
            config = frame.f_locals.get("config")
            if isinstance(config, dict):
                node = (config.get("metadata") or {}).get("langgraph_node")
                if node:
                    return str(node)
        frame = frame.f_back
    return None


class _Watchdog:
    """One daemon thread per process watching every worker loop's probe; alive only while
    some worker lives (a process without executors holds no watchdog thread)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._monitors: set[LoopMonitor] = set()
        self._thread: threading.Thread | None = None

    def add(self, monitor: LoopMonitor) -> None:
        with self._cond:
            self._monitors.add(monitor)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._main, name="subiso-loop-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def discard(self, monitor: LoopMonitor) -> None:
        with self._cond:
            self._monitors.discard(monitor)
            if not self._monitors:
                self._cond.notify()

    def _main(self) -> None:
        while True:
            with self._cond:
                if not self._monitors:
                    self._thread = None
                    return
                period = min(m.threshold for m in self._monitors) / 4
                self._cond.wait(period)
                now = time.monotonic()
                suspects = [m for m in self._monitors if m.overdue(now)]
            for monitor in suspects:
                try:
                    monitor.report_block(now)
                except Exception:  # the watchdog must outlive any reporting problem
                    log.debug("could not report a blocked loop", exc_info=True)


_WATCHDOG = _Watchdog()
