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
backed-up worker (``_steal_locked``), so no worker idles while another has a backlog, whatever
the run lengths or core speeds. Each worker counts the frames it has read in shared memory, which
tells the host, without a message per run, which runs a worker has not started. A run whose
thread keeps its checkpoints in the worker (``"memory"``) stays with that worker.

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

import asyncio
import atexit
import concurrent.futures as cf
import contextlib
import itertools
import multiprocessing
import multiprocessing.util  # (registers its atexit join before ours, so ours runs first)
import os
import select
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from typing_extensions import Unpack

from subiso import codec
from subiso._capabilities import Capabilities
from subiso._futures import Deadlines, cancel_and_notify, join_all, settle
from subiso.errors import ConfigError, ExecutorClosed, RunTimeout, WorkerCrashed
from subiso.events import EventChannel
from subiso.executors.affinity import Affinity
from subiso.executors.base import TIMEOUT_GRACE_S, Executor, SharedOptions
from subiso.executors.process import wire
from subiso.executors.process.handle import (
    CAN_PARK,
    PendingRun,
    StartMethod,
    WorkerHandle,
    default_start_method,
    describe_exit,
    send_control,
    start_context,
)
from subiso.executors.process.handle import WorkerState as S
from subiso.executors.process.triage import triage
from subiso.report import RunResult
from subiso.runtime.call import Call
from subiso.validate import flag, names, positive_int, seconds

Send = tuple[WorkerHandle, bytes, PendingRun | None]
_LIVE: weakref.WeakSet[ProcessExecutor] = weakref.WeakSet()


