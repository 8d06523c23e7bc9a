"""TierHooks: what a tier implements - kept apart from what callers use (``Executor``).

A tier is an :class:`~subiso.executors.base.Executor` subclass; ``Executor`` holds the caller's
API (``run``, ``submit``, ``stream``, ``shutdown``... written once for every tier) and inherits
these hooks, so ``help(subiso.Executor)`` lists the caller's methods first and the hooks apart,
under "Methods inherited from TierHooks". In the spirit of ``concurrent.futures``, one hook is
required and the rest are optional:

* ``start(call, events=None) -> Future[RunResult]`` - begin one
  :class:`~subiso.runtime.call.Call` (an invoke, a stream or a state operation on a prepared
  GraphConfig); the future resolves exactly once with its RunResult or exception; each event
  the run produces goes to ``events`` (an :class:`~subiso.events.EventChannel`) as it happens;
* ``stop_workers(wait, cancel_pending)`` - release workers and resources (called once, by
  ``close``/``shutdown``);
* ``cancel_running(future)`` - stop a run that already executes (an awaiting caller was
  cancelled, a stream's consumer left); best effort;
* ``abandon(future)`` - give up a run that ignored its timeout (its worker is lost);
* ``worker_stats()`` - the tier's workers, for ``Executor.stats()``;
* ``call(call)`` / ``acall(call, events)`` - a fast path for tiers that run in the caller's
  thread or loop (inline, context) or read their own reply (process); by default both go
  through ``start``;
* ``availability(caps)`` - whether the tier runs on a Python, for ``subiso info``.

``started`` and ``watch_deadline`` are what tiers call: ``start`` with the run's deadline
watched from the caller's side.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures as cf
import contextlib
import logging
import threading
from typing import TYPE_CHECKING, ClassVar

from subiso._futures import Deadlines, settle
from subiso.config import GraphConfig
from subiso.errors import RunTimeout
from subiso.events import EventChannel
from subiso.observe.log import for_run
from subiso.observe.metrics import WorkerStats
from subiso.report import RunResult
from subiso.runtime.call import Call

if TYPE_CHECKING:
    from subiso._capabilities import Capabilities

#: How long past a run's timeout its caller waits for the worker to end the run by itself
#: (it cancels it at the timeout) before control comes back regardless (``started``).
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


class TierHooks(abc.ABC):
    """The hooks a tier implements; see the module docstring."""

    tier: ClassVar[str] = "?"
    #: One line for ``subiso info``: what this tier gives.
    summary: ClassVar[str] = ""
    #: True when runs execute in another process or interpreter, which imports the graph
    #: itself: a compiled graph object cannot be passed there (``boundary`` names where).
    crosses_boundary: ClassVar[bool] = False
    boundary: ClassVar[str] = "process"
    #: True when every run's input crosses through ``subiso.codec``, which refuses a value
    #: nested too deep (or holding itself) while it encodes it: ``prepare`` then leaves that
    #: check to the codec instead of walking the input first (``GraphConfig.nesting_error``).
    codec_checks_nesting: ClassVar[bool] = False

    @classmethod
    def availability(cls, caps: Capabilities) -> tuple[bool, str]:
        """Whether this tier runs on the Python ``caps`` describes, and a one-line note: what it
        gives there, or why it does not run. Tiers with conditions override it."""
        return True, cls.summary or (cls.__doc__ or cls.__name__).strip().splitlines()[0]

    @abc.abstractmethod
    def start(self, call: Call, events: EventChannel | None = None) -> cf.Future[RunResult]:
        """Begin ``call`` (its GraphConfig prepared: defaults applied); return its future.

        The future resolves exactly once: a RunResult, the run's exception, or cancelled (only
        if the run will not complete). Tiers with workers return at once; tiers that run in
        the caller's thread may run it here and return a done future - except with
        ``events``, whose consumer reads while the run goes on.
        """

    def stop_workers(self, wait: bool, cancel_pending: bool) -> None:
        """Release workers and resources; called once, by ``close``/``shutdown``."""
        return None

    def cancel_running(self, future: cf.Future[RunResult]) -> None:
        """Stop a run that already executes (its awaiting caller was cancelled); best effort."""
        return None

    def abandon(self, future: cf.Future[RunResult]) -> None:
        """Give up a run that went past its timeout and did not stop when cancelled (a sync
        node cannot be interrupted): its caller already has RunTimeout; make sure the worker
        it holds takes no more runs and that nothing waits for it. Optional."""
        return None

    def worker_stats(self) -> WorkerStats:
        """The tier's workers, for ``stats()``: pool size, live workers, runs per worker, and
        how many runs execute now when the workers do not count that in the executor's
        RunMeter (their runtime's ``meter``). Optional."""
        return WorkerStats()

    # -- deadlines ----------------------------------------------------------------------------
    def started(self, call: Call, events: EventChannel | None = None) -> cf.Future[RunResult]:
        """``start(call, events)`` with the run's deadline watched from the caller's side: if
        the worker has not ended the run ``TIMEOUT_GRACE_S`` after its timeout, the future
        gets RunTimeout anyway (control is back) and the tier is told to ``abandon`` it."""
        future = self.start(call, events)
        self.watch_deadline(future, call)
        return future

    def watch_deadline(self, future: cf.Future[RunResult], work: Call | GraphConfig) -> None:
        """Arm ``started``'s deadline on a future a tier made itself (its own fast path)."""
        call = work if isinstance(work, Call) else Call(cfg=work)
        timeout = call.cfg.timeout
        if timeout is None or future.done():
            return
        deadline = _deadlines().call_later(
            timeout + TIMEOUT_GRACE_S, lambda: self._overdue(future, call)
        )
        future.add_done_callback(lambda _: deadline.cancel())

    def _overdue(self, future: cf.Future[RunResult], call: Call) -> None:
        if future.done():
            return
        cfg = call.cfg
        error = RunTimeout(
            f"run of {cfg.label!r} went past its timeout of {cfg.timeout:g}s and did not "
            f"stop when cancelled; control is back with the caller and the {self.tier} "
            "tier gave up its worker"
        )
        run_id = call.run.run_id if call.run is not None else None
        for_run(
            self.tier,
            logging.WARNING,
            "run %s timeout: %s",
            run_id,
            error,
            run_id=run_id,
            thread_id=cfg.thread_id,
            outcome="timeout",
        )
        settle(future, exc=error)
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
                if type(self).cancel_running is not TierHooks.cancel_running:
                    # as a cancelled ``ainvoke`` returns once LangGraph has cancelled its
                    # tasks: the run ends on its worker before this cancellation completes
                    await _settled(future, CANCEL_GRACE_S)
            raise


async def _settled(future: cf.Future[RunResult], bound: float) -> None:
    """Wait for ``future`` to be done, whatever its outcome, at most ``bound`` seconds
    (shielded: a second cancellation of the waiter stops the wait, not the run)."""
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), bound)
