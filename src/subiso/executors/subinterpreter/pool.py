"""The interpreter pool: call specs, transports, workers, watchdog, exit hook, codec choice.

:class:`InterpreterPool` keeps own-GIL interpreters warm for its whole life, each driven by
one host thread that calls into it synchronously; requests and replies are ``bytes``
(see :mod:`subiso.executors.subinterpreter.interp_side` for the wire contract). There is no polling queue
on the hot path (a blocking ``interpreters.Queue.get`` polls, cpython#143017).

Each call carries what observability needs inside the interpreter (the caller's OpenTelemetry
context), and its reply brings back the log records emitted there, which the pool replays on
the host's loggers tagged with the run they belong to (``CallSpec.tag``, else the run current
where the call was submitted): they arrive when the call returns.
"""

from __future__ import annotations

import atexit
import importlib
import itertools
import marshal
import queue
import sys
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from subiso._capabilities import require_backend
from subiso._futures import Deadlines, join_all
from subiso.codec import WireError, exception_from_wire
from subiso.errors import (
    ExecutorClosed,
    NotIsolatable,
    RunTimeout,
    SerializationError,
    WorkerCrashed,
)
from subiso.executors.subinterpreter import interp_side
from subiso.executors.subinterpreter.offload_plans import OffloadPlan, resolve_offload
from subiso.executors.subinterpreter.probes import probe_module, probe_msgspec
from subiso.observe import log as run_log
from subiso.observe.records import host_levels, replay
from subiso.observe.runs import CURRENT_RUN, RunTag
from subiso.observe.trace import capture_otel

#: Extra time the host grants past a call's timeout before failing its future itself; the
#: interpreter cancels async calls on time, this only catches sync calls that cannot be cancelled.
TIMEOUT_GRACE = 0.25


# --- call specs and results -----------------------------------------------------------------


@dataclass(frozen=True)
class CallSpec:
    """One call for the pool: ``target`` is ``"module:qualname"``, a function, or a plan.

    ``tag``: the run the call belongs to (default: the run current where it is submitted) -
    its interpreter's log records carry it; with ``is_run`` the call *is* that run (the
    subinterpreter tier's full mode), started and logged as such. ``otel``: the OpenTelemetry
    context to restore inside the interpreter (default: the submitter's)."""

    target: str | Callable[..., Any] | OffloadPlan
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    tag: RunTag | None = None
    otel: dict[str, str] | None = None
    is_run: bool = False


class InterpreterFuture(Future[Any]):
    """A Future that also says which interpreter ran the call, on which host thread and
    since when (``time.perf_counter()``), for RunReport."""

    interpreter_id: int | None = None
    thread_id: int | None = None
    started_at: float | None = None
    finished_at: float | None = None


@dataclass
class _Task:
    future: InterpreterFuture
    plan: OffloadPlan
    request: bytes
    timeout: float | None
    tag: RunTag | None = None
    is_run: bool = False


def _plan_for(target: str | Callable[..., Any] | OffloadPlan) -> OffloadPlan:
    if isinstance(target, OffloadPlan):
        return target
    if not isinstance(target, str):
        return resolve_offload(target)
    module, sep, qualname = target.partition(":")
    if not sep or not module or not qualname:
        raise ValueError(f"call target must be 'module:qualname', got {target!r}")
    verdict = probe_module(module)
    if not verdict.ok:
        raise NotIsolatable(f"{module} does not load in a subinterpreter{verdict.why_not()}")
    return OffloadPlan("import", target)


