"""The worker pool's life (part of :class:`~subiso.executors.process.host.ProcessExecutor`).

A worker moves STARTING -> SERVING -> (RETIRING ->) STOPPING -> gone (see
:mod:`~subiso.executors.process.handle`). Each has one reader thread, which starts its process
(``_worker_life``), reads its replies, and buries it when it exits (``_on_exit``): the runs it held
are triaged (:func:`~subiso.executors.process.triage.triage`: sent again, or failed with
``WorkerCrashed``/``RunTimeout``), a replacement starts when one is needed, and the host logs
what happened with each run's id. Retiring (``max_tasks_per_worker``, a tainted worker) starts
the replacement first; stopping sends Stop and kills after ``kill_grace`` if the worker hangs.
At interpreter exit every open executor's workers are killed (``_kill_all``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import sys
import threading
import time
from collections import deque

from subiso import codec
from subiso._futures import join_all, settle
from subiso.errors import ConfigError, ExecutorClosed, WorkerCrashed
from subiso.executors.process import wire
from subiso.executors.process.handle import (
    CAN_PARK,
    PendingRun,
    WorkerHandle,
    describe_exit,
)
from subiso.executors.process.handle import WorkerState as S
from subiso.executors.process.state import HostState, Send, for_run, kill, log
from subiso.executors.process.triage import triage
from subiso.observe.records import host_levels
from subiso.runtime.call import Call


class WorkerPool(HostState):
    """Starting, replacing, retiring and stopping worker processes; see the module docstring."""

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
            hello = worker.start_process(self._ctx, self.start_method, self._worker_settings())
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

    def _worker_settings(self) -> wire.WorkerSettings:
        return wire.WorkerSettings(
            sys_path=list(sys.path),
            cwd=os.getcwd(),
            env=dict(os.environ),
            preload=list(self.preload),
            kill_grace=self.kill_grace,
            worker_init=self.worker_init,
            log_levels=host_levels(),
            loop_block_threshold=self.loop_block_threshold,
        )

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
            kill(worker)
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
        worker.close_process()
        read = worker.frames_taken()
        worker.close_pipes()
        self._meter.forget_lag(worker)
        with self._lock:
            self._workers.remove(worker)
            held = list(worker.in_flight.values())
            worker.in_flight.clear()
            died = not self._closing and worker.state in (S.STARTING, S.SERVING)
            if died or worker.state is S.RETIRING:
                self._meter.restarted()
            if died:
                if self._active_count_locked() < self.max_workers:
                    self._spawn_locked()
            elif (
                self._queue
                and not self._exiting
                and not any(w.state in (S.STARTING, S.SERVING) for w in self._workers)
            ):
                self._spawn_locked()  # queued runs still need a worker
            self._changed.notify_all()
        cause = worker.kill_reason or describe_exit(exitcode)
        if died:
            log.warning(
                "worker process %s %s; %d run(s) in flight on it; replaced",
                worker.pid,
                cause,
                len(held),
                extra={"worker_pid": worker.pid, "tier": self.tier},
            )
        if not held:
            return
        what = f"worker process {worker.pid} {cause}"
        for pending, verdict in triage(held, read, worker.killed_for, self.retry_collateral):
            settled = pending.future.done()  # its caller has an answer already (a deadline)
            if isinstance(verdict, Call):
                if 0 < pending.seq <= read:  # it had started: sent again, resuming if it can
                    for_run(pending, logging.INFO, "sent again after %s", what)
                self._send_again(pending, verdict)
            elif verdict == "timeout":
                error = self._timeout_error(pending, killed=True)
                if not settled:
                    for_run(pending, logging.WARNING, "timeout: %s", error, outcome="timeout")
                settle(pending.future, exc=error)
            else:
                crashed = verdict.crashed(what)
                if not settled:
                    for_run(pending, logging.WARNING, "crashed: %s", crashed, outcome="crashed")
                settle(pending.future, exc=crashed)

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

    def worker_pids(self) -> list[int]:
        """Pids of the live worker processes (for diagnostics and tests)."""
        with self._lock:
            return [w.pid for w in self._workers if w.pid is not None]
