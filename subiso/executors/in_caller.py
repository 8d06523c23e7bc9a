"""What tiers that run in the caller's own thread (inline, context) need besides the base
class: a done future for ``start``, and runs on helper threads for a caller that must read a
run's events while it goes on (``stream``, ``on_event``) or get control back at its deadline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading
from collections.abc import Callable

from subiso._futures import join_all, running_future, settle
from subiso.report import RunResult
from subiso.runtime.call import Call
from subiso.runtime.execute import OnTask


def ran(fn: Callable[[Call], RunResult], call: Call) -> cf.Future[RunResult]:
    """A done future holding ``fn(call)``'s outcome: ``start`` for tiers that run in the
    caller's thread."""
    future: cf.Future[RunResult] = cf.Future()
    future.set_running_or_notify_cancel()
    try:
        future.set_result(fn(call))
    except BaseException as exc:
        future.set_exception(exc)
    return future


class HelperRuns:
    """Runs on short-lived daemon threads, each on a fresh loop, that can be cancelled and
    joined: for tiers that run in the caller's thread, when a sync caller must read a run's
    events while the run goes on (``stream``, ``on_event``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[cf.Future[RunResult], _HelperRun] = {}

    def start(self, fn: Callable[[OnTask], RunResult]) -> cf.Future[RunResult]:
        """``fn(on_task)`` on a helper thread; ``fn`` passes ``on_task`` to ``run_once``."""
        run = _HelperRun()
        with self._lock:
            self._runs[run.future] = run
        run.future.add_done_callback(self._forget)
        run.thread = threading.Thread(
            target=run.main, args=(fn,), name="subiso-stream", daemon=True
        )
        run.thread.start()
        return run.future

    def cancel(self, future: cf.Future[RunResult]) -> None:
        with self._lock:
            run = self._runs.get(future)
        if run is not None:
            run.cancel()

    def join(self) -> None:
        with self._lock:
            threads = [run.thread for run in self._runs.values() if run.thread is not None]
        join_all(threads)

    def _forget(self, future: cf.Future[RunResult]) -> None:
        with self._lock:
            self._runs.pop(future, None)


class _HelperRun:
    def __init__(self) -> None:
        self.future: cf.Future[RunResult] = running_future()
        self.thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._task: tuple[asyncio.AbstractEventLoop, asyncio.Task[RunResult]] | None = None
        self._cancelled = False

    def main(self, fn: Callable[[OnTask], RunResult]) -> None:
        try:
            result = fn(self._bind)
        except BaseException as exc:
            settle(self.future, exc=exc)
        else:
            settle(self.future, result)

    def _bind(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[RunResult]) -> None:
        with self._lock:
            self._task = (loop, task)
            if self._cancelled:
                task.cancel()

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._task is None:
                return
            loop, task = self._task
        try:
            loop.call_soon_threadsafe(task.cancel)
        except RuntimeError:  # its loop closed: the run is over
            pass