def _encode_payload(
    codec: interp_side.Codec, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> bytes:
    try:
        return codec.dumps((tuple(args), dict(kwargs)))
    except (ValueError, TypeError, OverflowError) as exc:
        where = interp_side.find_unencodable(tuple(args), codec, "args")
        where = where or interp_side.find_unencodable(dict(kwargs), codec, "kwargs")
        raise SerializationError(
            f"cannot send {where or 'the arguments'} to a subinterpreter ({codec.name}): {exc}; "
            "values that cross must be plain data (None, bool, int, float, str, bytes, and "
            "list/tuple/dict/set of those)"
        ) from None


# --- transports -----------------------------------------------------------------------------


class _Transport:
    """Hands one request to an interpreter and returns its reply, blocking this host thread."""

    def __init__(self, interpreters: Any, sys_path: list[str]) -> None:
        self.interpreters = interpreters
        self.interp = interpreters.create()
        self.id: int = self.interp.id
        try:
            self._setup(sys_path)
        except BaseException:
            self.close()
            raise

    def _setup(self, sys_path: list[str]) -> None:
        self.interp.prepare_main(_subiso_path=marshal.dumps(list(sys_path)))
        self.interp.exec(
            "import marshal, sys\n"
            "sys.path[:] = marshal.loads(_subiso_path)\n"
            "from subiso.executors.subinterpreter.interp_side import handle as _subiso_handle\n"
        )

    def request(self, data: bytes) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        self.interp.close()


class _CallTransport(_Transport):
    """3.14: ``Interpreter.call`` passes bytes in and returns bytes; no queue at all."""

    def request(self, data: bytes) -> bytes:
        return self.interp.call(interp_side.entry, data)  # type: ignore[no-any-return]


class _ExecQueueTransport(_Transport):
    """3.13: ``Interpreter.call`` returns nothing there, so the reply goes through a queue.

    The stub runs via ``_interpreters.exec(id, code, shared)`` (request bound into
    ``__main__`` in the same crossing) and puts the reply on a per-worker queue; the host
    reads it right after exec returns, so the read never waits (no polling). These are the
    calls the backport makes itself, without the backport's public-class layers on top
    (``bench_subinterp_transport.py`` compares the whole pool call with a raw pool).
    """

    _STUB = compile("_subiso_put(_subiso_handle(_subiso_req))", "<subiso-stub>", "exec")

    def _setup(self, sys_path: list[str]) -> None:
        # imported by name: a 3.13+ private module (no stubs for older Pythons' type checks)
        _interpqueues = importlib.import_module("_interpqueues")
        self._queues = _interpqueues
        self._exec = importlib.import_module("_interpreters").exec
        # 3.13 layout: create(maxsize, fmt, unboundop); fmt 0 = shared-only, op 1 = remove.
        self.qid = _interpqueues.create(0, 0, 1)
        super()._setup(sys_path)
        self.interp.prepare_main(_subiso_qid=self.qid)
        self.interp.exec(
            "import _interpqueues\n"
            "def _subiso_put(reply, _put=_interpqueues.put, _qid=_subiso_qid):\n"
            "    _put(_qid, reply, 0, 1)\n"
        )

    def request(self, data: bytes) -> bytes:
        failure = self._exec(self.id, self._STUB, {"_subiso_req": data}, restrict=True)
        if failure is not None:
            raise self.interpreters.ExecutionFailed(failure)
        reply, _fmt = self._queues.get(self.qid)[:2]
        return reply  # type: ignore[no-any-return]

    def close(self) -> None:
        try:
            super().close()
        finally:
            if hasattr(self, "qid"):
                self._queues.destroy(self.qid)


def _transport_class() -> type[_Transport]:
    return _CallTransport if sys.version_info >= (3, 14) else _ExecQueueTransport


# --- the pool -------------------------------------------------------------------------------


class _Worker:
    """One interpreter and the host thread that drives it; recycled after ``max_tasks``."""

    def __init__(self, pool: InterpreterPool, index: int) -> None:
        self.pool = pool
        self.transport: _Transport | None = None
        self.defined: set[int] = set()
        self.tasks_done = 0
        self.ready = threading.Event()
        self.start_error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._main, name=f"subiso-interp-{pool.serial}-{index}", daemon=True
        )

    def _main(self) -> None:
        try:
            self._start_interpreter()
        finally:
            self.ready.set()
        try:
            while True:
                task = self.pool._queue.get()
                if task is None:
                    return
                self._run(task)
        finally:
            self._stop_interpreter()

    def _start_interpreter(self) -> None:
        """Create and prime the interpreter; retried once (3.13 pools rarely fail to start)."""
        self.start_error = None
        for attempt in range(2):
            try:
                self.transport = self.pool._transport_class(
                    self.pool._interpreters, self.pool.sys_path
                )
                self.defined = set()
                self.tasks_done = 0
                configure = ("configure", self.pool.codec.name, self.pool.log_levels)
                self._expect_ok(marshal.dumps(configure))
                return
            except Exception as exc:
                self._stop_interpreter()
                if attempt:
                    self.start_error = exc

    def _stop_interpreter(self) -> None:
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.close()

    def _run(self, task: _Task) -> None:
        future = task.future
        if not future.set_running_or_notify_cancel():
            return
        if self.transport is None:
            self._start_interpreter()
        if self.transport is None:
            error = WorkerCrashed(f"could not create a subinterpreter: {self.start_error!r}")
            future.set_exception(error)
            return
        future.interpreter_id = self.transport.id
        future.thread_id = threading.get_ident()
        future.started_at = time.perf_counter()
        if task.is_run and task.tag is not None:
            task.tag.mark_started(self.transport.id)
            run_log.run_started(task.tag)
        self.pool._watch(task)
        try:
            value = self._call(task)
        except BaseException as exc:
            future.finished_at = time.perf_counter()
            if not future.done():
                future.set_exception(exc)
        else:
            future.finished_at = time.perf_counter()
            if not future.done():
                future.set_result(value)
        self._after_task()

    def _after_task(self) -> None:
        self.tasks_done += 1
        limit = self.pool.max_tasks_per_worker
        if limit is not None and self.tasks_done >= limit:
            self._stop_interpreter()
            self._start_interpreter()
            self.pool._restarted()

    def _call(self, task: _Task) -> Any:
        plan = task.plan
        if plan.kind == "ship" and plan.key not in self.defined:
            self._define(plan)
        interp_id = self.transport.id if self.transport is not None else None
        status, body, records = self._send(task.request)
        if status == "missing":
            self._define(plan)
            status, body, records = self._send(task.request)
        if records:
            attributes = task.tag.attributes() if task.tag is not None else {}
            attributes["interpreter_id"] = interp_id
            for record in records:
                replay(record, **attributes)
        return self._decode(status, body)

    def _define(self, plan: OffloadPlan) -> None:
        self._expect_ok(marshal.dumps(("define", plan.key, plan.code, plan.spec)))
        self.defined.add(plan.key)

    def _expect_ok(self, request: bytes) -> None:
        status, body, _ = self._send(request)
        if status != "ok":
            raise self._decode(status, body)

    def _send(self, request: bytes) -> tuple[str, Any, Any]:
        """``(status, body, log records)`` of the interpreter's reply."""
        assert self.transport is not None
        try:
            reply = self.transport.request(request)
        except self.pool._interpreters.ExecutionFailed as failed:
            interp_id = self.transport.id
            self._stop_interpreter()
            self.pool._restarted()
            raise WorkerCrashed(f"subinterpreter {interp_id} failed: {failed}") from None
        return marshal.loads(reply)  # type: ignore[no-any-return]

    def _decode(self, status: str, body: Any) -> Any:
        if status == "ok":
            return None if body is None else self.pool.codec.loads(body)
        if status == "error":
            raise exception_from_wire(WireError(*body))  # interp_side sends its fields
        if status == "timeout":
            raise RunTimeout(body)
        if status == "serialization":
            raise SerializationError(f"cannot return from a subinterpreter: {body}")
        raise WorkerCrashed(f"unexpected reply {status!r} from subinterpreter")


