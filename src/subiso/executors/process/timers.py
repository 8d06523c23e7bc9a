"""Timeouts and kill grace (part of :class:`~subiso.executors.process.host.ProcessExecutor`).

One lazily started timer thread per executor (:class:`~subiso._futures.Deadlines`). A run past
its ``timeout`` (counted from dispatch) is cancelled on its worker's loop; if no reply comes
within ``kill_grace``, the worker is killed and replaced and the run ends ``RunTimeout``. A
worker asked to stop that has not exited within ``kill_grace`` is killed. Timers hold runs
weakly (a run's result is not kept alive by its timer) and check which dispatch they were set
for, so a timer of a run since sent again elsewhere does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from subiso.errors import RunTimeout
from subiso.executors.process import wire
from subiso.executors.process.handle import (
    PendingRun,
    send_control,
)
from subiso.executors.process.state import HostState, kill


class RunTimers(HostState):
    """Deciding, on the timer thread, what an expired timer does; see the module docstring."""

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
            ref, assignment = subject
            pending = ref()
            if pending is None:  # the run is over and let go
                return []
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
            return [lambda: kill(worker)]
        worker = subject  # "stop"
        if worker not in self._workers:
            return []
        worker.kill_reason = (
            f"was killed by subiso: it did not exit within kill_grace={self.kill_grace:g}s "
            "of being asked to stop"
        )
        return [lambda: kill(worker)]

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
