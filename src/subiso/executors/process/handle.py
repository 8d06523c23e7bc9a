r"""Host-side records of the process tier: one :class:`WorkerHandle` per worker process, one
:class:`PendingRun` per submitted run, and the worker's lifecycle as :class:`WorkerState`.

A worker moves through its states in one direction only::

    STARTING --Hello--> SERVING --retire--> RETIRING --drained--> STOPPING --exit--> (gone)
                           \______________close, drained______________/

* STARTING: the process is starting; runs wait in the executor's queue.
* SERVING: takes new runs.
* RETIRING: replaced already (recycled after ``max_tasks_per_worker``, or tainted by a run that
  left a thread spinning); takes no new runs and is stopped once drained.
* STOPPING: Stop sent; it exits by itself or is killed after ``kill_grace``.

Two pipe conditions stand apart from the lifecycle because they can happen in any state:
``broken`` (a send failed or the process ended: its reader thread will bury it) and ``eof``
(a caller reading its own reply saw the worker's end close).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import enum
import multiprocessing
import os
import select
import signal
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any, Literal

from subiso import codec
from subiso._futures import Waiter
from subiso.codec.echo import SentModels
from subiso.config import GraphConfig
from subiso.errors import ConfigError
from subiso.events import EventChannel
from subiso.executors.process import wire
from subiso.executors.process.main_module import (
    main_not_inherited,
    main_reference,
    refuse_start_while_importing_main,
    worker_entry,
)
from subiso.executors.process.transport import run_pipe
from subiso.observe.records import replay
from subiso.report import RunResult
from subiso.runtime.call import Call


class WorkerState(enum.Enum):
    STARTING = "starting"
    SERVING = "serving"
    RETIRING = "retiring"
    STOPPING = "stopping"


#: Modules the forkserver imports once, so every worker forked from it starts warm.
FORKSERVER_PRELOAD = (
    "subiso.executors.process.worker",
    "langgraph.graph",
    "langgraph.checkpoint.memory",
)

#: Callers read their own replies where ``select.poll`` exists (not on Windows: there the
#: reader thread reads every reply).
CAN_PARK = hasattr(select, "poll")
_START_LOCK = threading.Lock()  # Process.start() from several reader threads: one at a time


#: What ``start_method`` may name ("fork" is refused with the reason, not unknown).
StartMethod = Literal["spawn", "forkserver", "fork"]


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


class PendingRun:
    """One submitted run, from submit until its future resolves."""

    __slots__ = (
        "__weakref__",
        "assignment",
        "call",
        "direct",
        "encode_s",
        "events",
        "exclusive",
        "frame",
        "future",
        "graph",
        "nested",
        "retried",
        "rid",
        "sent",
        "seq",
        "stealing",
        "t_sent",
        "thread_id",
        "timed_out",
        "timeout",
        "window",
        "worker",
    )

    def __init__(
        self,
        rid: int,
        call: Call,
        frame: bytes,
        encode_s: float,
        future: cf.Future[RunResult] | Waiter,
        events: EventChannel | None = None,
    ) -> None:
        cfg = call.cfg
        self.rid = rid
        self.call = call  # kept to send the run again (stolen, or retried after a crash)
        self.window = 0 if events is None else events.maxsize
        self.events = events
        #: its outcome: the future ``start`` returns, or a sync caller's Waiter (``call``)
        self.future = future
        self.frame = frame
        self.graph = cfg.graph
        self.timeout = cfg.timeout
        self.thread_id = cfg.thread_id
        self.encode_s = encode_s
        self.sent = SentModels()  # the models its frame carried (see subiso.codec.echo)
        self.t_sent = 0.0
        self.timed_out = False
        self.direct = False  # its caller reads the reply itself (see ``execute``)
        self.nested = False  # ... and was already reading this worker (from a callback)
        self.worker: WorkerHandle | None = None
        self.assignment = 0  # bumped each time it is given to a worker (its timers check it)
        self.seq = 0  # its frame's place in its worker's run pipe (0: not sent yet)
        self.stealing = False  # taken back from a backed-up worker, to go to an idle one
        self.retried = False  # sent again once after a crash; never twice
        self.exclusive = False  # runs alone on its worker (a crash suspect, retried)

    @property
    def cfg(self) -> GraphConfig:
        return self.call.cfg

    def pinned(self) -> bool:
        """Its thread's checkpoints live only in its worker (the "memory" checkpointer): it
        may not move to another worker, and is lost if that worker dies."""
        return self.thread_id is not None and self.cfg.checkpointer == "memory"

    def movable(self) -> bool:
        """Whether, waiting unread, it may be taken back from its worker for another one."""
        return not (
            self.direct
            or self.pinned()
            or self.stealing
            or self.exclusive
            or self.timed_out
            or self.future.done()
        )

    def read_only(self) -> bool:
        return self.call.op in ("get_state", "get_state_history")

    def resumable(self) -> bool:
        """A durable checkpointer and a thread: sent again, it continues from its last
        checkpoint (``GraphConfig.recover``) instead of repeating completed steps."""
        return (
            self.thread_id is not None
            and self.call.op == "invoke"
            and self.cfg.checkpointer not in (None, "memory")
        )


class WorkerHandle:
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
        self.state = WorkerState.STARTING
        self.broken = False  # a send failed or it exited: its reader thread will bury it
        self.kill_reason: str | None = None
        self.killed_for: PendingRun | None = None  # the overdue run it was killed for
        self.preload_error: str | None = None
        self.start_error: str | None = None
        self.in_flight: dict[int, PendingRun] = {}
        self.dispatched = 0
        self.sent = 0  # frames written to the run pipe (under send_lock)
        self.frames_read: Any = None  # shared counter, bumped by the worker per frame read
        self.exclusive = False  # holds a run that must run alone (see PendingRun.exclusive)
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
        return self.state is WorkerState.SERVING and not self.broken

    def frames_taken(self) -> int:
        """Frames the worker has taken off its run pipe (its shared count; 0 before it starts)."""
        return self.frames_read.value if self.frames_read is not None else 0

    def waiting(self) -> list[PendingRun]:
        """Runs whose frames wait unread in its pipe and may go to another worker."""
        read = self.frames_taken()
        return [p for p in self.in_flight.values() if p.seq > read and p.movable()]

    def needs_reader(self) -> bool:
        """Replies (or the worker's exit) are due that no caller is waiting to read itself."""
        return (
            self.state is WorkerState.STOPPING or self.broken or len(self.in_flight) > self.direct
        )

    def start_process(
        self, ctx: Any, start_method: str, settings: wire.WorkerSettings
    ) -> wire.Hello:
        """Start the worker process and read its Hello (on the reader thread).

        The worker does not import the caller's ``__main__`` to start (see
        :mod:`.main_module`): a script needs no main guard for workers whose runs name
        nothing in ``__main__``, and one that does gets told to add it."""
        refuse_start_while_importing_main("a ProcessExecutor's worker processes")
        if start_method == "forkserver":
            _configure_forkserver(ctx)
        parent, child, started = run_pipe(ctx)  # large frames through shared memory
        control_r, control_w = ctx.Pipe(duplex=False)
        self.conn, self.control = parent, control_w
        self.frames_read = ctx.RawValue("Q", 0)
        process = ctx.Process(
            target=worker_entry,
            args=(main_reference(), child, control_r, settings, self.frames_read),
            name=f"subiso-process-worker-{self.index}",
            daemon=False,  # not inherited from a daemonic host (see children_allowed)
        )
        try:
            with _START_LOCK, children_allowed(process), main_not_inherited():
                process.start()
        finally:
            started()  # the worker's ends: only the worker keeps them open
            control_r.close()
        self.process, self.pid = process, process.pid
        while True:  # what it logs while starting comes first
            try:
                frame = parent.recv_bytes()
            except (EOFError, OSError):
                process.join()
                raise RuntimeError(
                    f"worker process {process.pid} {describe_exit(process.exitcode)} while starting"
                ) from None
            msg = self.decoder.decode(frame)
            if isinstance(msg, wire.Hello):
                return msg
            if isinstance(msg, wire.Log):
                replay(msg.record)

    def close_process(self) -> None:
        """Release the exited process's fds now, not when the handle is garbage-collected.

        Under ``_START_LOCK``: another reader thread's ``Process.start()`` walks every child
        multiprocessing knows (``_cleanup``: ``p._popen.poll()``), and ``close()`` sets
        ``_popen`` to None - unserialised, the replacement worker's start fails with
        "'NoneType' object has no attribute 'poll'" (seen on 3.10 when a worker abandoned at a
        timeout exits while its replacement starts; newer CPythons' ``_cleanup`` checks for it)."""
        with _START_LOCK:
            self.process.close()

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


def start_context(method: str, owner: str) -> Any:
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


def send_control(worker: WorkerHandle, msg: wire.Cancel | wire.CancelQueued | wire.Credit) -> None:
    """Send a cancellation on the worker's control pipe (read even while a run hogs it)."""
    try:
        with worker.send_lock:
            worker.control.send_bytes(codec.encode(msg))  # type: ignore[union-attr]
    except (OSError, ValueError):
        pass  # the worker is gone or going; its reader buries it and settles its runs


@contextlib.contextmanager
def children_allowed(process: Any) -> Iterator[None]:
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

    auth_string: Any = getattr(mp_process, "AuthenticationString")  # noqa: B009 (no stub)
    key = process._config.get("authkey")
    if key is not None and type(key) is not auth_string:
        process._config["authkey"] = auth_string(bytes(key))
    config: dict[str, Any] = getattr(multiprocessing.current_process(), "_config")  # noqa: B009
    saved: dict[str, Any] = {k: config[k] for k in ("daemon", "authkey") if k in config}
    if config.get("daemon"):
        config["daemon"] = False
    host_key = config.get("authkey")  # pickled into spawn/forkserver preparation data
    if host_key is not None and type(host_key) is not auth_string:
        config["authkey"] = auth_string(bytes(host_key))
    try:
        yield
    finally:
        config.update(saved)
