"""Code that runs inside a ProcessExecutor worker process, and the wire messages both sides share.

The worker is a thin transport around the same worker-side code the thread tier uses: one
:class:`LoopWorker` (the worker's persistent event loop, its checkpointers and its cached
targets) served by the process's main thread, which reads run frames straight from the *run
pipe* (:class:`PipeInbox`). A sync run therefore arrives, runs and is answered on one thread,
with no hand-off; async runs become tasks on the loop, which reads further frames while it
turns. Each job's outcome is a :class:`_Reply` that encodes the result and writes the reply
frame itself, from whichever thread finished the run.

Cancellations travel on a second, *control pipe*, read by a small daemon thread that stays
free while runs execute: a cancel is honoured (and a vanished host noticed) even while a node
hogs the main thread, and a run whose frame has not been read yet is answered ``Cancelled`` at
once and skipped when its frame comes.

Observability: the worker's root logger has one handler, which sends every record (the
host's logger levels decide which are made) to the host as a :class:`Log` frame, where the
host's handlers take it; its loop's lag probe sends :class:`LoopLag` frames. Nothing a worker
logs goes to its stderr.

The messages are in :mod:`subiso.executors.process.wire`.
"""

from __future__ import annotations

import asyncio
import contextvars
import faulthandler
import gc
import importlib
import os
import queue
import select
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
from subiso.codec.echo import ReceivedModels
from subiso.config import ALREADY_CHECKED, GraphConfig
from subiso.errors import RunTimeout
from subiso.executors.process.wire import (
    Cancel,
    Cancelled,
    Control,
    Credit,
    Done,
    Event,
    Failed,
    Hello,
    Log,
    LoopLag,
    Stop,
    ToWorker,
    WorkerSettings,
)
from subiso.observe.records import ForwardingHandler, route_to
from subiso.observe.trace import flush_langsmith
from subiso.report import RunResult
from subiso.runtime.call import Call
from subiso.runtime.execute import WorkerRuntime
from subiso.runtime.loop_worker import STOP, Job, LoopWorker

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

    __slots__ = ("channel", "decode_s", "received", "rid", "state", "t_recv")

    def __init__(self, channel: Channel, rid: int, t_recv: float, decode_s: float) -> None:
        self.channel = channel
        self.rid = rid
        self.received: ReceivedModels | None = None  # its Call's models (subiso.codec.echo)
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
    """Turns run frames into jobs, answers cancellations, writes replies (from any thread)."""

    def __init__(self, conn: Connection, control: Connection, pool: TrackingExecutor) -> None:
        self.conn = conn
        self.control = control
        self.pool = pool
        self.worker: LoopWorker | None = None
        self._send_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._control_lock = threading.Lock()  # one reader of the control pipe at a time
        # "is a control frame waiting?" once per run frame: one poll(2) on a poller made once
        # (Connection.poll builds a selector per call, a tenth of a trivial run's overhead)
        self._control_ready = select.poll()
        self._control_ready.register(control.fileno(), select.POLLIN)
        self._jobs: dict[int, Job] = {}
        self._cancelled_early: set[int] = set()
        self._emitters: dict[int, _Emitter] = {}  # runs whose caller reads events
        self._decoder = codec.decoder(ToWorker)
        self._control_decoder = codec.decoder(Control)

    # replies
    def send(self, frame: bytes) -> None:
        with self._send_lock:
            self.conn.send_bytes(frame)

    def send_log(self, record: dict[str, Any]) -> None:
        """A log record for the host's handlers (dropped once the host is gone)."""
        try:
            self.send(codec.encode(Log(record)))
        except (OSError, ValueError):
            pass

    def send_lag(self, lag_s: float) -> None:
        try:
            self.send(codec.encode(LoopLag(lag_s)))
        except (OSError, ValueError):
            pass

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
            received, reply.received = reply.received, None
            role = received if received is not None and received.models else None
            output = codec.encode(result.output, label="output", role=role)
            encode_s = time.perf_counter() - start
            span = time.perf_counter() - reply.t_recv
            frame = codec.encode(
                Done(reply.rid, msgspec.Raw(output), result.report, span, encode_s, reply.decode_s)
            )
        except Exception as exc:  # SerializationError naming the key path (output or report)
            self.reply_failed(reply, exc)
            return
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
        self._emitters.pop(reply.rid, None)
        self.send(frame)

    # run frames (read by the LoopWorker's thread, see PipeInbox)
    def job_from(self, frame: bytes) -> Any:
        """The Job a run frame asks for; STOP for Stop; None if it was cancelled or is bad."""
        t_recv = time.perf_counter()
        msg = self._decoder.decode(frame)
        if isinstance(msg, Stop):
            return STOP
        reply = _Reply(self, msg.rid, t_recv, 0.0)
        checked = ALREADY_CHECKED.set(True)  # the host checked it
        reply.received = ReceivedModels()
        try:
            call = codec.decode(msg.call, Call, label="the GraphConfig", role=reply.received)
        except Exception as exc:
            self.reply_failed(reply, exc)
            return None
        finally:
            ALREADY_CHECKED.reset(checked)
        reply.decode_s = time.perf_counter() - t_recv
        emitter = None
        if msg.window:
            emitter = self._emitters[msg.rid] = _Emitter(self, msg.rid, msg.window)
        job = Job(call, reply, emitter)
        self.drain_control()
        with self._state_lock:
            if msg.rid in self._cancelled_early:  # answered Cancelled already
                self._cancelled_early.discard(msg.rid)
                return None
            self._jobs[msg.rid] = job
        return job

    # control frames (read by the control thread, and drained before a run is admitted)
    def serve_control(self, finished: threading.Event, kill_grace: float) -> None:
        """Handle cancellations until the host's end closes; then never outlive the host."""
        while True:
            try:
                self.control.poll(None)  # readable, or closed: waited for outside the lock
                with self._control_lock:
                    if self.control.poll():  # the main thread did not drain it meanwhile
                        self._on_control(self.control.recv_bytes())
            except (EOFError, OSError):
                break
        # The host closed its ends (it stopped us, exited or died): the run pipe says EOF too,
        # so the worker stops once its runs end; one that hangs is not waited for.
        if not finished.wait(kill_grace):
            os._exit(0)

    def drain_control(self) -> None:
        """Handle the control frames already sent, on the calling thread: before a run frame
        is admitted, a cancellation the host sent for it earlier must be seen, however late
        the control thread gets to run (a busy machine)."""
        if not self._control_ready.poll(0):
            return  # nothing sent (a closed pipe polls readable: the loop below sees EOF)
        with self._control_lock:
            try:
                while self.control.poll():
                    self._on_control(self.control.recv_bytes())
            except (EOFError, OSError):
                pass  # the host is gone: the control thread sees it too

    def _on_control(self, frame: bytes) -> None:
        msg = self._control_decoder.decode(frame)
        if isinstance(msg, Cancel):
            self.cancel(msg.rid, running_too=True)
        elif isinstance(msg, Credit):
            emitter = self._emitters.get(msg.rid)
            if emitter is not None:
                emitter.grant(msg.n)
        else:
            for rid in msg.rids:
                self.cancel(rid, running_too=False)

    def cancel(self, rid: int, *, running_too: bool) -> None:
        """Not started (frame unread, or job not admitted): answer Cancelled now. Running:
        cancel its task on the loop, if ``running_too``."""
        with self._state_lock:
            job = self._jobs.get(rid)
            if job is None:
                self._cancelled_early.add(rid)  # its frame is unread (or the run is over)
                queued = True
            else:
                queued = job.outcome.state == _QUEUED  # type: ignore[attr-defined]
                if queued:
                    job.outcome.state = _OVER  # type: ignore[attr-defined]
                    del self._jobs[rid]
        if queued:
            self.send(codec.encode(Cancelled(rid)))
        elif running_too and self.worker is not None:
            self.worker.cancel(job)  # type: ignore[arg-type]