class InterpreterPool:
    """``max_workers`` own-GIL interpreters kept warm for the pool's life, one host thread each.

    Work goes through one host-side queue that idle workers take from, so a call always lands
    on a free interpreter. Arguments are encoded on the caller's thread, so an unencodable
    payload raises :class:`SerializationError` from :meth:`submit` and never reaches a worker.
    """

    _serials = itertools.count(1)

    def __init__(
        self,
        max_workers: int,
        *,
        max_tasks_per_worker: int | None = None,
        sys_path: list[str] | None = None,
        codec: str | None = None,
        on_restart: Callable[[], None] | None = None,
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        if max_tasks_per_worker is not None and max_tasks_per_worker < 1:
            raise ValueError("max_tasks_per_worker must be at least 1 or None")
        self._interpreters = require_backend()
        self._transport_class = _transport_class()
        self.max_workers = max_workers
        self.max_tasks_per_worker = max_tasks_per_worker
        self.sys_path = list(sys.path if sys_path is None else sys_path)
        self.codec = interp_side.make_codec(codec or _default_codec())
        self.log_levels = host_levels()  # what each interpreter's loggers let through
        self._on_restart = on_restart
        self.serial = next(self._serials)
        self._queue: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        # fails futures whose sync call outlived its timeout (it cannot be cancelled inside)
        self._deadlines = Deadlines("subiso-interp-watchdog")
        self._workers = [_Worker(self, index) for index in range(max_workers)]
        for worker in self._workers:
            worker.thread.start()
        _live_pools.add(self)

    def _restarted(self) -> None:
        """An interpreter was replaced (recycled, or it failed)."""
        if self._on_restart is not None:
            self._on_restart()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until every worker created its interpreter (True) or ``timeout`` passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in self._workers:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not worker.ready.wait(left):
                return False
        return True

    @property
    def interpreter_ids(self) -> list[int]:
        """Ids of the interpreters alive right now (changes as workers recycle)."""
        return [w.transport.id for w in self._workers if w.transport is not None]

    def submit(self, call: CallSpec) -> InterpreterFuture:
        """Queue one call; the future's result is the decoded return value.

        Raises :class:`NotIsolatable` (target cannot reach an interpreter),
        :class:`SerializationError` (arguments are not plain data, message names the key
        path) or :class:`ExecutorClosed` synchronously; everything else arrives on the future.
        """
        plan = _plan_for(call.target)
        payload = _encode_payload(self.codec, call.args, call.kwargs)
        ref: str | int = plan.key if plan.kind == "ship" else plan.ref
        otel = call.otel
        if otel is None and "opentelemetry.context" in sys.modules:
            otel = capture_otel()
        request = marshal.dumps(("call", ref, payload, call.timeout, otel))
        tag = call.tag if call.tag is not None else CURRENT_RUN.get()
        future = InterpreterFuture()
        with self._lock:
            if self._closed:
                raise ExecutorClosed("InterpreterPool is closed")
            self._queue.put(_Task(future, plan, request, call.timeout, tag, call.is_run))
        return future

    def call(self, target: str | Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Convenience: submit and wait."""
        return self.submit(CallSpec(target, args, kwargs)).result()

    def _watch(self, task: _Task) -> None:
        if task.timeout is not None:
            future = task.future
            deadline = self._deadlines.call_later(
                task.timeout + TIMEOUT_GRACE, lambda: _expire(future)
            )
            future.add_done_callback(lambda _: deadline.cancel())

    def close(self, wait: bool = True, cancel_pending: bool = False) -> None:
        """Stop accepting work, finish (or cancel) what is queued, destroy every interpreter.

        Queued work runs to completion unless ``cancel_pending``; then queued futures are
        cancelled. With ``wait`` the worker threads are joined, so on return every interpreter
        this pool made is destroyed.
        """
        with self._lock:
            if not self._closed:
                self._closed = True
                if cancel_pending:
                    self._cancel_queued()
                for _ in self._workers:
                    self._queue.put(None)
        if wait:
            join_all(worker.thread for worker in self._workers)
        self._deadlines.stop(wait)

    def _cancel_queued(self) -> None:
        kept = 0
        while True:
            try:
                task = self._queue.get_nowait()
            except queue.Empty:
                break
            if task is None:
                kept += 1
            else:
                task.future.cancel()
        for _ in range(kept):
            self._queue.put(None)

    def __enter__(self) -> InterpreterPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_live_pools: weakref.WeakSet[InterpreterPool] = weakref.WeakSet()


#: How long interpreter exit waits, in all, for the workers of pools nobody closed to finish
#: their calls and destroy their interpreters (README: "shutdown"). A call stuck in a node
#: cannot be interrupted from outside its interpreter; waiting longer would only delay exit.
EXIT_GRACE_S = 2.0


@atexit.register
def _close_pools_at_exit() -> None:
    """Destroy interpreters of pools nobody closed, before the runtime finalizes them.

    Workers stuck in a long call get one shared, bounded wait (``EXIT_GRACE_S`` for all of
    them, not each); the runtime then reports the leftover.
    """
    pools = list(_live_pools)
    for pool in pools:
        pool.close(wait=False, cancel_pending=True)
    deadline = time.monotonic() + EXIT_GRACE_S
    for pool in pools:
        for worker in pool._workers:
            worker.thread.join(max(0.0, deadline - time.monotonic()))


def _default_codec() -> str:
    """msgpack when msgspec loads inside interpreters (probed once), marshal otherwise."""
    return "msgpack" if probe_msgspec().ok else "marshal"


def _expire(future: Future[Any]) -> None:
    if future.done():
        return
    try:
        future.set_exception(RunTimeout("call exceeded its timeout inside a subinterpreter"))
    except Exception:  # resolved by its worker between the check and here
        pass
