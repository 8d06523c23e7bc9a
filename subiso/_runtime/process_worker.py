"""Code that runs inside a ProcessExecutor worker process, and the wire messages both sides share.

The worker is a thin transport around the same worker-side code the thread tier uses: its main
thread reads framed msgpack requests from the pipe and posts :class:`Job`\\ s to one
:class:`LoopWorker` (a thread owning the worker's persistent event loop, its checkpointers and
its cached targets). Each job's outcome is a :class:`_Reply` that encodes the result and writes
the reply frame itself, from whichever thread finished the run - no extra hop, no per-run
thread. The main thread stays free while runs execute, so cancellations and a vanished host
are noticed even while a node hogs the loop thread.

Wire format (msgspec msgpack, array-like tagged structs, one frame per message):

* host -> worker: :class:`Run` ``(rid, cfg)``, :class:`Cancel` ``(rid)``,
  :class:`CancelQueued` (cancel every run not started yet), :class:`Stop` (drain and exit);
* worker -> host: :class:`Hello` ``(pid, preload_error)`` once at start, then per run exactly
  one of :class:`Done`, :class:`Failed` or :class:`Cancelled`.

Payloads (``cfg`` and the output) travel as ``msgspec.Raw`` so a payload that fails to decode
fails only its own run, with the run id still known.
"""

from __future__ import annotations

import asyncio
import contextvars
import faulthandler
import importlib
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from subiso import codec
from subiso._runtime.execute import WorkerRuntime
from subiso._runtime.loop_worker import Job, LoopWorker
from subiso.config import GraphConfig
from subiso.errors import RunTimeout
from subiso.report import RunReport, RunResult


# -- messages ---------------------------------------------------------------------------------
class Run(msgspec.Struct, array_like=True, tag=0):
    rid: int
    cfg: msgspec.Raw


class Cancel(msgspec.Struct, array_like=True, tag=1):
    rid: int


class CancelQueued(msgspec.Struct, array_like=True, tag=2):
    pass


class Stop(msgspec.Struct, array_like=True, tag=3):
    pass


class Hello(msgspec.Struct, array_like=True, tag=10):
    pid: int
    preload_error: str | None = None


class Done(msgspec.Struct, array_like=True, tag=11):
    rid: int
    output: msgspec.Raw
    report: RunReport
    span_s: float  # frame received -> reply encoded, inside the worker
    encode_s: float
    decode_s: float


class Failed(msgspec.Struct, array_like=True, tag=12):
    rid: int
    error: codec.WireError
    span_s: float = 0.0
    tainted: bool = False  # the run timed out but left threads running: retire the worker


class Cancelled(msgspec.Struct, array_like=True, tag=13):
    rid: int


ToWorker = Run | Cancel | CancelQueued | Stop
ToHost = Hello | Done | Failed | Cancelled

TAG_RUN = 0
TAG_DONE = 11


# -- which run submitted work to the loop's thread pool -------------------------------------
_CURRENT_RUN: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "subiso_process_run", default=None
)