class _Emitter:
    """A run's ``emit``: sends each event as an Event frame, at most ``window`` ahead of what
    the caller has taken (Credit frames give the room back), so a slow consumer holds the run
    back instead of the host buffering it."""

    def __init__(self, channel: Channel, rid: int, window: int) -> None:
        self._channel = channel
        self._rid = rid
        self._credit = window
        self._loop: asyncio.AbstractEventLoop | None = None
        self._room: asyncio.Event | None = None

    async def __call__(self, event: Any) -> None:
        if self._room is None:
            self._loop = asyncio.get_running_loop()
            self._room = asyncio.Event()
        while self._credit <= 0:
            self._room.clear()
            await self._room.wait()
        self._credit -= 1
        payload = codec.encode(event, label="an event")
        self._channel.send(codec.encode(Event(self._rid, msgspec.Raw(payload))))

    def grant(self, n: int) -> None:
        """From the control thread: the caller took ``n`` more events."""
        loop = self._loop
        if loop is None:
            self._credit += n  # before the first event: nothing waits yet
            return
        loop.call_soon_threadsafe(self._granted, n)

    def _granted(self, n: int) -> None:
        self._credit += n
        if self._room is not None:
            self._room.set()


class PipeInbox:
    """The LoopWorker's inbox in a worker process: run frames read by the worker thread itself
    (a blocking read while idle, ``loop.add_reader`` while looping).

    ``frames_read`` (shared memory the host reads) counts the frames taken off the pipe, bumped
    before a frame is decoded: a run whose frame is beyond the count never started here, so if
    this process dies the host can give it to another worker, or take it back while it waits
    (see the host's ``_steal_locked``) - without a message per run."""

    def __init__(self, channel: Channel, frames_read: Any) -> None:
        self.channel = channel
        self.conn = channel.conn
        self._frames_read = frames_read
        self._poller = select.poll()
        self._poller.register(self.conn.fileno(), select.POLLIN)
        self._ended = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> Any:
        if self._ended:
            return STOP
        try:
            frame = self.conn.recv_bytes()
        except (EOFError, OSError):  # the host closed its end: stop once the runs end
            self._ended = True
            if self._loop is not None:
                self._loop.remove_reader(self.conn.fileno())
                self._loop = None
            return STOP
        self._frames_read.value += 1
        return self.channel.job_from(frame)

    def get_nowait(self) -> Any:
        if self._ended or not self._poller.poll(0):
            raise queue.Empty
        return self.get()

    def empty(self) -> bool:
        return self._ended or not self._poller.poll(0)

    def qsize(self) -> int:
        return 0 if self.empty() else 1  # frames in the pipe are not counted here

    def attach(self, loop: asyncio.AbstractEventLoop, drain: Callable[[], None]) -> None:
        if not self._ended:
            self._loop = loop
            loop.add_reader(self.conn.fileno(), drain)

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not None:
            self._loop = None
            loop.remove_reader(self.conn.fileno())


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
    conn: Connection, control: Connection, settings: WorkerSettings, frames_read: Any
) -> None:
    """Entry point of a worker process (started with forkserver or spawn, never fork)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the host's to handle
    faulthandler.enable()  # a segfaulting node leaves its traceback on stderr
    sys.path[:] = settings.sys_path  # the host's path, even when the forkserver started earlier
    os.chdir(settings.cwd)  # relative sqlite paths resolve as in the host
    os.environ.update(settings.env)  # LANGSMITH_*, OTEL_*... as the host has them now
    pool = TrackingExecutor(thread_name_prefix="subiso-process-pool")
    channel = Channel(conn, control, pool)
    route_to(ForwardingHandler(channel.send_log), settings.log_levels)
    runtime = WorkerRuntime(
        "process",
        worker_init=settings.worker_init,
        block_threshold=settings.loop_block_threshold,
        on_lag=channel.send_lag,
    )
    preload_error = preload_modules(runtime, settings.preload)
    # What is loaded by now (subiso, langgraph, the preloads) lives as long as the worker: a full
    # collection need not walk it (a run decoding thousands of objects triggers them; 70-120 ms
    # pauses with LangGraph loaded, measured, before this). The same goes for what a run's
    # graph module loads when its first run imports it: frozen then too (a 2,000-message run's
    # p99 was 4.4x its median with the graph's module unfrozen).
    gc.freeze()
    runtime.targets.after_import = gc.freeze
    worker = LoopWorker(runtime, name="subiso-process-loop", inbox=PipeInbox(channel, frames_read))
    worker.loop.set_default_executor(pool)
    channel.worker = worker
    finished = threading.Event()
    threading.Thread(
        target=channel.serve_control,
        args=(finished, settings.kill_grace),
        name="subiso-process-control",
        daemon=True,
    ).start()
    channel.send(codec.encode(Hello(os.getpid(), preload_error)))
    worker.run_here()
    flush_langsmith()  # multiprocessing ends a worker without running atexit handlers
    finished.set()
    conn.close()
