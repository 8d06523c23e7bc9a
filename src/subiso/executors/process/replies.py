"""Reading the workers' replies (part of :class:`~subiso.executors.process.host.ProcessExecutor`).

Exactly one thread at a time reads a worker's run pipe (its *receiver*): the worker's reader
thread, or a caller of ``run``/``execute`` reading its own reply (a sync run then crosses no
host thread). The reader parks while callers read for themselves and still watches the process,
so a worker that dies idle is buried at once. Each frame settles its run (``_complete``), passes
an event on (``_on_event``, credit flowing back to the worker), or is a log record or a lag
sample for the host (:mod:`subiso.observe`); a run taken back from a busy worker, or left by a
dead one, is dispatched again (``_send_again``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any

import msgspec

from subiso import codec
from subiso._futures import cancel_and_notify, settle
from subiso.codec.echo import SentModels
from subiso.errors import ExecutorClosed, RunTimeout
from subiso.executors.hooks import TIMEOUT_GRACE_S
from subiso.executors.process import wire
from subiso.executors.process.handle import (
    PendingRun,
    WorkerHandle,
    send_control,
)
from subiso.executors.process.handle import WorkerState as S
from subiso.executors.process.state import HostState, Send, for_run, kill
from subiso.observe.records import replay
from subiso.report import RunResult
from subiso.runtime.call import Call


class ReplyReader(HostState):
    """How replies are read and what each one settles; see the module docstring."""

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

    def _receive_own_reply(self, pending: PendingRun) -> None:
        """Read replies on the calling thread until ``pending``'s arrives, then hand back
        (:meth:`_stop_reading`, also when interrupted)."""
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
                    kill(worker)
                    eof = True
                    raise
                self._on_frame(worker, frame, time.perf_counter())
        finally:
            self._stop_reading(pending, eof=eof)

    def _stop_reading(self, pending: PendingRun, *, eof: bool = False) -> None:
        """The caller stops being ``pending``'s worker's receiver (its reply came, or it was
        interrupted - even before it began to read): the reader thread reads from now on."""
        worker = pending.worker
        if worker is None:
            return
        with self._lock:
            if worker.receiver == threading.get_ident() and not pending.nested:
                worker.receiver = None
            if eof:
                worker.eof = worker.broken = True
            if pending.direct and pending.rid in worker.in_flight:
                pending.direct = False  # interrupted: the reader thread takes it over
                worker.direct -= 1
            worker.poke()

    def _on_frame(self, worker: WorkerHandle, frame: bytes, t_recv: float) -> None:
        """Settle the run a reply frame answers, or pass on an event (on whichever thread is
        the receiver)."""
        msg = worker.decoder.decode(frame)
        if isinstance(msg, wire.Event):
            self._on_event(worker, msg)
            return
        if isinstance(msg, wire.Log):
            replay(msg.record)
            return
        if isinstance(msg, wire.LoopLag):
            self._meter.lag(msg.lag_s, worker)
            return
        with self._lock:
            pending = worker.in_flight.pop(msg.rid, None)
            if pending is not None and pending.direct:
                worker.direct -= 1
            if pending is not None and pending.exclusive:
                worker.exclusive = pending.exclusive = False
            sends = self._after_run_locked(worker, msg)
            steals = self._steal_locked(worker) if not sends and len(self._workers) > 1 else []
        if sends:
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
                output = codec.decode(
                    msg.output,
                    label=f"the output of {pending.graph!r}",
                    role=pending.sent,
                )
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
                if isinstance(error, asyncio.CancelledError):  # its worker logged "cancelled"
                    error = self._timeout_error(pending, killed=False)
                    for_run(pending, logging.WARNING, "timeout: %s", error, outcome="timeout")
                else:
                    error = self._timeout_error(pending, killed=False)
            elif isinstance(error, asyncio.CancelledError):
                cancel_and_notify(pending.future)
                return
            settle(pending.future, exc=error)
        elif pending.timed_out:  # Cancelled: it never started within its timeout
            error = self._timeout_error(pending, killed=False)
            for_run(pending, logging.WARNING, "timeout: %s", error, outcome="timeout")
            settle(pending.future, exc=error)
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
        sent = SentModels()
        try:
            pending.frame = codec.encode(
                wire.RunOut(pending.rid, pending.call, pending.window), role=sent
            )
        except Exception as exc:  # it encoded once; never leave its future unresolved
            settle(pending.future, exc=exc)
            return
        pending.sent = sent
        with self._lock:
            if pending.future.done():
                return
            sends = self._dispatch_locked(pending)
        self._send_all(sends)


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