class ProcessExecutor(Executor):
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

    # -- starting workers ----------------------------------------------------------------------
    def _prestart(self) -> None:
        with self._lock:
            workers = [self._spawn_locked() for _ in range(self.max_workers)]
            while any(w.state is S.STARTING and w in self._workers for w in workers):
                self._changed.wait()
        problems = [w.preload_error or w.start_error for w in workers]
        problem = next((p for p in problems if p), None)
        if problem is not None:
            self.close(wait=True, cancel_pending=True)
            raise ConfigError(f"{type(self).__name__}: {problem}")

    def _spawn_locked(self) -> WorkerHandle:
        worker = WorkerHandle(next(self._indexes))
        worker.thread = threading.Thread(
            target=self._worker_life,
            args=(worker,),
            name=f"subiso-process-{worker.index}",
            daemon=True,
        )
        self._workers.append(worker)
        self._threads.append(worker.thread)
        worker.thread.start()
        return worker

    def _active_count_locked(self) -> int:
        return sum(1 for w in self._workers if w.state in (S.STARTING, S.SERVING))

    def _worker_life(self, worker: WorkerHandle) -> None:
        """The worker's reader thread: start the process, read its replies, bury it."""
        try:
            hello = worker.start_process(
                self._ctx, self.start_method, self.preload, self.kill_grace, self.worker_init
            )
        except BaseException as exc:
            if worker.process is not None and worker.process.is_alive():
                worker.process.kill()  # half-started: never leave it behind
                worker.process.join()
            self._on_start_failed(worker, f"could not start a worker process: {exc}")
            return
        try:
            self._on_ready(worker, hello)
            self._read_replies(worker)
        except BaseException as exc:  # a bug here must not strand the worker's runs
            worker.kill_reason = f"was killed by subiso after a host-side error: {exc!r}"
            worker.process.kill()
            raise
        finally:
            self._on_exit(worker)

    def _on_start_failed(self, worker: WorkerHandle, reason: str) -> None:
        worker.start_error = reason
        worker.close_pipes()
        with self._lock:
            self._workers.remove(worker)
            orphans: list[PendingRun] = []
            if all(w.state is S.STARTING for w in self._workers):
                orphans, self._queue = list(self._queue), deque()
            self._changed.notify_all()
        for pending in orphans:
            settle(pending.future, exc=WorkerCrashed(f"run of {pending.graph!r}: {reason}"))

    def _on_ready(self, worker: WorkerHandle, hello: wire.Hello) -> None:
        worker.preload_error = hello.preload_error
        if self._exiting:  # started while the interpreter exits: multiprocessing would join it
            _kill(worker)
            return
        if CAN_PARK:
            worker.poller = select.poll()
            worker.poller.register(worker.conn.fileno(), select.POLLIN)  # type: ignore[union-attr]
            worker.park_poller = select.poll()
            worker.park_poller.register(worker.wake_r, select.POLLIN)
            worker.park_poller.register(worker.process.sentinel, select.POLLIN)
        with self._lock:
            worker.receiver = threading.get_ident()  # this reader thread, from now on
            worker.state = S.SERVING
            sends = self._drain_queue_locked()
            sends += self._maybe_stop_locked(worker)
            self._changed.notify_all()
        self._send_all(sends)

    # -- dispatch ------------------------------------------------------------------------------
    def start(self, call: Call, events: EventChannel | None = None) -> cf.Future[RunResult]:
        return self._start(call, direct=False, events=events).future

    def call(self, call: Call) -> RunResult:
        """Run to completion; the calling thread reads its own reply when it can.

        A caller blocked on a future would be woken by the worker's reader thread, which was
        itself woken by the reply: two hand-offs (and a GIL hand-over) per run. So when the
        chosen worker has no receiver, the caller becomes it until its reply arrives (reading
        and settling any other reply that comes first), and the reader thread stays parked.
        """
        pending = self._start(call, direct=CAN_PARK)
        self.watch_deadline(pending.future, call.cfg)
        if pending.direct:
            self._receive_own_reply(pending)
        return pending.future.result()

    def _start(self, call: Call, *, direct: bool, events: EventChannel | None = None) -> PendingRun:
        rid = next(self._rids)
        start = time.perf_counter()
        window = 0 if events is None else events.maxsize
        try:
            frame = codec.encode(wire.RunOut(rid, call, window), label="state", part=call.cfg.input)
        except Exception as exc:
            failed = PendingRun(rid, call, b"", 0.0)
            settle(failed.future, exc=exc)
            return failed
        pending = PendingRun(rid, call, frame, time.perf_counter() - start, events)
        pending.direct = direct  # a wish until _assign_locked grants it
        with self._lock:
            if self._closing:
                raise ExecutorClosed(f"cannot run on a closed {type(self).__name__}")
            sends = self._dispatch_locked(pending)
        pending.future.add_done_callback(lambda f: self._on_future_done(pending, f))
        self._send_all(sends)
        return pending

    def _receive_own_reply(self, pending: PendingRun) -> None:
        """Read replies on the calling thread until ``pending``'s arrives, then hand back."""
        worker = pending.worker
        assert worker is not None and worker.conn is not None
        conn = worker.conn
        eof = False
        try:
            while not pending.future.done():
                # wait until readable (an interrupt here consumes nothing), or until the run's
                # deadline has settled its future: then the reader thread takes over
                if not worker.poller.poll(_poll_ms(pending)):
                    continue
                try:
                    frame = conn.recv_bytes()
                except (EOFError, OSError):
                    eof = True
                    return
                except BaseException:
                    # Interrupted part-way through a frame: the stream is out of step.
                    worker.kill_reason = (
                        "was killed by subiso: a host thread reading its reply was interrupted "
                        "part-way through a message"
                    )
                    _kill(worker)
                    eof = True
                    raise
                self._on_frame(worker, frame, time.perf_counter())
        finally:
            with self._lock:
                if not pending.nested:
                    worker.receiver = None
                if eof:
                    worker.eof = worker.broken = True
                if pending.direct and pending.rid in worker.in_flight:
                    pending.direct = False  # interrupted: the reader thread takes it over
                    worker.direct -= 1
                worker.poke()

    def _dispatch_locked(self, pending: PendingRun) -> list[Send]:
        """Give the run to its thread's worker (see ``affinity``), else the least-busy serving
        worker, or queue it until one is ready (an exclusive run: until one is idle)."""
        best = None
        if not pending.exclusive:
            best = self._affinity.preferred(
                pending.thread_id, self._load_locked, pinned=pending.pinned()
            )
        if best is None:
            for w in self._workers:
                if not w.serving or w.exclusive or (pending.exclusive and w.in_flight):
                    continue
                if best is None or len(w.in_flight) < len(best.in_flight):
                    best = w
            if best is not None:
                self._affinity.remember(pending.thread_id, best)
        grow = not self._exiting and self._active_count_locked() < self.max_workers
        if (best is None or best.in_flight) and grow:
            self._spawn_locked()  # grow in the background; this run does not wait for it
        if best is None:
            pending.direct = False  # whoever starts the worker sends it; its reader reads
            self._queue.append(pending)
            return []
        return self._assign_locked(best, pending)

    def _load_locked(self, worker: WorkerHandle) -> int | None:
        if worker.serving and not worker.exclusive and worker in self._workers:
            return len(worker.in_flight)
        return None

    def _assign_locked(self, worker: WorkerHandle, pending: PendingRun) -> list[Send]:
        pending.worker = worker
        pending.assignment += 1
        pending.seq = 0
        pending.t_sent = time.perf_counter()
        worker.in_flight[pending.rid] = pending
        worker.dispatched += 1
        worker.exclusive = pending.exclusive
        if pending.timeout is not None:
            self._schedule_locked(pending.timeout, "timeout", (pending, pending.assignment))
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
        """``thief`` has nothing to do: take back half of the runs waiting unread in the pipe
        of the most backed-up worker; each comes back ``Cancelled`` and is dispatched again
        (to ``thief``, idle). A run the worker starts meanwhile just runs there."""
        if self._closing or self._queue or thief.in_flight or not thief.serving or thief.exclusive:
            return []
        victim: WorkerHandle | None = None
        loot: list[PendingRun] = []
        for w in self._workers:
            if w is thief or w.state is S.STOPPING or w.broken:
                continue
            runs = w.waiting()
            if len(runs) > len(loot):
                victim, loot = w, runs
        if victim is None:
            return []
        loot.sort(key=lambda p: p.seq)
        return _take_back(victim, loot[len(loot) // 2 :])  # the newest half: read last

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

    def _on_future_done(self, pending: PendingRun, future: cf.Future[RunResult]) -> None:
        """A caller cancelled the run: drop it from the queue or cancel it in its worker."""
        if not future.cancelled():
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

    # -- replies ---------------------------------------------------------------------------------
    def _read_replies(self, worker: WorkerHandle) -> None:
        """The reader thread's loop: read while needed, park while callers read themselves."""
        conn = worker.conn
        assert conn is not None
        me = threading.get_ident()
        while True:
            try:
                frame = conn.recv_bytes()
            except (EOFError, OSError):
                return
            self._on_frame(worker, frame, time.perf_counter())
            with self._lock:
                if not worker.wants_direct or worker.needs_reader():
                    continue
                worker.wants_direct = False
                worker.receiver = None
                if not self._park_locked(worker):
                    return
                worker.receiver = me

    def _park_locked(self, worker: WorkerHandle) -> bool:
        """Wait, lock released, until the reader is needed again (True) or a caller saw the
        worker's end close (False). Watches the process meanwhile: if it dies, the reader
        reads its end (unless a caller is reading, who will see it) and buries it."""
        worker.parked = True
        try:
            while not worker.eof:
                if worker.receiver is None and worker.needs_reader():
                    return True
                self._lock.release()
                try:
                    events = worker.park_poller.poll()
                finally:
                    self._lock.acquire()
                for fd, _ in events:
                    if fd == worker.wake_r:
                        os.read(worker.wake_r, 512)
                        worker.poked = False
                    else:  # the process ended: read its end, then bury it
                        worker.park_poller.unregister(fd)
                        worker.broken = True
            return False
        finally:
            worker.parked = False

    def _on_frame(self, worker: WorkerHandle, frame: bytes, t_recv: float) -> None:
        """Settle the run a reply frame answers, or pass on an event (on whichever thread is
        the receiver)."""
        msg = worker.decoder.decode(frame)
        if isinstance(msg, wire.Event):
            self._on_event(worker, msg)
            return
        with self._lock:
            pending = worker.in_flight.pop(msg.rid, None)
            if pending is not None and pending.direct:
                worker.direct -= 1
            if pending is not None and pending.exclusive:
                worker.exclusive = pending.exclusive = False
            sends = self._after_run_locked(worker, msg)
            steals = self._steal_locked(worker) if not sends else []
        self._send_all(sends)
        for steal in steals:
            steal()
        if pending is not None:
            self._complete(pending, msg, t_recv)

    def _on_event(self, worker: WorkerHandle, msg: wire.Event) -> None:
        """Hand one event to its run's channel; never blocks this reader (the worker sends no
        more than the credit the consumer gave back)."""
        pending = worker.in_flight.get(msg.rid)
        if pending is None or pending.events is None:
            return
        events = pending.events
        if events.on_taken is None:
            events.on_taken = _CreditReturn(worker, msg.rid, events.maxsize)
        try:
            event = codec.decode(msg.payload, label=f"an event of {pending.graph!r}")
        except Exception as exc:  # an event that cannot be rebuilt fails the run
            settle(pending.future, exc=exc)
            send_control(worker, wire.Cancel(msg.rid))
            return
        events.put_nowait(event)

    def _after_run_locked(self, worker: WorkerHandle, msg: Any) -> list[Send]:
        if isinstance(msg, wire.Failed) and msg.tainted and worker.state is S.SERVING:
            self._retire_locked(worker)
        sends = self._maybe_stop_locked(worker)
        if self._queue and not worker.in_flight and worker.serving:
            sends += self._drain_queue_locked()  # runs waiting for an idle worker
        return sends

    def _complete(self, pending: PendingRun, msg: Any, t_recv: float) -> None:
        if isinstance(msg, wire.Done):
            start = time.perf_counter()
            try:
                output = codec.decode(msg.output, label=f"the output of {pending.graph!r}")
            except Exception as exc:
                settle(pending.future, exc=exc)
                return
            host_decode = time.perf_counter() - start
            report = msgspec.structs.replace(
                msg.report,
                selected_by=self.selected_by,
                encode_s=pending.encode_s + msg.encode_s,
                decode_s=msg.decode_s + host_decode,
                transfer_s=max(0.0, t_recv - pending.t_sent - msg.span_s),
            )
            settle(pending.future, RunResult(output, report))
        elif isinstance(msg, wire.Failed):
            error = codec.exception_from_wire(msg.error)
            if pending.timed_out and isinstance(error, (asyncio.CancelledError, RunTimeout)):
                error = self._timeout_error(pending, killed=False)
            elif isinstance(error, asyncio.CancelledError):
                cancel_and_notify(pending.future)
                return
            settle(pending.future, exc=error)
        elif pending.timed_out:  # Cancelled: it never started within its timeout
            settle(pending.future, exc=self._timeout_error(pending, killed=False))
        elif pending.stealing and not pending.future.done():  # taken back: dispatch it again
            self._send_again(pending)
        else:
            cancel_and_notify(pending.future)

    def _send_again(self, pending: PendingRun, call: Call | None = None) -> None:
        """Dispatch a run that left its worker unfinished (taken back, or its worker died)."""
        if self._exiting:
            settle(pending.future, exc=ExecutorClosed("the interpreter is exiting"))
            return
        if call is not None:
            pending.call = call
        pending.stealing = pending.direct = False
        try:
            pending.frame = codec.encode(wire.RunOut(pending.rid, pending.call, pending.window))
        except Exception as exc:  # it encoded once; never leave its future unresolved
            settle(pending.future, exc=exc)
            return
        with self._lock:
            if pending.future.done():
                return
            sends = self._dispatch_locked(pending)
        self._send_all(sends)

    def _timeout_error(self, pending: PendingRun, *, killed: bool) -> RunTimeout:
        pid = pending.worker.pid if pending.worker else None
        what = (
            f"ignored cancellation for kill_grace={self.kill_grace:g}s, so its worker "
            f"process {pid} was killed and replaced"
            if killed
            else f"was cancelled on its worker process {pid}"
        )
        return RunTimeout(
            f"run of {pending.graph!r} exceeded its timeout of {pending.timeout:g}s and {what}"
        )

    # -- retiring, stopping, dying ---------------------------------------------------------------
    def _retire_locked(self, worker: WorkerHandle) -> None:
        """No new runs for this worker; start its replacement now; stop it once drained."""
        worker.state = S.RETIRING
        if not self._closing and self._active_count_locked() < self.max_workers:
            self._spawn_locked()

    def _maybe_stop_locked(self, worker: WorkerHandle) -> list[Send]:
        if worker.state in (S.STARTING, S.STOPPING) or worker.in_flight:
            return []
        if not (worker.state is S.RETIRING or (self._closing and not self._queue)):
            return []
        worker.state = S.STOPPING
        worker.poke()  # the reader must read the worker's exit
        self._schedule_locked(self.kill_grace, "stop", worker)
        return [(worker, codec.encode(wire.Stop()), None)]

    def _on_exit(self, worker: WorkerHandle) -> None:
        worker.process.join()
        exitcode = worker.process.exitcode
        worker.process.close()  # its pipe fds now, not when the handle is garbage-collected
        read = worker.frames_taken()
        worker.close_pipes()
        with self._lock:
            self._workers.remove(worker)
            held = list(worker.in_flight.values())
            worker.in_flight.clear()
            if not self._closing and worker.state in (S.STARTING, S.SERVING):
                if self._active_count_locked() < self.max_workers:
                    self._spawn_locked()
            elif (
                self._queue
                and not self._exiting
                and not any(w.state in (S.STARTING, S.SERVING) for w in self._workers)
            ):
                self._spawn_locked()  # queued runs still need a worker
            self._changed.notify_all()
        if not held:
            return
        cause = worker.kill_reason or describe_exit(exitcode)
        died = f"worker process {worker.pid} {cause}"
        for pending, verdict in triage(held, read, worker.killed_for, self.retry_collateral):
            if isinstance(verdict, Call):
                self._send_again(pending, verdict)
            elif verdict == "timeout":
                settle(pending.future, exc=self._timeout_error(pending, killed=True))
            else:
                settle(pending.future, exc=verdict.crashed(died))

    # -- timers ----------------------------------------------------------------------------------
    def _schedule_locked(self, delay: float, kind: str, subject: Any) -> None:
        self._deadlines.call_later(delay, lambda: self._fire(kind, subject))

    def _fire(self, kind: str, subject: Any) -> None:
        """On the deadline thread: decide under the lock, act (signal, kill) outside it."""
        with self._lock:
            actions = self._fire_locked(kind, subject)
        for action in actions:
            action()

    def _fire_locked(self, kind: str, subject: Any) -> list[Callable[[], None]]:
        if kind in ("timeout", "kill"):
            pending, assignment = subject
            worker = pending.worker
            if (
                worker is None
                or pending.assignment != assignment  # a timer of an earlier dispatch
                or pending.rid not in worker.in_flight
            ):
                return []
        if kind == "timeout":
            if pending.timed_out:
                return []
            pending.timed_out = True
            self._schedule_locked(self.kill_grace, "kill", subject)
            cancel = wire.Cancel(pending.rid)
            return [lambda: send_control(worker, cancel)]
        if kind == "kill":
            worker.killed_for = pending
            worker.kill_reason = (
                f"was killed by subiso: run {pending.graph!r} ignored cancellation for "
                f"kill_grace={self.kill_grace:g}s after its timeout of {pending.timeout:g}s"
            )
            return [lambda: _kill(worker)]
        worker = subject  # "stop"
        if worker not in self._workers:
            return []
        worker.kill_reason = (
            f"was killed by subiso: it did not exit within kill_grace={self.kill_grace:g}s "
            "of being asked to stop"
        )
        return [lambda: _kill(worker)]

    # -- closing ---------------------------------------------------------------------------------
    def shutdown(self, wait: bool, cancel_pending: bool) -> None:
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

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every worker process has exited (after ``close(wait=False)``).

        Returns False if ``timeout`` passed first. ``close(wait=True)`` does this itself.
        """
        if not self.closed:
            raise RuntimeError(f"join() before close() would wait forever on {self!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._workers:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._changed.wait(left)
        self._join()
        return True

    def _join(self) -> None:
        with self._lock:
            while self._workers:
                self._changed.wait()
        self._deadlines.stop()
        join_all(self._threads)

    def _kill_all(self) -> None:
        """Interpreter exit with the executor still open: end the workers now (a worker still
        starting is killed as soon as it is up, see ``_on_ready``)."""
        with self._lock:
            self._closing = self._exiting = True
            queued, self._queue = list(self._queue), deque()
            processes = [w.process for w in self._workers if w.process is not None]
        for pending in queued:
            settle(pending.future, exc=ExecutorClosed("the interpreter is exiting"))
        for process in processes:
            with contextlib.suppress(ValueError):  # closed meanwhile: it has exited
                if process.is_alive():
                    process.kill()
        for process in processes:
            with contextlib.suppress(ValueError):
                process.join(5)

    # -- diagnostics -----------------------------------------------------------------------------
    def worker_pids(self) -> list[int]:
        """Pids of the live worker processes (for diagnostics and tests)."""
        with self._lock:
            return [w.pid for w in self._workers if w.pid is not None]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "workers": len(self._workers),
                "ready": sum(1 for w in self._workers if w.state is not S.STARTING),
                "in_flight": [len(w.in_flight) for w in self._workers],
                "queued": len(self._queue),
            }


# -- helpers -----------------------------------------------------------------------------------
def _take_back(worker: WorkerHandle, runs: list[PendingRun]) -> list[Callable[[], None]]:
    """Ask ``worker`` to give back ``runs`` (unread): each comes back ``Cancelled`` and is
    dispatched again (see ``_complete``); one it has started meanwhile just runs there."""
    if not runs:
        return []
    for pending in runs:
        pending.stealing = True
    msg = wire.CancelQueued([p.rid for p in runs])
    return [lambda: send_control(worker, msg)]


def _kill(worker: WorkerHandle) -> None:
    """SIGKILL the worker's process, unless it has exited and been closed meanwhile."""
    with contextlib.suppress(ValueError):
        worker.process.kill()


def _poll_ms(pending: PendingRun) -> int | None:
    """How long a caller reading its own reply may wait before looking at its future again:
    forever without a timeout, else until just past the caller-side deadline."""
    if pending.timeout is None:
        return None
    left = pending.t_sent + pending.timeout + TIMEOUT_GRACE_S - time.perf_counter()
    return max(1, int(left * 1000) + 1)


class _CreditReturn:
    """Gives a worker back the credit for events its caller took, half a window at a time."""

    def __init__(self, worker: WorkerHandle, rid: int, window: int) -> None:
        self._worker = worker
        self._rid = rid
        self._batch = max(1, window // 2)
        self._taken = 0
        self._lock = threading.Lock()

    def __call__(self, n: int) -> None:
        with self._lock:
            self._taken += n
            if self._taken < self._batch:
                return
            n, self._taken = self._taken, 0
        send_control(self._worker, wire.Credit(self._rid, n))


@atexit.register
def _end_open_executors() -> None:
    for executor in list(_LIVE):
        executor._kill_all()
