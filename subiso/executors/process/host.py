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
(see ``_Worker``). One lazily started supervisor thread owns the timers (timeouts, kill grace).

Dispatch: the least-busy ready worker gets the run at once (async runs interleave on its loop,
as in the thread tier); the pool grows in the background while every worker is busy; a run
waits in the host queue only while no worker is ready yet.

Failure handling:

* a worker that dies fails only the runs it held, with ``WorkerCrashed`` naming the exit code or
  signal; it is replaced and every submitted future resolves;
* a run past its ``timeout`` (counted from dispatch) is cancelled on its worker loop; if no
  reply comes within ``kill_grace`` the worker is killed and replaced and the caller gets
  ``RunTimeout``. A run cancelled in time but whose sync node still spins in a thread taints its
  worker, which is retired (drained, stopped, killed after ``kill_grace`` if it hangs);
* ``max_tasks_per_worker`` retires a worker after that many runs, the same way.

Start-up: workers start with ``forkserver`` (Linux) or ``spawn``, never ``fork`` (the host runs
threads). subiso adds its worker module and langgraph to the forkserver's preload, so a worker
forked from it does not import langgraph again: a cold executor's first result takes 46-80 ms
with forkserver against 1.9-2.8 s with spawn (``bench_process.py``, time to first result, both
rows in one run, 3.13/3.14). Each worker gets the
host's ``sys.path`` and working directory at its start (a forkserver started earlier would
otherwise hand out stale ones). As with any forkserver/spawn pool, a script that creates an
executor at import time must guard it with ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures as cf
import contextlib
import heapq
import itertools
import multiprocessing
import multiprocessing.util  # registers its atexit join before ours, so ours runs first
import os
import select
import signal
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from subiso import codec
from subiso.config import GraphConfig
from subiso.errors import ConfigError, ExecutorClosed, RunTimeout, WorkerCrashed
from subiso.executors.base import ConfigLike, Executor, positive_int
from subiso.executors.process import wire
from subiso.executors.process.worker import worker_main
from subiso.report import RunResult

#: Modules the forkserver imports once, so every worker forked from it starts warm.
FORKSERVER_PRELOAD = (
    "subiso.executors.process.worker",
    "langgraph.graph",
    "langgraph.checkpoint.memory",
)

#: Callers read their own replies where ``select.poll`` exists (not on Windows: there the
#: reader thread reads every reply).
_CAN_PARK = hasattr(select, "poll")
_START_LOCK = threading.Lock()  # Process.start() from several reader threads: one at a time
_LIVE: weakref.WeakSet[ProcessExecutor] = weakref.WeakSet()