class TrackingExecutor(ThreadPoolExecutor):
    """The worker loop's default executor, counting the work each run still has in threads.

    LangGraph runs sync nodes of an ``ainvoke`` (and ``asyncio.to_thread`` runs functions) in
    this pool. Cancelling such a run on timeout returns at once, but a CPU-bound node keeps its
    thread spinning; the count tells the host the worker is tainted and must be recycled.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._busy: Counter[int] = Counter()
        self._busy_lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        rid = _CURRENT_RUN.get()
        if rid is None:
            return super().submit(fn, *args, **kwargs)
        with self._busy_lock:
            self._busy[rid] += 1

        def tracked() -> Any:
            try:
                return fn(*args, **kwargs)
            finally:
                self._release(rid)

        future = super().submit(tracked)
        future.add_done_callback(lambda f: self._release(rid) if f.cancelled() else None)
        return future

    def _release(self, rid: int) -> None:
        with self._busy_lock:
            self._busy[rid] -= 1
            if self._busy[rid] <= 0:
                del self._busy[rid]

    def busy(self, rid: int) -> int:
        with self._busy_lock:
            return self._busy.get(rid, 0)


# -- one run's outcome -------------------------------------------------------------------------
_QUEUED, _RUNNING, _OVER = 0, 1, 2


class _Reply:
    """The Outcome of one Job: encodes the result and writes the reply frame (any thread)."""

    __slots__ = ("channel", "decode_s", "rid", "state", "t_recv")

    def __init__(self, channel: Channel, rid: int, t_recv: float, decode_s: float) -> None:
        self.channel = channel
        self.rid = rid
        self.t_recv = t_recv
        self.decode_s = decode_s
        self.state = _QUEUED

    def set_running_or_notify_cancel(self) -> bool:
        if not self.channel.transition(self, _QUEUED, _RUNNING):
            return False
        _CURRENT_RUN.set(self.rid)  # copied into the run's task by create_task
        return True

    def set_result(self, result: RunResult) -> None:
        self.channel.reply_done(self, result)

    def set_exception(self, exception: BaseException) -> None:
        self.channel.reply_failed(self, exception)


# -- the worker's channel to the host ------------------------------------------------------------
class Channel:
    """Reads requests on the main thread, posts them to the LoopWorker, writes replies."""

    def __init__(self, conn: Connection, worker: LoopWorker, pool: TrackingExecutor) -> None:
        self.conn = conn
        self.worker = worker
        self.pool = pool
        self._send_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._jobs: dict[int, Job] = {}
        self._cancelled_early: set[int] = set()
        self._decoder = codec.decoder(ToWorker)

    # replies
    def send(self, frame: bytes) -> None:
        with self._send_lock:
            self.conn.send_bytes(frame)

    def transition(self, reply: _Reply, old: int, new: int) -> bool:
        with self._state_lock:
            if reply.state != old:
                return False
            reply.state = new
            if new == _OVER:
                self._jobs.pop(reply.rid, None)
            return True

    def reply_done(self, reply: _Reply, result: RunResult) -> None:
        start = time.perf_counter()
        try:
            output = codec.encode(result.output, label="output")
        except Exception as exc:  # SerializationError naming the key path
            self.reply_failed(reply, exc)
            return
        encode_s = time.perf_counter() - start
        span = time.perf_counter() - reply.t_recv
        frame = codec.encode(
            (
                TAG_DONE,
                reply.rid,
                msgspec.Raw(output),
                result.report,
                span,
                encode_s,
                reply.decode_s,
            )
        )
        self._finish(reply, frame)

    def reply_failed(self, reply: _Reply, exc: BaseException) -> None:
        tainted = isinstance(exc, (RunTimeout, asyncio.CancelledError)) and (
            self.pool.busy(reply.rid) > 0
        )
        span = time.perf_counter() - reply.t_recv
        msg = Failed(reply.rid, codec.exception_to_wire(exc), span, tainted)
        self._finish(reply, codec.encode(msg))

    def _finish(self, reply: _Reply, frame: bytes) -> None:
        with self._state_lock:
            reply.state = _OVER
            self._jobs.pop(reply.rid, None)
        self.send(frame)

    # requests
    def serve(self, kill_grace: float) -> None:
        """Handle requests until Stop (drain, return) or the host's end closing (exit)."""
        while True:
            try:
                frame = self.conn.recv_bytes()
            except (EOFError, OSError):
                self._host_gone(kill_grace)
                return
            t_recv = time.perf_counter()
            msg = self._decoder.decode(frame)
            if isinstance(msg, Run):
                self._run(msg, t_recv)
            elif isinstance(msg, Cancel):
                self.cancel(msg.rid)
            elif isinstance(msg, CancelQueued):
                self.cancel_queued()
            else:
                self.worker.stop()
                self.worker.join()
                return

    def _run(self, msg: Run, t_recv: float) -> None:
        reply = _Reply(self, msg.rid, t_recv, 0.0)
        try:
            cfg = codec.decode(msg.cfg, GraphConfig, label="the GraphConfig")
        except Exception as exc:
            self.reply_failed(reply, exc)
            return
        reply.decode_s = time.perf_counter() - t_recv
        job = Job(cfg, reply)
        with self._state_lock:
            if msg.rid in self._cancelled_early:
                self._cancelled_early.discard(msg.rid)
                reply.state = _OVER
            else:
                self._jobs[msg.rid] = job
        if reply.state == _OVER:
            self.send(codec.encode(Cancelled(msg.rid)))
        else:
            self.worker.post(job)

    def cancel(self, rid: int) -> None:
        """Not started: answer Cancelled now. Running: cancel its task on the loop."""
        with self._state_lock:
            job = self._jobs.get(rid)
            if job is None:
                self._cancelled_early.add(rid)  # the Run frame may still be behind us
                return
            queued = job.outcome.state == _QUEUED  # type: ignore[attr-defined]
            if queued:
                job.outcome.state = _OVER  # type: ignore[attr-defined]
                del self._jobs[rid]
        if queued:
            self.send(codec.encode(Cancelled(rid)))
        else:
            self.worker.cancel(job)

    def cancel_queued(self) -> None:
        with self._state_lock:
            rids = [
                rid
                for rid, job in self._jobs.items()
                if job.outcome.state == _QUEUED  # type: ignore[attr-defined]
            ]
            for rid in rids:
                self._jobs.pop(rid).outcome.state = _OVER  # type: ignore[attr-defined]
        for rid in rids:
            self.send(codec.encode(Cancelled(rid)))

    def _host_gone(self, kill_grace: float) -> None:
        """The executor's end closed (the host exited or died): never outlive it."""
        self.worker.stop()
        self.worker.join(kill_grace)
        if self.worker.thread.is_alive():
            os._exit(0)


# -- process entry point -----------------------------------------------------------------------
def preload_modules(runtime: WorkerRuntime, names: list[str]) -> str | None:
    """Import modules (``pkg.mod``) or resolve targets (``pkg.mod:attr``, cached) up front."""
    for name in names:
        try:
            if ":" in name:
                runtime.plan(GraphConfig(graph=name))
            else:
                importlib.import_module(name)
        except BaseException as exc:
            return f"preload {name!r} failed: {type(exc).__name__}: {exc}"
    return None


def worker_main(
    conn: Connection, sys_path: list[str], cwd: str, preload: list[str], kill_grace: float
) -> None:
    """Entry point of a worker process (started with forkserver or spawn, never fork)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the host's to handle
    faulthandler.enable()  # a segfaulting node leaves its traceback on stderr
    sys.path[:] = sys_path  # the host's path, even when the forkserver started earlier
    os.chdir(cwd)  # relative sqlite paths resolve as in the host
    runtime = WorkerRuntime("process")
    preload_error = preload_modules(runtime, preload)
    worker = LoopWorker(runtime, name="subiso-process-loop")
    pool = TrackingExecutor(thread_name_prefix="subiso-process-pool")
    worker.loop.set_default_executor(pool)
    worker.start()
    channel = Channel(conn, worker, pool)
    channel.send(codec.encode(Hello(os.getpid(), preload_error)))
    channel.serve(kill_grace)
    conn.close()
