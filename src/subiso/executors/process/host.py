"""ProcessExecutor ("process"): warm worker processes, msgspec payloads, crash recovery, hard
timeouts.

The strongest isolation tier: each run executes in a worker process, on that worker's own
persistent event loop (the same :class:`~subiso.runtime.loop_worker.LoopWorker` the thread tier
uses, so per-loop checkpointers and cached targets live as long as the worker).

Host side, per worker: a run pipe (a socketpair carrying length-prefixed msgpack frames: runs
out, replies in, see :mod:`subiso.executors.process.worker`), a control pipe (cancellations out)
and one reader thread that starts the process, reads replies nobody else is waiting to read
and notices the worker's death (EOF). Callers write requests directly under a per-worker send
lock, so a run costs no thread creation and no pickle; a caller of ``run``/``execute`` reads
its own reply when no other thread is reading, so a sync run crosses no host thread at all
(see ``WorkerHandle``). One lazily started deadline thread (``subiso._futures.Deadlines``) owns the timers
(timeouts, kill grace).

Dispatch is work-conserving: the least-busy ready worker gets the run at once (so its frame is
already in the pipe when the worker turns to it; async runs interleave on its loop, as in the
thread tier), the pool grows in the background while every worker is busy, and a worker that
runs out of work takes back half of the runs still waiting unread in the pipe of the most
backed-up worker, so no worker idles while another has a backlog, whatever the run lengths or
core speeds (the rules, as plain functions: :mod:`.dispatch`). Each worker counts the frames it has read in shared memory, which
tells the host, without a message per run, which runs a worker has not started. A run whose
thread keeps its checkpoints in the worker (``"memory"``) stays with that worker.

The executor's parts: this module is its face and its dispatch; :mod:`.pool` is the worker
pool's life, :mod:`.replies` reads replies, :mod:`.timers` holds timeouts and kill grace,
:mod:`.state` declares what they share.

Failure handling - a worker that dies is replaced, and its runs are triaged (``triage``):

* runs it had not started go to another worker, as if nothing happened;
* the run that brought it down (the only one it was running, or the run it was killed for)
  fails with ``WorkerCrashed`` naming the exit code or signal (``culprit``: its own config);
* runs that were running beside it are sent again when that is safe: read-only calls; runs
  with a durable checkpointer and a thread_id, which resume from their last checkpoint
  (``GraphConfig.recover``); any run with ``retry_collateral=True``. When it is not known which
  of several runs brought the worker down, each one sent again runs alone, so a second crash
  names it. A run is sent again once at most; one that cannot be fails with ``WorkerCrashed``
  whose ``culprit`` names the run that crashed the worker;
* a run past its ``timeout`` (counted from dispatch) is cancelled on its worker loop; if no
  reply comes within ``kill_grace`` the worker is killed and replaced and the caller gets
  ``RunTimeout``. A run cancelled in time but whose sync node still spins in a thread taints its
  worker, which is retired (drained, stopped, killed after ``kill_grace`` if it hangs);
* ``max_tasks_per_worker`` retires a worker after that many runs, the same way.

Start-up: workers start with ``forkserver`` (Linux) or ``spawn``, never ``fork`` (the host runs
threads). subiso adds its worker module and langgraph to the forkserver's preload, so a worker
forked from it does not import langgraph again (a cold executor's first result comes an order
of magnitude sooner than with spawn: ``bench_process.py``'s time-to-first-result rows). Each
worker gets the host's ``sys.path`` and working directory at its start (a forkserver started earlier would
otherwise hand out stale ones). Unlike a multiprocessing pool's, a worker does not import the
caller's main script to start (:mod:`.main_module`), so a script that creates and runs an
executor at import time, without ``if __name__ == "__main__":``, works as long as its runs name
nothing defined in the script. A worker imports the script (as ``__mp_main__``, like
multiprocessing) only when a run needs it - a ``"__main__:wf"`` target, a ``preload`` or
``worker_init`` there, a value of a class defined there - and if the script then starts workers
at import time, the run fails with a ``ConfigError`` saying to put the executor under the guard.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import itertools
import multiprocessing
import multiprocessing.util  # (registers its atexit join before ours, so ours runs first)
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence

from typing_extensions import Unpack

from subiso import codec
from subiso._capabilities import Capabilities
from subiso._futures import Deadlines, Waiter, cancel_and_notify, settle
from subiso.codec.echo import SentModels
from subiso.config import GraphConfig
from subiso.errors import ConfigError, ExecutorClosed
from subiso.events import EventChannel
from subiso.executors.affinity import Affinity
from subiso.executors.base import Executor, SharedOptions
from subiso.executors.process import wire
from subiso.executors.process.dispatch import choose_worker, runs_to_steal
from subiso.executors.process.handle import (
    CAN_PARK,
    PendingRun,
    StartMethod,
    WorkerHandle,
    default_start_method,
    send_control,
    start_context,
)
from subiso.executors.process.handle import WorkerState as S
from subiso.executors.process.pool import WorkerPool
from subiso.executors.process.replies import ReplyReader
from subiso.executors.process.state import Send
from subiso.executors.process.timers import RunTimers
from subiso.observe.metrics import WorkerStats
from subiso.report import RunResult
from subiso.runtime.call import Call
from subiso.validate import flag, names, positive_int, seconds

_LIVE: weakref.WeakSet[ProcessExecutor] = weakref.WeakSet()


class ProcessExecutor(ReplyReader, WorkerPool, RunTimers, Executor):
    """Run each GraphConfig in one of ``max_workers`` warm worker processes.

    Options: ``max_workers`` (default: CPU count), ``timeout`` and ``checkpointer`` (defaults
    for configs that name none), ``start_method`` (``"forkserver"`` on Linux, else
    ``"spawn"``; ``"fork"`` is refused), ``prestart`` (start every worker in the constructor and
    wait until they are ready), ``preload`` (modules ``"pkg.mod"`` to import, or targets
    ``"pkg.mod:attr"`` to resolve, in each worker before it takes runs),
    ``max_tasks_per_worker`` (recycle a worker after that many runs), ``kill_grace``
    (seconds a worker gets to react to a cancellation or a stop before it is killed) and
    ``retry_collateral`` (run again, from its input, a run that was in flight beside a run that
    crashed its worker, even without a checkpointer to resume from: for runs that are safe to
    repeat).
    """

    tier = "process"
    crosses_boundary = True
    codec_checks_nesting = True

    @classmethod
    def availability(cls, caps: Capabilities) -> tuple[bool, str]:
        # plain fork is never used once threads exist (the tier refuses it)
        methods = [m for m in multiprocessing.get_all_start_methods() if m != "fork"]
        if not methods:
            return False, "no multiprocessing start method here"
        return True, f"worker processes; start methods: {', '.join(methods)}"

    def __init__(
        self,
        *,
        max_workers: int | None = None,
        start_method: StartMethod | None = None,
        prestart: bool = False,
        preload: Sequence[str] = (),
        max_tasks_per_worker: int | None = None,
        kill_grace: float = 3.0,
        retry_collateral: bool = False,
        **shared: Unpack[SharedOptions],
    ) -> None:
        super().__init__(**shared)
        name = type(self).__name__
        self.max_workers = positive_int(max_workers, f"{name}: max_workers", os.cpu_count() or 1)
        if max_tasks_per_worker is not None:
            positive_int(max_tasks_per_worker, f"{name}: max_tasks_per_worker")
        kill_grace = seconds(kill_grace, f"{name}: kill_grace")  # type: ignore[assignment]
        self.preload = names(
            preload, f"{name}: preload", "module names 'pkg.mod' or targets 'pkg.mod:attr'"
        )
        flag(prestart, f"{name}: prestart")
        self.max_tasks_per_worker = max_tasks_per_worker
        self.kill_grace = float(kill_grace)
        self.retry_collateral = flag(retry_collateral, f"{name}: retry_collateral")
        self.start_method = start_method or default_start_method()
        self._ctx = start_context(self.start_method, name)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # worker ready / exited
        self._workers: list[WorkerHandle] = []
        self._queue: deque[PendingRun] = deque()
        self._rids = itertools.count()
        self._indexes = itertools.count()
        self._closing = False
        self._exiting = False  # interpreter exit with the executor open (see _kill_all)
        self._deadlines = Deadlines("subiso-process-deadlines")  # timeouts, kill grace
        self._affinity: Affinity[WorkerHandle] = Affinity()
        self._threads: list[threading.Thread] = []
        _LIVE.add(self)
        if prestart:
            self._prestart()

    def start(self, call: Call, events: EventChannel | None = None) -> cf.Future[RunResult]:
        future: cf.Future[RunResult] = cf.Future()
        pending = self._start(call, future, direct=False, events=events)
        ref = weakref.ref(pending)
        future.add_done_callback(lambda f: self._on_future_done(ref(), f))
        return future

    def call(self, call: Call) -> RunResult:
        """Run to completion; the calling thread reads its own reply when it can.

        A caller blocked on a future would be woken by the worker's reader thread, which was
        itself woken by the reply: two hand-offs (and a GIL hand-over) per run. So when the
        chosen worker has no receiver, the caller becomes it until its reply arrives (reading
        and settling any other reply that comes first), and the reader thread stays parked.
        Without a timeout the run's outcome is a :class:`~subiso._futures.Waiter` (nobody but
        this caller looks at it; only ``close(cancel_pending=True)`` cancels it); with one, a
        future, on which the deadline is watched.
        """
        timed = call.cfg.timeout is not None
        outcome: cf.Future[RunResult] | Waiter = cf.Future() if timed else Waiter()
        pending = self._start(call, outcome, direct=CAN_PARK)
        try:
            if isinstance(outcome, cf.Future):
                self.watch_deadline(outcome, call)
            if pending.direct:
                self._receive_own_reply(pending)
        except BaseException:  # interrupted (Ctrl-C) before or while reading: hand it over
            self._stop_reading(pending)
            raise
        result: RunResult = outcome.result()
        return result

    def _start(
        self,
        call: Call,
        outcome: cf.Future[RunResult] | Waiter,
        *,
        direct: bool,
        events: EventChannel | None = None,
    ) -> PendingRun:
        refuse_callbacks(call.cfg)
        rid = next(self._rids)
        start = time.perf_counter()
        window = 0 if events is None else events.maxsize
        sent = SentModels()
        try:
            frame = codec.encode(
                wire.RunOut(rid, call, window), label="state", part=call.cfg.input, role=sent
            )
        except Exception as exc:
            failed = PendingRun(rid, call, b"", 0.0, outcome)
            # a value too deep for the codec: the ConfigError naming its field
            settle(outcome, exc=call.cfg.nesting_error() or exc)
            return failed
        pending = PendingRun(rid, call, frame, time.perf_counter() - start, outcome, events)
        pending.sent = sent
        pending.direct = direct  # a wish until _assign_locked grants it
        with self._lock:
            if self._closing:
                raise ExecutorClosed(f"cannot run on a closed {type(self).__name__}")
            sends = self._dispatch_locked(pending)
        self._send_all(sends)
        return pending

    def _dispatch_locked(self, pending: PendingRun) -> list[Send]:
        """Give the run to the worker the policy chooses (:func:`.dispatch.choose_worker`), or
        queue it until one is ready; grow the pool while every worker is busy."""
        best = choose_worker(pending, self._workers, self._affinity)
        if (
            (best is None or best.in_flight)
            and not self._exiting
            and self._active_count_locked() < self.max_workers
        ):
            self._spawn_locked()  # grow in the background; this run does not wait for it
        if best is None:
            pending.direct = False  # whoever starts the worker sends it; its reader reads
            self._queue.append(pending)
            return []
        return self._assign_locked(best, pending)

    def _assign_locked(self, worker: WorkerHandle, pending: PendingRun) -> list[Send]:
        pending.worker = worker
        pending.assignment += 1
        pending.seq = 0
        pending.t_sent = time.perf_counter()
        worker.in_flight[pending.rid] = pending
        worker.dispatched += 1
        worker.exclusive = pending.exclusive
        if pending.timeout is not None:  # the timer holds the run weakly: not its result
            subject = (weakref.ref(pending), pending.assignment)
            self._schedule_locked(pending.timeout, "timeout", subject)
        if self.max_tasks_per_worker and worker.dispatched >= self.max_tasks_per_worker:
            self._retire_locked(worker)
        if pending.direct:  # the caller asked to read its own reply
            me = threading.get_ident()
            if worker.receiver is None or worker.receiver == me:
                # ``me`` may be reading this worker already: a done-callback settled by it
                # calls ``run``. It reads on, nested, rather than wait for itself.
                pending.nested = worker.receiver == me
                worker.receiver = me
                worker.direct += 1
            else:
                pending.direct = False
                worker.wants_direct = True  # the reader parks once it has nothing else
        worker.poke()
        return [(worker, pending.frame, pending)]

    def _drain_queue_locked(self) -> list[Send]:
        """Dispatch the queued runs that have a worker now, keeping the others' order."""
        waiting, self._queue = self._queue, deque()
        sends: list[Send] = []
        for pending in waiting:
            if not pending.future.done():
                sends += self._dispatch_locked(pending)
        return sends

    def _steal_locked(self, thief: WorkerHandle) -> list[Callable[[], None]]:
        """``thief`` has nothing to do: take back the runs the policy picks
        (:func:`.dispatch.runs_to_steal`); each comes back ``Cancelled`` and is dispatched again
        (to ``thief``, idle). A run the worker starts meanwhile just runs there."""
        if self._closing or self._queue:
            return []
        found = runs_to_steal(thief, self._workers)
        return [] if found is None else _take_back(*found)

    def _send_all(self, sends: list[Send]) -> None:
        for worker, frame, pending in sends:
            try:
                with worker.send_lock:
                    worker.sent += 1
                    if pending is not None and pending.worker is worker:
                        pending.seq = worker.sent
                    worker.conn.send_bytes(frame)  # type: ignore[union-attr]
            except (OSError, ValueError):
                if pending is not None:
                    self._redispatch(worker, pending)
            else:
                if pending is not None:
                    pending.frame = b""  # a large state is not kept alive until the reply

    def _redispatch(self, worker: WorkerHandle, pending: PendingRun) -> None:
        """The worker died before the run reached it: give the run to another one."""
        with self._lock:
            if worker.in_flight.pop(pending.rid, None) is None:
                return  # its death was handled already, the run resolved
            if pending.direct:  # its caller (this thread) gives up reading this worker
                pending.direct = False
                worker.direct -= 1
                if not pending.nested:
                    worker.receiver = None
            worker.broken = True
            worker.poke()
            sends = self._dispatch_locked(pending)
        self._send_all(sends)

    def _on_future_done(self, pending: PendingRun | None, future: cf.Future[RunResult]) -> None:
        """A caller cancelled the run: drop it from the queue or cancel it in its worker."""
        if not future.cancelled() or pending is None:
            return
        with self._lock:
            worker = pending.worker
            if worker is None:
                try:
                    self._queue.remove(pending)
                except ValueError:
                    pass
                return
            if pending.rid not in worker.in_flight:
                return
        send_control(worker, wire.Cancel(pending.rid))

    def cancel_running(self, future: cf.Future[RunResult]) -> None:
        """Nothing to do: these futures stay cancellable until resolved, and cancelling one
        cancels its run on the worker loop (see ``_on_future_done``)."""

    def abandon(self, future: cf.Future[RunResult]) -> None:
        """An overdue run holds its worker: retire that worker at once (no new runs; its
        replacement starts now); the kill after ``kill_grace`` follows as for any timeout."""
        with self._lock:
            for worker in self._workers:
                if worker.state is S.SERVING and any(
                    p.future is future for p in worker.in_flight.values()
                ):
                    self._retire_locked(worker)
                    actions = self._reclaim_locked(worker)
                    break
            else:
                return
        for action in actions:
            action()

    def _reclaim_locked(self, worker: WorkerHandle) -> list[Callable[[], None]]:
        """Take back every run waiting unread in a retired worker's pipe (they go elsewhere)."""
        return _take_back(worker, worker.waiting())

    def stop_workers(self, wait: bool, cancel_pending: bool) -> None:
        with self._lock:
            self._closing = True
            cancelled: list[PendingRun] = []
            sends: list[Send] = []
            controls: list[tuple[WorkerHandle, wire.CancelQueued]] = []
            if cancel_pending:
                cancelled, self._queue = list(self._queue), deque()
                controls = [
                    (w, wire.CancelQueued(list(w.in_flight)))
                    for w in self._workers
                    if w.state is not S.STARTING and w.in_flight
                ]
            for worker in list(self._workers):
                sends += self._maybe_stop_locked(worker)
        for pending in cancelled:
            cancel_and_notify(pending.future)
        for worker, msg in controls:
            send_control(worker, msg)
        self._send_all(sends)
        # From a done-callback on one of our reader threads, waiting would wait for that very
        # thread to bury its worker: the workers stop on their own, nobody waits for them here.
        if wait and threading.current_thread() not in self._threads:
            self._join()

    def worker_stats(self) -> WorkerStats:
        """Runs running: those whose frames their worker has read (its shared count)."""
        with self._lock:
            running = 0
            for worker in self._workers:
                read = worker.frames_taken()
                running += sum(
                    1 for p in worker.in_flight.values() if 0 < p.seq <= read and p.call.is_run
                )
            return WorkerStats(
                workers_max=self.max_workers,
                workers_active=len(self._workers),
                runs_per_worker=[len(w.in_flight) for w in self._workers],
                runs_running=running,
            )


# -- helpers -----------------------------------------------------------------------------------
def refuse_callbacks(cfg: GraphConfig) -> None:
    """``config["callbacks"]`` holds handler objects, which cannot cross to a worker process:
    refused before anything is sent, saying what to use instead."""
    callbacks = cfg.config.get("callbacks") if cfg.config else None
    if callbacks:
        raise ConfigError(
            "GraphConfig.config.callbacks: callback handlers are objects of the calling "
            "process and cannot cross to a worker process (process tier). The caller's "
            "LangSmith and OpenTelemetry trace is carried to the run automatically; for "
            "progress use on_event= or stream(); to run handlers use the thread tier"
        )


def _take_back(worker: WorkerHandle, runs: list[PendingRun]) -> list[Callable[[], None]]:
    """Ask ``worker`` to give back ``runs`` (unread): each comes back ``Cancelled`` and is
    dispatched again (see ``_complete``); one it has started meanwhile just runs there."""
    if not runs:
        return []
    for pending in runs:
        pending.stealing = True
    msg = wire.CancelQueued([p.rid for p in runs])
    return [lambda: send_control(worker, msg)]


@atexit.register
def _end_open_executors() -> None:
    for executor in list(_LIVE):
        executor._kill_all()
