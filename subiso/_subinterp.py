"""Host side of the subinterpreter tier: backend detection, isolation probes, interpreter pool.

Layers, lowest first:

* :func:`backend` names the interpreters API this Python offers (3.14 stdlib, 3.13 backport)
  or says why there is none. The 3.13 backport segfaults on 3.12, so it is never imported there.
* :func:`probe_module` imports a module in a throw-away interpreter, in a daemon thread joined
  with a timeout, because importing a non-isolatable extension has hung interpreter pools
  (cpython#125864) and, with the 3.13 backport, spun worker threads forever. The verdict (and
  the first module that blocked it) is cached per process; nothing reaches a pool interpreter
  before its module passed.
* :func:`resolve_offload` decides once per function how it reaches an interpreter: by import
  of its module, by shipping its code object (self-contained functions), or not at all
  (:class:`~subiso.errors.NotIsolatable`).
* :class:`InterpreterPool` keeps own-GIL interpreters warm for its whole life, each driven by
  one host thread that calls into it synchronously; requests and replies are ``bytes``
  (see :mod:`subiso._runtime.interp_side` for the wire contract). There is no polling queue
  on the hot path (a blocking ``interpreters.Queue.get`` polls, cpython#143017).
"""

from __future__ import annotations

import atexit
import dis
import importlib
import itertools
import marshal
import pickle
import queue
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

from subiso._runtime import interp_side
from subiso.errors import (
    ExecutorClosed,
    NotIsolatable,
    RemoteTraceback,
    RunTimeout,
    SerializationError,
    WorkerCrashed,
)

DEFAULT_PROBE_TIMEOUT = 30.0
#: Extra time the host grants past a call's timeout before failing its future itself; the
#: interpreter cancels async calls on time, this only catches sync calls that cannot be cancelled.
TIMEOUT_GRACE = 0.25


# --- backend --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """Which interpreters API is available: ``name`` is None when none is, ``reason`` says why."""

    name: Literal["concurrent.interpreters", "interpreters_backport"] | None
    reason: str
    module: Any = field(default=None, repr=False, compare=False)

    def __bool__(self) -> bool:
        return self.name is not None


_backend: Backend | None = None


def backend() -> Backend:
    """The interpreters API of this Python, detected once.

    3.14: stdlib ``concurrent.interpreters``. 3.13: the ``interpreters-pep-734`` backport
    (``interpreters_backport``). 3.10-3.12: none (the backport segfaults on 3.12).
    """
    global _backend
    if _backend is None:
        _backend = _detect_backend()
    return _backend


def _detect_backend() -> Backend:
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if sys.version_info < (3, 13):
        return Backend(None, f"Python {version} has no own-GIL subinterpreter API (needs 3.13+)")
    if sys.version_info >= (3, 14):
        try:
            from concurrent import interpreters
        except ImportError as exc:
            return Backend(None, f"concurrent.interpreters missing on Python {version}: {exc}")
        return Backend("concurrent.interpreters", "stdlib", interpreters)
    try:
        from interpreters_backport import interpreters
    except ImportError:
        return Backend(
            None, "Python 3.13 needs the 'interpreters-pep-734' package for subinterpreters"
        )
    return Backend("interpreters_backport", "interpreters-pep-734 backport", interpreters)


def _require_backend() -> Any:
    found = backend()
    if not found:
        from subiso.errors import TierUnavailable

        raise TierUnavailable(found.reason)
    return found.module


# --- probes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeVerdict:
    """Whether ``module`` imports in an isolated subinterpreter, and if not, what blocked it."""

    module: str
    ok: bool
    blocked_by: str | None = None  # first non-isolatable module, e.g. pydantic_core._pydantic_core
    reason: str = ""
    seconds: float = 0.0


_probe_cache: dict[str, ProbeVerdict] = {}
_probe_lock = threading.Lock()  # guards _probe_name_locks only
# One lock per module name: a module is probed once, while probes of different modules (the
# target, the codec, offloaded functions' modules) run at the same time in their own scratch
# interpreters instead of queueing behind each other (each probe costs ~50-80 ms).
_probe_name_locks: dict[str, threading.Lock] = {}