def default_start_method() -> str:
    """forkserver where it exists (Linux, macOS), else spawn; never fork once threads exist."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _configure_forkserver(ctx: Any) -> None:
    """Add subiso's worker code and langgraph to the forkserver's preload, keeping the user's.

    Only effective before the forkserver starts; afterwards workers import them on their own.
    """
    from multiprocessing import forkserver

    current = list(getattr(forkserver._forkserver, "_preload_modules", ["__main__"]))
    wanted = current + [m for m in FORKSERVER_PRELOAD if m not in current]
    if wanted != current:
        ctx.set_forkserver_preload(wanted)


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "ended with an unknown status"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"was killed by {name} (exit code {exitcode})"
    return f"exited with code {exitcode}"


# -- host-side records -----------------------------------------------------------------------
class _Pending:
    """One submitted run, from submit until its future resolves."""

    __slots__ = (
        "direct",
        "encode_s",
        "frame",
        "future",
        "graph",
        "nested",
        "rid",
        "t_sent",
        "timed_out",
        "timeout",
        "worker",
    )

    def __init__(self, rid: int, cfg: GraphConfig, frame: bytes, encode_s: float) -> None:
        self.rid = rid
        self.future: cf.Future[RunResult] = cf.Future()
        self.frame = frame
        self.graph = cfg.graph
        self.timeout = cfg.timeout
        self.encode_s = encode_s
        self.t_sent = 0.0
        self.timed_out = False
        self.direct = False  # its caller reads the reply itself (see ``execute``)
        self.nested = False  # ... and was already reading this worker (from a callback)
        self.worker: _Worker | None = None


class _Worker:
    """Host-side handle of one worker process.

    Exactly one thread at a time reads ``conn`` (the *receiver*): the worker's reader thread,
    or a caller of ``execute`` reading its own reply. The reader thread reads while anything
    needs it (see ``needs_reader``) and parks when a sync caller asked for the role and the
    worker has nothing else in flight. Parked, it still watches the process (its sentinel),
    so a worker that dies idle is buried and replaced at once; ``poke`` wakes it.
    """

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: Any = None
        self.conn: Connection | None = None  # runs out, replies in
        self.control: Connection | None = None  # cancellations out
        self.pid: int | None = None
        self.send_lock = threading.Lock()
        self.ready = False
        self.retiring = False  # takes no new runs; stops once drained; already replaced
        self.stopping = False  # Stop sent
        self.broken = False  # a send failed or it exited: its reader thread will bury it
        self.kill_reason: str | None = None
        self.preload_error: str | None = None
        self.start_error: str | None = None
        self.in_flight: dict[int, _Pending] = {}
        self.dispatched = 0
        self.thread: threading.Thread | None = None
        self.receiver: int | None = None  # ident of the thread reading conn, if any
        self.direct = 0  # runs in flight whose callers read their own replies
        self.wants_direct = False  # a sync caller found the reader thread reading
        # A caller reading its reply saw the worker's end close, or was interrupted part-way
        # through a frame: nobody reads conn again; the reader thread buries the worker.
        self.eof = False
        self.parked = False
        self.poked = False
        self.wake_r, self.wake_w = os.pipe()  # pokes for the parked reader
        os.set_blocking(self.wake_w, False)
        self.poller: Any = None  # a caller's wait for conn to be readable
        self.park_poller: Any = None  # the parked reader's wait for a poke or the exit
        self.decoder = codec.decoder(wire.ToHost)

    @property
    def serving(self) -> bool:
        return self.ready and not (self.retiring or self.stopping or self.broken)

    def needs_reader(self) -> bool:
        """Replies (or the worker's exit) are due that no caller is waiting to read itself."""
        return self.stopping or self.broken or len(self.in_flight) > self.direct

    def close_pipes(self) -> None:
        for conn in (self.conn, self.control):
            if conn is not None:
                conn.close()
        os.close(self.wake_r)
        os.close(self.wake_w)

    def poke(self) -> None:
        """Wake the parked reader thread if something now needs it (call under the lock)."""
        if self.parked and not self.poked and self.receiver is None and self.needs_reader():
            self.poked = True
            os.write(self.wake_w, b"!")


Send = tuple[_Worker, bytes, "_Pending | None"]


class ProcessExecutor(Executor):
    """Run each GraphConfig in one of ``max_workers`` warm worker processes.

    Options: ``max_workers`` (default: CPU count), ``timeout`` and ``checkpointer`` (defaults
    for configs that name none), ``start_method`` (``"forkserver"`` on Linux, else
    ``"spawn"``; ``"fork"`` is refused), ``prestart`` (start every worker in the constructor and
    wait until they are ready), ``preload`` (modules ``"pkg.mod"`` to import, or targets
    ``"pkg.mod:attr"`` to resolve, in each worker before it takes runs),
    ``max_tasks_per_worker`` (recycle a worker after that many runs) and ``kill_grace``
    (seconds a worker gets to react to a cancellation or a stop before it is killed).
    """

    tier = "process"

    def __init__(
        self,
        *,
        max_workers: int | None = None,
        timeout: float | None = None,
        checkpointer: str | None = None,
        start_method: str | None = None,
        prestart: bool = False,
        preload: Iterable[str] = (),
        max_tasks_per_worker: int | None = None,
        kill_grace: float = 3.0,
        worker_init: str | None = None,
    ) -> None:
        super().__init__(timeout=timeout, checkpointer=checkpointer)
        name = type(self).__name__
        self.max_workers = positive_int(max_workers, f"{name}: max_workers", os.cpu_count() or 1)
        if max_tasks_per_worker is not None:
            positive_int(max_tasks_per_worker, f"{name}: max_tasks_per_worker")
        if not (isinstance(kill_grace, (int, float)) and kill_grace > 0):
            raise ConfigError(f"{name}: kill_grace must be > 0 seconds, got {kill_grace!r}")
        if isinstance(preload, str):
            preload = [preload]
        self.preload = [str(p) for p in preload]
        self.worker_init = worker_init  # "pkg.mod:factory", entered in each worker process
        self.max_tasks_per_worker = max_tasks_per_worker
        self.kill_grace = float(kill_grace)
        self.start_method = start_method or default_start_method()
        self._ctx = _context(self.start_method, name)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # worker ready / exited
        self._workers: list[_Worker] = []
        self._queue: deque[_Pending] = deque()
        self._rids = itertools.count()
        self._indexes = itertools.count()
        self._closing = False
        self._timers: list[tuple[float, int, str, Any]] = []
        self._timer_seq = itertools.count()
        self._timer_cv = threading.Condition(self._lock)
        self._supervisor: threading.Thread | None = None
        self._threads: list[threading.Thread] = []
        _LIVE.add(self)
        if prestart:
            self._prestart()

    # -- starting workers ----------------------------------------------------------------------
    def _prestart(self) -> None:
        with self._lock:
            workers = [self._spawn_locked() for _ in range(self.max_workers)]
            while any(not w.ready and w in self._workers for w in workers):
                self._changed.wait()
        problems = [w.preload_error or w.start_error for w in workers]
        problem = next((p for p in problems if p), None)
        if problem is not None:
            self.close(wait=True, cancel_pending=True)
            raise ConfigError(f"{type(self).__name__}: {problem}")

    def _spawn_locked(self) -> _Worker:
        worker = _Worker(next(self._indexes))
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
        return sum(1 for w in self._workers if not w.retiring and not w.stopping)

    def _worker_life(self, worker: _Worker) -> None:
        """The worker's reader thread: start the process, read its replies, bury it."""
        try:
            hello = self._start_process(worker)
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

    def _start_process(self, worker: _Worker) -> wire.Hello:
        if self.start_method == "forkserver":
            _configure_forkserver(self._ctx)
        parent, child = self._ctx.Pipe(duplex=True)
        control_r, control_w = self._ctx.Pipe(duplex=False)
        worker.conn, worker.control = parent, control_w
        process = self._ctx.Process(
            target=worker_main,
            args=(child, control_r, list(sys.path), os.getcwd(), self.preload, self.kill_grace)
            + ((self.worker_init,) if self.worker_init else ()),
            name=f"subiso-process-worker-{worker.index}",
            daemon=False,  # not inherited from a daemonic host (see _children_allowed)
        )
        try:
            with _START_LOCK, _children_allowed(process):
                process.start()
        finally:
            child.close()  # the worker's ends: only the worker keeps them open
            control_r.close()
        worker.process, worker.pid = process, process.pid
        try:
            frame = parent.recv_bytes()
        except (EOFError, OSError):
            process.join()
            raise RuntimeError(
                f"worker process {process.pid} {describe_exit(process.exitcode)} while starting"
            ) from None
        return codec.decode(frame, wire.Hello)  # type: ignore[no-any-return]

    def _on_start_failed(self, worker: _Worker, reason: str) -> None:
        worker.start_error = reason
        worker.close_pipes()
        with self._lock:
            self._workers.remove(worker)
            orphans: list[_Pending] = []
            if not any(w.ready for w in self._workers):
                orphans, self._queue = list(self._queue), deque()
            self._changed.notify_all()
        for pending in orphans:
            _resolve(pending.future, exc=WorkerCrashed(f"run of {pending.graph!r}: {reason}"))

    def _on_ready(self, worker: _Worker, hello: wire.Hello) -> None:
        worker.preload_error = hello.preload_error
        if _CAN_PARK:
            worker.poller = select.poll()
            worker.poller.register(worker.conn.fileno(), select.POLLIN)  # type: ignore[union-attr]
            worker.park_poller = select.poll()
            worker.park_poller.register(worker.wake_r, select.POLLIN)
            worker.park_poller.register(worker.process.sentinel, select.POLLIN)
        with self._lock:
            worker.receiver = threading.get_ident()  # this reader thread, from now on
            worker.ready = True
            sends = self._drain_queue_locked()
            sends += self._maybe_stop_locked(worker)
            self._changed.notify_all()
        self._send_all(sends)

    # -- dispatch ------------------------------------------------------------------------------
    def _submit(self, cfg: GraphConfig) -> cf.Future[RunResult]:
        return self._start(cfg, direct=False).future

    def execute(self, cfg: ConfigLike) -> RunResult:
        """Run to completion; the calling thread reads its own reply when it can.

        A caller blocked on a future would be woken by the worker's reader thread, which was
        itself woken by the reply: two hand-offs (and a GIL hand-over) per run. So when the
        chosen worker has no receiver, the caller becomes it until its reply arrives (reading
        and settling any other reply that comes first), and the reader thread stays parked.
        """
        pending = self._start(self.prepare(cfg), direct=_CAN_PARK)
        if pending.direct:
            self._receive_own_reply(pending)
        return pending.future.result()

    def _start(self, cfg: GraphConfig, *, direct: bool) -> _Pending:
        rid = next(self._rids)
        start = time.perf_counter()
        try:
            frame = codec.encode(wire.RunOut(rid, cfg), label="state", part=cfg.input)
        except Exception as exc:
            failed = _Pending(rid, cfg, b"", 0.0)
            _resolve(failed.future, exc=exc)
            return failed
        pending = _Pending(rid, cfg, frame, time.perf_counter() - start)
        pending.direct = direct  # a wish until _assign_locked grants it
        with self._lock:
            if self._closing:
                raise ExecutorClosed(f"cannot run on a closed {type(self).__name__}")
            sends = self._dispatch_locked(pending)
        pending.future.add_done_callback(lambda f: self._on_future_done(pending, f))
        self._send_all(sends)
        return pending

    def _receive_own_reply(self, pending: _Pending) -> None:
        """Read replies on the calling thread until ``pending``'s arrives, then hand back."""
        worker = pending.worker
        assert worker is not None and worker.conn is not None
        conn = worker.conn
        eof = False
        try:
            while not pending.future.done():
                worker.poller.poll()  # wait until readable: an interrupt here consumes nothing
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
                    worker.process.kill()
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

    def _dispatch_locked(self, pending: _Pending) -> list[Send]:
        """Give the run to the least-busy serving worker, or queue it until one is ready."""
        best: _Worker | None = None
        for w in self._workers:
            if w.serving and (best is None or len(w.in_flight) < len(best.in_flight)):
                best = w
        if (best is None or best.in_flight) and self._active_count_locked() < self.max_workers:
            self._spawn_locked()  # grow in the background; this run does not wait for it
        if best is None:
            pending.direct = False  # whoever starts the worker sends it; its reader reads
            self._queue.append(pending)
            return []
        return self._assign_locked(best, pending)

    def _assign_locked(self, worker: _Worker, pending: _Pending) -> list[Send]:
        pending.worker = worker
        pending.t_sent = time.perf_counter()
        worker.in_flight[pending.rid] = pending
        worker.dispatched += 1
        if pending.timeout is not None:
            self._schedule_locked(pending.timeout, "timeout", pending)
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
        sends: list[Send] = []
        while self._queue:
            pending = self._queue.popleft()
            if pending.future.cancelled():
                continue
            sends += self._dispatch_locked(pending)
            if self._queue and self._queue[-1] is pending:  # no serving worker left
                break
        return sends

    def _send_all(self, sends: list[Send]) -> None:
        for worker, frame, pending in sends:
            try:
                with worker.send_lock:
                    worker.conn.send_bytes(frame)  # type: ignore[union-attr]
            except (OSError, ValueError):
                if pending is not None:
                    self._redispatch(worker, pending)
            else:
                if pending is not None:
                    pending.frame = b""  # a large state is not kept alive until the reply

    def _redispatch(self, worker: _Worker, pending: _Pending) -> None:
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

    def _on_future_done(self, pending: _Pending, future: cf.Future[RunResult]) -> None:
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
        _send_control(worker, wire.Cancel(pending.rid))

    def _cancel_running(self, future: cf.Future[RunResult]) -> None:
        """Nothing to do: these futures stay cancellable until resolved, and cancelling one
        cancels its run on the worker loop (see ``_on_future_done``)."""

    # -- replies ---------------------------------------------------------------------------------
    def _read_replies(self, worker: _Worker) -> None:
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

    def _park_locked(self, worker: _Worker) -> bool:
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

    def _on_frame(self, worker: _Worker, frame: bytes, t_recv: float) -> None:
        """Settle the run a reply frame answers (on whichever thread is the receiver)."""
        msg = worker.decoder.decode(frame)
        with self._lock:
            pending = worker.in_flight.pop(msg.rid, None)
            if pending is not None and pending.direct:
                worker.direct -= 1
            sends = self._after_run_locked(worker, msg)
        self._send_all(sends)
        if pending is not None:
            self._complete(pending, msg, t_recv)

    def _after_run_locked(self, worker: _Worker, msg: Any) -> list[Send]:
        if isinstance(msg, wire.Failed) and msg.tainted and not worker.retiring:
            self._retire_locked(worker)
        return self._maybe_stop_locked(worker)

    def _complete(self, pending: _Pending, msg: Any, t_recv: float) -> None:
        if isinstance(msg, wire.Done):
            start = time.perf_counter()
            try:
                output = codec.decode(msg.output, label=f"the output of {pending.graph!r}")
            except Exception as exc:
                _resolve(pending.future, exc=exc)
                return
            host_decode = time.perf_counter() - start
            report = msgspec.structs.replace(
                msg.report,
                selected_by=self.selected_by,
                encode_s=pending.encode_s + msg.encode_s,
                decode_s=msg.decode_s + host_decode,
                transfer_s=max(0.0, t_recv - pending.t_sent - msg.span_s),
            )
            _resolve(pending.future, RunResult(output, report))
        elif isinstance(msg, wire.Failed):
            exc = codec.exception_from_wire(msg.error)
            if pending.timed_out and isinstance(exc, (asyncio.CancelledError, RunTimeout)):
                exc = self._timeout_error(pending, killed=False)
            elif isinstance(exc, asyncio.CancelledError):
                _cancel(pending.future)
                return
            _resolve(pending.future, exc=exc)
        elif pending.timed_out:  # Cancelled: it never started within its timeout
            _resolve(pending.future, exc=self._timeout_error(pending, killed=False))
        else:
            _cancel(pending.future)

    def _timeout_error(self, pending: _Pending, *, killed: bool) -> RunTimeout:
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
    def _retire_locked(self, worker: _Worker) -> None:
        """No new runs for this worker; start its replacement now; stop it once drained."""
        worker.retiring = True
        if not self._closing and self._active_count_locked() < self.max_workers:
            self._spawn_locked()

    def _maybe_stop_locked(self, worker: _Worker) -> list[Send]:
        if worker.stopping or not worker.ready or worker.in_flight:
            return []
        if not (worker.retiring or (self._closing and not self._queue)):
            return []
        worker.stopping = True
        worker.poke()  # the reader must read the worker's exit
        self._schedule_locked(self.kill_grace, "stop", worker)
        return [(worker, codec.encode(wire.Stop()), None)]

    def _on_exit(self, worker: _Worker) -> None:
        worker.process.join()
        exitcode = worker.process.exitcode
        worker.close_pipes()
        with self._lock:
            self._workers.remove(worker)
            held = list(worker.in_flight.values())
            worker.in_flight.clear()
            if not self._closing and not worker.retiring and not worker.stopping:
                if self._active_count_locked() < self.max_workers:
                    self._spawn_locked()
            elif self._queue and not any(not w.retiring for w in self._workers):
                self._spawn_locked()  # queued runs still need a worker
            self._changed.notify_all()
            self._timer_cv.notify_all()
        if held:
            cause = worker.kill_reason or describe_exit(exitcode)
            for pending in held:
                if pending.timed_out and worker.kill_reason is not None:
                    _resolve(pending.future, exc=self._timeout_error(pending, killed=True))
                else:
                    _resolve(
                        pending.future,
                        exc=WorkerCrashed(
                            f"worker process {worker.pid} {cause} while running "
                            f"{pending.graph!r}; the pool replaced it"
                        ),
                    )

    # -- timers ----------------------------------------------------------------------------------
    def _schedule_locked(self, delay: float, kind: str, subject: Any) -> None:
        entry = (time.monotonic() + delay, next(self._timer_seq), kind, subject)
        heapq.heappush(self._timers, entry)
        if self._supervisor is None:
            self._supervisor = threading.Thread(
                target=self._supervise, name="subiso-process-supervisor", daemon=True
            )
            self._supervisor.start()
        elif self._timers[0] is entry:
            self._timer_cv.notify()

    def _supervise(self) -> None:
        with self._lock:
            while True:
                if self._closing and not self._workers:
                    self._timers.clear()
                    return
                now = time.monotonic()
                actions: list[Callable[[], None]] = []
                while self._timers and self._timers[0][0] <= now:
                    _, _, kind, subject = heapq.heappop(self._timers)
                    actions += self._fire_locked(kind, subject)
                if actions:
                    self._lock.release()
                    try:
                        for action in actions:
                            action()
                    finally:
                        self._lock.acquire()
                    continue
                wait = self._timers[0][0] - now if self._timers else None
                self._timer_cv.wait(wait)

    def _fire_locked(self, kind: str, subject: Any) -> list[Callable[[], None]]:
        if kind == "timeout":
            pending: _Pending = subject
            worker = pending.worker
            if worker is None or pending.rid not in worker.in_flight or pending.timed_out:
                return []
            pending.timed_out = True
            self._schedule_locked(self.kill_grace, "kill", pending)
            cancel = wire.Cancel(pending.rid)
            return [lambda: _send_control(worker, cancel)]
        if kind == "kill":
            pending = subject
            worker = pending.worker
            if worker is None or pending.rid not in worker.in_flight:
                return []
            worker.kill_reason = (
                f"was killed by subiso: run {pending.graph!r} ignored cancellation for "
                f"kill_grace={self.kill_grace:g}s after its timeout of {pending.timeout:g}s"
            )
            return [worker.process.kill]
        worker = subject  # "stop"
        if worker not in self._workers:
            return []
        worker.kill_reason = (
            f"was killed by subiso: it did not exit within kill_grace={self.kill_grace:g}s "
            "of being asked to stop"
        )
        return [worker.process.kill]

    # -- closing ---------------------------------------------------------------------------------
    def _shutdown(self, wait: bool, cancel_pending: bool) -> None:
        with self._lock:
            self._closing = True
            cancelled: list[_Pending] = []
            sends: list[Send] = []
            controls: list[tuple[_Worker, wire.CancelQueued]] = []
            if cancel_pending:
                cancelled, self._queue = list(self._queue), deque()
                controls = [
                    (w, wire.CancelQueued(list(w.in_flight)))
                    for w in self._workers
                    if w.ready and w.in_flight
                ]
            for worker in list(self._workers):
                sends += self._maybe_stop_locked(worker)
            self._timer_cv.notify_all()
        for pending in cancelled:
            _cancel(pending.future)
        for worker, msg in controls:
            _send_control(worker, msg)
        self._send_all(sends)
        if wait:
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
            self._timer_cv.notify_all()
            supervisor = self._supervisor
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()
        if supervisor is not None and supervisor is not threading.current_thread():
            supervisor.join()

    def _kill_all(self) -> None:
        """Interpreter exit with the executor still open: end the workers now."""
        with self._lock:
            self._closing = True
            processes = [w.process for w in self._workers if w.process is not None]
        for process in processes:
            if process.is_alive():
                process.kill()
        for process in processes:
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
                "ready": sum(1 for w in self._workers if w.ready),
                "in_flight": [len(w.in_flight) for w in self._workers],
                "queued": len(self._queue),
            }


