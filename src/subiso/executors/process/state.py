"""What the parts of :class:`~subiso.executors.process.host.ProcessExecutor` share.

The executor is one object whose parts live in their own modules - its face and dispatch
(:mod:`.host`), the worker pool's life (:mod:`.pool`), reading replies (:mod:`.replies`), timers
(:mod:`.timers`) - as CPython's ``concurrent.futures.process`` keeps the executor's API apart
from its management thread. They share the state declared here, read and written under
``_lock``; :class:`HostState` declares it (and the parts' methods the others call) once, for
every part and for the type checker.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from subiso._futures import Deadlines
from subiso.executors.affinity import Affinity
from subiso.executors.process.handle import PendingRun, WorkerHandle
from subiso.observe.log import for_run as log_for_run
from subiso.observe.log import logger_for

if TYPE_CHECKING:
    from subiso.observe.metrics import RunMeter
    from subiso.runtime.call import Call

#: A frame to write to a worker's run pipe, and the run it carries (None: a Stop).
Send = tuple[WorkerHandle, bytes, PendingRun | None]

log = logger_for("process")


class HostState:
    """The executor's shared state (set by ``ProcessExecutor.__init__``); see the module."""

    tier: ClassVar[str]
    max_workers: int
    preload: list[str]
    max_tasks_per_worker: int | None
    kill_grace: float
    retry_collateral: bool
    start_method: str
    worker_init: str | None
    loop_block_threshold: float
    selected_by: str | None
    _ctx: Any
    _lock: threading.Lock
    _changed: threading.Condition  # a worker became ready, or exited
    _workers: list[WorkerHandle]
    _queue: deque[PendingRun]  # runs waiting for a worker to be ready
    _rids: itertools.count[int]
    _indexes: itertools.count[int]
    _closing: bool
    _exiting: bool  # interpreter exit with the executor open (``_kill_all``)
    _deadlines: Deadlines
    _affinity: Affinity[WorkerHandle]
    _threads: list[threading.Thread]
    _meter: RunMeter

    if TYPE_CHECKING:  # the parts' methods the others call (defined in their modules)
        # host
        def _dispatch_locked(self, pending: PendingRun) -> list[Send]: ...
        def _drain_queue_locked(self) -> list[Send]: ...
        def _steal_locked(self, thief: WorkerHandle) -> list[Callable[[], None]]: ...
        def _send_all(self, sends: list[Send]) -> None: ...
        def close(self, wait: bool = True, *, cancel_pending: bool = False) -> None: ...
        @property
        def closed(self) -> bool: ...
        # pool
        def _spawn_locked(self) -> WorkerHandle: ...
        def _active_count_locked(self) -> int: ...
        def _retire_locked(self, worker: WorkerHandle) -> None: ...
        def _maybe_stop_locked(self, worker: WorkerHandle) -> list[Send]: ...
        # replies
        def _read_replies(self, worker: WorkerHandle) -> None: ...
        def _on_frame(self, worker: WorkerHandle, frame: bytes, t_recv: float) -> None: ...
        def _send_again(self, pending: PendingRun, call: Call | None = None) -> None: ...
        def _complete(self, pending: PendingRun, msg: Any, t_recv: float) -> None: ...
        def _stop_reading(self, pending: PendingRun, *, eof: bool = False) -> None: ...
        # timers
        def _schedule_locked(self, delay: float, kind: str, subject: Any) -> None: ...
        def _timeout_error(self, pending: PendingRun, *, killed: bool) -> Any: ...


def for_run(pending: PendingRun, level: int, what: str, *args: Any, **extra: Any) -> None:
    """A record about ``pending``'s run, made on the host (its worker could not)."""
    run = pending.call.run
    log_for_run(
        "process",
        level,
        f"run %s {what}",
        run.run_id if run is not None else "?",
        *args,
        run_id=run.run_id if run is not None else None,
        thread_id=pending.thread_id,
        **extra,
    )


def kill(worker: WorkerHandle) -> None:
    """SIGKILL the worker's process, unless it has exited and been closed meanwhile."""
    with contextlib.suppress(ValueError):
        worker.process.kill()