# Runs inside the scratch interpreter. A finder that records every module import looked for
# turns the short name in CPython's ImportError ("module _core does not support ...") into the
# full one (msgspec._core).
_PROBE_SNIPPET = """\
import importlib, marshal, sys
sys.path[:] = marshal.loads(_subiso_path)
_seen = []
class _Recorder:
    @staticmethod
    def find_spec(name, path=None, target=None):
        _seen.append(name)
sys.meta_path.insert(0, _Recorder)
try:
    importlib.import_module(_subiso_module)
except ImportError as exc:
    msg = str(exc)
    blocked = None
    marker = " does not support loading in subinterpreters"
    if marker in msg and msg.startswith("module "):
        short = msg[len("module "):msg.index(marker)]
        blocked = short
        for name in reversed(_seen):
            if name == short or name.endswith("." + short):
                blocked = name
                break
    raise ImportError(repr((blocked, msg))) from None
finally:
    sys.meta_path.remove(_Recorder)
"""


def probe_module(name: str, timeout: float = DEFAULT_PROBE_TIMEOUT) -> ProbeVerdict:
    """Import ``name`` in a scratch interpreter (bounded by ``timeout``), cached per process.

    The scratch interpreter is destroyed afterwards. On timeout the verdict is "not ok" and
    the daemon thread is abandoned (it closes its interpreter if the import ever returns).
    """
    verdict = _probe_cache.get(name)
    if verdict is not None:
        return verdict
    with _probe_lock:
        name_lock = _probe_name_locks.setdefault(name, threading.Lock())
    with name_lock:
        verdict = _probe_cache.get(name)
        if verdict is None:
            verdict = _probe_cache[name] = _run_probe(name, timeout)
    return verdict