# -- helpers -----------------------------------------------------------------------------------
@contextlib.contextmanager
def _children_allowed(process: Any) -> Iterator[None]:
    """Let a daemonic host (a Celery prefork child, a ``multiprocessing.Pool`` worker) start
    ``process``: ``Process.start`` refuses while the *current* process's ``daemon`` flag is set
    (billiard installs its process object as multiprocessing's current one), so the flag is
    cleared for the start only, under ``_START_LOCK``. The restriction exists so a daemonic
    process's children do not outlive it; ours cannot: a worker exits when its host's pipe
    closes, which the kernel does when the host dies, however it dies.

    Under billiard the inherited authkey is billiard's ``AuthenticationString``, which refuses
    to be pickled by multiprocessing's spawn/forkserver machinery: give the worker the same
    key as multiprocessing's type."""
    from multiprocessing import process as mp_process

    key = process._config.get("authkey")
    if key is not None and type(key) is not mp_process.AuthenticationString:
        process._config["authkey"] = mp_process.AuthenticationString(bytes(key))
    config = multiprocessing.current_process()._config
    saved = {k: config[k] for k in ("daemon", "authkey") if k in config}
    if config.get("daemon"):
        config["daemon"] = False
    host_key = config.get("authkey")  # pickled into spawn/forkserver preparation data
    if host_key is not None and type(host_key) is not mp_process.AuthenticationString:
        config["authkey"] = mp_process.AuthenticationString(bytes(host_key))
    try:
        yield
    finally:
        config.update(saved)