def _run_probe(name: str, timeout: float) -> ProbeVerdict:
    interpreters = _require_backend()
    outcome: list[ProbeVerdict] = []
    started = time.perf_counter()

    def target() -> None:
        outcome.append(_probe_in_scratch(interpreters, name, started))

    thread = threading.Thread(target=target, name=f"subiso-probe-{name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if outcome:
        return outcome[0]
    reason = f"importing {name} in a subinterpreter did not finish within {timeout}s"
    return ProbeVerdict(name, False, None, reason, time.perf_counter() - started)


def _probe_in_scratch(interpreters: Any, name: str, started: float) -> ProbeVerdict:
    interp = interpreters.create()
    try:
        interp.prepare_main(_subiso_path=marshal.dumps(list(sys.path)), _subiso_module=name)
        interp.exec(_PROBE_SNIPPET)
    except interpreters.ExecutionFailed as failed:
        blocked, reason = _parse_probe_failure(failed.excinfo)
        return ProbeVerdict(name, False, blocked, reason, time.perf_counter() - started)
    finally:
        interp.close()
    elapsed = time.perf_counter() - started
    return ProbeVerdict(name, True, None, "imports in an isolated subinterpreter", elapsed)


def _parse_probe_failure(excinfo: Any) -> tuple[str | None, str]:
    if excinfo.type.__name__ == "ImportError":
        try:
            import ast

            blocked, msg = ast.literal_eval(excinfo.msg)
            return blocked, f"ImportError: {msg}"
        except (ValueError, SyntaxError):
            pass
    return None, excinfo.formatted


def probe_msgspec(timeout: float = DEFAULT_PROBE_TIMEOUT) -> ProbeVerdict:
    """Whether msgspec loads in a subinterpreter (msgspec 0.22: no, blocked by msgspec._core).

    Drives the payload codec on both sides: msgpack when it loads, stdlib marshal otherwise.
    """
    return probe_module("msgspec", timeout)


# --- offload plans --------------------------------------------------------------------------


@dataclass(frozen=True)
class OffloadPlan:
    """How one function reaches an interpreter, decided once by :func:`resolve_offload`.

    ``kind == "import"``: the interpreter imports ``ref`` (``module:qualname``).
    ``kind == "ship"``: its code object travels (``key`` names it inside each interpreter);
    ``reason`` says why its module could not be imported there.
    """

    kind: Literal["import", "ship"]
    ref: str
    key: int = 0
    code: types.CodeType | None = field(default=None, repr=False)
    spec: tuple = field(default=(), repr=False)
    reason: str = ""


_plans: dict[Any, OffloadPlan | NotIsolatable] = {}
_plan_keys = itertools.count(1)
_plan_lock = threading.Lock()
_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_NAME"})


def resolve_offload(fn: Callable[..., Any]) -> OffloadPlan:
    """Decide (once per function, cached) how ``fn`` runs in an interpreter.

    In order: import its module there when that module loads (probed); else ship its code when
    it is self-contained (no closure; globals only builtins, isolatable modules, itself); else
    raise :class:`NotIsolatable` naming the blocking module and the offending global.
    """
    cached = _plans.get(fn)
    if cached is None:
        with _plan_lock:
            cached = _plans.get(fn)
            if cached is None:
                try:
                    cached = _make_plan(fn)
                except NotIsolatable as exc:
                    cached = exc
                _plans[fn] = cached
    if isinstance(cached, NotIsolatable):
        raise NotIsolatable(str(cached))
    return cached


def _make_plan(fn: Callable[..., Any]) -> OffloadPlan:
    inner = interp_side.unwrap_offload(fn)
    module = getattr(inner, "__module__", None) or "__main__"
    qualname = getattr(inner, "__qualname__", repr(inner))
    ref = f"{module}:{qualname}"
    blocked = _import_blocker(inner, module, qualname)
    if blocked is None:
        return OffloadPlan("import", ref)
    problem = _self_contained_problem(inner)
    if problem is not None:
        raise NotIsolatable(
            f"{module}.{qualname} cannot run in a subinterpreter: {blocked}, and it cannot be "
            f"shipped on its own because {problem}. Move it to a module that imports only "
            "isolatable modules, or make it self-contained."
        )
    code, spec = _ship_parts(inner)
    return OffloadPlan("ship", ref, next(_plan_keys), code, spec, blocked)


def _import_blocker(inner: Any, module: str, qualname: str) -> str | None:
    """Why ``inner`` cannot be imported by name inside an interpreter (None: it can)."""
    if module == "__main__":
        return "it is defined in __main__, which interpreters cannot import"
    if "<locals>" in qualname:
        return "it is a nested function, not reachable by import"
    verdict = probe_module(module)
    if not verdict.ok:
        by = f" (blocked by {verdict.blocked_by})" if verdict.blocked_by else ""
        return f"its module {module} does not load in a subinterpreter{by}: {verdict.reason}"
    return None


def _global_names(code: types.CodeType) -> list[tuple[str, str]]:
    """``(opname, name)`` of every global access in ``code`` and its nested code objects."""
    found = [(ins.opname, ins.argval) for ins in dis.get_instructions(code)]
    names = [(op, name) for op, name in found if op in _GLOBAL_OPS]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.extend(_global_names(const))
    return names


def _self_contained_problem(inner: Any) -> str | None:
    """What keeps ``inner`` from travelling as a code object, or None when nothing does."""
    if not isinstance(inner, types.FunctionType):
        return f"{type(inner).__qualname__} is not a plain function"
    code = inner.__code__
    if code.co_freevars:
        return f"it closes over {', '.join(code.co_freevars)}"
    for opname, name in _global_names(code):
        if opname != "LOAD_GLOBAL" and opname != "LOAD_NAME":
            return f"it assigns the global {name!r}"
        problem = _global_problem(inner, name)
        if problem is not None:
            return problem
    for label, value in (("defaults", inner.__defaults__), ("kwdefaults", inner.__kwdefaults__)):
        try:
            marshal.dumps(value)
        except ValueError:
            return f"its {label} {value!r} are not plain data"
    return None


def _global_problem(inner: types.FunctionType, name: str) -> str | None:
    namespace = inner.__globals__
    if name not in namespace:
        return None if hasattr(_builtins(), name) else f"it uses the undefined global {name!r}"
    value = namespace[name]
    if value is inner or interp_side.unwrap_offload(value) is inner:
        return None
    if isinstance(value, types.ModuleType):
        verdict = probe_module(value.__name__)
        if verdict.ok:
            return None
        return f"it uses the global module {name!r} ({value.__name__}), which does not load there"
    return f"it uses the global {name!r} ({type(value).__qualname__})"


def _builtins() -> types.ModuleType:
    import builtins

    return builtins


def _ship_parts(inner: types.FunctionType) -> tuple[types.CodeType, tuple]:
    imports: dict[str, str] = {}
    self_names: list[str] = []
    for _, name in _global_names(inner.__code__):
        value = inner.__globals__.get(name, None)
        if isinstance(value, types.ModuleType):
            imports[name] = value.__name__
        elif name in inner.__globals__:
            self_names.append(name)
    spec = (
        inner.__name__,
        inner.__qualname__,
        inner.__module__,
        inner.__defaults__,
        inner.__kwdefaults__,
        imports,
        tuple(self_names),
    )
    return inner.__code__, spec


# --- call specs and results -----------------------------------------------------------------


@dataclass(frozen=True)
class CallSpec:
    """One call for the pool: ``target`` is ``"module:qualname"``, a function, or a plan."""

    target: str | Callable[..., Any] | OffloadPlan
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None


class InterpreterFuture(Future):
    """A Future that also says which interpreter ran the call, on which host thread and
    since when (``time.perf_counter()``), for RunReport."""

    interpreter_id: int | None = None
    thread_id: int | None = None
    started_at: float | None = None


@dataclass
class _Task:
    future: InterpreterFuture
    plan: OffloadPlan
    request: bytes
    timeout: float | None


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
        by = f" (blocked by {verdict.blocked_by})" if verdict.blocked_by else ""
        raise NotIsolatable(f"{module} does not load in a subinterpreter{by}: {verdict.reason}")
    return OffloadPlan("import", target)


def _encode_payload(codec: interp_side.Codec, args: tuple, kwargs: dict) -> bytes:
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


def _rebuild_error(body: tuple) -> BaseException:
    """The exception a call raised inside the interpreter, re-created on the host."""
    module, qualname, message, text, pickled = body
    exc: BaseException | None = None
    if pickled is not None:
        try:
            exc = pickle.loads(pickled)
        except Exception:
            exc = None
    if exc is None:
        exc = _exception_by_name(module, qualname, message)
    exc.__cause__ = RemoteTraceback(text)
    return exc


def _exception_by_name(module: str, qualname: str, message: str) -> BaseException:
    try:
        kind: Any = importlib.import_module(module)
        for part in qualname.split("."):
            kind = getattr(kind, part)
        if isinstance(kind, type) and issubclass(kind, BaseException):
            return kind(message)
    except Exception:
        pass
    return RuntimeError(f"{module}.{qualname}: {message}")


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
            "from subiso._runtime.interp_side import handle as _subiso_handle\n"
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
    calls the backport makes itself; measured ~15 us vs ~45 us for prepare_main + exec +
    ``Queue.get_nowait`` through the backport's public classes.
    """

    _STUB = compile("_subiso_put(_subiso_handle(_subiso_req))", "<subiso-stub>", "exec")

    def _setup(self, sys_path: list[str]) -> None:
        import _interpqueues  # type: ignore[import-not-found]

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
                if self.pool.codec.name != "marshal":
                    self._expect_ok(marshal.dumps(("configure", self.pool.codec.name)))
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
        self.pool._watch(task)
        try:
            value = self._call(task)
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(value)
        self._after_task()

    def _after_task(self) -> None:
        self.tasks_done += 1
        limit = self.pool.max_tasks_per_worker
        if limit is not None and self.tasks_done >= limit:
            self._stop_interpreter()
            self._start_interpreter()

    def _call(self, task: _Task) -> Any:
        plan = task.plan
        if plan.kind == "ship" and plan.key not in self.defined:
            self._define(plan)
        status, body = self._send(task.request)
        if status == "missing":
            self._define(plan)
            status, body = self._send(task.request)
        return self._decode(status, body, task)

    def _define(self, plan: OffloadPlan) -> None:
        self._expect_ok(marshal.dumps(("define", plan.key, plan.code, plan.spec)))
        self.defined.add(plan.key)

    def _expect_ok(self, request: bytes) -> None:
        status, body = self._send(request)
        if status != "ok":
            raise self._decode(status, body, None)

    def _send(self, request: bytes) -> tuple[str, Any]:
        assert self.transport is not None
        try:
            reply = self.transport.request(request)
        except self.pool._interpreters.ExecutionFailed as failed:
            interp_id = self.transport.id
            self._stop_interpreter()
            raise WorkerCrashed(f"subinterpreter {interp_id} failed: {failed}") from None
        return marshal.loads(reply)  # type: ignore[no-any-return]

    def _decode(self, status: str, body: Any, task: _Task | None) -> Any:
        if status == "ok":
            return None if body is None else self.pool.codec.loads(body)
        if status == "error":
            raise _rebuild_error(body)
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
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        if max_tasks_per_worker is not None and max_tasks_per_worker < 1:
            raise ValueError("max_tasks_per_worker must be at least 1 or None")
        self._interpreters = _require_backend()
        self._transport_class = _transport_class()
        self.max_workers = max_workers
        self.max_tasks_per_worker = max_tasks_per_worker
        self.sys_path = list(sys.path if sys_path is None else sys_path)
        self.codec = interp_side.make_codec(codec or _default_codec())
        self.serial = next(self._serials)
        self._queue: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._watchdog = _Watchdog()
        self._workers = [_Worker(self, index) for index in range(max_workers)]
        for worker in self._workers:
            worker.thread.start()
        _live_pools.add(self)

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
        request = marshal.dumps(("call", ref, payload, call.timeout))
        future = InterpreterFuture()
        with self._lock:
            if self._closed:
                raise ExecutorClosed("InterpreterPool is closed")
            self._queue.put(_Task(future, plan, request, call.timeout))
        return future

    def call(self, target: str | Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Convenience: submit and wait."""
        return self.submit(CallSpec(target, args, kwargs)).result()

    def _watch(self, task: _Task) -> None:
        if task.timeout is not None:
            self._watchdog.watch(task.future, task.timeout + TIMEOUT_GRACE)

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
            for worker in self._workers:
                worker.thread.join()
        self._watchdog.stop(wait)

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


@atexit.register
def _close_pools_at_exit() -> None:
    """Destroy interpreters of pools nobody closed, before the runtime finalizes them.

    Workers stuck in a long call get a bounded join; the runtime then reports the leftover.
    """
    pools = list(_live_pools)
    for pool in pools:
        pool.close(wait=False, cancel_pending=True)
    for pool in pools:
        for worker in pool._workers:
            worker.thread.join(5.0)


def _default_codec() -> str:
    """msgpack when msgspec loads inside interpreters (probed once), marshal otherwise."""
    return "msgpack" if probe_msgspec().ok else "marshal"


class _Watchdog:
    """Fails futures whose call outlived its timeout (sync calls cannot be cancelled inside).

    One lazily started thread per pool, sleeping on a condition until the nearest deadline;
    no thread exists for pools that never use timeouts.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._deadlines: list[tuple[float, int, Future]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def watch(self, future: Future, seconds: float) -> None:
        import heapq

        with self._cond:
            if self._stopped:
                return
            if len(self._deadlines) > 4096:  # drop finished calls with far-off deadlines
                self._deadlines = [item for item in self._deadlines if not item[2].done()]
                heapq.heapify(self._deadlines)
            entry = (time.monotonic() + seconds, next(self._seq), future)
            heapq.heappush(self._deadlines, entry)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._main, name="subiso-interp-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _main(self) -> None:
        import heapq

        with self._cond:
            while not self._stopped:
                now = time.monotonic()
                while self._deadlines and (
                    self._deadlines[0][0] <= now or self._deadlines[0][2].done()
                ):
                    _, _, future = heapq.heappop(self._deadlines)
                    _expire(future)
                wait = self._deadlines[0][0] - now if self._deadlines else None
                self._cond.wait(wait)

    def stop(self, wait: bool = True) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if wait and self._thread is not None:
            self._thread.join()


def _expire(future: Future) -> None:
    if future.done():
        return
    try:
        future.set_exception(RunTimeout("call exceeded its timeout inside a subinterpreter"))
    except Exception:  # resolved by its worker between the check and here
        pass