def _context(method: str, owner: str) -> Any:
    if method == "fork":
        raise ConfigError(
            f"{owner}: start_method 'fork' is refused: forking a process that runs threads and "
            "event loops can deadlock the child; use 'forkserver' or 'spawn'"
        )
    try:
        return multiprocessing.get_context(method)
    except ValueError:
        choices = ", ".join(m for m in multiprocessing.get_all_start_methods() if m != "fork")
        raise ConfigError(
            f"{owner}: unknown start_method {method!r}; choose one of: {choices}"
        ) from None


def _send_control(worker: _Worker, msg: wire.Cancel | wire.CancelQueued) -> None:
    """Send a cancellation on the worker's control pipe (read even while a run hogs it)."""
    try:
        with worker.send_lock:
            worker.control.send_bytes(codec.encode(msg))  # type: ignore[union-attr]
    except (OSError, ValueError):
        pass  # the worker is gone or going; its reader buries it and settles its runs


def _resolve(
    future: cf.Future[Any], result: Any = None, *, exc: BaseException | None = None
) -> None:
    """Settle a PENDING future unless its caller cancelled it meanwhile."""
    try:
        if not future.set_running_or_notify_cancel():
            return
    except RuntimeError:  # already settled
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _cancel(future: cf.Future[Any]) -> None:
    """Cancel a future we own and notify its waiters (``wait``/``as_completed``)."""
    if future.cancel():
        try:
            future.set_running_or_notify_cancel()
        except RuntimeError:  # already notified
            pass


@atexit.register
def _end_open_executors() -> None:
    for executor in list(_LIVE):
        executor._kill_all()
